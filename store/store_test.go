package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const alice = "alice@example.com"

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustOpen(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reopen closes db and opens its directory again, as after a crash that
// lost nothing bbolt had committed.
func reopen(t testing.TB, db *DB, opts Options) *DB {
	t.Helper()
	dir := filepath.Dir(db.Path())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return mustOpen(t, dir, opts)
}

func put(msgid, body string) Push {
	return Push{MsgID: msgid, Op: OpPut, Envelope: "csy1:k1:" + msgid + ":" + body, Hash: "h-" + msgid + "-" + body}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func msgids(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.MsgID)
	}
	return strings.Join(s, ",")
}

func TestSecondOpenFailsFastWithAlreadyRunning(t *testing.T) {
	// bbolt locks with flock(2), which binds to the open file description,
	// so a second open in the same process conflicts like another process.
	dir := t.TempDir()
	first := mustOpen(t, dir, Options{})

	start := time.Now()
	second, err := Open(dir, Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded; want ErrLocked")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("second Open took %v; want about the timeout", elapsed)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("err = %v; want ErrLocked", err)
	}
	if want := "another chatsync is already running with state dir " + dir; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q; want it to contain %q", err, want)
	}
	// The first is unaffected.
	if _, err := first.Enqueue(alice, put("m1", "x")); err != nil {
		t.Errorf("first DB after failed second open: %v", err)
	}
}

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "chatsync")
	mustOpen(t, dir, Options{})
	fi := must[os.FileInfo](t)(os.Stat(dir))
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("state dir mode = %o; want 700", got)
	}
	fi = must[os.FileInfo](t)(os.Stat(filepath.Join(dir, FileName)))
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("state file mode = %o; want 600", got)
	}
}

func TestDeviceIDIsStableAcrossReopen(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	id := db.DeviceID()
	re := regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !re.MatchString(id) {
		t.Fatalf("DeviceID = %q; want urn:uuid:<v4>", id)
	}
	db = reopen(t, db, Options{})
	if got := db.DeviceID(); got != id {
		t.Errorf("DeviceID after reopen = %q; want %q", got, id)
	}
	other := mustOpen(t, t.TempDir(), Options{})
	if other.DeviceID() == id {
		t.Errorf("two state dirs share device id %q", id)
	}
}

func TestOutboxKeepsOrderAcrossReopen(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	must[Entry](t)(db.Enqueue(alice, put("c", "1")))
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "1"), put("b", "1")}))
	must[Entry](t)(db.Enqueue(alice, put("aa", "1")))

	db = reopen(t, db, Options{})
	b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	if got, want := msgids(b.Entries), "c,a,b,aa"; got != want {
		t.Fatalf("batch order = %s; want %s", got, want)
	}
	for i := 1; i < len(b.Entries); i++ {
		if b.Entries[i].Seq <= b.Entries[i-1].Seq {
			t.Errorf("seq %d after %d", b.Entries[i].Seq, b.Entries[i-1].Seq)
		}
	}
	if e := b.Entries[0]; e.Envelope != put("c", "1").Envelope || len(e.Token) != 32 {
		t.Errorf("entry = %+v; want the envelope and an opaque 32-char token", e)
	}
}

func TestEnqueueCoalescesPendingEditOfSameMsgid(t *testing.T) {
	clk := newClock()
	db := mustOpen(t, t.TempDir(), Options{Now: clk.Now})
	first := must[Entry](t)(db.Enqueue(alice, put("a", "v1")))
	clk.Advance(time.Minute)
	must[Entry](t)(db.Enqueue(alice, put("b", "v1")))
	clk.Advance(time.Minute)
	edit := must[Entry](t)(db.Enqueue(alice, put("a", "v2")))

	if edit.Seq != first.Seq {
		t.Errorf("edit seq = %d; want the position of the first version, %d", edit.Seq, first.Seq)
	}
	if !edit.Enqueued.Equal(first.Enqueued) {
		t.Errorf("edit enqueued = %v; want the first version's %v", edit.Enqueued, first.Enqueued)
	}
	if edit.Token == first.Token {
		t.Errorf("edit kept token %q; want a new one for the new envelope", edit.Token)
	}
	p, ok := must2(t)(db.Pending(alice, "a"))
	if !ok || p.Envelope != put("a", "v2").Envelope || p.Hash != put("a", "v2").Hash {
		t.Errorf("Pending(a) = %+v, %v; want v2", p, ok)
	}
	st := must[Stats](t)(db.Stats(alice))
	if st.OutboxDepth != 2 || !st.OldestUnsent.Equal(first.Enqueued) {
		t.Errorf("stats = %+v; want depth 2, oldest %v", st, first.Enqueued)
	}
	b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	if got := msgids(b.Entries); got != "a,b" {
		t.Fatalf("batch = %s; want a,b", got)
	}
	if b.Entries[0].Envelope != put("a", "v2").Envelope {
		t.Errorf("batch sends %q; want only v2", b.Entries[0].Envelope)
	}
}

func must2(t testing.TB) func(Entry, bool, error) (Entry, bool) {
	return func(e Entry, ok bool, err error) (Entry, bool) {
		t.Helper()
		noErr(t, err)
		return e, ok
	}
}

