package seal

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// A Keyring holds one or more keys, oldest first. The newest key seals; every
// key opens. A Keyring is safe for concurrent use; it is never modified after
// it is made. Make one with NewKeyring or LoadKeyring: the zero Keyring
// holds no key, so Seal fails on it, Open reports every key id as unknown
// and Current panics.
type Keyring struct {
	keys []ringKey // oldest first; never empty in a valid Keyring
}

type ringKey struct {
	key Key
	id  string
	v1  boxKey // format cs1: opens only
	v2  boxKey // format cs2: opens only
	v3  boxKey // format cs3: seals and opens
}

// boxKey returns rk's box key for the envelope format version, one that
// Open reads. Each format has its own, derived for its header, so that a
// box cannot be relabelled as another format.
func (rk *ringKey) boxKey(version string) *boxKey {
	switch version {
	case formatV1:
		return &rk.v1
	case formatV2:
		return &rk.v2
	}
	return &rk.v3
}

// boxKey is the secretbox key of one key for one envelope format.
type boxKey struct {
	header string   // envelope prefix up to and including the final dot
	key    [32]byte // HKDF of the master key bound to header; see deriveEntryKey
}

func newBoxKey(k *Key, format, id string) boxKey {
	header := format + "." + id + "."
	return boxKey{header: header, key: deriveEntryKey(k, header)}
}

// NewKeyring returns a keyring of the given keys, oldest first: the last key
// seals. It refuses an empty list and two keys with the same key id.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: keyring needs at least one key")
	}
	kr := &Keyring{keys: make([]ringKey, 0, len(keys))}
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		id := k.ID()
		if j, ok := seen[id]; ok {
			if k.equal(&keys[j]) {
				return nil, fmt.Errorf("seal: keys %d and %d are the same key (%s); remove one", j+1, i+1, k.Fingerprint())
			}
			return nil, fmt.Errorf("seal: keys %d and %d share the key id %s; remove one of them", j+1, i+1, id)
		}
		seen[id] = i
		kr.keys = append(kr.keys, ringKey{key: k, id: id,
			v1: newBoxKey(&k, formatV1, id), v2: newBoxKey(&k, formatV2, id), v3: newBoxKey(&k, formatV3, id)})
	}
	return kr, nil
}

// deriveEntryKey returns the secretbox key for envelopes with the given
// header: HKDF-SHA256(ikm=key, salt=nil, info=label||header). Binding the
// header (format version and key id) into the key means a box opens only
// under the exact header it was sealed under, although secretbox has no
// associated data.
func deriveEntryKey(k *Key, header string) [32]byte {
	out, err := hkdf.Key(sha256.New, k[:], nil, labelEntryKey+header, 32)
	if err != nil {
		// Only possible for an output longer than 255*32 bytes.
		panic("seal: hkdf: " + err.Error())
	}
	var ek [32]byte
	copy(ek[:], out)
	clear(out)
	return ek
}

// Len returns the number of keys in the keyring.
func (k *Keyring) Len() int { return len(k.keys) }

// Keys returns a copy of the keys, oldest first. The last one seals.
func (k *Keyring) Keys() []Key {
	out := make([]Key, len(k.keys))
	for i := range k.keys {
		out[i] = k.keys[i].key
	}
	return out
}

// Current returns the key that seals: the newest one.
func (k *Keyring) Current() Key { return k.keys[len(k.keys)-1].key }

// Fingerprints returns the fingerprint of every key, oldest first.
func (k *Keyring) Fingerprints() []string {
	out := make([]string, len(k.keys))
	for i := range k.keys {
		out[i] = k.keys[i].key.Fingerprint()
	}
	return out
}

func (k *Keyring) lookup(id string) *ringKey {
	for i := range k.keys {
		if k.keys[i].id == id {
			return &k.keys[i]
		}
	}
	return nil
}

// String returns the fingerprints of the keys, newest marked as sealing.
// It never shows key bytes.
func (k Keyring) String() string {
	var b strings.Builder
	b.WriteString("seal.Keyring{")
	for i := range k.keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.keys[i].key.Fingerprint())
		if i == len(k.keys)-1 {
			b.WriteString(" (seals)")
		}
	}
	b.WriteString("}")
	return b.String()
}

// GoString is like String.
func (k Keyring) GoString() string { return k.String() }

// Format prints the redacted String for every verb. It has a value receiver
// so that printing a Keyring value, not only a pointer, is redacted too.
func (k Keyring) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

// LogValue makes log/slog print the redacted String.
func (k Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }
