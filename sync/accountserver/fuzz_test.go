package accountserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzServeHTTP drives the handler with arbitrary actions, parameters and
// bodies as an authenticated client. It must never panic, and every reply
// must be one the protocol allows.
func FuzzServeHTTP(f *testing.F) {
	f.Add("put_journal_entries", "uuid=A", `[{"id":1,"data":"x"},{"data":{"a":1}}]`, "")
	f.Add("get_journal_entries", "after_id=-1&limit=3&after_timestamp=2000-01-01", "", "")
	f.Add("get_journal_entries", "except_uuid=fuzz&wait=60", "", "")
	f.Add("delete_journal_entries", "journal_id=1", `{"a":"1"}`, "")
	f.Add("set_call_forwarding", "FUNC=%3Cmobile-number%3E&FNOA=0", "", "")
	f.Add("add_alias", "username=%00", "", "")
	f.Add("set_dnd_on", "duration=99999999999999999999", "", "")
	f.Add("get_balance_history", "csv=1", "", "")
	f.Add("x", "realm=a@b@c", "[", `Digest username="", nonce=1`)

	e := newEnv(f, func(o *Options) { o.MaxBody = 1 << 16 })
	// Authenticate once and reuse the nonce: it is valid for 300 s of the
	// fixed test clock, and the key survives restarts.
	nonce := e.challengeFor("example.com")
	execs := 0
	key, err := os.ReadFile(filepath.Join(e.opts.DataDir, nonceKeyFile))
	if err != nil {
		f.Fatal(err)
	}
	base := f.TempDir()
	fresh := func(t *testing.T) {
		e.t = t
		e.stop()
		os.RemoveAll(e.opts.DataDir)
		dir, err := os.MkdirTemp(base, "data")
		if err != nil {
			t.Fatal(err)
		}
		e.opts.DataDir = dir
		if err := os.WriteFile(filepath.Join(dir, nonceKeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		e.start()
		e.srv.db.NoSync = true // the fuzzer does not test durability
		// Nor long polls: a wait=N it makes up is answered at once
		// instead of holding the run for up to a minute.
		e.srv.EndWaits()
	}

	f.Fuzz(func(t *testing.T, action, query, data, auth string) {
		// Start over now and then: a journal that grows without bound
		// makes every full scan (except_uuid=fuzz) slower.
		if execs%2000 == 0 {
			fresh(t)
		}
		e.t = t
		execs++
		q, _ := url.ParseQuery(query)
		if q == nil {
			q = url.Values{}
		}
		q.Set("action", action)
		q.Set("realm", "example.com")
		u := Path + "?" + q.Encode()
		form := url.Values{"data": {data}, "uuid": {"fuzz"}}
		req := httptest.NewRequest("POST", u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth == "" {
			auth = authHeader("alice", "example.com", "secret", "POST", u, nonce)
		}
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusUnauthorized:
		case http.StatusInternalServerError:
			// Only the documented fatal errors.
			if rec.Body.Len() != 0 || (action != "put_journal_entries" && action != "get_monthly_usage") {
				t.Fatalf("500 for %q: %q", action, rec.Body)
			}
		case http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", rec.Code, action)
		}
	})
}
