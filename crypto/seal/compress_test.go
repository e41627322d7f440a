package seal

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// cs1PutFixture and cs1DeleteFixture were made by Seal before cs2 existed
// (commit 3b34f75), with testKey(1), from testEntry() and from testEntry()
// as a delete. Every cs1 row already in a journal must keep opening.
const (
	cs1PutFixture    = "cs1.d3d67f90.28Yqgj5QorvnpTwWTwHJe7AKbyVygBazIXj3+SKx6aboUtCtAQ2K3JAMD6gvvTz2kY16P2V+qoPKWMoeBVsM/mcK6/HbySGWFz6KC+TiB6aFSVtuhcIytfYFRIdfuy6JkWfF2fKlAtWE1R6Zwt2h/cjYaWaOwLaupxDwPxhqQ5Vh1FXgbI0F4LD98B1SKoYY6c3Tkvcr/ZWxk2ShH049SCpwbPGA7LFC8iHbLEhNv8Te1IYfBdPbvANM5RKpfg6GYAyZJQ3nqilasyOdq8Ok7NJcLkDvbV1MFZ7Pesogo5VeeHDLAdaGgnkngdCcECkJ/i9931zNMtAjNK/cnKZg2jblZrjtYD3zfRiJZYnnE9Zp8eR+JPCVq7pSlS2cnJon7yy/+5JW9wFpzULnCiUDrAv6EK2i8tBKqMZUhd8fKSkSwuKQxaeoauTrB6iBGX/F+hDuwOaTjd1oXe9dsLqm"
	cs1DeleteFixture = "cs1.d3d67f90.mkn6CRN+Ygk2ZNKZq7GkoLc9Nq1k2moxGbcC9B2Qq0rkQoTZew0sGVCfbhwTENnXVd7dbttgzy3Jx2i8cOksPfYlWQCA/6FOKboh696y1++2/zNqrtlftO8EqE9dt5ntYp55H2oEWaVCOGCBpoY70XtxBxaV5ZWzmEe1e3fj75kYW8GFCw4OrZJgbASKQYnmCH3VUg7KUIOAjkyAjXTm0Uya1dKHYuqOwu8Iu8FVIz5mGClV6fvk+uhtpwZ4o6zaUCLABvIniLmzcBVPiLhoYjOLYLarv2Tph7VCzRBdEkyB"
)

// cs2PutFixture and cs2DeleteFixture were made by Seal while it wrote cs2
// (commit 3999ef0), in the same way. Every cs2 row already in a journal
// must keep opening whatever format Seal writes.
const (
	cs2PutFixture    = "cs2.d3d67f90.0iqV6ZGVov7YdNCJ5rgdCvl4waQqz0qW3mbGMHcqPyYBByTcfLIMHbcvq5x/CY9ZLs66NqOCTFbwa0jiOAe8dbUOrn4IAyW6tszZWovSEbK6/YycoxghupO69f7s4QDV4Uhve2h//TQkm9ennNauGQq6KAYnMrRXYoVBNErncb2N9wtKEZXlZEtydCaVloKc2RtpNLwMnxX/RYqQFQvKs00ndQHfzokMKvxTdG0Ht5R608Ly7GN2gEXr1jB7Qkbj2ECXMT+Sf+KyMgghnLdDuaeR4jG64DgOJ0JqJVo2vyK7XRJj5oEWeUoBhtbhjko/YULXYDLNhMo="
	cs2DeleteFixture = "cs2.d3d67f90.sFCCb2JDpENe6hvS80pizFj9FlrViw5SdIp7WEH+mQHidGe37N74AXDK2X/haVX/tb6sw8n0eZ3dI1tGNs14q20IXE+OZ3kmf/qRhDPHGpWIUdWAkuR2MgU8nXWpa337WoZQGgWt/0qLfXRCb26kXjVgBkGgPJzE86fi4s3XqH+NkKM/apzVz/h4h42IzDWQnPIXzgs8ue2JEdP6tp5zuj/BZCZqKOYvIbl9ZLz7vctCWh4S2OR4+8TLeQ8="
)

// sealV1 is the cs1 code path of Seal as it was: the entry JSON sealed
// uncompressed under the cs1 header and its key. Seal no longer writes cs1;
// the tests use this to compare the formats and to open fresh cs1
// envelopes.
func (k *Keyring) sealV1(e Entry) (string, error) {
	plain, err := encodeEntry(e)
	if err != nil {
		return "", err
	}
	defer clear(plain)
	return sealBox(&k.keys[len(k.keys)-1].v1, plain)
}

func sealV1(t testing.TB, kr *Keyring, e Entry) string {
	t.Helper()
	env, err := kr.sealV1(e)
	if err != nil {
		t.Fatalf("sealV1: %v", err)
	}
	return env
}

