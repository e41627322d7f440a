package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
)

// chatsyncWithStdin runs the command line in-process with stdin.
func chatsyncWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, "test", strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func keyTestEntry(msgid string) seal.Entry {
	return seal.Entry{Op: seal.OpPut, MsgID: msgid, Account: testAccount, Device: "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		Time: time.Date(2026, 1, 28, 10, 0, 0, 0, time.UTC), Message: json.RawMessage(`{"msgid":"` + msgid + `","body":"hi"}`)}
}

// keyExportLine is the one line of out that is an exported key.
func keyExportLine(t *testing.T, out string) string {
	t.Helper()
	var found []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "chatsync-key:") {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one export line in %q, got %d", out, len(found))
	}
	return found[0]
}

func TestKeyRotateAddsANewestKeyKeepsTheOldOnesAndPrintsALineKeyImportAccepts(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "alice.key")
	if code, _, errs := chatsync(t, "key", "generate", "--key-file", kf); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, errs)
	}
	old, err := seal.LoadKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	sealedBefore, err := old.Seal(keyTestEntry("m1"))
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs := chatsync(t, "key", "rotate", "--key-file", kf)
	if code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, errs)
	}
	kr, err := seal.LoadKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 || kr.Keys()[0] != old.Current() {
		t.Fatalf("after rotate the file holds %v, want the old key then a new one", kr)
	}
	newKey := kr.Current()
	l := strings.Split(out, "\n")
	if len(l) < 3 || l[0] != "added a new key (fingerprint "+newKey.Fingerprint()+") to "+kf+": it encrypts from now on; the 1 older key(s) still decrypt" ||
		l[1] != "on each other device of the account, run `chatsync key import` and paste this line:" {
		t.Errorf("rotate printed %q", out)
	}
	line := keyExportLine(t, out)
	if keys, err := seal.ImportKeys(line); err != nil || len(keys) != 2 || keys[0] != old.Current() || keys[1] != newKey {
		t.Fatalf("the printed line is not the old key then the new one (%d keys, %v)", len(keys), err)
	}
	if !strings.Contains(errs, "anyone who has it can read your messages") {
		t.Errorf("no warning on stderr: %q", errs)
	}

	// The old envelope still opens; new ones are sealed with the new key.
	if e, err := kr.Open(sealedBefore, testAccount); err != nil || e.MsgID != "m1" {
		t.Errorf("an entry sealed before the rotation does not open: %v", err)
	}
	sealedAfter, err := kr.Seal(keyTestEntry("m2"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sealedAfter, "."+newKey.ID()+".") {
		t.Errorf("a new entry %.20s... is not sealed with the new key %s", sealedAfter, newKey.ID())
	}
	if _, err := old.Open(sealedAfter, testAccount); !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("the old keyring opens what the new key sealed: %v", err)
	}

	// Another device that had the old key imports the printed line, from
	// a pipe, and then opens both.
	other := filepath.Join(dir, "other.key")
	if err := seal.CreateKeyFile(other, old.Current()); err != nil {
		t.Fatal(err)
	}
	code, out, errs = chatsyncWithStdin(t, line+"\n", "key", "import", "--key-file", other)
	if code != 0 || out != "added 1 key(s) to "+other+"; the newest, fingerprint "+newKey.Fingerprint()+", encrypts\n" {
		t.Fatalf("import: exit %d, %q, %q", code, out, errs)
	}
	okr, err := seal.LoadKeyring(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{sealedBefore, sealedAfter} {
		if _, err := okr.Open(env, testAccount); err != nil {
			t.Errorf("the other device cannot open an entry after the import: %v", err)
		}
	}
	if okr.Current() != newKey {
		t.Errorf("on the other device the imported key does not encrypt")
	}

	// A second rotation keeps both.
	if code, _, errs := chatsync(t, "key", "rotate", "--key-file", kf); code != 0 {
		t.Fatalf("second rotate: exit %d: %s", code, errs)
	}
	if kr, err := seal.LoadKeyring(kf); err != nil || kr.Len() != 3 {
		t.Errorf("after two rotations: %v, %v", kr, err)
	}
}

func TestKeyRotateUsesTheAccountsKeyFileAndRefusesAMissingOne(t *testing.T) {
	cfg := writeStoreConfig(t, storeAccount{testAccount, t.TempDir(), "json"})
	kf := filepath.Join(filepath.Dir(cfg), "k0.key")
	code, _, errs := chatsync(t, "--config", cfg, "key", "rotate")
	if code != 1 || !strings.Contains(errs, "does not exist") || !strings.Contains(errs, "key generate") {
		t.Errorf("rotate without a key file: exit %d, %q", code, errs)
	}
	if code, _, errs := chatsync(t, "--config", cfg, "key", "generate"); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, errs)
	}
	code, out, errs := chatsync(t, "--config", cfg, "key", "rotate")
	if code != 0 || !strings.Contains(out, " to "+kf+":") {
		t.Fatalf("rotate: exit %d, %q, %q", code, out, errs)
	}
	if kr, err := seal.LoadKeyring(kf); err != nil || kr.Len() != 2 {
		t.Errorf("the account's key file after rotate: %v, %v", kr, err)
	}
}

