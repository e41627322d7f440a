package accountserver

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/internal/mariadbtest"
	"github.com/icholy/digest"
)

// testAccounts is a seed with every optional key, plus a minimal account
// and accounts in the two other password modes.
const testAccounts = `
[[account]]
address  = "alice@example.com"
password = "secret"
email = "alice@mail.example.com"
first = "Alice"
lastname = "Liddell"
pstn_caller_id = "+31201234567"
mobile_number = "+31612345678"
timezone = "Europe/Amsterdam"
no_answer_timeout = 20
quick_dial = "31"
aliases = ["alice.l", "wonder@example.com"]
enum = ["+31201234567"]
balance = 12.5
reject_rules = ["sip:spam@example.net"]
privacy = false

[account.forwarding]
FBUS = "sip:bob@example.com"
FNOA = "<voice-mailbox>"

[[account.history.placed]]
remote_party = "bob@example.com"
start_time = "2026-11-20 10:00:00"
duration = 60
status = 200
price = 0.25
session_id = "s1"
from_tag = "f1"
to_tag = "t1"
proxy_ip = "192.0.2.1"
media = ["audio", "video"]

[[account.history.received]]
remote_party = "carol@example.com"
display_name = "Carol"
start_time = "2026-10-01 08:00:00"
stop_time = "2026-10-01 08:00:10"
duration = 10
session_id = "s2"
from_tag = "f2"
to_tag = "t2"
proxy_ip = "192.0.2.2"

[[account.devices]]
contact = "192.0.2.7:5061"
public_contact = "198.51.100.7:40000"
expires = 600
user_agent = "Blink 5.0"
transport = "tls"

[[account.balance_history]]
date = "2026-11-01 00:00:00"
action = "Add balance"
description = "Card 1234"
value = 20.0
balance = 20.0

[[account.balance_history]]
date = "2026-11-02 00:00:00"
action = "Session"
description = "Free call"
value = 0.0
balance = 20.0

[account.accept_rules]
groups = ["coworkers"]

[[account.accept_rules.persistent]]
days = 31
start = "09:00"
stop = "17:00"
groups = ["everybody"]

[account.voicemail]
mailbox = "1001"
password = "1234"
name = "Alice"
email = "alice@mail.example.com"
info = ""
options = { delete = true, attach = "yes", keep_days = 30 }

[[account]]
address  = "bob@example.com"
password = "bobpw"

[[account]]
address  = "web@example.com"
password = "sippw"
web_password = "webpw"

[account.voicemail]
mailbox = "2002"
server = "voicemail.example.net"

[[account]]
address  = "hashed@example.org"
ha1 = "%s"
`

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func md5s(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func seedAccounts(t testing.TB) []Account {
	t.Helper()
	accts, err := ParseAccounts([]byte(fmt.Sprintf(testAccounts, md5s("hashed:example.org:hpw"))))
	if err != nil {
		t.Fatal(err)
	}
	return accts
}

type env struct {
	t     testing.TB
	dir   string
	clock *clock
	srv   *Server
	hs    *httptest.Server
	url   string // .../settings.phtml
	opts  Options
}

// newEnv starts a server on a fresh data dir; mod may adjust the options.
func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: &clock{t: time.Date(2026, 11, 25, 19, 58, 37, 0, time.UTC)}}
	e.opts = Options{DataDir: e.dir, Accounts: seedAccounts(t), Now: e.clock.Now}
	if mod != nil {
		mod(&e.opts)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	e.t.Helper()
	srv, err := New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.hs = httptest.NewServer(srv)
	e.url = e.hs.URL + Path
}

func (e *env) stop() {
	if e.srv != nil {
		e.srv.EndWaits() // hs.Close waits for held long polls
	}
	if e.hs != nil {
		e.hs.Close()
		e.hs = nil
	}
	if e.srv != nil {
		if err := e.srv.Close(); err != nil {
			e.t.Error(err)
		}
		e.srv = nil
	}
}

