package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/secretbox"
)

// Format constants.
const (
	// formatV1 is the envelope prefix of format version 1: the box holds
	// the entry JSON. Open still reads it; Seal no longer writes it.
	formatV1 = "cs1"

	// formatV2 is the envelope prefix of format version 2: the box holds
	// the entry JSON compressed with raw DEFLATE. Open still reads it;
	// Seal no longer writes it.
	formatV2 = "cs2"

	// formatV3 is the envelope prefix of format version 3: the box holds
	// the raw DEFLATE stream of cs2 followed by zero bytes that pad the
	// payload to a bucket size (see payloadBucket). Seal writes it.
	formatV3 = "cs3"

	// MaxEnvelopeSize is the largest envelope, in bytes, that Open accepts
	// and Seal produces. Open checks it before decoding anything. It
	// matches the sync engine's 4 MiB upload batch, so that every entry
	// fits in one request.
	MaxEnvelopeSize = 4 << 20

	// MaxPlaintextSize is the largest entry JSON, in bytes, that Seal
	// accepts and that a cs2 or cs3 plaintext may inflate to in Open; Open
	// stops inflating, and refuses the envelope, as soon as it is exceeded,
	// so a small envelope cannot make it allocate more (a "zip bomb"). It
	// is the largest message the daemon accepts from another device (16
	// MiB of JSON, the sync engine's maxIncomingBytes and the largest
	// max_message_bytes) plus 1 MiB for the entry fields around it. Such a
	// message seals only if it compresses into MaxEnvelopeSize. A cs1
	// plaintext is bounded by MaxEnvelopeSize already.
	MaxPlaintextSize = 17 << 20

	// MaxMsgIDLen is the largest msgid, in bytes.
	MaxMsgIDLen = 256

	nonceSize  = 24
	keyIDLen   = 8
	minPayload = nonceSize + secretbox.Overhead
	entryV1    = 1
	timeLayout = "2006-01-02T15:04:05.000000000Z07:00" // RFC 3339 with nanoseconds
	urnUUID    = "urn:uuid:"

	// headerLenV3 is the length of a cs3 header, "cs3.<keyid>.".
	headerLenV3 = len(formatV3) + 1 + keyIDLen + 1

	// smallBucketStep and smallBucketsEnd are the payload buckets of
	// ordinary messages: multiples of 256 up to 4096, so that padding
	// costs them less than 256 bytes. Above that the buckets are powers of
	// two: rows that large are rare, few sizes hide them better, and the
	// padding still costs less than the row itself.
	smallBucketStep = 256
	smallBucketsEnd = 4096

	// maxPayloadV3 is the largest cs3 payload, the last bucket: the
	// longest multiple of 4 that fits into MaxEnvelopeSize after the
	// header. A multiple of 4 decodes to a whole number of 3-byte groups,
	// so a bucket-sized payload has no "=" padding.
	maxPayloadV3 = (MaxEnvelopeSize - headerLenV3) &^ 3
)

// Op is the operation an entry carries.
type Op string

// Operations.
const (
	OpPut    Op = "put"    // create or replace the message
	OpDelete Op = "delete" // remove the message
	// OpReport carries a device report (its Message is the report object,
	// its MsgID empty): what the writing device is and how far it has
	// applied the journal. It is not a message; chatsync before 0.3 skips
	// it as an unknown op.
	OpReport Op = "report"
)

// Entry is the plaintext of one journal entry.
type Entry struct {
	Op      Op
	MsgID   string          // the message id; never empty, at most MaxMsgIDLen bytes
	Account string          // the account address the entry belongs to
	Device  string          // the writing device, "urn:uuid:<uuid>"
	Time    time.Time       // when the writing device recorded the change
	Message json.RawMessage // the message object for OpPut, the report for OpReport; nil for OpDelete
	// Applied is the journal id up to which the writing device had
	// applied the journal when it sealed the entry (0: not said). Other
	// devices learn from it how far behind it is without a report.
	Applied int64
}

// wireEntry is the JSON form of Entry inside the box.
type wireEntry struct {
	V       int             `json:"v"`
	Op      Op              `json:"op"`
	MsgID   string          `json:"msgid"`
	Account string          `json:"account"`
	Device  string          `json:"device"`
	Time    string          `json:"time"`
	Message json.RawMessage `json:"message,omitempty"`
	Applied int64           `json:"applied,omitempty"`
}

