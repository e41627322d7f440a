package account

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Replies from PROTOCOL §11. The real* ones are the recorded bytes; the
// others are built from what §11 confirms of the real code (key order,
// string ids, "rows" a number, `\/`, `\u00e9`) or, for the PHP fatal error,
// its documented beginning completed the way PHP 8 prints the rest.
const (
	realPut3Reply         = `{"results":[{"id":"m1","journal_id":"1","source":"default"},{"id":2,"journal_id":"2","source":"default"},{"id":"m\/3","journal_id":"3","source":"default"}],"success":true}`
	realPutMissingUUID    = `{"results":[],"success":false,"error_message":"Missing uuid"}`
	realGetLimitBug       = `{"success":true,"error_message":null,"results":[],"rows":0}`
	realDeleteReply       = `{"error_message":"database error"}`
	realDeleteHalted      = "MySQL error: 1064 (You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near ''alice@example.com' and journal_id in (\\'1\\')' at line 1)\nSession halted.\n"
	putTypeErrorDisplayed = "<br />\n<b>Fatal error</b>:  Uncaught TypeError: addslashes(): Argument #1 ($string) must be of type string, stdClass given in /var/www/CDRTool/library/sip_settings.php:5123\nStack trace:\n#0 /var/www/CDRTool/library/sip_settings.php(5123): addslashes(Object(stdClass))\n#1 {main}\n  thrown in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>5123</b><br />\n"
	getRowsReply          = `{"success":true,"error_message":null,"results":[{"id":"5","source":"default","timestamp":"2026-11-25 19:58:37","account":"alice@example.com","uuid":"B","ip_address":"127.0.0.1","data":"caf\u00e9 \"q\" <b> hello\/world"},{"id":"4","source":"default","timestamp":"2026-11-25 19:58:37","account":"alice@example.com","uuid":"B","ip_address":"127.0.0.1","data":"x\\y"}],"rows":2}`
)

func TestGetJournalEntriesParsesStringIDsAndSendsCursor(t *testing.T) {
	s := newTestServer(t, reply(getRowsReply))
	page, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{ExceptUUID: "urn:uuid:A", AfterID: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := &JournalPage{Rows: 2, Bytes: int64(len(getRowsReply)), Entries: []JournalEntry{
		{ID: 5, Source: "default", Timestamp: "2026-11-25 19:58:37", Account: "alice@example.com", UUID: "B", IPAddress: "127.0.0.1", Data: `café "q" <b> hello/world`},
		{ID: 4, Source: "default", Timestamp: "2026-11-25 19:58:37", Account: "alice@example.com", UUID: "B", IPAddress: "127.0.0.1", Data: `x\y`},
	}}
	if !reflect.DeepEqual(page, want) {
		t.Fatalf("page = %+v\nwant %+v", page, want)
	}
	// Same-second rows come in any order: the cursor is the max id.
	if page.MaxID() != 5 {
		t.Errorf("MaxID = %d, want 5", page.MaxID())
	}
	wantQuery(t, s, "get_journal_entries", url.Values{"except_uuid": {"urn:uuid:A"}, "after_id": {"3"}})
	if r := s.last(); r.Method != http.MethodGet {
		t.Errorf("method = %s", r.Method)
	}
}

func TestGetJournalEntriesSendsNoLimitUnlessAsked(t *testing.T) {
	s := newTestServer(t, reply(realGetLimitBug))
	c := newClient(t, s)
	if _, err := c.GetJournalEntries(t.Context(), JournalQuery{}); err != nil {
		t.Fatal(err)
	}
	wantQuery(t, s, "get_journal_entries", nil)

	page, err := c.GetJournalEntries(t.Context(), JournalQuery{Limit: 6000, AfterTimestamp: "2000-01-01 00:00:00"})
	if err != nil {
		t.Fatal(err)
	}
	if page.Rows != 0 || len(page.Entries) != 0 || page.MaxID() != 0 {
		t.Fatalf("page = %+v", page)
	}
	wantQuery(t, s, "get_journal_entries", url.Values{"limit": {"6000"}, "after_timestamp": {"2000-01-01 00:00:00"}})
	if r := s.last(); !strings.Contains(r.RequestURI, "after_timestamp=2000-01-01+00%3A00%3A00") {
		t.Errorf("after_timestamp not encoded: %s", r.RequestURI)
	}
}

func TestGetJournalEntriesAcceptsNumericIDs(t *testing.T) {
	s := newTestServer(t, reply(`{"success":true,"error_message":null,"results":[{"id":12,"source":"default","timestamp":"2026-11-25 19:58:37","account":"alice@example.com","uuid":"B","ip_address":"::1","data":"d"}],"rows":"1"}`))
	page, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].ID != 12 || page.Rows != 1 {
		t.Fatalf("page = %+v", page)
	}
}

