package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/account"
)

var errCrash = errors.New("simulated crash")

func TestCrashBetweenInsertAndMappingCommitEndsWithOneRowAndOneFile(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	var crashed atomic.Bool
	a.tweak = func(o *Options) {
		o.Failpoint = func(name string) error {
			if name == "after-put" && crashed.CompareAndSwap(false, true) {
				a.cancel() // the process dies here: nothing after this runs
				return errCrash
			}
			return nil
		}
	}
	a.write("c/m1.json", msg("m1", "c@example.com", "sent just before the crash"))
	a.start()
	waitFor(t, 20*time.Second, "A to crash after the server stored the batch", func() bool { return crashed.Load() && len(srv.rows()) == 1 })
	a.stop()
	a.tweak = nil
	a.start()
	b.start()
	start := time.Now()
	waitFor(t, 20*time.Second, "A idle with an empty outbox", func() bool { return a.idle(start) })
	waitFor(t, 20*time.Second, "m1 on B", func() bool { return len(b.messages()) == 1 })
	if got := len(srv.rows()); got != 1 {
		t.Errorf("server holds %d rows, want exactly 1: the batch in flight must be reconciled, not sent again", got)
	}
	if got := b.files(); len(got) != 1 {
		t.Errorf("B has files %v, want exactly one", got)
	}
}

func TestCrashWhileApplyingAPageReappliesItIdempotently(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	for i := range 10 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	waitFor(t, 20*time.Second, "10 rows", func() bool { return len(srv.rows()) == 10 })
	var crashed atomic.Bool
	b.tweak = func(o *Options) {
		o.Failpoint = func(name string) error {
			if name == "before-apply-commit" && crashed.CompareAndSwap(false, true) {
				b.cancel()
				return errCrash
			}
			return nil
		}
	}
	b.start()
	waitFor(t, 20*time.Second, "B to crash after writing the files of a page", func() bool { return crashed.Load() })
	b.stop()
	b.tweak = nil
	b.start()
	start := time.Now()
	waitFor(t, 20*time.Second, "B idle", func() bool { return b.idle(start) })
	if got := len(b.files()); got != 10 {
		t.Errorf("B has %d files, want 10 (no duplicates from re-applying the page)", got)
	}
	if got := len(srv.rows()); got != 10 {
		t.Errorf("server holds %d rows, want 10 (B must not push what it applied)", got)
	}
}

// putReply answers a put_journal_entries request the way the real server
// does when its inserts fail: success, but journal_id null for every row.
func putReplyAllNull(w http.ResponseWriter, r *http.Request) {
	var entries []struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(r.FormValue("data")), &entries)
	var parts []string
	for _, e := range entries {
		parts = append(parts, fmt.Sprintf(`{"id":%q,"journal_id":null,"source":"default"}`, e.ID))
	}
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	fmt.Fprintf(w, `{"results":[%s],"success":true}`, strings.Join(parts, ","))
}

func TestNullJournalIDsStayQueuedAndAreSentAgain(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	var nulled atomic.Int32
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, acct, action string) bool {
		if action == "put_journal_entries" && nulled.Add(1) <= 2 {
			putReplyAllNull(w, r)
			return true
		}
		return false
	})
	for i := range 5 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "all 5 messages on B", func() bool { return len(b.messages()) == 5 })
	start := time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(start) })
	if got := nulled.Load(); got < 3 {
		t.Errorf("%d put requests, want at least 3 (two answered with null ids, then the real one)", got)
	}
	if got := len(srv.rows()); got != 5 {
		t.Errorf("server holds %d rows, want 5", got)
	}
}

