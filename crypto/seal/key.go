package seal

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode"

	"golang.org/x/crypto/argon2"
)

// KeySize is the size of a key in bytes.
const KeySize = 32

// Key is a 32-byte secretbox master key. Its String, GoString, Format,
// LogValue and MarshalText methods never reveal the key bytes: printing or
// logging a Key shows its fingerprint only. Use [Export] to move a key.
type Key [KeySize]byte

// Domain-separation labels. Each use of the key or of a hash gets its own
// label so that no two derivations can collide.
const (
	labelKeyID    = "chatsync/seal key id v1\x00"
	labelSalt     = "chatsync/seal passphrase salt v1\x00"
	labelExport   = "chatsync/seal export checksum v1\x00"
	labelEntryKey = "chatsync/seal entry key v1\x00"
)

// Argon2id parameters of DeriveKey: the low-memory profile of RFC 9106
// (section 4, second recommended option). Changing any of them changes every
// passphrase-derived key, so they are part of the format.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB, i.e. 64 MiB
	argonThreads = 4
	argonSaltLen = 16
)

// GenerateKey returns a new random key read from crypto/rand.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

// DeriveKey derives a key from a passphrase with Argon2id (t=3, m=64 MiB,
// p=4, 32-byte output). The salt is the first 16 bytes of
// SHA-256("chatsync/seal passphrase salt v1\x00" || NormalizeAccount(account)),
// so every device of the same account that is given the same passphrase gets
// the same key, and the same passphrase gives different keys for different
// accounts. It uses 64 MiB of memory for a fraction of a second.
//
// DeriveKey accepts any passphrase; callers should refuse empty or short
// ones before calling it.
func DeriveKey(passphrase []byte, account string) Key {
	out := argon2.IDKey(passphrase, passphraseSalt(account), argonTime, argonMemory, argonThreads, KeySize)
	var k Key
	copy(k[:], out)
	clear(out)
	return k
}

// passphraseSalt returns the Argon2id salt for account.
func passphraseSalt(account string) []byte {
	sum := sha256.Sum256([]byte(labelSalt + NormalizeAccount(account)))
	return sum[:argonSaltLen]
}

// NormalizeAccount returns the canonical form of a SIP account address used
// for comparisons and salts: surrounding space and a "sip:" or "sips:" scheme
// are removed and the address is lower-cased. The SIP Account API itself
// treats user and domain case-insensitively.
func NormalizeAccount(account string) string {
	a := strings.TrimSpace(account)
	for _, scheme := range []string{"sip:", "sips:"} {
		if len(a) >= len(scheme) && strings.EqualFold(a[:len(scheme)], scheme) {
			a = a[len(scheme):]
			break
		}
	}
	return strings.ToLower(a)
}

// SameAccount reports whether a and b name the same account once normalized
// with NormalizeAccount.
func SameAccount(a, b string) bool {
	return NormalizeAccount(a) == NormalizeAccount(b)
}

