package localapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

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
// through the CLI in cmd/chatsync/cli).
type fakeBackend struct{}

func (fakeBackend) Status() apitype.Status {
	return apitype.Status{Version: "v", DeviceID: "urn:uuid:x", Accounts: []apitype.AccountStatus{{Account: "a@example.com", State: "idle"}}}
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
