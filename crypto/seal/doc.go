// Package seal encrypts chatsync journal entries and manages the keys that
// do it.
//
// The journal server stores opaque strings. Each one is an envelope made by
// [Keyring.Seal] and read back by [Keyring.Open] on the user's other
// devices, which hold the same keys. Nothing else ever holds a key.
//
// # Envelope
//
// There are three format versions. Seal writes version 3, "cs3"; Open
// reads all three, so every entry written before cs3 still opens, to the
// same Entry. In ABNF (RFC 5234):
//
//	envelope = version "." keyid "." payload
//	version  = "cs3"                ; format 3: the box holds DEFLATE(json), zero padded
//	         / "cs2"                ; format 2: the box holds DEFLATE(json); read only
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
//	content  = DEFLATE(plaintext) || padding  ; cs3: padding is zero bytes (see Padding)
//	content  = DEFLATE(plaintext)             ; cs2: raw DEFLATE (RFC 1951), no zlib or gzip wrapper
//	content  = plaintext                      ; cs1
//
// so that header is "cs3." || keyid || "." for cs3, and so on. A cs2
// content is exactly one DEFLATE stream, and a cs3 content one DEFLATE
// stream followed by nothing but zero bytes: Open refuses one that is cut
// short, is followed by other bytes or is otherwise corrupt (ErrBadFormat).
// Any DEFLATE encoder may write it; Seal uses compress/flate at its
// default level. The formats differ in nothing else. cs2 exists because
// journal rows must be small: the server builds each page of up to 5000
// rows in memory and fails on pages of more than about 20 MB, and
// compressing makes an ordinary chat row about 40% smaller. cs3 exists
// because the server sees each row's length, which without padding tells
// nearly every message's length to within 3 bytes.
//
// # Padding
//
// Seal pads a cs3 content with zero bytes so that the payload, the base64
// after the second ".", is exactly B bytes long, B the smallest bucket
// that holds the unpadded box:
//
//	B = 256, 512, 768, ..., 4096       steps of 256
//	    5120, 6144, 7168, 8192,        four to each doubling,
//	    10240, ..., 3670016            a quarter of the power of two below apart
//	    4194288                        the largest that MaxEnvelopeSize holds after the 13-byte header
//
// Every B is a multiple of 4, so the box is exactly 3B/4 bytes (the nonce,
// 3B/4 - 40 bytes of content, the 16-byte authenticator) and the payload
// ends in no "=". An entry seals exactly when it did as cs2: one whose
// unpadded envelope would exceed MaxEnvelopeSize is refused (ErrTooLarge),
// any other fits a bucket. Open checks only that the padding is zero
// bytes, not that B is a bucket, so the buckets can change without a new
// format.
//
// The steps of 256 bytes are for ordinary messages: 1000 chat messages of
// 1 to 600 bytes of body make three row sizes (781, 1037 and 1293 bytes)
// where cs2 made 125, and cost 15% more bytes (930 instead of 808 bytes a
// row on average). Above 4096 bytes, four sizes to each doubling leave
// few sizes for the rare large rows and cost at most a quarter more: a
// picture of the default max_message_bytes (512 KiB) stays a row under
// 1 MiB. The last bucket takes the rows between 3.5 MiB and the limit.
//
// An envelope is at most [MaxEnvelopeSize] (4 MiB) bytes; Open refuses
// larger ones before decoding anything, and Seal never makes one. The
// plaintext is at most [MaxPlaintextSize] (17 MiB: the largest message the
// daemon accepts, 16 MiB, with room for the entry around it); Seal refuses
// a larger entry, and Open stops inflating a cs2 or cs3 content, and
// refuses it
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
// Its "v" is 1 in every format: the entry is the same, only its packing
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
// different key: a cs2 box relabelled cs3 (to pass its padding check), a
// cs3 box relabelled cs2 or any other relabelling fails with ErrAuth and
// is never inflated or parsed. The derivation also keeps the master key
// from ever being used directly, so other uses of it later cannot collide
// with this one.
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
// payload and when and from which address it was written. For cs3 the
// length is one of the buckets: it tells an ordinary message from a long
// one, a picture's row from a chat message's, but not one ordinary
// message from another. (For a cs2 or cs1 row it is the length of the
// content plus 40 bytes, base64-encoded, to within 3 bytes.) It never sees
// a msgid, an account inside the plaintext, a peer or a body. The key id
// is a 32-bit hash of the key: it tells which of the user's keys sealed an
// entry and nothing about the key itself. (For a passphrase-derived key it
// lets a guesser check a guess without a ciphertext, but each guess costs
// a 64 MiB Argon2id run either way.) Timing is not hidden, nor how many
// rows a device writes.
//
// Compressing before encrypting makes the length depend on the content,
// not only on its size: how well a message compresses says a little about
// how repetitive it is. Compression attacks (CRIME, BREACH) need an
// attacker who can put chosen text into the same compressed plaintext as a
// secret and watch the length change over many tries. An entry holds one
// message, and its other fields (account, msgid, times, the writing
// device's id) are no secret from a peer who writes text into it, except
// the device id, which is not worth guessing. So the leak was accepted for
// rows small enough that the server can page them. Padding narrows it
// further: a change in the compressed length shows only where it moves a
// row across a bucket edge.
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
// refine ErrBadFormat. A cs2 or cs3 content that is not valid DEFLATE
// data, or is followed by anything but (for cs3) zero bytes, is
// ErrBadFormat; one that inflates beyond MaxPlaintextSize is ErrTooLarge.
// A chatsync that reads cs1 and cs2 only reports cs3 rows as
// ErrUnsupportedVersion; its sync engine keeps them as not applied
// ("written by a newer chatsync") and applies them once it is upgraded.
package seal
