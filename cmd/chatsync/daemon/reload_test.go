package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/internal/syncbuf"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
)

// testServer is a real chatsync-server handler on a loopback listener,
// serving the accounts given as address → password.
type testServer struct {
	url string
	srv *accountserver.Server
}

func newTestServer(t *testing.T, accounts map[string]string) *testServer {
	t.Helper()
	var list []accountserver.Account
	for addr, pw := range accounts {
		list = append(list, accountserver.Account{Address: addr, Password: pw})
	}
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: list})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &testServer{url: hs.URL + accountserver.Path, srv: srv}
}

// rows counts the account's message rows on the server: not the reports
// the devices write to the journal about themselves, which come and go
// with their own timing (rows that do not open with the account's key
// count as messages).
func (s *testServer) rows(t *testing.T, addr string) int {
	t.Helper()
	rows, err := s.srv.Entries(addr)
	if err != nil {
		t.Fatal(err)
	}
	kr := accountKeys(addr)
	n := 0
	for _, r := range rows {
		if kr != nil {
			if e, err := kr.Open(r.Data, addr); err == nil && e.Op == seal.OpReport {
				continue
			}
		}
		n++
	}
	return n
}

// testKeys are the key files of the test accounts, by address.
var testKeys sync.Map

// accountKeys loads the key file of the test account addr, nil if none.
func accountKeys(addr string) *seal.Keyring {
	path, ok := testKeys.Load(addr)
	if !ok {
		return nil
	}
	kr, err := seal.LoadKeyring(path.(string))
	if err != nil {
		return nil
	}
	return kr
}

// testAccount is one account's files in a test directory.
type testAccount struct {
	addr, password, store, pwFile, keyFile string
}

func newTestAccount(t *testing.T, dir, addr, password string) testAccount {
	t.Helper()
	name := strings.SplitN(addr, "@", 2)[0]
	a := testAccount{addr: addr, password: password, store: filepath.Join(dir, name+"-store"),
		pwFile: filepath.Join(dir, name+".pw"), keyFile: filepath.Join(dir, name+".key")}
	if err := os.MkdirAll(a.store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.keyFile); err != nil {
		if _, err := seal.GenerateKeyFile(a.keyFile); err != nil {
			t.Fatal(err)
		}
	}
	testKeys.Store(addr, a.keyFile)
	return a
}

func (a testAccount) block(url, pollInterval string) string {
	return fmt.Sprintf("[[account]]\naddress = %q\nsettings_url = %q\npassword_file = %q\nstore = %q\nkey_file = %q\npoll_interval = %q\n",
		a.addr, url, a.pwFile, a.store, a.keyFile, pollInterval)
}

