// Package faultproxy is an HTTP proxy for tests that sits in front of a real
// chatsync-server (or any server of the SIP Account API) and breaks the
// journal the ways the real server and the network in between break it:
// replies lost after the server committed, 5xx, HTML error pages, truncated
// JSON, success:false, a missing success, 429 and 503 with Retry-After,
// latency, stalls, journal_id null, missing rows, equal timestamps across the
// 5000-row page edge, replayed rows, ids that are not numbers, garbage,
// bodies of a gigabyte, and a journal that goes backwards.
//
// Faults come from explicit rules (Add) first and otherwise, with
// probability Rate, from a seeded random schedule over Faults. The schedule
// is drawn in the order requests arrive, and every per-request choice (which
// rows to null, how long to wait) comes from a sub-seed drawn with it, so a
// run with one client is reproducible from its seed; with several clients
// the order of their requests decides which of them gets which fault.
//
// Only requests that carry an Authorization header are faulted: the digest
// challenge round trip always passes, so the client always gets as far as
// the action. The server must not check that the digest uri equals the
// request URI (chatsync-server does not, and neither does the real one):
// the proxy rewrites after_id when the journal is rewound.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is one way of breaking a request.
type Fault string

// Faults that answer without passing the request on: the server stores
// nothing.
const (
	None           Fault = ""
	ServerError    Fault = "server-error"     // 500 with a short text, request not forwarded
	HTMLError      Fault = "html-error"       // 200 text/html with a proxy's error page, not forwarded
	SuccessFalse   Fault = "success-false"    // {"success":false,...}, not forwarded
	TooManyRequest Fault = "too-many-request" // 429 with Retry-After
	Unavailable    Fault = "unavailable"      // 503 with Retry-After and an HTML page
	Stall          Fault = "stall"            // accepts the request and never answers (until the client gives up or the proxy closes)
	Latency        Fault = "latency"          // waits up to Options.MaxLatency, then forwards normally
	Garbage        Fault = "garbage"          // 200 with random bytes
	HugeBody       Fault = "huge-body"        // 200 streaming Options.HugeBytes bytes
)

// Faults that pass the request on and then break the reply: for a put, the
// server has stored the rows and the client does not learn it.
const (
	DropAfterCommit        Fault = "drop-after-commit"         // 502 Bad Gateway instead of the reply
	CloseAfterCommit       Fault = "close-after-commit"        // the connection is closed without a reply
	ServerErrorAfterCommit Fault = "server-error-after-commit" // 500 instead of the reply
	HTMLErrorAfterCommit   Fault = "html-error-after-commit"   // 200 HTML error page instead of the reply
	TruncatedJSON          Fault = "truncated-json"            // the reply cut in half
	MissingSuccess         Fault = "missing-success"           // the reply without its "success" member
)

// Faults of put_journal_entries that change which rows the server stores.
const (
	// NullJournalIDs forwards only some rows (about half; at least one
	// is held back) and answers journal_id null for the others, as the
	// real server does when an insert fails.
	NullJournalIDs Fault = "null-journal-ids"
	// MissingRows forwards only some rows and leaves the others out of
	// the reply altogether.
	MissingRows Fault = "missing-rows"
)

// Faults of get_journal_entries.
const (
	// ReorderTies orders the page by timestamp with the highest id first
	// within a second, and, when the page is full, cuts it there after
	// reading the next page too: the rows of the page's last second that
	// are left out may have lower ids than rows that are in (the real
	// server orders by a one-second timestamp and cuts at 5000 rows).
	ReorderTies Fault = "reorder-ties"
	// Replay appends up to 20 rows the proxy has served before.
	Replay Fault = "replay"
	// NonNumericIDs gives every row an id that is not a number.
	NonNumericIDs Fault = "non-numeric-ids"
)

// Safe is the default random menu: faults after which a correct client
// ends with every row stored exactly once (given time), with reply-lost
// faults that need reconciliation included. It leaves out Stall (costs a
// whole client timeout), HugeBody and Garbage (costly or trivial) and
// nothing here rewinds the journal.
var Safe = []Fault{
	ServerError, HTMLError, SuccessFalse, TooManyRequest, Unavailable, Latency,
	DropAfterCommit, CloseAfterCommit, ServerErrorAfterCommit, HTMLErrorAfterCommit,
	TruncatedJSON, MissingSuccess, NullJournalIDs, MissingRows, ReorderTies, Replay, NonNumericIDs,
}

