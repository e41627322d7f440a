package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// startServerWith starts chatsync-server with the accounts given as
// address → password and returns its settings URL.
func startServerWith(t *testing.T, accounts map[string]string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real binaries; skipped with -short")
	}
	dir := t.TempDir()
	var b strings.Builder
	for addr, pw := range accounts {
		fmt.Fprintf(&b, "[[account]]\naddress = %q\npassword = %q\n\n", addr, pw)
	}
	path := filepath.Join(dir, "accounts.toml")
	os.WriteFile(path, []byte(b.String()), 0o600)
	cmd := exec.Command(bins.server, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--accounts", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("chatsync-server printed no address: %v", err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}

// serverRows counts the rows of the account's journal that are messages
// (not device reports: those that open under keyFile to a report).
func serverRows(t *testing.T, url, addr, pw, keyFile string) int {
	t.Helper()
	c, err := account.New(account.Config{Address: addr, Password: pw, SettingsURL: url})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.GetJournalEntries(context.Background(), account.JournalQuery{})
	if err != nil {
		return -1
	}
	kr, err := seal.LoadKeyring(keyFile)
	if err != nil {
		return -1
	}
	n := 0
	for _, r := range page.Entries {
		if en, err := kr.Open(r.Data, addr); err != nil || en.Op != seal.OpReport {
			n++
		}
	}
	return n
}

// cliStatus runs `chatsync status --json` against the daemon of config.
func cliStatus(t *testing.T, config string) apitype.Status {
	t.Helper()
	out, err := exec.Command(bins.chatsync, "--config", config, "status", "--json").Output()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == 3 {
		err = nil // an account does not run as it should: the JSON says which
	}
	var st apitype.Status
	if err != nil || json.Unmarshal(out, &st) != nil {
		t.Logf("chatsync status --json: %v: %s", err, out)
		return apitype.Status{}
	}
	return st
}

func accountStatus(st apitype.Status, addr string) (apitype.AccountStatus, bool) {
	for _, a := range st.Accounts {
		if a.Account == addr {
			return a, true
		}
	}
	return apitype.AccountStatus{}, false
}

func TestEditingTheConfigOfARunningDaemonAddsAnAccountLiveWithTheSamePID(t *testing.T) {
	const bob, bobPW = "bob@example.com", "bob's password"
	url := startServerWith(t, map[string]string{e2eAccount: e2ePassword, bob: bobPW})
	aliceKey := newKeyFile(t)
	dev := newE2EDevice(t, "A", &e2eServer{url: url}, aliceKey)
	dev.start()
	pid := dev.cmd.Process.Pid
	dev.write("carol/a1.json", e2eMsg("a1", "from alice"))
	eventually(t, 30*time.Second, "alice's message on the server", func() bool { return serverRows(t, url, e2eAccount, e2ePassword, aliceKey) == 1 }, dev)
	var aliceStarted time.Time
	eventually(t, 10*time.Second, "status over the socket", func() bool {
		a, ok := accountStatus(cliStatus(t, dev.config), e2eAccount)
		aliceStarted = a.Started
		return ok && !a.Started.IsZero()
	}, dev)

	// Bob's key file does not exist yet: he cannot start, the rest runs.
	bobDir := t.TempDir()
	bobStore, bobKey, bobPWFile := filepath.Join(bobDir, "store"), filepath.Join(bobDir, "bob.key"), filepath.Join(bobDir, "pw")
	os.MkdirAll(bobStore, 0o700)
	os.WriteFile(bobPWFile, []byte(bobPW+"\n"), 0o600)
	original, err := os.ReadFile(dev.config)
	if err != nil {
		t.Fatal(err)
	}
	bobBlock := fmt.Sprintf("\n[[account]]\naddress = %q\nsettings_url = %q\npassword_file = %q\nstore = %q\nkey_file = %q\npoll_interval = \"1s\"\n", bob, url, bobPWFile, bobStore, bobKey)
	saveByRename := func(text string) {
		t.Helper()
		tmp := filepath.Join(filepath.Dir(dev.config), ".config.toml.new")
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dev.config); err != nil {
			t.Fatal(err)
		}
	}

	// A broken edit first: refused, and status says which key on which line.
	broken := string(original) + "\nlog_levle = \"debug\"\n"
	saveByRename(broken)
	brokenLine := strings.Count(broken[:strings.Index(broken, "log_levle")], "\n") + 1
	eventually(t, 15*time.Second, "status to show the config error", func() bool {
		st := cliStatus(t, dev.config)
		for _, p := range st.ConfigProblems {
			if p.Key == "account[1].log_levle" && p.Line == brokenLine {
				return true
			}
		}
		return false
	}, dev)
	out, _ := exec.Command(bins.chatsync, "--config", dev.config, "status").Output()
	if !strings.Contains(string(out), "NOT reloaded") || !strings.Contains(string(out), fmt.Sprintf("line %d: account[1].log_levle", brokenLine)) {
		t.Errorf("`chatsync status` does not show the config error:\n%s", out)
	}

	// The fix adds bob.
	start := time.Now()
	saveByRename(string(original) + bobBlock)
	eventually(t, 15*time.Second, "bob in status", func() bool {
		st := cliStatus(t, dev.config)
		_, ok := accountStatus(st, bob)
		return ok && st.ConfigError == ""
	}, dev)
	// His key arrives; SIGHUP makes the daemon try him again at once.
	if out, err := exec.Command(bins.chatsync, "key", "generate", "--out", bobKey).CombinedOutput(); err != nil {
		t.Fatalf("key generate: %v\n%s", err, out)
	}
	if err := dev.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(e2eMsg("b1", "from bob"))
	if err := msgdir.WriteAtomic(bobStore, "carol/b1.json", data); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "bob's message on the server", func() bool { return serverRows(t, url, bob, bobPW, bobKey) == 1 }, dev)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("bob took %s to go live, want within 15s", d)
	}

	// Same process all along, and alice never restarted.
	select {
	case err := <-dev.exited:
		t.Fatalf("the daemon exited (%v); log:\n%s", err, dev.log())
	default:
	}
	if dev.cmd.Process.Pid != pid {
		t.Fatalf("pid changed")
	}
	a, _ := accountStatus(cliStatus(t, dev.config), e2eAccount)
	if !a.Started.Equal(aliceStarted) {
		t.Errorf("alice restarted: started %v, then %v", aliceStarted, a.Started)
	}
	if !strings.Contains(dev.log(), "config reloaded") || !strings.Contains(dev.log(), "reload requested") {
		t.Errorf("the log shows no file reload and SIGHUP reload:\n%s", dev.log())
	}
}
