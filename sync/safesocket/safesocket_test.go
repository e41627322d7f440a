//go:build !windows

package safesocket

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenMode(t *testing.T) {
	path := filepath.Join(shortDir(t), "sub", "c.sock")
	ln, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v, want a 0600 socket", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("created dir mode %v, want 0700", di.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the bind directory was left behind: %v", entries)
	}
	// It accepts, and the peer is this process.
	go func() {
		c, err := Dial(context.Background(), path)
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cred, err := PeerCred(c)
	c.Close()
	if err != nil && !errors.Is(err, ErrNoPeerCred) {
		t.Fatal(err)
	}
	if err == nil && cred.UID != os.Getuid() {
		t.Errorf("peer uid %d, want %d", cred.UID, os.Getuid())
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("Close left the socket file: %v", err)
	}
}

func TestListenGroup(t *testing.T) {
	gid := os.Getgid()
	path := filepath.Join(shortDir(t), "g.sock")
	ln, err := Listen(path, Options{Group: strconv.Itoa(gid)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, _ := os.Lstat(path)
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660", fi.Mode().Perm())
	}
}

func TestStaleAndRunning(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "c.sock")
	// A socket file nobody listens on is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	// A second Listen while the first serves is refused, and leaves the
	// first one's socket in place.
	if _, err := Listen(path, Options{}); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Listen: %v, want ErrAlreadyRunning", err)
	}
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Errorf("the first listener lost its socket: %v", err)
	} else {
		c.Close()
	}
	ln.Close()
	// A file that is not a socket is never removed.
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := Listen(path, Options{}); err == nil {
		t.Error("Listen replaced a regular file")
	}
	if data, _ := os.ReadFile(path); string(data) != "x" {
		t.Error("the regular file was changed")
	}
}
