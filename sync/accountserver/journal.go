package accountserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxJournalRows is the real server's cap on one get_journal_entries page,
// and the threshold of its limit bug (0 < limit < 5000 gives LIMIT 0).
const maxJournalRows = 5000

type journalRow struct {
	ID        string `json:"id"`
	Source    string `json:"source"`
	Timestamp string `json:"timestamp"`
	Account   string `json:"account"`
	UUID      string `json:"uuid"`
	IPAddress string `json:"ip_address"`
	Data      string `json:"data"`
}

type getReply struct {
	Success      bool         `json:"success"`
	ErrorMessage *string      `json:"error_message"`
	Results      []journalRow `json:"results"`
	Rows         int          `json:"rows"`
}

// afterTimestamp turns the after_timestamp parameter into the form stored
// rows are compared with. MySQL compares a DATETIME with a string by
// converting the string; "0" and "" mean the zero date (no filter). A
// value that is not a date is compared as a string.
func afterTimestamp(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" {
		return ""
	}
	for _, layout := range []string{timeLayout, "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.Format(timeLayout)
		}
	}
	return v
}

func (q *request) getJournalEntries() {
	o := &q.s.opts
	limit := o.PageRows
	if l := phpIntval(q.p.get("limit")); l > 0 {
		switch {
		case o.StrictCompat && l < maxJournalRows:
			limit = 0 // the real LIMIT 0 bug
		case !o.StrictCompat:
			limit = int(min(l, int64(o.PageRows)))
		}
	}
	afterID := phpIntval(q.p.get("after_id"))
	if o.IgnoreAfterID {
		afterID = 0
	}
	var wait time.Duration
	if !o.StrictCompat { // the real server ignores the parameter
		wait = parseWait(q.p.get("wait"))
	}
	var hold func()
	if wait > 0 {
		// Set on every reply of a honoured wait, also when rows come at
		// once, so a client can tell this server from one that ignores
		// the parameter.
		q.w.Header().Set(WaitHeader, strconv.Itoa(int(wait/time.Second)))
		hw := &heldWriter{ResponseWriter: q.w}
		q.w = hw
		hold = hw.hold
	}
	rows, err := q.s.waitJournal(q.r.Context(), hold, journalQuery{
		account:        q.acct.Address,
		exceptUUID:     q.p.get("except_uuid"),
		afterID:        afterID,
		afterTimestamp: afterTimestamp(q.p.get("after_timestamp")),
		limit:          limit,
		shuffle:        o.ShuffleSameSecond,
	}, wait)
	if err != nil {
		q.s.log.Error("journal query failed", "account", q.acct.Address, "err", err)
		msg := "Database Failure"
		q.ok(getReply{false, &msg, []journalRow{}, 0})
		return
	}
	out := make([]journalRow, len(rows))
	for i, e := range rows {
		out[i] = journalRow{strconv.FormatUint(e.ID, 10), "default", e.Timestamp, e.Account, e.UUID, e.IPAddress, e.Data}
	}
	body, err := phpJSON(getReply{true, nil, out, len(out)})
	if err != nil {
		fatal(q.w)
		return
	}
	if o.PageBytesLimit > 0 && int64(len(body)) > o.PageBytesLimit {
		// The real server builds the page in PHP memory and dies at
		// memory_limit: HTTP 500, empty body (PROTOCOL §12).
		q.s.log.Warn("journal page over the page byte limit: HTTP 500", "account", q.acct.Address,
			"rows", len(out), "bytes", len(body), "limit", o.PageBytesLimit)
		fatal(q.w)
		return
	}
	writeText(q.w, http.StatusOK, string(body))
}

// MaxWait is the longest get_journal_entries holds a request for its wait
// parameter; larger values are cut to it.
const MaxWait = 60 * time.Second

// WaitHeader is the reply header of a get_journal_entries whose wait
// parameter was honoured: the whole seconds the server allowed. Servers
// that do not long-poll (the real one, --strict-compat) do not send it.
const WaitHeader = "X-Chatsync-Wait"

// parseWait reads the wait parameter, an extension of ours: whole seconds,
// cut to MaxWait. Anything else (absent, 0, negative, not an integer)
// means no wait and is no error, as the real server ignores parameters it
// does not know.
func parseWait(v string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: n is ±MaxInt64
		return 0
	}
	if n <= 0 {
		return 0
	}
	return time.Duration(min(n, int64(MaxWait/time.Second))) * time.Second // cut before multiplying: no overflow
}

