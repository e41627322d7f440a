package account

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// oneByteTransport is bodyTransport serving its body one byte per Read,
// the worst chunking for the stream decoder's read-ahead and row bound.
type oneByteTransport []byte

func (b oneByteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := bodyTransport(b).RoundTrip(req)
	if err == nil {
		resp.Body = io.NopCloser(iotest.OneByteReader(bytes.NewReader(b)))
	}
	return resp, err
}

// FuzzJournalStreamMatchesBuffered checks the streamed get_journal_entries
// against the buffered path it replaces (cleanReply, checkEnvelope,
// parseJournalReply): for any body, read whole or one byte at a time,
// both accept it with the same page (rows and count) or both refuse it.
// Bytes is the body's length. Two differences are by design and checked
// as such:
//
//   - a body that starts with '{' but holds its JSON after other text
//     (the buffered path accepts an HTML header before an object with
//     "success"): no real reply looks like that, and the stream refuses
//     it;
//   - nesting close to encoding/json's limit of 10000: the stream decodes
//     each row on its own, so a row may nest two levels deeper. Bodies
//     with that many brackets are not compared.
//
// A client with a tiny MaxRowBytes may refuse more, but what it accepts
// it must read the same.
func FuzzJournalStreamMatchesBuffered(f *testing.F) {
	for _, seed := range []string{
		getRowsReply, realGetLimitBug, realDeleteReply,
		`{"success":false,"error_message":"Database Failure","results":[],"rows":0}`,
		`{"success":true,"error_message":null,"results":[{"id":12,"data":"d"}],"rows":"1"}`,
		`{"results":[{"id":"3","data":"x"}],"rows":1,"error_message":null,"success":true}`,
		"<br />\n<b>Warning</b>:  Undefined array key \"summary\" in <b>/x.php</b> on line <b>1</b><br />\n" + getRowsReply,
		"\xef\xbb\xbf \r\n" + getRowsReply + " \n\u00a0\u0085",
		getRowsReply + "\v",
		getRowsReply + "<br />",
		getRowsReply[:len(getRowsReply)/2],
		// Repeated members: json.Unmarshal decodes a second results array
		// over the first one's elements, and the last success wins.
		`{"success":false,"results":[{"id":"1","data":"a"},{"id":"2"}],"results":[{"data":"b"}],"success":true}`,
		`{"success":true,"results":[{"id":"1"},{"id":"2"},{"id":"3"}],"results":[{"id":"4"}],"results":[{},{}]}`,
		`{"success":true,"results":[{"id":"1"}],"results":[],"results":[{}]}`,
		`{"success":true,"results":[{"id":"1"}],"results":null}`,
		`{"success":true,"rows":1,"rows":"x"}`,
		// Case-insensitive names, a Unicode fold (U+017F for 's').
		`{"SUCCESS":true,"Results":[{"ID":"7","Data":"up"}],"ROWS":1}`,
		"{\"\u017fuccess\":true,\"re\u017fults\":[]}",
		`{"success":true,"results":[null,{"id":"1"}]}`,
		`{"success":true,"results":{"id":"1"}}`,
		`{"success":true,"results":"x"}`,
		`{"success":true,"results":[1]}`,
		`{"success":true,"results":[{"id":"1","data":{"a":1}}]}`,
		`{"success":true,"results":[],"x":[1,{"y":null}]}`,
		`{"success":true,"results":[]}{"success":true}`,
		`{"success":true,"results":[]}<html>{"success":true,"results":[{"id":"9"}]}`,
		`{<html>{"success":true,"results":[]}`,
		"", " ", "{", "[]", "null", "Invalid credentials from %s",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const maxReply = 1 << 16
		if len(body) > maxReply {
			return // the buffered path would refuse it whole
		}
		ref, js, refErr := bufferedJournal(body)
		var ae *Error
		if refErr != nil && !errors.As(refErr, &ae) {
			t.Fatalf("buffered: %v is not an *Error", refErr)
		}
		trimmed := bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
		_, streamed := jsonObjectStart(body[:min(len(body), journalPeek)])
		prefixed := streamed && js != nil && len(js) != len(trimmed)
		deep := bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) > 9000

		get := func(rt http.RoundTripper, maxRow int64) (*JournalPage, error) {
			c, err := New(Config{
				Address: "alice@example.com", SettingsURL: "https://settings.example/settings.phtml",
				Password: "p", Transport: rt, MaxReplyBytes: maxReply, MaxRowBytes: maxRow,
			})
			if err != nil {
				t.Fatal(err)
			}
			page, err := c.GetJournalEntries(context.Background(), JournalQuery{})
			if err != nil && !errors.As(err, &ae) {
				t.Fatalf("%v (%T) is not an *Error", err, err)
			}
			if err == nil && page.Bytes != int64(len(body)) {
				t.Fatalf("Bytes = %d for a %d-byte body", page.Bytes, len(body))
			}
			return page, err
		}
		same := func(name string, page *JournalPage) {
			t.Helper()
			if page.Rows != ref.Rows || !reflect.DeepEqual(page.Entries, ref.Entries) {
				t.Fatalf("%s: stream read %+v, buffered %+v", name, page, ref)
			}
		}
		for name, rt := range map[string]http.RoundTripper{"whole": bodyTransport(body), "one byte": oneByteTransport(body)} {
			page, err := get(rt, maxReply)
			switch {
			case prefixed:
				if err == nil {
					t.Fatalf("%s: the stream accepts a body with text inside: %+v", name, page)
				}
			case deep:
			case (err == nil) != (refErr == nil):
				t.Fatalf("%s: stream error %v, buffered error %v", name, err, refErr)
			case err == nil:
				same(name, page)
			}
		}
		if page, err := get(bodyTransport(body), 24); err == nil && !deep {
			if refErr != nil {
				t.Fatalf("tiny row limit: the stream accepts what the buffered path refuses (%v)", refErr)
			}
			same("tiny row limit", page)
		} else if err != nil && strings.Contains(err.Error(), "MaxRowBytes") && !streamed {
			t.Fatalf("the buffered path applied the row limit: %v", err)
		}
	})
}
