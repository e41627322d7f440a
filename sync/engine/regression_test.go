package engine

// Regression tests for the failure scenarios of the engine review: each
// test sets up one scenario that used to lose, duplicate or wrongly delete
// messages (or spin), and proves the guarantee the engine now gives. Tests
// wait for conditions with deadlines; a check that something did not
// happen first waits for a positive sign that the engine has handled the
// situation (see barrier).

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// barrierID is the msgid of the message barrier writes.
const barrierID = "barrier"

// barrier writes a new message on d and waits until the journal holds it
// and d's outbox is empty, and, if peer is not nil, until peer holds it
// too. The watcher reports changes in order and the engine queues them in
// order, so once the barrier message is pushed everything d was going to
// push because of earlier events (an echo, a delete) is in the journal;
// once peer holds it, peer has applied all of that.
func barrier(t *testing.T, d, peer *device) {
	t.Helper()
	d.write("barrier/barrier.json", msg(barrierID, "barrier@example.com", "written last"))
	waitFor(t, 20*time.Second, d.name+" to push the barrier message", func() bool {
		return serverMsgIDs(t, d.srv, d.kr)[barrierID] > 0 && d.status().OutboxDepth == 0
	})
	if peer != nil {
		waitFor(t, 20*time.Second, peer.name+" to receive the barrier message", func() bool {
			_, ok := peer.messages()[barrierID]
			return ok
		})
	}
}

// withoutBarrier returns m without the barrier message.
func withoutBarrier(m map[string]string) map[string]string {
	delete(m, barrierID)
	return m
}

// journalHolds reports whether a row of the journal carries exactly the
// message obj.
func journalHolds(t *testing.T, srv *server, d *device, obj map[string]any) bool {
	t.Helper()
	want := canonical(t, obj)
	for _, r := range srv.rows() {
		if en, err := d.kr.Open(r.Data, testAccount); err == nil && string(en.Message) == want {
			return true
		}
	}
	return false
}

// fileOf returns the path, relative to d's store, of the file holding msgid.
func fileOf(t *testing.T, d *device, msgid string) string {
	t.Helper()
	for _, f := range d.files() {
		data, err := os.ReadFile(filepath.Join(d.store, filepath.FromSlash(f)))
		if err != nil {
			continue
		}
		if m, err := msgdir.Parse(data, 1<<24); err == nil && m.MsgID == msgid {
			return f
		}
	}
	t.Fatalf("%s holds no file for %s", d.name, msgid)
	return ""
}

// B already holds m; A edits it twice while B is idle with its next poll an
// hour away, so B's next poll reads both versions in one page. B must end
// on the newer one and echo nothing back.
func TestTwoVersionsOfOneMessageInOnePageEndOnTheNewest(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	b.tweak = func(o *Options) { o.PollInterval, o.ActivePollInterval = time.Hour, time.Hour }
	a.start()
	b.start()
	a.write("c/m.json", msg("m", "c@example.com", "v0"))
	waitFor(t, 20*time.Second, "v0 row", func() bool { return len(srv.rows()) == 1 })
	since := time.Now()
	b.eng.SyncNow()
	waitFor(t, 20*time.Second, "m on B and B idle", func() bool {
		return len(b.messages()) == 1 && b.status().Received == 1 && b.idle(since)
	})
	// B is idle with a poll an hour away. A edits twice.
	a.write("c/m.json", msg("m", "c@example.com", "v1"))
	waitFor(t, 20*time.Second, "v1 row", func() bool { return len(srv.rows()) == 2 })
	v2 := msg("m", "c@example.com", "v2")
	a.write("c/m.json", v2)
	waitFor(t, 20*time.Second, "v2 row", func() bool { return len(srv.rows()) == 3 })
	since = time.Now()
	b.eng.SyncNow()
	want := map[string]string{"m": canonical(t, v2)}
	waitFor(t, 20*time.Second, "v2 on B and B idle", func() bool {
		return b.messages()["m"] == want["m"] && b.idle(since)
	})
	barrier(t, b, a)
	if got := withoutBarrier(b.messages()); !equalMaps(got, want) {
		t.Errorf("B holds %v, want v2", got)
	}
	if got := withoutBarrier(a.messages()); !equalMaps(got, want) {
		t.Errorf("A holds %v, want v2 (B echoed v1 back over A's newer edit)", got)
	}
	if n := serverMsgIDs(t, srv, kr)["m"]; n != 3 {
		t.Errorf("server holds %d rows of m, want 3 (B pushed back what it received)", n)
	}
}

