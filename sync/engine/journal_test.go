package engine

// Tests of reading and writing the journal on servers that behave like the
// real one under load and faults (PROTOCOL.md §12): pages PHP cannot hold,
// page caps other than 5000, rows the database refuses, a server that
// ignores after_id. Each runs the engine against a real chatsync-server
// with the matching options.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// prose is ordinary English text for message bodies (testdata/opticks.txt).
var prose = sync.OnceValue(func() string {
	b, err := os.ReadFile("testdata/opticks.txt")
	if err != nil {
		panic(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
})

// chatMsg is an ordinary chat message of about size bytes of JSON, with
// Blink's fields and a body of English prose taken from a place that
// depends on i.
func chatMsg(i, size int) map[string]any {
	m := msg(fmt.Sprintf("%08x-4b1c-4d2e-9f3a-%012x", i*7919, i), fmt.Sprintf("friend%d@example.org", i%7), "")
	m["cpim_from"], m["cpim_to"] = testAccount, m["remote_uri"]
	m["cpim_timestamp"] = "2026-11-25T10:00:00.000000+00:00"
	m["private"], m["call_id"], m["encryption"] = "0", "", ""
	text := prose()
	n := max(size-300, 1)
	start := (i * 997) % (len(text) - n)
	m["body"] = text[start : start+n]
	return m
}

// attachment is a message of about size bytes that does not compress (an
// inline picture, base64).
func attachment(id string, size int) map[string]any {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	m := msg(id, "c@example.com", base64.StdEncoding.EncodeToString(raw))
	m["content_type"] = "image/jpeg"
	return m
}

// wire counts what the server sends back for get_journal_entries.
type wire struct {
	mu      sync.Mutex
	replies []reply
}

type reply struct {
	polled bool // a poll (except_uuid set), not a probe or a reconciliation
	bytes  int
	status int
	at     time.Time
}

type countingWriter struct {
	http.ResponseWriter
	n      int
	status int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += n
	return n, err
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

// count makes srv record the size of every get_journal_entries reply sent
// to the device with id device.
func (w *wire) count(srv *server, device string) {
	srv.setWrap(func(rw http.ResponseWriter, r *http.Request, next http.Handler) bool {
		q := r.URL.Query()
		if q.Get("action") != "get_journal_entries" || r.Header.Get("Authorization") == "" {
			return false
		}
		cw := &countingWriter{ResponseWriter: rw, status: http.StatusOK}
		next.ServeHTTP(cw, r)
		if ex := q.Get("except_uuid"); ex == "" || ex == device {
			w.mu.Lock()
			w.replies = append(w.replies, reply{polled: ex != "", bytes: cw.n, status: cw.status, at: time.Now()})
			w.mu.Unlock()
		}
		return true
	})
}

func (w *wire) since(t time.Time) []reply {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []reply
	for _, r := range w.replies {
		if r.at.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// An idle device asks the journal from its cursor and gets the empty reply
// (59 bytes on the real server), even when the newest row is a large
// message: no overlap below the cursor, no probe of the newest row at
// every poll.
func TestIdlePollTransfersOnlyTheEmptyReply(t *testing.T) {
	// A server that answers every poll at once, as the real one does:
	// idle polls come at the poll interval (a waiting poll is the same
	// empty reply, once per wait).
	srv := newServerWith(t, func(o *accountserver.Options) { o.StrictCompat = true })
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	for _, d := range []*device{a, b} {
		d.tweak = func(o *Options) {
			o.MaxMessageBytes = 1 << 20
			o.ProbeInterval = time.Hour // the default
		}
	}
	a.start()
	b.start()
	for i := range 20 {
		a.write(fmt.Sprintf("c/m%02d.json", i), chatMsg(i, 1000))
	}
	a.write("c/big.json", attachment("big", 900<<10))
	waitFor(t, 30*time.Second, "21 messages on B", func() bool { return len(b.messages()) == 21 })
	var w wire
	w.count(srv, b.db.DeviceID())
	since := time.Now()
	waitFor(t, 30*time.Second, "B to poll 20 times more", func() bool { return len(w.since(since)) >= 20 })
	replies := w.since(since)
	sizes := make([]int, 0, len(replies))
	for _, r := range replies {
		sizes = append(sizes, r.bytes)
	}
	slices.Sort(sizes)
	t.Logf("%d idle polls: median %d bytes, largest %d", len(sizes), sizes[len(sizes)/2], sizes[len(sizes)-1])
	if median := sizes[len(sizes)/2]; median >= 1000 {
		t.Errorf("median idle poll reply is %d bytes, want under 1 KB", median)
	}
	if largest := sizes[len(sizes)-1]; largest >= 1000 {
		t.Errorf("an idle poll or probe downloaded %d bytes: rows it already has", largest)
	}
}

// A new device joins an account whose journal holds 6000 ordinary chat
// messages of about 3.6 kB, on a stock real server: uncompressed, a page
// of 5000 such rows is 29.6 MB and PHP fails on it; compressed it is well
// under the 20 MB the server can send.
func TestNewDeviceGetsA6000MessageHistoryFromAServerWithA20MBPageLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("6000 messages")
	}
	srv := newServerWith(t, func(o *accountserver.Options) {
		o.StrictCompat, o.PageBytesLimit, o.ShuffleSameSecond = true, accountserver.StrictPageBytesLimit, true
	})
	kr := newKeyring(t)
	writer := "urn:uuid:00000000-0000-4000-8000-0000000000aa"
	client := srv.client(t)
	var sizes, rows int
	for from := 0; from < 6000; from += 500 {
		var entries []account.PutEntry
		for i := from; i < from+500; i++ {
			body, _ := json.Marshal(chatMsg(i, 3600))
			sizes += len(body)
			m := chatMsg(i, 3600)
			env, err := kr.Seal(seal.Entry{Op: seal.OpPut, MsgID: m["msgid"].(string), Account: testAccount, Device: writer, Time: time.Now(), Message: body})
			if err != nil {
				t.Fatal(err)
			}
			rows += len(env)
			entries = append(entries, account.PutEntry{ID: strconv.Itoa(i), Data: env})
		}
		if _, err := client.PutJournalEntries(t.Context(), writer, entries); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("messages of %d bytes on average, rows of %d", sizes/6000, rows/6000)
	if 5000*rows/6000 >= accountserver.StrictPageBytesLimit {
		t.Fatalf("a page of 5000 rows is %d bytes: over the page limit before the device even tries", 5000*rows/6000)
	}
	b := newDevice(t, "B", srv, kr)
	b.start()
	waitFor(t, 120*time.Second, "6000 messages on B", func() bool { return b.status().Received == 6000 })
	if got := len(b.messages()); got != 6000 {
		t.Errorf("B holds %d messages, want 6000", got)
	}
}

// When the server cannot build a page and does not honour limit (the real
// server), status says what is happening and what the provider can do,
// receiving backs off, and this device's own messages keep leaving.
func TestPageTheServerCannotSendIsExplainedAndPushesGoOn(t *testing.T) {
	srv := newServerWith(t, func(o *accountserver.Options) { o.StrictCompat, o.PageBytesLimit = true, 200_000 })
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	a.start()
	b.start()
	since := time.Now()
	waitFor(t, 20*time.Second, "A and B idle", func() bool { return a.idle(since) && b.idle(since) })
	b.stop()
	for i := range 10 { // 10 × 60 kB: one page of 600 kB
		a.write(fmt.Sprintf("c/big%02d.json", i), attachment(fmt.Sprintf("big%02d", i), 60<<10))
	}
	waitFor(t, 20*time.Second, "A's 10 rows on the server", func() bool { return len(srv.rows()) == 10 })
	b.start()
	waitFor(t, 20*time.Second, "B to explain the page", func() bool {
		s := b.status()
		return s.State == StateBackoff && s.PollFailures > 0 && strings.Contains(s.Error, "memory_limit")
	})
	b.write("c/fromb.json", msg("fromb", "c@example.com", "still sent"))
	waitFor(t, 20*time.Second, "B's message on A while B cannot receive", func() bool {
		_, ok := a.messages()["fromb"]
		return ok
	})
	if s := b.status(); s.PushFailures != 0 || s.PollFailures == 0 {
		t.Errorf("B: %d push failures, %d poll failures; want 0 and some", s.PushFailures, s.PollFailures)
	}
}

// Where the server honours limit (chatsync-server outside --strict-compat),
// a page it cannot build is asked for again with fewer rows, and the
// device gets everything.
func TestServerThatHonoursLimitIsAskedForSmallerPages(t *testing.T) {
	srv := newServerWith(t, func(o *accountserver.Options) { o.PageBytesLimit = 200_000 })
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	a.start()
	for i := range 10 {
		a.write(fmt.Sprintf("c/big%02d.json", i), attachment(fmt.Sprintf("big%02d", i), 60<<10))
	}
	waitFor(t, 20*time.Second, "A's 10 rows on the server", func() bool { return len(srv.rows()) == 10 })
	b.start()
	waitFor(t, 30*time.Second, "10 messages on B", func() bool { return len(b.messages()) == 10 })
	since := time.Now()
	waitFor(t, 20*time.Second, "B idle", func() bool { return b.idle(since) })
}

// A failing poll does not stop pushes, and a failing push does not stop
// polls: each kind backs off on its own.
func TestPushAndPollFailAndBackOffIndependently(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	b.start()
	since := time.Now()
	waitFor(t, 20*time.Second, "A and B idle", func() bool { return a.idle(since) && b.idle(since) })
	bid := b.db.DeviceID()
	var failPolls, failPuts atomic.Bool
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		form := formOf(r)
		switch {
		case form.Get("action") == "get_journal_entries" && failPolls.Load() && strings.EqualFold(form.Get("except_uuid"), bid):
			w.WriteHeader(http.StatusInternalServerError)
			return true
		case form.Get("action") == "put_journal_entries" && failPuts.Load() && strings.EqualFold(form.Get("uuid"), bid):
			w.WriteHeader(http.StatusTooManyRequests) // refused before any insert: no entry of its own to hold back
			return true
		}
		return false
	})

	failPolls.Store(true)
	b.write("c/b1.json", msg("b1", "c@example.com", "sent while B cannot receive"))
	waitFor(t, 20*time.Second, "b1 on A while B's polls fail", func() bool {
		_, ok := a.messages()["b1"]
		return ok && b.status().OutboxDepth == 0 && b.status().PollFailures > 0
	})
	if s := b.status(); s.PollFailures == 0 || s.PushFailures != 0 || s.State != StateBackoff {
		t.Errorf("B with failing polls: state %s, %d poll and %d push failures", s.State, s.PollFailures, s.PushFailures)
	}
	failPolls.Store(false)
	failPuts.Store(true)
	b.write("c/b2.json", msg("b2", "c@example.com", "queued while B cannot send"))
	waitFor(t, 20*time.Second, "B's push to fail", func() bool { return b.status().PushFailures > 0 })
	a.write("c/a1.json", msg("a1", "c@example.com", "received while B cannot send"))
	waitFor(t, 20*time.Second, "a1 on B, B's polls working again", func() bool {
		_, ok := b.messages()["a1"]
		return ok && b.status().PollFailures == 0
	})
	if s := b.status(); s.PushFailures == 0 || s.PollFailures != 0 || !strings.Contains(s.Error, "sending") {
		t.Errorf("B with failing puts after a successful poll: %d push and %d poll failures, error %q; want the push still failing", s.PushFailures, s.PollFailures, s.Error)
	}
	failPuts.Store(false)
	waitFor(t, 30*time.Second, "b2 on A", func() bool { _, ok := a.messages()["b2"]; return ok })
}

// A row over the database's max_allowed_packet comes back with journal_id
// null; with Halt_On_Error=yes the request dies on it instead and the rows
// behind it in the batch are not stored. Either way the row is held back
// with its own backoff, named in status, and the rows behind it go out.
func TestRowTheServerRefusesIsHeldBackAndTheRowsBehindItAreStored(t *testing.T) {
	for _, halt := range []bool{false, true} {
		t.Run(fmt.Sprintf("halt_on_error=%v", halt), func(t *testing.T) {
			srv := newServerWith(t, func(o *accountserver.Options) {
				o.StrictCompat, o.MaxRowBytes, o.HaltOnError = true, 50_000, halt
			})
			kr := newKeyring(t)
			a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
			for _, d := range []*device{a, b} {
				d.tweak = func(o *Options) { o.EntryBackoff, o.MaxEntryBackoff = time.Second, time.Hour }
			}
			a.start()
			since := time.Now()
			waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
			a.stop()
			a.write("c/0-big.json", attachment("big", 100<<10))
			for i := range 5 {
				a.write(fmt.Sprintf("c/m%d.json", i), chatMsg(i, 500))
			}
			a.start()
			b.start()
			waitFor(t, 30*time.Second, "the 5 small messages on B", func() bool { return len(b.messages()) == 5 })
			waitFor(t, 20*time.Second, "the refused message in A's status", func() bool {
				s := a.status()
				return len(s.Held) == 1 && s.Held[0].MsgID == "big" && s.OutboxDepth == 1
			})
			if s := a.status(); s.PushFailures > 1 || s.Held[0].Attempts < 1 || !s.Held[0].RetryAt.After(time.Now()) {
				t.Errorf("A: %d push failures, held %+v; want the entry held with its own backoff", s.PushFailures, s.Held)
			}
			if n := serverMsgIDs(t, srv, kr)["big"]; n != 0 {
				t.Errorf("the journal holds %d rows of the refused message", n)
			}
		})
	}
}

// A server that returns the same rows whatever after_id says (the old
// Mongo backend) does not make the device poll in a loop.
func TestServerThatIgnoresAfterIDCausesNoHotLoop(t *testing.T) {
	srv := newServerWith(t, func(o *accountserver.Options) { o.IgnoreAfterID = true })
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	b.tweak = func(o *Options) { o.MaxBackoff = 2 * time.Second }
	a.start()
	for i := range 5 {
		a.write(fmt.Sprintf("c/m%d.json", i), chatMsg(i, 500))
	}
	waitFor(t, 20*time.Second, "5 rows", func() bool { return len(srv.rows()) == 5 })
	b.start()
	waitFor(t, 20*time.Second, "5 messages on B", func() bool { return len(b.messages()) == 5 })
	var w wire
	w.count(srv, b.db.DeviceID())
	since := time.Now()
	time.Sleep(3 * time.Second) // the window in which a loop would show
	n := 0
	for _, r := range w.since(since) {
		if r.polled {
			n++
		}
	}
	t.Logf("%d polls in 3 s", n)
	if n > 15 {
		t.Errorf("%d polls in 3 s: a hot loop", n)
	}
	if s := b.status(); !strings.Contains(s.Error, "after_id") {
		t.Errorf("B's status does not name the problem: %q", s.Error)
	}
	a.write("c/late.json", msg("late", "c@example.com", "still arrives"))
	waitFor(t, 30*time.Second, "a new message on B", func() bool { _, ok := b.messages()["late"]; return ok })
}

// A server whose pages hold 300 rows: the catch-up of a new device and the
// reconciliation of a batch whose reply was lost read every page, so
// nothing is missed and nothing is sent twice.
func TestServerWithAPageCapOf300MissesNothingAndStoresNothingTwice(t *testing.T) {
	srv := newServerWith(t, func(o *accountserver.Options) { o.PageRows = 300 })
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	a.start()
	for i := range 700 {
		a.write(fmt.Sprintf("c/m%03d.json", i), chatMsg(i, 300))
	}
	waitFor(t, 60*time.Second, "700 rows", func() bool { return len(srv.rows()) == 700 })
	// The next batch's reply is lost after the server stored it.
	var dropped atomic.Int32
	aid := a.db.DeviceID()
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		form := formOf(r)
		if form.Get("action") != "put_journal_entries" || !strings.EqualFold(form.Get("uuid"), aid) {
			return false
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK || dropped.Add(1) != 1 {
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return true
		}
		w.WriteHeader(http.StatusBadGateway) // stored, but the reply is lost
		return true
	})
	for i := range 400 {
		a.write(fmt.Sprintf("d/n%03d.json", i), chatMsg(1000+i, 300))
	}
	since := time.Now()
	waitFor(t, 60*time.Second, "A idle with 1100 rows", func() bool { return a.idle(since) && len(srv.rows()) >= 1100 })
	b.start()
	waitFor(t, 60*time.Second, "1100 messages on B", func() bool { return len(b.messages()) == 1100 })
	oneRowPerMessage(t, srv, kr, "")
	if dropped.Load() == 0 {
		t.Error("no put reply was dropped: the reconciliation was not tested")
	}
}

// formOf returns the query and form body parameters of r, leaving its
// body to be read again.
func formOf(r *http.Request) url.Values {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	v := r.URL.Query()
	if form, err := url.ParseQuery(string(body)); err == nil {
		for k, vs := range form {
			v[k] = append(v[k], vs...)
		}
	}
	return v
}

// An entry this device cannot use is counted and logged once, not at every
// poll.
func TestBadEntryIsLoggedAndCountedOnce(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	b := newDevice(t, "B", srv, kr)
	var logs bytes.Buffer
	var mu sync.Mutex
	b.tweak = func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	}
	writer := "urn:uuid:00000000-0000-4000-8000-0000000000bb"
	client := srv.client(t)
	if _, err := client.PutJournalEntries(t.Context(), writer, []account.PutEntry{{ID: "1", Data: "not a chatsync entry"}}); err != nil {
		t.Fatal(err)
	}
	b.start()
	var w wire
	w.count(srv, b.db.DeviceID())
	since := time.Now()
	waitFor(t, 20*time.Second, "B to poll 20 times", func() bool { return len(w.since(since)) >= 20 })
	if n := b.status().Skipped["not a chatsync entry"]; n != 1 {
		t.Errorf("the bad entry was counted %d times, want 1 (status: %v)", n, b.status().Skipped)
	}
	mu.Lock()
	n := strings.Count(logs.String(), "skipped a journal entry")
	mu.Unlock()
	if n != 1 {
		t.Errorf("the bad entry was logged %d times, want 1", n)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