// applies reports whether f makes sense for action.
func applies(f Fault, action string) bool {
	switch f {
	case NullJournalIDs, MissingRows:
		return action == "put_journal_entries"
	case ReorderTies, Replay, NonNumericIDs:
		return action == "get_journal_entries"
	}
	return true
}

// Rule injects Fault into the next Times requests (0: every request) of
// Action ("" any action).
type Rule struct {
	Action string
	Fault  Fault
	Times  int
}

// Options configure a Proxy.
type Options struct {
	// Target is the server's base URL, e.g. http://127.0.0.1:8080 (a path
	// is ignored: the request's path is kept).
	Target string
	// Seed seeds the random schedule; 0 picks one from the clock (see
	// SeedFromEnv). The proxy logs it.
	Seed uint64
	// Rate is the probability that a request gets a random fault from
	// Faults (default none: only rules apply).
	Rate float64
	// Faults is the random menu (default Safe).
	Faults []Fault
	// ActionFaults, if it has an entry for an action, is the random menu
	// for that action instead of Faults.
	ActionFaults map[string][]Fault
	// Actions limits random faults to these actions (default the journal
	// actions get_journal_entries and put_journal_entries).
	Actions []string
	// MaxLatency bounds the Latency fault (default 500 ms).
	MaxLatency time.Duration
	// RetryAfter is the Retry-After of 429 and 503 (default 1 s).
	RetryAfter time.Duration
	// HugeBytes is the size of a HugeBody reply (default 1 GiB).
	HugeBytes int64
	// PageMax is the server's page size (default 5000).
	PageMax int
	// Logf, if set, receives the seed and a line for every fault.
	Logf func(format string, args ...any)
}

// Proxy is a running fault-injecting proxy. Make it with New; Close it.
type Proxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:PORT); append the
	// server's path, e.g. URL + "/settings.phtml".
	URL string

	opts    Options
	target  *url.URL
	srv     *http.Server
	ln      net.Listener
	hc      *http.Client
	closing chan struct{}
	once    sync.Once

	mu      sync.Mutex
	rng     *rand.Rand
	rate    float64
	rules   []Rule
	counts  map[Fault]int
	served  []json.RawMessage // rows served before, for Replay
	seq     int
	base    int64 // rewind offset: ids at or below are hidden, the rest shifted down
	maxSeen int64 // the highest real journal id seen in a reply

	requests  atomic.Int64
	hugeBytes atomic.Int64
}

// SeedFromEnv returns CHATSYNC_SEED if it is set, else a seed from the clock.
func SeedFromEnv() uint64 {
	if s := os.Getenv("CHATSYNC_SEED"); s != "" {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n
		}
	}
	return uint64(time.Now().UnixNano())
}