// The same, in the catch-up poll at start: both versions arrive while B is
// stopped.
func TestTwoVersionsOfOneMessageInTheCatchUpPageEndOnTheNewest(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m.json", msg("m", "c@example.com", "v0"))
	waitFor(t, 20*time.Second, "m on B", func() bool { return len(b.messages()) == 1 && b.status().Received == 1 })
	b.stop()
	a.write("c/m.json", msg("m", "c@example.com", "v1"))
	waitFor(t, 20*time.Second, "v1 row", func() bool { return len(srv.rows()) == 2 })
	v2 := msg("m", "c@example.com", "v2")
	a.write("c/m.json", v2)
	waitFor(t, 20*time.Second, "v2 row", func() bool { return len(srv.rows()) == 3 })
	since := time.Now()
	b.start()
	want := map[string]string{"m": canonical(t, v2)}
	waitFor(t, 20*time.Second, "v2 on B and B idle", func() bool {
		return b.messages()["m"] == want["m"] && b.idle(since)
	})
	barrier(t, b, a)
	if got := withoutBarrier(b.messages()); !equalMaps(got, want) {
		t.Errorf("B holds %v, want v2", got)
	}
	if got := withoutBarrier(a.messages()); !equalMaps(got, want) {
		t.Errorf("A holds %v, want v2", got)
	}
	if n := serverMsgIDs(t, srv, kr)["m"]; n != 3 {
		t.Errorf("server holds %d rows of m, want 3", n)
	}
}

// B edits m while its daemon is stopped; A edits m meanwhile. At start B
// must not overwrite its own edit with A's: the edit made while stopped is
// pushed after A's and wins on both devices.
func TestEditMadeWhileStoppedWinsOverTheJournal(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m.json", msg("m", "c@example.com", "v0"))
	waitFor(t, 20*time.Second, "m on B", func() bool { return len(b.messages()) == 1 && b.status().Received == 1 })
	path := b.files()[0]
	b.stop()
	vb := msg("m", "c@example.com", "edited on B while its daemon was stopped")
	b.write(path, vb)
	a.write("c/m.json", msg("m", "c@example.com", "edited on A"))
	waitFor(t, 20*time.Second, "A's edit row", func() bool { return len(srv.rows()) == 2 })
	b.start()
	want := canonical(t, vb)
	waitFor(t, 20*time.Second, "B's offline edit in the journal and on both devices", func() bool {
		return journalHolds(t, srv, b, vb) && b.messages()["m"] == want && a.messages()["m"] == want
	})
}

// A subdirectory of B's store becomes unreadable (EACCES here; EIO or
// EMFILE in the field). Rescans must not take its files for deleted.
func TestUnreadableDirectoryIsNotTakenForDeletes(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("needs a non-root user: root reads a directory of mode 0 anyway, so it cannot be made unreadable")
	}
	srv, kr, a, b := twoDevices(t)
	b.tweak = func(o *Options) { o.RescanInterval = 200 * time.Millisecond }
	a.start()
	b.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "one"))
	a.write("d/m2.json", msg("m2", "d@example.com", "two"))
	waitFor(t, 20*time.Second, "both on B", func() bool { return len(b.messages()) == 2 })
	rel := path.Dir(fileOf(t, b, "m1"))
	dir := filepath.Join(b.store, filepath.FromSlash(rel))
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	// A rescan reports the directory as unreadable; its deletes, if it
	// took the files for deleted, would be queued in the same rescan.
	waitFor(t, 20*time.Second, "B's rescan to report the unreadable directory", func() bool {
		return strings.HasPrefix(rejectedFor(b.status(), rel), "cannot read")
	})
	barrier(t, b, a)
	for _, id := range []string{"m1", "m2"} {
		if _, ok := a.messages()[id]; !ok {
			t.Errorf("A lost %s: B's rescan replicated deletes for an unreadable directory", id)
		}
	}
	oneRowPerMessage(t, srv, kr, "no delete")
}

