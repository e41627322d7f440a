package seal

import (
	"bytes"
	"compress/flate"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/secretbox"
)

const (
	testAccount = "alice@example.com"
	testDevice  = "urn:uuid:5f0c2a4e-7b1d-4c3e-9a8f-0123456789ab"
)

// testKey returns a fixed key whose bytes all equal b.
func testKey(b byte) Key {
	var k Key
	for i := range k {
		k[i] = b
	}
	return k
}

func mustKeyring(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

func testEntry() Entry {
	return Entry{
		Op:      OpPut,
		MsgID:   "msg-7c1e@phone.example.com",
		Account: testAccount,
		Device:  testDevice,
		Time:    time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		Message: json.RawMessage(`{"msgid":"msg-7c1e@phone.example.com","remote_uri":"sip:bob@example.com","body":"meet at the secret garden <3 & more"}`),
	}
}

func mustSeal(t testing.TB, kr *Keyring, e Entry) string {
	t.Helper()
	env, err := kr.Seal(e)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return env
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	del := testEntry()
	del.Op, del.Message = OpDelete, nil
	local := testEntry()
	local.Time = time.Date(2026, 1, 2, 4, 4, 5, 7, time.FixedZone("CET", 3600))
	applied := testEntry()
	applied.Applied = 4711
	report := testEntry()
	report.Op, report.MsgID, report.Message = OpReport, "", json.RawMessage(`{"name":"laptop","applied":4711}`)
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"put", testEntry()},
		{"delete", del},
		{"non-UTC time", local},
		{"put with applied", applied},
		{"report", report},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := mustSeal(t, kr, tc.e)
			got, err := kr.Open(env, testAccount)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got.Op != tc.e.Op || got.MsgID != tc.e.MsgID || got.Account != tc.e.Account || got.Device != tc.e.Device {
				t.Errorf("got %+v, want %+v", got, tc.e)
			}
			if !got.Time.Equal(tc.e.Time) {
				t.Errorf("time: got %v, want %v", got.Time, tc.e.Time)
			}
			if !bytes.Equal(got.Message, tc.e.Message) {
				t.Errorf("message: got %s, want %s", got.Message, tc.e.Message)
			}
			if got.Applied != tc.e.Applied {
				t.Errorf("applied: got %d, want %d", got.Applied, tc.e.Applied)
			}
		})
	}
}

// TestEnvelopeHasDocumentedFormat opens an envelope by following doc.go,
// with none of the package's own code.
func TestEnvelopeHasDocumentedFormat(t *testing.T) {
	k := testKey(1)
	env := mustSeal(t, mustKeyring(t, k), testEntry())
	prefix := "cs3." + k.ID() + "."
	if !strings.HasPrefix(env, prefix) {
		t.Fatalf("envelope %.20q... does not start with %q", env, prefix)
	}
	if strings.ContainsAny(env, "\r\n ") {
		t.Errorf("envelope contains white space")
	}
	payload := env[len(prefix):]
	// The buckets: 256, 512, ... 4096, then four to each doubling.
	isBucket := func(n int) bool {
		if n <= 4096 {
			return n > 0 && n%256 == 0
		}
		p := 1 << (bits.Len(uint(n)) - 1)
		return n%(p/4) == 0
	}
	if !isBucket(len(payload)) || strings.Contains(payload, "=") {
		t.Errorf("payload of %d bytes is not a bucket size without \"=\"", len(payload))
	}
	box, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("payload is not std base64: %v", err)
	}
	ek, err := hkdf.Key(sha256.New, k[:], nil, "chatsync/seal entry key v1\x00"+prefix, 32)
	if err != nil {
		t.Fatal(err)
	}
	var nonce [24]byte
	copy(nonce[:], box)
	content, ok := secretbox.Open(nil, box[24:], &nonce, (*[32]byte)(ek))
	if !ok {
		t.Fatal("box does not open under HKDF(key, info = label || header)")
	}
	// A bytes.Reader is an io.ByteReader: flate reads no byte after the
	// end of the stream, and what it leaves is the padding.
	r := bytes.NewReader(content)
	plain, err := io.ReadAll(flate.NewReader(r))
	if err != nil {
		t.Fatalf("box does not hold raw DEFLATE: %v", err)
	}
	padding := content[len(content)-r.Len():]
	if len(bytes.Trim(padding, "\x00")) != 0 {
		t.Errorf("padding after the stream is not all zero bytes: %x", padding)
	}
	// The bucket is the smallest that holds the unpadded box: the bucket
	// below would not hold it (a bucket of B bytes of base64 holds 3B/4
	// bytes of box).
	below := len(payload) - 256
	if len(payload) > 4096 {
		below = len(payload) / 2
	}
	if unpadded := 24 + len(content) - len(padding) + 16; below/4*3 >= unpadded {
		t.Errorf("payload of %d bytes for a box of %d bytes before padding: the bucket of %d holds it", len(payload), unpadded, below)
	}
	t.Logf("payload %d bytes: %d of DEFLATE, %d of padding", len(payload), len(content)-len(padding), len(padding))
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	enc.Encode(wireEntry{V: 1, Op: OpPut, MsgID: testEntry().MsgID, Account: testAccount,
		Device: testDevice, Time: "2026-01-02T03:04:05.123456789Z", Message: testEntry().Message})
	if got, want := string(plain), strings.TrimSuffix(want.String(), "\n"); got != want {
		t.Errorf("plaintext\n%s\nwant\n%s", got, want)
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	a, b := mustSeal(t, kr, testEntry()), mustSeal(t, kr, testEntry())
	if a == b {
		t.Fatal("two seals of the same entry are identical")
	}
	header := len("cs3." + testKey(1).ID() + ".")
	na, nb := mustDecode(t, a[header:]), mustDecode(t, b[header:])
	if bytes.Equal(na[:nonceSize], nb[:nonceSize]) {
		t.Fatal("two seals share a nonce")
	}
}