func TestLostReplyAfterTheServerStoredIsReconciledNotResent(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDevice(t, "A", srv, kr)
	var dropped atomic.Int32
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.URL.Query().Get("action") != "put_journal_entries" {
			return false
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK && dropped.Add(1) <= 2 {
			// The rows are stored; the reply is lost on its way back.
			http.Error(w, "", http.StatusBadGateway)
			return true
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return true
	})
	a.start()
	for i := range 30 {
		a.write(fmt.Sprintf("c/m%02d.json", i), msg(fmt.Sprintf("m%02d", i), "c@example.com", "x"))
		if i == 10 {
			waitFor(t, 20*time.Second, "the first batch", func() bool { return dropped.Load() >= 1 })
		}
	}
	start := time.Now()
	waitFor(t, 30*time.Second, "A idle with everything sent", func() bool {
		return dropped.Load() >= 2 && a.idle(start) && len(srv.rows()) >= 30
	})
	if got := len(srv.rows()); got != 30 {
		t.Errorf("server holds %d rows, want 30: replies lost after the insert must not cause duplicates", got)
	}
}

func TestPageBoundaryInsideOneSecondSkipsNoEntry(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	// The real server orders a page by a one-second timestamp with ties in
	// no defined order and cuts it at 5000 rows. Emulate the worst order:
	// within a second, highest id first.
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, acct, action string) bool {
		if action != "get_journal_entries" {
			return false
		}
		after, _ := strconv.ParseInt(r.FormValue("after_id"), 10, 64)
		except := r.FormValue("except_uuid")
		rows, err := srv.backend.Load().Entries(acct)
		if err != nil {
			t.Error(err)
		}
		type row struct {
			ID        string `json:"id"`
			Source    string `json:"source"`
			Timestamp string `json:"timestamp"`
			Account   string `json:"account"`
			UUID      string `json:"uuid"`
			IP        string `json:"ip_address"`
			Data      string `json:"data"`
		}
		var page []row
		for _, e := range rows {
			if int64(e.ID) > after && !strings.EqualFold(e.UUID, except) {
				page = append(page, row{strconv.FormatUint(e.ID, 10), "default", e.Timestamp, e.Account, e.UUID, e.IPAddress, e.Data})
			}
		}
		sort.SliceStable(page, func(i, j int) bool {
			if page[i].Timestamp != page[j].Timestamp {
				return page[i].Timestamp < page[j].Timestamp
			}
			a, _ := strconv.Atoi(page[i].ID)
			b, _ := strconv.Atoi(page[j].ID)
			return a > b
		})
		page = page[:min(len(page), account.JournalPageMax)]
		json.NewEncoder(w).Encode(map[string]any{"success": true, "error_message": nil, "results": page, "rows": len(page)})
		return true
	})

	// 4990 rows in one second, 20 in the next: the first page holds the
	// first second and the 10 highest ids of the next.
	second := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	srv.setClock(func() time.Time { return second })
	client := srv.client(t)
	writer := "urn:uuid:00000000-0000-4000-8000-00000000000c"
	put := func(from, to int) {
		t.Helper()
		var entries []account.PutEntry
		for i := from; i < to; i++ {
			body, _ := json.Marshal(msg(fmt.Sprintf("m%05d", i), "c@example.com", "x"))
			env, err := kr.Seal(seal.Entry{Op: seal.OpPut, MsgID: fmt.Sprintf("m%05d", i), Account: testAccount, Device: writer, Time: second, Message: body})
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, account.PutEntry{ID: strconv.Itoa(i), Data: env})
		}
		if _, err := client.PutJournalEntries(t.Context(), writer, entries); err != nil {
			t.Fatal(err)
		}
	}
	for from := 0; from < 4990; from += 998 {
		put(from, from+998)
	}
	second = second.Add(time.Second)
	srv.setClock(func() time.Time { return second })
	put(4990, 5010)

	b := newDevice(t, "B", srv, kr)
	b.start()
	waitFor(t, 120*time.Second, "all 5010 messages on B", func() bool { return b.status().Received == 5010 })
	if got := len(b.files()); got != 5010 {
		t.Errorf("B has %d files, want 5010", got)
	}
}