// B's store is on a volume that is not mounted when the daemon starts: the
// mount point is an empty directory. B must pause and delete nothing
// elsewhere, and go on normally once the volume is back.
func TestEmptyMountPointDeletesNothing(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "one"))
	a.write("d/m2.json", msg("m2", "d@example.com", "two"))
	waitFor(t, 20*time.Second, "both on B", func() bool { return len(b.messages()) == 2 && b.status().Received == 2 })
	b.stop()
	unmounted := b.store + ".unmounted"
	if err := os.Rename(b.store, unmounted); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(b.store, 0o700); err != nil { // the bare mount point
		t.Fatal(err)
	}
	b.start()
	waitFor(t, 20*time.Second, "B to pause over the missing store marker", func() bool {
		s := b.status()
		return s.State == StatePaused && strings.Contains(s.Error, markerName)
	})
	if n := len(srv.rows()); n != 2 {
		t.Errorf("server holds %d rows while B is paused, want 2: B took an empty mount point for deletions", n)
	}
	if n := b.status().OutboxDepth; n != 0 {
		t.Errorf("B queued %d entries for an empty mount point", n)
	}
	since := time.Now()
	waitFor(t, 20*time.Second, "A to poll", func() bool { return a.idle(since) })
	if n := len(a.messages()); n != 2 {
		t.Errorf("A holds %d messages, want 2: B took an empty mount point for deletions", n)
	}

	// The volume is mounted: B starts for real and still deletes nothing.
	if err := os.Remove(b.store); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(unmounted, b.store); err != nil {
		t.Fatal(err)
	}
	since = time.Now()
	waitFor(t, 20*time.Second, "B to resume", func() bool { return b.idle(since) })
	barrier(t, b, a)
	for _, id := range []string{"m1", "m2"} {
		if _, ok := a.messages()[id]; !ok {
			t.Errorf("A lost %s after B's volume came back", id)
		}
	}
	if n := len(srv.rows()); n != 3 {
		t.Errorf("server holds %d rows, want 3 (m1, m2, the barrier): B pushed deletes or copies", n)
	}
}

// B's configured store path is a symbolic link to the real directory (a
// common setup: ~/chats -> /data/chats). Received messages must survive
// B's periodic rescans and B's own messages must be replicated.
func TestStoreReachedThroughASymlinkIsReplicated(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	real := b.store + ".real"
	if err := os.Rename(b.store, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, b.store); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	b.tweak = func(o *Options) {
		o.RescanInterval = 200 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rescans := func() int { return strings.Count(logs.String(), "rescanning the message store") }
	a.start()
	b.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "one"))
	bv := &device{t: t, name: "B (real directory)", store: real}
	waitFor(t, 20*time.Second, "m1 on B", func() bool { return len(bv.messages()) == 1 })
	bv.write("c/fromb.json", msg("fromb", "c@example.com", "written on B"))
	waitFor(t, 20*time.Second, "B's own message on A", func() bool {
		_, ok := a.messages()["fromb"]
		return ok
	})
	// Two more rescans start: the first of them has finished.
	n := rescans()
	waitFor(t, 20*time.Second, "two periodic rescans on B", func() bool { return rescans() >= n+2 })
	barrier(t, b, a)
	got := a.messages()
	if _, ok := got["m1"]; !ok {
		t.Errorf("m1 deleted on A by B's rescan")
	}
	if _, ok := got["fromb"]; !ok {
		t.Errorf("B's own message gone from A")
	}
	oneRowPerMessage(t, srv, kr, "no delete")
}

// The journal is reset while B is stopped; by the time B polls, the new
// journal's ids have passed B's cursor. B must notice the reset, end with
// every message, and push nothing the new journal already has.
func TestJournalResetIsFoundAfterNewIdsPassTheCursor(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.noReports, b.noReports = true, true // the test is of journal ids
	a.start()
	b.start()
	for i := range 10 { // one message edited ten times: ids 1..10
		a.write("c/m.json", msg("m", "c@example.com", fmt.Sprintf("edit %d", i)))
		waitFor(t, 20*time.Second, "row", func() bool { return len(srv.rows()) == i+1 })
	}
	waitFor(t, 20*time.Second, "last edit on B", func() bool { return b.status().Cursor == 10 })
	b.stop()
	srv.reset()
	waitFor(t, 30*time.Second, "A to notice", func() bool { return !a.status().ResetAt.IsZero() && len(srv.rows()) == 1 })
	for i := range 10 { // ids 2..11
		a.write(fmt.Sprintf("c/n%d.json", i), msg(fmt.Sprintf("n%d", i), "c@example.com", "after the reset"))
	}
	waitFor(t, 20*time.Second, "11 rows", func() bool { return len(srv.rows()) == 11 })
	b.start()
	waitFor(t, 20*time.Second, "B to notice the reset and hold what A holds", func() bool {
		return !b.status().ResetAt.IsZero() && equalMaps(b.messages(), a.messages())
	})
	barrier(t, b, a)
	if got, want := b.messages(), a.messages(); !equalMaps(got, want) {
		t.Errorf("B holds %s, A holds %s; B reset_at=%v", describe(got), describe(want), b.status().ResetAt)
	}
	oneRowPerMessage(t, srv, kr, "B pushed again what it has")
}

