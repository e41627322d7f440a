package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
)

const testAccount = "alice@example.com"

// shortDir returns a fresh directory with a short path, for unix sockets
// (sun_path is 104 bytes on macOS).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "cs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func seededAccount() accountserver.Account {
	str := func(s string) *string { return &s }
	return accountserver.Account{
		Address: testAccount, Password: "pw-alice",
		Lastname: str("Liddell"), MobileNumber: str("+31600000001"),
		Aliases: []string{"ally@example.com"},
		Enum:    []string{"+31201234567"},
		Devices: []accountserver.Device{{Contact: "10.0.0.2:5060", PublicContact: "1.2.3.4:5060", Expires: 3600, UserAgent: "Blink", Transport: "tls"}},
		Balance: 12.5,
		BalanceHistory: []accountserver.BalanceEntry{
			{Date: "2026-11-01 10:00:00", Action: "credit", Description: "top-up", Value: 10, Balance: 12.5},
		},
		Forwarding:  map[string]string{"FNOA": "sip:bob@example.com"},
		RejectRules: []string{"sip:spam@example.net"},
		Voicemail:   &accountserver.Voicemail{Mailbox: "4000", Password: "1234", Name: "Alice", Email: "alice@example.com"},
	}
}

type testDaemon struct {
	dir, socket, config, store string
	d                          *daemon.Daemon
}

// startDaemon runs a real daemon for one account whose settings_url is
// settingsURL, and waits until its socket answers.
func startDaemon(t *testing.T, settingsURL string) *testDaemon {
	t.Helper()
	return startDaemonWith(t, settingsURL, "pw-alice", true)
}