func TestEnqueueWhileInFlightAppendsNewVersion(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "v1"), put("b", "v1")}))
	b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	edit := must[Entry](t)(db.Enqueue(alice, put("a", "v2")))
	if edit.Seq <= b.Entries[1].Seq {
		t.Fatalf("edit of in-flight msgid got seq %d; want a new one after %d", edit.Seq, b.Entries[1].Seq)
	}
	if p, _ := must2(t)(db.Pending(alice, "a")); p.Seq != edit.Seq {
		t.Errorf("Pending(a).Seq = %d; want the newest, %d", p.Seq, edit.Seq)
	}
	noErr(t, db.CompleteBatch(alice, []Result{{Token: b.Entries[0].Token, JournalID: 7}, {Token: b.Entries[1].Token, JournalID: 8}}))

	if p, ok := must2(t)(db.Pending(alice, "a")); !ok || p.Seq != edit.Seq {
		t.Errorf("after completion Pending(a) = %+v, %v; want the v2 entry", p, ok)
	}
	v, _, err := db.Version(alice, "a")
	noErr(t, err)
	if v.JournalID != 7 || v.Hash != put("a", "v1").Hash {
		t.Errorf("Version(a) = %+v; want v1 at 7", v)
	}
	next := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	if got := msgids(next.Entries); got != "a" || next.Entries[0].Envelope != put("a", "v2").Envelope {
		t.Errorf("next batch = %+v; want a v2", next.Entries)
	}
	if next.Watermark != 8 {
		t.Errorf("watermark = %d; want 8, the highest own journal id", next.Watermark)
	}
}

func TestNullJournalIDStaysQueued(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "1"), put("b", "1"), put("c", "1"), put("d", "1")}))
	b := must[Batch](t)(db.NextBatch(alice, 3, 1<<20))
	noErr(t, db.CompleteBatch(alice, []Result{
		{Token: b.Entries[0].Token, JournalID: 0, Err: "insert failed"}, // null
		{Token: b.Entries[1].Token, JournalID: 12},
		// c: no row in the reply
	}))

	next := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	if got := msgids(next.Entries); got != "a,c,d" {
		t.Fatalf("after partial reply queued = %s; want a,c,d", got)
	}
	for i, want := range []struct {
		attempts int
		err      string
	}{{1, "insert failed"}, {1, "server returned no row for this entry"}, {0, ""}} {
		e := next.Entries[i]
		if e.Attempts != want.attempts || e.LastError != want.err {
			t.Errorf("%s: attempts %d, last error %q; want %d, %q", e.MsgID, e.Attempts, e.LastError, want.attempts, want.err)
		}
	}
	for i, j := range []int{0, 2} { // a and c keep the token they were sent with
		if next.Entries[i].Token != b.Entries[j].Token {
			t.Errorf("%s: token changed on retry", next.Entries[i].MsgID)
		}
	}
	if _, ok, _ := db.Version(alice, "a"); ok {
		t.Error("null row a has a held version")
	}
	if st := must[Stats](t)(db.Stats(alice)); st.OutboxDepth != 3 {
		t.Errorf("depth = %d; want 3", st.OutboxDepth)
	}
}

func TestHeldEntryIsPassedOverUntilItsTimeAndKeepsItsPlace(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	db := mustOpen(t, dir, Options{Now: clk.Now})
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "1"), put("b", "1"), put("c", "1")}))
	b := must[Batch](t)(db.NextBatch(alice, 1, 1<<20))
	retry := clk.Now().Add(time.Minute)
	noErr(t, db.CompleteBatch(alice, []Result{{Token: b.Entries[0].Token, Err: "refused", RetryAt: retry}}))

	next := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	if got := msgids(next.Entries); got != "b,c" {
		t.Fatalf("with a held back: batch = %s; want b,c", got)
	}
	if !next.HeldUntil.Equal(retry) {
		t.Errorf("HeldUntil = %v; want %v", next.HeldUntil, retry)
	}
	noErr(t, db.CompleteBatch(alice, []Result{{Token: next.Entries[0].Token, JournalID: 5}, {Token: next.Entries[1].Token, JournalID: 6}}))
	if b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20)); len(b.Entries) != 0 || !b.HeldUntil.Equal(retry) {
		t.Fatalf("only a held entry left: batch = %s, held until %v; want none, %v", msgids(b.Entries), b.HeldUntil, retry)
	}
	held := must[[]Entry](t)(db.Held(alice))
	if len(held) != 1 || held[0].MsgID != "a" || held[0].Attempts != 1 || held[0].LastError != "refused" || !held[0].RetryAt.Equal(retry) {
		t.Fatalf("Held = %+v; want a, 1 attempt, refused, until %v", held, retry)
	}
	db = reopen(t, db, Options{Now: clk.Now})
	clk.Advance(time.Minute)
	if b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20)); msgids(b.Entries) != "a" || b.Entries[0].Token != held[0].Token {
		t.Fatalf("after its time: batch = %s; want a with its token", msgids(b.Entries))
	}
	noErr(t, db.FailBatch(alice, errors.New("refused again")))
	// A new version of a held message is sent at once.
	must[Entry](t)(db.Enqueue(alice, put("a", "2")))
	if b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20)); msgids(b.Entries) != "a" || !b.Entries[0].RetryAt.IsZero() {
		t.Fatalf("after an edit: batch = %s, retry at %v; want a, not held", msgids(b.Entries), b.Entries[0].RetryAt)
	}
}

