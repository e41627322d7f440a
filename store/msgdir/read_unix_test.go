//go:build !windows

package msgdir

import (
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenRefusesAFIFOWithoutBlocking(t *testing.T) {
	r, root := linkedStore(t)
	if err := syscall.Mkfifo(filepath.Join(root, "conv", "fifo.json"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, err := ReadFile(r, "conv/fifo.json", 0); err == nil || err.Error() != "not a regular file" {
		t.Errorf("ReadFile of a FIFO: %v, want not a regular file", err)
	}
}