func TestGetJournalNonNumericIDIsMalformed(t *testing.T) {
	for _, id := range []string{`"65a1f0c2e4b0a1b2c3d4e5f6"`, `null`, `"-3"`, `1.5`, `{"x":1}`} {
		s := newTestServer(t, reply(`{"success":true,"error_message":null,"results":[{"id":`+id+`,"data":"secret-payload"}],"rows":1}`))
		_, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindMalformed || !e.Retryable() {
			t.Fatalf("id %s: err = %v, want retryable malformed", id, err)
		}
		if strings.Contains(err.Error(), "secret-payload") {
			t.Fatalf("error leaks journal data: %v", err)
		}
	}
}

func TestGetJournalDatabaseFailureIsRejected(t *testing.T) {
	s := newTestServer(t, reply(`{"success":false,"error_message":"Database Failure","results":[],"rows":0}`))
	_, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
	if !IsKind(err, KindRejected) || !strings.Contains(err.Error(), "Database Failure") {
		t.Fatalf("err = %v", err)
	}
}

func TestGetJournalToleratesPHPWarningsBeforeJSON(t *testing.T) {
	// error_reporting(E_ALL) with display_errors on (PROTOCOL §11.2.3).
	warn := "<br />\n<b>Warning</b>:  Undefined array key \"summary\" in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>5010</b><br />\n" +
		"<br />\n<b>Deprecated</b>:  Creation of dynamic property SipSettings::$db is deprecated in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>201</b><br />\n"
	s := newTestServer(t, reply(warn+getRowsReply))
	page, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.Entries[0].ID != 5 {
		t.Fatalf("page = %+v", page)
	}
}