func TestCompleteBatchCommitsMappingAndRemovalTogether(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "1"), {MsgID: "b", Op: OpDelete, Envelope: "csy1:k1:del-b", Hash: "hb"}}))
	b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	ta, tb := b.Entries[0].Token, b.Entries[1].Token

	// An answer naming a token we did not send commits nothing at all.
	err := db.CompleteBatch(alice, []Result{{Token: ta, JournalID: 5}, {Token: "stranger", JournalID: 6}})
	if !errors.Is(err, ErrUnknownToken) {
		t.Fatalf("CompleteBatch with unknown token = %v; want ErrUnknownToken", err)
	}
	if _, ok, _ := db.JournalIDOf(alice, ta); ok {
		t.Error("mapping of a stored although CompleteBatch failed")
	}
	if _, ok := must2(t)(db.Pending(alice, "a")); !ok {
		t.Error("a left the outbox although CompleteBatch failed")
	}
	if _, ok, _ := db.InFlight(alice); !ok {
		t.Error("in-flight marker cleared although CompleteBatch failed")
	}

	noErr(t, db.CompleteBatch(alice, []Result{{Token: ta, JournalID: 5}, {Token: tb, JournalID: 6}}))
	db = reopen(t, db, Options{})
	for _, c := range []struct {
		token, msgid string
		id           int64
		hash         string
		deleted      bool
	}{{ta, "a", 5, put("a", "1").Hash, false}, {tb, "b", 6, "hb", true}} {
		if id, ok, err := db.JournalIDOf(alice, c.token); err != nil || !ok || id != c.id {
			t.Errorf("JournalIDOf(%s) = %d, %v, %v; want %d", c.msgid, id, ok, err, c.id)
		}
		v, ok, err := db.Version(alice, c.msgid)
		if err != nil || !ok || v != (Version{MsgID: c.msgid, JournalID: c.id, Hash: c.hash, Deleted: c.deleted, Own: true}) {
			t.Errorf("Version(%s) = %+v, %v, %v", c.msgid, v, ok, err)
		}
		if _, ok := must2(t)(db.Pending(alice, c.msgid)); ok {
			t.Errorf("%s still pending", c.msgid)
		}
	}
	if _, ok, _ := db.InFlight(alice); ok {
		t.Error("in-flight marker survived CompleteBatch")
	}
	// Nothing is queued any more; the highest journal id known is the
	// batch's last row.
	if st := must[Stats](t)(db.Stats(alice)); st != (Stats{Highwater: 6}) {
		t.Errorf("stats = %+v; want only Highwater 6", st)
	}
	if err := db.CompleteBatch(alice, nil); !errors.Is(err, ErrNoBatchInFlight) {
		t.Errorf("second CompleteBatch = %v; want ErrNoBatchInFlight", err)
	}
}

func TestInFlightBatchSurvivesCrash(t *testing.T) {
	clk := newClock()
	db := mustOpen(t, t.TempDir(), Options{Now: clk.Now})
	noErr(t, db.ApplyRemote(alice, 41, nil))
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "1"), put("b", "1"), put("c", "1")}))
	sent := must[Batch](t)(db.NextBatch(alice, 2, 1<<20))
	// The daemon dies here, after the POST, before CompleteBatch.
	db = reopen(t, db, Options{Now: clk.Now})

	got, ok, err := db.InFlight(alice)
	if err != nil || !ok {
		t.Fatalf("InFlight after reopen = %v, %v; want the batch", ok, err)
	}
	if got.Watermark != 41 || !got.Started.Equal(clk.Now()) || msgids(got.Entries) != "a,b" {
		t.Fatalf("InFlight = watermark %d started %v entries %s; want 41, %v, a,b", got.Watermark, got.Started, msgids(got.Entries), clk.Now())
	}
	for i := range got.Entries {
		if got.Entries[i].Envelope != sent.Entries[i].Envelope || got.Entries[i].Token != sent.Entries[i].Token {
			t.Errorf("entry %d changed across the crash", i)
		}
	}
	if _, err := db.NextBatch(alice, 10, 1<<20); !errors.Is(err, ErrBatchInFlight) {
		t.Errorf("NextBatch with a batch in flight = %v; want ErrBatchInFlight", err)
	}
	// Reconciliation found only a's row on the server.
	noErr(t, db.CompleteBatch(alice, []Result{{Token: got.Entries[0].Token, JournalID: 42}}))
	next := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	if msgids(next.Entries) != "b,c" || next.Entries[0].Attempts != 1 || next.Watermark != 42 {
		t.Errorf("after reconcile next = %s attempts %d watermark %d; want b,c 1 42", msgids(next.Entries), next.Entries[0].Attempts, next.Watermark)
	}
}

