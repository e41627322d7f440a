package account_test

// Client.Traffic checked against our own server (accountserver) over
// real HTTP: a handler in front of the server measures what arrives and
// what leaves, and the client's counts must equal it.

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// wireExchange is one request as the server side of the wire saw it.
type wireExchange struct {
	action string
	status int
	// target is the request line's target (path and query), body the
	// request body and reply the reply body written.
	target, body, reply int
}

// wireRig is an accountserver behind a handler that measures every
// exchange's bytes.
type wireRig struct {
	url string
	mu  sync.Mutex
	log []wireExchange
}

func newWireRig(t *testing.T) *wireRig {
	t.Helper()
	srv := newSeededServer(t)
	w := &wireRig{}
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading a request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		m := &measuringWriter{ResponseWriter: rw}
		srv.ServeHTTP(m, r)
		w.mu.Lock()
		w.log = append(w.log, wireExchange{
			action: r.URL.Query().Get("action"),
			status: m.status,
			target: len(r.RequestURI),
			body:   len(body),
			reply:  m.n,
		})
		w.mu.Unlock()
	}))
	t.Cleanup(hs.Close)
	w.url = hs.URL + accountserver.Path
	return w
}

// totals sums the bytes that arrived (targets and bodies) and left
// (reply bodies), and returns the exchanges.
func (w *wireRig) totals() (in, out int64, log []wireExchange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range w.log {
		in += int64(x.target + x.body)
		out += int64(x.reply)
	}
	return in, out, append([]wireExchange(nil), w.log...)
}

