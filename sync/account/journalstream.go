package account

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// A get_journal_entries page holds up to 5000 rows of up to several MB
// each (PROTOCOL §4.2, §12), so no cap on the whole reply can be both
// safe and large enough for every legal page. GetJournalEntries therefore
// decodes the reply as a stream: the envelope with json.Decoder.Token, each
// row with json.Decoder.Decode. Memory is the rows kept plus the row being
// decoded (json.Decoder buffers one whole value), and the bound is per row
// (Config.MaxRowBytes).
//
// The stream path is taken when the body, after an optional UTF-8 BOM and
// white space, starts with '{'. Otherwise (PHP notices before the JSON,
// PROTOCOL §11.2 item 3; an empty body; a text error) the reply is read
// whole and cleaned by cleanReply under Config.MaxReplyBytes, as for every
// other action: that is only for broken deployments. The two paths agree:
// FuzzJournalStreamMatchesBuffered checks that for any body the stream
// decoder accepts the same pages as the buffered one, and the same rows.

// journalPeek is how much of a journal reply is looked at to choose the
// path. More leading white space than this is not worth streaming.
const journalPeek = 512

// rowSlack is read allowance beyond MaxRowBytes while one row is decoded,
// for the decoder's read-ahead. Whether a row is over the limit is decided
// from its exact size (json.Decoder.InputOffset), so the outcome does not
// depend on how the body arrives; the slack only lets a row of exactly
// MaxRowBytes be read whatever the chunking.
const rowSlack = 4 << 10

// journalPage performs a get_journal_entries call and decodes its reply.
func (c *Client) journalPage(ctx context.Context, r request) (*JournalPage, error) {
	resp, cancel, err := c.roundTrip(ctx, r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	return c.readJournalPage(r.action, resp)
}

// readJournalPage reads and decodes the reply of a get_journal_entries
// call: streamed when the body starts with a JSON object, else read whole.
func (c *Client) readJournalPage(action string, resp *http.Response) (*JournalPage, error) {
	body := &countingReader{r: resp.Body}
	br := bufio.NewReader(body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, err := c.readReply(action, resp, br) // always an error
		return nil, err
	}

	head, err := br.Peek(journalPeek)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, transportError(action, fmt.Errorf("reading reply: %w", err))
	}
	start, ok := jsonObjectStart(head)
	if !ok {
		// The buffered path, as before streaming.
		js, err := c.readReply(action, resp, br)
		if err != nil {
			return nil, err
		}
		if _, e := checkEnvelope(js, true); e != nil {
			e.Action = action
			return nil, e
		}
		page, err := parseJournalReply(js)
		if err != nil {
			return nil, err
		}
		page.Bytes = body.n
		return page, nil
	}
	br.Discard(start)
	page, e := decodeJournalStream(br, c.maxRow, resp.StatusCode)
	if body.err != nil {
		// The connection broke (or timed out) mid-body, whatever the
		// decoder made of the bytes it got.
		return nil, transportError(action, fmt.Errorf("reading reply: %w", body.err))
	}
	if e != nil {
		e.Action = action
		return nil, e
	}
	page.Bytes = body.n
	return page, nil
}

// countingReader counts the bytes read and keeps the first read error
// other than io.EOF.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// errOverLimit is what limitReader returns once its allowance is spent.
var errOverLimit = errors.New("read over the row limit")

