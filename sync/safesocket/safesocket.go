// Package safesocket opens and dials chatsync's control socket: a unix
// domain socket that only its owner (and, optionally, one group) can use.
//
// Listen binds the socket at its final mode from the start: it binds in a
// fresh 0700 directory next to the final path, sets the mode (and group),
// and then links the socket into place, so there is no moment at which
// the socket exists with a looser mode. An existing socket file is removed
// only after a dial shows that nobody listens on it.
//
// PeerCred reads the credentials of the process at the other end of a
// connection (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS), so a server
// can refuse other users even when the socket mode was opened up.
//
// On Windows the socket is an AF_UNIX socket too (Windows 10 and later);
// modes and peer credentials are not available there and access is left
// to the directory's ACL.
package safesocket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrAlreadyRunning is returned by Listen when a server answers on the
// socket path.
var ErrAlreadyRunning = errors.New("chatsync is already running")

// ErrNoPeerCred is returned by PeerCred where the OS gives no peer
// credentials.
var ErrNoPeerCred = errors.New("peer credentials are not available on this system")

// Options configure Listen.
type Options struct {
	// Group, if set, is a group name or numeric id that may use the socket
	// too: the socket gets that group and mode 0660 instead of 0600.
	Group string
}

// Creds are the credentials of the process at the other end of a
// connection.
type Creds struct {
	UID int
	GID int
	// Groups are the peer's supplementary groups, where the OS says them.
	Groups []int
	PID    int // 0 when unknown
}

// InGroup reports whether the peer's primary or a supplementary group is gid.
func (c Creds) InGroup(gid int) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Dial connects to the socket at path.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// alive reports whether something accepts connections at path.
func alive(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func alreadyRunning(path string) error {
	return fmt.Errorf("%w: a daemon answers on %s (stop it with `chatsync service stop`, or give this one another daemon.socket)", ErrAlreadyRunning, path)
}

// PeerCred returns the credentials of the peer of c, a connection accepted
// from Listen's listener. It returns an error wrapping ErrNoPeerCred where
// the OS does not provide them.
func PeerCred(c net.Conn) (Creds, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Creds{}, fmt.Errorf("%w: not a unix connection (%T)", ErrNoPeerCred, c)
	}
	return peerCred(uc)
}
