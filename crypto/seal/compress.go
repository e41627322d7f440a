package seal

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// deflateLevel is the compress/flate level of cs2 and cs3 plaintexts.
//
// Measured with BenchmarkDeflateLevel on chat text: entries of Blink
// messages with one to three sentences (about 810 bytes of entry JSON),
// with about 4 KiB of body, and with 256 KiB. Compressed size as a share
// of the JSON, and time relative to level 1 (absolute times vary too much
// on a shared machine; level 6 takes some 60 µs for an ordinary entry):
//
//	level          ~810 B entry    ~4 KiB entry    256 KiB entry
//	HuffmanOnly    70.5%  x0.6     62.0%  x0.5     56.7%  x0.5
//	1 BestSpeed    60.4%  x1       49.7%  x1       35.9%  x1
//	2              58.2%  x1.7     48.2%  x1.4     34.5%  x1.7
//	6 Default      57.7%  x1.7     47.5%  x1.5     32.4%  x5.2
//	9 Best         57.7%  x1.7     47.5%  x1.4     32.4%  x5.3
//
// Levels 2 to 9 cost the same on entries of a few kilobytes: resetting the
// compressor (clearing its 640 KiB of hash tables) outweighs compressing
// them. Level 6 makes those 4.5% smaller than level 1 does, and large
// entries 10% smaller (6% smaller than level 2), and large rows are the
// ones that fill a server page, so size matters more here than CPU: even
// a 17 MiB plaintext compresses in about a second, once, on the writing
// device, and a chat message in well under a millisecond. Level 9 gains
// nothing on text over 6 and can be much slower on repetitive input. The
// reader does not depend on the level.
const deflateLevel = flate.DefaultCompression

// Compressors and decompressors are pooled: a level 6 flate.Writer holds
// about 1 MiB of tables, far more than the entry it compresses, and
// allocating one per Seal would make sealing a chat message many times
// slower. (A pooled compressor keeps the last plaintext in its window until
// it is used again, like any other buffer the garbage collector has not
// reused yet.)
var (
	deflaters = sync.Pool{New: func() any {
		d := new(deflater)
		w, err := flate.NewWriter(&d.out, deflateLevel)
		if err != nil {
			panic("seal: flate.NewWriter: " + err.Error()) // only for an invalid level
		}
		d.w = w
		return d
	}}
	inflaters sync.Pool // of io.ReadCloser that is a flate.Resetter
)

type deflater struct {
	w   *flate.Writer // writes to out
	out sliceWriter
}

// sliceWriter appends to a slice; unlike a bytes.Buffer it can hand the
// slice over and forget it.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// deflate returns plain compressed as raw DEFLATE (RFC 1951) at
// deflateLevel.
func deflate(plain []byte) []byte {
	d := deflaters.Get().(*deflater)
	d.out.b = make([]byte, 0, len(plain)/2+64)
	d.w.Reset(&d.out)
	// Writes to a sliceWriter do not fail.
	d.w.Write(plain)
	d.w.Close()
	z := d.out.b
	d.out.b = nil
	deflaters.Put(d)
	return z
}

// inflate decompresses z, a raw DEFLATE stream that must end exactly at the
// end of z (cs2) or, if padded, be followed by nothing but zero bytes
// (cs3). Its result is at most limit bytes: it stops and returns
// ErrTooLarge as soon as the data inflates beyond that, so no input can
// make it allocate more than limit+1 bytes of output buffers before it
// gives up (or twice the result's size for a result that fits); the
// padding is never inflated, so it cannot raise that. Any other malformed
// input, data after the end of the stream that is not allowed included,
// returns an error wrapping errCorrupt; it never panics. Both errors match
// ErrBadFormat.
func inflate(z []byte, limit int, padded bool) ([]byte, error) {
	src := bytes.NewReader(z) // an io.ByteReader, so flate reads no further than it needs
	var fr io.ReadCloser
	if v := inflaters.Get(); v != nil {
		fr = v.(io.ReadCloser)
		if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
	} else {
		fr = flate.NewReader(src)
	}
	defer func() {
		fr.(flate.Resetter).Reset(bytes.NewReader(nil), nil) // drop the reference to z
		inflaters.Put(fr)
	}()

	// Inflate into chunks that double in size, starting at four times z
	// (text compresses to a third or more, so one chunk usually holds
	// it all), and never hold more than limit+1 bytes in all: one more
	// than the limit shows that the data is too large. A zip bomb thus
	// costs at most limit+1 bytes; data that fits costs its size, twice
	// if it needed more than one chunk.
	var chunks [][]byte
	total := 0 // bytes in chunks
	discard := func() {
		for _, c := range chunks {
			clear(c)
		}
	}
	cur := make([]byte, 0, min(max(4*len(z), 512), limit+1))
	for {
		if len(cur) == cap(cur) {
			chunks = append(chunks, cur)
			total += len(cur)
			if total > limit {
				discard()
				return nil, fmt.Errorf("%w: compressed plaintext inflates beyond %d bytes", ErrTooLarge, limit)
			}
			cur = make([]byte, 0, min(2*cap(cur), limit+1-total))
		}
		n, err := fr.Read(cur[len(cur):cap(cur)])
		cur = cur[:len(cur)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			discard()
			clear(cur)
			if err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("%w: it ends early", errCorrupt)
			}
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
	}
	if total+len(cur) > limit { // the last chunk filled up with the last bytes
		discard()
		clear(cur)
		return nil, fmt.Errorf("%w: compressed plaintext inflates beyond %d bytes", ErrTooLarge, limit)
	}
	if rest := z[len(z)-src.Len():]; len(rest) != 0 && (!padded || !allZero(rest)) {
		discard()
		clear(cur)
		if padded {
			return nil, fmt.Errorf("%w: %d bytes follow its end, not all zero", errCorrupt, len(rest))
		}
		return nil, fmt.Errorf("%w: %d bytes follow its end", errCorrupt, len(rest))
	}
	if len(chunks) == 0 {
		return cur, nil
	}
	plain := make([]byte, 0, total+len(cur))
	for _, c := range chunks {
		plain = append(plain, c...)
	}
	plain = append(plain, cur...)
	discard()
	clear(cur)
	return plain, nil
}

// allZero reports whether b holds only zero bytes: cs3 padding.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
