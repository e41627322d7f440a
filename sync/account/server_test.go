package account_test

// These tests run the client (package account) against our own server
// (package accountserver) in-process, over real HTTP and HTTPS, for every
// action of the seed and the authentication failures: the two halves of
// issue #2 checked against each other, not against hand-written replies.
// accountserver does not import account, so this external test package
// can import both.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// seedTOML is the accounts.toml the server is started with: alice has every
// optional key, bob is the minimal account of the README, carol stores a
// web password next to her SIP password.
const seedTOML = `
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
aliases = ["wonder", "alice.l@example.com"]
enum = ["+31201234567", "+31207654321"]
balance = 12.5
reject_rules = ["sip:spam@example.net", "sip:telemarketer@example.org"]

[account.forwarding]
FBUS = "sip:bob@example.com"
FNOA = "<voice-mailbox>"

[[account.history.placed]]
remote_party = "bob@example.com"
start_time = "2026-11-20 10:00:00"
duration = 60
price = 0.25
session_id = "s1"
from_tag = "f1"
to_tag = "t1"
proxy_ip = "192.0.2.1"
media = ["audio", "video"]

[[account.history.placed]]
remote_party = "blocked@example.com"
start_time = "2026-11-21 10:00:00"
duration = 1
status = 435
session_id = "s-skipped"

[[account.history.received]]
remote_party = "carol@example.com"
display_name = "Carol"
start_time = "2026-10-01 08:00:00"
stop_time = "2026-10-01 08:00:10"
duration = 10
status = 200
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
date = "2026-11-20 10:01:00"
action = "Session"
description = "Call to bob"
value = -0.25
balance = 19.75

[account.accept_rules]
groups = ["coworkers", ""]

[[account.accept_rules.persistent]]
days = 31
start = "09:00"
stop = "17:00"
groups = ["everybody"]

[[account.accept_rules.persistent]]
days = 96
start = "10:00"
stop = "12:00"
groups = ["coworkers"]

[account.voicemail]
mailbox = "1001"
password = "vm-secret"
name = "Alice"
email = "alice@mail.example.com"
info = "office"
options = { delete = true }

[[account]]
address  = "bob@example.com"
password = "bobpw"

[[account]]
address  = "carol@example.com"
password = "carol-sip"
web_password = "carol-web"
`

// start is the server clock's starting time: in November 2026, so the
// placed call of 2026-11-20 counts for get_monthly_usage.
var start = time.Date(2026, 11, 25, 19, 58, 37, 0, time.UTC)

// fakeClock is the server's Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// exchange is one request the server answered, as the wrapping handler saw
// it.
type exchange struct {
	method  string
	query   url.Values
	status  int
	wwwAuth string
	body    string // the first maxKeptBody bytes of the reply
}

const maxKeptBody = 4 << 10

// harness is a running accountserver behind httptest, with a handler in
// front of it that records every exchange.
type harness struct {
	srv   *accountserver.Server
	hs    *httptest.Server
	clock *fakeClock
	url   string

	mu  sync.Mutex
	log []exchange
}

type harnessOpts struct {
	strict bool
	tls    bool
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	accts, err := accountserver.ParseAccounts([]byte(seedTOML))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{clock: &fakeClock{t: start}}
	h.srv, err = accountserver.New(accountserver.Options{
		DataDir:      t.TempDir(),
		Accounts:     accts,
		StrictCompat: o.strict,
		Now:          h.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.srv.Close(); err != nil {
			t.Error(err)
		}
	})
	h.hs = httptest.NewUnstartedServer(h)
	// The untrusted-certificate test makes the server log a handshake
	// error; keep the test output clean.
	h.hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	if o.tls {
		h.hs.StartTLS()
	} else {
		h.hs.Start()
	}
	t.Cleanup(h.hs.Close) // runs before srv.Close: no request is left running
	h.url = h.hs.URL + accountserver.Path
	return h
}

// recorder captures the status, the challenge and the start of the body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

// Unwrap lets http.ResponseController reach the connection (a held long
// poll flushes its header).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := maxKeptBody - r.body.Len(); room > 0 {
		r.body.Write(b[:min(room, len(b))])
	}
	return r.ResponseWriter.Write(b)
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w}
	h.srv.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	h.mu.Lock()
	h.log = append(h.log, exchange{
		method:  r.Method,
		query:   r.URL.Query(),
		status:  rec.status,
		wwwAuth: w.Header().Get("WWW-Authenticate"),
		body:    rec.body.String(),
	})
	h.mu.Unlock()
}