// The reset is noticed by a put whose ids are at or below the watermark:
// the rows of that put are in the new journal and must not be pushed again.
func TestResetSeenByAPutDoesNotPushThatBatchTwice(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDevice(t, "A", srv, kr)
	a.tweak = func(o *Options) { o.PollInterval, o.ActivePollInterval = time.Hour, time.Hour }
	a.start()
	for i := range 3 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	waitFor(t, 20*time.Second, "3 rows recorded by A", func() bool {
		s := a.status()
		return len(srv.rows()) == 3 && s.Pushed == 3 && s.OutboxDepth == 0 && s.State == StateIdle
	})
	srv.reset()
	a.write("c/new.json", msg("new", "c@example.com", "after the reset"))
	waitFor(t, 20*time.Second, "A to notice and push its messages again", func() bool {
		s := a.status()
		return !s.ResetAt.IsZero() && a.idle(s.ResetAt) && len(serverMsgIDs(t, srv, kr)) == 4
	})
	barrier(t, a, nil)
	count := serverMsgIDs(t, srv, kr)
	for _, id := range []string{"m0", "m1", "m2", "new"} {
		if count[id] != 1 {
			t.Errorf("%s is %d times in the new journal, want 1", id, count[id])
		}
	}
}

// With the defaults, ReconcileGrace (30 s) equals the client timeout
// (30 s). A put that times out while the server is still inserting must
// not be sent again before the grace, counted from the failure, is over:
// the reconciliation finds the row once the server has stored it.
// Scaled down: timeout 2 s, grace 2 s; the server holds the insert until
// A has read the journal back once after giving up.
func TestTimedOutPutIsNotResentWhileTheServerStillInserts(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDevice(t, "A", srv, kr)
	var (
		holding  atomic.Bool // the first put is held by the server
		heldOnce atomic.Bool
		firstPut atomic.Bool
		readOnce sync.Once
		readBack = make(chan struct{}) // A read the journal while the put was held
		inserted = make(chan struct{}) // the held put is done
	)
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		switch r.URL.Query().Get("action") {
		case "get_journal_entries":
			if holding.Load() {
				// A's loop is blocked in the put until it gives up, so
				// this read comes after the timeout: serve it, then
				// let the insert go on.
				next.ServeHTTP(w, r)
				readOnce.Do(func() { close(readBack) })
				return true
			}
		case "put_journal_entries":
			if firstPut.CompareAndSwap(false, true) {
				next.ServeHTTP(w, r)
				close(inserted)
				return true
			}
		}
		return false
	})
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, acct, action string) bool {
		if action == "put_journal_entries" && heldOnce.CompareAndSwap(false, true) {
			holding.Store(true)
			select {
			case <-readBack:
			case <-time.After(20 * time.Second):
			}
		}
		return false // the backend inserts now
	})
	a.tweak = func(o *Options) {
		c, err := account.New(account.Config{Address: testAccount, Password: testPassword,
			SettingsURL: srv.http.URL + accountserver.Path, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		o.Remote = c
		o.ReconcileGrace = 2 * time.Second
	}
	a.write("c/m.json", msg("m", "c@example.com", "x"))
	a.start()
	select {
	case <-readBack:
	case <-time.After(20 * time.Second):
		t.Fatal("A never read the journal back after its put timed out")
	}
	select {
	case <-inserted:
	case <-time.After(20 * time.Second):
		t.Fatal("the held put never finished")
	}
	since := time.Now()
	waitFor(t, 20*time.Second, "A to reconcile and go idle", func() bool {
		return a.idle(since) && a.status().LastPushError == ""
	})
	if n := len(srv.rows()); n != 1 {
		t.Errorf("server holds %d rows, want 1: the put was sent again while the server was still inserting it", n)
	}
}

// One entry the server never stores (journal_id null every time): A must
// keep it queued and retry with backoff rather than in a loop, and must
// keep receiving other devices' messages meanwhile.
func TestEntryTheServerNeverStoresBacksOffAndReceivingGoesOn(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	since := time.Now()
	waitFor(t, 20*time.Second, "A and B idle", func() bool { return a.idle(since) && b.idle(since) })
	aid := a.db.DeviceID()
	var (
		mu   sync.Mutex
		puts []time.Time
	)
	putCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(puts)
	}
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Query().Get("action") != "put_journal_entries" {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, _ := url.ParseQuery(string(body)); form.Get("uuid") != aid {
			return false
		}
		mu.Lock()
		puts = append(puts, time.Now())
		mu.Unlock()
		putReplyAllNull(w, r)
		return true
	})
	a.write("c/poison.json", msg("poison", "c@example.com", "never stored"))
	waitFor(t, 20*time.Second, "A's first put", func() bool { return putCount() >= 1 })
	b.write("c/fromb.json", msg("fromb", "c@example.com", "from B"))
	waitFor(t, 20*time.Second, "B's message on A while A's outbox holds the poison entry", func() bool {
		_, ok := a.messages()["fromb"]
		return ok
	})
	// Every put that stores nothing is followed by a backoff of at least
	// 0.8 × MaxBackoff (160 ms here); a loop would send them back to back.
	// Load can only make the retries slower, so a lower bound on the time
	// they take is robust.
	const retries = 4
	waitFor(t, 20*time.Second, "A to retry", func() bool { return putCount() >= retries+1 })
	mu.Lock()
	took := puts[retries].Sub(puts[0])
	mu.Unlock()
	t.Logf("%d retries took %v", retries, took.Round(time.Millisecond))
	if took < retries*100*time.Millisecond {
		t.Errorf("no backoff: %d retries in %v", retries, took)
	}
	if n := a.status().OutboxDepth; n != 1 {
		t.Errorf("A's outbox holds %d entries, want the poison entry still queued", n)
	}
	if n := serverMsgIDs(t, srv, kr)["poison"]; n != 0 {
		t.Errorf("the journal holds %d rows of the poison entry, want 0", n)
	}
}

