package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/apitype"
)

func TestVoicemailOptionsForPeople(t *testing.T) {
	for raw, want := range map[string]string{
		``:                                 "",
		`{"delete":false}`:                 "delete=false",
		`{"keep":"30 days","delete":true}`: "delete=true keep=30 days",
		`{"n":{"x":1},"l":[1,2],"z":null}`: `l=[1,2] n={"x":1} z=null`,
		`"attach=yes"`:                     "attach=yes",
		`{}`:                               "",
		`[1]`:                              "[1]",
	} {
		if got := voicemailOptions(json.RawMessage(raw)); got != want {
			t.Errorf("voicemailOptions(%s) = %q, want %q", raw, got, want)
		}
	}
	vm := &apitype.Voicemail{Mailbox: "1001", Account: "1001@vm.example.com", Options: json.RawMessage(`{"delete":false}`)}
	var b bytes.Buffer
	if err := printVoicemail(&b, &vm); err != nil {
		t.Fatal(err)
	}
	want := "mailbox   1001\naccount   1001@vm.example.com\nname      -\nemail     -\noptions   delete=false\npassword  (hidden: --json shows it)\n"
	if b.String() != want {
		t.Errorf("printVoicemail:\n%s\nwant\n%s", b.String(), want)
	}
}

// journalServer is a chatsync-server that returns same-second rows in no
// defined order, like the real one, with a settable clock.
type journalServer struct {
	url string
	mu  sync.Mutex
	now time.Time
}

func startJournalServer(t *testing.T) *journalServer {
	t.Helper()
	js := &journalServer{now: time.Date(2026, 11, 25, 19, 58, 37, 0, time.UTC)}
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: []accountserver.Account{seededAccount()},
		ShuffleSameSecond: true, ShuffleSeed: 3, Now: func() time.Time { js.mu.Lock(); defer js.mu.Unlock(); return js.now }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	js.url = hs.URL + accountserver.Path
	return js
}

// put stores n rows written by another device, all in the clock's
// current second, then moves the clock one second on.
func (js *journalServer) put(t *testing.T, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"data":"x%d"}`, i, i)
	}
	b.WriteByte(']')
	c := &http.Client{Transport: &digest.Transport{Username: "alice", Password: "pw-alice"}}
	resp, err := c.PostForm(js.url+"?action=put_journal_entries&realm=example.com", url.Values{"uuid": {"urn:uuid:other-device"}, "data": {b.String()}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), `"journal_id":"`) != n {
		t.Fatalf("put %d rows: %d %.200s", n, resp.StatusCode, body)
	}
	js.mu.Lock()
	js.now = js.now.Add(time.Second)
	js.mu.Unlock()
}

// TestJournalGetSaysWhenThePageIsFull pages a journal of 3000 rows in
// one second and 3000 in the next through `journal get`: the first page
// is cut at 5000 rows inside the second second, so it lacks some of its
// ids, and the hint must continue after the first second (id 3000), not
// after the highest id shown.
func TestJournalGetSaysWhenThePageIsFull(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 11000 journal rows")
	}
	js := startJournalServer(t)
	js.put(t, 3000) // ids 1-3000 at 19:58:37
	js.put(t, 3000) // ids 3001-6000 at 19:58:38
	td := startDaemon(t, js.url)

	code, out, errs := td.cli(t, "account", "journal", "get")
	if code != 0 || strings.Count(out, "\n") != 5001 {
		t.Fatalf("journal get: exit %d, %d lines, stderr %q", code, strings.Count(out, "\n"), errs)
	}
	for _, want := range []string{"this page is full: 5000 rows", "there may be more", "Continue with --after-id 3000,", "not the highest id shown",
		"2026-11-25 19:58:38"} {
		if !strings.Contains(errs, want) {
			t.Errorf("journal get: stderr lacks %q:\n%s", want, errs)
		}
	}

	var page struct {
		apitype.JournalPage
		Full        *bool  `json:"full"`
		NextAfterID *int64 `json:"next_after_id"`
	}
	td.cliJSON(t, &page, "account", "journal", "get")
	if len(page.Entries) != 5000 || page.Rows != 5000 || page.Full == nil || !*page.Full || page.NextAfterID == nil || *page.NextAfterID != 3000 {
		t.Fatalf("journal get --json: %d entries, rows %d, full %v, next_after_id %v", len(page.Entries), page.Rows, page.Full, page.NextAfterID)
	}
	seen := map[int64]bool{}
	var maxID int64
	for _, e := range page.Entries {
		seen[e.ID] = true
		maxID = max(maxID, e.ID)
	}
	skipped := 0
	for id := int64(1); id < maxID; id++ {
		if !seen[id] {
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatal("the server returned the lowest ids of the cut second: the test proves nothing")
	}
	t.Logf("the full page's highest id is %d; --after-id %d would skip %d rows", maxID, maxID, skipped)

	// Continuing with the hint's id reads the rest, and that page is not full.
	page.Full, page.NextAfterID = nil, nil
	td.cliJSON(t, &page, "account", "journal", "get", "--after-id", "3000")
	if len(page.Entries) != 3000 || page.Full != nil || page.NextAfterID != nil {
		t.Fatalf("journal get --after-id 3000: %d entries, full %v, next_after_id %v", len(page.Entries), page.Full, page.NextAfterID)
	}
	for _, e := range page.Entries {
		seen[e.ID] = true
	}
	for id := int64(1); id <= 6000; id++ {
		if !seen[id] {
			t.Fatalf("id %d was skipped", id)
		}
	}
	code, _, errs = td.cli(t, "account", "journal", "get", "--after-id", "3000")
	if code != 0 || errs != "" {
		t.Errorf("journal get of a page that is not full: exit %d, stderr %q", code, errs)
	}

	// A full page of one second: the hint is its highest id.
	js.put(t, 5200) // ids 6001-11200 at 19:58:39
	page.Full, page.NextAfterID = nil, nil
	td.cliJSON(t, &page, "account", "journal", "get", "--after-id", "6000")
	maxID = 0
	for _, e := range page.Entries {
		maxID = max(maxID, e.ID)
	}
	if len(page.Entries) != 5000 || page.Full == nil || !*page.Full || page.NextAfterID == nil || *page.NextAfterID != maxID {
		t.Fatalf("journal get --after-id 6000: %d entries, full %v, next_after_id %v, highest id %d", len(page.Entries), page.Full, page.NextAfterID, maxID)
	}
	_, _, errs = td.cli(t, "account", "journal", "get", "--after-id", "6000")
	if !strings.Contains(errs, fmt.Sprintf("Continue with --after-id %d. The whole page is from one second (2026-11-25 19:58:39)", maxID)) {
		t.Errorf("one-second page: stderr\n%s", errs)
	}
}