func TestFailBatchKeepsOrder(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{put("a", "1"), put("b", "1"), put("c", "1")}))
	b := must[Batch](t)(db.NextBatch(alice, 2, 1<<20))
	must[Entry](t)(db.Enqueue(alice, put("a", "2"))) // appended: a is in flight
	noErr(t, db.FailBatch(alice, errors.New("dial tcp: connection refused")))

	next := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	// a v1 is superseded by the queued v2 and dropped; b keeps its place.
	if got := msgids(next.Entries); got != "b,c,a" {
		t.Fatalf("after FailBatch = %s; want b,c,a", got)
	}
	if e := next.Entries[0]; e.Token != b.Entries[1].Token || e.Attempts != 1 || e.LastError != "dial tcp: connection refused" {
		t.Errorf("b = %+v", e)
	}
	if e := next.Entries[2]; e.Envelope != put("a", "2").Envelope || e.Attempts != 0 {
		t.Errorf("a = %+v; want v2, no attempts", e)
	}
	if st := must[Stats](t)(db.Stats(alice)); st.OutboxDepth != 3 || st.InFlight != 3 {
		t.Errorf("stats = %+v; want depth 3, in flight 3", st)
	}
	if err := db.FailBatch(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.FailBatch(alice, nil); !errors.Is(err, ErrNoBatchInFlight) {
		t.Errorf("FailBatch without batch = %v", err)
	}
}

func TestBatchBoundedByCountAndBytes(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	var ps []Push
	for i := range 10 {
		ps = append(ps, Push{MsgID: fmt.Sprint("m", i), Op: OpPut, Envelope: strings.Repeat("x", 100)})
	}
	ps[5].Envelope = strings.Repeat("y", 10_000)
	es := must[[]Entry](t)(db.EnqueueMany(alice, ps))
	size := es[0].WireSize()
	if size != len(`{"id":"","data":""},`)+32+100 {
		t.Fatalf("WireSize = %d", size)
	}

	cases := []struct {
		count, bytes int
		want         string
	}{
		{3, 1 << 20, "m0,m1,m2"},       // count bound
		{10, 2*size + size/2, "m3,m4"}, // byte bound
		{10, 100, "m5"},                // larger than the bound: alone
		{10, 1 << 20, "m6,m7,m8,m9"},   // the rest
		{10, 1 << 20, ""},              // empty
	}
	for _, c := range cases {
		b := must[Batch](t)(db.NextBatch(alice, c.count, c.bytes))
		if got := msgids(b.Entries); got != c.want {
			t.Fatalf("NextBatch(%d, %d) = %s; want %s", c.count, c.bytes, got, c.want)
		}
		total := 0
		for _, e := range b.Entries {
			total += e.WireSize()
		}
		if len(b.Entries) > 1 && total > c.bytes {
			t.Errorf("batch of %d bytes over bound %d", total, c.bytes)
		}
		if len(b.Entries) == 0 {
			if _, ok, _ := db.InFlight(alice); ok {
				t.Error("empty batch recorded as in flight")
			}
			continue
		}
		var rs []Result
		for i, e := range b.Entries {
			rs = append(rs, Result{Token: e.Token, JournalID: int64(100 + i)})
		}
		noErr(t, db.CompleteBatch(alice, rs))
	}
	if _, err := db.NextBatch(alice, 0, 10); err == nil {
		t.Error("NextBatch(0, 10) accepted")
	}
}

func TestApplyRemoteAdvancesCursorAtomically(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	noErr(t, db.PutFiles(alice, FileRecord{Path: "bob/gone.json", MsgID: "gone", Hash: "h0"}))
	page := []Applied{
		{MsgID: "m1", JournalID: 10, Hash: "h1", Path: "bob/m1.json", Size: 120, MTime: mtime},
		{MsgID: "gone", JournalID: 11, Deleted: true, Path: "bob/gone.json"},
	}
	noErr(t, db.ApplyRemote(alice, 11, page))
	check := func(when string) {
		t.Helper()
		if c := must[int64](t)(db.Cursor(alice)); c != 11 {
			t.Errorf("%s: cursor = %d; want 11", when, c)
		}
		if v, ok, _ := db.Version(alice, "m1"); !ok || v != (Version{MsgID: "m1", JournalID: 10, Hash: "h1"}) {
			t.Errorf("%s: Version(m1) = %+v", when, v)
		}
		if v, ok, _ := db.Version(alice, "gone"); !ok || !v.Deleted || v.JournalID != 11 {
			t.Errorf("%s: Version(gone) = %+v; want a tombstone at 11", when, v)
		}
		f, ok, err := db.FileByMsgID(alice, "m1")
		if err != nil || !ok || f != (FileRecord{Path: "bob/m1.json", MsgID: "m1", Hash: "h1", Size: 120, MTime: mtime}) {
			t.Errorf("%s: FileByMsgID(m1) = %+v, %v, %v", when, f, ok, err)
		}
		if _, ok, _ := db.File(alice, "bob/gone.json"); ok {
			t.Errorf("%s: deleted message still indexed", when)
		}
	}
	check("applied")
	// A crash after writing the files but before the commit makes the engine
	// apply the same page again.
	noErr(t, db.ApplyRemote(alice, 11, page))
	check("re-applied")
	// An overlapping poll never moves the cursor back.
	noErr(t, db.ApplyRemote(alice, 5, nil))
	check("overlap")

	// A page that fails half-way commits nothing: not the first version, not
	// the cursor. (bbolt refuses keys over 32 KiB.)
	bad := []Applied{
		{MsgID: "m2", JournalID: 12, Hash: "h2", Path: "bob/m2.json"},
		{MsgID: strings.Repeat("k", 40_000), JournalID: 13, Hash: "h3", Path: "bob/m3.json"},
	}
	if err := db.ApplyRemote(alice, 13, bad); err == nil {
		t.Fatal("ApplyRemote with an oversized msgid succeeded")
	}
	check("failed page")
	if _, ok, _ := db.Version(alice, "m2"); ok {
		t.Error("first version of a failed page was committed")
	}
	if _, ok, _ := db.File(alice, "bob/m2.json"); ok {
		t.Error("file of a failed page was indexed")
	}
}