func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

// client returns an http.Client that answers digest challenges with the
// independent icholy/digest transport.
func (e *env) client(user, pw string) *http.Client {
	return &http.Client{Transport: &digest.Transport{Username: user, Password: pw}}
}

type reply struct {
	status int
	body   string
	header http.Header
}

// do sends action with query parameters q and, if form is not nil, a form
// POST body.
func (e *env) do(c *http.Client, q url.Values, form url.Values) reply {
	e.t.Helper()
	u := e.url + "?" + q.Encode()
	var resp *http.Response
	var err error
	if form != nil {
		resp, err = c.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{resp.StatusCode, string(b), resp.Header}
}

// alice calls action as alice@example.com (realm example.com).
func (e *env) alice(action string, kv ...string) reply {
	e.t.Helper()
	return e.as(e.client("alice", "secret"), "example.com", action, kv...)
}

// as calls action with extra key/value pairs; keys starting with "form:"
// go into a POST body.
func (e *env) as(c *http.Client, realm, action string, kv ...string) reply {
	e.t.Helper()
	q := url.Values{"realm": {realm}}
	if action != "" {
		q.Set("action", action)
	}
	var form url.Values
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := strings.CutPrefix(kv[i], "form:"); ok {
			if form == nil {
				form = url.Values{}
			}
			form.Set(k, kv[i+1])
			continue
		}
		q.Set(kv[i], kv[i+1])
	}
	return e.do(c, q, form)
}

func wantBody(t testing.TB, got reply, status int, body string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Errorf("got %d %s\nwant %d %s", got.status, got.body, status, body)
	}
	if ct := got.header.Get("Content-Type"); status == 200 && ct != "text/html; charset=UTF-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

var challengeRE = regexp.MustCompile(`^Digest realm="([^"]*)", qop="auth", nonce="([^"]+)", opaque="([0-9a-f]{32})"$`)

// challengeFor returns a fresh nonce for realm (from an unauthenticated
// request).
func (e *env) challengeFor(realm string) string {
	e.t.Helper()
	q := url.Values{"action": {"get_identity"}}
	if realm != "" {
		q.Set("realm", realm)
	}
	r := e.do(http.DefaultClient, q, nil)
	m := challengeRE.FindStringSubmatch(r.header.Get("WWW-Authenticate"))
	if r.status != 401 || m == nil {
		e.t.Fatalf("no challenge: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	return m[2]
}

// authHeader builds an Authorization header by hand.
func authHeader(user, realm, pw, method, uri, nonce string) string {
	ha1 := md5s(user + ":" + realm + ":" + pw)
	resp := md5s(ha1 + ":" + nonce + ":00000001:abcdef:auth:" + md5s(method+":"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", qop=auth, nc=00000001, cnonce="abcdef"`,
		user, realm, nonce, uri, resp)
}

// raw sends one GET with the given Authorization header.
func (e *env) raw(query, auth string) reply {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+"?"+query, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), resp.Header}
}

// envMaker is newEnv, or newEnv on another journal store.
type envMaker func(t testing.TB, mod func(*Options)) *env

// eachBackend runs test on each journal store: bbolt, and the MySQL
// journal on a fresh database of the tests' MariaDB (skipped when MariaDB
// is not installed, unless CHATSYNC_REQUIRE_MARIADB=1).
func eachBackend(t *testing.T, test func(t *testing.T, newEnv envMaker)) {
	t.Run("bbolt", func(t *testing.T) { test(t, newEnv) })
	t.Run("mysql", func(t *testing.T) { test(t, newMySQLEnv) })
}

// newMySQLEnv is newEnv with the journal on a fresh MariaDB database.
func newMySQLEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	d := mariadbtest.New(t)
	return newEnv(t, func(o *Options) {
		o.JournalMySQL = d.Config()
		if mod != nil {
			mod(o)
		}
	})
}