func TestServerResetIsDetectedAndLocalMessagesArePushedAgain(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDevice(t, "A", srv, kr)
	a.start()
	for i := range 3 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "kept"))
	}
	waitFor(t, 20*time.Second, "3 rows", func() bool { return len(srv.rows()) == 3 })
	want := a.messages()
	srv.reset()
	waitFor(t, 30*time.Second, "A to notice and push again", func() bool {
		return !a.status().ResetAt.IsZero() && len(srv.rows()) == 3
	})
	if got := a.messages(); !equalMaps(got, want) {
		t.Errorf("A's messages changed after the server reset: %s, want %s", describe(got), describe(want))
	}
	// A new device gets everything from the new journal.
	c := newDevice(t, "C", srv, kr)
	c.start()
	waitFor(t, 20*time.Second, "the 3 messages on a new device", func() bool { return equalMaps(c.messages(), want) })
}

func TestEntriesUnderAnotherKeyAreSkippedAndCounted(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	stranger := newDevice(t, "X", srv, newKeyring(t))
	stranger.noReports = true // its one row is the one counted
	stranger.write("c/x.json", msg("x", "c@example.com", "under another key"))
	stranger.start()
	waitFor(t, 20*time.Second, "the stranger's row", func() bool { return len(srv.rows()) == 1 })
	a.write("c/ok.json", msg("ok", "c@example.com", "under our key"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "A's message on B", func() bool { return len(b.messages()) == 1 })
	waitFor(t, 20*time.Second, "the foreign entry counted", func() bool {
		s := b.status()
		return s.Skipped[unknownKeyReason] == 1 && s.Unapplied == 1 && len(s.MissingKeys) == 1
	})
	if _, ok := b.messages()["x"]; ok {
		t.Error("an entry under another key was applied")
	}
}

func TestRetryAfterIsHonouredAndPushRecovers(t *testing.T) {
	srv := newServer(t)
	a := newDevice(t, "A", srv, newKeyring(t))
	a.noReports = true // the puts counted are the message's
	var mu sync.Mutex
	var attempts []time.Time
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, acct, action string) bool {
		if action != "put_journal_entries" {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	a.write("c/m.json", msg("m", "c@example.com", "x"))
	a.start()
	waitFor(t, 20*time.Second, "A in backoff after the 429", func() bool {
		s := a.status()
		return s.State == StateBackoff && strings.Contains(s.LastPushError, "429")
	})
	waitFor(t, 20*time.Second, "the row stored after the wait", func() bool { return len(srv.rows()) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("%d put attempts, want 2", len(attempts))
	}
	if gap := attempts[1].Sub(attempts[0]); gap < time.Second {
		t.Errorf("retried after %s, before the Retry-After of 1s", gap)
	}
}

func TestWrongPasswordIsShownAsAnAuthenticationFailure(t *testing.T) {
	srv := newServer(t)
	a := newDevice(t, "A", srv, newKeyring(t))
	a.tweak = func(o *Options) {
		c, err := account.New(account.Config{Address: testAccount, Password: "wrong", SettingsURL: srv.http.URL + "/settings.phtml"})
		if err != nil {
			t.Fatal(err)
		}
		o.Remote = c
	}
	a.write("c/m.json", msg("m", "c@example.com", "x"))
	a.start()
	waitFor(t, 20*time.Second, "an authentication error in the status", func() bool {
		s := a.status()
		return s.State == StateBackoff && strings.Contains(s.Error, "authentication failed")
	})
	if got := len(srv.rows()); got != 0 {
		t.Errorf("server holds %d rows, want 0", got)
	}
}

// A settings_url that answers 404 is a wrong URL, not a page too large for
// the server: status says so, not to raise PHP's memory_limit.
func TestA404IsAWrongSettingsURLNotAPageTooLarge(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, account, action string) bool {
		if action != "get_journal_entries" {
			return false
		}
		http.NotFound(w, r)
		return true
	})
	a.start()
	waitFor(t, 20*time.Second, "A to fail its poll", func() bool { return a.status().PollFailures > 0 })
	st := a.status()
	if strings.Contains(st.Error, "memory_limit") || !strings.Contains(st.Error, "settings_url") {
		t.Errorf("status error %q: want the settings_url named, not memory_limit", st.Error)
	}
}