func TestPutJournalEntriesSendsFormAndMapsRealReply(t *testing.T) {
	s := newTestServer(t, reply(realPut3Reply))
	entries := []PutEntry{{ID: "m1", Data: "hello/world"}, {ID: "2", Data: `café "q" <b>`}, {ID: "m/3", Data: `x\y`}}
	res, err := newClient(t, s).PutJournalEntries(t.Context(), "urn:uuid:A", entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []PutResult{{ID: "m1", JournalID: 1, Stored: true}, {ID: "2", JournalID: 2, Stored: true}, {ID: "m/3", JournalID: 3, Stored: true}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("results = %+v, want %+v", res, want)
	}
	r := s.last()
	if r.Method != http.MethodPost || r.ContentType != "application/x-www-form-urlencoded" {
		t.Fatalf("method=%s content-type=%q", r.Method, r.ContentType)
	}
	wantQuery(t, s, "put_journal_entries", nil)
	wantForm := url.Values{"uuid": {"urn:uuid:A"}, "data": {`[{"id":"m1","data":"hello/world"},{"id":"2","data":"café \"q\" <b>"},{"id":"m/3","data":"x\\y"}]`}}
	if !reflect.DeepEqual(r.Form, wantForm) {
		t.Fatalf("form = %q\nwant %q", r.Form, wantForm)
	}
}

func TestPutNullJournalIDIsReportedAsNotStored(t *testing.T) {
	s := newTestServer(t, reply(`{"results":[{"id":"a","journal_id":"14","source":"default"},{"id":"b","journal_id":null,"source":"default"},{"id":"c","journal_id":16,"source":"default"}],"success":true}`))
	res, err := newClient(t, s).PutJournalEntries(t.Context(), "urn:uuid:A", []PutEntry{{ID: "a", Data: "1"}, {ID: "b", Data: "2"}, {ID: "c", Data: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []PutResult{{ID: "a", JournalID: 14, Stored: true}, {ID: "b"}, {ID: "c", JournalID: 16, Stored: true}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("results = %+v, want %+v", res, want)
	}
}

func TestPutRowMissingFromReplyIsNotStoredAndOrderIsInputOrder(t *testing.T) {
	// The server skips elements it cannot use and sends no row for them;
	// rows are matched by id, not by position.
	s := newTestServer(t, reply(`{"results":[{"id":"z","journal_id":"8","source":"default"},{"id":"stranger","journal_id":"9","source":"default"}],"success":true}`))
	res, err := newClient(t, s).PutJournalEntries(t.Context(), "urn:uuid:A", []PutEntry{{ID: "y", Data: ""}, {ID: "z", Data: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []PutResult{{ID: "y"}, {ID: "z", JournalID: 8, Stored: true}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("results = %+v, want %+v", res, want)
	}
}

func TestPutFailureIsRejectedWithServerMessage(t *testing.T) {
	s := newTestServer(t, reply(realPutMissingUUID))
	_, err := newClient(t, s).PutJournalEntries(t.Context(), "urn:uuid:A", []PutEntry{{ID: "a", Data: "d"}})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindRejected || e.Retryable() || !strings.Contains(e.Message, "Missing uuid") {
		t.Fatalf("err = %v", err)
	}
}

func TestPutServerFailuresAreRetryableServerErrors(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"500 empty body": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		"200 empty body": reply(""),
		"200 fatal text": reply(putTypeErrorDisplayed),
	} {
		s := newTestServer(t, h)
		_, err := newClient(t, s).PutJournalEntries(t.Context(), "urn:uuid:A", []PutEntry{{ID: "a", Data: "secret-payload"}})
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindServer || !e.Retryable() {
			t.Errorf("%s: err = %v, want retryable server error", name, err)
			continue
		}
		if strings.Contains(err.Error(), "secret-payload") {
			t.Errorf("%s: error leaks journal data: %v", name, err)
		}
	}
}

func TestPutRefusesBadArgumentsBeforeSending(t *testing.T) {
	s := newTestServer(t, reply(realPut3Reply))
	c := newClient(t, s)
	for name, tc := range map[string]struct {
		uuid    string
		entries []PutEntry
	}{
		"empty uuid":   {"", []PutEntry{{ID: "a"}}},
		"empty id":     {"u", []PutEntry{{ID: "", Data: "x"}}},
		"duplicate id": {"u", []PutEntry{{ID: "a"}, {ID: "a"}}},
	} {
		if _, err := c.PutJournalEntries(t.Context(), tc.uuid, tc.entries); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	if res, err := c.PutJournalEntries(t.Context(), "u", nil); res != nil || err != nil {
		t.Errorf("no entries: %v, %v", res, err)
	}
	if n := len(s.seen()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestDeleteJournalEntriesSendsIDsAndReportsRealServerRefusal(t *testing.T) {
	s := newTestServer(t, reply(realDeleteReply))
	c := newClient(t, s)
	err := c.DeleteJournalEntries(t.Context(), []int64{1, 22})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindRejected || e.Retryable() || !strings.Contains(e.Message, "database error") {
		t.Fatalf("err = %v, want non-retryable rejected carrying 'database error'", err)
	}
	r := s.last()
	if r.Method != http.MethodPost || !reflect.DeepEqual(r.Form, url.Values{"data": {"[1,22]"}}) {
		t.Fatalf("method=%s form=%v", r.Method, r.Form)
	}
	wantQuery(t, s, "delete_journal_entries", nil)

	s.setHandler(reply(`{"success":true}`))
	if err := c.DeleteJournalEntries(t.Context(), []int64{3}); err != nil {
		t.Fatalf("intended server: %v", err)
	}
}

func TestDeleteMySQLErrorTextIsServerError(t *testing.T) {
	for name, body := range map[string]string{
		"halt yes":    realDeleteHalted,
		"halt report": strings.TrimSuffix(realDeleteHalted, "Session halted.\n") + realDeleteReply,
	} {
		s := newTestServer(t, reply(body))
		err := newClient(t, s).DeleteJournalEntries(t.Context(), []int64{1})
		if !IsKind(err, KindServer) || !strings.Contains(err.Error(), "MySQL error: 1064") {
			t.Errorf("%s: err = %v, want server error quoting MySQL", name, err)
		}
	}
}

func TestRateLimitAndUnavailableHonourRetryAfter(t *testing.T) {
	s := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := newClient(t, s)
	_, err := c.GetJournalEntries(t.Context(), JournalQuery{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindRateLimited || !e.Retryable() || e.RetryAfter != 2*time.Minute || e.StatusCode != 429 {
		t.Fatalf("429: err = %#v", err)
	}

	c.now = func() time.Time { return time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC) }
	s.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "Wed, 25 Nov 2026 20:00:30 GMT")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err = c.GetJournalEntries(t.Context(), JournalQuery{})
	if !errors.As(err, &e) || e.Kind != KindServer || !e.Retryable() || e.RetryAfter != 30*time.Second || e.StatusCode != 503 {
		t.Fatalf("503: err = %#v", err)
	}
}