// The daemon dies right after the account's state was reset for a journal
// that went backwards, before the messages were queued again. At the next
// start it must still push everything the new journal lacks.
func TestCrashAfterResetStillPushesWhatTheNewJournalLacks(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDevice(t, "A", srv, kr)
	a.start()
	for i := range 3 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	waitFor(t, 20*time.Second, "3 rows", func() bool { return len(srv.rows()) == 3 && a.status().OutboxDepth == 0 })
	a.stop()
	srv.reset()
	db, err := store.Open(a.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ResetAccount(testAccount); err != nil { // what journalWentBackwards commits first
		t.Fatal(err)
	}
	db.Close()
	since := time.Now()
	a.start()
	waitFor(t, 20*time.Second, "A's 3 messages in the new journal and A idle", func() bool {
		return len(srv.rows()) >= 3 && a.idle(since)
	})
	barrier(t, a, nil)
	count := serverMsgIDs(t, srv, kr)
	for _, id := range []string{"m0", "m1", "m2"} {
		if count[id] != 1 {
			t.Errorf("the new journal holds %d rows of %s, want 1", count[id], id)
		}
	}
}

// A directory is renamed on B, then a file inside it is edited and a new
// one is written there. A must get the edit and the new message, and lose
// nothing to the move.
func TestEditInARenamedDirectoryReachesTheOtherDevice(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	b.write("c/m1.json", msg("m1", "c@example.com", "one"))
	waitFor(t, 20*time.Second, "m1 on A", func() bool { return len(a.messages()) == 1 })
	if err := os.Rename(filepath.Join(b.store, "c"), filepath.Join(b.store, "d")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "B to index the move", func() bool {
		_, ok, err := b.db.File(testAccount, "d/m1.json")
		return err == nil && ok
	})
	edited := msg("m1", "c@example.com", "edited after the move")
	m2 := msg("m2", "c@example.com", "new in moved dir")
	b.write("d/m1.json", edited)
	b.write("d/m2.json", m2)
	want := map[string]string{"m1": canonical(t, edited), "m2": canonical(t, m2)}
	waitFor(t, 20*time.Second, "the edit and the new message on A", func() bool { return equalMaps(a.messages(), want) })
	barrier(t, b, a)
	if got := withoutBarrier(a.messages()); !equalMaps(got, want) {
		t.Errorf("A holds %s", describe(got))
	}
	count := serverMsgIDs(t, srv, kr)
	if count["m1"] != 2 || count["m2"] != 1 {
		t.Errorf("the journal holds %d rows of m1 and %d of m2, want 2 and 1 (no delete for the move)", count["m1"], count["m2"])
	}
}

// Writing an incoming message fails (EACCES here; ENOSPC in the field).
// Once the problem is gone the message must still arrive, with the ones
// that came after it.
func TestMessageWhoseWriteFailedArrivesOnceWritingWorks(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("needs a non-root user: root writes into a read-only directory anyway (TestFullDiskOnTheReceivingStoreLosesNoMessage covers ENOSPC as root)")
	}
	_, _, a, b := twoDevices(t)
	m1 := msg("m1", "c@example.com", "one")
	dir := filepath.Join(b.store, filepath.Dir(fileOfIncoming(t, m1)))
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	a.start()
	b.start()
	a.write("c/m1.json", m1)
	waitFor(t, 20*time.Second, "B to fail writing m1", func() bool {
		return strings.Contains(b.status().Error, "permission denied")
	})
	if err := os.Chmod(dir, 0o700); err != nil { // the disk has room again
		t.Fatal(err)
	}
	a.write("c/m2.json", msg("m2", "c@example.com", "two"))
	waitFor(t, 20*time.Second, "m1 and m2 on B", func() bool { return equalMaps(b.messages(), a.messages()) && len(a.messages()) == 2 })
}