// Seal encrypts e with the newest key and returns the envelope
//
//	cs3.<keyid>.<base64(nonce || secretbox(deflate(json) || zero bytes))>
//
// using a fresh random nonce. The zero bytes make the base64 payload
// exactly the smallest bucket that holds it (see payloadBucket), so that
// the server sees one of a few row sizes instead of each entry's size. It
// returns an error matching ErrBadEntry if e is not valid (see Open for
// the rules) and ErrTooLarge if the entry JSON would exceed
// MaxPlaintextSize or the envelope MaxEnvelopeSize.
func (k *Keyring) Seal(e Entry) (string, error) {
	if k == nil || len(k.keys) == 0 {
		return "", errors.New("seal: empty keyring; load one with LoadKeyring")
	}
	plain, err := encodeEntry(e)
	if err != nil {
		return "", err
	}
	defer clear(plain)
	return k.sealRaw(plain)
}

// encodeEntry validates e and returns its JSON, the plaintext of its
// envelope.
func encodeEntry(e Entry) ([]byte, error) {
	if err := validate(&e); err != nil {
		return nil, err
	}
	if len(e.Message) > MaxPlaintextSize {
		return nil, fmt.Errorf("%w: message is %d bytes, limit %d", ErrTooLarge, len(e.Message), MaxPlaintextSize)
	}
	w := wireEntry{
		V:       entryV1,
		Op:      e.Op,
		MsgID:   e.MsgID,
		Account: e.Account,
		Device:  e.Device,
		Time:    e.Time.UTC().Format(timeLayout),
		Message: e.Message,
		Applied: e.Applied,
	}
	if e.Op == OpDelete {
		w.Message = nil
	}
	// Not json.Marshal: it would rewrite <, > and & in the message as
	// \u003c and so on. The encoder compacts the message and adds a
	// trailing newline, which is dropped.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		clear(buf.Bytes())
		return nil, fmt.Errorf("%w: %v", ErrBadEntry, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// sealRaw seals plaintext bytes as they are, compressed and padded, as a
// cs3 envelope. Tests use it to make authentic envelopes with invalid
// contents.
func (k *Keyring) sealRaw(plain []byte) (string, error) {
	if len(plain) > MaxPlaintextSize {
		return "", fmt.Errorf("%w: entry is %d bytes of JSON, limit %d", ErrTooLarge, len(plain), MaxPlaintextSize)
	}
	z := deflate(plain)
	defer clear(z)
	content, err := padContent(z)
	if err != nil {
		return "", err
	}
	defer clear(content)
	return sealBox(&k.keys[len(k.keys)-1].v3, content)
}

// payloadBucket returns the cs3 payload length for a box that needs n
// bytes of base64: the smallest bucket of at least n bytes. The buckets
// are 256, 512, ... 4096, then four to each doubling (5120, 6144, 7168,
// 8192, 10240, ...) as far as MaxEnvelopeSize allows, then maxPayloadV3
// itself. ok is false if n exceeds maxPayloadV3. Every bucket is a
// multiple of 4, so its box is 3/4 of it and a whole number of base64
// groups.
//
// Four to a doubling, not one: padding a large row costs at most a
// quarter of it, not up to its size again, so a picture of the default
// max_message_bytes (512 KiB) stays a row under 1 MiB, which a MariaDB
// with the old max_allowed_packet still stores.
func payloadBucket(n int) (bucket int, ok bool) {
	switch {
	case n > maxPayloadV3:
		return 0, false
	case n <= smallBucketsEnd:
		return max(smallBucketStep, (n+smallBucketStep-1)/smallBucketStep*smallBucketStep), true
	}
	b := smallBucketsEnd
	for b < n {
		b += 1 << (bits.Len(uint(b)) - 1) / 4 // a quarter of the power of two at or below b
	}
	return min(b, maxPayloadV3), true
}

// padContent returns z followed by as many zero bytes as make the payload
// of its box the bucket that holds it: the content of a cs3 box. It
// returns ErrTooLarge if no bucket does, that is if even the unpadded
// envelope would exceed MaxEnvelopeSize.
func padContent(z []byte) ([]byte, error) {
	need := base64.StdEncoding.EncodedLen(nonceSize + len(z) + secretbox.Overhead)
	bucket, ok := payloadBucket(need)
	if !ok {
		return nil, fmt.Errorf("%w: entry would seal to %d bytes, limit %d", ErrTooLarge, headerLenV3+need, MaxEnvelopeSize)
	}
	content := make([]byte, bucket/4*3-nonceSize-secretbox.Overhead)
	copy(content, z)
	return content, nil
}

// sealBox seals content, the box's plaintext, under bk.
func sealBox(bk *boxKey, content []byte) (string, error) {
	boxLen := nonceSize + len(content) + secretbox.Overhead
	if total := len(bk.header) + base64.StdEncoding.EncodedLen(boxLen); total > MaxEnvelopeSize {
		return "", fmt.Errorf("%w: entry would seal to %d bytes, limit %d", ErrTooLarge, total, MaxEnvelopeSize)
	}
	var nonce [nonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("seal: read nonce: %w", err)
	}
	box := make([]byte, nonceSize, boxLen)
	copy(box, nonce[:])
	box = secretbox.Seal(box, content, &nonce, &bk.key)
	return bk.header + base64.StdEncoding.EncodeToString(box), nil
}

// Open decrypts and checks an envelope made by Seal, in this order:
//
//   - size at most MaxEnvelopeSize (ErrTooLarge), before any decoding;
//   - prefix "cs1.", "cs2." or "cs3." (another "cs<digits>." is
//     ErrUnsupportedVersion, anything else ErrBadFormat) and an
//     8-hex-digit key id (ErrBadFormat);
//   - the key id is in the keyring (*UnknownKeyError, ErrUnknownKey);
//   - payload is padded standard base64 with no white space (ErrBadBase64)
//     holding at least a nonce and an authenticator (ErrTruncated);
//   - the box authenticates under the key derived for this header (ErrAuth);
//   - for cs2, the box holds one complete raw DEFLATE stream and nothing
//     after it, for cs3 such a stream and then only zero bytes
//     (ErrBadFormat), and the stream inflates to at most MaxPlaintextSize
//     bytes (ErrTooLarge); inflating stops at that limit. Open does not
//     check that a cs3 payload is a bucket size: the buckets can change
//     without a new format;
//   - the plaintext is a version 1 entry: valid JSON, "v" is 1, op is put,
//     delete or report, msgid non-empty (empty for a report) and at most
//     MaxMsgIDLen bytes, account non-empty, device "urn:uuid:<uuid>", time
//     RFC 3339, applied not negative, and message a JSON object for put and
//     report and absent for delete (ErrBadEntry);
//   - the entry's account equals account under SameAccount
//     (*ForeignAccountError, ErrForeignAccount).
//
// Every error matches exactly one of ErrBadFormat, ErrUnknownKey, ErrAuth,
// ErrBadEntry and ErrForeignAccount. A cs1, a cs2 and a cs3 envelope of the
// same entry open to the same Entry.
func (k *Keyring) Open(envelope string, account string) (Entry, error) {
	if len(envelope) > MaxEnvelopeSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(envelope), MaxEnvelopeSize)
	}
	version, rest, ok := strings.Cut(envelope, ".")
	if !ok {
		return Entry{}, fmt.Errorf("%w: no \"cs3.\", \"cs2.\" or \"cs1.\" prefix", ErrBadFormat)
	}
	switch version {
	case formatV1, formatV2, formatV3:
	default:
		if !isFormatName(version) {
			return Entry{}, fmt.Errorf("%w: no \"cs3.\", \"cs2.\" or \"cs1.\" prefix", ErrBadFormat)
		}
		return Entry{}, fmt.Errorf("%w %q (this chatsync reads %q, %q and %q; upgrade it if another device is newer)", ErrUnsupportedVersion, version, formatV1, formatV2, formatV3)
	}
	// cs2 and cs3 differ only in what may follow the DEFLATE stream.
	compressed := version != formatV1
	padded := version == formatV3
	id, payload, ok := strings.Cut(rest, ".")
	if !ok || !isKeyID(id) {
		return Entry{}, fmt.Errorf("%w: key id must be %d lowercase hex digits", ErrBadFormat, keyIDLen)
	}
	if k == nil || len(k.keys) == 0 {
		return Entry{}, &UnknownKeyError{KeyID: id}
	}
	rk := k.lookup(id)
	if rk == nil {
		return Entry{}, &UnknownKeyError{KeyID: id}
	}
	bk := rk.boxKey(version)
	if len(payload)%4 != 0 {
		return Entry{}, fmt.Errorf("%w: payload length %d is not a multiple of 4", ErrTruncated, len(payload))
	}
	// DecodeString skips CR and LF; the grammar forbids them, so check the
	// alphabet first.
	if i := strings.IndexFunc(payload, func(r rune) bool { return !isStdBase64(r) }); i >= 0 {
		return Entry{}, fmt.Errorf("%w: invalid character at payload offset %d", ErrBadBase64, i)
	}
	box, err := base64.StdEncoding.Strict().DecodeString(payload)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrBadBase64, err)
	}
	if len(box) < minPayload {
		return Entry{}, fmt.Errorf("%w: payload holds %d bytes, need at least %d", ErrTruncated, len(box), minPayload)
	}
	var nonce [nonceSize]byte
	copy(nonce[:], box[:nonceSize])
	plain, ok := secretbox.Open(nil, box[nonceSize:], &nonce, &bk.key)
	if !ok {
		return Entry{}, fmt.Errorf("%w (key id %s)", ErrAuth, id)
	}
	if compressed {
		z := plain
		plain, err = inflate(z, MaxPlaintextSize, padded)
		clear(z)
		if err != nil {
			return Entry{}, err
		}
	}
	defer clear(plain)
	e, err := parseEntry(plain)
	if err != nil {
		return Entry{}, err
	}
	if !SameAccount(e.Account, account) {
		return Entry{}, &ForeignAccountError{Got: e.Account, Want: account}
	}
	return e, nil
}

