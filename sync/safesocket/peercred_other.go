//go:build !linux && !darwin

package safesocket

import "net"

func peerCred(c *net.UnixConn) (Creds, error) { return Creds{}, ErrNoPeerCred }