// exchanges returns a copy of what the server answered so far.
func (h *harness) exchanges() []exchange {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// challenges counts the 401 replies, and those of them marked stale.
func (h *harness) challenges() (n, stale int) {
	for _, x := range h.exchanges() {
		if x.status == http.StatusUnauthorized {
			n++
			if strings.Contains(x.wwwAuth, "stale=true") {
				stale++
			}
		}
	}
	return n, stale
}

// last returns the last answered (status 200) exchange for action.
func (h *harness) last(t *testing.T, action string) exchange {
	t.Helper()
	log := h.exchanges()
	for i := len(log) - 1; i >= 0; i-- {
		if log[i].query.Get("action") == action && log[i].status == http.StatusOK {
			return log[i]
		}
	}
	t.Fatalf("the server answered no %s request", action)
	return exchange{}
}

// client returns a client for address on the harness.
func (h *harness) client(t *testing.T, address, password string, mod ...func(*account.Config)) *account.Client {
	t.Helper()
	cfg := account.Config{
		Address:     address,
		SettingsURL: h.url,
		Password:    password,
		Timeout:     20 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := account.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func (h *harness) alice(t *testing.T) *account.Client {
	return h.client(t, "alice@example.com", "secret")
}

func (h *harness) bob(t *testing.T) *account.Client {
	return h.client(t, "bob@example.com", "bobpw")
}

// wantKind fails unless err is an *account.Error of kind k, and returns it.
func wantKind(t *testing.T, err error, k account.Kind) *account.Error {
	t.Helper()
	var e *account.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want an *account.Error of kind %v", err, err, k)
	}
	if e.Kind != k {
		t.Fatalf("err kind = %v (%v), want %v", e.Kind, e, k)
	}
	return e
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

// --- non-journal actions ----------------------------------------------------

func TestServerIdentityReturnsSeedAndDefaults(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	id, err := h.alice(t).Identity(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "alice", *id, account.Identity{
		SIPAddress:      "alice@example.com",
		Email:           "alice@mail.example.com",
		FirstName:       "Alice",
		LastName:        "Liddell",
		PSTNCallerID:    "+31201234567",
		MobileNumber:    "+31612345678",
		Timezone:        "Europe/Amsterdam",
		NoAnswerTimeout: 20,
		QuickDial:       "31",
	})

	// The minimal account gets the server's defaults; nulls become "".
	id, err = h.bob(t).Identity(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "bob", *id, account.Identity{
		SIPAddress:      "bob@example.com",
		Email:           "bob@example.com",
		FirstName:       "Bob",
		Timezone:        "Europe/Amsterdam",
		NoAnswerTimeout: 35,
	})
}

func TestServerAddAliasShowsInAliasesAndMissingNameIsRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	al, err := c.Aliases(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by user part; a bare seed name got the account's domain.
	wantEqual(t, "seeded aliases", al, []string{"alice.l@example.com", "wonder@example.com"})

	msg, err := c.AddAlias(ctx(t), " Zed ")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "add_alias message", msg, "Added alias zed")
	al, err = c.Aliases(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "aliases after add", al, []string{"alice.l@example.com", "wonder@example.com", "zed@example.com"})

	// Adding it again: the server says no, and the client says why.
	_, err = c.AddAlias(ctx(t), "zed")
	e := wantKind(t, err, account.KindRejected)
	if !strings.Contains(e.Message, "Alias zed@example.com already exists") || e.Retryable() {
		t.Errorf("duplicate alias: %v, retryable %v", e, e.Retryable())
	}

	// An empty name never leaves the client...
	before := len(h.exchanges())
	for _, name := range []string{"", "   ", "x@example.org"} {
		if _, err := c.AddAlias(ctx(t), name); !errors.Is(err, account.ErrInvalidArgument) {
			t.Errorf("AddAlias(%q) = %v, want ErrInvalidArgument", name, err)
		}
	}
	if n := len(h.exchanges()); n != before {
		t.Errorf("refused names sent %d requests", n-before)
	}
	// ...and a raw call without one gets the server's answer.
	for _, params := range []url.Values{nil, {"username": {""}}} {
		js, err := c.Do(ctx(t), "add_alias", params)
		e := wantKind(t, err, account.KindRejected)
		if !strings.Contains(e.Message, "Error: missing username") {
			t.Errorf("Do(add_alias, %v): message %q", params, e.Message)
		}
		wantEqual(t, "raw reply", string(js), `{"success":false,"error_message":"Error: missing username"}`)
	}
	al, err = c.Aliases(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(al) != 3 {
		t.Errorf("refused adds changed the aliases: %v", al)
	}
}

func TestServerEnumReturnsSeededNumbers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	n, err := h.alice(t).Enum(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "alice", n, []string{"+31201234567", "+31207654321"})
	n, err = h.bob(t).Enum(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(n) != 0 {
		t.Errorf("bob: %v, want none", n)
	}
}

func TestServerHistoryReturnsPlacedAndReceivedWithSeededFields(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	hist, err := h.alice(t).History(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "placed (status 435 skipped)", hist.Placed, []account.Call{{
		RemoteParty: "bob@example.com",
		StartTime:   "2026-11-20 10:00:00",
		StopTime:    "2026-11-20 10:01:00", // start + duration
		Timezone:    "Europe/Amsterdam",
		Duration:    60,
		Status:      200,
		Price:       "0.25",
		SessionID:   "s1",
		FromTag:     "f1",
		ToTag:       "t1",
		ProxyIP:     "192.0.2.1",
		Media:       []string{"audio", "video"},
	}})
	wantEqual(t, "received", hist.Received, []account.Call{{
		RemoteParty: "carol@example.com",
		DisplayName: "Carol",
		StartTime:   "2026-10-01 08:00:00",
		StopTime:    "2026-10-01 08:00:10",
		Timezone:    "Europe/Amsterdam",
		Duration:    10,
		Status:      200,
		SessionID:   "s2",
		FromTag:     "f2",
		ToTag:       "t2",
		ProxyIP:     "192.0.2.2",
		Media:       []string{"audio"},
	}})

	// No calls: both directions are null on the wire, nil here.
	hist, err = h.bob(t).History(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if hist.Placed != nil || hist.Received != nil {
		t.Errorf("bob: %+v, want no calls", hist)
	}
	wantEqual(t, "bob wire", h.last(t, "get_history").body, `{"placed":null,"received":null}`)
}

func TestServerDevicesReturnsSeededAndNilWhenNone(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	d, err := h.alice(t).Devices(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "alice", d, []account.Device{{
		Contact:       "192.0.2.7:5061",
		PublicContact: "198.51.100.7:40000",
		Expires:       "600",
		UserAgent:     "Blink 5.0",
		Transport:     "tls",
	}})
	d, err = h.bob(t).Devices(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d != nil {
		t.Errorf("bob: %#v, want nil", d)
	}
	wantEqual(t, "bob wire", h.last(t, "get_devices").body, "null")
}

func TestServerPrepaidAndBalanceHistoryReturnSeed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	p, err := c.Prepaid(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "balance", p.Balance, "12.5")
	wantEqual(t, "raw", string(p.Raw), `{"balance":12.5}`)

	bh, err := c.BalanceHistory(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(bh) != 2 {
		t.Fatalf("balance history: %d entries, want 2: %+v", len(bh), bh)
	}
	for i, want := range [][5]string{
		{"2026-11-01 00:00:00", "Add balance", "Card 1234", "20", "20"},
		{"2026-11-20 10:01:00", "Session", "Call to bob", "-0.25", "19.75"},
	} {
		e := bh[i]
		wantEqual(t, fmt.Sprintf("entry %d", i), [5]string{e.Date, e.Action, e.Description, e.Value, e.Balance}, want)
		var raw map[string]any
		if err := json.Unmarshal(e.Raw, &raw); err != nil || raw["description"] != want[2] {
			t.Errorf("entry %d raw %s (%v)", i, e.Raw, err)
		}
	}

	// Bob has no prepaid history: an empty list, not an error.
	bh, err = h.bob(t).BalanceHistory(ctx(t))
	if err != nil || len(bh) != 0 {
		t.Errorf("bob: %v, %v; want no entries", bh, err)
	}
}

func TestServerMonthlyUsageCountsThisMonthAndStrictIsServerError(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	u, err := h.alice(t).MonthlyUsage(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// The clock says November 2026: both placed calls of the seed count
	// (usage is per CDR; only get_history leaves out status 435).
	wantEqual(t, "November usage", *u, account.MonthlyUsage{Calls: 2, Price: "0.25"})
	h.clock.Advance(40 * 24 * time.Hour) // January 2027: nothing this month
	u, err = h.alice(t).MonthlyUsage(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "January usage", *u, account.MonthlyUsage{Calls: 0, Price: "0"})

	s := newHarness(t, harnessOpts{strict: true})
	_, err = s.alice(t).MonthlyUsage(ctx(t))
	e := wantKind(t, err, account.KindServer)
	if e.StatusCode != http.StatusInternalServerError {
		t.Errorf("strict: status %d, want 500", e.StatusCode)
	}
}

func TestServerCallForwardingRoundTripsEveryTargetForm(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	alice, bob := h.alice(t), h.bob(t)

	fw, err := alice.CallForwarding(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "seeded", fw, map[string]string{"FBUS": "bob@example.com", "FNOA": "<voice-mailbox>"})

	set := func(c *account.Client, targets map[string]string) string {
		t.Helper()
		msg, err := c.SetCallForwarding(ctx(t), targets)
		if err != nil {
			t.Fatalf("SetCallForwarding(%v): %v", targets, err)
		}
		return msg
	}
	get := func(c *account.Client) map[string]string {
		t.Helper()
		fw, err := c.CallForwarding(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return fw
	}

	// The server prints "Key FUNC changed <voice-mailbox>" before its
	// JSON; the client reads past it.
	msg := set(alice, map[string]string{"FUNC": account.TargetVoicemail})
	wantEqual(t, "message", msg, "Changed diversions FUNC=<voice-mailbox>")
	if body := h.last(t, "set_call_forwarding").body; !strings.HasPrefix(body, "Key FUNC changed <voice-mailbox>{") {
		t.Errorf("wire body %q: want the stray text before the JSON", body)
	}
	wantEqual(t, "after FUNC", get(alice), map[string]string{
		"FUNC": "<voice-mailbox>", "FBUS": "bob@example.com", "FNOA": "<voice-mailbox>",
	})

	// <mobile-number> becomes the mobile number, with the account domain.
	set(alice, map[string]string{"FNOL": account.TargetMobile})
	if got := get(alice)["FNOL"]; got != "+31612345678@example.com" {
		t.Errorf("FNOL with a mobile number = %q, want +31612345678@example.com", got)
	}
	// Without a mobile number the real server mangles the literal
	// (PROTOCOL §5.8 step 1): ours does the same, and the client shows it.
	set(bob, map[string]string{"FNOL": account.TargetMobile})
	wantEqual(t, "bob FNOL", get(bob), map[string]string{"FNOL": "<mobile-number>@example.com"})

	// No "@": the account domain is added; +/0 numbers get it forced.
	set(alice, map[string]string{
		"FUNV": "carol",
		"FBUS": "0201234567",
		"FNOA": "+31201111111@elsewhere.net",
	})
	wantEqual(t, "normalised", get(alice), map[string]string{
		"FUNC": "<voice-mailbox>",
		"FNOL": "+31612345678@example.com",
		"FBUS": "0201234567@example.com",
		"FNOA": "+31201111111@example.com",
		"FUNV": "carol@example.com",
	})
	// A full address is kept as given.
	set(alice, map[string]string{"FUNV": "dave@example.net"})
	if got := get(alice)["FUNV"]; got != "dave@example.net" {
		t.Errorf("FUNV = %q, want dave@example.net", got)
	}

	// Empty removes, the others stay.
	set(alice, map[string]string{"FUNC": "", "FBUS": ""})
	wantEqual(t, "after removal", get(alice), map[string]string{
		"FNOL": "+31612345678@example.com",
		"FNOA": "+31201111111@example.com",
		"FUNV": "dave@example.net",
	})
	set(bob, map[string]string{"FNOL": ""})
	if fw := get(bob); len(fw) != 0 {
		t.Errorf("bob after removal: %v, want none", fw)
	}
	wantEqual(t, "bob wire", h.last(t, "get_call_forwarding").body,
		`{"FUNC":null,"FNOL":null,"FBUS":null,"FNOA":null,"FUNV":null}`)
}

func TestServerAcceptAndRejectRulesReturnSeed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r, err := h.alice(t).AcceptRules(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "alice", *r, account.AcceptRules{
		Persistent: map[int]account.AcceptRule{
			31: {Start: "09:00", Stop: "17:00", Groups: []string{"everybody"}},
			96: {Start: "10:00", Stop: "12:00", Groups: []string{"coworkers"}},
		},
		Temporary: &account.TemporaryRule{Groups: []string{"everybody"}, Duration: 0},
		Groups:    []string{"coworkers"}, // the empty group is dropped
	})
	r, err = h.bob(t).AcceptRules(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "bob", *r, account.AcceptRules{
		Temporary: &account.TemporaryRule{Groups: []string{"everybody"}},
		Groups:    []string{},
	})

	rr, err := h.alice(t).RejectRules(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "alice reject", rr, []string{"sip:spam@example.net", "sip:telemarketer@example.org"})
	rr, err = h.bob(t).RejectRules(ctx(t))
	if err != nil || len(rr) != 0 {
		t.Errorf("bob reject: %v, %v; want none", rr, err)
	}
}

func TestServerVoicemailReturnsSeedAndNilWhenNone(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	v, err := h.alice(t).Voicemail(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "alice", *v, account.Voicemail{
		Mailbox:  "1001",
		Password: "vm-secret",
		Name:     "Alice",
		Email:    "alice@mail.example.com",
		Info:     "office",
		Options:  json.RawMessage(`{"delete":true}`),
		Account:  "1001@vm.example.com",
	})
	v, err = h.bob(t).Voicemail(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		t.Errorf("bob: %+v, want nil", v)
	}
}

func TestServerDNDOnSendsMinutesAndShowsTemporaryNobody(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	temporary := func() account.TemporaryRule {
		t.Helper()
		r, err := c.AcceptRules(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if r.Temporary == nil {
			t.Fatal("no temporary rule")
		}
		return *r.Temporary
	}

	msg, err := c.SetDNDOn(ctx(t), 90*time.Minute+30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "on message", msg, "Do not disturb has been enabled for 91 minutes")
	wantEqual(t, "duration on the wire", h.last(t, "set_dnd_on").query.Get("duration"), "91")
	wantEqual(t, "temporary", temporary(), account.TemporaryRule{Groups: []string{"nobody"}, Duration: 91})

	msg, err = c.SetDNDOn(ctx(t), 0) // until switched off
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "open-ended message", msg, "Do not disturb has been enabled")
	wantEqual(t, "open-ended temporary", temporary(), account.TemporaryRule{Groups: []string{"nobody"}, Duration: 0})

	msg, err = c.SetDNDOff(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "off message", msg, "Do not disturb has been disabled")
	wantEqual(t, "off temporary", temporary(), account.TemporaryRule{Groups: []string{"everybody"}, Duration: 0})

	// The persistent rules are untouched by DND.
	r, err := c.AcceptRules(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Persistent) != 2 {
		t.Errorf("persistent rules after DND: %v", r.Persistent)
	}
}

func TestServerPrivacyOnOffReturnServerMessages(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	msg, err := c.SetPrivacyOn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "on", msg, "Caller-ID is now hidden for outgoing calls")
	msg, err = c.SetPrivacyOff(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "off", msg, "Caller-ID is now visible for outgoing calls")
	// Switching off twice is still a success (SOAP 1031 on the real server).
	msg, err = c.SetPrivacyOff(ctx(t))
	if err != nil || msg != "Caller-ID is now visible for outgoing calls" {
		t.Errorf("second off: %q, %v", msg, err)
	}
}

func TestServerDoPassesRawActionsThrough(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)

	js, err := c.Do(ctx(t), "get_identity", nil)
	if err != nil {
		t.Fatal(err)
	}
	var id map[string]any
	if err := json.Unmarshal(js, &id); err != nil {
		t.Fatal(err)
	}
	if id["sip_address"] != "alice@example.com" || id["first"] != "Alice" || id["no_answer_timeout"] != 20.0 {
		t.Errorf("get_identity via Do: %s", js)
	}

	// A put through Do is a form POST and gives the real reply shape.
	js, err = c.Do(ctx(t), "put_journal_entries", url.Values{
		"uuid": {"urn:uuid:raw"},
		"data": {`[{"id":"r1","data":"raw/1"},{"id":2,"data":"raw 2"}]`},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "put reply", string(js),
		`{"results":[{"id":"r1","journal_id":"1","source":"default"},{"id":2,"journal_id":"2","source":"default"}],"success":true}`)
	wantEqual(t, "put method", h.last(t, "put_journal_entries").method, http.MethodPost)

	js, err = c.Do(ctx(t), "get_journal_entries", url.Values{"after_id": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Results []map[string]string `json:"results"`
		Rows    int                 `json:"rows"`
	}
	if err := json.Unmarshal(js, &page); err != nil {
		t.Fatal(err)
	}
	if page.Rows != 1 || len(page.Results) != 1 || page.Results[0]["id"] != "2" || page.Results[0]["data"] != "raw 2" {
		t.Errorf("get via Do: %s", js)
	}

	// An action the server does not know: Rejected with its message.
	_, err = c.Do(ctx(t), "get_nothing", nil)
	e := wantKind(t, err, account.KindRejected)
	if !strings.Contains(e.Message, "Error: invalid action") {
		t.Errorf("unknown action: %v", e)
	}
}

// An action name without any of the API markers (get_, set_, ...) makes
// the real page print its HTML header before the "invalid action" JSON
// (PROTOCOL §1). That is still the server saying no, not a garbled reply
// worth retrying.
func TestServerDoUnknownActionAfterHTMLHeaderIsRejected(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	js, err := h.alice(t).Do(ctx(t), "frobnicate", nil)
	if body := h.last(t, "frobnicate").body; !strings.HasPrefix(body, "<!DOCTYPE html>") {
		t.Fatalf("wire body %q: want the HTML header first", body)
	}
	e := wantKind(t, err, account.KindRejected)
	if !strings.Contains(e.Message, "Error: invalid action") || e.Retryable() {
		t.Errorf("unknown action: %v, retryable %v", e, e.Retryable())
	}
	wantEqual(t, "raw reply", string(js), `{"success":false,"error_message":"Error: invalid action"}`)
}

// --- journal ----------------------------------------------------------------

func TestServerPutReturnsIDsInOrderAndIsNotIdempotent(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	const uuid = "urn:uuid:5f0c0000-0000-4000-8000-00000000000a"
	batch := []account.PutEntry{
		{ID: "m1", Data: "hello/world"},
		{ID: "m2", Data: `café "q" <b>`},
		{ID: "m/3", Data: `x\y`},
	}
	first, err := c.PutJournalEntries(ctx(t), uuid, batch)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "first put", first, []account.PutResult{
		{ID: "m1", JournalID: 1, Stored: true},
		{ID: "m2", JournalID: 2, Stored: true},
		{ID: "m/3", JournalID: 3, Stored: true},
	})

	// The same batch again is stored again, with new, higher ids.
	h.clock.Advance(time.Second)
	second, err := c.PutJournalEntries(ctx(t), uuid, batch)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "second put", second, []account.PutResult{
		{ID: "m1", JournalID: 4, Stored: true},
		{ID: "m2", JournalID: 5, Stored: true},
		{ID: "m/3", JournalID: 6, Stored: true},
	})

	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if page.Rows != 6 || len(page.Entries) != 6 || page.MaxID() != 6 {
		t.Fatalf("page: rows %d, %d entries, max id %d; want 6 of each", page.Rows, len(page.Entries), page.MaxID())
	}
	t0, t1 := start.Format(time.DateTime), start.Add(time.Second).Format(time.DateTime)
	for i, e := range page.Entries {
		ts := t0
		if i >= 3 {
			ts = t1
		}
		wantEqual(t, fmt.Sprintf("entry %d", i), e, account.JournalEntry{
			ID:        int64(i + 1),
			Source:    "default",
			Timestamp: ts,
			Account:   "alice@example.com",
			UUID:      uuid,
			IPAddress: "127.0.0.1",
			Data:      batch[i%3].Data,
		})
	}
	// The ids are one global sequence: another account's put continues it.
	other, err := h.bob(t).PutJournalEntries(ctx(t), "urn:uuid:bob", []account.PutEntry{{ID: "b", Data: "bob's"}})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "bob's put", other, []account.PutResult{{ID: "b", JournalID: 7, Stored: true}})
	// ...and stays out of alice's journal.
	page, err = c.GetJournalEntries(ctx(t), account.JournalQuery{AfterID: 6})
	if err != nil || len(page.Entries) != 0 {
		t.Errorf("alice after 6: %+v, %v; want nothing", page, err)
	}
}

func TestServerGetJournalFiltersByExceptUUIDAfterIDAndAfterTimestamp(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	const devA, devB = "urn:uuid:aaaa", "urn:uuid:bbbb"
	put := func(uuid string, ids ...string) {
		t.Helper()
		var es []account.PutEntry
		for _, id := range ids {
			es = append(es, account.PutEntry{ID: id, Data: "data of " + id})
		}
		if _, err := c.PutJournalEntries(ctx(t), uuid, es); err != nil {
			t.Fatal(err)
		}
	}
	get := func(q account.JournalQuery) []string {
		t.Helper()
		p, err := c.GetJournalEntries(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Rows != len(p.Entries) {
			t.Errorf("rows %d, %d entries", p.Rows, len(p.Entries))
		}
		var out []string
		for _, e := range p.Entries {
			out = append(out, fmt.Sprintf("%d:%s", e.ID, strings.TrimPrefix(e.Data, "data of ")))
		}
		return out
	}
	put(devA, "a1", "a2") // ids 1, 2 at start
	put(devB, "b1")       // id 3 at start
	h.clock.Advance(2 * time.Second)
	put(devA, "a3") // id 4 at start+2s
	put(devB, "b2") // id 5 at start+2s

	wantEqual(t, "all", get(account.JournalQuery{}), []string{"1:a1", "2:a2", "3:b1", "4:a3", "5:b2"})
	wantEqual(t, "except A", get(account.JournalQuery{ExceptUUID: devA}), []string{"3:b1", "5:b2"})
	wantEqual(t, "except A upper case", get(account.JournalQuery{ExceptUUID: strings.ToUpper(devA)}), []string{"3:b1", "5:b2"})
	wantEqual(t, "after id 2", get(account.JournalQuery{AfterID: 2}), []string{"3:b1", "4:a3", "5:b2"})
	wantEqual(t, "except B after 1", get(account.JournalQuery{ExceptUUID: devB, AfterID: 1}), []string{"2:a2", "4:a3"})
	ts := start.Format(time.DateTime)
	wantEqual(t, "after the first second", get(account.JournalQuery{AfterTimestamp: ts}), []string{"4:a3", "5:b2"})
	wantEqual(t, "after timestamp except B", get(account.JournalQuery{AfterTimestamp: ts, ExceptUUID: devB}), []string{"4:a3"})
	if got := get(account.JournalQuery{AfterID: 5}); got != nil {
		t.Errorf("after the last id: %v", got)
	}
	// Limit below 5000 is honoured by default.
	wantEqual(t, "limit 2", get(account.JournalQuery{Limit: 2}), []string{"1:a1", "2:a2"})
}

func TestServerJournalPagesAreCutAt5000RowsAndPagedByMaxID(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	const total = account.JournalPageMax + 3
	// Three large batches, all within one second of the server's clock.
	var ids []int64
	for b := 0; b < 3; b++ {
		n := total / 3
		if b == 2 {
			n = total - 2*(total/3)
		}
		es := make([]account.PutEntry, n)
		for i := range es {
			k := len(ids) + i
			es[i] = account.PutEntry{ID: fmt.Sprint(k), Data: fmt.Sprint("row ", k)}
		}
		res, err := c.PutJournalEntries(ctx(t), "urn:uuid:bulk", es)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if !r.Stored || r.ID != es[i].ID {
				t.Fatalf("batch %d result %d: %+v", b, i, r)
			}
			if len(ids) > 0 && r.JournalID <= ids[len(ids)-1] {
				t.Fatalf("journal id %d after %d: not increasing", r.JournalID, ids[len(ids)-1])
			}
			ids = append(ids, r.JournalID)
		}
	}

	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if page.Rows != account.JournalPageMax || len(page.Entries) != account.JournalPageMax {
		t.Fatalf("first page: rows %d, %d entries; want %d", page.Rows, len(page.Entries), account.JournalPageMax)
	}
	stamp := start.Format(time.DateTime)
	for i, e := range page.Entries {
		if e.ID != ids[i] || e.Data != fmt.Sprint("row ", i) || e.Timestamp != stamp {
			t.Fatalf("first page entry %d: %+v, want id %d, row %d at %s", i, e, ids[i], i, stamp)
		}
	}
	wantEqual(t, "first page max id", page.MaxID(), ids[account.JournalPageMax-1])

	page, err = c.GetJournalEntries(ctx(t), account.JournalQuery{AfterID: page.MaxID()})
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for _, e := range page.Entries {
		rest = append(rest, e.Data)
	}
	wantEqual(t, "second page", rest, []string{"row 5000", "row 5001", "row 5002"})
	wantEqual(t, "second page rows", page.Rows, 3)
	wantEqual(t, "second page max id", page.MaxID(), ids[len(ids)-1])
}

func TestServerDeleteJournalEntriesDeletesByDefault(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	res, err := c.PutJournalEntries(ctx(t), "urn:uuid:d", []account.PutEntry{
		{ID: "1", Data: "one"}, {ID: "2", Data: "two"}, {ID: "3", Data: "three"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteJournalEntries(ctx(t), []int64{res[0].JournalID, res[2].JournalID}); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "delete method", h.last(t, "delete_journal_entries").method, http.MethodPost)
	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].ID != res[1].JournalID || page.Entries[0].Data != "two" {
		t.Errorf("after delete: %+v, want only %q", page.Entries, "two")
	}
	// Another account's ids are not ours to delete.
	if err := h.bob(t).DeleteJournalEntries(ctx(t), []int64{res[1].JournalID}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.srv.Entries("alice@example.com"); err != nil || len(got) != 1 {
		t.Errorf("alice's rows after bob's delete: %+v, %v", got, err)
	}
}

func TestServerStrictCompatDeleteIsRejectedAndDeletesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{strict: true})
	c := h.alice(t)
	res, err := c.PutJournalEntries(ctx(t), "urn:uuid:d", []account.PutEntry{{ID: "1", Data: "one"}, {ID: "2", Data: "two"}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteJournalEntries(ctx(t), []int64{res[0].JournalID})
	e := wantKind(t, err, account.KindRejected)
	if !strings.Contains(e.Message, "database error") || e.Retryable() {
		t.Errorf("strict delete: %v, retryable %v", e, e.Retryable())
	}
	wantEqual(t, "wire", h.last(t, "delete_journal_entries").body, `{"error_message":"database error"}`)
	got, err := h.srv.Entries("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("strict delete removed rows: %d left, want 2", len(got))
	}
	// And the strict LIMIT 0 bug: a small limit gives no rows.
	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Rows != 0 || len(page.Entries) != 0 {
		t.Errorf("strict limit 10: %+v, want no rows", page)
	}
}

// --- authentication -----------------------------------------------------------

func TestServerWrongPasswordIsAuthErrorNotRetryable(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.client(t, "alice@example.com", "wrong")
	_, err := c.Identity(ctx(t))
	e := wantKind(t, err, account.KindAuth)
	if e.StatusCode != http.StatusUnauthorized || e.Retryable() || account.Retryable(err) {
		t.Errorf("wrong password: status %d, retryable %v", e.StatusCode, e.Retryable())
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error message contains the password: %v", err)
	}
	// One challenge, one refused answer: the client does not hammer.
	if n, _ := h.challenges(); n != 2 {
		t.Errorf("%d challenges, want 2 (first + refused answer)", n)
	}
	// A put with the wrong password stores nothing.
	_, err = c.PutJournalEntries(ctx(t), "urn:uuid:x", []account.PutEntry{{ID: "1", Data: "x"}})
	wantKind(t, err, account.KindAuth)
	if got, _ := h.srv.Entries("alice@example.com"); len(got) != 0 {
		t.Errorf("rejected put stored %d rows", len(got))
	}
}

func TestServerUnknownUserIsAuthError(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, err := h.client(t, "mallory@example.com", "secret").Identity(ctx(t))
	e := wantKind(t, err, account.KindAuth)
	if e.StatusCode != http.StatusUnauthorized || e.Retryable() {
		t.Errorf("unknown user: %v", e)
	}
}

func TestServerWebPasswordWorksAndSIPPasswordAloneFails(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	web := h.client(t, "carol@example.com", "carol-sip", func(c *account.Config) { c.WebPassword = "carol-web" })
	id, err := web.Identity(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "address", id.SIPAddress, "carol@example.com")
	res, err := web.PutJournalEntries(ctx(t), "urn:uuid:c", []account.PutEntry{{ID: "c1", Data: "carol"}})
	if err != nil || len(res) != 1 || !res[0].Stored {
		t.Fatalf("put with web password: %+v, %v", res, err)
	}

	// The server stores a web password, so it accepts nothing else.
	sip := h.client(t, "carol@example.com", "carol-sip")
	_, err = sip.Identity(ctx(t))
	e := wantKind(t, err, account.KindAuth)
	if e.Retryable() {
		t.Error("auth error is retryable")
	}
	// The advice points at the setting that is used.
	if !strings.Contains(e.Message, "password_file") {
		t.Errorf("message %q does not say what to check", e.Message)
	}
}

func TestServerUnservedDomainIsAuthErrorNamingTheDomain(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, err := h.client(t, "alice@example.org", "secret").Identity(ctx(t))
	e := wantKind(t, err, account.KindAuth)
	if !strings.Contains(e.Message, "does not serve domain example.org") {
		t.Errorf("message %q: want it to say the server does not serve example.org", e.Message)
	}
	if e.Retryable() {
		t.Error("unserved domain is retryable")
	}
	if e.StatusCode != http.StatusOK {
		t.Errorf("status %d, want the real server's 200", e.StatusCode)
	}
}

func TestServerNonceIsReusedAcrossCalls(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := 0; i < n; i++ {
		if _, err := c.Enum(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent calls share the cached nonce too.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			_, err := c.Aliases(ctx(t))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := h.challenges(); got != 1 {
		t.Errorf("%d challenges for %d calls, want 1", got, 2*n+1)
	}
	if got := len(h.exchanges()); got != 2*n+2 {
		t.Errorf("%d requests for %d calls, want %d (one probe)", got, 2*n+1, 2*n+2)
	}
}

func TestServerExpiredNonceIsRecoveredWithOneExtraChallenge(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c := h.alice(t)
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enum(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n, stale := h.challenges(); n != 1 || stale != 0 {
		t.Fatalf("before expiry: %d challenges (%d stale), want 1 (0)", n, stale)
	}

	h.clock.Advance(5*time.Minute + time.Second) // the nonce has expired
	id, err := c.Identity(ctx(t))
	if err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	wantEqual(t, "address", id.SIPAddress, "alice@example.com")
	if n, stale := h.challenges(); n != 2 || stale != 1 {
		t.Errorf("after expiry: %d challenges (%d stale), want 2 (1)", n, stale)
	}

	// A put whose nonce expired is retried with its body, stored once.
	h.clock.Advance(5*time.Minute + time.Second)
	res, err := c.PutJournalEntries(ctx(t), "urn:uuid:e", []account.PutEntry{{ID: "e1", Data: "after expiry"}})
	if err != nil {
		t.Fatalf("put after expiry: %v", err)
	}
	if !res[0].Stored {
		t.Errorf("put after expiry: %+v", res)
	}
	got, err := h.srv.Entries("alice@example.com")
	if err != nil || len(got) != 1 || got[0].Data != "after expiry" {
		t.Errorf("stored rows: %+v, %v; want one", got, err)
	}
	if n, stale := h.challenges(); n != 3 || stale != 2 {
		t.Errorf("after the put: %d challenges (%d stale), want 3 (2)", n, stale)
	}
}

// --- HTTPS --------------------------------------------------------------------

func TestServerOverHTTPSWithCAFile(t *testing.T) {
	h := newHarness(t, harnessOpts{tls: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.hs.Certificate().Raw})
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("url %s is not https", h.url)
	}

	// Without the CA file the server's certificate is not trusted.
	_, err := h.alice(t).Identity(ctx(t))
	e := wantKind(t, err, account.KindTransport)
	if len(h.exchanges()) != 0 {
		t.Errorf("an untrusted connection reached the handler: %v", e)
	}

	c := h.client(t, "alice@example.com", "secret", func(c *account.Config) { c.CAFile = caFile })
	id, err := c.Identity(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "address", id.SIPAddress, "alice@example.com")
	res, err := c.PutJournalEntries(ctx(t), "urn:uuid:tls", []account.PutEntry{{ID: "t1", Data: "over tls"}})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "put", res, []account.PutResult{{ID: "t1", JournalID: 1, Stored: true}})
	page, err := c.GetJournalEntries(ctx(t), account.JournalQuery{ExceptUUID: "urn:uuid:other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Data != "over tls" || page.Entries[0].UUID != "urn:uuid:tls" {
		t.Errorf("get over tls: %+v", page.Entries)
	}
	if _, err := c.SetCallForwarding(ctx(t), map[string]string{"FUNC": account.TargetVoicemail}); err != nil {
		t.Fatal(err)
	}
}
