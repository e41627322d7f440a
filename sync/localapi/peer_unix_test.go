//go:build !windows

package localapi_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/chatsync/chatsync/sync/localapi"
	"github.com/chatsync/chatsync/sync/safesocket"
)

// TestOtherUserRefused connects as uid 65534 from a helper process: the
// 0600 socket refuses the connection, and with the mode opened up the peer
// credential check answers 403.
func TestOtherUserRefused(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("peer credentials are checked on linux and darwin only")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as another uid (run the tests as root to cover this)")
	}
	dir, err := os.MkdirTemp("/tmp", "la")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	// A copy of the test binary that the other user may run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "helper")
	if err := os.WriteFile(helper, data, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "c.sock")
	ln, err := safesocket.Listen(path, safesocket.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- localapi.New(fakeBackend{}, localapi.Options{Version: "v"}).Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	asNobody := func() string {
		cmd := exec.Command(helper)
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := asNobody(); !strings.Contains(out, "permission denied") {
		t.Errorf("uid 65534 on a 0600 socket: %q, want the connection refused", out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := asNobody(); !strings.HasPrefix(out, "status=403") || !strings.Contains(out, "uid 65534") {
		t.Errorf("uid 65534 on a 0666 socket: %q, want 403 from the peer check", out)
	}
}
