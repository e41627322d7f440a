// Package seal encrypts chatsync journal entries and manages the keys that
// do it.
//
// The journal server stores opaque strings. Each one is an envelope made by
// [Keyring.Seal] and read back by [Keyring.Open] on the user's other
// devices, which hold the same keys. Nothing else ever holds a key.
//
// # Envelope
//
// There are two format versions. Seal writes version 2, "cs2"; Open reads
// both, so every entry written before cs2 still opens, to the same Entry.
// In ABNF (RFC 5234):
//
//	envelope = version "." keyid "." payload
//	version  = "cs2"                ; format 2: the box holds DEFLATE(json)
//	         / "cs1"                ; format 1: the box holds json; read only
//	keyid    = 8LOWHEX              ; see Key.ID
//	payload  = 1*base64char         ; padded standard base64 (RFC 4648 §4), no white space
//	LOWHEX   = DIGIT / %x61-66      ; 0-9 a-f
//
// payload decodes to
//
//	nonce (24 bytes from crypto/rand) || secretbox.Seal(content, nonce, entryKey)
//
// where secretbox is NaCl's XSalsa20-Poly1305 (golang.org/x/crypto/nacl/secretbox),
// header is the envelope up to and including the second ".", and
//
//	keyid    = hex(SHA-256("chatsync/seal key id v1\x00" || key)[0:4])
//	entryKey = HKDF-SHA256(ikm = key, salt = empty,
//	                       info = "chatsync/seal entry key v1\x00" || header)
//	content  = DEFLATE(plaintext)   ; cs2: raw DEFLATE (RFC 1951), no zlib or gzip wrapper
//	content  = plaintext            ; cs1
//
// so that header is "cs2." || keyid || "." for cs2 and "cs1." || keyid ||
// "." for cs1. A cs2 content is exactly one DEFLATE stream: Open refuses
// one that is cut short, is followed by more bytes or is otherwise corrupt
// (ErrBadFormat). Any DEFLATE encoder may write it; Seal uses
// compress/flate at its default level. The format is otherwise unchanged:
// cs2 exists because journal rows must be small. The server builds each
// page of up to 5000 rows in memory and fails on pages of more than about
// 20 MB; compressing makes an ordinary chat row about 40% smaller.
//
// An envelope is at most [MaxEnvelopeSize] (4 MiB) bytes; Open refuses
// larger ones before decoding anything, and Seal never makes one. The
// plaintext is at most [MaxPlaintextSize] (17 MiB: the largest message the
// daemon accepts, 16 MiB, with room for the entry around it); Seal refuses
// a larger entry, and Open stops inflating a cs2 content, and refuses it
// (ErrTooLarge), as soon as it exceeds that, so a small envelope that
// inflates to gigabytes (a zip bomb) costs no more memory than the limit.
// Only a holder of the key can make one: the box is authenticated before
// anything is inflated.
//
// The plaintext is a JSON object (the message member is absent for a
// delete):
//
//	{"v":1,"op":"put","msgid":"...","account":"alice@example.com",
//	 "device":"urn:uuid:5f0c...","time":"2026-01-02T03:04:05.123456789Z",
//	 "message":{...}}
//
// Its "v" is 1 in both formats: the entry is the same, only its packing
// differs.
//
// # Binding the header
//
// secretbox has no associated data, so the header is bound by deriving the
// box key from the master key and the exact header (entryKey above) rather
// than by repeating it inside the plaintext. A box therefore opens only
// under the header it was sealed with: a changed key id selects another key
// or none (ErrAuth or ErrUnknownKey), and a box cannot be relabelled as
// another format version, present or future, because that version derives a
// different key: a cs1 box relabelled cs2, or a cs2 box relabelled cs1,
// fails with ErrAuth and is never inflated or parsed. The derivation also keeps the master key from ever being
// used directly, so other uses of it later cannot collide with this one.
// XChaCha20-Poly1305 with real associated data would do the same, but the
// product specification fixes secretbox.
//
// What binding does not cover is left to the layers that know more: the
// account inside the plaintext must match the account the entry was fetched
// for (Open checks it, so a row moved to another account that shares the key
// is refused with ErrForeignAccount), and a replayed or reordered old entry
// is authentic; the sync engine orders versions of a message by their time
// and device.
//
// # Threat model
//
// The server, and anyone who reads its database or the traffic to it, sees
// for every entry only the format version, the key id, the length of the
// ciphertext (the length of the content, the compressed plaintext for cs2,
// plus 40 bytes, base64-encoded) and when and from which address it was
// written. It never
// sees a msgid, an account inside the plaintext, a peer or a body. The key id is a 32-bit hash of the key: it
// tells which of the user's keys sealed an entry and nothing about the key
// itself. (For a passphrase-derived key it lets a guesser check a guess
// without a ciphertext, but each guess costs a 64 MiB Argon2id run either
// way.) Lengths and timing are not hidden.
//
// Compressing before encrypting makes the length depend on the content,
// not only on its size: how well a message compresses says a little about
// how repetitive it is. Compression attacks (CRIME, BREACH) need an
// attacker who can put chosen text into the same compressed plaintext as a
// secret and watch the length change over many tries. An entry holds one
// message, and its other fields (account, msgid, times, the writing
// device's id) are no secret from a peer who writes text into it, except
// the device id, which is not worth guessing. So the leak was accepted for
// rows small enough that the server can page them.
//
// Nonces are 24 random bytes from crypto/rand for every entry, never derived
// from a msgid or a counter that a restore could reset. With 192-bit nonces
// the chance that any two of 2^32 entries under one key share a nonce is
// below 2^-128, so keys need no rotation for nonce reasons. Two seals of the
// same entry give different envelopes.
//
// Why secretbox: it is the NaCl construction the specification names,
// misuse resistant enough with random nonces, needs no cgo, and its
// authentication is checked before any plaintext is returned. Its advice to
// split large messages into 16 KiB chunks is about streaming; entries are
// bounded (4 MiB of envelope, 17 MiB of plaintext) and held in memory
// whole, so they are sealed in one box.
//
// A compromised device has the keys: rotating (AppendKey) protects only
// entries written after the other devices stop trusting the old key, and
// reading old entries needs the old key, which rotation keeps.
//
// # Keys
//
// A [Key] is 32 bytes, either random ([GenerateKey]) or derived from a
// passphrase ([DeriveKey]: Argon2id, t=3, m=64 MiB, p=4, the RFC 9106
// low-memory profile, with a 16-byte salt bound to the lower-cased account
// address so that every device of the account that types the same
// passphrase derives the same key).
//
// A key file holds one or more keys, oldest first; the newest seals and every
// key opens, so a key can be rotated without uploading anything again. The
// format is UTF-8 text, one item per line:
//
//	# chatsync key file. Keep it secret: ...
//	# created 2026-01-02T03:04:05Z, fingerprint 3f2a-91bc-77d0
//	chatsync-key v1 <padded standard base64 of the 32 key bytes>
//
// Lines starting with "#" and empty lines are comments. [GenerateKeyFile]
// and [CreateKeyFile] create a file with mode 0600 (parents 0700) and never
// overwrite one; [AppendKey] and [AddKey] add a key by atomic replacement;
// [LoadKeyring] refuses a file that other users may access and says which
// chmod command fixes it (not on Windows, which has no such mode bits).
//
// [Export] writes a key as one line, "chatsync-key:v1:" followed by
// unpadded base64url of the key and a 4-byte checksum, to copy to another
// device; [Import] reads it back and detects typos. [ExportKeys] puts every
// key of a key file in one such line (the key parts joined by "."), so a
// device set up after a rotation reads the older history too, and
// [AddKeys] adds them keeping the exporter's newest last. [Key.Fingerprint] gives
// a short id such as "3f2a-91bc-77d0" to compare keys between devices; its
// first 8 hex digits are the key id seen in envelopes.
//
// Keys and Keyrings print as their fingerprints under fmt and log/slog and
// refuse to be marshalled as text, and no error message holds key material.
// Buffers that held keys or plaintext are cleared where practical; Go's
// garbage collector may still leave copies in memory.
//
// # Errors
//
// Every error from Open matches exactly one of [ErrBadFormat],
// [ErrUnknownKey], [ErrAuth], [ErrBadEntry] and [ErrForeignAccount] under
// errors.Is, so the sync engine can count skipped entries by reason.
// [ErrTooLarge], [ErrUnsupportedVersion], [ErrBadBase64] and [ErrTruncated]
// refine ErrBadFormat. A cs2 content that is not valid DEFLATE data is
// ErrBadFormat; one that inflates beyond MaxPlaintextSize is ErrTooLarge.
// A chatsync older than cs2 reports cs2 rows as ErrUnsupportedVersion.
package seal
