package seal

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// passphraseVector was computed once with the reference Argon2
// implementation (Debian package argon2, 0~20171227), independent of
// golang.org/x/crypto:
//
//	salt = SHA-256("chatsync/seal passphrase salt v1\x00" || "alice@example.com")[:16]
//	     = ca5d2c3f96c93551465305989aec5037
//	printf 'correct horse battery staple' |
//	  argon2 "$(printf '\xca\x5d\x2c\x3f\x96\xc9\x35\x51\x46\x53\x05\x98\x9a\xec\x50\x37')" \
//	    -id -t 3 -k 65536 -p 4 -l 32 -r
const (
	passphraseVector     = "cbd6b0eb8c6e715673be03360291de4daf16e41677fbb7219dd196ae4373340a"
	passphraseVectorSalt = "ca5d2c3f96c93551465305989aec5037"
)

func TestDeriveKeyMatchesPinnedVectorAndIsAccountBound(t *testing.T) {
	// Two Argon2id runs of 64 MiB each; keep this the only test that
	// derives.
	pass := []byte("correct horse battery staple")
	alice := DeriveKey(pass, "alice@example.com")
	if got := hex.EncodeToString(alice[:]); got != passphraseVector {
		t.Fatalf("DeriveKey: got %s, want %s", got, passphraseVector)
	}
	bob := DeriveKey(pass, "bob@example.com")
	if bob == alice {
		t.Fatal("same passphrase gave the same key for two accounts")
	}
}