func TestEnvelopeHidesMsgIDAccountAndBody(t *testing.T) {
	e := testEntry()
	env := mustSeal(t, mustKeyring(t, testKey(1)), e)
	for _, secret := range []string{e.MsgID, e.Account, "alice", "bob@example.com", "secret garden", testDevice, "msgid", "put"} {
		if strings.Contains(env, secret) {
			t.Errorf("envelope contains %q in clear", secret)
		}
	}
}

// sealRawWith seals arbitrary plaintext with kr's newest key, to make
// authentic envelopes with bad contents.
func sealRawWith(t *testing.T, kr *Keyring, plain string) string {
	t.Helper()
	env, err := kr.sealRaw([]byte(plain))
	if err != nil {
		t.Fatalf("sealRaw: %v", err)
	}
	return env
}

// categories are the top-level Open error classes; every Open error must
// match exactly one.
var categories = []error{ErrBadFormat, ErrUnknownKey, ErrAuth, ErrBadEntry, ErrForeignAccount}

func checkOneCategory(t testing.TB, err error) {
	t.Helper()
	n := 0
	for _, c := range categories {
		if errors.Is(err, c) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q matches %d categories, want exactly 1", err, n)
	}
}

func TestOpenFailuresAreDistinct(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	kr := mustKeyring(t, k1)
	both := mustKeyring(t, k1, k2)
	good := mustSeal(t, kr, testEntry())
	header := "cs3." + k1.ID() + "."
	payload := good[len(header):]
	v1 := sealV1(t, kr, testEntry())
	v1Payload := v1[len("cs1."+k1.ID()+"."):]
	v2 := sealV2(t, kr, testEntry())
	v2Payload := v2[len("cs2."+k1.ID()+"."):]
	stream := deflateString(`{"v":1}`)

	flip := func(s string, i int) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[i] ^= 0x01
		return base64.StdEncoding.EncodeToString(b)
	}
	valid := `"v":1,"msgid":"m1","account":"alice@example.com","device":"` + testDevice + `","time":"2026-01-02T03:04:05Z"`

	tests := []struct {
		name     string
		kr       *Keyring
		env      string
		account  string
		want     error // the specific error
		category error // its category
		contains string
	}{
		{"wrong key (id unknown to keyring)", mustKeyring(t, k2), good, testAccount, ErrUnknownKey, ErrUnknownKey, k1.ID()},
		{"unknown key id", kr, "cs3.00000000." + payload, testAccount, ErrUnknownKey, ErrUnknownKey, "import that key"},
		{"unknown key id cs2", kr, "cs2.00000000." + v2Payload, testAccount, ErrUnknownKey, ErrUnknownKey, "import that key"},
		{"unknown key id cs1", kr, "cs1.00000000." + v1Payload, testAccount, ErrUnknownKey, ErrUnknownKey, "import that key"},
		{"wrong key under a known id", both, "cs3." + k2.ID() + "." + payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"wrong key under a known id cs2", both, "cs2." + k2.ID() + "." + v2Payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"wrong key under a known id cs1", both, "cs1." + k2.ID() + "." + v1Payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"tampered ciphertext byte", kr, header + flip(payload, nonceSize+20), testAccount, ErrAuth, ErrAuth, ""},
		{"tampered authenticator byte", kr, header + flip(payload, nonceSize), testAccount, ErrAuth, ErrAuth, ""},
		{"tampered nonce byte", kr, header + flip(payload, 3), testAccount, ErrAuth, ErrAuth, ""},
		{"cs3 box relabelled cs2", kr, "cs2." + k1.ID() + "." + payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"cs2 box relabelled cs3", kr, "cs3." + k1.ID() + "." + v2Payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"cs2 box relabelled cs1", kr, "cs1." + k1.ID() + "." + v2Payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"cs1 box relabelled cs2", kr, "cs2." + k1.ID() + "." + v1Payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"cs1 box relabelled cs3", kr, "cs3." + k1.ID() + "." + v1Payload, testAccount, ErrAuth, ErrAuth, "authenticate"},
		{"tampered cs1 ciphertext byte", kr, "cs1." + k1.ID() + "." + flip(v1Payload, nonceSize+20), testAccount, ErrAuth, ErrAuth, ""},
		{"tampered cs2 ciphertext byte", kr, "cs2." + k1.ID() + "." + flip(v2Payload, nonceSize+20), testAccount, ErrAuth, ErrAuth, ""},
		{"tampered padding byte", kr, header + flip(payload, len(mustDecode(t, payload))-1), testAccount, ErrAuth, ErrAuth, ""},
		{"unknown version", kr, "cs4." + k1.ID() + "." + payload, testAccount, ErrUnsupportedVersion, ErrBadFormat, `"cs4" (this chatsync reads "cs1", "cs2" and "cs3"`},
		{"tampered header key id case", kr, "cs3." + strings.ToUpper(k1.ID()) + "." + payload, testAccount, ErrBadFormat, ErrBadFormat, "key id"},
		{"no prefix", kr, payload, testAccount, ErrBadFormat, ErrBadFormat, "prefix"},
		{"empty", kr, "", testAccount, ErrBadFormat, ErrBadFormat, ""},
		{"truncated to the nonce", kr, header + payload[:32], testAccount, ErrTruncated, ErrBadFormat, "at least 40"},
		{"truncated mid-quad", kr, good[:len(good)-3], testAccount, ErrTruncated, ErrBadFormat, ""},
		{"truncated inside the box", kr, header + base64.StdEncoding.EncodeToString(mustDecode(t, payload)[:60]), testAccount, ErrAuth, ErrAuth, ""},
		{"bad base64 character", kr, header + "*" + payload[1:], testAccount, ErrBadBase64, ErrBadFormat, "offset 0"},
		{"newline in payload", kr, header + payload[:8] + "\n" + payload[8:len(payload)-1], testAccount, ErrBadBase64, ErrBadFormat, ""},
		{"foreign account", kr, good, "mallory@example.com", ErrForeignAccount, ErrForeignAccount, "mallory@example.com"},
		{"bad inner JSON", kr, sealRawWith(t, kr, `{"v":1,"op":"put",`), testAccount, ErrBadEntry, ErrBadEntry, "not JSON"},
		{"inner JSON not an object", kr, sealRawWith(t, kr, `[1,2]`), testAccount, ErrBadEntry, ErrBadEntry, ""},
		{"inner version 2", kr, sealRawWith(t, kr, `{"v":2,"op":"delete","msgid":"m1","account":"alice@example.com","device":"`+testDevice+`","time":"2026-01-02T03:04:05Z"}`), testAccount, ErrBadEntry, ErrBadEntry, "version 2"},
		{"unknown op", kr, sealRawWith(t, kr, `{`+valid+`,"op":"edit"}`), testAccount, ErrBadEntry, ErrBadEntry, `"edit"`},
		{"empty msgid", kr, sealRawWith(t, kr, `{"v":1,"op":"delete","msgid":"","account":"a@b","device":"`+testDevice+`","time":"2026-01-02T03:04:05Z"}`), "a@b", ErrBadEntry, ErrBadEntry, "empty msgid"},
		{"msgid too long", kr, sealRawWith(t, kr, `{"v":1,"op":"delete","msgid":"`+strings.Repeat("x", 257)+`","account":"a@b","device":"`+testDevice+`","time":"2026-01-02T03:04:05Z"}`), "a@b", ErrBadEntry, ErrBadEntry, "257"},
		{"put without message", kr, sealRawWith(t, kr, `{`+valid+`,"op":"put"}`), testAccount, ErrBadEntry, ErrBadEntry, "without a message"},
		{"put with array message", kr, sealRawWith(t, kr, `{`+valid+`,"op":"put","message":[1]}`), testAccount, ErrBadEntry, ErrBadEntry, "JSON object"},
		{"put with null message", kr, sealRawWith(t, kr, `{`+valid+`,"op":"put","message":null}`), testAccount, ErrBadEntry, ErrBadEntry, ""},
		{"delete with message", kr, sealRawWith(t, kr, `{`+valid+`,"op":"delete","message":{"a":1}}`), testAccount, ErrBadEntry, ErrBadEntry, "delete carries"},
		{"bad device", kr, sealRawWith(t, kr, `{"v":1,"op":"delete","msgid":"m","account":"a@b","device":"phone","time":"2026-01-02T03:04:05Z"}`), "a@b", ErrBadEntry, ErrBadEntry, "device"},
		{"bad time", kr, sealRawWith(t, kr, `{"v":1,"op":"delete","msgid":"m","account":"a@b","device":"`+testDevice+`","time":"yesterday"}`), "a@b", ErrBadEntry, ErrBadEntry, "time"},
		{"wrong field type", kr, sealRawWith(t, kr, `{"v":"1"}`), testAccount, ErrBadEntry, ErrBadEntry, `"v"`},
		{"oversize", kr, "cs3." + k1.ID() + "." + strings.Repeat("A", MaxEnvelopeSize), testAccount, ErrTooLarge, ErrBadFormat, "limit"},
		{"oversize cs2", kr, "cs2." + k1.ID() + "." + strings.Repeat("A", MaxEnvelopeSize), testAccount, ErrTooLarge, ErrBadFormat, "limit"},
		{"padded beyond the envelope limit", kr, sealUnchecked(t, &kr.keys[0].v3, zeroPadded(deflateString(`{"v":1}`), maxPayloadV3/4*3)), testAccount, ErrTooLarge, ErrBadFormat, "limit 4194304"},
		{"oversize cs1", kr, "cs1." + k1.ID() + "." + strings.Repeat("A", MaxEnvelopeSize), testAccount, ErrTooLarge, ErrBadFormat, "limit"},
		{"oversize, bad header", kr, strings.Repeat("A", MaxEnvelopeSize+1), testAccount, ErrTooLarge, ErrBadFormat, "limit"},
		{"zip bomb", kr, zipBomb(t, kr), testAccount, ErrTooLarge, ErrBadFormat, "inflates beyond 17825792 bytes"},
		{"deflate stream cut short", kr, sealDeflated(t, kr, deflateString(`{"v":1}`)[:4]), testAccount, errCorrupt, ErrBadFormat, "ends early"},
		{"deflate stream with trailing data", kr, sealDeflated(t, kr, append(deflateString(`{"v":1}`), 0)), testAccount, errCorrupt, ErrBadFormat, "1 bytes follow"},
		{"not deflate data", kr, sealDeflated(t, kr, []byte(`{"v":1,"op":"put"}`)), testAccount, errCorrupt, ErrBadFormat, "corrupt"},
		{"reserved deflate block type", kr, sealDeflated(t, kr, []byte{0x07, 0x00}), testAccount, errCorrupt, ErrBadFormat, "corrupt input before offset 1"},
		{"empty cs2 box", kr, sealDeflated(t, kr, nil), testAccount, errCorrupt, ErrBadFormat, "ends early"},
		{"empty deflate stream", kr, sealDeflated(t, kr, deflateString("")), testAccount, ErrBadEntry, ErrBadEntry, "not JSON"},
		{"cs3 stream then a non-zero byte", kr, sealPadded(t, kr, append(bytes.Clone(stream), 1)), testAccount, errCorrupt, ErrBadFormat, "1 bytes follow its end, not all zero"},
		{"cs3 padding then a non-zero byte", kr, sealPadded(t, kr, append(zeroPadded(stream, 200), 0x80)), testAccount, errCorrupt, ErrBadFormat, "201 bytes follow its end, not all zero"},
		{"cs3 padding with a non-zero byte inside", kr, sealPadded(t, kr, zeroPadded(append(zeroPadded(stream, 10), ' '), 10)), testAccount, errCorrupt, ErrBadFormat, "not all zero"},
		{"cs3 padding of a second stream", kr, sealPadded(t, kr, append(bytes.Clone(stream), stream...)), testAccount, errCorrupt, ErrBadFormat, "not all zero"},
		{"cs3 zip bomb", kr, sealPadded(t, kr, zeroPadded(zipBombStream(64), 1000)), testAccount, ErrTooLarge, ErrBadFormat, "inflates beyond 17825792 bytes"},
		{"cs3 stream cut short", kr, sealPadded(t, kr, zeroPadded(stream[:4], 100)), testAccount, errCorrupt, ErrBadFormat, ""},
		{"cs3 only padding", kr, sealPadded(t, kr, make([]byte, 152)), testAccount, errCorrupt, ErrBadFormat, "corrupt"},
		{"empty cs3 box", kr, sealPadded(t, kr, nil), testAccount, errCorrupt, ErrBadFormat, "ends early"},
		{"bad inner JSON cs1", kr, sealRawV1(t, kr, `{"v":1,"op":"put",`), testAccount, ErrBadEntry, ErrBadEntry, "not JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.kr.Open(tc.env, tc.account)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: got %v, want %v", err, tc.want)
			}
			if !errors.Is(err, tc.category) {
				t.Fatalf("Open: %v does not match category %v", err, tc.category)
			}
			checkOneCategory(t, err)
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not contain %q", err, tc.contains)
			}
		})
	}
}

