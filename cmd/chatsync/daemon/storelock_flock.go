//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package daemon

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive flock on f without waiting. The lock belongs
// to the open file, so a second open in the same process conflicts too.
func tryLock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(lerr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch {
	case errors.Is(lerr, unix.EWOULDBLOCK):
		return errLockHeld
	case errors.Is(lerr, unix.ENOLCK), errors.Is(lerr, unix.EOPNOTSUPP), errors.Is(lerr, unix.ENOTSUP), errors.Is(lerr, unix.ENOSYS):
		return errors.Join(errNoLocks, lerr)
	}
	return lerr
}
