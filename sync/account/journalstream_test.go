package account

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf16"
)

// bufferedJournal is the journal reply path as it was before streaming
// (send, call, decode): the reference the stream decoder must agree with.
// js is the cleaned JSON.
func bufferedJournal(body []byte) (page *JournalPage, js []byte, err error) {
	js, e := cleanReply(body)
	if e != nil {
		return nil, nil, e
	}
	if _, e := checkEnvelope(js, true); e != nil {
		e.Action = "get_journal_entries"
		return nil, js, e
	}
	page, err = parseJournalReply(js)
	return page, js, err
}

// pageReply builds a reply the way the real server prints it (PROTOCOL
// §11.1: key order, string ids, `\/`), with the given data per row.
func pageReply(data ...string) string {
	var b strings.Builder
	b.WriteString(`{"success":true,"error_message":null,"results":[`)
	for i, d := range data {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","source":"default","timestamp":"2026-11-25 19:58:37","account":"alice@example.com","uuid":"urn:uuid:B","ip_address":"127.0.0.1","data":%s}`,
			i+1, phpString(d))
	}
	fmt.Fprintf(&b, `],"rows":%d}`, len(data))
	return b.String()
}

// phpString is s as PHP's json_encode prints it: `/` as `\/`, non-ASCII
// as \uXXXX (PROTOCOL §11.1).
func phpString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '/':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, "\\u%04x", u)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// The recorded replies of PROTOCOL §11.1 and the failure shapes give the
// same outcome, kind and message through the stream as through the
// buffered path.
func TestJournalStreamAgreesWithBufferedOnRecordedReplies(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		kind Kind // 0: success
		msg  string
	}{
		"rows":                {body: getRowsReply},
		"limit bug, no rows":  {body: realGetLimitBug},
		"numeric id and rows": {body: `{"success":true,"error_message":null,"results":[{"id":12,"data":"d"}],"rows":"1"}`},
		"database failure":    {body: `{"success":false,"error_message":"Database Failure","results":[],"rows":0}`, kind: KindRejected, msg: "Database Failure"},
		"backend not mysql":   {body: `{"success":false,"error_message":null,"results":[],"rows":0}`, kind: KindRejected, msg: "no reason given"},
		"no success key":      {body: realDeleteReply, kind: KindRejected, msg: "database error (reply has no success flag)"},
		"no success, no text": {body: `{"results":[],"rows":0}`, kind: KindMalformed, msg: "no success flag"},
		"success not boolean": {body: `{"success":"true","results":[]}`, kind: KindMalformed, msg: "non-boolean success flag"},
		"success last":        {body: `{"results":[{"id":"3","data":"x"}],"rows":1,"error_message":null,"success":true}`},
		"bad id":              {body: `{"success":true,"results":[{"id":"1","data":"a"},{"id":"x","data":"secret"}],"rows":2}`, kind: KindMalformed, msg: "journal entry 1 has no valid numeric id"},
		"results not a list":  {body: `{"success":true,"results":{"id":"1"},"rows":1}`, kind: KindMalformed, msg: "unexpected reply shape"},
		"data an object":      {body: `{"success":true,"results":[{"id":"1","data":{"a":1}}],"rows":1}`, kind: KindMalformed, msg: "unexpected reply shape"},
		"rows not a number":   {body: `{"success":true,"results":[],"rows":"many"}`, kind: KindMalformed, msg: "unexpected reply shape"},
		"bom and spaces":      {body: "\xef\xbb\xbf \r\n" + getRowsReply + " \n\u00a0"},
		"text after":          {body: getRowsReply + "<br />", kind: KindMalformed},
		"cut short":           {body: getRowsReply[:len(getRowsReply)/2], kind: KindMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, reply(tc.body))
			page, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
			ref, _, refErr := bufferedJournal([]byte(tc.body))
			if tc.kind == 0 {
				if err != nil || refErr != nil {
					t.Fatalf("stream %v, buffered %v", err, refErr)
				}
				if page.Bytes != int64(len(tc.body)) {
					t.Errorf("Bytes = %d, want the body's %d", page.Bytes, len(tc.body))
				}
				ref.Bytes = page.Bytes
				if !reflect.DeepEqual(page, ref) {
					t.Fatalf("stream %+v\nbuffered %+v", page, ref)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind != tc.kind || !strings.Contains(e.Message, tc.msg) || e.Action != "get_journal_entries" {
				t.Fatalf("err = %#v, want %v %q", err, tc.kind, tc.msg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes journal data: %v", err)
			}
			if refErr == nil {
				t.Fatalf("the buffered path accepts what the stream refuses")
			}
			// The buffered path words text after the JSON and a cut body
			// differently ("not JSON"); the rest must match.
			var re *Error
			if !errors.As(refErr, &re) || re.Kind != e.Kind || name != "text after" && name != "cut short" && re.Message != e.Message {
				t.Errorf("stream: %v\nbuffered: %v", err, refErr)
			}
		})
	}
}