// sealUnchecked seals content under bk without the size check of sealBox,
// to make authentic envelopes larger than any Seal makes.
func sealUnchecked(t testing.TB, bk *boxKey, content []byte) string {
	t.Helper()
	var nonce [nonceSize]byte
	box := secretbox.Seal(nonce[:], content, &nonce, &bk.key)
	return bk.header + base64.StdEncoding.EncodeToString(box)
}

// TestOpenReadsCS3WithAnyAmountOfPadding: Open checks that padding is zero
// bytes, not that the payload is a bucket, so the buckets can change
// without a new format.
func TestOpenReadsCS3WithAnyAmountOfPadding(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	plain, err := encodeEntry(testEntry())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 7, 1000, 1 << 20} {
		env := sealPadded(t, kr, zeroPadded(deflate(plain), n))
		got, err := kr.Open(env, testAccount)
		if err != nil {
			t.Fatalf("%d bytes of padding: Open: %v", n, err)
		}
		if !reflect.DeepEqual(got, testEntry()) {
			t.Errorf("%d bytes of padding: got %+v, want %+v", n, got, testEntry())
		}
	}
}

func TestPayloadBucketEdges(t *testing.T) {
	if maxPayloadV3 != 4194288 {
		t.Fatalf("maxPayloadV3 is %d, want 4194288: 4 MiB less the 13-byte header, rounded down to a multiple of 4", maxPayloadV3)
	}
	for _, tc := range []struct{ n, want int }{
		{0, 256},
		{1, 256},
		{256, 256},
		{257, 512},
		{512, 512},
		{513, 768},
		{4095, 4096},
		{4096, 4096},
		{4097, 5120},
		{5121, 6144},
		{7169, 8192},
		{8192, 8192},
		{8193, 10240},
		{14337, 16384},
		{16385, 20480},
		{512 << 10, 512 << 10},
		{512<<10 + 1, 640 << 10},
		{1 << 20, 1 << 20},
		{1<<20 + 1, 1280 << 10},
		{3 << 20, 3 << 20},
		{3<<20 + 1, 3584 << 10},
		{3584<<10 + 1, maxPayloadV3},
		{maxPayloadV3, maxPayloadV3},
	} {
		got, ok := payloadBucket(tc.n)
		if !ok || got != tc.want {
			t.Errorf("payloadBucket(%d) = %d, %v; want %d, true", tc.n, got, ok, tc.want)
		}
	}
	if got, ok := payloadBucket(maxPayloadV3 + 1); ok {
		t.Errorf("payloadBucket(%d) = %d, true; want no bucket", maxPayloadV3+1, got)
	}
}