// limitReader lets the decoder read at most left bytes, then fails with
// errOverLimit. Unlike io.LimitReader it does not pretend the body ended,
// and its allowance is reset before each row.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errOverLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// decodeJournalStream decodes a get_journal_entries reply from r, which
// starts at the '{' of its JSON object, and checks it as the buffered path
// does (checkEnvelope, parseJournalReply), with the same outcome for every
// body: the members are matched to the same names (case-insensitively, the
// last of repeated members winning, repeated results arrays decoded over
// each other as json.Unmarshal does), the object must be followed only by
// white space, and any error of the buffered decode is an error here.
// Each row (and each other member of the object) may be at most maxRow
// bytes. The *Error has no Action; status is the reply's HTTP status, put
// on the errors cleanReply would have raised.
func decodeJournalStream(r io.Reader, maxRow int64, status int) (*JournalPage, *Error) {
	allowance := maxRow + rowSlack
	if maxRow > math.MaxInt64-rowSlack {
		allowance = math.MaxInt64
	}
	lim := &limitReader{r: r}
	dec := json.NewDecoder(lim)
	reset := func() { lim.left = allowance }
	// fail words a decoder error; what names the part being read.
	fail := func(err error, what string) *Error {
		switch {
		case errors.Is(err, errOverLimit):
			return &Error{Kind: KindMalformed, StatusCode: status,
				Message: fmt.Sprintf("%s is larger than %d bytes (MaxRowBytes)", what, maxRow)}
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return &Error{Kind: KindMalformed, StatusCode: status, Message: "the reply ends inside its JSON object"}
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return &Error{Kind: KindMalformed, StatusCode: status, Message: "the reply is not valid JSON", Err: err}
		}
		return &Error{Kind: KindMalformed, Message: "unexpected reply shape", Err: err}
	}
	tooLarge := func(what string) *Error {
		return fail(errOverLimit, what)
	}
	const member = "a member of the reply object"

	reset()
	if t, err := dec.Token(); err != nil {
		return nil, fail(err, member)
	} else if t != json.Delim('{') {
		return nil, &Error{Kind: KindMalformed, StatusCode: status, Message: "the reply is not a JSON object"}
	}
	var (
		rows             []journalRow
		n                flexInt
		success, message json.RawMessage // the last of each, nil when absent
		skip             json.RawMessage
	)
	for {
		reset()
		off := dec.InputOffset()
		if !dec.More() {
			break
		}
		t, err := dec.Token()
		if err != nil {
			return nil, fail(err, member)
		}
		key, ok := t.(string)
		if !ok {
			return nil, &Error{Kind: KindMalformed, StatusCode: status, Message: "the reply is not valid JSON"}
		}
		if strings.EqualFold(key, "results") {
			var e *Error
			if rows, e = decodeRows(dec, rows, maxRow, reset, fail); e != nil {
				return nil, e
			}
			continue
		}
		var v any
		switch {
		case strings.EqualFold(key, "success"):
			success = json.RawMessage{}
			v = &success
		case strings.EqualFold(key, "error_message"):
			message = json.RawMessage{}
			v = &message
		case strings.EqualFold(key, "rows"):
			n = 0
			v = &n
		default:
			v = &skip
		}
		if err := dec.Decode(v); err != nil {
			return nil, fail(err, member)
		}
		if dec.InputOffset()-off > maxRow {
			return nil, tooLarge(member)
		}
	}
	reset()
	if t, err := dec.Token(); err != nil {
		return nil, fail(err, member)
	} else if t != json.Delim('}') {
		return nil, &Error{Kind: KindMalformed, StatusCode: status, Message: "the reply is not valid JSON"}
	}
	// Nothing but white space may follow, as cleanReply trims it.
	reset()
	if err := onlySpace(io.MultiReader(dec.Buffered(), lim)); err != nil {
		if errors.Is(err, errOverLimit) {
			return nil, tooLarge("the white space after the reply's JSON object")
		}
		if err == errNotSpace {
			return nil, &Error{Kind: KindMalformed, StatusCode: status, Message: "text follows the reply's JSON object"}
		}
		return nil, fail(err, member)
	}

	var env bytes.Buffer
	env.WriteByte('{')
	if success != nil {
		env.WriteString(`"success":`)
		env.Write(success)
	}
	if message != nil {
		if success != nil {
			env.WriteByte(',')
		}
		env.WriteString(`"error_message":`)
		env.Write(message)
	}
	env.WriteByte('}')
	if _, e := checkEnvelope(env.Bytes(), true); e != nil {
		return nil, e
	}
	return journalPageOf(rows, n)
}

// decodeRows decodes the value of a results member into rows the way
// json.Unmarshal decodes an array into a slice that may already hold
// elements (a repeated results member): element i is decoded over rows[i]
// while it exists, the slice is cut to the array's length, and an empty
// array or null leaves no rows.
func decodeRows(dec *json.Decoder, rows []journalRow, maxRow int64, reset func(), fail func(error, string) *Error) ([]journalRow, *Error) {
	row := func(i int) string { return "journal row " + strconv.Itoa(i) }
	t, err := dec.Token()
	if err != nil {
		return nil, fail(err, "the results member")
	}
	if t == nil {
		return nil, nil
	}
	if t != json.Delim('[') {
		return nil, &Error{Kind: KindMalformed, Message: "unexpected reply shape", Err: errors.New("results is not an array")}
	}
	i := 0
	for ; ; i++ {
		reset()
		off := dec.InputOffset()
		if !dec.More() {
			break
		}
		if i >= len(rows) {
			if i < cap(rows) {
				rows = rows[:i+1]
			} else {
				rows = append(rows, journalRow{})
			}
		}
		if err := dec.Decode(&rows[i]); err != nil {
			return nil, fail(err, row(i))
		}
		if dec.InputOffset()-off > maxRow {
			return nil, fail(errOverLimit, row(i))
		}
	}
	if t, err := dec.Token(); err != nil {
		return nil, fail(err, row(i))
	} else if t != json.Delim(']') {
		return nil, &Error{Kind: KindMalformed, Message: "the reply is not valid JSON"}
	}
	if i == 0 {
		return []journalRow{}, nil
	}
	return rows[:i], nil
}

var errNotSpace = errors.New("not white space")

// onlySpace reads r to its end and fails with errNotSpace at the first
// rune that bytes.TrimSpace would not trim.
func onlySpace(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64)
	for {
		c, _, err := br.ReadRune()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !unicode.IsSpace(c) {
			return errNotSpace
		}
	}
}
