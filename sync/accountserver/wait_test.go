package accountserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// These tests run get_journal_entries with wait= (the long poll) against
// the real handler over HTTP with a digest client. None of them depends on
// how long anything takes: they wait on conditions (a request held, a
// reply received) under generous deadlines, and a deadline far below the
// wait asked for stands for "answered at once".

// patience bounds every wait for a condition; far below the waits asked
// for (30 s, 60 s) so that meeting it proves a request was not held.
const patience = 10 * time.Second

type asyncReply struct {
	reply
	err error
}

// getAsync sends get_journal_entries as alice with the key/value pairs kv
// under ctx; the reply arrives on the channel.
func (e *env) getAsync(ctx context.Context, kv ...string) <-chan asyncReply {
	q := url.Values{"realm": {"example.com"}, "action": {"get_journal_entries"}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u := e.url + "?" + q.Encode()
	c := e.client("alice", "secret")
	out := make(chan asyncReply, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			out <- asyncReply{err: err}
			return
		}
		resp, err := c.Do(req)
		if err != nil {
			out <- asyncReply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		out <- asyncReply{reply{resp.StatusCode, string(b), resp.Header}, err}
	}()
	return out
}

// receive returns the reply from ch, failing the test if none comes
// within patience.
func receive(t *testing.T, what string, ch <-chan asyncReply) asyncReply {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(patience):
		t.Fatalf("%s: no reply within %v", what, patience)
		return asyncReply{}
	}
}

// waitUntil polls cond until it holds, failing the test after patience.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// held waits until n requests are held by their wait.
func (e *env) held(t *testing.T, n int) {
	t.Helper()
	waitUntil(t, "requests held", func() bool { return e.srv.Waiting() == n })
}

func (e *env) put(uuid, data string) {
	e.t.Helper()
	r := e.alice("put_journal_entries", "form:uuid", uuid, "form:data", data)
	if r.status != 200 {
		e.t.Fatalf("put: %d %s", r.status, r.body)
	}
}

func noReplyYet(t *testing.T, what string, ch <-chan asyncReply) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: answered before any row arrived: %d %s (%v)", what, r.status, r.body, r.err)
	default:
	}
}

func TestWaitHeldGetReturnsRowPutByAnotherDeviceLikeAPlainGet(t *testing.T) {
	eachBackend(t, tWaitHeldGetReturnsRowPutByAnotherDeviceLikeAPlainGet)
}

func tWaitHeldGetReturnsRowPutByAnotherDeviceLikeAPlainGet(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	e.put("A", `[{"id":"m1","data":"mine"}]`) // id 1: this device's own row
	ch := e.getAsync(t.Context(), "except_uuid", "A", "wait", "30")
	e.held(t, 1)
	noReplyYet(t, "held get", ch)

	e.put("B", `[{"id":"t1","data":"theirs"}]`) // id 2
	got := receive(t, "held get after the put", ch)
	if got.err != nil {
		t.Fatal(got.err)
	}
	plain := e.alice("get_journal_entries", "except_uuid", "A")
	wantBody(t, got.reply, 200, plain.body)
	wantIDs(t, got.reply, []int{2})
	if h := got.header.Get(WaitHeader); h != "30" {
		t.Errorf("%s: %q, want 30", WaitHeader, h)
	}
	if n := e.srv.Waiting(); n != 0 {
		t.Errorf("%d requests still held after the reply", n)
	}
}

func TestWaitWithRowsToReturnAnswersAtOnce(t *testing.T) {
	eachBackend(t, tWaitWithRowsToReturnAnswersAtOnce)
}

func tWaitWithRowsToReturnAnswersAtOnce(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	e.put("B", `[{"id":"t1","data":"theirs"}]`)
	ctx, cancel := context.WithTimeout(t.Context(), patience) // far below the 60 s asked for
	defer cancel()
	got := receive(t, "get with rows", e.getAsync(ctx, "except_uuid", "A", "wait", "60"))
	if got.err != nil {
		t.Fatalf("not answered at once: %v", got.err)
	}
	wantBody(t, got.reply, 200, e.alice("get_journal_entries", "except_uuid", "A").body)
	wantIDs(t, got.reply, []int{1})
	if h := got.header.Get(WaitHeader); h != "60" {
		t.Errorf("%s: %q, want 60", WaitHeader, h)
	}
	if h := got.header.Get(HeldHeader); h != "" {
		t.Errorf("%s: %q on a reply sent at once, want none", HeldHeader, h)
	}
}

func TestWaitEndsEmptyAtAPutOfItsOwnDeviceAndHoldsThroughAnotherAccountsPut(t *testing.T) {
	eachBackend(t, tWaitEndsEmptyAtAPutOfItsOwnDeviceAndHoldsThroughAnotherAccountsPut)
}