// startDaemonWith is startDaemon with the password the daemon sends and
// whether its key file exists.
func startDaemonWith(t *testing.T, settingsURL, password string, withKey bool) *testDaemon {
	t.Helper()
	dir := shortDir(t)
	td := &testDaemon{dir: dir, socket: filepath.Join(dir, "s.sock"), config: filepath.Join(dir, "config.toml"), store: filepath.Join(dir, "store")}
	if err := os.MkdirAll(td.store, 0o700); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "k.key")
	if withKey {
		if _, err := seal.GenerateKeyFile(keyFile); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nlog_level = \"error\"\n\n[[account]]\naddress = %q\nsettings_url = %q\npassword_file = %q\nstore = %q\nkey_file = %q\npoll_interval = \"1s\"\n",
		filepath.Join(dir, "state"), td.socket, testAccount, settingsURL, filepath.Join(dir, "pw"), td.store, keyFile)
	if err := os.WriteFile(td.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(td.config)
	if err != nil {
		t.Fatal(err)
	}
	td.d, err = daemon.New(daemon.Options{Config: cfg, Version: "test-1", Tune: func(o *engine.Options) {
		o.Debounce = 20 * time.Millisecond
		o.ActivePollInterval = 100 * time.Millisecond
		o.MaxBackoff = time.Second
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- td.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("the daemon did not stop")
		}
		if _, err := os.Lstat(td.socket); err == nil {
			t.Errorf("the socket %s is still there after the daemon stopped", td.socket)
		}
	})
	waitFor(t, 10*time.Second, "the socket to answer", func() bool {
		c, err := net.Dial("unix", td.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return td
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli runs the command line in-process and returns exit code, stdout and stderr.
func (td *testDaemon) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"--config", td.config}, args...), "test", strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// cliJSON runs args with --json, wants exit 0 and decodes stdout into v.
func (td *testDaemon) cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, out, errs := td.cli(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("chatsync %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("chatsync %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func startServer(t *testing.T, strict bool) string {
	t.Helper()
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: []accountserver.Account{seededAccount()}, StrictCompat: strict})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return hs.URL + accountserver.Path
}

func TestAccountCommands(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			td := startDaemon(t, startServer(t, strict))

			var id apitype.Identity
			td.cliJSON(t, &id, "account", "identity")
			if id.SIPAddress != testAccount || id.LastName != "Liddell" || id.MobileNumber != "+31600000001" || id.NoAnswerTimeout != 35 {
				t.Errorf("identity = %+v", id)
			}
			var list []string
			td.cliJSON(t, &list, "account", "aliases")
			if len(list) != 1 || list[0] != "ally@example.com" {
				t.Errorf("aliases = %q", list)
			}
			var conf apitype.Confirmation
			td.cliJSON(t, &conf, "account", "aliases", "add", "Bob")
			if !strings.Contains(conf.Message, "bob") {
				t.Errorf("aliases add: %q", conf.Message)
			}
			td.cliJSON(t, &list, "account", "aliases")
			if len(list) != 2 {
				t.Errorf("aliases after add = %q", list)
			}
			td.cliJSON(t, &list, "account", "enum")
			if len(list) != 1 || list[0] != "+31201234567" {
				t.Errorf("enum = %q", list)
			}
			var hist apitype.History
			td.cliJSON(t, &hist, "account", "history")
			var devs []apitype.Device
			td.cliJSON(t, &devs, "account", "devices")
			if len(devs) != 1 || devs[0].Contact != "10.0.0.2:5060" || devs[0].Expires != "3600" {
				t.Errorf("devices = %+v", devs)
			}
			var pre apitype.Prepaid
			td.cliJSON(t, &pre, "account", "prepaid")
			if money(pre.Balance) != "12.50" {
				t.Errorf("prepaid = %+v", pre)
			}
			var bh []apitype.BalanceEntry
			td.cliJSON(t, &bh, "account", "balance-history")
			if len(bh) != 1 || money(bh[0].Value) != "10.00" || bh[0].Description != "top-up" {
				t.Errorf("balance history = %+v", bh)
			}
			if strict {
				code, _, errs := td.cli(t, "account", "monthly-usage")
				if code != 1 || !strings.Contains(errs, "get_monthly_usage") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
					t.Errorf("monthly-usage against the strict server: exit %d, stderr %q; want 1 and one line naming the action", code, errs)
				}
			} else {
				var mu apitype.MonthlyUsage
				td.cliJSON(t, &mu, "account", "monthly-usage")
			}
			var fwd apitype.Forwarding
			td.cliJSON(t, &fwd, "account", "forwarding")
			if fwd["FNOA"] != "bob@example.com" || len(fwd) != 1 {
				t.Errorf("forwarding = %v", fwd)
			}
			td.cliJSON(t, &conf, "account", "forwarding", "set", "FBUS=<voice-mailbox>", "FNOA=")
			fwd = nil // Unmarshal merges into a map
			td.cliJSON(t, &fwd, "account", "forwarding")
			if fwd["FBUS"] != "<voice-mailbox>" || fwd["FNOA"] != "" {
				t.Errorf("forwarding after set = %v", fwd)
			}
			td.cliJSON(t, &conf, "account", "dnd", "on", "--for", "90m")
			if !strings.Contains(conf.Message, "90 minutes") {
				t.Errorf("dnd on: %q", conf.Message)
			}
			var rules apitype.AcceptRules
			td.cliJSON(t, &rules, "account", "accept-rules")
			if rules.Temporary == nil || rules.Temporary.Duration != 90 || rules.Temporary.Groups[0] != "nobody" {
				t.Errorf("accept rules after dnd on = %+v", rules.Temporary)
			}
			td.cliJSON(t, &conf, "account", "dnd", "off")
			td.cliJSON(t, &rules, "account", "accept-rules")
			if rules.Temporary == nil || rules.Temporary.Groups[0] != "everybody" {
				t.Errorf("accept rules after dnd off = %+v", rules.Temporary)
			}
			td.cliJSON(t, &list, "account", "reject-rules")
			if len(list) != 1 || !strings.Contains(list[0], "spam@example.net") {
				t.Errorf("reject rules = %q", list)
			}
			var vm *apitype.Voicemail
			td.cliJSON(t, &vm, "account", "voicemail")
			var vmOpts bytes.Buffer
			if vm != nil {
				json.Compact(&vmOpts, vm.Options)
			}
			if vm == nil || vm.Mailbox != "4000" || vmOpts.String() != `{"delete":false}` {
				t.Errorf("voicemail = %+v, options %s", vm, vmOpts.String())
			}
			code, out, _ := td.cli(t, "account", "voicemail")
			if code != 0 || strings.Contains(out, "1234") {
				t.Errorf("voicemail (human): exit %d, shows the password: %q", code, out)
			}
			if !strings.Contains(out, "\noptions   delete=false\n") {
				t.Errorf("voicemail (human) does not show the options readably:\n%s", out)
			}
			td.cliJSON(t, &conf, "account", "privacy", "on")
			if !strings.Contains(conf.Message, "hidden") {
				t.Errorf("privacy on: %q", conf.Message)
			}
			td.cliJSON(t, &conf, "account", "privacy", "off")
			if !strings.Contains(conf.Message, "visible") {
				t.Errorf("privacy off: %q", conf.Message)
			}

			// The journal: a message written into the store is pushed, and
			// journal get shows it, as ciphertext or decrypted.
			if err := msgdir.WriteAtomic(td.store, "bob/m1.json", []byte(`{"msgid":"m1","remote_uri":"bob@example.com","body":"secret hello"}`)); err != nil {
				t.Fatal(err)
			}
			var sr apitype.SyncResult
			td.cliJSON(t, &sr, "sync", "--wait", "--timeout", "20s")
			if len(sr.Accounts) != 1 || sr.Accounts[0].OutboxDepth != 0 || !sr.Accounts[0].LastPoll.After(sr.Requested) {
				t.Errorf("sync --wait = %+v", sr)
			}
			var page apitype.JournalPage
			td.cliJSON(t, &page, "account", "journal", "get")
			if len(page.Entries) != 0 {
				t.Errorf("journal get (other devices) = %d rows, want 0", len(page.Entries))
			}
			// The device's report (`chatsync devices`) is a row too.
			td.cliJSON(t, &page, "account", "journal", "get", "--all-devices")
			if len(page.Entries) == 0 || page.Entries[0].ID != 1 || page.Entries[0].Plain != nil {
				t.Fatalf("journal get --all-devices = %+v", page)
			}
			for _, e := range page.Entries {
				if strings.Contains(e.Data, "secret") {
					t.Errorf("row %d holds plaintext: %s", e.ID, e.Data)
				}
			}
			rows := len(page.Entries)
			td.cliJSON(t, &page, "account", "journal", "get", "--all-devices", "--decrypt")
			var m1 *apitype.JournalPlain
			var lastID int64
			for _, e := range page.Entries {
				if e.Plain != nil && e.Plain.MsgID == "m1" {
					m1 = e.Plain
				}
				lastID = max(lastID, e.ID)
			}
			if len(page.Entries) != rows || m1 == nil || m1.Op != "put" || !strings.Contains(string(m1.Message), "secret hello") {
				t.Errorf("journal get --decrypt = %+v", page.Entries)
			}
			td.cliJSON(t, &page, "account", "journal", "get", "--all-devices", "--after-id", strconv.FormatInt(lastID-1, 10))
			if len(page.Entries) != 1 || page.Entries[0].ID != lastID {
				t.Errorf("journal get --after-id %d = %+v, want row %d alone", lastID-1, page.Entries, lastID)
			}

			var st apitype.Status
			td.cliJSON(t, &st, "status")
			if st.Version != "test-1" || st.DeviceID != td.d.DeviceID() || len(st.Accounts) != 1 || st.Accounts[0].Pushed != 1 || st.Accounts[0].Cursor < 0 {
				t.Errorf("status = %+v", st)
			}
			code, out, _ = td.cli(t, "status")
			if code != 0 || !strings.Contains(out, testAccount) || !strings.Contains(out, "last poll:") {
				t.Errorf("status (human): exit %d\n%s", code, out)
			}
			// Flags after the command and its arguments.
			code, out, _ = td.cli(t, "account", "enum", "--json", "--socket", td.socket)
			if code != 0 || !strings.Contains(out, "+31201234567") {
				t.Errorf("flags after the command: exit %d %q", code, out)
			}
		})
	}
}