// The per-row bound is decided from the row's exact size, not from how the
// body happens to be read: a row of exactly MaxRowBytes passes and one
// byte less of allowance fails, naming the row and the limit, however the
// body is chunked.
func TestJournalStreamRowLimitIsExactWhateverTheChunking(t *testing.T) {
	body := pageReply("small", strings.Repeat("y", 3000), "tail")
	// Row 1 counts from the end of row 0: the comma and the object.
	i0 := strings.Index(body, `},{"id":"2"`) + 1
	i1 := strings.Index(body, `},{"id":"3"`) + 1
	size := int64(i1 - i0)
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(body) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(body)) },
		"halves":   func() io.Reader { return iotest.HalfReader(strings.NewReader(body)) },
		"7 bytes":  func() io.Reader { return &chunkReader{r: strings.NewReader(body), n: 7} },
	}
	for name, mk := range readers {
		page, e := decodeJournalStream(mk(), size, 200)
		if e != nil || len(page.Entries) != 3 || len(page.Entries[1].Data) != 3000 {
			t.Fatalf("%s: limit %d = row size: %v", name, size, e)
		}
		_, e = decodeJournalStream(mk(), size-1, 200)
		want := fmt.Sprintf("journal row 1 is larger than %d bytes (MaxRowBytes)", size-1)
		if e == nil || e.Kind != KindMalformed || e.Message != want {
			t.Fatalf("%s: limit %d: %v, want %q", name, size-1, e, want)
		}
	}
	// Far over the limit: the decoder stops reading near the limit.
	huge := pageReply(strings.Repeat("z", 1<<20))
	r := &countingReader{r: strings.NewReader(huge)}
	_, e := decodeJournalStream(r, 4096, 200)
	if e == nil || !strings.Contains(e.Message, "journal row 0 is larger than 4096 bytes") {
		t.Fatalf("huge row: %v", e)
	}
	if r.n > 4096+rowSlack+512 {
		t.Errorf("read %d bytes of a 1 MiB row with a 4096-byte limit", r.n)
	}
	// The rest of the object is bounded too.
	_, e = decodeJournalStream(strings.NewReader(`{"success":true,"junk":"`+strings.Repeat("j", 10000)+`","results":[]}`), 4096, 200)
	if e == nil || !strings.Contains(e.Message, "a member of the reply object is larger than 4096 bytes") {
		t.Fatalf("huge member: %v", e)
	}
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