func TestApplyRemoteMovesFileOfMsgid(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	noErr(t, db.ApplyRemote(alice, 1, []Applied{{MsgID: "m", JournalID: 1, Hash: "h1", Path: "old/m.json"}}))
	noErr(t, db.ApplyRemote(alice, 2, []Applied{{MsgID: "m", JournalID: 2, Hash: "h2", Path: "new/m.json"}}))
	if _, ok, _ := db.File(alice, "old/m.json"); ok {
		t.Error("old path still indexed")
	}
	if f, ok, _ := db.FileByMsgID(alice, "m"); !ok || f.Path != "new/m.json" || f.Hash != "h2" {
		t.Errorf("FileByMsgID = %+v", f)
	}
}

func TestAccountsAreIndependent(t *testing.T) {
	const bob = "bob@example.org"
	db := mustOpen(t, t.TempDir(), Options{})
	must[Entry](t)(db.Enqueue(alice, put("same", "alice")))
	must[Entry](t)(db.Enqueue(bob, put("same", "bob")))
	must[Entry](t)(db.Enqueue(bob, put("other", "bob")))

	ba := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	// Alice's batch in flight does not hold up Bob.
	bb := must[Batch](t)(db.NextBatch(bob, 1, 1<<20))
	if ba.Entries[0].Envelope != put("same", "alice").Envelope || bb.Entries[0].Envelope != put("same", "bob").Envelope {
		t.Fatalf("batches mixed accounts: %+v %+v", ba.Entries, bb.Entries)
	}
	noErr(t, db.CompleteBatch(bob, []Result{{Token: bb.Entries[0].Token, JournalID: 900}}))
	noErr(t, db.ApplyRemote(bob, 950, nil))

	if _, ok, _ := db.Version(alice, "same"); ok {
		t.Error("bob's push gave alice a version")
	}
	if c := must[int64](t)(db.Cursor(alice)); c != 0 {
		t.Errorf("alice cursor = %d; want 0", c)
	}
	if _, ok, _ := db.InFlight(bob); ok {
		t.Error("bob has a batch in flight")
	}
	if _, ok, _ := db.InFlight(alice); !ok {
		t.Error("alice lost her batch in flight")
	}
	sa, sb := must[Stats](t)(db.Stats(alice)), must[Stats](t)(db.Stats(bob))
	if sa.OutboxDepth != 1 || sa.Cursor != 0 || sb.OutboxDepth != 1 || sb.Cursor != 950 {
		t.Errorf("stats alice %+v bob %+v", sa, sb)
	}
	noErr(t, db.ResetAccount(alice))
	if v, _, _ := db.Version(bob, "same"); v.JournalID != 900 {
		t.Errorf("alice's reset touched bob: %+v", v)
	}
	if got := must[[]string](t)(db.Accounts()); strings.Join(got, " ") != "alice@example.com bob@example.org" {
		t.Errorf("Accounts = %v", got)
	}
	if st := must[Stats](t)(db.Stats("nobody@example.net")); st != (Stats{}) {
		t.Errorf("unknown account stats = %+v", st)
	}
}

