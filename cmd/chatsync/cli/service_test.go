package cli

import (
	"bytes"
	"fmt"
	ks "github.com/kardianos/service"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
)

// writeConfig writes a one-account config whose server is unreachable (the
// account backs off; the daemon runs) and returns its path and socket.
func writeConfig(t *testing.T) (string, string) {
	t.Helper()
	dir := shortDir(t)
	key := filepath.Join(dir, "k.key")
	if _, err := seal.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "store"), 0o700)
	sock := filepath.Join(dir, "s.sock")
	path := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\n\n[[account]]\naddress = %q\nsettings_url = \"http://127.0.0.1:1/settings.phtml\"\npassword_file = %q\nstore = %q\nkey_file = %q\n",
		filepath.Join(dir, "state"), sock, testAccount, filepath.Join(dir, "pw"), filepath.Join(dir, "store"), key)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, sock
}

// The kardianos program: Start returns at once with the daemon running;
// Stop waits for it to save its state and close its socket.
func TestServiceProgramStartReturnsAtOnceAndStopFlushes(t *testing.T) {
	path, sock := writeConfig(t)
	var stderr bytes.Buffer
	p := &program{g: &globals{configPath: path, version: "test", stderr: &lockedWriter{w: &stderr}}}
	start := time.Now()
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %s; it must return at once", d)
	}
	waitFor(t, 10*time.Second, "the socket to answer", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	start = time.Now()
	if err := p.Stop(nil); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > stopTimeout {
		t.Errorf("Stop took %s", d)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Error("the socket is still there after Stop")
	}
	// The state is closed: a second daemon can open it at once.
	p2 := &program{g: &globals{configPath: path, version: "test", stderr: &lockedWriter{w: &bytes.Buffer{}}}}
	if err := p2.Start(nil); err != nil {
		t.Fatalf("a new daemon cannot start on the state after Stop: %v", err)
	}
	if err := p2.Stop(nil); err != nil {
		t.Fatal(err)
	}
}

func TestServiceProgramStartFailsOnABrokenConfig(t *testing.T) {
	path, _ := writeConfig(t)
	os.WriteFile(path, []byte("[daemon]\nlog_level = \"loud\"\n"), 0o600)
	var stderr bytes.Buffer
	p := &program{g: &globals{configPath: path, stderr: &lockedWriter{w: &stderr}}}
	if err := p.Start(nil); err == nil {
		t.Fatal("Start accepted a broken config")
	}
	if !strings.Contains(stderr.String(), "daemon.log_level") {
		t.Errorf("the log does not name the key:\n%s", stderr.String())
	}
}

func TestConfigCheckPrintsEveryProblemAtOnce(t *testing.T) {
	path, _ := writeConfig(t)
	data, _ := os.ReadFile(path)
	text := strings.Replace(string(data), "[daemon]\n", "[daemon]\nlog_level = \"loud\"\ncolour = \"blue\"\n", 1) + "poll_interval = \"soon\"\n"
	os.WriteFile(path, []byte(text), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"config", "check", "--config", path}, "test", strings.NewReader(""), &out, &errb)
	if code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	for _, want := range []string{"line 2: error: daemon.log_level", "line 3: error: daemon.colour: unknown key", "line 13: error: account[1].poll_interval"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check does not print %q:\n%s", want, out.String())
		}
	}
}

// onPlatform makes the service commands see the service manager platform
// (as kardianos names it) for the rest of the test.
func onPlatform(t *testing.T, platform string) {
	t.Helper()
	old := servicePlatform
	servicePlatform = func() string { return platform }
	t.Cleanup(func() { servicePlatform = old })
}

func TestServiceInstallRefusesABrokenConfig(t *testing.T) {
	onPlatform(t, "linux-systemd")
	path, _ := writeConfig(t)
	os.WriteFile(path, []byte("[daemon]\nlog_level = \"loud\"\n"), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"service", "install", "--user", "--config", path}, "test", strings.NewReader(""), &out, &errb)
	if code != ExitFailure || !strings.Contains(errb.String(), "fix the config first") || !strings.Contains(errb.String(), "daemon.log_level") {
		t.Errorf("exit %d, stderr:\n%s", code, errb.String())
	}
}

// On a Linux without systemd, install refuses with one line that says why
// and what to run instead, and writes nothing (kardianos would write a SysV
// script whose links its uninstall leaves behind).
func TestServiceInstallRefusesWithoutSystemd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd is Linux's")
	}
	onPlatform(t, "unix-systemv")
	root := t.TempDir()
	sysvRoot = root
	t.Cleanup(func() { sysvRoot = "/" })
	path, _ := writeConfig(t)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "chatsync: this system does not run systemd (it has SysV init), and `chatsync service` manages a system service with systemd only; nothing was changed: start `chatsync run --config " + path + "` from your init system yourself, or in the foreground\n"},
		{[]string{"--user"}, "chatsync: this system does not run systemd (it has SysV init), and `chatsync service` manages a user service (systemctl --user) with systemd only; nothing was changed: start `chatsync run --config " + path + "` from your init system yourself, or in the foreground\n"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"service", "install", "--config", path}, tc.flags...)
		code := run(args, "test", strings.NewReader(""), &out, &errb)
		if code != ExitFailure || errb.String() != tc.want || out.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", args, code, out.String(), errb.String(), tc.want)
		}
	}
	onPlatform(t, "linux-openrc")
	var out, errb bytes.Buffer
	if code := run([]string{"service", "start", "--config", path}, "test", strings.NewReader(""), &out, &errb); code != ExitFailure || !strings.Contains(errb.String(), "does not run systemd (it has OpenRC)") {
		t.Errorf("service start on OpenRC: exit %d, stderr:\n%s", code, errb.String())
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the refused install wrote %v", entries)
	}
}