func TestKeyFingerprintJSONListsEveryKeyOldestFirst(t *testing.T) {
	cfg := writeStoreConfig(t, storeAccount{testAccount, t.TempDir(), "json"})
	kf := filepath.Join(filepath.Dir(cfg), "k0.key")
	chatsync(t, "key", "generate", "--key-file", kf)
	chatsync(t, "key", "rotate", "--key-file", kf)
	kr, err := seal.LoadKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	keys := kr.Keys()

	for _, args := range [][]string{
		{"--config", cfg, "key", "fingerprint", "--json"},
		{"key", "fingerprint", "--json", "--key-file", kf},
		{"key", "--key-file", kf, "fingerprint", "--json"},
	} {
		code, out, errs := chatsync(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var res struct {
			KeyFiles []struct {
				Path    string `json:"path"`
				Account string `json:"account"`
				Keys    []struct {
					Fingerprint string `json:"fingerprint"`
					KeyID       string `json:"key_id"`
					Encrypts    bool   `json:"encrypts"`
				} `json:"keys"`
			} `json:"key_files"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v printed %q: %v", args, out, err)
		}
		if len(res.KeyFiles) != 1 || res.KeyFiles[0].Path != kf || len(res.KeyFiles[0].Keys) != 2 {
			t.Fatalf("%v: %+v", args, res)
		}
		f := res.KeyFiles[0]
		if args[0] == "--config" && f.Account != testAccount {
			t.Errorf("%v: account %q", args, f.Account)
		}
		for i, k := range f.Keys {
			if k.Fingerprint != keys[i].Fingerprint() || k.KeyID != keys[i].ID() || k.Encrypts != (i == 1) {
				t.Errorf("%v: key %d is %+v, want %s %s encrypts=%v", args, i, k, keys[i].Fingerprint(), keys[i].ID(), i == 1)
			}
		}
	}

	code, out, _ := chatsync(t, "--config", cfg, "key", "fingerprint")
	want := keys[0].Fingerprint() + "  " + kf + "  (decrypts)\n" + keys[1].Fingerprint() + "  " + kf + "  (encrypts and decrypts)\n"
	if code != 0 || out != want {
		t.Errorf("fingerprint printed %q, want %q", out, want)
	}
}

func TestKeyCommandsShareKeyFileAndKeepOut(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.key")
	if code, _, errs := chatsync(t, "key", "generate", "--out", a); code != 0 {
		t.Fatalf("generate --out: exit %d: %s", code, errs)
	}
	code, line, errs := chatsync(t, "key", "export", "--key-file", a)
	if code != 0 {
		t.Fatalf("export --key-file: exit %d: %s", code, errs)
	}
	b := filepath.Join(dir, "b.key")
	if code, _, errs := chatsyncWithStdin(t, line, "key", "import", "--out", b); code != 0 {
		t.Fatalf("import --out: exit %d: %s", code, errs)
	}
	c := filepath.Join(dir, "c.key")
	if code, _, errs := chatsyncWithStdin(t, line, "key", "import", "--key-file", c); code != 0 {
		t.Fatalf("import --key-file: exit %d: %s", code, errs)
	}
	code, out, _ := chatsync(t, "key", "fingerprint", a, b, c)
	if code != 0 || strings.Count(out, strings.Fields(out)[0]) != 3 {
		t.Errorf("three files with the same key: exit %d, %q", code, out)
	}
	code, _, errs = chatsync(t, "key", "generate", "--out", filepath.Join(dir, "x.key"), "--key-file", filepath.Join(dir, "y.key"))
	if code != 2 || !strings.Contains(errs, "give one of them") {
		t.Errorf("--out and --key-file naming two files: exit %d, %q", code, errs)
	}
	code, _, errs = chatsyncWithStdin(t, "chatsync-key:v1:garbage\n", "key", "import", "--key-file", filepath.Join(dir, "z.key"))
	if code != 1 || !strings.Contains(errs, "copy the whole line") {
		t.Errorf("a damaged line: exit %d, %q", code, errs)
	}
}

// A device set up after a rotation, with the line `key export` prints,
// reads what was sealed before the rotation and seals with the new key.
func TestKeyExportAfterARotationCarriesTheOlderKeysToANewDevice(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.key")
	if _, err := seal.GenerateKeyFile(first); err != nil {
		t.Fatal(err)
	}
	before, _ := seal.LoadKeyring(first)
	sealedBefore, err := before.Seal(keyTestEntry("m1"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := chatsync(t, "key", "rotate", "--key-file", first); code != 0 {
		t.Fatalf("rotate: exit %d, %s", code, errs)
	}
	code, out, errs := chatsync(t, "key", "export", "--key-file", first)
	if code != 0 {
		t.Fatalf("export: exit %d, %s", code, errs)
	}
	fresh := filepath.Join(dir, "fresh.key")
	if code, out, errs := chatsyncWithStdin(t, strings.TrimSpace(out)+"\n", "key", "import", "--key-file", fresh); code != 0 || !strings.HasPrefix(out, "added 2 key(s) to "+fresh) {
		t.Fatalf("import on the new device: exit %d, %q, %q", code, out, errs)
	}
	kr, err := seal.LoadKeyring(fresh)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := seal.LoadKeyring(first)
	if e, err := kr.Open(sealedBefore, testAccount); err != nil || e.MsgID != "m1" {
		t.Errorf("the new device cannot open what was sealed before the rotation: %v", err)
	}
	if kr.Current() != rotated.Current() {
		t.Error("the new device does not seal with the rotated key")
	}
}
