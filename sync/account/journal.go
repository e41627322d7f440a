package account

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// JournalPageMax is the most rows the real server returns in one page. A
// page of exactly this many rows may mean more are waiting (there is no
// "more" flag): ask again with AfterID = page.MaxID().
const JournalPageMax = 5000

// JournalQuery selects journal entries. Zero fields are not sent.
type JournalQuery struct {
	// ExceptUUID leaves out entries written by this writer uuid (this
	// device's id). The real server compares it case-insensitively.
	ExceptUUID string
	// AfterID returns only entries with a journal id above it.
	AfterID int64
	// AfterTimestamp returns only entries written after this server time,
	// "YYYY-MM-DD HH:MM:SS" in the server's time zone.
	AfterTimestamp string
	// Limit, when positive, is sent as the limit parameter to cap the
	// page's rows. Send it only to a server known to honour it, as the
	// engine does: the real server returns no rows at all for
	// 0 < limit < 5000 (PROTOCOL §4.2, bug 1, §11.1) and caps pages at
	// 5000 rows for larger values.
	Limit int
	// Wait asks the server to hold the request up to Wait when there is
	// nothing to return, and to answer as soon as a row this query
	// returns is put (a long poll, our extension: chatsync-server without
	// --strict-compat holds up to 60 s). It is sent as wait=<whole
	// seconds> when at least one second; servers that do not know the
	// parameter, the real one among them, answer at once (see
	// JournalPage.Waited). The call's timeout (Config.Timeout) is extended
	// by Wait.
	Wait time.Duration
	// OnHeld, if set, is called (from the calling goroutine) when the
	// server says it holds the request: it found nothing for the query
	// and answers as soon as something comes (its X-Chatsync-Held reply
	// header, sent before the page).
	OnHeld func()
}

// JournalEntry is one row of the journal.
type JournalEntry struct {
	ID        int64  `json:"id"`        // server journal id
	Source    string `json:"source"`    // "default"
	Timestamp string `json:"timestamp"` // server time of the insert, "YYYY-MM-DD HH:MM:SS"
	Account   string `json:"account"`   // user@domain
	UUID      string `json:"uuid"`      // the writer's uuid
	IPAddress string `json:"ip_address"`
	Data      string `json:"data"` // opaque, exactly as put
}

// JournalPage is one reply of get_journal_entries.
type JournalPage struct {
	Entries []JournalEntry `json:"entries"`
	// Rows is the server's row count for this page.
	Rows int `json:"rows"`
	// Bytes is how many bytes of reply body were read for this page (the
	// JSON text, with any text before it, after the HTTP transport undid
	// a Content-Encoding): the cost of an idle poll, and over Rows the
	// mean size of a row.
	Bytes int64 `json:"bytes"`
	// Waited is how long the server said it would hold the request for
	// JournalQuery.Wait (its X-Chatsync-Wait reply header, whole
	// seconds): an empty page with Waited > 0 means nothing arrived
	// within Waited (or the server ended the wait early to shut down).
	// It is 0 when the header is absent or unparsable: no Wait was asked,
	// or the server ignores it and an empty page came at once, so the
	// caller has to pace its polls itself.
	Waited time.Duration `json:"waited"`
}

// waitHeader is the reply header of a server that honoured a wait
// parameter (accountserver.WaitHeader).
const waitHeader = "X-Chatsync-Wait"

// heldHeader is sent before the page by a server that holds a request
// (accountserver.HeldHeader).
const heldHeader = "X-Chatsync-Held"

// waitedOf reads the waitHeader of a reply.
func waitedOf(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(waitHeader)))
	if err != nil || n <= 0 || n > math.MaxInt32 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// MaxID returns the highest journal id in the page, or 0 for an empty
// page. The server orders a page by a one-second timestamp, not by id, so
// this (not the last entry's id) is the next AfterID.
func (p *JournalPage) MaxID() int64 {
	var m int64
	for _, e := range p.Entries {
		m = max(m, e.ID)
	}
	return m
}