func (w *wireRig) alice(t *testing.T) *account.Client {
	t.Helper()
	c, err := account.New(account.Config{Address: "alice@example.com", SettingsURL: w.url, Password: "secret", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// measuringWriter counts the reply body bytes written.
type measuringWriter struct {
	http.ResponseWriter
	status, n int
}

func (m *measuringWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func (m *measuringWriter) WriteHeader(code int) {
	if m.status == 0 {
		m.status = code
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *measuringWriter) Write(b []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	k, err := m.ResponseWriter.Write(b)
	m.n += k
	return k, err
}

// wantTraffic fails unless c's counts equal what the wire carried.
func wantTraffic(t *testing.T, c *account.Client, w *wireRig) (sent, received int64) {
	t.Helper()
	in, out, _ := w.totals()
	sent, received = c.Traffic()
	if sent != in || received != out {
		t.Errorf("Traffic() = sent %d, received %d; the server got %d and wrote %d", sent, received, in, out)
	}
	return sent, received
}

func TestTrafficCountsEveryAttemptOfAPutAndAReadExactly(t *testing.T) {
	w := newWireRig(t)
	c := w.alice(t)
	if s, r := c.Traffic(); s != 0 || r != 0 {
		t.Fatalf("a new client's Traffic() = %d, %d; want 0, 0", s, r)
	}

	batch := []account.PutEntry{
		{ID: "m1", Data: strings.Repeat("x", 3000)},
		{ID: "m2", Data: `café "q" <b> & more`},
	}
	dataBytes := int64(len(batch[0].Data) + len(batch[1].Data))
	if _, err := c.PutJournalEntries(ctx(t), "urn:uuid:traffic", batch); err != nil {
		t.Fatal(err)
	}
	sent, received := wantTraffic(t, c, w)
	if sent < dataBytes {
		t.Errorf("sent %d after putting %d bytes of data", sent, dataBytes)
	}
	// The first call is the digest layer's body-less probe, its 401 and
	// the authenticated put: all three count.
	_, _, log := w.totals()
	if len(log) != 2 || log[0].status != http.StatusUnauthorized || log[0].body != 0 || log[1].status != http.StatusOK {
		t.Fatalf("exchanges of the first put: %+v; want a body-less 401 probe, then the put", log)
	}

	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 {
		t.Fatalf("read %d entries, want 2", len(page.Entries))
	}
	sent2, received2 := wantTraffic(t, c, w)
	_, _, log = w.totals()
	if len(log) != 3 || log[2].action != "get_journal_entries" {
		t.Fatalf("exchanges: %+v; want the read to be one more (the challenge is reused)", log)
	}
	read := log[2]
	if got, want := sent2-sent, int64(read.target); got != want || read.body != 0 {
		t.Errorf("the read added %d bytes sent, want its request target's %d (a GET has no body: %d)", got, want, read.body)
	}
	if got, want := received2-received, int64(read.reply); got != want {
		t.Errorf("the read added %d bytes received, want the %d bytes of JSON the server wrote", got, want)
	}
	if got := received2 - received; got < dataBytes {
		t.Errorf("the read added %d bytes received, less than the %d bytes of data it returned", got, dataBytes)
	}
}

func TestTrafficCountsGetParametersInTheURL(t *testing.T) {
	w := newWireRig(t)
	c := w.alice(t)
	if _, err := c.GetJournalEntries(ctx(t), account.JournalQuery{}); err != nil {
		t.Fatal(err)
	}
	s1, _ := wantTraffic(t, c, w)
	long := "urn:uuid:" + strings.Repeat("f", 500)
	if _, err := c.GetJournalEntries(ctx(t), account.JournalQuery{ExceptUUID: long}); err != nil {
		t.Fatal(err)
	}
	s2, _ := wantTraffic(t, c, w)
	_, _, log := w.totals()
	short, longer := log[len(log)-2], log[len(log)-1]
	if got, want := s2-s1, int64(longer.target); got != want {
		t.Errorf("the read with a long except_uuid added %d bytes sent, want its target's %d", got, want)
	}
	if longer.target-short.target < len(long) {
		t.Errorf("targets %d and %d: the parameter of %d bytes is not in the URL", short.target, longer.target, len(long))
	}
}

func TestTrafficAddsUpUnderConcurrentCalls(t *testing.T) {
	w := newWireRig(t)
	c := w.alice(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := c.PutJournalEntries(ctx(t), "urn:uuid:traffic", []account.PutEntry{{ID: "m", Data: strings.Repeat("d", 100*i)}})
				if err != nil {
					t.Error(err)
				}
			} else if _, err := c.GetJournalEntries(ctx(t), account.JournalQuery{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sent, received := wantTraffic(t, c, w)
	if sent == 0 || received == 0 {
		t.Errorf("Traffic() = %d, %d after 8 calls", sent, received)
	}
}

func TestTrafficLeavesOutAnAttemptWithoutAnAnswer(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL + accountserver.Path
	hs.Close() // nothing listens there now
	c, err := account.New(account.Config{Address: "alice@example.com", SettingsURL: url, Password: "secret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetJournalEntries(ctx(t), account.JournalQuery{})
	wantKind(t, err, account.KindTransport)
	if s, r := c.Traffic(); s != 0 || r != 0 {
		t.Errorf("Traffic() = %d, %d after a refused connection; want 0, 0", s, r)
	}
}

func TestTrafficCountsTheChallengesTheDigestLayerDrains(t *testing.T) {
	// A server that refuses every answer, with a body on its 401s: the
	// digest layer reads the first 401 itself and retries; the client
	// reads the second.
	const refusal = "<p>authentication required</p>"
	var mu sync.Mutex
	var targets int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		targets += int64(len(r.RequestURI))
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Digest realm="example.com", qop="auth", nonce="bm9uY2U", opaque="op"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, refusal)
	}))
	t.Cleanup(hs.Close)
	c, err := account.New(account.Config{Address: "alice@example.com", SettingsURL: hs.URL + accountserver.Path, Password: "secret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	_, err = c.GetJournalEntries(ctx(t), account.JournalQuery{})
	wantKind(t, err, account.KindAuth)
	mu.Lock()
	defer mu.Unlock()
	sent, received := c.Traffic()
	if sent != targets || received != 2*int64(len(refusal)) {
		t.Errorf("Traffic() = %d, %d; want the two attempts' targets (%d) and both refusals (%d)",
			sent, received, targets, 2*len(refusal))
	}
}
