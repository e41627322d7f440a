package main_test

// End-to-end tests with the real binaries: chatsync-server and two chatsync
// daemons (devices A and B of one account) as separate processes, talking
// HTTP on loopback, each with its own store, state and config.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/internal/mariadbtest"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
)

var bins struct{ chatsync, server string }

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "chatsync-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bins.chatsync = filepath.Join(dir, "chatsync")
		bins.server = filepath.Join(dir, "chatsync-server")
		// The daemon is built with failpoints, so a test can make it die
		// at an exact point of the push.
		for _, b := range [][]string{
			{"build", "-tags", "failpoints", "-o", bins.chatsync, "."},
			{"build", "-o", bins.server, "../chatsync-server"},
		} {
			cmd := exec.Command("go", b...)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building the binaries:", err)
				return 1
			}
		}
		return m.Run()
	}()
	mariadbtest.Stop() // the MariaDB of the MySQL-journal test, if it started one
	os.Exit(code)
}

const (
	e2eAccount  = "alice@example.com"
	e2ePassword = "correct horse"
)

type e2eServer struct {
	url    string
	client *account.Client
	dir    string
	args   []string
	cmd    *exec.Cmd
	// keys are the key files of the devices made on this server: rows
	// opens rows with them to leave out the devices' reports.
	mu   sync.Mutex
	keys []string
}

func startServer(t *testing.T) *e2eServer { return startServerArgs(t) }

// startServerArgs starts chatsync-server with extra flags (the real
// server's page behaviour, for instance).
func startServerArgs(t *testing.T, extra ...string) *e2eServer {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real binaries; skipped with -short")
	}
	dir := t.TempDir()
	accounts := filepath.Join(dir, "accounts.toml")
	os.WriteFile(accounts, []byte(fmt.Sprintf("[[account]]\naddress = %q\npassword = %q\n", e2eAccount, e2ePassword)), 0o600)
	s := &e2eServer{dir: dir, args: append([]string{"--data", filepath.Join(dir, "data"), "--accounts", accounts}, extra...)}
	s.start(t, "127.0.0.1:0")
	t.Cleanup(s.stop)
	c, err := account.New(account.Config{Address: e2eAccount, Password: e2ePassword, SettingsURL: s.url})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// start runs chatsync-server on listen and learns its URL.
func (s *e2eServer) start(t *testing.T, listen string) {
	t.Helper()
	cmd := exec.Command(bins.server, append([]string{"--listen", listen}, s.args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("chatsync-server printed no address: %v", err)
	}
	s.url = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}

// stop stops chatsync-server and waits for it.
func (s *e2eServer) stop() {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
		s.cmd = nil
	}
}

// restart stops the server, lets change alter its data dir, and starts
// it again at the same address.
func (s *e2eServer) restart(t *testing.T, change func(data string)) {
	t.Helper()
	s.stop()
	change(filepath.Join(s.dir, "data"))
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	s.start(t, u.Host)
}

// rows returns every journal row of the account, as any device sees them.
// rows returns the account's journal rows but the devices' reports: the
// messages' rows, which most tests count.
func (s *e2eServer) rows(t *testing.T) []account.JournalEntry {
	t.Helper()
	s.mu.Lock()
	files := slices.Clone(s.keys)
	s.mu.Unlock()
	var rings []*seal.Keyring
	for _, f := range files {
		if kr, err := seal.LoadKeyring(f); err == nil {
			rings = append(rings, kr)
		}
	}
	var out []account.JournalEntry
	for _, r := range s.allRows(t) {
		report := false
		for _, kr := range rings {
			if en, err := kr.Open(r.Data, e2eAccount); err == nil {
				report = en.Op == seal.OpReport
				break
			}
		}
		if !report {
			out = append(out, r)
		}
	}
	return out
}

// allRows returns every row of the account's journal.
func (s *e2eServer) allRows(t *testing.T) []account.JournalEntry {
	t.Helper()
	var all []account.JournalEntry
	after := int64(0)
	for {
		page, err := s.client.GetJournalEntries(context.Background(), account.JournalQuery{AfterID: after})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Entries...)
		if len(page.Entries) == 0 {
			return all
		}
		after = page.MaxID() // the server under test orders pages by id
	}
}

type e2eDevice struct {
	t      *testing.T
	name   string
	dir    string
	store  string
	config string
	cmd    *exec.Cmd
	exited chan error
}

// newE2EDevice makes a device whose config has extra lines added to its
// [[account]] block.
func newE2EDevice(t *testing.T, name string, srv *e2eServer, keyFile string, extra ...string) *e2eDevice {
	t.Helper()
	dir := t.TempDir()
	d := &e2eDevice{t: t, name: name, dir: dir, store: filepath.Join(dir, "store"), config: filepath.Join(dir, "config.toml")}
	srv.mu.Lock()
	if !slices.Contains(srv.keys, keyFile) {
		srv.keys = append(srv.keys, keyFile)
	}
	srv.mu.Unlock()
	os.MkdirAll(d.store, 0o700)
	os.WriteFile(filepath.Join(dir, "password"), []byte(e2ePassword+"\n"), 0o600)
	os.WriteFile(d.config, []byte(fmt.Sprintf(`[daemon]
state_dir = %q
socket = %q
log_level = "debug"

[[account]]
address = %q
settings_url = %q
password_file = %q
store = %q
key_file = %q
poll_interval = "1s"
%s
`, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"), e2eAccount, srv.url, filepath.Join(dir, "password"), d.store, keyFile, strings.Join(extra, "\n"))), 0o600)
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *e2eDevice) start(env ...string) {
	d.t.Helper()
	cmd := exec.Command(bins.chatsync, "run", "--config", d.config)
	cmd.Env = append(os.Environ(), env...)
	logFile, err := os.OpenFile(filepath.Join(d.dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd, d.exited = cmd, make(chan error, 1)
	go func() {
		d.exited <- cmd.Wait()
		logFile.Close()
	}()
}

// stop sends SIGTERM and checks that the daemon exits cleanly.
func (d *e2eDevice) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Errorf("%s exited with %v after SIGTERM; log:\n%s", d.name, err, d.log())
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		d.t.Errorf("%s did not exit within 30s of SIGTERM", d.name)
	}
	d.cmd = nil
}

func (d *e2eDevice) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "log"))
	return string(b)
}

