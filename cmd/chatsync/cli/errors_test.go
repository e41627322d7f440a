package cli

// What a user sees when something is wrong: exit status and the one line
// on stderr, which says what happened and what to do, once.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runWith runs the command line with g.dial replaced.
func runWith(t *testing.T, dial func(ctx context.Context, path string) (net.Conn, error), args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{version: "test", stdin: strings.NewReader(""), stdout: &out, stderr: &errb, dial: dial}
	code := execute(g, args)
	return code, out.String(), errb.String()
}

// wantOneLine fails unless s is exactly one line.
func wantOneLine(t *testing.T, what, s string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("%s: want one line on stderr, got %q", what, s)
	}
}

// A socket of another user, mode 0600: permission denied, with the owner
// and the socket_group fix, never "not running". (The test runs as any
// user, root included, who may open every socket: the dial's error is
// the one the kernel gives another user.)
func TestSocketPermissionDeniedNamesTheOwnerAndTheFix(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o600)
	owner := "root"
	if u, err := user.Current(); err == nil {
		owner = u.Username
	}
	if nobody, err := user.Lookup("nobody"); err == nil && os.Getuid() == 0 {
		if err := os.Chown(sock, 65534, 65534); err == nil {
			owner = nobody.Username
		}
	}
	denied := func(ctx context.Context, path string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: path, Net: "unix"}, Err: os.NewSyscallError("connect", syscall.EACCES)}
	}
	code, out, errs := runWith(t, denied, "--socket", sock, "status")
	want := "chatsync: permission denied on the control socket " + sock + ": it is " + owner + "'s (mode 0600, owner only): run chatsync as " + owner
	if code != 1 || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, `set socket_group = "chatsync" in [daemon] of the daemon's config, restart it, and join that group`) || strings.Contains(errs, "not running") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q... with the socket_group fix", code, out, errs, want)
	}
	wantOneLine(t, "permission denied", errs)

	// Open to a group the user is not in: join it.
	os.Chmod(sock, 0o660)
	_, _, errs = runWith(t, denied, "--socket", sock, "status")
	if !strings.Contains(errs, "open to the group ") || !strings.Contains(errs, "(mode 0660): join that group (sudo usermod -aG ") {
		t.Errorf("group socket: stderr %q; want the group to join", errs)
	}
}

// A socket nothing answers on (left by a daemon that stopped): that is
// when "chatsync is not running" is known, and said.
func TestStaleSocketSaysNotRunning(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	code, out, errs := chatsync(t, "--socket", sock, "status")
	want := "chatsync is not running (nothing answers on " + sock + ", a socket left by a daemon that stopped): start it with `chatsync run` or `chatsync service start`\n"
	if code != 1 || out != "" || errs != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, want)
	}
}

// $XDG_RUNTIME_DIR set for the command but not for the daemon: the
// default paths differ, and the message says where the daemon's socket is.
func TestSocketElsewhereIsFound(t *testing.T) {
	dir := shortDir(t)
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	daemonSock := filepath.Join(state, "chatsync.sock") // the daemon's default without $XDG_RUNTIME_DIR
	ln, err := net.Listen("unix", daemonSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	runtimeDir := filepath.Join(dir, "run")
	os.MkdirAll(runtimeDir, 0o700)
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)
	t.Setenv("CHATSYNC_SOCKET", "")
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte("[daemon]\nstate_dir = \""+state+"\"\n\n[[account]]\naddress = \"alice@example.com\"\nsettings_url = \"https://example.com/settings.phtml\"\npassword = \"x\"\nstore = \""+filepath.Join(dir, "store")+"\"\nkey_file = \""+filepath.Join(dir, "k.key")+"\"\n"), 0o600)
	code, out, errs := chatsync(t, "--config", cfg, "status")
	tried := filepath.Join(runtimeDir, "chatsync.sock")
	if code != 1 || out != "" ||
		!strings.Contains(errs, "no control socket at "+tried+" (the default: "+cfg+" sets no daemon.socket), but there is one at "+daemonSock+" ($XDG_RUNTIME_DIR is set here but was not for the daemon): pass --socket "+daemonSock) {
		t.Errorf("exit %d, stdout %q, stderr %q; want the path tried and the socket found", code, out, errs)
	}
	if !strings.HasSuffix(strings.TrimSpace(errs), "set daemon.socket in the config so both sides agree") {
		t.Errorf("stderr %q; want the lasting fix too", errs)
	}
}

