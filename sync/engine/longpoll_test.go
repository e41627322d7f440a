package engine

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/accountserver"
)

// noIntervalPolls makes a device poll at intervals too long for any test
// to see: only the catch-up at start and a waiting poll can bring rows.
func noIntervalPolls(o *Options) {
	o.PollInterval, o.ActivePollInterval, o.ProbeInterval = time.Hour, time.Hour, time.Hour
}

// countWaits counts the get_journal_entries requests that ask for wait=
// and those that do not.
func countWaits(srv *server) (waits, plain *atomic.Int64) {
	waits, plain = new(atomic.Int64), new(atomic.Int64)
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		// Counted once each: the digest challenge comes first, unsigned.
		if r.URL.Query().Get("action") == "get_journal_entries" && r.Header.Get("Authorization") != "" {
			if r.URL.Query().Get("wait") != "" {
				waits.Add(1)
			} else {
				plain.Add(1)
			}
		}
		return false
	})
	return waits, plain
}

func TestMessageArrivesThroughTheWaitingPollWithNoIntervalPoll(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.tweak, b.tweak = noIntervalPolls, noIntervalPolls
	waits, _ := countWaits(srv)
	a.start()
	b.start()
	backend := srv.backend.Load()
	waitFor(t, 20*time.Second, "both devices' polls held by the server", func() bool { return backend.Waiting() == 2 })
	if !b.status().Listening || b.status().State != StateIdle {
		t.Fatalf("B is %s, listening %v; want idle and listening", b.status().State, b.status().Listening)
	}
	// No poll is due for an hour: only the waiting poll can bring m1.
	a.write("c/m1.json", msg("m1", "c@example.com", "instant"))
	waitFor(t, 20*time.Second, "m1 on B", func() bool { return len(b.messages()) == 1 })
	waitFor(t, 20*time.Second, "B waiting again after m1", func() bool { return backend.Waiting() == 2 })
	if waits.Load() < 3 {
		t.Errorf("%d waiting polls; want at least 3 (one per device, and B's again after m1)", waits.Load())
	}
	// A's own push ends A's waiting poll with nothing (the server does not
	// hold it through its own device's rows), and A listens again.
	since := time.Now()
	a.write("c/m2.json", msg("m2", "c@example.com", "second"))
	waitFor(t, 20*time.Second, "A idle after its push, polled since", func() bool { return a.idle(since) && a.status().Listening })
	waitFor(t, 20*time.Second, "m2 on B", func() bool { return len(b.messages()) == 2 })
}

func TestServerThatAnswersAtOnceIsPolledAtIntervals(t *testing.T) {
	srv := newServerWith(t, func(o *accountserver.Options) { o.StrictCompat = true })
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	waits, plain := countWaits(srv)
	a.start()
	b.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "by interval polls"))
	waitFor(t, 20*time.Second, "m1 on B", func() bool { return len(b.messages()) == 1 })
	since := time.Now()
	waitFor(t, 20*time.Second, "both idle, polled since", func() bool { return a.idle(since) && b.idle(since) })
	waitFor(t, 20*time.Second, "more plain polls", func() bool { return plain.Load() >= 10 })
	if got := waits.Load(); got > 2 {
		t.Errorf("%d polls asked the server to wait; want at most one per device: it answered the first at once", got)
	}
	if b.status().Listening {
		t.Error("B says it is listening to a server that does not hold polls")
	}
}

func TestSyncNowEndsTheWaitingPollAndPollsAtOnce(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	a.tweak = noIntervalPolls
	a.start()
	backend := srv.backend.Load()
	waitFor(t, 20*time.Second, "A's poll held", func() bool { return backend.Waiting() == 1 })
	since := time.Now()
	a.eng.SyncNow()
	// The held poll started before since: only a new poll can say A saw
	// what the server held at since.
	waitFor(t, 20*time.Second, "a poll after the sync request", func() bool { return a.status().LastPoll.After(since) })
}

func TestStopEndsTheWaitingPoll(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	a.tweak = noIntervalPolls
	a.start()
	backend := srv.backend.Load()
	waitFor(t, 20*time.Second, "A's poll held", func() bool { return backend.Waiting() == 1 })
	a.stop() // fails the test if Run does not return
	waitFor(t, 20*time.Second, "the server to let go of A's poll", func() bool { return backend.Waiting() == 0 })
}