func tWaitEndsEmptyAtAPutOfItsOwnDeviceAndHoldsThroughAnotherAccountsPut(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	ch := e.getAsync(t.Context(), "except_uuid", "A", "wait", "60")
	e.held(t, 1)
	bob := e.as(e.client("bob", "bobpw"), "example.com", "put_journal_entries",
		"form:uuid", "B", "form:data", `[{"id":"b1","data":"bob's"}]`) // another account
	if bob.status != 200 {
		t.Fatalf("bob's put: %d %s", bob.status, bob.body)
	}
	e.held(t, 1)
	noReplyYet(t, "get held through another account's put", ch)
	// The device's own put: what it polls for is still nothing, and it
	// learns so at once rather than at the end of the wait.
	e.put("A", `[{"id":"m1","data":"mine"}]`)
	got := receive(t, "get after its own device's put", ch)
	if got.err != nil {
		t.Fatal(got.err)
	}
	wantBody(t, got.reply, 200, getBody())
	if h := got.header.Get(WaitHeader); h != "60" {
		t.Errorf("%s: %q, want 60", WaitHeader, h)
	}
	if h := got.header.Get(HeldHeader); h != "1" {
		t.Errorf("%s: %q on a reply that was held, want 1", HeldHeader, h)
	}
}

func TestWaitHeaderOnlyWhenTheWaitIsHonoured(t *testing.T) {
	eachBackend(t, tWaitHeaderOnlyWhenTheWaitIsHonoured)
}

func tWaitHeaderOnlyWhenTheWaitIsHonoured(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	e.put("B", `[{"id":"t1","data":"theirs"}]`) // rows to return: every get answers at once
	plain := e.alice("get_journal_entries")
	if h := plain.header.Values(WaitHeader); h != nil {
		t.Errorf("plain get: %s %q, want none", WaitHeader, h)
	}
	for _, tc := range []struct{ wait, header string }{
		{"5", "5"}, {"60", "60"}, {"61", "60"}, {"120", "60"}, {"99999999999999999999999", "60"}, {" 7", "7"},
		{"0", ""}, {"-3", ""}, {"abc", ""}, {"5s", ""}, {"1.5", ""}, {"", ""},
	} {
		got := e.alice("get_journal_entries", "wait", tc.wait)
		wantBody(t, got, 200, plain.body)
		if h := got.header.Get(WaitHeader); h != tc.header {
			t.Errorf("wait=%q: %s %q, want %q", tc.wait, WaitHeader, h, tc.header)
		}
	}
}

func TestWaitIsIgnoredUnderStrictCompat(t *testing.T) {
	eachBackend(t, tWaitIsIgnoredUnderStrictCompat)
}

func tWaitIsIgnoredUnderStrictCompat(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.StrictCompat = true })
	ctx, cancel := context.WithTimeout(t.Context(), patience) // far below the 30 s asked for
	defer cancel()
	got := receive(t, "strict get of an empty page", e.getAsync(ctx, "wait", "30"))
	if got.err != nil {
		t.Fatalf("not answered at once: %v", got.err)
	}
	wantBody(t, got.reply, 200, getBody())
	if h := got.header.Values(WaitHeader); h != nil {
		t.Errorf("%s %q under strict compat, want none", WaitHeader, h)
	}
}

func TestWaitUnauthenticatedIsChallengedAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	got := e.raw("action=get_journal_entries&realm=example.com&wait=30", "") // http.DefaultClient: no digest
	if got.status != 401 || got.body != "" || got.header.Get("WWW-Authenticate") == "" {
		t.Errorf("got %d %q %q, want a 401 challenge", got.status, got.body, got.header.Get("WWW-Authenticate"))
	}
	if h := got.header.Values(WaitHeader); h != nil {
		t.Errorf("%s %q on a 401", WaitHeader, h)
	}
}

func TestWaitEndsOnTheServerWhenTheClientGoesAway(t *testing.T) {
	eachBackend(t, tWaitEndsOnTheServerWhenTheClientGoesAway)
}

func tWaitEndsOnTheServerWhenTheClientGoesAway(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	ch := e.getAsync(ctx, "wait", "60")
	e.held(t, 1)
	cancel()
	if got := receive(t, "cancelled get", ch); !errors.Is(got.err, context.Canceled) {
		t.Errorf("client: %v, want context.Canceled", got.err)
	}
	e.held(t, 0) // the handler has returned
}

func TestEndWaitsAnswersHeldGetsAndLetsTheHTTPServerClose(t *testing.T) {
	eachBackend(t, tEndWaitsAnswersHeldGetsAndLetsTheHTTPServerClose)
}

func tEndWaitsAnswersHeldGetsAndLetsTheHTTPServerClose(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	ch := e.getAsync(t.Context(), "wait", "60")
	e.held(t, 1)
	closed := make(chan struct{})
	go func() {
		e.srv.EndWaits()
		e.hs.Close() // waits for active requests
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(patience):
		t.Fatalf("httptest server did not close within %v with a held get", patience)
	}
	got := receive(t, "held get at shutdown", ch)
	if got.err != nil {
		t.Fatal(got.err)
	}
	wantBody(t, got.reply, 200, getBody())
	if h := got.header.Get(WaitHeader); h != "60" {
		t.Errorf("%s: %q, want 60", WaitHeader, h)
	}
	// Later waits answer at once.
	e.hs = httptest.NewServer(e.srv)
	e.url = e.hs.URL + Path
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if got := receive(t, "get after EndWaits", e.getAsync(ctx, "wait", "60")); got.err != nil || got.status != 200 {
		t.Errorf("get after EndWaits: %d %v, want 200 at once", got.status, got.err)
	}
}