func parseEntry(plain []byte) (Entry, error) {
	var w wireEntry
	if err := json.Unmarshal(plain, &w); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Entry{}, fmt.Errorf("%w: plaintext is not JSON (offset %d)", ErrBadEntry, se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Entry{}, fmt.Errorf("%w: field %q has the wrong type", ErrBadEntry, te.Field)
		}
		return Entry{}, fmt.Errorf("%w: plaintext is not an entry object", ErrBadEntry)
	}
	if w.V != entryV1 {
		return Entry{}, fmt.Errorf("%w: entry version %d, want %d", ErrBadEntry, w.V, entryV1)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: time is not RFC 3339", ErrBadEntry)
	}
	e := Entry{
		Op:      w.Op,
		MsgID:   w.MsgID,
		Account: w.Account,
		Device:  w.Device,
		Time:    t,
		Message: w.Message,
		Applied: w.Applied,
	}
	if err := validate(&e); err != nil {
		return Entry{}, err
	}
	if e.Op != OpDelete {
		// Unmarshal copies RawMessage, but keep the entry independent of
		// the plaintext buffer that Open clears.
		e.Message = bytes.Clone(e.Message)
	}
	return e, nil
}

// validate checks the rules shared by Seal and Open.
func validate(e *Entry) error {
	switch e.Op {
	case OpPut:
		if len(e.Message) == 0 {
			return fmt.Errorf("%w: put without a message", ErrBadEntry)
		}
		m := bytes.TrimLeft(e.Message, " \t\r\n")
		if len(m) == 0 || m[0] != '{' || !json.Valid(m) {
			return fmt.Errorf("%w: message is not a JSON object", ErrBadEntry)
		}
	case OpDelete:
		if len(e.Message) != 0 && string(e.Message) != "null" {
			return fmt.Errorf("%w: delete carries a message", ErrBadEntry)
		}
		e.Message = nil
	case OpReport:
		m := bytes.TrimLeft(e.Message, " \t\r\n")
		if len(m) == 0 || m[0] != '{' || !json.Valid(m) {
			return fmt.Errorf("%w: report is not a JSON object", ErrBadEntry)
		}
		if e.MsgID != "" {
			return fmt.Errorf("%w: report carries a msgid", ErrBadEntry)
		}
	default:
		if len(e.Op) > 16 || !isPrintableASCII(string(e.Op)) {
			return fmt.Errorf("%w: unknown op", ErrBadEntry)
		}
		return fmt.Errorf("%w: unknown op %q, want %q, %q or %q", ErrBadEntry, e.Op, OpPut, OpDelete, OpReport)
	}
	if e.Applied < 0 {
		return fmt.Errorf("%w: negative applied", ErrBadEntry)
	}
	if e.MsgID == "" && e.Op != OpReport {
		return fmt.Errorf("%w: empty msgid", ErrBadEntry)
	}
	if len(e.MsgID) > MaxMsgIDLen {
		return fmt.Errorf("%w: msgid is %d bytes, limit %d", ErrBadEntry, len(e.MsgID), MaxMsgIDLen)
	}
	if strings.TrimSpace(e.Account) == "" {
		return fmt.Errorf("%w: empty account", ErrBadEntry)
	}
	if !isURNUUID(e.Device) {
		return fmt.Errorf("%w: device is not \"urn:uuid:<uuid>\"", ErrBadEntry)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: zero time", ErrBadEntry)
	}
	return nil
}

func isKeyID(s string) bool {
	if len(s) != keyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isFormatName reports whether s looks like a format prefix, "cs" and 1 to 4
// digits, so that a future "cs4" envelope is reported as a newer version.
func isFormatName(s string) bool {
	if len(s) < 3 || len(s) > 6 || s[:2] != "cs" {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isStdBase64(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '+' || r == '/' || r == '='
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isURNUUID reports whether s is "urn:uuid:" followed by a UUID in the
// 8-4-4-4-12 hex form (either case).
func isURNUUID(s string) bool {
	if len(s) != len(urnUUID)+36 || !strings.EqualFold(s[:len(urnUUID)], urnUUID) {
		return false
	}
	u := s[len(urnUUID):]
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