// New starts a proxy on a free loopback port.
func New(opts Options) (*Proxy, error) {
	target, err := url.Parse(opts.Target)
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: bad target %q", opts.Target)
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	if opts.Faults == nil {
		opts.Faults = Safe
	}
	if opts.Actions == nil {
		opts.Actions = []string{"get_journal_entries", "put_journal_entries"}
	}
	if opts.MaxLatency <= 0 {
		opts.MaxLatency = 500 * time.Millisecond
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.HugeBytes <= 0 {
		opts.HugeBytes = 1 << 30
	}
	if opts.PageMax <= 0 {
		opts.PageMax = 5000
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		URL:     "http://" + ln.Addr().String(),
		opts:    opts,
		target:  target,
		ln:      ln,
		closing: make(chan struct{}),
		rng:     rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		rate:    opts.Rate,
		counts:  map[Fault]int{},
		hc: &http.Client{
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	p.srv = &http.Server{Handler: p}
	opts.Logf("faultproxy: seed %d (CHATSYNC_SEED=%d reproduces the schedule), rate %.2f, in front of %s", opts.Seed, opts.Seed, opts.Rate, opts.Target)
	go p.srv.Serve(ln)
	return p, nil
}

// Close stops the proxy; stalled requests are released.
func (p *Proxy) Close() error {
	p.once.Do(func() { close(p.closing) })
	err := p.srv.Close()
	p.hc.CloseIdleConnections()
	return err
}

// Seed is the seed of the random schedule.
func (p *Proxy) Seed() uint64 { return p.opts.Seed }

// SetRate changes the probability of a random fault (0 turns them off).
func (p *Proxy) SetRate(r float64) {
	p.mu.Lock()
	p.rate = r
	p.mu.Unlock()
}

// Add queues explicit rules; they are tried in order before the random
// schedule.
func (p *Proxy) Add(rules ...Rule) {
	p.mu.Lock()
	p.rules = append(p.rules, rules...)
	p.mu.Unlock()
}

// ClearRules drops every rule.
func (p *Proxy) ClearRules() {
	p.mu.Lock()
	p.rules = nil
	p.mu.Unlock()
}

// Counts returns how often each fault was injected.
func (p *Proxy) Counts() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Fault]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Requests is the number of requests the proxy has received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// HugeBytesWritten is how many bytes HugeBody replies got out before the
// client hung up.
func (p *Proxy) HugeBytesWritten() int64 { return p.hugeBytes.Load() }

// Rewind makes the journal go backwards, as a server restored from an empty
// backup: from now on the rows that exist are hidden and new rows get ids
// counted again from 1 (the server's ids minus the highest id the proxy
// has seen so far). It returns that offset.
func (p *Proxy) Rewind() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base = max(p.base, p.maxSeen)
	p.served = nil
	return p.base
}

// RewindTo is Rewind with an explicit offset: rows with a server id at or
// below base are hidden from now on.
func (p *Proxy) RewindTo(base int64) {
	p.mu.Lock()
	p.base = base
	p.served = nil
	p.mu.Unlock()
}

type decision struct {
	fault Fault
	seq   int
	sub   uint64 // seeds the request's own choices
	delay time.Duration
}

func (p *Proxy) decide(action string, authed bool) decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	d := decision{seq: p.seq}
	if !authed {
		return d
	}
	d.sub = p.rng.Uint64()
	for i := range p.rules {
		r := &p.rules[i]
		if r.Action != "" && r.Action != action {
			continue
		}
		d.fault = r.Fault
		if r.Times > 0 {
			r.Times--
			if r.Times == 0 {
				p.rules = append(p.rules[:i], p.rules[i+1:]...)
			}
		}
		break
	}
	if d.fault == None && p.rate > 0 && contains(p.opts.Actions, action) && p.rng.Float64() < p.rate {
		all := p.opts.Faults
		if m, ok := p.opts.ActionFaults[action]; ok {
			all = m
		}
		var menu []Fault
		for _, f := range all {
			if applies(f, action) {
				menu = append(menu, f)
			}
		}
		if len(menu) > 0 {
			d.fault = menu[p.rng.IntN(len(menu))]
		}
	}
	if d.fault == Latency {
		d.delay = time.Duration(p.rng.Int64N(int64(p.opts.MaxLatency)) + 1)
	}
	if d.fault != None {
		p.counts[d.fault]++
	}
	return d
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ServeHTTP proxies one request, breaking it as the schedule says.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "faultproxy: reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	action := r.URL.Query().Get("action")
	d := p.decide(action, r.Header.Get("Authorization") != "")
	if d.fault != None {
		p.opts.Logf("faultproxy: #%d %s: %s", d.seq, action, d.fault)
	}
	rng := rand.New(rand.NewPCG(d.sub, d.sub^0xda942042e4dd58b5))

	switch d.fault {
	case ServerError:
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	case HTMLError, HTMLErrorAfterCommit:
		if d.fault == HTMLError {
			writeHTMLError(w, http.StatusOK)
			return
		}
	case SuccessFalse:
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		fmt.Fprint(w, `{"results":[],"success":false,"error_message":"Database error (injected by faultproxy)"}`)
		return
	case TooManyRequest, Unavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int((p.opts.RetryAfter+time.Second-1)/time.Second)))
		if d.fault == TooManyRequest {
			http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
		} else {
			writeHTMLError(w, http.StatusServiceUnavailable)
		}
		return
	case Stall:
		select {
		case <-r.Context().Done():
		case <-p.closing:
		}
		return
	case Latency:
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-p.closing:
			t.Stop()
			return
		}
	case Garbage:
		junk := make([]byte, 64+rng.IntN(4096))
		for i := range junk {
			junk[i] = byte(rng.UintN(256))
		}
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.Write(junk)
		return
	case HugeBody:
		p.writeHuge(w, r)
		return
	}

	query := r.URL.Query()
	p.mu.Lock()
	base := p.base
	p.mu.Unlock()
	if action == "get_journal_entries" && base > 0 {
		after, _ := strconv.ParseInt(query.Get("after_id"), 10, 64)
		query.Set("after_id", strconv.FormatInt(max(after, 0)+base, 10))
	}

	var held []string // tokens of put rows not forwarded
	if (d.fault == NullJournalIDs || d.fault == MissingRows) && action == "put_journal_entries" {
		body, held = holdBack(body, rng)
	}

	up, err := p.forward(r, query.Encode(), body)
	if err != nil {
		http.Error(w, "faultproxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}

	switch d.fault {
	case DropAfterCommit:
		writeHTMLError(w, http.StatusBadGateway)
		return
	case CloseAfterCommit:
		closeConn(w)
		return
	case ServerErrorAfterCommit:
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	case HTMLErrorAfterCommit:
		writeHTMLError(w, http.StatusOK)
		return
	}

	reply := up.body
	if up.status == http.StatusOK && (action == "get_journal_entries" || action == "put_journal_entries") {
		reply = p.rewrite(r, query, action, d.fault, reply, held, base, rng)
	}
	switch d.fault {
	case TruncatedJSON:
		reply = reply[:len(reply)/2]
	case MissingSuccess:
		reply = editObject(reply, func(m map[string]json.RawMessage) { delete(m, "success") })
	}
	for k, v := range up.header {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = v
	}
	w.WriteHeader(up.status)
	w.Write(reply)
}

type upstream struct {
	status int
	header http.Header
	body   []byte
}

func (p *Proxy) forward(r *http.Request, rawQuery string, body []byte) (*upstream, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawQuery = rawQuery
	ctx := context.WithoutCancel(r.Context()) // a request that reached the server finishes there, as it would
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Del("Content-Length")
	req.ContentLength = int64(len(body))
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &upstream{status: resp.StatusCode, header: resp.Header.Clone(), body: data}, nil
}

// rewrite applies the reply faults that need the JSON, and the rewind.
func (p *Proxy) rewrite(r *http.Request, query url.Values, action string, f Fault, reply []byte, held []string, base int64, rng *rand.Rand) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(reply, &m) != nil {
		return reply
	}
	var rows []map[string]json.RawMessage
	if json.Unmarshal(m["results"], &rows) != nil {
		return reply
	}
	switch action {
	case "put_journal_entries":
		for _, row := range rows {
			if id, ok := rawID(row["journal_id"]); ok {
				p.sawID(id)
				if base > 0 {
					row["journal_id"] = shiftID(row["journal_id"], id-base)
				}
			}
		}
		if f == NullJournalIDs {
			for _, tok := range held {
				tokJS, _ := json.Marshal(tok)
				rows = append(rows, map[string]json.RawMessage{"id": tokJS, "journal_id": json.RawMessage("null"), "source": json.RawMessage(`"default"`)})
			}
		}
	case "get_journal_entries":
		for _, row := range rows {
			if id, ok := rawID(row["id"]); ok {
				p.sawID(id)
			}
		}
		if f == ReorderTies {
			rows = p.reorderTies(r, query, rows)
		}
		if base > 0 {
			kept := rows[:0]
			for _, row := range rows {
				if id, ok := rawID(row["id"]); ok && id > base {
					row["id"] = shiftID(row["id"], id-base)
					kept = append(kept, row)
				}
			}
			rows = kept
		}
		p.mu.Lock()
		var replay []json.RawMessage
		if f == Replay && len(p.served) > 0 {
			for range min(20, len(p.served)) {
				replay = append(replay, p.served[rng.IntN(len(p.served))])
			}
		}
		for _, row := range rows {
			if len(p.served) < 1000 {
				js, _ := json.Marshal(row)
				p.served = append(p.served, js)
			}
		}
		p.mu.Unlock()
		for _, js := range replay {
			var row map[string]json.RawMessage
			json.Unmarshal(js, &row)
			rows = append(rows, row)
		}
		if f == NonNumericIDs {
			for i, row := range rows {
				row["id"] = json.RawMessage(fmt.Sprintf(`"row-%d"`, i))
			}
		}
		m["rows"] = json.RawMessage(strconv.Itoa(len(rows)))
	}
	js, err := json.Marshal(rows)
	if err != nil {
		return reply
	}
	if rows == nil {
		js = []byte("[]")
	}
	m["results"] = js
	out, err := json.Marshal(m)
	if err != nil {
		return reply
	}
	return out
}