func TestStatusShowsRejectedFiles(t *testing.T) {
	td := startDaemon(t, startServer(t, false))
	if err := os.WriteFile(filepath.Join(td.store, "bad.json"), []byte(`{"body":"no msgid"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var st apitype.Status
	waitFor(t, 15*time.Second, "the file to be rejected", func() bool {
		td.cliJSON(t, &st, "status")
		return len(st.Accounts) == 1 && len(st.Accounts[0].Rejected) == 1
	})
	if r := st.Accounts[0].Rejected[0]; r.Path != "bad.json" || r.Reason == "" {
		t.Errorf("rejected = %+v", r)
	}
	_, out, _ := td.cli(t, "status")
	if !strings.Contains(out, "not replicated (1)") || !strings.Contains(out, "bad.json:") {
		t.Errorf("status does not list the rejected file:\n%s", out)
	}
}

// recordedServer answers like the real settings.phtml (PROTOCOL §11):
// text/html, string ids, stray text before JSON, an HTML error fragment
// before a getter's JSON, and a credentials refusal.
func recordedServer(t *testing.T) string {
	t.Helper()
	replies := map[string]string{
		"get_identity":        `{"sip_address":"alice@example.com","email":null,"first":"Alice","lastname":null,"pstn_caller_id":null,"mobile_number":null,"timezone":"Europe\/Amsterdam","no_answer_timeout":35,"quick_dial":null}`,
		"get_aliases":         `<div class=row-fluid><div class=span12><span class='alert alert-error'>Error (SipPort): Database error (1001): connection lost</span></div></div>[]`,
		"get_devices":         `[{"contact":"10.0.0.2:5060","publicContact":"1.2.3.4:5060","expires":"3600","user_agent":"Blink Pro","transport":"tls"}]`,
		"set_call_forwarding": `Key FUNC changed bob{"success":true,"error_message":"Changed diversions FUNC=sip:bob@example.com "}`,
		"get_journal_entries": `{"success":true,"error_message":null,"results":[{"id":"4","source":"default","timestamp":"2026-11-25 19:58:37","account":"alice@example.com","uuid":"urn:uuid:b","ip_address":"127.0.0.1","data":"b1"}],"rows":1}`,
		"get_monthly_usage":   ``,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		action := r.Form.Get("action")
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		if action == "get_voicemail" {
			w.Header().Set("WWW-Authenticate", `Digest realm="example.com",qop="auth",nonce="MTc5NTYzNzAzMS45MDQzOjdjMDA=",opaque="5ababd603b22780302dd8d83498e5172"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, ok := replies[action]
		if !ok {
			body = `{"success":false,"error_message":"Error: invalid action"}`
		}
		if action == "get_monthly_usage" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, body)
	})
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL + "/settings.phtml"
}