// uninstall on a Linux without systemd removes what an older chatsync's
// install made there: the init script and its /etc/rc?.d links, also the
// links an older uninstall left dangling; nothing else.
func TestServiceUninstallRemovesSysVScriptAndLinks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SysV init is Linux's")
	}
	onPlatform(t, "unix-systemv")
	root := t.TempDir()
	sysvRoot = root
	t.Cleanup(func() { sysvRoot = "/" })
	path, _ := writeConfig(t)
	mk := func(rel string) string { p := filepath.Join(root, rel); os.MkdirAll(filepath.Dir(p), 0o755); return p }
	script := mk("etc/init.d/chatsync")
	os.WriteFile(script, []byte("#!/bin/sh\n# Description:       chatsync: keeps a SIP account's chat history identical on all your devices, end-to-end encrypted\n"), 0o755)
	var links []string
	for _, l := range []string{"2/S50", "3/S50", "4/S50", "5/S50", "0/K02", "1/K02", "6/K02"} {
		p := mk("etc/rc" + l[:1] + ".d/" + l[2:] + "chatsync")
		os.Symlink("/etc/init.d/chatsync", p)
		links = append(links, p)
	}
	other := mk("etc/rc2.d/S01ssh")
	os.Symlink("/etc/init.d/ssh", other)
	mine := mk("etc/rc3.d/S20chatsync")
	os.Symlink("/etc/init.d/chatsync-mine", mine)

	var out, errb bytes.Buffer
	code := run([]string{"service", "uninstall", "--config", path}, "test", strings.NewReader(""), &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
	for _, p := range append([]string{script}, links...) {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
		if !strings.Contains(out.String(), "removed "+p+"\n") {
			t.Errorf("the output does not name %s:\n%s", p, out.String())
		}
	}
	for _, p := range []string{other, mine} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s, not chatsync's, was removed", p)
		}
	}
	if !strings.HasSuffix(out.String(), "uninstall: done (the SysV init script and its links)\n") {
		t.Errorf("stdout:\n%s", out.String())
	}

	// Only dangling links left (what the old uninstall did): they go too.
	os.Symlink("/etc/init.d/chatsync", links[0])
	out.Reset()
	if code := run([]string{"service", "uninstall", "--config", path}, "test", strings.NewReader(""), &out, &errb); code != ExitOK || out.String() != "removed "+links[0]+"\nuninstall: done (the SysV init script and its links)\n" {
		t.Errorf("dangling links: exit %d, stdout:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"service", "uninstall", "--config", path}, "test", strings.NewReader(""), &out, &errb); code != ExitOK || !strings.Contains(out.String(), "no chatsync system service is installed here") {
		t.Errorf("nothing installed: exit %d, stdout:\n%s", code, out.String())
	}

	// A script chatsync did not write stays, and so do its links.
	os.WriteFile(script, []byte("#!/bin/sh\n# the admin's own\n"), 0o755)
	os.Symlink("/etc/init.d/chatsync", links[0])
	errb.Reset()
	code = run([]string{"service", "uninstall", "--config", path}, "test", strings.NewReader(""), &out, &errb)
	if code != ExitFailure || !strings.Contains(errb.String(), script+" was not written by chatsync service install: it is left as it is") {
		t.Errorf("foreign script: exit %d, stderr:\n%s", code, errb.String())
	}
	for _, p := range []string{script, links[0]} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
}

// lockedWriter serialises writes from the daemon's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// service status says the state in a word for --json and a line with
// what to do; the manager's answer decides which.
func TestServiceStateWordsWhatTheManagerSays(t *testing.T) {
	sf := &serviceFlags{user: true}
	for _, tc := range []struct {
		st         ks.Status
		err        error
		state, has string
	}{
		{ks.StatusUnknown, ks.ErrNotInstalled, "not installed", "is not installed (chatsync service install --user)"},
		{ks.StatusStopped, nil, "stopped", "is installed and stopped (chatsync service start --user)"},
		{ks.StatusRunning, nil, "running", "is running; `chatsync status` shows what it does"},
	} {
		state, line, err := serviceState(sf, fakeManager{tc.st, tc.err})
		if err != nil || state != tc.state || !strings.Contains(line, tc.has) {
			t.Errorf("manager says %v, %v: %q, %q, %v; want %q and a line with %q", tc.st, tc.err, state, line, err, tc.state, tc.has)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"service", "status", "--help"}, "test", strings.NewReader(""), &out, &errb); code != ExitOK || !strings.Contains(out.String(), "--json") {
		t.Errorf("service status --help: exit %d, no --json in:\n%s", code, out.String())
	}
}

type fakeManager struct {
	st  ks.Status
	err error
}

func (f fakeManager) Status() (ks.Status, error) { return f.st, f.err }