func (a testAccount) write(t *testing.T, rel, msgid, body string) {
	t.Helper()
	data, _ := json.Marshal(map[string]any{"msgid": msgid, "remote_uri": "carol@example.org", "body": body, "direction": "outgoing"})
	if err := msgdir.WriteAtomic(a.store, rel, data); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log destination written by goroutines while the test reads it.
type syncBuffer = syncbuf.Buffer

// shortTempDir is a temporary directory with a path short enough for a
// unix socket.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "csd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeByRename saves text as editors that save by rename do: a new file
// next to the config, renamed over it.
func writeByRename(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func daemonTable(dir, level string) string {
	return fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nlog_level = %q\n\n", filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), level)
}

type runningDaemon struct {
	d      *Daemon
	log    *syncBuffer
	level  *slog.LevelVar
	cancel context.CancelFunc
	done   chan error
}

func startTestDaemon(t *testing.T, configPath string) *runningDaemon {
	t.Helper()
	cfg, _, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	rd := &runningDaemon{log: &syncBuffer{}, level: new(slog.LevelVar), done: make(chan error, 1)}
	rd.level.Set(cfg.Daemon.LogLevel)
	rd.d, err = New(Options{
		Config: cfg, Version: "test", LogLevel: rd.level, ReloadDebounce: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(rd.log, &slog.HandlerOptions{Level: rd.level})),
		Tune: func(o *engine.Options) {
			o.Debounce = 20 * time.Millisecond
			o.ActivePollInterval = 100 * time.Millisecond
			o.SettleTime = 100 * time.Millisecond
			o.MaxBackoff = time.Second
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rd.cancel = cancel
	go func() { rd.done <- rd.d.Run(ctx) }()
	t.Cleanup(rd.stop)
	return rd
}

func (rd *runningDaemon) stop() {
	if rd.cancel == nil {
		return
	}
	rd.cancel()
	rd.cancel = nil
	select {
	case err := <-rd.done:
		if err != nil {
			panic(fmt.Sprintf("daemon: %v", err))
		}
	case <-time.After(30 * time.Second):
		panic("the daemon did not stop within 30s")
	}
}

// runner returns the account's runner, or nil.
func (rd *runningDaemon) runner(addr string) *accountRunner {
	rd.d.mu.Lock()
	defer rd.d.mu.Unlock()
	return rd.d.accounts[addr]
}

func (rd *runningDaemon) account(addr string) (AccountStatus, bool) {
	for _, a := range rd.d.Status() {
		if a.Account == addr {
			return a, true
		}
	}
	return AccountStatus{}, false
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Logf("log:\n%s", l.String())
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextEvent waits for an event of kind on ch.
func nextEvent(t *testing.T, ch <-chan engine.Event, kind string) engine.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %q event within 15s", kind)
		}
	}
}

func TestConfigEditsApplyLiveAndABrokenEditKeepsTheRunningConfig(t *testing.T) {
	srv := newTestServer(t, map[string]string{"alice@example.com": "pw-alice", "bob@example.com": "pw-bob"})
	dir := shortTempDir(t)
	alice := newTestAccount(t, dir, "alice@example.com", "pw-alice")
	bob := newTestAccount(t, dir, "bob@example.com", "pw-bob")
	cfgPath := filepath.Join(dir, "config.toml")
	head := daemonTable(dir, "info")
	if err := os.WriteFile(cfgPath, []byte(head+alice.block(srv.url, "1s")), 0o600); err != nil {
		t.Fatal(err)
	}
	rd := startTestDaemon(t, cfgPath)
	events, unsubscribe := rd.d.Subscribe()
	defer unsubscribe()

	alice.write(t, "carol/a1.json", "a1", "first from alice")
	pushed := func(addr string, n int) func() bool {
		return func() bool {
			st, _ := rd.account(addr)
			return srv.rows(t, addr) == n && st.Pushed == int64(n)
		}
	}
	waitUntil(t, 15*time.Second, "alice's message on the server", pushed(alice.addr, 1), rd.log)
	aliceRunner := rd.runner(alice.addr)
	aliceBefore, _ := rd.account(alice.addr)
	if aliceBefore.Pushed != 1 || aliceBefore.Started.IsZero() {
		t.Fatalf("alice before the reload: pushed %d, started %v", aliceBefore.Pushed, aliceBefore.Started)
	}

	// Add bob, saving the way vim and most editors do.
	writeByRename(t, cfgPath, head+alice.block(srv.url, "1s")+"\n"+bob.block(srv.url, "1s"))
	ev := nextEvent(t, events, apitype.EventConfigReloaded)
	if !strings.Contains(ev.Message, "added bob@example.com") || !strings.Contains(ev.Message, "unchanged alice@example.com") {
		t.Errorf("reload event = %q", ev.Message)
	}
	bob.write(t, "carol/b1.json", "b1", "first from bob")
	waitUntil(t, 15*time.Second, "bob's message on the server", func() bool { return srv.rows(t, bob.addr) == 1 }, rd.log)
	alice.write(t, "carol/a2.json", "a2", "second from alice")
	waitUntil(t, 15*time.Second, "alice's second message on the server", pushed(alice.addr, 2), rd.log)
	// Alice's engine never stopped: the same engine, started at the same
	// time, still counting from before the reload.
	aliceAfter, _ := rd.account(alice.addr)
	if rd.runner(alice.addr) != aliceRunner || !aliceAfter.Started.Equal(aliceBefore.Started) || aliceAfter.Pushed != 2 {
		t.Errorf("alice was restarted by the reload: same runner %v, started %v → %v, pushed %d (want 2)",
			rd.runner(alice.addr) == aliceRunner, aliceBefore.Started, aliceAfter.Started, aliceAfter.Pushed)
	}

	// A broken edit: refused, logged, shown in status and on the event
	// stream; both accounts keep running on the old config.
	bobRunner := rd.runner(bob.addr)
	broken := head + alice.block(srv.url, "1s") + "\n" + strings.Replace(bob.block(srv.url, "1s"), `poll_interval = "1s"`, `poll_interval = "soon"`, 1)
	brokenLine := strings.Count(broken[:strings.Index(broken, `"soon"`)], "\n") + 1
	writeByRename(t, cfgPath, broken)
	ev = nextEvent(t, events, apitype.EventConfigError)
	if !strings.Contains(ev.Message, "account[2].poll_interval") || !strings.Contains(ev.Message, fmt.Sprintf("line %d", brokenLine)) {
		t.Errorf("config error event = %q, want account[2].poll_interval on line %d", ev.Message, brokenLine)
	}
	st := backend{rd.d}.Status()
	if st.ConfigError == "" || len(st.ConfigProblems) != 1 || st.ConfigProblems[0].Key != "account[2].poll_interval" || st.ConfigProblems[0].Line != brokenLine {
		t.Errorf("status: config_error %q, problems %+v; want account[2].poll_interval on line %d", st.ConfigError, st.ConfigProblems, brokenLine)
	}
	if st.ConfigPath != cfgPath || len(st.Accounts) != 2 {
		t.Errorf("status: config_path %q, %d accounts; want %s and 2", st.ConfigPath, len(st.Accounts), cfgPath)
	}
	if !strings.Contains(rd.log.String(), "config not reloaded") {
		t.Errorf("the refused edit is not logged:\n%s", rd.log.String())
	}
	if rd.runner(alice.addr) != aliceRunner || rd.runner(bob.addr) != bobRunner {
		t.Error("a refused edit restarted an account")
	}
	bob.write(t, "carol/b2.json", "b2", "bob while the config is broken")
	waitUntil(t, 15*time.Second, "bob still syncing on the old config", func() bool { return srv.rows(t, bob.addr) == 2 }, rd.log)

	// The fix changes bob's poll interval: the error clears, bob restarts,
	// alice does not.
	writeByRename(t, cfgPath, head+alice.block(srv.url, "1s")+"\n"+bob.block(srv.url, "2s"))
	ev = nextEvent(t, events, apitype.EventConfigReloaded)
	if !strings.Contains(ev.Message, "restarted bob@example.com") {
		t.Errorf("reload event = %q", ev.Message)
	}
	st = backend{rd.d}.Status()
	if st.ConfigError != "" || len(st.ConfigProblems) != 0 {
		t.Errorf("the config error stays after the fix: %q", st.ConfigError)
	}
	if rd.runner(bob.addr) == bobRunner || rd.runner(alice.addr) != aliceRunner {
		t.Error("want bob restarted and alice untouched")
	}

	// Removing bob stops him; log_level and state_dir changes go through
	// Reload (SIGHUP): the level applies, the state dir waits for a restart.
	newHead := strings.Replace(strings.Replace(head, `log_level = "info"`, `log_level = "debug"`, 1), filepath.Join(dir, "state"), filepath.Join(dir, "state2"), 1)
	writeByRename(t, cfgPath, newHead+alice.block(srv.url, "1s"))
	rd.d.Reload()
	ev = nextEvent(t, events, apitype.EventConfigReloaded)
	if !strings.Contains(ev.Message, "removed bob@example.com") {
		t.Errorf("reload event = %q", ev.Message)
	}
	waitUntil(t, 5*time.Second, "bob to stop", func() bool { _, ok := rd.account(bob.addr); return !ok && rd.runner(bob.addr) == nil })
	if rd.level.Level() != slog.LevelDebug {
		t.Errorf("log level = %v after the reload, want debug", rd.level.Level())
	}
	st = backend{rd.d}.Status()
	if !strings.Contains(st.RestartNeeded, "daemon.state_dir") {
		t.Errorf("restart_needed = %q, want daemon.state_dir named", st.RestartNeeded)
	}
	if rd.runner(alice.addr) != aliceRunner {
		t.Error("alice was restarted")
	}
}

func TestAnAccountThatCouldNotStartIsRetriedOnReload(t *testing.T) {
	srv := newTestServer(t, map[string]string{"alice@example.com": "pw-alice"})
	dir := shortTempDir(t)
	alice := newTestAccount(t, dir, "alice@example.com", "pw-alice")
	key, _ := os.ReadFile(alice.keyFile)
	os.Remove(alice.keyFile)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(daemonTable(dir, "info")+alice.block(srv.url, "1s")), 0o600); err != nil {
		t.Fatal(err)
	}
	rd := startTestDaemon(t, cfgPath)
	waitUntil(t, 5*time.Second, "the start error", func() bool { a, _ := rd.account(alice.addr); return a.StartError != "" })
	if err := os.WriteFile(alice.keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	rd.d.Reload()
	alice.write(t, "carol/a1.json", "a1", "after the key arrived")
	waitUntil(t, 15*time.Second, "alice syncing after SIGHUP", func() bool { return srv.rows(t, alice.addr) == 1 }, rd.log)
}
