package safesocket

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func peerCred(c *net.UnixConn) (Creds, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Creds{}, err
	}
	var cred *unix.Xucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return Creds{}, err
	}
	if serr != nil {
		return Creds{}, fmt.Errorf("LOCAL_PEERCRED: %w", serr)
	}
	out := Creds{UID: int(cred.Uid), GID: -1}
	for i := 0; i < int(cred.Ngroups) && i < len(cred.Groups); i++ {
		if i == 0 {
			out.GID = int(cred.Groups[0])
		}
		out.Groups = append(out.Groups, int(cred.Groups[i]))
	}
	return out, nil
}