// waitJournal runs q and, while its page is empty, holds on up to wait for
// a put to q's account, then runs q again and returns what it returns: the
// rows another device put, or an empty page after a put of rows q does not
// return (the polling device's own, filtered by except_uuid), so that a
// device that has just pushed learns at once that nothing else came. It
// also returns when wait has passed, at EndWaits, or (to a client that is
// gone) when ctx ends. hold is called once the server holds the request.
// With wait 0 it is journal.query.
func (s *Server) waitJournal(ctx context.Context, hold func(), q journalQuery, wait time.Duration) ([]Entry, error) {
	if wait <= 0 {
		return s.journal.query(q)
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	timer := time.NewTimer(wait) // real time: Options.Now is for timestamps
	defer timer.Stop()
	// Taken before the query, so a put that commits after the query has
	// closed this channel and is not missed.
	put := s.putSignal(q.account)
	rows, err := s.journal.query(q)
	if err != nil || len(rows) > 0 {
		return rows, err
	}
	hold()
	// Rows put through another server process on the same database send
	// no signal here: a store shared between processes is polled.
	var poll <-chan time.Time
	if d := s.journal.pollInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-put:
		case <-ctx.Done():
			return rows, nil // nobody reads the reply
		case <-timer.C:
		case <-s.ending:
		case <-poll:
			rows, err := s.journal.query(q)
			if err != nil || len(rows) > 0 {
				return rows, err
			}
			continue
		}
		break
	}
	// A put may have landed just as the wait ended: answer what a plain
	// get answers now.
	return s.journal.query(q)
}

// HeldHeader is sent, with WaitHeader, when get_journal_entries begins to
// hold a request: the reply's header goes out at once, the page when it
// ends. A client that has the header knows the server found nothing for
// it when it began to hold, and will answer as soon as something comes.
const HeldHeader = "X-Chatsync-Held"

// heldWriter sends the reply header of a held get_journal_entries when it
// begins to hold; the status and header set later are then the ones sent
// already (a failure afterwards is an empty reply, as PHP's would be).
type heldWriter struct {
	http.ResponseWriter
	sent bool
}

