package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Key file format.
const (
	keyLineTag     = "chatsync-key"
	keyLineVersion = "v1"

	// MaxKeyFileSize bounds what LoadKeyring reads.
	MaxKeyFileSize = 64 << 10

	keyFileHeader = "# chatsync key file. Keep it secret: anyone with it can read your synced messages.\n" +
		"# One \"chatsync-key v1 <base64>\" line per key, oldest first; the last key seals, every key opens.\n"
)

// GenerateKeyFile creates a key file at path holding one new random key and
// returns the key. See CreateKeyFile for how the file is made.
func GenerateKeyFile(path string) (Key, error) {
	k, err := GenerateKey()
	if err != nil {
		return Key{}, err
	}
	if err := CreateKeyFile(path, k); err != nil {
		return Key{}, err
	}
	return k, nil
}

// CreateKeyFile creates a key file at path holding k, for example a key
// from DeriveKey or Import. Missing parent directories are created with mode
// 0700; the file gets mode 0600. It never overwrites: if path exists it
// returns an error matching fs.ErrExist. The file appears complete or not at
// all: it is written to a temporary file in the same directory, synced, and
// hard-linked into place (or, where the file system has no hard links,
// created with O_EXCL and written in place).
func CreateKeyFile(path string, k Key) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("seal: key file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return fmt.Errorf("seal: create key file directory: %w", err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return existsError(abs)
	}
	content := appendKeyLine([]byte(keyFileHeader), k, "created")
	defer clear(content)

	tmp, err := writeTemp(abs, content)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, abs); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError(abs)
		}
		// No hard links here (FAT, some network file systems): create
		// exclusively and write in place.
		if err := writeExclusive(abs, content); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(abs))
}

func existsError(abs string) error {
	return fmt.Errorf("seal: key file %s already exists; refusing to overwrite it (move it away, or use \"chatsync key import\" to add a key to it): %w", abs, fs.ErrExist)
}

// AppendKey adds a new random key to the existing key file at path and
// returns it. The new key seals from then on; the older keys still open
// entries sealed with them, so nothing has to be uploaded again. Other
// devices need the new key (chatsync key export / import) to read entries
// sealed with it.
func AppendKey(path string) (Key, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Key{}, fmt.Errorf("seal: key file %s does not exist; create it with \"chatsync key generate --out %s\"", path, shellQuote(path))
		}
		return Key{}, fmt.Errorf("seal: key file: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return Key{}, err
	}
	if err := AddKey(path, k); err != nil {
		return Key{}, err
	}
	return k, nil
}

// AddKey appends k as the newest key of the key file at path, keeping its
// existing lines, or creates the file with CreateKeyFile if it does not
// exist. If the file already holds k it returns an error matching
// ErrKeyExists and changes nothing. The file is replaced atomically (temp
// file, fsync, rename, fsync of the directory). Concurrent AddKey calls on
// one file may lose a key; the CLI runs one at a time.
func AddKey(path string, k Key) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("seal: key file %s: %w", path, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real // replace the target, not the link
	} else if errors.Is(err, fs.ErrNotExist) {
		return CreateKeyFile(abs, k)
	}
	data, err := readKeyFile(abs)
	if err != nil {
		return err
	}
	defer clear(data)
	keys, err := parseKeyFile(data, abs)
	if err != nil {
		return err
	}
	for i := range keys {
		if keys[i].equal(&k) {
			return fmt.Errorf("%w: %s already holds key %s", ErrKeyExists, abs, k.Fingerprint())
		}
	}
	if _, err := NewKeyring(append(keys, k)...); err != nil {
		return fmt.Errorf("seal: add key to %s: %w", abs, err)
	}
	content := bytes.Clone(data)
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	content = appendKeyLine(content, k, "added")
	defer clear(content)
	tmp, err := writeTemp(abs, content)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("seal: replace key file: %w", err)
	}
	return syncDir(filepath.Dir(abs))
}

// LoadKeyring reads the key file at path. On Unix it refuses a file that
// group or other users may access, with an error that holds the chmod
// command that fixes it; Windows has no such mode bits and skips the check.
//
// The key file is UTF-8 text. Each line is one of:
//
//	chatsync-key v1 <padded standard base64 of the 32 key bytes>
//	# a comment
//	(an empty line)
//
// Keys are listed oldest first; the last one seals. Leading and trailing
// white space and CRLF line ends are accepted.
func LoadKeyring(path string) (*Keyring, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	data, err := readKeyFile(abs)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	keys, err := parseKeyFile(data, abs)
	if err != nil {
		return nil, err
	}
	kr, err := NewKeyring(keys...)
	for i := range keys {
		clear(keys[i][:])
	}
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", abs, err)
	}
	return kr, nil
}

// readKeyFile opens abs, checks its type, mode and size, and reads it.
func readKeyFile(abs string) ([]byte, error) {
	f, err := os.Open(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("seal: key file %s does not exist; create one with \"chatsync key generate --out %s\" or import one with \"chatsync key import\": %w", abs, shellQuote(abs), fs.ErrNotExist)
		}
		return nil, fmt.Errorf("seal: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", abs)
	}
	if err := checkMode(abs, fi.Mode()); err != nil {
		return nil, err
	}
	if fi.Size() > MaxKeyFileSize {
		return nil, fmt.Errorf("seal: key file %s is %d bytes, more than the %d a key file can be; is it the right file?", abs, fi.Size(), MaxKeyFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	if len(data) > MaxKeyFileSize {
		clear(data)
		return nil, fmt.Errorf("seal: key file %s is larger than %d bytes; is it the right file?", abs, MaxKeyFileSize)
	}
	return data, nil
}

// checkMode refuses key files that other users may read or write.
func checkMode(abs string, mode fs.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("seal: key file %s is accessible by other users (mode %04o); restrict it with: chmod 600 %s", abs, perm, shellQuote(abs))
	}
	return nil
}