func TestPassphraseSaltIsNormalizedAccount(t *testing.T) {
	if got := hex.EncodeToString(passphraseSalt("alice@example.com")); got != passphraseVectorSalt {
		t.Fatalf("salt: got %s, want %s", got, passphraseVectorSalt)
	}
	for _, a := range []string{"Alice@Example.COM", "sip:alice@example.com", " alice@example.com\n"} {
		if got := hex.EncodeToString(passphraseSalt(a)); got != passphraseVectorSalt {
			t.Errorf("salt(%q) = %s, want the salt of alice@example.com", a, got)
		}
	}
	if hex.EncodeToString(passphraseSalt("alice@example.org")) == passphraseVectorSalt {
		t.Error("different domains share a salt")
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	for _, k := range []Key{testKey(0), testKey(0xff), mustGenerate(t)} {
		line := Export(k)
		if !regexp.MustCompile(`^chatsync-key:v1:[A-Za-z0-9_-]{48}$`).MatchString(line) {
			t.Fatalf("Export = %q, not the documented form", line)
		}
		got, err := Import(line)
		if err != nil {
			t.Fatalf("Import(Export(k)): %v", err)
		}
		if got != k {
			t.Fatal("Import(Export(k)) != k")
		}
		// Pasted with wrapping and a trailing newline.
		got, err = Import("  " + line[:30] + "\n" + line[30:] + "\r\n")
		if err != nil || got != k {
			t.Fatalf("Import of a wrapped line: %v", err)
		}
	}
}

func mustGenerate(t *testing.T) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestImportDetectsTypos(t *testing.T) {
	line := Export(testKey(7))
	body := line[len(exportPrefix):]
	// Replace one character at every position with another valid one.
	for i := range body {
		c := byte('A')
		if body[i] == 'A' {
			c = 'B'
		}
		typo := exportPrefix + body[:i] + string(c) + body[i+1:]
		if _, err := Import(typo); err == nil {
			t.Errorf("typo at position %d was not detected", i)
		}
	}
	swapped := exportPrefix + body[1:2] + body[0:1] + body[2:]
	if body[0] != body[1] {
		if _, err := Import(swapped); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("swapped characters: got %v, want a checksum error", err)
		}
	}
	for name, in := range map[string]string{
		"truncated":     line[:len(line)-1],
		"empty":         "",
		"wrong prefix":  "chatsync-key:v2:" + body,
		"not a key":     "hello",
		"bad char":      exportPrefix + "*" + body[1:],
		"key file line": "chatsync-key v1 " + strings.Repeat("A", 43) + "=",
	} {
		_, err := Import(in)
		if err == nil {
			t.Errorf("%s: Import succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), body[:10]) {
			t.Errorf("%s: error echoes key material: %v", name, err)
		}
	}
}

func TestFingerprintAndIDShape(t *testing.T) {
	k := testKey(1)
	fp, id := k.Fingerprint(), k.ID()
	if !regexp.MustCompile(`^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$`).MatchString(fp) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(id) {
		t.Fatalf("ID = %q", id)
	}
	if strings.ReplaceAll(fp, "-", "")[:8] != id {
		t.Errorf("fingerprint %s does not start with key id %s", fp, id)
	}
	if testKey(2).Fingerprint() == fp {
		t.Error("two keys share a fingerprint")
	}
	if k.ID() != id || k.Fingerprint() != fp {
		t.Error("ID or Fingerprint not stable")
	}
}

func TestKeyAndKeyringNeverPrintKeyMaterial(t *testing.T) {
	k := testKey(0xab)
	kr := mustKeyring(t, testKey(0xcd), k)
	type wrapper struct {
		K  Key
		KR *Keyring
	}
	var outs []string
	for _, v := range []any{k, &k, *kr, kr, wrapper{k, kr}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
	}
	var logBuf strings.Builder
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("keys", "key", k, "keyring", kr)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("keys", "key", k, "keyring", kr)
	outs = append(outs, logBuf.String())
	if _, err := json.Marshal(wrapper{K: k}); err == nil {
		t.Error("json.Marshal of a Key succeeded")
	}
	for _, out := range outs {
		for _, leak := range []string{"ab ab", "abab", "171 171", "ABAB", "cdcd", "q6ur", "zc3N", Export(k)[len(exportPrefix):][:8]} {
			if strings.Contains(out, leak) {
				t.Errorf("output %q contains key material %q", out, leak)
			}
		}
	}
	if s := kr.String(); !strings.Contains(s, k.Fingerprint()+" (seals)") || !strings.Contains(s, testKey(0xcd).Fingerprint()) {
		t.Errorf("Keyring.String() = %q, want both fingerprints, newest sealing", s)
	}
}

func TestNewKeyringRefusesDuplicatesAndEmpty(t *testing.T) {
	if _, err := NewKeyring(); err == nil {
		t.Error("empty keyring accepted")
	}
	if _, err := NewKeyring(testKey(1), testKey(2), testKey(1)); err == nil || !strings.Contains(err.Error(), "same key") {
		t.Errorf("duplicate key: got %v", err)
	}
}

// Every key travels in one export line, and the device that imports it
// seals with the key the exporter seals with, whatever it held before.
func TestExportKeysCarriesEveryKeyAndTheNewestStillSeals(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	mine, _ := GenerateKey()
	line := ExportKeys([]Key{k1, k2})
	got, err := ImportKeys(line)
	if err != nil || len(got) != 2 || got[0] != k1 || got[1] != k2 {
		t.Fatalf("ImportKeys(ExportKeys) = %d keys, %v; want k1, k2", len(got), err)
	}
	if one, err := ImportKeys(Export(k1)); err != nil || len(one) != 1 || one[0] != k1 {
		t.Errorf("ImportKeys of a one-key line: %d keys, %v", len(one), err)
	}
	if _, err := ImportKeys(line[:len(line)-3]); err == nil {
		t.Error("a truncated line imported")
	}
	for _, tc := range []struct {
		name string
		have []Key
		want []Key // the file after, oldest first
		n    int
	}{
		{"a new device", nil, []Key{k1, k2}, 2},
		{"a device with the newest only", []Key{k2}, []Key{k1, k2}, 1},
		{"a device with a key of its own", []Key{mine}, []Key{mine, k1, k2}, 2},
		{"a device with both", []Key{k1, k2}, []Key{k1, k2}, 0},
	} {
		path := filepath.Join(t.TempDir(), "alice.key")
		for _, k := range tc.have {
			if err := AddKey(path, k); err != nil {
				t.Fatal(err)
			}
		}
		n, err := AddKeys(path, []Key{k1, k2})
		kr, lerr := LoadKeyring(path)
		if err != nil || lerr != nil || n != tc.n {
			t.Errorf("%s: AddKeys = %d, %v (load %v); want %d added", tc.name, n, err, lerr, tc.n)
			continue
		}
		keys := kr.Keys()
		if len(keys) != len(tc.want) || kr.Current() != k2 {
			t.Errorf("%s: the file holds %d keys, current %s; want %d, current k2", tc.name, len(keys), kr.Current().Fingerprint(), len(tc.want))
			continue
		}
		for i := range keys {
			if keys[i] != tc.want[i] {
				t.Errorf("%s: key %d is not the expected one", tc.name, i)
			}
		}
	}
}
