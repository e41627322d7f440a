package seal

import (
	"errors"
	"fmt"
)

// Open failure categories. Every error returned by [Keyring.Open] matches
// exactly one of ErrBadFormat, ErrUnknownKey, ErrAuth, ErrBadEntry or
// ErrForeignAccount under [errors.Is], so a caller can count skipped entries
// by reason. The finer sentinels ErrTooLarge, ErrUnsupportedVersion,
// ErrBadBase64 and ErrTruncated also match ErrBadFormat.
var (
	// ErrBadFormat means the envelope is not a well-formed chatsync
	// envelope: wrong prefix, bad key id, bad base64, too short or too
	// large, or (behind a valid authenticator) a cs2 or cs3 plaintext that
	// is not valid DEFLATE data (for cs3: followed by only zero bytes) or
	// inflates beyond MaxPlaintextSize.
	ErrBadFormat = errors.New("seal: malformed envelope")

	// ErrTooLarge means the envelope (or, for Seal, the sealed entry)
	// exceeds MaxEnvelopeSize, or the plaintext exceeds MaxPlaintextSize
	// (for Open: a cs2 or cs3 plaintext inflates beyond it). It matches
	// ErrBadFormat.
	ErrTooLarge error = &subError{"seal: envelope too large", ErrBadFormat}

	// ErrUnsupportedVersion means the envelope prefix names a format this
	// version of chatsync does not know. It matches ErrBadFormat.
	ErrUnsupportedVersion error = &subError{"seal: unsupported envelope format", ErrBadFormat}

	// ErrBadBase64 means the envelope payload is not padded standard base64
	// without whitespace. It matches ErrBadFormat.
	ErrBadBase64 error = &subError{"seal: envelope payload is not valid base64", ErrBadFormat}

	// ErrTruncated means the payload is too short to hold a nonce and an
	// authenticator. A box cut inside its ciphertext cannot be told apart
	// from tampering and is reported as ErrAuth. It matches ErrBadFormat.
	ErrTruncated error = &subError{"seal: envelope truncated", ErrBadFormat}

	// errCorrupt means an authentic cs2 box holds data that is not one
	// complete DEFLATE stream, or a cs3 box one that is not such a stream
	// followed by zero bytes; only a buggy or hostile holder of the key
	// can make one. It matches ErrBadFormat. It is not exported: callers
	// only count it as a malformed envelope.
	errCorrupt error = &subError{"seal: compressed plaintext is corrupt", ErrBadFormat}

	// ErrUnknownKey means the envelope names a key id that is not in the
	// keyring. The returned error is an *UnknownKeyError naming the id.
	ErrUnknownKey = errors.New("seal: unknown key id")

	// ErrAuth means the box did not authenticate under the key its header
	// names: the ciphertext or header was modified, or (with negligible
	// probability) another key shares the 32-bit key id. secretbox cannot
	// tell a wrong key from tampering.
	ErrAuth = errors.New("seal: envelope does not authenticate (tampered, or sealed with a different key)")

	// ErrBadEntry means the box authenticated but its plaintext is not a
	// valid version 1 entry (bad JSON, unknown op, empty or long msgid, a
	// put without a message object, ...). Seal returns it for invalid input.
	ErrBadEntry = errors.New("seal: invalid entry")

	// ErrForeignAccount means the entry authenticated and is well formed,
	// but belongs to another account than the one expected. The returned
	// error is a *ForeignAccountError.
	ErrForeignAccount = errors.New("seal: entry belongs to another account")

	// ErrKeyExists is returned by AddKey when the key file already holds the
	// key.
	ErrKeyExists = errors.New("seal: key already in key file")
)

// subError is a sentinel that also matches a broader category.
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Unwrap() error { return e.parent }

// UnknownKeyError reports an envelope sealed with a key this keyring lacks.
type UnknownKeyError struct {
	KeyID string // the key id from the envelope header
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("seal: entry sealed with unknown key id %s: import that key from another device "+
		"(run \"chatsync key export\" there and \"chatsync key import\" here; \"chatsync key fingerprint\" lists the ids)", e.KeyID)
}

// Is reports whether target is ErrUnknownKey.
func (e *UnknownKeyError) Is(target error) bool { return target == ErrUnknownKey }

// ForeignAccountError reports an authentic entry written for another account.
type ForeignAccountError struct {
	Got  string // account named inside the entry
	Want string // account the caller expected
}

func (e *ForeignAccountError) Error() string {
	return fmt.Sprintf("seal: entry belongs to account %q, not %q", e.Got, e.Want)
}

// Is reports whether target is ErrForeignAccount.
func (e *ForeignAccountError) Is(target error) bool { return target == ErrForeignAccount }
