package localclient

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatsync/chatsync/sync/apitype"
)

// fakeDaemon serves h on a loopback listener and returns a Client of it.
func fakeDaemon(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	return &Client{Socket: "fake", Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
}

func TestDevicesKeepsTheShapeOfTheDaemonsReply(t *testing.T) {
	for _, body := range []string{
		`{"account":"a@example.com","devices":[{"device_id":"urn:uuid:1","name":"desk","version":"v","key_ids":[],"behind":0,"self":true}]}`,
		`[{"account":"a@example.com","devices":[]},{"account":"b@example.com","devices":[]}]`,
	} {
		c := fakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "GET" || r.URL.Path != "/v1/devices" {
				http.Error(w, `{"error":"wrong route"}`, 404)
				return
			}
			w.Write([]byte(body))
		})
		devs, err := c.Devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		several := strings.HasPrefix(body, "[")
		if devs.Several != several || devs.Accounts[0].Account != "a@example.com" || several && len(devs.Accounts) != 2 {
			t.Errorf("%s: devices = %+v", body, devs)
		}
		again, _ := json.Marshal(devs)
		if strings.HasPrefix(string(again), "[") != several {
			t.Errorf("%s encodes again as %s: another shape", body, again)
		}
	}
}

func TestVerifyWithProgressReadsEveryLineThenTheResult(t *testing.T) {
	var query string
	c := fakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		query = r.Form.Encode()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Write([]byte(`{"progress":{"phase":"journal","rows":5000,"pages":1}}` + "\n" +
			`{"progress":{"phase":"journal","rows":12000,"pages":3}}` + "\n" +
			`{"result":{"account":"a@example.com","in_sync":true,"rows":12000,"examples":[]}}` + "\n"))
	})
	c.AccountAddress = "a@example.com"
	var rows []int64
	res, err := c.Verify(context.Background(), true, func(p apitype.VerifyProgress) { rows = append(rows, p.Rows) })
	if err != nil {
		t.Fatal(err)
	}
	if !res.InSync || res.Rows != 12000 || len(rows) != 2 || rows[1] != 12000 {
		t.Errorf("result %+v, progress rows %v", res, rows)
	}
	if query != "account=a%40example.com&progress=1&repair=1" {
		t.Errorf("query %q", query)
	}
}

func TestVerifyErrorLineOrCutReplyIsAnError(t *testing.T) {
	for body, want := range map[string]string{
		`{"progress":{"phase":"journal","rows":1}}` + "\n" + `{"error":"the server answered 500"}` + "\n": "the server answered 500",
		`{"progress":{"phase":"journal","rows":1}}` + "\n":                                                "ended without a result",
	} {
		c := fakeDaemon(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })
		_, err := c.Verify(context.Background(), false, func(apitype.VerifyProgress) {})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
}
