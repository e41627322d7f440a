package cli

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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

func TestServiceInstallRefusesABrokenConfig(t *testing.T) {
	path, _ := writeConfig(t)
	os.WriteFile(path, []byte("[daemon]\nlog_level = \"loud\"\n"), 0o600)
	var out, errb bytes.Buffer
	code := run([]string{"service", "install", "--user", "--config", path}, "test", strings.NewReader(""), &out, &errb)
	if code != ExitFailure || !strings.Contains(errb.String(), "fix the config first") || !strings.Contains(errb.String(), "daemon.log_level") {
		t.Errorf("exit %d, stderr:\n%s", code, errb.String())
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