// A page far over MaxReplyBytes is read whole: the cap is for replies
// read whole, not for the stream.
func TestJournalStreamIgnoresMaxReplyBytes(t *testing.T) {
	rows := make([]string, 2000)
	for i := range rows {
		rows[i] = strings.Repeat(string(rune('a'+i%26)), 1000)
	}
	body := pageReply(rows...)
	s := newTestServer(t, reply(body))
	c := newClient(t, s, func(c *Config) { c.MaxReplyBytes = 64 << 10; c.MaxRowBytes = 2 << 10 })
	page, err := c.GetJournalEntries(t.Context(), JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2000 || page.Rows != 2000 || page.Entries[1999].Data != rows[1999] || page.Bytes != int64(len(body)) {
		t.Fatalf("%d entries, rows %d, %d bytes of %d", len(page.Entries), page.Rows, page.Bytes, len(body))
	}
	// Text before the JSON: the buffered path, under the cap.
	s.setHandler(reply(phpWarnings + body))
	_, err = c.GetJournalEntries(t.Context(), JournalQuery{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindMalformed || !strings.Contains(e.Message, "larger than 65536 bytes") || e.StatusCode != 200 {
		t.Fatalf("warnings + big page: %v", err)
	}
	// An error status keeps the buffered handling, cap included.
	s.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, body)
	})
	_, err = c.GetJournalEntries(t.Context(), JournalQuery{})
	if !errors.As(err, &e) || e.Kind != KindMalformed || e.StatusCode != 500 {
		t.Fatalf("500 with a big body: %v", err)
	}
	s.setHandler(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	_, err = c.GetJournalEntries(t.Context(), JournalQuery{})
	if !errors.As(err, &e) || e.Kind != KindServer || e.StatusCode != 500 || !e.Retryable() {
		t.Fatalf("500: %v", err)
	}
}

const phpWarnings = "<br />\n<b>Warning</b>:  Undefined array key \"summary\" in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>5010</b><br />\n" +
	"<br />\n<b>Deprecated</b>:  Creation of dynamic property SipSettings::$db is deprecated in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>201</b><br />\n"

// PHP notices before the JSON (PROTOCOL §11.2 item 3) still parse, and
// Bytes counts them: they are part of what was read.
func TestJournalStreamFallsBackForPHPWarnings(t *testing.T) {
	body := phpWarnings + getRowsReply
	s := newTestServer(t, reply(body))
	page, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.Entries[0].Data != `café "q" <b> hello/world` || page.Bytes != int64(len(body)) {
		t.Fatalf("page = %+v, body %d bytes", page, len(body))
	}
}

// A connection cut inside the page is a retryable transport error, with a
// Content-Length or chunked, and wherever the cut falls.
func TestJournalStreamTruncatedPageIsRetryableTransportError(t *testing.T) {
	body := pageReply("one", strings.Repeat("two", 5000), "three")
	for _, chunked := range []bool{false, true} {
		for _, cut := range []int{1, 60, len(body) / 2, len(body) - 1} {
			s := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				io.WriteString(w, body[:cut])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			})
			_, err := newClient(t, s).GetJournalEntries(t.Context(), JournalQuery{})
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindTransport || !e.Retryable() {
				t.Errorf("chunked %v, cut at %d of %d: err = %v, want a retryable transport error", chunked, cut, len(body), err)
			}
		}
	}
}

// A server that stops sending mid-page hits the call's timeout: a
// retryable transport error, as for any call.
func TestJournalStreamStalledPageTimesOut(t *testing.T) {
	body := pageReply("one", "two")
	s := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	c := newClient(t, s, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	_, err := c.GetJournalEntries(t.Context(), JournalQuery{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindTransport || !e.Retryable() || e.Message != "request timed out" {
		t.Fatalf("err = %#v", err)
	}
}

func TestJournalObjectStart(t *testing.T) {
	for in, want := range map[string]int{
		"{":                   0,
		" \t\r\n{}":           4,
		"\xef\xbb\xbf{":       3,
		"\xef\xbb\xbf \v\f{":  6,
		"\u00a0\u0085\u2028{": 7,
		"":                    -1,
		"   ":                 -1,
		"[]":                  -1,
		"<br />{":             -1,
		" \xef\xbb\xbf{":      -1, // cleanReply trims a BOM only at the start
		"\xc2":                -1, // a rune cut by the peek
		"\ufeff\ufeff{":       -1,
	} {
		got, ok := jsonObjectStart([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("jsonObjectStart(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestPHPStringIsJSON(t *testing.T) {
	for _, s := range []string{"", `a/b"c\d`, "café \x00\n😀"} {
		var got string
		if err := json.Unmarshal([]byte(phpString(s)), &got); err != nil || got != s {
			t.Errorf("phpString(%q) = %s: %q, %v", s, phpString(s), got, err)
		}
	}
}