func collect[T any](t testing.TB, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestResetRequeuesLocalMessages(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	// a: pushed from here; b: pushed, then deleted here; c: applied from
	// another device; d: a local edit not pushed yet.
	pa, pb := put("a", "1"), put("b", "1")
	pa.File = &FileRecord{Path: "x/a.json", MsgID: "a", Hash: pa.Hash}
	pb.File = &FileRecord{Path: "x/b.json", MsgID: "b", Hash: pb.Hash}
	must[[]Entry](t)(db.EnqueueMany(alice, []Push{pa, pb}))
	b := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	noErr(t, db.CompleteBatch(alice, []Result{{Token: b.Entries[0].Token, JournalID: 50}, {Token: b.Entries[1].Token, JournalID: 51}}))
	del := Push{MsgID: "b", Op: OpDelete, Envelope: "csy1:k1:del-b", Hash: "", File: &FileRecord{Path: "x/b.json", MsgID: "b"}}
	must[Entry](t)(db.Enqueue(alice, del))
	b = must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	noErr(t, db.CompleteBatch(alice, []Result{{Token: b.Entries[0].Token, JournalID: 60}}))
	noErr(t, db.ApplyRemote(alice, 100, []Applied{{MsgID: "c", JournalID: 70, Hash: "hc", Path: "y/c.json"}}))
	pd := put("d", "1")
	must[Entry](t)(db.Enqueue(alice, pd))
	inflight := must[Batch](t)(db.NextBatch(alice, 10, 1<<20))
	tokenA := b.Entries[0].Token

	noErr(t, db.ResetAccount(alice))

	if c := must[int64](t)(db.Cursor(alice)); c != 0 {
		t.Errorf("cursor after reset = %d; want 0", c)
	}
	if got, _, _ := db.InFlight(alice); got == nil || got.Watermark != 0 || msgids(got.Entries) != "d" {
		t.Errorf("in-flight after reset = %+v; want d with watermark 0 (was %d)", got, inflight.Watermark)
	}
	if _, ok, _ := db.JournalIDOf(alice, tokenA); ok {
		t.Error("token mapping survived the reset")
	}
	want := []Unpushed{
		{Version: Version{MsgID: "a", Hash: pa.Hash, Own: true}, Path: "x/a.json"},
		{Version: Version{MsgID: "b", Deleted: true, Own: true}},
		{Version: Version{MsgID: "c", Hash: "hc"}, Path: "y/c.json"},
	}
	got := collect(t, db.Unpushed(alice))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Unpushed = %+v\nwant %+v", got, want)
	}
	if files := collect(t, db.Files(alice)); len(files) != 2 {
		t.Errorf("file index after reset has %d files; want a and c kept", len(files))
	}

	// The engine seals and enqueues them, in the loop body.
	for u, err := range db.Unpushed(alice) {
		noErr(t, err)
		p := put(u.MsgID, "again")
		if u.Deleted {
			p.Op = OpDelete
		}
		must[Entry](t)(db.Enqueue(alice, p))
	}
	if got := collect(t, db.Unpushed(alice)); len(got) != 0 {
		t.Errorf("Unpushed after re-queue = %+v; want nothing", got)
	}
	if st := must[Stats](t)(db.Stats(alice)); st.OutboxDepth != 4 {
		t.Errorf("outbox depth = %d; want 4 (d plus a, b, c)", st.OutboxDepth)
	}
}

func TestFileIndexReverseLookup(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	mt := time.Date(2026, 2, 3, 4, 5, 6, 7, time.UTC)
	f1 := FileRecord{Path: "bob/1.json", MsgID: "m1", Hash: "h1", Size: 10, MTime: mt}
	noErr(t, db.PutFiles(alice, f1, FileRecord{Path: "bob/2.json", MsgID: "m2", Hash: "h2"}))

	if f, ok, err := db.File(alice, "bob/1.json"); err != nil || !ok || f != f1 {
		t.Errorf("File = %+v, %v, %v; want %+v", f, ok, err, f1)
	}
	if f, ok, err := db.FileByMsgID(alice, "m1"); err != nil || !ok || f != f1 {
		t.Errorf("FileByMsgID = %+v, %v, %v; want %+v", f, ok, err, f1)
	}
	// A file that repeats the msgid of another is refused.
	err := db.PutFiles(alice, FileRecord{Path: "bob/copy.json", MsgID: "m1"})
	if !errors.Is(err, ErrDuplicateMsgID) || !strings.Contains(err.Error(), "bob/1.json") {
		t.Errorf("duplicate msgid = %v; want ErrDuplicateMsgID naming bob/1.json", err)
	}
	// A file whose content now carries another msgid is re-pointed.
	noErr(t, db.PutFiles(alice, FileRecord{Path: "bob/1.json", MsgID: "m3", Hash: "h3"}))
	if _, ok, _ := db.FileByMsgID(alice, "m1"); ok {
		t.Error("m1 still points to a file that now holds m3")
	}
	if f, _, _ := db.FileByMsgID(alice, "m3"); f.Path != "bob/1.json" {
		t.Errorf("FileByMsgID(m3) = %+v", f)
	}
	noErr(t, db.DeleteFiles(alice, "bob/2.json", "never/was.json"))
	if _, ok, _ := db.FileByMsgID(alice, "m2"); ok {
		t.Error("deleted file still found by msgid")
	}
}

func TestFilesStreamsInPagesOutsideTransactions(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	const n = 3*pageSize + 7
	var recs []FileRecord
	for i := range n {
		recs = append(recs, FileRecord{Path: fmt.Sprintf("c/%05d.json", i), MsgID: fmt.Sprint("m", i)})
	}
	noErr(t, db.PutFiles(alice, recs...))
	i := 0
	for f, err := range db.Files(alice) {
		noErr(t, err)
		if f.Path != recs[i].Path {
			t.Fatalf("file %d = %s; want %s", i, f.Path, recs[i].Path)
		}
		// Writing from the loop body would deadlock if a transaction were
		// held; deleting the current entry must not make the walk skip.
		if i%64 == 0 {
			noErr(t, db.DeleteFiles(alice, f.Path))
		}
		i++
	}
	if i != n {
		t.Errorf("walked %d files; want %d", i, n)
	}
	if left := len(collect(t, db.Files(alice))); left != n-(n+63)/64 {
		t.Errorf("%d files left; want %d", left, n-(n+63)/64)
	}
	for range db.Files("nobody@example.net") {
		t.Fatal("unknown account has files")
	}
}