func (d *e2eDevice) write(rel string, obj map[string]any) {
	d.t.Helper()
	data, _ := json.MarshalIndent(obj, "", "  ")
	if err := msgdir.WriteAtomic(d.store, rel, data); err != nil {
		d.t.Fatal(err)
	}
}

// messages maps msgid → canonical JSON and msgid → path for the store.
func (d *e2eDevice) messages() (map[string]string, map[string]string) {
	content, paths := map[string]string{}, map[string]string{}
	filepath.WalkDir(d.store, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() || msgdir.Ignored(de.Name()) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if m, err := msgdir.Parse(data, 16<<20); err == nil {
			rel, _ := filepath.Rel(d.store, p)
			content[m.MsgID], paths[m.MsgID] = string(m.Canonical), rel
		}
		return nil
	})
	return content, paths
}

func e2eMsg(id, body string) map[string]any {
	return map[string]any{"msgid": id, "remote_uri": "bob@example.com", "local_uri": e2eAccount, "body": body, "direction": "outgoing"}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool, logs ...*e2eDevice) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range logs {
				t.Logf("log of %s:\n%s", d.name, d.log())
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sameMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func newKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alice.key")
	if _, err := seal.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTwoDaemonsConvergeFollowEditsAndDeletesAndRestartRePushesNothing(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a, b := newE2EDevice(t, "A", srv, key), newE2EDevice(t, "B", srv, key)
	a.start()
	b.start()
	for i := range 200 {
		a.write(fmt.Sprintf("bob/m%03d.json", i), e2eMsg(fmt.Sprintf("msg-%03d@e2e.test", i), fmt.Sprintf("message number %d", i)))
	}
	eventually(t, 90*time.Second, "200 messages on B, equal to A's", func() bool {
		am, _ := a.messages()
		bm, _ := b.messages()
		return len(bm) == 200 && sameMaps(am, bm)
	}, a, b)

	// No journal row holds a body, a msgid or an address in clear.
	rows := srv.rows(t)
	if len(rows) != 200 {
		t.Errorf("server holds %d rows, want 200", len(rows))
	}
	for _, r := range rows {
		for _, clear := range []string{"message number", "@e2e.test", "bob@", "alice@", "example.com"} {
			if strings.Contains(r.Data, clear) {
				t.Fatalf("journal row %d contains %q in clear", r.ID, clear)
			}
		}
	}

	// An edit and a delete on B reach A.
	_, bPaths := b.messages()
	b.write(bPaths["msg-007@e2e.test"], e2eMsg("msg-007@e2e.test", "message number 7, edited on B"))
	if err := os.Remove(filepath.Join(b.store, bPaths["msg-008@e2e.test"])); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the edit and the delete on A", func() bool {
		am, _ := a.messages()
		return len(am) == 199 && strings.Contains(am["msg-007@e2e.test"], "edited on B")
	}, a, b)

	// A restart of A pushes nothing again: a message written after the
	// restart is the only new row (anything re-pushed would be queued, and
	// so stored, before it).
	a.stop()
	before := len(srv.rows(t))
	a.start()
	a.write("bob/after-restart.json", e2eMsg("after-restart", "written after the restart"))
	eventually(t, 30*time.Second, "the new message on B", func() bool {
		bm, _ := b.messages()
		return bm["after-restart"] != ""
	}, a, b)
	if got := len(srv.rows(t)); got != before+1 {
		t.Errorf("server holds %d rows after A's restart and one new message, want %d", got, before+1)
	}
}

func TestDaemonKilledBetweenInsertAndMappingCommitLeavesOneRowAndOneFile(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a, b := newE2EDevice(t, "A", srv, key), newE2EDevice(t, "B", srv, key)
	a.write("bob/m1.json", e2eMsg("m1", "in flight when the daemon died"))
	a.start("CHATSYNC_FAILPOINT=after-put")
	select {
	case err := <-a.exited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 99 {
			t.Fatalf("A exited with %v, want the failpoint's exit status 99; log:\n%s", err, a.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("A did not reach the failpoint; log:\n%s", a.log())
	}
	a.cmd = nil
	if got := len(srv.rows(t)); got != 1 {
		t.Fatalf("server holds %d rows after the crash, want 1 (the insert happened)", got)
	}
	a.start()
	b.start()
	a.write("bob/marker.json", e2eMsg("marker", "written after the restart"))
	eventually(t, 30*time.Second, "both messages on B", func() bool {
		bm, _ := b.messages()
		return len(bm) == 2
	}, a, b)
	if got := len(srv.rows(t)); got != 2 {
		t.Errorf("server holds %d rows, want 2: the batch in flight was sent again", got)
	}
	files := 0
	filepath.WalkDir(b.store, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && !msgdir.Ignored(de.Name()) {
			files++
		}
		return nil
	})
	if files != 2 {
		t.Errorf("B holds %d files, want 2", files)
	}
	if !strings.Contains(a.log(), "reconciled the batch that was in flight") {
		t.Errorf("A's log does not show the reconciliation:\n%s", a.log())
	}
}