// parseKeyFile parses key file text. Errors name the line but never echo
// its content, which may be key material.
func parseKeyFile(data []byte, name string) ([]Key, error) {
	var keys []Key
	for n, line := range bytes.Split(data, []byte("\n")) {
		lineNo := n + 1
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := bytes.Fields(line)
		switch {
		case bytes.HasPrefix(line, []byte(exportPrefix)):
			return nil, fmt.Errorf("seal: key file %s line %d is an export line; add it with \"chatsync key import\" instead of editing the file", name, lineNo)
		case len(f) == 0 || string(f[0]) != keyLineTag:
			return nil, fmt.Errorf("seal: key file %s line %d is neither a \"chatsync-key v1 ...\" line nor a # comment", name, lineNo)
		case len(f) < 2 || string(f[1]) != keyLineVersion:
			return nil, fmt.Errorf("seal: key file %s line %d: unsupported key line version (want %q); upgrade chatsync or fix the line", name, lineNo, keyLineVersion)
		case len(f) != 3:
			return nil, fmt.Errorf("seal: key file %s line %d: want \"chatsync-key v1 <base64 key>\"", name, lineNo)
		}
		var k Key
		buf := make([]byte, base64.StdEncoding.DecodedLen(len(f[2])))
		nb, err := base64.StdEncoding.Strict().Decode(buf, f[2])
		if err != nil || nb != KeySize {
			clear(buf)
			return nil, fmt.Errorf("seal: key file %s line %d: the key is not %d bytes of standard base64; the file is damaged", name, lineNo, KeySize)
		}
		copy(k[:], buf)
		clear(buf)
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("seal: key file %s holds no key; generate one with \"chatsync key generate\" or import one with \"chatsync key import\"", name)
	}
	return keys, nil
}

// appendKeyLine appends a comment and the key line for k to b.
func appendKeyLine(b []byte, k Key, verb string) []byte {
	b = fmt.Appendf(b, "# %s %s, fingerprint %s\n", verb, time.Now().UTC().Format(time.RFC3339), k.Fingerprint())
	b = append(b, keyLineTag+" "+keyLineVersion+" "...)
	b = base64.StdEncoding.AppendEncode(b, k[:])
	return append(b, '\n')
}

// writeTemp writes content to a new mode 0600 temporary file beside abs,
// syncs and closes it, and returns its name.
func writeTemp(abs string, content []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(abs), ".chatsync-key-*.tmp")
	if err != nil {
		return "", fmt.Errorf("seal: write key file: %w", err)
	}
	name := f.Name()
	if err := writeSyncClose(f, content); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func writeExclusive(abs string, content []byte) error {
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError(abs)
		}
		return fmt.Errorf("seal: create key file: %w", err)
	}
	if err := writeSyncClose(f, content); err != nil {
		os.Remove(abs)
		return err
	}
	return nil
}

func writeSyncClose(f *os.File, content []byte) error {
	// CreateTemp and OpenFile give 0600 or less; make sure of it.
	if runtime.GOOS != "windows" {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("seal: write key file: %w", err)
		}
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return fmt.Errorf("seal: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("seal: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("seal: write key file: %w", err)
	}
	return nil
}

// syncDir makes a rename or link in dir durable. Windows cannot sync a
// directory; there it does nothing.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("seal: sync key directory: %w", err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it holds anything beyond a
// conservative set of safe characters.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-+:@%,=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AddKeys adds to the key file at path the keys of an export line
// (ImportKeys) it lacks, and returns how many it added. The keys keep the
// exporter's order, the newest last, so the key that seals is the one the
// other device seals with; keys only this file held (a key made here by
// mistake) stay, before them. A file that does not exist is created.
func AddKeys(path string, keys []Key) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := CreateKeyFile(abs, keys[0]); err != nil {
			return 0, err
		}
		n, err := AddKeys(abs, keys)
		return n + 1, err
	}
	data, err := readKeyFile(abs)
	if err != nil {
		return 0, err
	}
	defer clear(data)
	have, err := parseKeyFile(data, abs)
	if err != nil {
		return 0, err
	}
	imported := func(k *Key) bool {
		for i := range keys {
			if keys[i].equal(k) {
				return true
			}
		}
		return false
	}
	var order []Key
	for i := range have {
		if !imported(&have[i]) {
			order = append(order, have[i])
		}
	}
	order = append(order, keys...)
	added := len(order) - len(have)
	same := len(order) == len(have)
	for i := 0; same && i < len(order); i++ {
		same = order[i].equal(&have[i])
	}
	if same {
		return 0, nil
	}
	if _, err := NewKeyring(order...); err != nil {
		return 0, fmt.Errorf("seal: add keys to %s: %w", abs, err)
	}
	content := []byte(keyFileHeader)
	for _, k := range order {
		content = appendKeyLine(content, k, "imported")
	}
	defer clear(content)
	tmp, err := writeTemp(abs, content)
	if err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, abs); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("seal: replace key file: %w", err)
	}
	return added, syncDir(filepath.Dir(abs))
}