func TestAccountCommandsRealReplies(t *testing.T) {
	td := startDaemon(t, recordedServer(t))
	var id apitype.Identity
	td.cliJSON(t, &id, "account", "identity")
	if id.FirstName != "Alice" || id.Email != "" || id.Timezone != "Europe/Amsterdam" {
		t.Errorf("identity = %+v", id)
	}
	var devs []apitype.Device
	td.cliJSON(t, &devs, "account", "devices")
	if len(devs) != 1 || devs[0].PublicContact != "1.2.3.4:5060" {
		t.Errorf("devices = %+v", devs)
	}
	var conf apitype.Confirmation
	td.cliJSON(t, &conf, "account", "forwarding", "set", "FUNC=bob")
	if !strings.Contains(conf.Message, "FUNC=sip:bob@example.com") {
		t.Errorf("forwarding set: %q", conf.Message)
	}
	var page apitype.JournalPage
	td.cliJSON(t, &page, "account", "journal", "get", "--decrypt")
	if len(page.Entries) != 1 || page.Entries[0].ID != 4 || page.Entries[0].DecryptError == "" {
		t.Errorf("journal get = %+v", page)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"account", "aliases"}, "Database error (1001)"},
		{[]string{"account", "voicemail"}, "refused the daemon's credentials"},
		{[]string{"account", "monthly-usage"}, "get_monthly_usage"},
	} {
		code, out, errs := td.cli(t, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("chatsync %s: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}

// A socket that is not there is not "chatsync is not running": the path
// tried is named, with where a running daemon puts its socket.
func TestNoSocket(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "none.sock")
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"status"}, {"sync", "--wait"}, {"account", "identity"}, {"devices"}, {"devices", "--refresh"}, {"verify"}} {
		out.Reset()
		errb.Reset()
		code := run(append([]string{"--socket", sock}, args...), "test", strings.NewReader(""), &out, &errb)
		want := "chatsync: no control socket at " + sock + " (from --socket): start chatsync with `chatsync run` or `chatsync service start`; if it is running, its socket is elsewhere: "
		if code != 1 || !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "\n") != 1 ||
			!strings.Contains(errb.String(), "$XDG_RUNTIME_DIR set on one side only") || strings.Contains(errb.String(), "not running") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and one line starting %q", args, code, errb.String(), want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	td := startDaemon(t, startServer(t, false))
	for _, args := range [][]string{
		{"account"}, {"account", "nope"}, {"account", "dnd"}, {"account", "forwarding", "set"},
		{"account", "forwarding", "set", "FOO=1"}, {"account", "aliases", "add"}, {"status", "extra"},
		{"account", "journal", "get", "--after-id", "-1"},
		{"devices", "extra"}, {"devices", "--timeout", "soon"}, {"verify", "extra"}, {"verify", "--repair=maybe"},
	} {
		if code, _, errs := td.cli(t, args...); code != 2 {
			t.Errorf("chatsync %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), code, errs)
		}
	}
}

// rawGet sends a request on the socket with extra headers.
func rawGet(t *testing.T, socket, path string, hdr map[string]string) (*http.Response, apitype.Error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest("GET", "http://local"+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apitype.Error
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &e)
	return resp, e
}

func TestSocketRefusesBrowsersAndSecondDaemon(t *testing.T) {
	url := startServer(t, false)
	td := startDaemon(t, url)
	for _, h := range []map[string]string{{"Origin": "http://evil.example"}, {"Referer": "http://evil.example/"}} {
		resp, e := rawGet(t, td.socket, "/v1/status", h)
		if resp.StatusCode != 403 || e.Error == "" || resp.Header.Get(apitype.VersionHeader) != "test-1" {
			t.Errorf("%v: status %d, error %q, version %q", h, resp.StatusCode, e.Error, resp.Header.Get(apitype.VersionHeader))
		}
	}
	for path, want := range map[string]int{"/v1/status": 200, "/v1/nope": 404, "/v1/account/get_nothing": 404,
		"/v1/account/put_journal_entries": 404, "/v1/status?account=nobody@example.com": 404} {
		resp, _ := rawGet(t, td.socket, path, nil)
		if resp.StatusCode != want || resp.Header.Get(apitype.VersionHeader) != "test-1" {
			t.Errorf("GET %s: status %d (want %d), version header %q", path, resp.StatusCode, want, resp.Header.Get(apitype.VersionHeader))
		}
	}
	fi, err := os.Lstat(td.socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want 0600", fi.Mode(), err)
	}

	// A second daemon (own state dir, same socket) refuses to start and
	// leaves the first one's socket alone.
	dir := shortDir(t)
	cfg, _, err := config.Load(td.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Daemon.StateDir = filepath.Join(dir, "state")
	d2, err := daemon.New(daemon.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	err = d2.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second daemon on the same socket: %v, want already running", err)
	}
	if resp, _ := rawGet(t, td.socket, "/v1/status", nil); resp.StatusCode != 200 {
		t.Errorf("the first daemon stopped answering: %d", resp.StatusCode)
	}
}

func TestEventsStream(t *testing.T) {
	td := startDaemon(t, startServer(t, false))
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", td.socket)
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://local/v1/events", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	if err := msgdir.WriteAtomic(td.store, "m2.json", []byte(`{"msgid":"m2","body":"x"}`)); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev apitype.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("no pushed event: %v", err)
		}
		if ev.Kind == apitype.EventPushed && ev.Account == testAccount && ev.Count == 1 {
			break
		}
	}
}