// sealV2 is the cs2 code path of Seal as it was: the entry JSON compressed
// and sealed unpadded under the cs2 header and its key. Seal no longer
// writes cs2; the tests use this to measure what padding costs and to open
// fresh cs2 envelopes.
func (k *Keyring) sealV2(e Entry) (string, error) {
	plain, err := encodeEntry(e)
	if err != nil {
		return "", err
	}
	defer clear(plain)
	z := deflate(plain)
	defer clear(z)
	return sealBox(&k.keys[len(k.keys)-1].v2, z)
}

func sealV2(t testing.TB, kr *Keyring, e Entry) string {
	t.Helper()
	env, err := kr.sealV2(e)
	if err != nil {
		t.Fatalf("sealV2: %v", err)
	}
	return env
}

// sealRawV1 seals plain uncompressed as cs1 with kr's newest key.
func sealRawV1(t testing.TB, kr *Keyring, plain string) string {
	t.Helper()
	env, err := sealBox(&kr.keys[len(kr.keys)-1].v1, []byte(plain))
	if err != nil {
		t.Fatalf("sealBox: %v", err)
	}
	return env
}

// sealDeflated seals z as the box content of a cs2 envelope, as it is: an
// authentic envelope whose compressed data may be anything.
func sealDeflated(t testing.TB, kr *Keyring, z []byte) string {
	t.Helper()
	env, err := sealBox(&kr.keys[len(kr.keys)-1].v2, z)
	if err != nil {
		t.Fatalf("sealBox: %v", err)
	}
	return env
}

// sealPadded seals content as the box content of a cs3 envelope, as it
// is: an authentic envelope whose compressed data and padding may be
// anything.
func sealPadded(t testing.TB, kr *Keyring, content []byte) string {
	t.Helper()
	env, err := sealBox(&kr.keys[len(kr.keys)-1].v3, content)
	if err != nil {
		t.Fatalf("sealBox: %v", err)
	}
	return env
}

// zeroPadded returns z followed by n zero bytes.
func zeroPadded(z []byte, n int) []byte { return append(bytes.Clone(z), make([]byte, n)...) }

func deflateString(s string) []byte { return deflate([]byte(s)) }

// zipBombStream returns a raw DEFLATE stream of about 1 KiB per MiB that
// inflates to mib MiB of zeros: one flushed MiB, then the segment that
// encodes the second MiB repeated (after 32 KiB of zeros it decodes to a
// MiB of zeros wherever it is), then an empty final stored block.
func zipBombStream(mib int) []byte {
	zeros := make([]byte, 1<<20)
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(zeros)
	w.Flush()
	first := out.Len()
	w.Write(zeros)
	w.Flush()
	segment := bytes.Clone(out.Bytes()[first:])
	stream := bytes.Clone(out.Bytes()[:first])
	for range mib - 1 {
		stream = append(stream, segment...)
	}
	return append(stream, 0x01, 0x00, 0x00, 0xff, 0xff) // BFINAL, stored, LEN 0, NLEN
}

// zipBomb returns an authentic cs2 envelope of about 64 KiB that inflates
// to 64 MiB.
func zipBomb(t testing.TB, kr *Keyring) string {
	t.Helper()
	return sealDeflated(t, kr, zipBombStream(64))
}

func TestZipBombStreamInflatesAsDescribed(t *testing.T) {
	z := zipBombStream(5)
	n, err := io.Copy(io.Discard, flate.NewReader(bytes.NewReader(z)))
	if err != nil || n != 5<<20 {
		t.Fatalf("inflated %d bytes (%v), want 5 MiB", n, err)
	}
	if len(z) > 8<<10 {
		t.Fatalf("bomb of 5 MiB is %d bytes of DEFLATE, want about 1 KiB per MiB", len(z))
	}
}

func TestCS1FixturesStillOpen(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	del := testEntry()
	del.Op, del.Message = OpDelete, nil
	for _, tc := range []struct {
		name string
		env  string
		want Entry
	}{
		{"put", cs1PutFixture, testEntry()},
		{"delete", cs1DeleteFixture, del},
		{"fresh cs1 put", sealV1(t, kr, testEntry()), testEntry()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.HasPrefix(tc.env, "cs1.") {
				t.Fatalf("fixture %.20q is not cs1", tc.env)
			}
			got, err := kr.Open(tc.env, testAccount)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			// And it opens to exactly what its form that Seal writes
			// now opens to.
			v3, err := kr.Open(mustSeal(t, kr, tc.want), testAccount)
			if err != nil {
				t.Fatalf("Open cs3: %v", err)
			}
			if !reflect.DeepEqual(got, v3) {
				t.Errorf("cs1 opens to %+v\ncs3 opens to %+v", got, v3)
			}
		})
	}
}

