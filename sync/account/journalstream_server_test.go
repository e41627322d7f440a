package account_test

// The streamed get_journal_entries against our own server (package
// accountserver) over real HTTP: pages far over MaxReplyBytes, rows over
// MaxRowBytes, PHP notices before the page, and connections cut mid-page.

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// pageRig is an accountserver behind a handler that can alter its 200
// get_journal_entries replies: print text before them, or send only the
// first bytes and break the connection. It records each such body's
// length as the server meant to send it.
type pageRig struct {
	url string

	mu      sync.Mutex
	prefix  string // printed before the JSON
	cut     int    // > 0: send only this many bytes, then break the connection
	lengths []int  // of the journal bodies, prefix included
}

func newPageRig(t *testing.T) *pageRig {
	t.Helper()
	srv := newSeededServer(t)
	p := &pageRig{}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("action") != "get_journal_entries" {
			srv.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if rec.Code != http.StatusOK {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		p.mu.Lock()
		body := p.prefix + rec.Body.String()
		cut := p.cut
		p.lengths = append(p.lengths, len(body))
		p.mu.Unlock()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if cut > 0 {
			io.WriteString(w, body[:cut])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, body)
	}))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.Start()
	t.Cleanup(hs.Close)
	p.url = hs.URL + accountserver.Path
	return p
}

func (p *pageRig) set(prefix string, cut int) {
	p.mu.Lock()
	p.prefix, p.cut = prefix, cut
	p.mu.Unlock()
}

func (p *pageRig) lastLength(t *testing.T) int64 {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lengths) == 0 {
		t.Fatal("no journal page was served")
	}
	return int64(p.lengths[len(p.lengths)-1])
}

func (p *pageRig) client(t *testing.T, mod func(*account.Config)) *account.Client {
	t.Helper()
	cfg := account.Config{Address: "alice@example.com", SettingsURL: p.url, Password: "secret", Timeout: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := account.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// rowData is the data of row i: n bytes, different for every row.
func rowData(i, n int) string {
	s := fmt.Sprintf("row %d ", i)
	return s + strings.Repeat(string(rune('a'+i%26)), n-len(s))
}

func TestServerJournalPageFarOverMaxReplyBytesIsReadWhole(t *testing.T) {
	p := newPageRig(t)
	const maxReply = 1 << 20
	c := p.client(t, func(c *account.Config) { c.MaxReplyBytes = maxReply })
	es := make([]account.PutEntry, account.JournalPageMax)
	for i := range es {
		es[i] = account.PutEntry{ID: strconv.Itoa(i), Data: rowData(i, 1050)}
	}
	if _, err := c.PutJournalEntries(ctx(t), "urn:uuid:writer", es); err != nil {
		t.Fatal(err)
	}

	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{ExceptUUID: "urn:uuid:reader"})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.lastLength(t); n < 5<<20 || page.Bytes != n {
		t.Fatalf("page of %d bytes, Bytes = %d; want a page over 5 MiB, all of it counted", n, page.Bytes)
	}
	if page.Rows != account.JournalPageMax || len(page.Entries) != account.JournalPageMax {
		t.Fatalf("rows %d, %d entries", page.Rows, len(page.Entries))
	}
	for i, e := range page.Entries {
		if e.Data != es[i].Data || e.UUID != "urn:uuid:writer" || e.Account != "alice@example.com" || e.Source != "default" {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}

	// PHP notices before the same page: read whole, so the cap applies
	// (only broken deployments print them).
	p.set(phpNotices, 0)
	_, err = c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if e := wantKind(t, err, account.KindMalformed); !strings.Contains(e.Message, "larger than 1048576 bytes") {
		t.Errorf("notices before a 5 MiB page: %v", e)
	}
}

const phpNotices = "<br />\n<b>Warning</b>:  Undefined array key \"after_id\" in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>5012</b><br />\n" +
	"<br />\n<b>Deprecated</b>:  Creation of dynamic property SipSettings::$db is deprecated in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>201</b><br />\n"

func TestServerJournalRowOverMaxRowBytesFailsNamingTheRowAndLimit(t *testing.T) {
	p := newPageRig(t)
	c := p.client(t, func(c *account.Config) { c.MaxRowBytes = 64 << 10 })
	es := []account.PutEntry{
		{ID: "a", Data: rowData(0, 100)},
		{ID: "b", Data: rowData(1, 60<<10)}, // under the limit with its fields
		{ID: "c", Data: rowData(2, 200<<10)},
		{ID: "d", Data: rowData(3, 100)},
	}
	if _, err := c.PutJournalEntries(ctx(t), "urn:uuid:writer", es); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	e := wantKind(t, err, account.KindMalformed)
	if want := "journal row 2 is larger than 65536 bytes (MaxRowBytes)"; e.Message != want || e.Action != "get_journal_entries" {
		t.Fatalf("err = %v, want %q", e, want)
	}
	if strings.Contains(e.Error(), "cccc") {
		t.Errorf("the error quotes journal data: %v", e)
	}
	// The rows before and after it are fine.
	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{AfterID: 3})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].Data != es[3].Data {
		t.Fatalf("after the big row: %+v, %v", page, err)
	}
	page, err = c.GetJournalEntries(ctx(t), account.JournalQuery{Limit: 2})
	if err != nil || len(page.Entries) != 2 || page.Entries[1].Data != es[1].Data {
		t.Fatalf("before the big row: %v", err)
	}
}

