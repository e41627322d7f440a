package safesocket

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// Listen opens the control socket at path as an AF_UNIX socket (Windows 10
// and later). Windows has no file modes for it: access follows the ACL of
// its directory, which is created if missing. opts.Group is ignored. A
// socket file nobody listens on is replaced; if a daemon answers on it,
// Listen returns an error wrapping ErrAlreadyRunning.
func Listen(path string, opts Options) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if alive(path) {
			return nil, alreadyRunning(path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("control socket: remove the stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}