func TestEnqueueWithFileUpdatesIndexInSameTransaction(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	p := put("a", "1")
	p.File = &FileRecord{Path: "x/a.json", MsgID: "a", Hash: p.Hash, Size: 3}
	must[Entry](t)(db.Enqueue(alice, p))
	if f, ok, _ := db.File(alice, "x/a.json"); !ok || f.Hash != p.Hash {
		t.Errorf("File = %+v, %v", f, ok)
	}
	// A push for a msgid that another file holds fails whole: no entry.
	q := put("a", "2")
	q.File = &FileRecord{Path: "x/copy.json", MsgID: "a"}
	if _, err := db.EnqueueMany(alice, []Push{put("z", "1"), q}); !errors.Is(err, ErrDuplicateMsgID) {
		t.Fatalf("enqueue of duplicate = %v", err)
	}
	if _, ok := must2(t)(db.Pending(alice, "z")); ok {
		t.Error("z enqueued by a failed EnqueueMany")
	}
	del := Push{MsgID: "a", Op: OpDelete, Envelope: "csy1:del-a", File: &FileRecord{Path: "x/a.json", MsgID: "a"}}
	must[Entry](t)(db.Enqueue(alice, del))
	if _, ok, _ := db.File(alice, "x/a.json"); ok {
		t.Error("deleted file still indexed")
	}
	if e, _ := must2(t)(db.Pending(alice, "a")); e.Op != OpDelete {
		t.Errorf("pending a = %+v; want the delete, coalesced", e)
	}
	if st := must[Stats](t)(db.Stats(alice)); st.OutboxDepth != 1 {
		t.Errorf("depth = %d; want 1", st.OutboxDepth)
	}
}

func TestMigrationFromVersionN(t *testing.T) {
	t.Run("newer schema is refused", func(t *testing.T) {
		dir := t.TempDir()
		db := mustOpen(t, dir, Options{})
		noErr(t, db.Close())
		setSchema(t, dir, 99)
		_, err := Open(dir, Options{})
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "schema version 99") {
			t.Fatalf("Open of schema 99 = %v; want ErrSchemaTooNew naming 99", err)
		}
		if got := schemaOf(t, dir); got != 99 {
			t.Errorf("refused file was changed to schema %d", got)
		}
	})
	t.Run("fresh file gets the current schema", func(t *testing.T) {
		dir := t.TempDir()
		noErr(t, mustOpen(t, dir, Options{}).Close())
		if got, want := schemaOf(t, dir), migrations[len(migrations)-1].version; got != want {
			t.Errorf("schema = %d; want %d", got, want)
		}
	})
	t.Run("pending migrations run once, in order", func(t *testing.T) {
		dir := t.TempDir()
		db := mustOpen(t, dir, Options{})
		must[Entry](t)(db.Enqueue(alice, put("a", "1")))
		noErr(t, db.Close())

		saved := migrations
		t.Cleanup(func() { migrations = saved })
		runs := 0
		next := saved[len(saved)-1].version + 1
		migrations = append(append([]migration(nil), saved...), migration{version: next, name: "test", migrate: func(tx *bolt.Tx) error {
			runs++
			_, err := tx.Bucket(bucketV1).CreateBucket([]byte("added-in-next"))
			return err
		}})
		db = mustOpen(t, dir, Options{})
		db = reopen(t, db, Options{})
		if runs != 1 {
			t.Errorf("migration %d ran %d times; want 1", next, runs)
		}
		if e, ok := must2(t)(db.Pending(alice, "a")); !ok || e.Envelope != put("a", "1").Envelope {
			t.Errorf("data written at schema %d lost: %+v", next-1, e)
		}
		noErr(t, db.Close())
		if got := schemaOf(t, dir); got != next {
			t.Errorf("schema = %d; want %d", got, next)
		}
	})
}

func setSchema(t *testing.T, dir string, v uint64) {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	noErr(t, err)
	defer bdb.Close()
	noErr(t, bdb.Update(func(tx *bolt.Tx) error {
		return putU64(tx.Bucket(bucketV1).Bucket(bucketMeta), keySchemaVersion, v)
	}))
}

func schemaOf(t *testing.T, dir string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	noErr(t, err)
	defer bdb.Close()
	var v uint64
	noErr(t, bdb.View(func(tx *bolt.Tx) (err error) { v, err = schemaVersion(tx); return err }))
	return v
}

func TestConcurrentUseIsSafe(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := db.Enqueue(alice, put(fmt.Sprintf("g%d-%d", g, i), "1")); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.Stats(alice); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := must[Stats](t)(db.Stats(alice)); st.OutboxDepth != 80 {
		t.Errorf("depth = %d; want 80", st.OutboxDepth)
	}
}

func TestResetForgetsEveryJournalID(t *testing.T) {
	// ResetAccount rewrites versions while walking them with a cursor; with
	// enough keys to span many pages none may be skipped.
	db := mustOpen(t, t.TempDir(), Options{})
	const n = 2000
	var page []Applied
	for i := range n {
		page = append(page, Applied{MsgID: fmt.Sprintf("m%05d", i), JournalID: int64(i + 1), Hash: "h", Path: fmt.Sprintf("c/%05d.json", i)})
	}
	noErr(t, db.ApplyRemote(alice, n, page))
	noErr(t, db.ResetAccount(alice))
	got := collect(t, db.Unpushed(alice))
	if len(got) != n {
		t.Fatalf("Unpushed after reset = %d messages; want %d", len(got), n)
	}
	for i, u := range got {
		if u.MsgID != page[i].MsgID || u.JournalID != 0 || u.Path != page[i].Path {
			t.Fatalf("Unpushed[%d] = %+v", i, u)
		}
	}
}