// fileOfIncoming returns where a device writes obj when it arrives from
// another device.
func fileOfIncoming(t *testing.T, obj map[string]any) string {
	t.Helper()
	m, err := msgdir.Parse([]byte(canonical(t, obj)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return msgdir.IncomingPath(m)
}

// The store directory this device knows messages in is gone when the
// daemon starts. The engine must pause and wait for it without spinning,
// then start once it appears. The loop's activity is measured by its calls
// to the clock (Options.Now): a few per wakeup, one wakeup a second while
// the store is missing.
func TestMissingStoreAtStartDoesNotSpin(t *testing.T) {
	srv := newServer(t)
	a := newDevice(t, "A", srv, newKeyring(t))
	a.write("c/m1.json", msg("m1", "c@example.com", "known"))
	a.start()
	waitFor(t, 20*time.Second, "m1 pushed", func() bool { return len(srv.rows()) == 1 && a.status().OutboxDepth == 0 })
	a.stop()
	var clock atomic.Int64
	a.tweak = func(o *Options) {
		o.Now = func() time.Time {
			clock.Add(1)
			return time.Now()
		}
	}
	if err := os.Rename(a.store, a.store+".away"); err != nil {
		t.Fatal(err)
	}
	a.start()
	waitFor(t, 20*time.Second, "A to pause", func() bool {
		s := a.status()
		return s.State == StatePaused && strings.Contains(s.Error, "is missing")
	})
	// Proving that the loop does not spin takes a while of watching it;
	// that it woke at all shows the engine is alive while doing so.
	c0, t0 := clock.Load(), time.Now()
	const window = 1500 * time.Millisecond
	waitFor(t, 20*time.Second, "A to wake while paused", func() bool {
		return time.Since(t0) >= window && clock.Load() > c0
	})
	calls, took := clock.Load()-c0, time.Since(t0)
	t.Logf("%d clock reads in %v while the store is missing", calls, took.Round(time.Millisecond))
	if limit := int64(100 * took / window); calls > limit {
		t.Errorf("busy loop: %d clock reads in %v while waiting for the store, want at most %d", calls, took, limit)
	}
	if err := os.Rename(a.store+".away", a.store); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	waitFor(t, 20*time.Second, "A to start once the store is back", func() bool { return a.idle(since) })
	if n := len(srv.rows()); n != 1 {
		t.Errorf("the journal holds %d rows, want 1: nothing was to be sent again", n)
	}
}

// A store that does not exist and never held a message here (a first run,
// following the README) is created at start, not a reason to pause.
func TestAStoreThatNeverHeldAMessageIsCreatedAtStart(t *testing.T) {
	_, _, a, b := twoDevices(t)
	if err := os.Remove(a.store); err != nil {
		t.Fatal(err)
	}
	a.store = filepath.Join(a.store, "nested", "alice")
	a.start()
	b.start()
	b.write("c/m1.json", msg("m1", "c@example.com", "to the new store"))
	waitFor(t, 20*time.Second, "m1 in A's new store", func() bool { _, ok := a.messages()["m1"]; return ok },
		func() string { return fmt.Sprintf("%+v", a.status()) })
	fi, err := os.Stat(a.store)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the created store: %v, mode %v; want a directory of mode 0700", err, fi.Mode().Perm())
	}
	if st := a.status(); st.State == StatePaused {
		t.Errorf("A is paused: %s", st.Error)
	}
}