func (p *Proxy) sawID(id int64) {
	p.mu.Lock()
	p.maxSeen = max(p.maxSeen, id)
	p.mu.Unlock()
}

// reorderTies puts the page in the worst order the real server may use
// (timestamp ascending, id descending within a second) and, for a full
// page, reads the next page as well and cuts the merged rows at the page
// size, so that rows of the last second with low ids fall off the page.
func (p *Proxy) reorderTies(r *http.Request, query url.Values, rows []map[string]json.RawMessage) []map[string]json.RawMessage {
	n := len(rows)
	if n >= p.opts.PageMax {
		var maxID int64
		for _, row := range rows {
			if id, ok := rawID(row["id"]); ok {
				maxID = max(maxID, id)
			}
		}
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("after_id", strconv.FormatInt(maxID, 10))
		if up, err := p.forward(r, q.Encode(), nil); err == nil && up.status == http.StatusOK {
			var m map[string]json.RawMessage
			var more []map[string]json.RawMessage
			if json.Unmarshal(up.body, &m) == nil && json.Unmarshal(m["results"], &more) == nil {
				rows = append(rows, more...)
			}
		}
	}
	ts := func(row map[string]json.RawMessage) string {
		var s string
		json.Unmarshal(row["timestamp"], &s)
		return s
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := ts(rows[i]), ts(rows[j])
		if a != b {
			return a < b
		}
		x, _ := rawID(rows[i]["id"])
		y, _ := rawID(rows[j]["id"])
		return x > y
	})
	return rows[:min(len(rows), max(n, 0))]
}