func TestServerJournalPHPNoticesBeforeThePageStillParse(t *testing.T) {
	p := newPageRig(t)
	c := p.client(t, nil)
	if _, err := c.PutJournalEntries(ctx(t), "urn:uuid:writer", []account.PutEntry{{ID: "1", Data: "café/1"}, {ID: "2", Data: `x\y`}}); err != nil {
		t.Fatal(err)
	}
	p.set(phpNotices, 0)
	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.Entries[0].Data != "café/1" || page.Entries[1].Data != `x\y` || page.Rows != 2 {
		t.Fatalf("page = %+v", page)
	}
	if n := p.lastLength(t); page.Bytes != n {
		t.Errorf("Bytes = %d, body %d", page.Bytes, n)
	}
	// And the idle poll: an empty page, its size counted.
	p.set("", 0)
	page, err = c.GetJournalEntries(ctx(t), account.JournalQuery{AfterID: 2})
	if err != nil || len(page.Entries) != 0 || page.Bytes != p.lastLength(t) {
		t.Fatalf("empty page %+v, %v", page, err)
	}
}

func TestServerJournalPageCutMidBodyIsRetryableTransportError(t *testing.T) {
	p := newPageRig(t)
	c := p.client(t, nil)
	es := make([]account.PutEntry, 300)
	for i := range es {
		es[i] = account.PutEntry{ID: strconv.Itoa(i), Data: rowData(i, 1000)}
	}
	if _, err := c.PutJournalEntries(ctx(t), "urn:uuid:writer", es); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{10, 1000, 150_000, 300_000} {
		p.set("", cut)
		_, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
		if e := wantKind(t, err, account.KindTransport); !e.Retryable() {
			t.Errorf("cut at %d: %v is not retryable", cut, e)
		}
		var ae *account.Error
		if errors.As(err, &ae) && ae.Action != "get_journal_entries" {
			t.Errorf("cut at %d: action %q", cut, ae.Action)
		}
	}
	// The next poll reads the page.
	p.set("", 0)
	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if err != nil || len(page.Entries) != len(es) {
		t.Fatalf("after the cuts: %v", err)
	}
}

// newSeededServer is an accountserver with the seed accounts and a fixed
// clock, closed at the test's end: the server behind the rigs that
// look at the wire.
func newSeededServer(t *testing.T) *accountserver.Server {
	t.Helper()
	accts, err := accountserver.ParseAccounts([]byte(seedTOML))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: accts, Now: (&fakeClock{t: start}).Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}