func TestLoopSleepsWhileAPutIsInFlightAndWhileAPollWaits(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	// The test's brisk poll intervals (a poll is due while the put is in
	// flight), the probe out of the way.
	a.tweak = func(o *Options) { o.ProbeInterval = time.Hour }
	held := make(chan struct{})
	release := make(chan struct{})
	var once atomic.Bool
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, account, action string) bool {
		if action == "put_journal_entries" && once.CompareAndSwap(false, true) {
			close(held)
			<-release // the put stays in flight until the test has counted
		}
		return false
	})
	a.start()
	backend := srv.backend.Load()
	waitFor(t, 20*time.Second, "A's poll held", func() bool { return backend.Waiting() == 1 })
	turns := a.eng.turns.Load()
	// Nothing happens for a while: the loop sleeps.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := a.eng.turns.Load() - turns; n > 5 {
		t.Errorf("the loop turned %d times while its poll waited and nothing happened", n)
	}
	a.write("c/m1.json", msg("m1", "c@example.com", "x"))
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("no put within 20 s")
	}
	a.eng.SyncNow() // a plain poll is due: the loop must still sleep while the put is in flight
	turns = a.eng.turns.Load()
	deadline = time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	n := a.eng.turns.Load() - turns
	close(release)
	if n > 5 {
		t.Errorf("the loop turned %d times while a put was in flight", n)
	}
	waitFor(t, 20*time.Second, "m1 on the server", func() bool { return len(srv.rows()) == 1 })
}

// backlog writes n message files into d's store, as a history that exists
// before chatsync is installed.
func backlog(t *testing.T, d *device, n int) {
	t.Helper()
	for i := range n {
		d.write(fmt.Sprintf("c%d/m%05d.json", i%7, i), msg(fmt.Sprintf("b%05d", i), fmt.Sprintf("c%d@example.com", i%7), "from before"))
	}
}

func TestFirstBacklogIsPutWhileItIsIndexedHoldingAtMostTwoBatches(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	const n, batch = 2600, 200
	backlog(t, a, n)
	var firstPutIndexed atomic.Int32 // 0 no put yet, 1 the index was done, 2 it was not
	var deepest atomic.Int64
	a.tweak = func(o *Options) {
		o.BatchCount = batch
		o.Failpoint = func(name string) error {
			if name != "before-put" {
				return nil
			}
			// Called by the engine's own goroutine: its state may be read.
			if a.eng.indexed {
				firstPutIndexed.CompareAndSwap(0, 1)
			} else {
				firstPutIndexed.CompareAndSwap(0, 2)
			}
			if st, err := a.eng.db.Stats(testAccount); err == nil && int64(st.OutboxDepth) > deepest.Load() {
				deepest.Store(int64(st.OutboxDepth))
			}
			return nil
		}
	}
	a.start()
	waitFor(t, 60*time.Second, "the backlog on the server", func() bool { return len(srv.rows()) == n && a.status().OutboxDepth == 0 })
	if got := firstPutIndexed.Load(); got != 2 {
		t.Errorf("the first put left after the start-up index (%d); want it during the index", got)
	}
	if d := deepest.Load(); d > 2*batch {
		t.Errorf("the outbox held %d entries at a put; want at most two batches (%d)", d, 2*batch)
	}
	count := serverMsgIDs(t, srv, kr)
	for i := range n {
		if id := fmt.Sprintf("b%05d", i); count[id] != 1 {
			t.Fatalf("the journal holds %d rows of %s, want 1", count[id], id)
		}
	}
	b.start()
	waitFor(t, 60*time.Second, "the backlog on B", func() bool { return len(b.messages()) == n })
}

func TestBacklogBesideAnotherDevicesRowsIsIndexedBeforeAnyPut(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	b.start()
	b.write("c0/theirs.json", msg("theirs", "c0@example.com", "from B"))
	waitFor(t, 20*time.Second, "B's row on the server", func() bool { return len(srv.rows()) == 1 })
	backlog(t, a, 600)
	var firstPutIndexed atomic.Int32
	a.tweak = func(o *Options) {
		o.BatchCount = 100
		o.Failpoint = func(name string) error {
			if name == "before-put" {
				if a.eng.indexed {
					firstPutIndexed.CompareAndSwap(0, 1)
				} else {
					firstPutIndexed.CompareAndSwap(0, 2)
				}
			}
			return nil
		}
	}
	a.start()
	waitFor(t, 60*time.Second, "A's backlog on the server", func() bool { return len(srv.rows()) == 601 && a.status().OutboxDepth == 0 })
	if got := firstPutIndexed.Load(); got != 1 {
		t.Errorf("first put during the index (%d); with another device's rows in the journal, the index and the catch-up come first", got)
	}
	waitFor(t, 20*time.Second, "B's message on A", func() bool { return len(a.messages()) == 601 })
}
