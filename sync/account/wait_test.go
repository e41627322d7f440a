package account_test

// The long poll (JournalQuery.Wait, JournalPage.Waited) against our own
// server over HTTP. The tests wait on conditions (a request held on the
// server, a reply) under deadlines far below the waits asked for, so
// meeting a deadline proves a request was not held; nothing depends on
// how long a step takes.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
)

// patience bounds each wait for a condition.
const patience = 10 * time.Second

type pageOrErr struct {
	page *account.JournalPage
	err  error
}

func getAsync(ctx context.Context, c *account.Client, q account.JournalQuery) <-chan pageOrErr {
	out := make(chan pageOrErr, 1)
	go func() {
		p, err := c.GetJournalEntries(ctx, q)
		out <- pageOrErr{p, err}
	}()
	return out
}

func receivePage(t *testing.T, what string, ch <-chan pageOrErr) *account.JournalPage {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.page
	case <-time.After(patience):
		t.Fatalf("%s: no reply within %v", what, patience)
		return nil
	}
}

// waitHeld waits until the server holds n requests.
func (h *harness) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for h.srv.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held, want %d within %v", h.srv.Waiting(), n, patience)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// newWaitHarness is a harness whose held requests end before its
// httptest server closes (which waits for them), even if a test fails.
func newWaitHarness(t *testing.T, o harnessOpts) *harness {
	h := newHarness(t, o)
	t.Cleanup(h.srv.EndWaits)
	return h
}

func TestWaitHeldGetReturnsEntryPutByAnotherDeviceLikeAPlainGet(t *testing.T) {
	h := newWaitHarness(t, harnessOpts{})
	a, b := h.alice(t), h.client(t, "alice@example.com", "secret")
	if _, err := a.PutJournalEntries(ctx(t), "urn:uuid:a", []account.PutEntry{{ID: "1", Data: "mine"}}); err != nil {
		t.Fatal(err)
	}
	q := account.JournalQuery{ExceptUUID: "urn:uuid:a"}
	held := getAsync(ctx(t), a, account.JournalQuery{ExceptUUID: q.ExceptUUID, Wait: 30 * time.Second})
	h.waitHeld(t, 1)
	select {
	case r := <-held:
		t.Fatalf("answered before the other device put: %+v %v", r.page, r.err)
	default:
	}

	if _, err := b.PutJournalEntries(ctx(t), "urn:uuid:b", []account.PutEntry{{ID: "1", Data: "theirs"}}); err != nil {
		t.Fatal(err)
	}
	got := receivePage(t, "held get", held)
	plain, err := a.GetJournalEntries(ctx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "waited", got.Waited, 30*time.Second)
	wantEqual(t, "plain get's waited", plain.Waited, time.Duration(0))
	got.Waited = 0
	wantEqual(t, "held page", got, plain)
	if len(got.Entries) != 1 || got.Entries[0].Data != "theirs" {
		t.Errorf("entries %+v, want the other device's one", got.Entries)
	}
}

// The call's timeout is Config.Timeout + Wait: a 200 ms client timeout
// does not cut a request the server holds for its whole 1 s wait, on the
// first call (challenge, then the held retry) and after the nonce
// expired (stale challenge, then the held retry).
func TestWaitExtendsTheCallTimeoutAcrossTheDigestRoundTrip(t *testing.T) {
	h := newWaitHarness(t, harnessOpts{})
	c := h.client(t, "alice@example.com", "secret", func(cfg *account.Config) { cfg.Timeout = 200 * time.Millisecond })
	for _, step := range []string{"first call", "after the nonce expired"} {
		if step != "first call" {
			h.clock.Advance(5*time.Minute + time.Second)
		}
		before := len(h.exchanges())
		page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{Wait: time.Second})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		wantEqual(t, step+": waited", page.Waited, time.Second)
		wantEqual(t, step+": entries", len(page.Entries), 0)
		log := h.exchanges()[before:]
		if len(log) != 2 || log[0].status != http.StatusUnauthorized || log[1].status != http.StatusOK {
			t.Fatalf("%s: exchanges %+v, want a 401 and a 200", step, log)
		}
		for _, x := range log {
			wantEqual(t, step+": wait sent", x.query.Get("wait"), "1")
		}
	}
	if n, stale := h.challenges(); n != 2 || stale != 1 {
		t.Errorf("%d challenges (%d stale), want 2 (1)", n, stale)
	}
}

