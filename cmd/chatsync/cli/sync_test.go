package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
)

// device is a real daemon of testAccount with its own state and store,
// sharing keyFile with the other devices of a test, logging at info to log.
type device struct {
	*testDaemon
	log *lockedBuffer
	// stop stops the daemon (before the test ends); a second call does
	// nothing.
	stop func()
}

// startDevice runs a daemon for testAccount against settingsURL with the
// key in keyFile, the password pw, and the messages of msgs in its store;
// extra lines go at the end of its [[account]] block.
func startDevice(t *testing.T, settingsURL, keyFile, pw string, msgs map[string]string, extra ...string) *device {
	t.Helper()
	dir := shortDir(t)
	td := &testDaemon{dir: dir, socket: filepath.Join(dir, "s.sock"), config: filepath.Join(dir, "config.toml"), store: filepath.Join(dir, "store")}
	for rel, body := range msgs {
		p := filepath.Join(td.store, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(td.store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nlog_level = \"info\"\n\n[[account]]\naddress = %q\nsettings_url = %q\npassword_file = %q\nstore = %q\nkey_file = %q\npoll_interval = \"1s\"\n",
		filepath.Join(dir, "state"), td.socket, testAccount, settingsURL, filepath.Join(dir, "pw"), td.store, keyFile)
	for _, l := range extra {
		text += l + "\n"
	}
	if err := os.WriteFile(td.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(td.config)
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	td.d, err = daemon.New(daemon.Options{Config: cfg, Version: "test-1",
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Tune: func(o *engine.Options) {
			o.Debounce = 20 * time.Millisecond
			o.ActivePollInterval = 100 * time.Millisecond
			o.MaxBackoff = time.Second
			o.BatchCount = 100
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- td.d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("the daemon did not stop")
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, 10*time.Second, "the socket to answer", func() bool {
		c, err := net.Dial("unix", td.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &device{td, log, stop}
}

func newKeyFile(t *testing.T) string {
	t.Helper()
	keyFile := filepath.Join(shortDir(t), "k.key")
	if _, err := seal.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// accountStatus is the status of the device's only account.
func (d *device) accountStatus(t *testing.T) apitype.AccountStatus {
	t.Helper()
	var st apitype.Status
	code, out, _ := d.cli(t, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Accounts) != 1 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	return st.Accounts[0]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestSyncWaitGivesUpAtOnceOnAWrongPassword: a password the server
// refuses is not fixed by waiting: `sync --wait` says so in one line,
// with what to check, and exits 1 within seconds, not after its timeout.
func TestSyncWaitGivesUpAtOnceOnAWrongPassword(t *testing.T) {
	acct := seededAccount()
	acct.Password = "the-right-one"
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: []accountserver.Account{acct}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	d := startDevice(t, hs.URL+accountserver.Path, newKeyFile(t), "a-wrong-one", nil)

	start := time.Now()
	code, out, errs := d.cli(t, "sync", "--wait", "--timeout", "2m")
	took := time.Since(start)
	if code != ExitFailure {
		t.Errorf("sync --wait: exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if took > 15*time.Second {
		t.Errorf("sync --wait took %s to give up on a refused password", took)
	}
	line := lastLine(errs)
	for _, want := range []string{"chatsync: " + testAccount + ":", "authentication failed", "check password_file"} {
		if !strings.Contains(line, want) {
			t.Errorf("the last line of stderr lacks %q:\n%s", want, errs)
		}
	}
	if n := strings.Count(errs, "check password_file"); n != 1 {
		t.Errorf("the advice appears %d times on stderr, want once:\n%s", n, errs)
	}

	// status says so too, with exit 3, and --json names the kind.
	code, _, errs = d.cli(t, "status")
	if code != ExitNotRunning || !strings.Contains(errs, "authentication failed") {
		t.Errorf("status: exit %d, stderr %q; want 3 and the auth line", code, errs)
	}
	if a := d.accountStatus(t); a.LastPollErrorKind != "auth" || a.NeedsFix == "" {
		t.Errorf("status --json: last_poll_error_kind %q, needs_fix %q", a.LastPollErrorKind, a.NeedsFix)
	}
}

// slowPages delays every journal read a little, so a catch-up of a few
// hundred rows in pages of 20 lasts long enough to be watched.
func slowPages(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("action") == "get_journal_entries" {
			time.Sleep(100 * time.Millisecond)
		}
		h.ServeHTTP(w, r)
	})
}

// TestCatchUpShowsProgressAndLogsCounts: device A sends 300 messages,
// device B (same key, empty store) catches up in pages of 20. While it
// does, status shows rows, pages and messages written that grow, and
// sync --wait shows the same; the info logs of both say what happened
// in counts and never hold a message body.
func TestCatchUpShowsProgressAndLogsCounts(t *testing.T) {
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: []accountserver.Account{seededAccount()}, PageRows: 20})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(slowPages(srv))
	t.Cleanup(func() { hs.Close(); srv.Close() })
	url := hs.URL + accountserver.Path
	keyFile := newKeyFile(t)

	const n = 300
	const secret = "body-that-must-not-be-logged"
	msgs := map[string]string{}
	for i := range n {
		msgs[fmt.Sprintf("bob/m%03d.json", i)] = fmt.Sprintf(`{"msgid":"m%03d","remote_uri":"bob@example.com","local_uri":%q,"body":"%s %d","direction":"outgoing","media_type":"chat","content_type":"text/plain","time":"2026-11-25 10:00:00","status":"sent"}`, i, testAccount, secret, i)
	}
	a := startDevice(t, url, keyFile, "pw-alice", msgs)
	code, out, errs := a.cli(t, "sync", "--wait", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("A: sync --wait: exit %d\n%s\n%s", code, out, errs)
	}
	if st := a.accountStatus(t); st.Pushed != n {
		t.Fatalf("A pushed %d, want %d", st.Pushed, n)
	}

	b := startDevice(t, url, keyFile, "pw-alice", nil)
	var seen []apitype.CatchUp
	var wait struct {
		code     int
		out, err string
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		wait.code, wait.out, wait.err = b.cli(t, "sync", "--wait", "--timeout", "60s")
	}()
	var text string
	waitFor(t, 60*time.Second, "B to catch up", func() bool {
		st := b.accountStatus(t)
		if st.CatchUp == nil {
			return false
		}
		if len(seen) == 0 || seen[len(seen)-1] != *st.CatchUp {
			seen = append(seen, *st.CatchUp)
			if st.Catching() && text == "" && st.CatchUp.Rows > 0 {
				_, text, _ = b.cli(t, "status")
			}
		}
		return !st.CatchUp.Done.IsZero()
	})
	<-waited

	moving := 0
	for _, c := range seen {
		if c.Done.IsZero() && c.Rows > 0 {
			moving++
		}
	}
	if moving < 2 {
		t.Errorf("status showed %d steps of the catch-up in progress, want 2 or more: %+v", moving, seen)
	}
	final := seen[len(seen)-1]
	if final.Rows < n || final.Written != n || final.Pages < n/20 {
		t.Errorf("catch-up at its end = %+v, want %d rows and messages in %d pages or more", final, n, n/20)
	}
	if !strings.Contains(text, "catching up: receiving: ") || !strings.Contains(text, "rows/s") {
		t.Errorf("status during the catch-up does not show its progress:\n%s", text)
	}
	if wait.code != 0 || !strings.Contains(wait.err, "receiving: ") || !strings.Contains(wait.out, "caught up") {
		t.Errorf("B: sync --wait: exit %d, want 0 with the catch-up's progress on stderr\nstdout: %s\nstderr: %s", wait.code, wait.out, wait.err)
	}
	if code, _, errs := b.cli(t, "status"); code != 0 {
		t.Errorf("status of a caught-up device: exit %d, stderr %q", code, errs)
	}

	logA, logB := a.log.String(), b.log.String()
	for _, want := range []string{"the server answered", "sent a batch to the journal", "entries=100"} {
		if !strings.Contains(logA, want) {
			t.Errorf("A's log lacks %q:\n%s", want, logA)
		}
	}
	for _, want := range []string{"the server answered", fmt.Sprintf(`caught up with the journal" account=%s messages=%d`, testAccount, n)} {
		if !strings.Contains(logB, want) {
			t.Errorf("B's log lacks %q:\n%s", want, logB)
		}
	}
	if pages := strings.Count(logB, "read a page"); pages != 0 {
		t.Errorf("B's info log has %d lines per page; pages are for debug", pages)
	}
	for name, log := range map[string]string{"A": logA, "B": logB} {
		if strings.Contains(log, secret) || strings.Contains(log, "pw-alice") {
			t.Errorf("%s's log holds a message body or the password:\n%s", name, log)
		}
	}
}
