package account

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"testing"
)

// benchPageBody is a full page as the real server prints it: 5000 rows
// of about 1.5 kB (1.35 kB of base64 payload, the rest the row's fields).
func benchPageBody() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]string, JournalPageMax)
	raw := make([]byte, 1012)
	for i := range data {
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		data[i] = base64.StdEncoding.EncodeToString(raw)
	}
	return []byte(pageReply(data...))
}

// probeReader calls probe every `every` bytes read.
type probeReader struct {
	r        io.Reader
	every, n int
	probe    func()
}

func (p *probeReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += n
	if p.n >= p.every {
		p.n = 0
		p.probe()
	}
	return n, err
}

// peakLive runs read once and returns the most live heap seen, above what
// was live before: after a GC every 256 KiB of body read and once at the
// end, with read's result still referenced.
func peakLive(body []byte, read func(io.Reader, func()) any) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, uint64(0)
	probe := func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base {
			peak = max(peak, ms.HeapAlloc-base)
		}
	}
	keep := read(&probeReader{r: bytes.NewReader(body), every: 256 << 10, probe: probe}, probe)
	runtime.KeepAlive(keep)
	return peak
}

func okResponse(r io.Reader) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(r)}
}

// BenchmarkJournalPage decodes a 5000-row page (7.5 MB) through the
// buffered path that GetJournalEntries used before (read whole, clean,
// check the envelope, unmarshal) and through the stream it uses now.
// peak-live-B is the largest live heap seen while decoding, the page
// included: the buffered path holds the whole body next to the rows.
func BenchmarkJournalPage(b *testing.B) {
	body := benchPageBody()
	c := &Client{maxReply: DefaultMaxReplyBytes, maxRow: DefaultMaxRowBytes}
	const action = "get_journal_entries"
	buffered := func(r io.Reader, probe func()) any {
		js, err := c.readReply(action, okResponse(r), r)
		if err != nil {
			b.Fatal(err)
		}
		if _, e := checkEnvelope(js, true); e != nil {
			b.Fatal(e)
		}
		page, err := parseJournalReply(js)
		if err != nil || len(page.Entries) != JournalPageMax {
			b.Fatal(err)
		}
		probe() // the body (js) is still live here, as it was in the old path
		runtime.KeepAlive(js)
		return page
	}
	stream := func(r io.Reader, probe func()) any {
		page, err := c.readJournalPage(action, okResponse(r))
		if err != nil || len(page.Entries) != JournalPageMax {
			b.Fatal(err)
		}
		probe()
		return page
	}
	for _, m := range []struct {
		name string
		read func(io.Reader, func()) any
	}{{"buffered", buffered}, {"stream", stream}} {
		b.Run(m.name, func(b *testing.B) {
			peak := peakLive(body, m.read)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				m.read(bytes.NewReader(body), func() {})
			}
			b.ReportMetric(float64(peak), "peak-live-B")
		})
	}
}
