//go:build !windows

package safesocket

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
)

// Listen opens the control socket at path: mode 0600, or 0660 with
// opts.Group. The directory is created (0700) if missing. A socket file
// left by a daemon that died is replaced; if a daemon answers on it,
// Listen returns an error wrapping ErrAlreadyRunning. Closing the listener
// removes the socket file, unless another process replaced it meanwhile.
func Listen(path string, opts Options) (net.Listener, error) {
	gid := -1
	if opts.Group != "" {
		g, err := lookupGroup(opts.Group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w: create %s for this user (the packaged service's unit does, with RuntimeDirectory=), or set daemon.socket to a path it may write", err, dir)
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}

	// Bind inside a private directory, set the final mode, then link into
	// place: the socket never exists at path with another mode.
	tmp, err := os.MkdirTemp(dir, ".cs")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpSock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, explainBind(path, err))
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		return nil, err
	}
	mode := fs.FileMode(0o600)
	if gid >= 0 {
		if err := os.Lchown(tmpSock, -1, gid); err != nil {
			return fail(fmt.Errorf("control socket: give it group %s: %w", opts.Group, err))
		}
		mode = 0o660
	}
	if err := os.Chmod(tmpSock, mode); err != nil {
		return fail(fmt.Errorf("control socket: %w", err))
	}
	if err := os.Link(tmpSock, path); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			// A file system without hard links for sockets: rename.
			if err := os.Rename(tmpSock, path); err != nil {
				return fail(fmt.Errorf("control socket: %w", err))
			}
		} else if alive(path) {
			return fail(alreadyRunning(path))
		} else {
			return fail(fmt.Errorf("control socket: %s appeared while starting; start again", path))
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("control socket: %w", err))
	}
	return &listener{UnixListener: ln, path: path, fi: fi}, nil
}

// clearStale removes path if it is a socket nobody listens on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket: remove it or set another daemon.socket", path)
	}
	if alive(path) {
		return alreadyRunning(path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: remove the stale %s: %w", path, err)
	}
	return nil
}

func explainBind(path string, err error) error {
	// sun_path is 108 bytes on Linux, 104 on macOS, with the temp dir
	// name about as long as the socket's own name.
	if len(path) > 100 {
		return fmt.Errorf("%w (the path is %d bytes; unix socket paths must be shorter than about 100: set a shorter daemon.socket)", err, len(path))
	}
	return err
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("control socket: daemon.socket_group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("control socket: daemon.socket_group %q has gid %q", name, g.Gid)
	}
	return n, nil
}

// listener removes its socket file on Close if the file is still its own.
type listener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo
	once sync.Once
}

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}