func (w *heldWriter) hold() {
	w.Header().Set(HeldHeader, "1")
	w.Header().Set("Content-Type", contentTypeHTML)
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *heldWriter) WriteHeader(code int) {
	if !w.sent {
		w.sent = true
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// putSignal returns the channel the next put of rows for account closes.
func (s *Server) putSignal(account string) <-chan struct{} {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	ch := s.puts[account]
	if ch == nil {
		ch = make(chan struct{})
		s.puts[account] = ch
	}
	return ch
}

// notifyPut wakes the waits on account after rows were stored for it.
func (s *Server) notifyPut(account string) {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	if ch := s.puts[account]; ch != nil {
		close(ch)
		delete(s.puts, account)
	}
}

type putResult struct {
	ID        json.RawMessage `json:"id"`
	JournalID *string         `json:"journal_id"`
	Source    string          `json:"source"`
}

type putReply struct {
	Results []putResult `json:"results"`
	Success bool        `json:"success"`
}

type putFailure struct {
	Results      []putResult `json:"results"`
	Success      bool        `json:"success"`
	ErrorMessage string      `json:"error_message"`
}

func (q *request) putFail(msg string) { q.ok(putFailure{[]putResult{}, false, msg}) }

// putJournalEntries implements PROTOCOL §4.3 and the §11.1 cases: the
// elements are inserted in one transaction; an element whose data is an
// array or object stops the request with a 500 after the rows before it
// were stored, like the real server's TypeError. With Options.MaxRowBytes
// an element with longer data is not stored and gets journal_id null, or
// with Options.HaltOnError stops the request like the TypeError but with
// HaltOnErrorBody and HTTP 200 (PROTOCOL §12).
func (q *request) putJournalEntries() {
	// "Missing" means absent or empty (PROTOCOL §4.3: "0" reaches
	// json_decode and fails there).
	uuid := q.p.get("uuid")
	if uuid == "" {
		q.putFail("Missing uuid")
		return
	}
	data := q.p.get("data")
	if data == "" {
		q.putFail("Missing data")
		return
	}
	raw, err := phpDecodeRaw(data)
	if err != nil || !phpTruthyJSON(raw) {
		q.putFail("Json decode error")
		return
	}
	elems, _ := collection(raw) // a truthy scalar: foreach visits nothing
	var ids []json.RawMessage
	var values []string
	var tooBig []bool // per result row: over MaxRowBytes, not stored
	failed, halted := false, false
	for _, el := range elems {
		if t := bytes.TrimSpace(el); len(t) == 0 || t[0] != '{' {
			continue // not an object: $entry->data is null
		}
		members, err := objectMembers(el)
		if err != nil {
			continue
		}
		var id, d json.RawMessage
		for _, m := range members {
			switch m.Key {
			case "id":
				id = m.Value
			case "data":
				d = m.Value
			}
		}
		if d == nil || bytes.Equal(bytes.TrimSpace(d), []byte("null")) {
			continue // no data: skipped, no result row
		}
		s, ok := phpScalarString(d)
		if !ok {
			failed = true // addslashes(stdClass|array): TypeError
			break
		}
		over := q.s.opts.MaxRowBytes > 0 && len(s) > q.s.opts.MaxRowBytes
		if over && q.s.opts.HaltOnError {
			halted = true // PHP dies on this INSERT
			break
		}
		if id == nil {
			id = json.RawMessage("null")
		} else if c, err := canonicalJSON(id); err == nil {
			id = c
		}
		ids = append(ids, id)
		tooBig = append(tooBig, over)
		if !over {
			values = append(values, s)
		}
	}
	if n := len(ids) - len(values); n > 0 || halted {
		q.s.log.Warn("journal put: a row over the max row bytes is not stored", "account", q.acct.Address,
			"skipped", n, "halted", halted, "max_row_bytes", q.s.opts.MaxRowBytes)
	}
	jids, err := q.s.journal.put(q.acct.Address, uuid, q.ip, values)
	if err == nil && len(values) > 0 {
		q.s.notifyPut(q.acct.Address)
	}
	if err != nil {
		// A failed INSERT shows as journal_id null under success:true.
		q.s.log.Error("journal put failed", "account", q.acct.Address, "rows", len(values), "err", err)
	}
	if failed {
		fatal(q.w)
		return
	}
	if halted {
		writeText(q.w, http.StatusOK, HaltOnErrorBody)
		return
	}
	results := make([]putResult, len(ids))
	next := 0 // index into jids of the next stored row
	for i, id := range ids {
		results[i] = putResult{ID: id, Source: "default"}
		if tooBig[i] {
			continue
		}
		if next < len(jids) {
			s := strconv.FormatUint(jids[next], 10)
			results[i].JournalID = &s
		}
		next++
	}
	q.ok(putReply{results, true})
}

// HaltOnErrorBody is the reply of a put that hits an element over
// Options.MaxRowBytes with Options.HaltOnError: PHP's DB layer with
// Halt_On_Error=yes printing MariaDB's error for a row over
// max_allowed_packet.
const HaltOnErrorBody = "MySQL error: 1153 (Got a packet bigger than 'max_allowed_packet' bytes)\nSession halted.\n"

// deleteJournalEntries implements PROTOCOL §4.5. The default deletes the
// account's rows; StrictCompat reproduces the real server, whose SQL is
// always invalid.
func (q *request) deleteJournalEntries() {
	var list []json.RawMessage
	if data, ok := q.p.lookup("data"); ok && phpTruthy(data) {
		raw, err := phpDecodeRaw(data)
		if err != nil || !phpTruthyJSON(raw) {
			q.ok(result{false, "No journal entries provided"})
			return
		}
		els, isColl := collection(raw)
		if !isColl {
			els = []json.RawMessage{raw}
		}
		list = els
	} else if jid := q.p.get("journal_id"); phpTruthy(jid) {
		b, _ := json.Marshal(jid)
		list = []json.RawMessage{b}
	} else {
		q.ok(result{false, "Missing data"})
		return
	}
	if q.s.opts.StrictCompat {
		q.ok(struct {
			ErrorMessage string `json:"error_message"`
		}{"database error"})
		return
	}
	ids := make([]int64, 0, len(list))
	for _, el := range list {
		s, ok := phpScalarString(el)
		if !ok {
			continue
		}
		ids = append(ids, phpIntval(s))
	}
	if err := q.s.journal.delete(q.acct.Address, ids); err != nil {
		q.s.log.Error("journal delete failed", "account", q.acct.Address, "err", err)
		q.ok(struct {
			ErrorMessage string `json:"error_message"`
		}{"database error"})
		return
	}
	q.ok(struct {
		Success bool `json:"success"`
	}{true})
}
