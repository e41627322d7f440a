package localapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/localapi"
	"github.com/chatsync/chatsync/sync/safesocket"
)

const helperEnv = "LOCALAPI_PEER_HELPER_SOCKET"

// TestMain doubles as the helper process that connects as another user.
func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return safesocket.Dial(ctx, path)
		}}}
		resp, err := hc.Get("http://local/v1/status")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(0)
		}
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("status=%d %s", resp.StatusCode, body)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeBackend is a Backend with fixed answers (the real daemon is tested
// through the CLI in cmd/chatsync/cli). Its zero value has one account,
// a@example.com, that runs but whose client and key cannot be had.
type fakeBackend struct {
	accounts []string // default: a@example.com
	// verify, if set, answers Verify.
	verify func(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error)
	// refreshed records the accounts RefreshDevices was called for.
	refreshed *[]string
}

func (f fakeBackend) names() []string {
	if f.accounts == nil {
		return []string{"a@example.com"}
	}
	return f.accounts
}

func (f fakeBackend) Status() apitype.Status {
	st := apitype.Status{Version: "v", DeviceID: "urn:uuid:x"}
	for _, a := range f.names() {
		st.Accounts = append(st.Accounts, apitype.AccountStatus{Account: a, State: "idle", OutboxDepth: 2})
	}
	return st
}
func (fakeBackend) SyncNow(addr string) error { return nil }
func (fakeBackend) Client(addr string) (*account.Client, string, error) {
	switch addr {
	case "", "a@example.com":
		return nil, "", fmt.Errorf("%w: a@example.com: key file missing", localapi.ErrNotRunning)
	}
	return nil, "", fmt.Errorf("%w: %s", localapi.ErrNoAccount, addr)
}
func (fakeBackend) Keyring(addr string) (*seal.Keyring, error) { return nil, localapi.ErrNotRunning }
func (fakeBackend) DeviceID(string) string                     { return "urn:uuid:x" }
func (fakeBackend) Subscribe() (<-chan apitype.Event, func()) {
	return make(chan apitype.Event), func() {}
}

// devicesOf is what the fake knows of addr's devices: itself and a
// laptop 3 behind.
func devicesOf(addr string) apitype.Devices {
	return apitype.Devices{Account: addr, Devices: []apitype.SyncDevice{
		{DeviceID: "urn:uuid:11111111-aaaa", Name: "desk", Version: "v", KeyIDs: []string{"290b1bf8"}, Behind: 0, Self: true},
		{DeviceID: "urn:uuid:22222222-bbbb", Name: "laptop", Version: "v", KeyIDs: []string{"290b1bf8"}, Behind: 3},
	}}
}

// account finds addr among the fake's accounts, "" for the only one.
func (f fakeBackend) account(addr string) (string, error) {
	names := f.names()
	if addr == "" {
		if len(names) != 1 {
			return "", fmt.Errorf("%w: %d accounts", localapi.ErrAccountRequired, len(names))
		}
		return names[0], nil
	}
	for _, a := range names {
		if a == addr {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: %s is not in the config", localapi.ErrNoAccount, addr)
}

func (f fakeBackend) Devices(addr string) ([]apitype.Devices, error) {
	if addr == "" && len(f.names()) > 1 {
		var out []apitype.Devices
		for _, a := range f.names() {
			out = append(out, devicesOf(a))
		}
		return out, nil
	}
	a, err := f.account(addr)
	if err != nil {
		return nil, err
	}
	return []apitype.Devices{devicesOf(a)}, nil
}

func (f fakeBackend) RefreshDevices(addr string) error {
	if addr != "" {
		if _, err := f.account(addr); err != nil {
			return err
		}
	}
	if f.refreshed != nil {
		*f.refreshed = append(*f.refreshed, addr)
	}
	return nil
}

func (f fakeBackend) Verify(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
	a, err := f.account(addr)
	if err != nil {
		return apitype.VerifyResult{}, err
	}
	if f.verify != nil {
		return f.verify(ctx, a, repair, progress)
	}
	return apitype.VerifyResult{Account: a, InSync: true, Rows: 10, Messages: 5, Local: 5, Examples: []apitype.VerifyExample{}}, nil
}

func TestHandlerErrors(t *testing.T) {
	h := localapi.New(fakeBackend{}, localapi.Options{Version: "1.2.3"})
	for _, tc := range []struct {
		method, path string
		hdr          string
		want         int
	}{
		{"GET", "/v1/status", "", 200},
		{"GET", "/v1/status", "Origin", 403},
		{"GET", "/v1/status", "Referer", 403},
		{"GET", "/v1/status?bogus=1", "", 400},
		{"POST", "/v1/status", "", 405},
		{"GET", "/v1/account/get_identity", "", 503},
		{"GET", "/v1/account/get_identity?account=b@example.com", "", 404},
		{"POST", "/v1/account/get_identity", "", 405},
		{"GET", "/v1/account/set_dnd_on", "", 405},
		{"GET", "/v1/account/get_nothing", "", 404},
		{"GET", "/v1/account/get_identity?x=1", "", 400},
		{"GET", "/v1/account", "", 200},
		{"POST", "/v1/sync", "", 200},
		{"POST", "/v1/sync?wait=maybe", "", 400},
		{"GET", "/v1/devices", "", 200},
		{"GET", "/v1/devices?account=b@example.com", "", 404},
		{"GET", "/v1/devices?x=1", "", 400},
		{"POST", "/v1/devices", "", 405},
		{"POST", "/v1/devices/refresh", "", 202},
		{"POST", "/v1/devices/refresh?account=b@example.com", "", 404},
		{"GET", "/v1/devices/refresh", "", 405},
		{"POST", "/v1/verify", "", 200},
		{"POST", "/v1/verify?repair=maybe", "", 400},
		{"POST", "/v1/verify?account=b@example.com", "", 404},
		{"GET", "/v1/verify", "", 405},
		{"GET", "/v1/metrics", "", 200},
		{"POST", "/v1/metrics", "", 405},
		{"GET", "/elsewhere", "", 404},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.hdr != "" {
			req.Header.Set(tc.hdr, "http://example.com/")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (%s): %d, want %d: %s", tc.method, tc.path, tc.hdr, rec.Code, tc.want, rec.Body)
		}
		if v := rec.Header().Get(apitype.VersionHeader); v != "1.2.3" {
			t.Errorf("%s %s: version header %q", tc.method, tc.path, v)
		}
		if rec.Code >= 400 {
			var e apitype.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("%s %s: error body %q", tc.method, tc.path, rec.Body)
			}
		}
	}
}

// do sends one request to h and returns the recorded reply.
func do(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestDevicesIsOneObjectForOneAccountAndAnArrayForSeveral(t *testing.T) {
	one := localapi.New(fakeBackend{}, localapi.Options{})
	rec := do(one, "GET", "/v1/devices")
	var devs apitype.Devices
	if err := json.Unmarshal(rec.Body.Bytes(), &devs); rec.Code != 200 || err != nil {
		t.Fatalf("GET /v1/devices: %d, %v\n%s", rec.Code, err, rec.Body)
	}
	if devs.Account != "a@example.com" || len(devs.Devices) != 2 || !devs.Devices[0].Self || devs.Devices[1].Behind != 3 {
		t.Errorf("devices = %+v", devs)
	}
	// The fields of SPEC §8b, by their JSON names.
	var raw struct {
		Account string           `json:"account"`
		Devices []map[string]any `json:"devices"`
	}
	json.Unmarshal(rec.Body.Bytes(), &raw)
	for _, k := range []string{"device_id", "name", "version", "key_ids", "behind", "self"} {
		if _, ok := raw.Devices[1][k]; !ok {
			t.Errorf("a device lacks %q: %v", k, raw.Devices[1])
		}
	}

	several := localapi.New(fakeBackend{accounts: []string{"a@example.com", "b@example.com"}}, localapi.Options{})
	rec = do(several, "GET", "/v1/devices")
	var list []apitype.Devices
	if err := json.Unmarshal(rec.Body.Bytes(), &list); rec.Code != 200 || err != nil || len(list) != 2 || list[1].Account != "b@example.com" {
		t.Errorf("GET /v1/devices of two accounts: %d, %v, %+v; want an array of both", rec.Code, err, list)
	}
	rec = do(several, "GET", "/v1/devices?account=b@example.com")
	devs = apitype.Devices{}
	if err := json.Unmarshal(rec.Body.Bytes(), &devs); rec.Code != 200 || err != nil || devs.Account != "b@example.com" {
		t.Errorf("GET /v1/devices?account=b: %d, %v, %+v; want b's object", rec.Code, err, devs)
	}
}

func TestDevicesRefreshAnswers202WithTheTimeOfTheRequest(t *testing.T) {
	var calls []string
	h := localapi.New(fakeBackend{accounts: []string{"a@example.com", "b@example.com"}, refreshed: &calls}, localapi.Options{})
	before := time.Now()
	rec := do(h, "POST", "/v1/devices/refresh?account=b@example.com")
	after := time.Now()
	var res localapi.Refreshed
	if err := json.Unmarshal(rec.Body.Bytes(), &res); rec.Code != http.StatusAccepted || err != nil {
		t.Fatalf("POST /v1/devices/refresh: %d, %v\n%s", rec.Code, err, rec.Body)
	}
	if res.Refreshed.Before(before) || res.Refreshed.After(after) {
		t.Errorf("refreshed = %v, want between %v and %v", res.Refreshed, before, after)
	}
	if !strings.Contains(rec.Body.String(), `"refreshed"`) || len(calls) != 1 || calls[0] != "b@example.com" {
		t.Errorf("body %s, refresh calls %q; want one for b@example.com", rec.Body, calls)
	}
}

func TestVerifyPassesRepairAndAnswersTheResult(t *testing.T) {
	var gotRepair bool
	var gotProgress bool
	h := localapi.New(fakeBackend{verify: func(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
		gotRepair, gotProgress = repair, progress != nil
		return apitype.VerifyResult{Account: addr, MissingHere: 2, Applied: 2, Examples: []apitype.VerifyExample{{MsgID: "m1", Kind: apitype.VerifyMissingHere}}}, nil
	}}, localapi.Options{})
	rec := do(h, "POST", "/v1/verify?repair=1")
	var res apitype.VerifyResult
	if err := json.Unmarshal(rec.Body.Bytes(), &res); rec.Code != 200 || err != nil {
		t.Fatalf("POST /v1/verify: %d, %v\n%s", rec.Code, err, rec.Body)
	}
	if !gotRepair || gotProgress || res.Account != "a@example.com" || res.MissingHere != 2 || res.Applied != 2 || len(res.Examples) != 1 {
		t.Errorf("repair %v, progress %v, result %+v", gotRepair, gotProgress, res)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	several := localapi.New(fakeBackend{accounts: []string{"a@example.com", "b@example.com"}}, localapi.Options{})
	if rec := do(several, "POST", "/v1/verify"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "say which account") {
		t.Errorf("verify without an account of two: %d %s, want 400", rec.Code, rec.Body)
	}
}

// TestVerifyProgressIsNDJSONFlushedLineByLine runs the handler on a real
// server: the client reads the first progress line while the verify is
// still going on (so each line is flushed as it is written), then the
// result line ends the reply.
func TestVerifyProgressIsNDJSONFlushedLineByLine(t *testing.T) {
	release := make(chan struct{})
	h := localapi.New(fakeBackend{verify: func(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
		progress(apitype.VerifyProgress{Phase: "journal", Rows: 12000, Pages: 3})
		select {
		case <-release:
		case <-ctx.Done():
			return apitype.VerifyResult{}, ctx.Err()
		}
		progress(apitype.VerifyProgress{Phase: "store", Done: 5, Total: 5})
		return apitype.VerifyResult{Account: addr, InSync: true, Rows: 12000, Examples: []apitype.VerifyExample{}}, nil
	}}, localapi.Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/verify?progress=1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
	}
	dec := json.NewDecoder(resp.Body)
	var first localapi.VerifyLine
	if err := dec.Decode(&first); err != nil || first.Progress == nil || first.Progress.Phase != "journal" || first.Progress.Rows != 12000 {
		t.Fatalf("first line: %+v, %v; want the journal's progress before the verify ends", first, err)
	}
	close(release)
	var lines []localapi.VerifyLine
	for {
		var l localapi.VerifyLine
		if err := dec.Decode(&l); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].Progress == nil || lines[0].Progress.Phase != "store" || lines[1].Result == nil || !lines[1].Result.InSync || lines[1].Result.Rows != 12000 {
		t.Errorf("lines after the first = %+v, want the store's progress then the result", lines)
	}
}

func TestVerifyProgressErrorIsAReplyBeforeTheFirstLineAndALineAfter(t *testing.T) {
	h := localapi.New(fakeBackend{verify: func(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
		return apitype.VerifyResult{}, fmt.Errorf("%w: a@example.com: key file missing", localapi.ErrNotRunning)
	}}, localapi.Options{})
	if rec := do(h, "POST", "/v1/verify?progress=1"); rec.Code != 503 || !strings.Contains(rec.Body.String(), "key file missing") {
		t.Errorf("an error before any progress: %d %s, want a 503 reply", rec.Code, rec.Body)
	}
	h = localapi.New(fakeBackend{verify: func(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
		progress(apitype.VerifyProgress{Phase: "journal", Rows: 100})
		return apitype.VerifyResult{}, errors.New("the server answered 500")
	}}, localapi.Options{})
	rec := do(h, "POST", "/v1/verify?progress=1")
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	var last localapi.VerifyLine
	if rec.Code != 200 || len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &last) != nil || last.Error != "the server answered 500" || last.Result != nil {
		t.Errorf("an error after progress: %d\n%s\nwant a progress line then an error line", rec.Code, rec.Body)
	}
}

func TestMetricsServesThePrometheusTextOfTheBackend(t *testing.T) {
	h := localapi.New(fakeBackend{}, localapi.Options{})
	rec := do(h, "GET", "/v1/metrics")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /v1/metrics: %d, %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`chatsync_outbox_depth{account="a@example.com"} 2`,
		`chatsync_device_behind{account="a@example.com",device="urn:uuid:22222222-bbbb",name="laptop"} 3`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("the metrics lack %q:\n%s", want, rec.Body)
		}
	}
}