// A settings_url nothing listens on: the host, not the request URL with
// the device id and the query, and what to check.
func TestNetworkErrorNamesTheHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close() // nothing listens there now
	td := startDaemon(t, "http://"+host+"/settings.phtml")
	code, out, errs := td.cli(t, "account", "identity")
	want := "chatsync: account get_identity: cannot reach " + host + ": dial tcp " + host + ": connect: connection refused: check settings_url and the network\n"
	if code != 1 || out != "" || errs != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, want)
	}
	// status shows the engine's error, the same way.
	waitFor(t, 10*time.Second, "the poll to fail", func() bool {
		_, out, _ := td.cli(t, "status")
		return strings.Contains(out, "cannot reach")
	})
	_, out, _ = td.cli(t, "status")
	l := lineWith(out, "cannot reach")
	for _, bad := range []string{"?action=", "except_uuid", "urn:uuid", "urn%3Auuid"} {
		if strings.Contains(l, bad) {
			t.Errorf("status names the request (%q): %s", bad, l)
		}
	}
	if !strings.Contains(l, "cannot reach "+host) || strings.Count(l, "check settings_url") != 1 {
		t.Errorf("status: %q; want the host and the advice once", l)
	}
}

func lineWith(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// A wrong password: the advice to check the password file, once.
func TestAuthFailureHintOnce(t *testing.T) {
	td := startDaemonWith(t, startServer(t, false), "wrong", true)
	code, out, errs := td.cli(t, "account", "identity")
	if code != 1 || out != "" || strings.Count(errs, "check password_file") != 1 || !strings.Contains(errs, "authentication failed for "+testAccount) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and check password_file once", code, out, errs)
	}
	wantOneLine(t, "auth failure", errs)
}

// A key file that does not exist: the account cannot start, and status
// says how to make or import the key once.
func TestMissingKeyHintOnce(t *testing.T) {
	td := startDaemonWith(t, startServer(t, false), "pw-alice", false)
	_, out, _ := td.cli(t, "status")
	l := lineWith(out, "cannot start")
	if !strings.Contains(l, "k.key does not exist") || strings.Count(l, "chatsync key generate") != 1 || strings.Count(l, "chatsync key import") != 1 {
		t.Errorf("status: %q; want the missing key and each way to make it once", l)
	}
}

// Flags may stand anywhere: --json before the command is the command's.
func TestJSONBeforeTheCommand(t *testing.T) {
	td := startDaemon(t, startServer(t, false))
	code, out, errs := td.cli(t, "--json", "status")
	if code != 0 || !strings.HasPrefix(out, "{") || !strings.Contains(out, `"accounts"`) {
		t.Errorf("chatsync --json status: exit %d, stdout %q, stderr %q; want exit 0 and JSON", code, out, errs)
	}
	code, out, errs = td.cli(t, "--json", "account", "identity")
	if code != 0 || !strings.HasPrefix(out, "{") {
		t.Errorf("chatsync --json account identity: exit %d, stdout %q, stderr %q; want exit 0 and JSON", code, out, errs)
	}
	// A command that prints no data says so, as a usage error.
	code, _, errs = chatsync(t, "--json", "key", "generate", "--out", filepath.Join(t.TempDir(), "k.key"))
	if code != 2 || errs != "chatsync: `chatsync key generate` has no --json: it prints no data (see `chatsync key generate --help`)\n" {
		t.Errorf("chatsync --json key generate: exit %d, stderr %q; want exit 2 and the reason", code, errs)
	}
}