func TestWaitedIsZeroWithoutAWaitAndWhenTheServerIgnoresIt(t *testing.T) {
	h := newWaitHarness(t, harnessOpts{})
	c := h.alice(t)
	if _, err := c.PutJournalEntries(ctx(t), "urn:uuid:b", []account.PutEntry{{ID: "1", Data: "x"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		wait, waited time.Duration
		sent         string
	}{
		{0, 0, ""},
		{999 * time.Millisecond, 0, ""}, // under a second: not sent
		{5*time.Second + 900*time.Millisecond, 5 * time.Second, "5"},
		{2 * time.Minute, time.Minute, "120"}, // the server cuts it to 60 s
	} {
		page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{Wait: tc.wait})
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, tc.wait.String()+": waited", page.Waited, tc.waited)
		wantEqual(t, tc.wait.String()+": wait sent", h.last(t, "get_journal_entries").query.Get("wait"), tc.sent)
	}
	if _, err := c.GetJournalEntries(ctx(t), account.JournalQuery{Wait: -time.Second}); err == nil {
		t.Error("a negative wait was accepted")
	}

	// A server that ignores wait (strict compat, like the real one)
	// answers an empty page at once, and Waited says so.
	strict := newWaitHarness(t, harnessOpts{strict: true})
	sctx, cancel := context.WithTimeout(ctx(t), patience) // far below the 30 s asked for
	defer cancel()
	page := receivePage(t, "strict server", getAsync(sctx, strict.alice(t), account.JournalQuery{Wait: 30 * time.Second}))
	wantEqual(t, "strict: waited", page.Waited, time.Duration(0))
	wantEqual(t, "strict: entries", len(page.Entries), 0)
	wantEqual(t, "strict: wait sent", strict.last(t, "get_journal_entries").query.Get("wait"), "30")
}

func TestWaitCancelledByTheCallerEndsTheRequestOnTheServer(t *testing.T) {
	h := newWaitHarness(t, harnessOpts{})
	cctx, cancel := context.WithCancel(ctx(t))
	held := getAsync(cctx, h.alice(t), account.JournalQuery{Wait: time.Minute})
	h.waitHeld(t, 1)
	cancel()
	select {
	case r := <-held:
		if r.err == nil {
			t.Errorf("cancelled get returned %+v and no error", r.page)
		}
	case <-time.After(patience):
		t.Fatalf("cancelled get did not return within %v", patience)
	}
	h.waitHeld(t, 0)
}

func TestOnHeldIsCalledWhenTheServerHoldsTheRequestAndNotWhenItAnswersAtOnce(t *testing.T) {
	h := newWaitHarness(t, harnessOpts{})
	a, b := h.alice(t), h.client(t, "alice@example.com", "secret")
	heldc := make(chan struct{}, 1)
	onHeld := func() { heldc <- struct{}{} }
	ch := getAsync(ctx(t), a, account.JournalQuery{ExceptUUID: "urn:uuid:a", Wait: 30 * time.Second, OnHeld: onHeld})
	select {
	case <-heldc:
	case <-time.After(patience):
		t.Fatalf("OnHeld not called within %v while the server held the request", patience)
	}
	select {
	case r := <-ch:
		t.Fatalf("the call returned once held, before any row: %+v %v", r.page, r.err)
	default:
	}
	if _, err := b.PutJournalEntries(ctx(t), "urn:uuid:b", []account.PutEntry{{ID: "1", Data: "theirs"}}); err != nil {
		t.Fatal(err)
	}
	if got := receivePage(t, "held get", ch); len(got.Entries) != 1 {
		t.Fatalf("held get returned %d entries, want 1", len(got.Entries))
	}
	// Now there is a row to return: the answer comes at once, not held.
	if got := receivePage(t, "get with a row", getAsync(ctx(t), a, account.JournalQuery{ExceptUUID: "urn:uuid:a", Wait: 30 * time.Second, OnHeld: onHeld})); len(got.Entries) != 1 {
		t.Fatalf("get returned %d entries, want 1", len(got.Entries))
	}
	select {
	case <-heldc:
		t.Error("OnHeld called for a request answered at once")
	default:
	}
}