// TestSealPadsToTheBucketExactly seals contents of the lengths at bucket
// edges: the payload is the bucket, with no "=", and the envelope opens.
func TestSealPadsToTheBucketExactly(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	const box = nonceSize + secretbox.Overhead
	for _, tc := range []struct{ z, payload int }{
		{0, 256},
		{256/4*3 - box, 256},     // fills the first bucket exactly
		{256/4*3 - box + 1, 512}, // one byte more
		{4096/4*3 - box, 4096},
		{4096/4*3 - box + 1, 5120},
		{maxPayloadV3/4*3 - box, maxPayloadV3},
	} {
		content, err := padContent(make([]byte, tc.z))
		if err != nil {
			t.Fatalf("padContent(%d bytes): %v", tc.z, err)
		}
		env, err := sealBox(&kr.keys[0].v3, content)
		if err != nil {
			t.Fatalf("sealBox(%d bytes): %v", len(content), err)
		}
		payload := env[headerLenV3:]
		if len(payload) != tc.payload || strings.Contains(payload, "=") {
			t.Errorf("%d bytes of DEFLATE: payload of %d bytes (%q at its end), want %d with no \"=\"", tc.z, len(payload), payload[len(payload)-2:], tc.payload)
		}
		if len(env) > MaxEnvelopeSize {
			t.Errorf("%d bytes of DEFLATE: envelope of %d bytes, over the limit", tc.z, len(env))
		}
	}
	if _, err := padContent(make([]byte, maxPayloadV3/4*3-box+1)); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "would seal to 4194305 bytes, limit 4194304") {
		t.Errorf("padContent one byte over the last bucket: got %v, want ErrTooLarge", err)
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenTypedErrorsCarryDetails(t *testing.T) {
	k1 := testKey(1)
	env := mustSeal(t, mustKeyring(t, k1), testEntry())

	_, err := mustKeyring(t, testKey(2)).Open(env, testAccount)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.KeyID != k1.ID() {
		t.Fatalf("got %v, want *UnknownKeyError for %s", err, k1.ID())
	}
	_, err = mustKeyring(t, k1).Open(env, "bob@example.com")
	var fa *ForeignAccountError
	if !errors.As(err, &fa) || fa.Got != testAccount || fa.Want != "bob@example.com" {
		t.Fatalf("got %v, want *ForeignAccountError", err)
	}
}

func TestOpenAccountMatchIgnoresCaseAndScheme(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	env := mustSeal(t, kr, testEntry())
	for _, acct := range []string{"alice@example.com", "alice@EXAMPLE.com", "Alice@Example.Com", "sip:alice@example.com", " SIP:alice@example.com "} {
		if _, err := kr.Open(env, acct); err != nil {
			t.Errorf("Open(%q): %v", acct, err)
		}
	}
	for _, acct := range []string{"alice@example.org", "alice2@example.com", ""} {
		if _, err := kr.Open(env, acct); !errors.Is(err, ErrForeignAccount) {
			t.Errorf("Open(%q): got %v, want ErrForeignAccount", acct, err)
		}
	}
}

func TestSealRefusesInvalidEntries(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	for _, tc := range []struct {
		name string
		mod  func(*Entry)
	}{
		{"unknown op", func(e *Entry) { e.Op = "edit" }},
		{"empty msgid", func(e *Entry) { e.MsgID = "" }},
		{"long msgid", func(e *Entry) { e.MsgID = strings.Repeat("m", MaxMsgIDLen+1) }},
		{"empty account", func(e *Entry) { e.Account = " " }},
		{"bad device", func(e *Entry) { e.Device = "5f0c2a4e-7b1d-4c3e-9a8f-0123456789ab" }},
		{"zero time", func(e *Entry) { e.Time = time.Time{} }},
		{"put without message", func(e *Entry) { e.Message = nil }},
		{"put with string message", func(e *Entry) { e.Message = json.RawMessage(`"hi"`) }},
		{"put with invalid JSON", func(e *Entry) { e.Message = json.RawMessage(`{"a":`) }},
		{"delete with message", func(e *Entry) { e.Op = OpDelete }},
		{"report with msgid", func(e *Entry) { e.Op = OpReport }},
		{"report without object", func(e *Entry) { e.Op, e.MsgID, e.Message = OpReport, "", json.RawMessage(`[1]`) }},
		{"negative applied", func(e *Entry) { e.Applied = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEntry()
			tc.mod(&e)
			if _, err := kr.Seal(e); !errors.Is(err, ErrBadEntry) {
				t.Fatalf("Seal: got %v, want ErrBadEntry", err)
			}
		})
	}
	e := testEntry()
	e.MsgID = strings.Repeat("m", MaxMsgIDLen)
	if _, err := kr.Seal(e); err != nil {
		t.Errorf("Seal with a %d-byte msgid: %v", MaxMsgIDLen, err)
	}
}

// incompressible returns n bytes of random base64 text, which DEFLATE
// shrinks by a quarter at most (6 bits of entropy a byte).
func incompressible(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n/4*3+3)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return base64.StdEncoding.EncodeToString(b)[:n]
}