// holdBack removes some rows from a put's data field: about half, at
// least one when there are any. It returns the new body and the tokens of
// the rows held back.
func holdBack(body []byte, rng *rand.Rand) ([]byte, []string) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return body, nil
	}
	var entries []map[string]json.RawMessage
	if json.Unmarshal([]byte(form.Get("data")), &entries) != nil || len(entries) == 0 {
		return body, nil
	}
	must := rng.IntN(len(entries))
	var keep []map[string]json.RawMessage
	var held []string
	for i, e := range entries {
		if i == must || rng.IntN(2) == 0 {
			var tok string
			if json.Unmarshal(e["id"], &tok) != nil {
				tok = strings.Trim(string(e["id"]), `"`)
			}
			held = append(held, tok)
			continue
		}
		keep = append(keep, e)
	}
	if keep == nil {
		keep = []map[string]json.RawMessage{}
	}
	js, _ := json.Marshal(keep)
	form.Set("data", string(js))
	return []byte(form.Encode()), held
}

// rawID reads a journal id sent as a JSON number or string.
func rawID(raw json.RawMessage) (int64, bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, false
	}
	if s[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// shiftID writes id in the form (string or number) raw had.
func shiftID(raw json.RawMessage, id int64) json.RawMessage {
	if strings.HasPrefix(strings.TrimSpace(string(raw)), `"`) {
		return json.RawMessage(strconv.Quote(strconv.FormatInt(id, 10)))
	}
	return json.RawMessage(strconv.FormatInt(id, 10))
}

func editObject(reply []byte, f func(map[string]json.RawMessage)) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(reply, &m) != nil {
		return reply
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		return reply
	}
	return out
}

func writeHTMLError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<html>\n<head><title>%d %s</title></head>\n<body>\n<center><h1>%d %s</h1></center>\n<hr><center>nginx (injected by faultproxy)</center>\n</body>\n</html>\n",
		status, http.StatusText(status), status, http.StatusText(status))
}

func closeConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func (p *Proxy) writeHuge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.FormatInt(p.opts.HugeBytes, 10))
	w.WriteHeader(http.StatusOK)
	chunk := bytes.Repeat([]byte("{\"results\":[ "), 64<<10/13)
	var written int64
	for written < p.opts.HugeBytes {
		select {
		case <-p.closing:
			return
		case <-r.Context().Done():
			return
		default:
		}
		n := int64(len(chunk))
		if rest := p.opts.HugeBytes - written; rest < n {
			n = rest
		}
		k, err := w.Write(chunk[:n])
		written += int64(k)
		p.hugeBytes.Add(int64(k))
		if err != nil {
			return
		}
	}
}
