package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/faultproxy"
)

const (
	addr     = "alice@example.com"
	password = "secret"
	writer   = "urn:uuid:00000000-0000-4000-8000-0000000000aa"
)

type rig struct {
	srv    *accountserver.Server
	proxy  *faultproxy.Proxy
	client *account.Client // through the proxy
	direct *account.Client // straight to the server
	// impatient goes through the proxy with a 1 s timeout (stalls).
	impatient *account.Client
}

func newRig(t *testing.T, opts faultproxy.Options, now func() time.Time) *rig {
	t.Helper()
	srv, err := accountserver.New(accountserver.Options{
		DataDir: t.TempDir(), Accounts: []accountserver.Account{{Address: addr, Password: password}}, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	opts.Target = hs.URL
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	p, err := faultproxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		hs.Close()
		srv.Close()
	})
	mk := func(base string, timeout time.Duration, maxReply int64) *account.Client {
		c, err := account.New(account.Config{Address: addr, Password: password, SettingsURL: base + accountserver.Path, Timeout: timeout, MaxReplyBytes: maxReply})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return &rig{srv: srv, proxy: p, client: mk(p.URL, 30*time.Second, 1<<20), direct: mk(hs.URL, 30*time.Second, 0),
		impatient: mk(p.URL, time.Second, 1<<20)}
}

func (r *rig) rows(t *testing.T) int {
	t.Helper()
	rows, err := r.srv.Entries(addr)
	if err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

func entries(from, n int) []account.PutEntry {
	var out []account.PutEntry
	for i := from; i < from+n; i++ {
		out = append(out, account.PutEntry{ID: strconv.Itoa(i), Data: fmt.Sprintf("opaque-%d", i)})
	}
	return out
}

func kind(err error) account.Kind {
	var ae *account.Error
	if errors.As(err, &ae) {
		return ae.Kind
	}
	return 0
}

func TestEachFaultReachesTheClientAsTheRightErrorAndStoresWhatItSays(t *testing.T) {
	cases := []struct {
		fault  faultproxy.Fault
		kind   account.Kind // 0: no error
		stored int          // rows the server holds after one put of 4
	}{
		{faultproxy.ServerError, account.KindServer, 0},
		{faultproxy.HTMLError, account.KindMalformed, 0},
		{faultproxy.SuccessFalse, account.KindRejected, 0},
		{faultproxy.TooManyRequest, account.KindRateLimited, 0},
		{faultproxy.Unavailable, account.KindServer, 0},
		{faultproxy.Garbage, account.KindMalformed, 0},
		{faultproxy.Stall, account.KindTransport, 0},
		{faultproxy.Latency, 0, 4},
		{faultproxy.DropAfterCommit, account.KindServer, 4},
		{faultproxy.CloseAfterCommit, account.KindTransport, 4},
		{faultproxy.ServerErrorAfterCommit, account.KindServer, 4},
		{faultproxy.HTMLErrorAfterCommit, account.KindMalformed, 4},
		{faultproxy.TruncatedJSON, account.KindMalformed, 4},
		{faultproxy.MissingSuccess, account.KindMalformed, 4},
	}
	for _, c := range cases {
		t.Run(string(c.fault), func(t *testing.T) {
			r := newRig(t, faultproxy.Options{Seed: 1, MaxLatency: 50 * time.Millisecond}, nil)
			r.proxy.Add(faultproxy.Rule{Action: "put_journal_entries", Fault: c.fault, Times: 1})
			client := r.client
			if c.fault == faultproxy.Stall {
				client = r.impatient
			}
			_, err := client.PutJournalEntries(context.Background(), writer, entries(0, 4))
			if got := kind(err); got != c.kind {
				t.Errorf("put under %s: error %v (kind %v), want kind %v", c.fault, err, got, c.kind)
			}
			if got := r.rows(t); got != c.stored {
				t.Errorf("server holds %d rows after %s, want %d", got, c.fault, c.stored)
			}
			if got := r.proxy.Counts()[c.fault]; got != 1 {
				t.Errorf("fault counted %d times, want 1", got)
			}
			// The rule was used up: the next request passes.
			if _, err := r.client.PutJournalEntries(context.Background(), writer, entries(10, 1)); err != nil {
				t.Errorf("put after the fault: %v", err)
			}
		})
	}
}

func TestRetryAfterIsSentWith429And503(t *testing.T) {
	r := newRig(t, faultproxy.Options{Seed: 1, RetryAfter: 3 * time.Second}, nil)
	for _, f := range []faultproxy.Fault{faultproxy.TooManyRequest, faultproxy.Unavailable} {
		r.proxy.Add(faultproxy.Rule{Fault: f, Times: 1})
		_, err := r.client.GetJournalEntries(context.Background(), account.JournalQuery{})
		var ae *account.Error
		if !errors.As(err, &ae) || ae.RetryAfter != 3*time.Second {
			t.Errorf("%s: error %v, want one with Retry-After 3s", f, err)
		}
	}
}

func TestNullJournalIDsAndMissingRowsStoreOnlyTheRowsTheyReportStored(t *testing.T) {
	for _, f := range []faultproxy.Fault{faultproxy.NullJournalIDs, faultproxy.MissingRows} {
		t.Run(string(f), func(t *testing.T) {
			r := newRig(t, faultproxy.Options{Seed: 7}, nil)
			r.proxy.Add(faultproxy.Rule{Action: "put_journal_entries", Fault: f, Times: 1})
			res, err := r.client.PutJournalEntries(context.Background(), writer, entries(0, 20))
			if err != nil {
				t.Fatal(err)
			}
			stored := 0
			for _, x := range res {
				if x.Stored {
					stored++
				}
			}
			if stored == 20 {
				t.Fatalf("all 20 rows reported stored under %s", f)
			}
			if got := r.rows(t); got != stored {
				t.Errorf("server holds %d rows, the reply said %d were stored", got, stored)
			}
			if len(res) != 20 {
				t.Errorf("%d results, want 20 (the client reports rows held back as not stored)", len(res))
			}
		})
	}
}

func TestRewindMakesTheJournalStartAgainFromOne(t *testing.T) {
	r := newRig(t, faultproxy.Options{Seed: 1}, nil)
	ctx := context.Background()
	if _, err := r.client.PutJournalEntries(ctx, writer, entries(0, 5)); err != nil {
		t.Fatal(err)
	}
	if page, err := r.client.GetJournalEntries(ctx, account.JournalQuery{}); err != nil || len(page.Entries) != 5 {
		t.Fatalf("before the rewind: %v, %v", page, err)
	}
	if base := r.proxy.Rewind(); base != 5 {
		t.Errorf("rewound at %d, want 5", base)
	}
	page, err := r.client.GetJournalEntries(ctx, account.JournalQuery{AfterID: 4})
	if err != nil || len(page.Entries) != 0 {
		t.Fatalf("after the rewind, rows after 4: %+v, %v; want none", page, err)
	}
	res, err := r.client.PutJournalEntries(ctx, writer, entries(100, 2))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].JournalID != 1 || res[1].JournalID != 2 {
		t.Errorf("new rows got ids %d, %d, want 1, 2", res[0].JournalID, res[1].JournalID)
	}
	page, err = r.client.GetJournalEntries(ctx, account.JournalQuery{})
	if err != nil || len(page.Entries) != 2 || page.MaxID() != 2 || page.Entries[0].Data != "opaque-100" {
		t.Errorf("after the rewind: %+v, %v; want the 2 new rows as ids 1 and 2", page, err)
	}
}

func TestReorderTiesCutsAFullPageInsideItsLastSecond(t *testing.T) {
	second := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var now time.Time = second
	r := newRig(t, faultproxy.Options{Seed: 1}, func() time.Time { return now })
	ctx := context.Background()
	for from := 0; from < 4990; from += 998 {
		if _, err := r.direct.PutJournalEntries(ctx, writer, entries(from, 998)); err != nil {
			t.Fatal(err)
		}
	}
	now = second.Add(time.Second)
	if _, err := r.direct.PutJournalEntries(ctx, writer, entries(4990, 20)); err != nil {
		t.Fatal(err)
	}
	now = time.Now()
	r.proxy.Add(faultproxy.Rule{Action: "get_journal_entries", Fault: faultproxy.ReorderTies, Times: 1})
	page, err := r.client.GetJournalEntries(ctx, account.JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 5000 {
		t.Fatalf("page of %d rows, want 5000", len(page.Entries))
	}
	// The second second holds ids 4991..5010; the page must carry its 10
	// highest and leave out 4991..5000, below the page's maximum id.
	have := map[int64]bool{}
	for _, e := range page.Entries {
		have[e.ID] = true
	}
	if page.MaxID() != 5010 || have[4995] || !have[5001] || !have[4990] {
		t.Errorf("page max %d, has 4995 %v, 5001 %v, 4990 %v; want 5010, false, true, true", page.MaxID(), have[4995], have[5001], have[4990])
	}
}

func TestHugeBodyIsCutOffByTheClientsReplyLimit(t *testing.T) {
	r := newRig(t, faultproxy.Options{Seed: 1}, nil)
	r.proxy.Add(faultproxy.Rule{Fault: faultproxy.HugeBody, Times: 1})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := r.client.GetJournalEntries(context.Background(), account.JournalQuery{})
	runtime.ReadMemStats(&after)
	if kind(err) != account.KindMalformed {
		t.Errorf("a 1 GiB reply gave %v, want a Malformed error", err)
	}
	if n := r.proxy.HugeBytesWritten(); n > 64<<20 {
		t.Errorf("the client read %d bytes of a 1 GiB reply with a 1 MiB limit", n)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("reading the reply allocated %d bytes, want far less than the 1 GiB body", grew)
	}
}

func TestReplayAndNonNumericIDs(t *testing.T) {
	r := newRig(t, faultproxy.Options{Seed: 1}, nil)
	ctx := context.Background()
	if _, err := r.client.PutJournalEntries(ctx, writer, entries(0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.GetJournalEntries(ctx, account.JournalQuery{}); err != nil {
		t.Fatal(err)
	}
	r.proxy.Add(faultproxy.Rule{Action: "get_journal_entries", Fault: faultproxy.Replay, Times: 1})
	page, err := r.client.GetJournalEntries(ctx, account.JournalQuery{AfterID: 3})
	if err != nil || len(page.Entries) == 0 || page.MaxID() > 3 {
		t.Errorf("replayed page %+v, %v; want old rows (ids <= 3) after id 3", page, err)
	}
	r.proxy.Add(faultproxy.Rule{Action: "get_journal_entries", Fault: faultproxy.NonNumericIDs, Times: 1})
	if _, err := r.client.GetJournalEntries(ctx, account.JournalQuery{}); kind(err) != account.KindMalformed {
		t.Errorf("ids that are not numbers gave %v, want a Malformed error", err)
	}
}

func TestTheSameSeedGivesTheSameSchedule(t *testing.T) {
	schedule := func(seed uint64) map[faultproxy.Fault]int {
		r := newRig(t, faultproxy.Options{Seed: seed, Rate: 0.5, Faults: []faultproxy.Fault{faultproxy.ServerError, faultproxy.SuccessFalse, faultproxy.TooManyRequest}}, nil)
		for range 40 {
			r.client.GetJournalEntries(context.Background(), account.JournalQuery{})
		}
		return r.proxy.Counts()
	}
	a, b := schedule(42), schedule(42)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 42 gave %v, then %v", a, b)
	}
	total := 0
	for _, n := range a {
		total += n
	}
	if total < 5 || total > 35 {
		t.Errorf("%d faults in 40 requests at rate 0.5", total)
	}
}