func TestInvalidInputIsRefused(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	for _, p := range []Push{
		{Op: OpPut, Envelope: "e"},
		{MsgID: "m", Op: "edit", Envelope: "e"},
		{MsgID: "m", Op: OpPut},
		{MsgID: "m", Op: OpPut, Envelope: "e", File: &FileRecord{Path: "p.json", MsgID: "other"}},
	} {
		if _, err := db.Enqueue(alice, p); err == nil {
			t.Errorf("Enqueue(%+v) accepted", p)
		}
	}
	if _, err := db.Enqueue("", put("m", "1")); err == nil {
		t.Error("Enqueue for an empty account accepted")
	}
	if err := db.ApplyRemote(alice, 1, []Applied{{MsgID: "m", JournalID: 0, Path: "p"}}); err == nil {
		t.Error("ApplyRemote without a journal id accepted")
	}
	if err := db.ApplyRemote(alice, 1, []Applied{{MsgID: "m", JournalID: 1}}); err == nil {
		t.Error("ApplyRemote of a put without a path accepted")
	}
	if got := must[[]string](t)(db.Accounts()); len(got) != 0 {
		t.Errorf("refused input created accounts %v", got)
	}
}

func TestFilesUnderReadsOnlyThatDirectory(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	for _, p := range []string{"a/1.json", "a/b/2.json", "ab/3.json", "b/4.json", "a.json"} {
		if err := db.PutFiles(alice, FileRecord{Path: p, MsgID: "id-" + p, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for rec, err := range db.FilesUnder(alice, "a") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Path)
	}
	if strings.Join(got, " ") != "a/1.json a/b/2.json" {
		t.Errorf("FilesUnder(a) = %v, want a/1.json a/b/2.json", got)
	}
}

func TestAnchorIsKeptAndForgottenByReset(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	if _, ok, err := db.Anchor(alice); ok || err != nil {
		t.Fatalf("anchor before any = %v, %v", ok, err)
	}
	if err := db.SetAnchor(alice, Anchor{ID: 42, Sig: "s"}); err != nil {
		t.Fatal(err)
	}
	if an, ok, err := db.Anchor(alice); !ok || err != nil || an != (Anchor{ID: 42, Sig: "s"}) {
		t.Fatalf("anchor = %+v, %v, %v", an, ok, err)
	}
	if err := db.ResetAccount(alice); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Anchor(alice); ok {
		t.Error("anchor survived ResetAccount")
	}
}

func TestApplyRemoteDeleteWithKeepLeavesTheFileIndexed(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	if err := db.ApplyRemote(alice, 1, []Applied{{MsgID: "m", JournalID: 1, Hash: "h", Path: "c/m.json"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.ApplyRemote(alice, 2, []Applied{{MsgID: "m", JournalID: 2, Deleted: true, Keep: true}}); err != nil {
		t.Fatal(err)
	}
	if rec, ok, _ := db.FileByMsgID(alice, "m"); !ok || rec.Path != "c/m.json" {
		t.Errorf("index entry = %+v, %v; want it kept", rec, ok)
	}
	if v, _, _ := db.Version(alice, "m"); !v.Deleted || v.JournalID != 2 {
		t.Errorf("version = %+v, want a tombstone at 2", v)
	}
}

func TestUnappliedRowsAreKeptPastTheCursorAndForgottenByReset(t *testing.T) {
	db := mustOpen(t, t.TempDir(), Options{})
	keep := []Unapplied{{JournalID: 7, Reason: "unknown key", KeyID: "0a0b0c0d", UUID: "urn:uuid:x", Timestamp: "2026-11-25 10:00:00", Data: "cs2.0a0b0c0d.AAAA"}}
	noErr(t, db.ApplyRemote(alice, 10, nil, keep...))
	got := must[[]Unapplied](t)(db.UnappliedRows(alice))
	if len(got) != 1 || got[0] != keep[0] {
		t.Fatalf("kept rows = %+v, want %+v", got, keep)
	}
	if c := must[int64](t)(db.Cursor(alice)); c != 10 {
		t.Errorf("cursor = %d, want 10", c)
	}
	noErr(t, db.RetriedUnapplied(alice, []Applied{{MsgID: "m", JournalID: 7, Hash: "h", Path: "c/m.json"}}, nil))
	if got := must[[]Unapplied](t)(db.UnappliedRows(alice)); len(got) != 0 {
		t.Errorf("after it was applied: kept rows = %+v", got)
	}
	if v, ok, _ := db.Version(alice, "m"); !ok || v.JournalID != 7 {
		t.Errorf("version of m = %+v, %v; want journal id 7", v, ok)
	}
	noErr(t, db.ApplyRemote(alice, 11, nil, Unapplied{JournalID: 11, Reason: "r", Data: "d"}))
	noErr(t, db.ResetAccount(alice))
	if got := must[[]Unapplied](t)(db.UnappliedRows(alice)); len(got) != 0 {
		t.Errorf("after a reset: kept rows = %+v", got)
	}
}