func TestSealRefusesOversizeEntry(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	e := testEntry()
	// 6 MiB of base64 deflate to 4.5 MiB: the envelope is too large.
	e.Message = json.RawMessage(`{"body":"` + incompressible(6<<20) + `"}`)
	if _, err := kr.Seal(e); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "would seal to") {
		t.Fatalf("Seal: got %v, want ErrTooLarge for the envelope", err)
	}
	// The JSON is too large, however well it compresses.
	e.Message = json.RawMessage(`{"body":"` + strings.Repeat("x", MaxPlaintextSize) + `"}`)
	if _, err := kr.Seal(e); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit 17825792") {
		t.Fatalf("Seal: got %v, want ErrTooLarge for the plaintext", err)
	}
	for _, tc := range []struct {
		name    string
		body    string
		payload int
	}{
		// Below the limit seals and opens again: 3 MiB of base64 deflate
		// to about 2.3 MiB, 3 MiB of payload and a bit, which is padded
		// to the 3.5 MiB bucket.
		{"incompressible near the envelope limit", incompressible(3 << 20), 3584 << 10},
		// The largest message another device may send (16 MiB of JSON,
		// the sync engine's maxIncomingBytes) opens if it compressed
		// into an envelope: about 16 KiB of DEFLATE, 22 KiB of base64.
		{"16 MiB message", strings.Repeat("x", 16<<20-len(`{"body":""}`)), 24 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Message = json.RawMessage(`{"body":"` + tc.body + `"}`)
			env, err := kr.Seal(e)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(env) > MaxEnvelopeSize {
				t.Fatalf("envelope is %d bytes, over the limit", len(env))
			}
			if n := len(env) - headerLenV3; n != tc.payload {
				t.Fatalf("payload is %d bytes, want the bucket %d", n, tc.payload)
			}
			got, err := kr.Open(env, testAccount)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got.Message, e.Message) {
				t.Fatalf("message of %d bytes opened as %d bytes", len(e.Message), len(got.Message))
			}
		})
	}
}

