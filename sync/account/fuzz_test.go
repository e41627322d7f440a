package account

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"testing"
)

// bodyTransport answers every request with status 200 and a fixed body,
// the way the real server serves its replies (text/html).
type bodyTransport []byte

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/html; charset=UTF-8"}},
		Body:       io.NopCloser(bytes.NewReader(b)),
		Request:    req,
	}, nil
}

// FuzzParseReply feeds arbitrary reply bodies through the reply cleaning
// and through every typed method. No input may panic, every failure must
// be an *Error, successful journal pages carry only positive ids, put
// results follow the input, and cleaning allocates at most a small
// multiple of the body size.
func FuzzParseReply(f *testing.F) {
	for _, seed := range []string{
		realPut3Reply, realPutMissingUUID, realGetLimitBug, realDeleteReply, realDeleteHalted,
		putTypeErrorDisplayed, getRowsReply, enumReply,
		soapErrorFragment + "null", soapErrorFragment + "[]",
		`Key FNOL changed <voice-mailbox>Key FBUS changed 0612345678{"success":true,"error_message":"Changed diversions "}`,
		"<br />\n<b>Warning</b>:  Undefined array key \"summary\" in <b>/x.php</b> on line <b>1</b><br />\n" + getRowsReply,
		`{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]}},"temporary":{"groups":["nobody"],"duration":30},"groups":[]}`,
		`{"persistent":[{"start":"1"}]}`,
		`{"placed":[{"remoteParty":"b","duration":"48","status":200,"media":"audio"}],"received":null}`,
		`{"Mailbox":1234,"Password":"9","Account":null}`,
		`[{"contact":"1","publicContact":"2","expires":3600}]`,
		`{"results":[{"id":"a","journal_id":null},{"id":{"x":1},"journal_id":"11"}],"success":true}`,
		`{"success":true,"results":[{"id":"1e3"}],"rows":1.0}`,
		"Invalid credentials from %s",
		"error: no domainFilter available in ngnpro_engines.inc",
		"", "null", "[", "{", "\xef\xbb\xbf[]", "annull",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// Cleaning alone: bounded allocation.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		js, e := cleanReply(body)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(32*len(body)+1<<20) {
			t.Fatalf("cleaning %d bytes allocated %d bytes", len(body), alloc)
		}
		if e == nil && !bytes.Contains(body, js) {
			t.Fatalf("cleaned JSON %q is not part of the body", js)
		}

		c, err := New(Config{
			Address: "alice@example.com", SettingsURL: "https://settings.example/settings.phtml",
			Password: "p", Transport: bodyTransport(body), MaxReplyBytes: 1 << 16,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		check := func(name string, err error) {
			t.Helper()
			var ae *Error
			if err != nil && !errors.As(err, &ae) {
				t.Fatalf("%s: error %v (%T) is not an *Error", name, err, err)
			}
		}
		_, err = c.Identity(ctx)
		check("Identity", err)
		_, err = c.Aliases(ctx)
		check("Aliases", err)
		_, err = c.History(ctx)
		check("History", err)
		_, err = c.Devices(ctx)
		check("Devices", err)
		_, err = c.Prepaid(ctx)
		check("Prepaid", err)
		_, err = c.BalanceHistory(ctx)
		check("BalanceHistory", err)
		_, err = c.MonthlyUsage(ctx)
		check("MonthlyUsage", err)
		_, err = c.CallForwarding(ctx)
		check("CallForwarding", err)
		_, err = c.AcceptRules(ctx)
		check("AcceptRules", err)
		_, err = c.RejectRules(ctx)
		check("RejectRules", err)
		_, err = c.Voicemail(ctx)
		check("Voicemail", err)
		_, err = c.SetDNDOff(ctx)
		check("SetDNDOff", err)
		_, err = c.Do(ctx, "get_anything", nil)
		check("Do", err)
		err = c.DeleteJournalEntries(ctx, []int64{1})
		check("DeleteJournalEntries", err)

		page, err := c.GetJournalEntries(ctx, JournalQuery{})
		check("GetJournalEntries", err)
		if err == nil {
			for _, en := range page.Entries {
				if en.ID <= 0 {
					t.Fatalf("entry with id %d accepted", en.ID)
				}
			}
		}
		entries := []PutEntry{{ID: "a", Data: "1"}, {ID: "b", Data: "2"}}
		res, err := c.PutJournalEntries(ctx, "u", entries)
		check("PutJournalEntries", err)
		if err == nil {
			if len(res) != len(entries) {
				t.Fatalf("%d results for %d entries", len(res), len(entries))
			}
			for i, r := range res {
				if r.ID != entries[i].ID || r.Stored != (r.JournalID > 0) {
					t.Fatalf("result %d = %+v", i, r)
				}
			}
		}
	})
}