// The config's cross-field mistakes point at the line of the key.
func TestConfigCheckPointsAtTheKeyLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.key"), nil, 0o600)
	cfg := filepath.Join(dir, "config.toml")
	text := "[daemon]\nstate_dir = \"" + filepath.Join(dir, "state") + "\"\n" + // 1-2
		"\n[[account]]\n" + // 4
		"address = \"alice@example.com\"\n" + // 5
		"settings_url = \"https://example.com/settings.phtml\"\npassword = \"x\"\n" + // 6-7
		"store = \"" + filepath.Join(dir, "store") + "\"\n" + // 8
		"key_file = \"" + filepath.Join(dir, "k.key") + "\"\n" + // 9
		"\n[[account]]\n" + // 11
		"settings_url = \"https://example.com/settings.phtml\"\npassword = \"x\"\n" + // 12-13
		"address = \"Alice@example.com\"\n" + // 14
		"key_file = \"" + filepath.Join(dir, "k.key") + "\"\n" + // 15
		"store = \"" + filepath.Join(dir, "store", "sub") + "\"\n" // 16
	os.WriteFile(cfg, []byte(text), 0o600)
	code, out, _ := chatsync(t, "--config", cfg, "config", "check")
	if code != 1 {
		t.Errorf("config check: exit %d, want 1", code)
	}
	for _, want := range []string{
		cfg + ": line 14: error: account[2].address: Alice@example.com is already configured in account[1]",
		cfg + ": line 16: error: account[2].store: " + filepath.Join(dir, "store", "sub") + " overlaps the store of account[1]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config check: stdout lacks %q:\n%s", want, out)
		}
	}
}

// --version prints what `chatsync version` prints.
func TestVersionFlag(t *testing.T) {
	code, out, errs := chatsync(t, "--version")
	_, want, _ := chatsync(t, "version")
	if code != 0 || errs != "" || out != want || !strings.HasPrefix(out, "chatsync test (go") {
		t.Errorf("chatsync --version: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out, errs, want)
	}
}

// `account dnd on --help` names the value of --for, not `dnd off`.
func TestDndForHelp(t *testing.T) {
	code, out, _ := chatsync(t, "account", "dnd", "on", "--help")
	l := lineWith(out, "--for")
	for strings.Contains(l, "chatsync account dnd on --for") { // the example line
		out = strings.Replace(out, l, "", 1)
		l = lineWith(out, "--for")
	}
	if code != 0 || !strings.Contains(l, "--for DURATION") || strings.Contains(l, "--for dnd off") || !strings.Contains(l, "default: until dnd off") {
		t.Errorf("exit %d, --for line %q; want `--for DURATION` and its default", code, l)
	}
}

// `demo --keep DIR` a second time on the same DIR starts it afresh; a
// directory that holds something else is refused at once.
func TestDemoKeepTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo twice")
	}
	dir := filepath.Join(shortDir(t), "demo")
	for i := range 2 {
		var out, errb lockedBuffer
		g := &globals{version: "test", stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runDemo(ctx, g, dir, "json", 30*time.Second) }()
		deadline := time.After(60 * time.Second)
	wait:
		for {
			select {
			case err := <-done:
				cancel()
				t.Fatalf("run %d: the demo ended before it was done: %v\nstdout:\n%s\nstderr:\n%s", i+1, err, out.String(), errb.String())
			case <-deadline:
				cancel()
				t.Fatalf("run %d: not done after 60s\nstdout:\n%s", i+1, out.String())
			case <-time.After(50 * time.Millisecond):
				if strings.Contains(out.String(), "keeps running until Ctrl-C") {
					break wait
				}
			}
		}
		if i == 1 {
			// While it runs, a third one on the same DIR is refused.
			code, _, errs := chatsync(t, "demo", "--keep", dir)
			if code != 1 || !strings.HasPrefix(errs, "chatsync: a demo still runs in "+dir) {
				t.Errorf("demo --keep while one runs: exit %d, stderr %q", code, errs)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if i == 1 && !strings.HasPrefix(out.String(), dir+" held an earlier demo: starting afresh\n") {
			t.Errorf("second run: stdout does not say it starts afresh:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "Done: A and B hold the same 4 messages.") {
			t.Errorf("run %d: stdout:\n%s", i+1, out.String())
		}
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	code, _, errs := chatsync(t, "demo", "--keep", other)
	if code != 2 || errs != "chatsync: --keep "+other+": the directory is not empty and holds no earlier demo: give a new or empty directory\n" {
		t.Errorf("demo --keep on a directory of other files: exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(other, "notes.txt")); err != nil {
		t.Errorf("the demo touched a directory that is not its own: %v", err)
	}
}