func TestZeroKeyringFailsCleanly(t *testing.T) {
	var kr *Keyring
	if _, err := kr.Seal(testEntry()); err == nil {
		t.Error("Seal on nil keyring succeeded")
	}
	env := mustSeal(t, mustKeyring(t, testKey(1)), testEntry())
	if _, err := kr.Open(env, testAccount); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open on nil keyring: got %v, want ErrUnknownKey", err)
	}
}

func TestKeyringRotationNewestSealsAllOpen(t *testing.T) {
	oldK, newK := testKey(1), testKey(2)
	oldEnv := mustSeal(t, mustKeyring(t, oldK), testEntry())
	kr := mustKeyring(t, oldK, newK)
	env := mustSeal(t, kr, testEntry())
	if want := "cs3." + newK.ID() + "."; !strings.HasPrefix(env, want) {
		t.Errorf("rotated keyring sealed with %.13s, want %s", env, want)
	}
	for name, e := range map[string]string{"old": oldEnv, "new": env} {
		if _, err := kr.Open(e, testAccount); err != nil {
			t.Errorf("Open %s envelope: %v", name, err)
		}
	}
}

func TestOpenConcurrentIsRaceFree(t *testing.T) {
	kr := mustKeyring(t, testKey(1), testKey(2))
	env := mustSeal(t, kr, testEntry())
	done := make(chan error)
	for range 8 {
		go func() {
			for range 20 {
				e, err := kr.Open(env, testAccount)
				if err == nil {
					_, err = kr.Seal(e)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	kr := mustKeyring(f, testKey(1), testKey(2))
	good := mustSeal(f, kr, testEntry())
	del := testEntry()
	del.Op, del.Message = OpDelete, nil
	f.Add(good)
	f.Add(mustSeal(f, kr, del))
	f.Add(good[:len(good)/2])
	f.Add(cs1PutFixture)
	f.Add(cs1DeleteFixture)
	f.Add(cs2PutFixture)
	f.Add(cs2DeleteFixture)
	f.Add("cs1." + testKey(1).ID() + ".")
	f.Add("cs2." + testKey(1).ID() + ".")
	f.Add("cs3." + testKey(1).ID() + ".")
	f.Add("cs3.00000000.AAAA")
	f.Add("cs4.00000000.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, env string) {
		e, err := kr.Open(env, testAccount)
		if err != nil {
			checkOneCategory(t, err)
			return
		}
		// Anything that opens is a valid entry that seals again.
		if _, err := kr.Seal(e); err != nil {
			t.Fatalf("opened entry does not seal again: %v", err)
		}
	})
}

func benchEntry() Entry {
	e := testEntry()
	e.Message = json.RawMessage(`{"body":"` + strings.Repeat("x", 1024-len(`{"body":""}`)) + `"}`)
	return e
}

func BenchmarkSeal1KiB(b *testing.B) {
	kr := mustKeyring(b, testKey(1))
	e := benchEntry()
	b.SetBytes(int64(len(e.Message)))
	for b.Loop() {
		if _, err := kr.Seal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1KiB(b *testing.B) {
	kr := mustKeyring(b, testKey(1))
	e := benchEntry()
	env := mustSeal(b, kr, e)
	b.SetBytes(int64(len(e.Message)))
	for b.Loop() {
		if _, err := kr.Open(env, testAccount); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzOpenPlaintext reaches the entry checks behind authentication, which
// FuzzOpen's random envelopes almost never get through: it seals arbitrary
// plaintext with a known key and opens it.
func FuzzOpenPlaintext(f *testing.F) {
	kr := mustKeyring(f, testKey(1))
	good, _ := json.Marshal(wireEntry{V: 1, Op: OpPut, MsgID: "m1", Account: testAccount,
		Device: testDevice, Time: "2026-01-02T03:04:05.123456789Z", Message: json.RawMessage(`{"a":1}`)})
	f.Add(good)
	f.Add([]byte(`{"v":1,"op":"delete","msgid":"m","account":"alice@example.com","device":"` + testDevice + `","time":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"v":1,"op":"put","message":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1,"op":"put","msgid":"m","account":"alice@example.com","device":"` + testDevice + `","time":"2026-01-02T03:04:05Z","message":{ "a" : "<b>&" }}`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		env, err := kr.sealRaw(plain)
		if err != nil {
			return
		}
		e, err := kr.Open(env, testAccount)
		if err != nil {
			checkOneCategory(t, err)
			if !errors.Is(err, ErrBadEntry) && !errors.Is(err, ErrForeignAccount) {
				t.Fatalf("authentic envelope failed with %v", err)
			}
			return
		}
		env2, err := kr.Seal(e)
		if err != nil {
			t.Fatalf("opened entry does not seal again: %v", err)
		}
		e2, err := kr.Open(env2, testAccount)
		var compact bytes.Buffer
		if len(e.Message) > 0 {
			if err := json.Compact(&compact, e.Message); err != nil {
				t.Fatalf("opened message is not JSON: %v", err)
			}
		}
		if err != nil || e2.MsgID != e.MsgID || !e2.Time.Equal(e.Time) || !bytes.Equal(e2.Message, compact.Bytes()) {
			t.Fatalf("re-sealed entry differs: %v", err)
		}
	})
}