func TestCS2FixturesStillOpen(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	del := testEntry()
	del.Op, del.Message = OpDelete, nil
	for _, tc := range []struct {
		name string
		env  string
		want Entry
	}{
		{"put", cs2PutFixture, testEntry()},
		{"delete", cs2DeleteFixture, del},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kr.Open(tc.env, testAccount)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestEveryFormatRoundTripsOrdinaryChat seals ordinary chat as Seal does
// now (cs3) and as it did before (cs1, cs2): every envelope opens to the
// entry.
func TestEveryFormatRoundTripsOrdinaryChat(t *testing.T) {
	kr := mustKeyring(t, testKey(3))
	for i, e := range ordinaryChat(50, 7) {
		env := mustSeal(t, kr, e)
		if !strings.HasPrefix(env, "cs3.") {
			t.Fatalf("Seal made %.13s, want cs3", env)
		}
		want := e
		want.Time = e.Time.UTC()
		for _, env := range []string{env, sealV2(t, kr, e), sealV1(t, kr, e)} {
			got, err := kr.Open(env, testAccount)
			if err != nil {
				t.Fatalf("entry %d, %.3s: Open: %v", i, env, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("entry %d, %.3s: got %+v\nwant %+v", i, env, got, want)
			}
		}
	}
}

func TestOpenRefusesZipBombWithoutInflatingIt(t *testing.T) {
	kr := mustKeyring(t, testKey(1))
	// 1 GiB of zeros in about 1 MiB of envelope.
	env := sealDeflated(t, kr, zipBombStream(1024))
	if len(env) > MaxEnvelopeSize {
		t.Fatalf("bomb envelope is %d bytes, over MaxEnvelopeSize", len(env))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := kr.Open(env, testAccount)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrBadFormat) {
		t.Fatalf("Open: got %v, want ErrTooLarge", err)
	}
	checkOneCategory(t, err)
	// The plaintext buffers stop at MaxPlaintextSize+1 bytes; the base64
	// decoding and the box take about twice the envelope. Without the
	// limit, Open would allocate 1 GiB or more.
	limit := uint64(MaxPlaintextSize + 4*len(env) + 1<<20)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Errorf("Open of a zip bomb allocated %d MiB, want at most %d MiB", got>>20, limit>>20)
	}
}

func TestInflateLimitIsInclusive(t *testing.T) {
	for _, padding := range []int{0, 64 << 10} {
		padded := padding > 0
		got, err := inflate(zeroPadded(zipBombStream(17), padding), 17<<20, padded)
		if err != nil || len(got) != 17<<20 {
			t.Fatalf("inflate to exactly the limit, %d bytes of padding: %d bytes, %v", padding, len(got), err)
		}
		if _, err := inflate(zeroPadded(zipBombStream(18), padding), 17<<20, padded); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("inflate one MiB over the limit, %d bytes of padding: got %v, want ErrTooLarge", padding, err)
		}
	}
	if MaxPlaintextSize != 17<<20 {
		t.Fatalf("MaxPlaintextSize is %d; update this test", MaxPlaintextSize)
	}
	// At the limit, Open goes on to the entry checks, and padding does
	// not count towards it.
	kr := mustKeyring(t, testKey(1))
	if _, err := kr.Open(sealDeflated(t, kr, zipBombStream(17)), testAccount); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("Open of 17 MiB of zeros: got %v, want ErrBadEntry", err)
	}
	if _, err := kr.Open(sealPadded(t, kr, zeroPadded(zipBombStream(17), 1<<20)), testAccount); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("Open of 17 MiB of zeros padded with 1 MiB: got %v, want ErrBadEntry", err)
	}
}

// FuzzOpenDeflate reaches the cs2 and cs3 decompression behind
// authentication: it seals arbitrary bytes as the compressed content of a
// cs2 and of a cs3 box. Whatever they are, Open must not panic, must fail
// with one category, and must never fail with ErrAuth or ErrUnknownKey.
func FuzzOpenDeflate(f *testing.F) {
	kr := mustKeyring(f, testKey(1))
	good, err := encodeEntry(testEntry())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(deflate(good))
	f.Add(deflate(good)[:20])
	f.Add(append(deflate(good), 0))
	f.Add([]byte{})
	f.Add([]byte{0x07})                         // reserved block type
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff}) // empty stored block
	f.Add(zeroPadded(deflate(good), 100))
	f.Add(append(zeroPadded(deflate(good), 100), 1))
	f.Fuzz(func(t *testing.T, z []byte) {
		for _, bk := range []*boxKey{&kr.keys[0].v2, &kr.keys[0].v3} {
			env, err := sealBox(bk, z)
			if err != nil {
				return
			}
			e, err := kr.Open(env, testAccount)
			if err != nil {
				checkOneCategory(t, err)
				if errors.Is(err, ErrAuth) || errors.Is(err, ErrUnknownKey) {
					t.Fatalf("authentic envelope failed with %v", err)
				}
				continue
			}
			if _, err := kr.Seal(e); err != nil {
				t.Fatalf("opened entry does not seal again: %v", err)
			}
		}
	})
}