func (k *Key) idHash() [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(labelKeyID))
	h.Write(k[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// ID returns the key id written into envelope headers: the first 8 lowercase
// hex digits (32 bits) of SHA-256("chatsync/seal key id v1\x00" || key). It
// is public and reveals nothing useful about the key.
func (k Key) ID() string {
	sum := k.idHash()
	return hex.EncodeToString(sum[:4])
}

// Fingerprint returns a short id for people to compare keys across devices,
// such as "3f2a-91bc-77d0": the first 12 hex digits of the same hash as ID,
// in groups of four. Its first eight digits are the key id, so a fingerprint
// can be matched against the headers of raw journal rows.
func (k Key) Fingerprint() string {
	sum := k.idHash()
	h := hex.EncodeToString(sum[:6])
	return h[0:4] + "-" + h[4:8] + "-" + h[8:12]
}

// String returns "seal.Key(<fingerprint>)"; it never shows key bytes.
func (k Key) String() string { return "seal.Key(" + k.Fingerprint() + ")" }

// GoString is like String, so %#v does not show key bytes either.
func (k Key) GoString() string { return k.String() }

// Format prints the redacted String for every verb, including %x and %v.
func (k Key) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

// LogValue makes log/slog print the fingerprint only.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalText refuses to serialize key material by accident (for example
// inside a JSON status document). Use Export.
func (k Key) MarshalText() ([]byte, error) {
	return nil, errors.New("seal: refusing to marshal key material; use seal.Export")
}

// Export line format: exportPrefix followed by unpadded base64url of
// key (32 bytes) || checksum (4 bytes).
const (
	exportPrefix   = "chatsync-key:v1:"
	exportChecksum = 4
)

// Export returns the key as one line of text for moving it to another device:
//
//	chatsync-key:v1:<48 characters of unpadded base64url>
//
// The base64url encodes the 32 key bytes followed by a 4-byte checksum, the
// first 4 bytes of SHA-256("chatsync/seal export checksum v1\x00" || key),
// so Import detects a mistyped or truncated line. The line is as secret as
// the key itself.
func Export(k Key) string {
	var buf [KeySize + exportChecksum]byte
	copy(buf[:], k[:])
	sum := exportSum(k)
	copy(buf[KeySize:], sum[:exportChecksum])
	s := exportPrefix + base64.RawURLEncoding.EncodeToString(buf[:])
	clear(buf[:])
	return s
}

func exportSum(k Key) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(labelExport))
	h.Write(k[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// ExportKeys returns keys, oldest first, as one line: Export's line with
// the key part of each key, joined by ".". A device set up with it can
// read everything sealed under any of them, and seals with the last.
func ExportKeys(keys []Key) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strings.TrimPrefix(Export(k), exportPrefix)
	}
	return exportPrefix + strings.Join(parts, ".")
}

// ImportKeys parses a line made by ExportKeys or Export, oldest key first.
func ImportKeys(line string) ([]Key, error) {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, line)
	if !strings.HasPrefix(s, exportPrefix) {
		_, err := Import(s) // its error says what the line is not
		return nil, err
	}
	var keys []Key
	for i, part := range strings.Split(strings.TrimPrefix(s, exportPrefix), ".") {
		k, err := Import(exportPrefix + part)
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("key %d of the line: %w", i+1, err)
			}
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Import parses a line made by Export. White space anywhere in the line is
// ignored, so a line wrapped by a mail program or pasted with a trailing
// newline still imports. Errors never echo the line.
func Import(line string) (Key, error) {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, line)
	if !strings.HasPrefix(s, exportPrefix) {
		if strings.HasPrefix(s, "chatsync-key") {
			return Key{}, errors.New("seal: import key: not a version 1 export line (it must start with \"" + exportPrefix + "\"); copy the output of \"chatsync key export\"")
		}
		return Key{}, errors.New("seal: import key: not an exported chatsync key (it must start with \"" + exportPrefix + "\"); copy the whole output of \"chatsync key export\"")
	}
	body := s[len(exportPrefix):]
	want := base64.RawURLEncoding.EncodedLen(KeySize + exportChecksum)
	if len(body) != want {
		return Key{}, fmt.Errorf("seal: import key: the key part has %d characters, want %d; the line was truncated or mistyped, copy it again", len(body), want)
	}
	buf, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return Key{}, fmt.Errorf("seal: import key: character %d of the key part is not valid; the line was mistyped, copy it again", int(ce)+1)
		}
		return Key{}, errors.New("seal: import key: the key part is not valid base64url; copy the line again")
	}
	defer clear(buf)
	var k Key
	copy(k[:], buf[:KeySize])
	sum := exportSum(k)
	if subtle.ConstantTimeCompare(sum[:exportChecksum], buf[KeySize:]) != 1 {
		clear(k[:])
		return Key{}, errors.New("seal: import key: checksum mismatch: the line was mistyped or damaged; copy it again")
	}
	return k, nil
}

// equal reports whether a and b are the same key, in constant time.
func (k *Key) equal(o *Key) bool {
	return subtle.ConstantTimeCompare(k[:], o[:]) == 1
}