// GetJournalEntries returns one page of journal entries
// (get_journal_entries). A reply whose entries do not all carry a numeric
// id is a Malformed error.
//
// The reply is decoded as a stream, row by row, so no cap on the whole
// reply applies: only each row is bounded (Config.MaxRowBytes). A reply
// with text before its JSON (PHP notices) is read whole instead, under
// Config.MaxReplyBytes.
//
// With q.Wait a server that long-polls holds an empty page until a row
// arrives or the wait ends; page.Waited says whether it did.
func (c *Client) GetJournalEntries(ctx context.Context, q JournalQuery) (*JournalPage, error) {
	const action = "get_journal_entries"
	if q.AfterID < 0 {
		return nil, invalidArg("after id %d is negative", q.AfterID)
	}
	if q.Limit < 0 {
		return nil, invalidArg("limit %d is negative", q.Limit)
	}
	if q.Wait < 0 {
		return nil, invalidArg("wait %v is negative", q.Wait)
	}
	v := url.Values{}
	if q.ExceptUUID != "" {
		v.Set("except_uuid", q.ExceptUUID)
	}
	if q.AfterID > 0 {
		v.Set("after_id", strconv.FormatInt(q.AfterID, 10))
	}
	if q.AfterTimestamp != "" {
		v.Set("after_timestamp", q.AfterTimestamp)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	wait := q.Wait.Truncate(time.Second) // what is sent, so what the server may hold
	if wait > 0 {
		v.Set("wait", strconv.FormatInt(int64(wait/time.Second), 10))
	}
	var h http.Header
	r := request{action: action, query: v, wait: wait, header: &h}
	if q.OnHeld != nil {
		r.onHeader = func(h http.Header) {
			if h.Get(heldHeader) != "" {
				q.OnHeld()
			}
		}
	}
	page, err := c.journalPage(ctx, r)
	if err != nil {
		return nil, err
	}
	page.Waited = waitedOf(h)
	return page, nil
}

// journalRow is one element of a get_journal_entries reply's results, as
// decoded: the id is checked and converted by journalPageOf.
type journalRow struct {
	ID        json.RawMessage `json:"id"`
	Source    flexString      `json:"source"`
	Timestamp flexString      `json:"timestamp"`
	Account   flexString      `json:"account"`
	UUID      flexString      `json:"uuid"`
	IPAddress flexString      `json:"ip_address"`
	Data      flexString      `json:"data"`
}

// parseJournalReply decodes the cleaned JSON of a whole get_journal_entries
// reply whose envelope checkEnvelope has accepted: the buffered path,
// taken when text precedes the JSON. The stream decoder
// (decodeJournalStream) must agree with it on every reply.
func parseJournalReply(js []byte) (*JournalPage, error) {
	const action = "get_journal_entries"
	var w struct {
		Results []journalRow `json:"results"`
		Rows    flexInt      `json:"rows"`
	}
	if err := decode(action, js, &w); err != nil {
		return nil, err
	}
	page, e := journalPageOf(w.Results, w.Rows)
	if e != nil {
		e.Action = action
		return nil, e
	}
	return page, nil
}

// journalPageOf checks the rows' ids and makes the page.
func journalPageOf(rows []journalRow, n flexInt) (*JournalPage, *Error) {
	page := &JournalPage{Rows: int(n), Entries: make([]JournalEntry, 0, len(rows))}
	for i, r := range rows {
		id, ok := journalID(r.ID)
		if !ok || id <= 0 {
			return nil, &Error{Kind: KindMalformed,
				Message: "journal entry " + strconv.Itoa(i) + " has no valid numeric id"}
		}
		page.Entries = append(page.Entries, JournalEntry{
			ID: id, Source: string(r.Source), Timestamp: string(r.Timestamp), Account: string(r.Account),
			UUID: string(r.UUID), IPAddress: string(r.IPAddress), Data: string(r.Data),
		})
	}
	return page, nil
}

// journalID reads a journal id sent as a JSON string or number. null gives
// (0, true): "no id".
func journalID(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	if string(raw) == "null" {
		return 0, true
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// PutEntry is one entry to append to the journal. ID is the caller's token
// for matching the result (unique and non-empty within a call); Data is
// stored verbatim.
type PutEntry struct {
	ID   string `json:"id"`
	Data string `json:"data"`
}

// PutResult is the outcome of one PutEntry, in input order.
type PutResult struct {
	ID        string `json:"id"`         // the entry's ID
	JournalID int64  `json:"journal_id"` // server id when Stored
	// Stored reports whether the server stored the row. It is false when
	// the server answered journal_id null (its insert failed while the reply
	// still said success) or sent no row for the entry: keep such entries
	// queued and put them again.
	Stored bool `json:"stored"`
}

// PutJournalEntries appends entries to the journal (put_journal_entries) as
// writer uuid: a form POST of uuid and data, a JSON array of {"id","data"}.
// The results follow the input order and are matched to it by id.
//
// The server is not idempotent: if this returns a Transport error (or any
// error after the request was sent) the rows may or may not have been
// stored, and putting them again may store them twice.
func (c *Client) PutJournalEntries(ctx context.Context, uuid string, entries []PutEntry) ([]PutResult, error) {
	const action = "put_journal_entries"
	if strings.TrimSpace(uuid) == "" {
		return nil, invalidArg("writer uuid is empty")
	}
	if len(entries) == 0 {
		return nil, nil
	}
	index := make(map[string]int, len(entries))
	for i, e := range entries {
		if e.ID == "" {
			return nil, invalidArg("entry %d has an empty id", i)
		}
		if _, dup := index[e.ID]; dup {
			return nil, invalidArg("entry %d repeats id %q", i, e.ID)
		}
		index[e.ID] = i
	}
	var data bytes.Buffer
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(entries); err != nil {
		return nil, invalidArg("entries: %v", err)
	}
	form := url.Values{"uuid": {uuid}, "data": {strings.TrimSuffix(data.String(), "\n")}}
	js, _, err := c.call(ctx, request{action: action, form: form}, true)
	if err != nil {
		return nil, err
	}
	var w struct {
		Results []struct {
			ID        json.RawMessage `json:"id"`
			JournalID json.RawMessage `json:"journal_id"`
		} `json:"results"`
	}
	if err := decode(action, js, &w); err != nil {
		return nil, err
	}
	out := make([]PutResult, len(entries))
	for i, e := range entries {
		out[i].ID = e.ID
	}
	for _, r := range w.Results {
		id := echoedID(r.ID)
		i, ok := index[id]
		if !ok || out[i].Stored {
			// Not ours (or a second row for one id): it cannot be matched,
			// so it cannot be counted as stored.
			continue
		}
		jid, ok := journalID(r.JournalID)
		if !ok {
			return nil, &Error{Kind: KindMalformed, Action: action, Message: "put result has a non-numeric journal_id"}
		}
		if jid > 0 {
			out[i].JournalID = jid
			out[i].Stored = true
		}
	}
	return out, nil
}

// echoedID renders the id the server echoed, whatever its JSON type, as
// the string we sent: strings are decoded, other values keep their text.
func echoedID(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// DeleteJournalEntries asks the server to delete journal entries
// (delete_journal_entries, a form POST of data = JSON list of ids).
//
// The real MySQL server never deletes anything and answers
// {"error_message":"database error"} (PROTOCOL §4.5, bug 2): that comes
// back as a KindRejected error, which is not retryable.
func (c *Client) DeleteJournalEntries(ctx context.Context, ids []int64) error {
	const action = "delete_journal_entries"
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if id <= 0 {
			return invalidArg("journal id %d is not positive", id)
		}
	}
	b, _ := json.Marshal(ids)
	_, _, err := c.call(ctx, request{action: action, form: url.Values{"data": {string(b)}}}, true)
	return err
}
