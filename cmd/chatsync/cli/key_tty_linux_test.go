package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chatsync/chatsync/crypto/seal"
)

// openPTY opens a pseudo-terminal: what the test writes to master is what
// a person types on the terminal slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open the terminal: %v", err)
	}
	return m, s
}

func echoOn(t *testing.T, f *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

func TestKeyImportOnATerminalDoesNotShowTheLine(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.key")
	k, err := seal.GenerateKeyFile(src)
	if err != nil {
		t.Fatal(err)
	}
	line := seal.Export(k)
	master, slave := openPTY(t)
	defer master.Close()
	var echoed bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&echoed, master); close(copied) }()

	var out, errb bytes.Buffer
	done := make(chan int, 1)
	dst := filepath.Join(dir, "b.key")
	go func() { done <- run([]string{"key", "import", "--key-file", dst}, "test", slave, &out, &errb) }()
	deadline := time.Now().Add(10 * time.Second)
	for echoOn(t, slave) {
		if time.Now().After(deadline) {
			t.Fatal("key import did not turn the terminal's echo off within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := master.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("key import did not return within 10s of the line")
	}
	if !echoOn(t, slave) {
		t.Error("key import left the terminal's echo off")
	}
	slave.Close()
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal did not close")
	}
	if code != 0 || out.String() != "added 1 key(s) to "+dst+"; the newest, fingerprint "+k.Fingerprint()+", encrypts\n" || errb.String() != "exported key: \n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	secret := strings.TrimPrefix(line, "chatsync-key:")
	if strings.Contains(echoed.String(), secret[len(secret)/2:]) || strings.Contains(out.String()+errb.String(), secret[len(secret)/2:]) {
		t.Errorf("the key was shown: terminal %q", echoed.String())
	}
}
