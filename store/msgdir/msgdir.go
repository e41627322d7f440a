// Package msgdir reads and writes the message store: a directory of JSON
// files, one message per file, that users and chat programs write and that
// chatsync keeps identical on every device (SPEC §6).
//
// The package knows the rules of the store and nothing of the journal:
// which names are ignored, what makes a file a valid message, how a message
// is named on disk when it arrives from another device, how it is written so
// that no reader ever sees half a file, and how its content is hashed so two
// devices that hold the same message agree that they do.
package msgdir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxMsgIDBytes is the longest msgid a message may carry (SPEC §6).
const MaxMsgIDBytes = 256

// Reasons a file is not a message. The watcher reports them per file in
// status until the file is fixed; errors.Is tells them apart.
var (
	ErrTooLarge = errors.New("file is larger than max_message_bytes")
	ErrNotJSON  = errors.New("file is not a single JSON object")
	ErrNoMsgID  = errors.New(`file has no "msgid" string (or it is empty or longer than 256 bytes)`)
)

// Message is one valid message file, parsed.
type Message struct {
	// MsgID identifies the message within the account.
	MsgID string
	// RemoteURI is the "remote_uri" field if the message has one; it names
	// the conversation folder for incoming messages.
	RemoteURI string
	// Canonical is the message object as compact JSON with sorted keys and
	// numbers kept as written. It is what is replicated and what Hash covers,
	// so formatting differences between devices are not new versions.
	Canonical []byte
	// Hash is the SHA-256 of Canonical, hex encoded.
	Hash string
}

// Parse validates data as a message file: one JSON object, at most maxBytes
// long, with a non-empty "msgid" string of at most MaxMsgIDBytes bytes.
// Every other field is kept as it is.
func Parse(data []byte, maxBytes int64) (Message, error) {
	if maxBytes > 0 && int64(len(data)) > maxBytes {
		return Message{}, fmt.Errorf("%w (%d > %d bytes)", ErrTooLarge, len(data), maxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Message{}, ErrNotJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return Message{}, ErrNotJSON // trailing data after the object
	}
	id, ok := obj["msgid"].(string)
	if !ok || id == "" || len(id) > MaxMsgIDBytes {
		return Message{}, ErrNoMsgID
	}
	canonical, err := json.Marshal(obj)
	if err != nil {
		return Message{}, ErrNotJSON
	}
	remote, _ := obj["remote_uri"].(string)
	return Message{MsgID: id, RemoteURI: remote, Canonical: canonical, Hash: HashBytes(canonical)}, nil
}

// HashBytes returns the hex SHA-256 of b.
func HashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Ignored reports whether a file name is not a message by the store's rules:
// hidden names, editor and download leftovers, and anything not *.json.
func Ignored(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	for _, suffix := range []string{".tmp", ".part", ".swp", "~"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return !strings.HasSuffix(name, ".json")
}

// IgnoredDir reports whether a directory is skipped entirely (hidden ones,
// which is where editors and chatsync keep their temporary files).
func IgnoredDir(name string) bool { return strings.HasPrefix(name, ".") }

// maxNameBytes keeps every path element well below the 255-byte limit of
// common filesystems, with room for the ".json" suffix.
const maxNameBytes = 120

// SafeName turns s into a single path element that is safe on Linux, macOS
// and Windows: letters and digits of any script and "@._+-" are kept (a
// conversation with Элина or 李 is a directory you can read), and a name
// that would need anything else, is empty, starts with a dot or is too long
// becomes "h-" and a hash of s. A name must also be in Unicode's composed
// form (NFC), as the names written on most systems are; on macOS, whose
// older file system (HFS+) gives back every name decomposed, only names
// that read the same either way are kept, so that a name written is the
// name read. The mapping is deterministic per system.
func SafeName(s string) string {
	ok := s != "" && len(s) <= maxNameBytes && s[0] != '.' && utf8.ValidString(s) && stableName(s)
	for _, c := range s {
		if !ok {
			break
		}
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '@' || c == '.' || c == '_' || c == '+' || c == '-' ||
			c > unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.Is(unicode.Mn, c))
	}
	if ok && reservedOnWindows(s) {
		ok = false
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(sum[:16])
}

func reservedOnWindows(s string) bool {
	base := strings.ToUpper(strings.SplitN(s, ".", 2)[0])
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && base[3] >= '0' && base[3] <= '9' {
		return true
	}
	return strings.HasSuffix(s, ".")
}

// IncomingPath is where a message that arrives from another device is
// written, relative to the store: <conversation>/<name>.json, with the
// conversation named after remote_uri ("unknown" when there is none).
func IncomingPath(m Message) string {
	conv := "unknown"
	if remote := strings.TrimPrefix(strings.TrimPrefix(m.RemoteURI, "sip:"), "sips:"); remote != "" {
		conv = SafeName(remote)
	}
	return filepath.Join(conv, SafeName(m.MsgID)+".json")
}

// WriteAtomic writes data to root/rel so that readers see either the old
// file or the whole new one: it writes a hidden temporary file in the same
// directory (ignored by the watcher), syncs it, renames it into place and
// syncs the directory. A file it replaces keeps its permission bits; a new
// file gets mode 0600, missing directories mode 0700. A
// path that leaves the store or passes through a symbolic link, even one
// swapped in while it is written, is refused with ErrUnsafePath; a failed
// write leaves no temporary file behind.
func WriteAtomic(root, rel string, data []byte) error {
	elems, name, err := splitRel(rel)
	if err != nil {
		return err
	}
	r, err := openStore(root, true)
	if err != nil {
		return err
	}
	defer r.Close()
	d, _, err := openDir(r, elems, true, rel)
	if err != nil {
		return err
	}
	defer d.Close()
	mode, err := targetMode(d, name, rel)
	if err != nil {
		return err
	}
	tmp, _, err := createTemp(d, data, true, mode)
	if err != nil {
		return err
	}
	if err := d.Rename(tmp, name); err != nil {
		d.Remove(tmp)
		return err
	}
	return syncDir(d)
}

// Remove deletes root/rel if it exists and is a regular file inside the
// store, and syncs its directory.
func Remove(root, rel string) error {
	elems, name, err := splitRel(rel)
	if err != nil {
		return err
	}
	r, err := openStore(root, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer r.Close()
	d, _, err := openDir(r, elems, false, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if err := removeRegular(d, name, rel); err != nil {
		return err
	}
	return syncDir(d)
}
