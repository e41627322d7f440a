//go:build unix

package store

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// openNoFollow opens the state file, failing (ELOOP) rather than following
// a symbolic link that appeared after checkStateFile looked.
func openNoFollow(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag|syscall.O_NOFOLLOW, perm)
}

// checkPrivateDir refuses a state dir that another user could write, or
// that belongs to another user. The dir may be a symbolic link: what
// counts is the directory it leads to, which must belong to the user who
// runs chatsync (or to root) and be writable by no one else.
func checkPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	if !fi.IsDir() {
		return notPrivate("state dir %s is not a directory", dir)
	}
	shown := dir
	if lfi, err := os.Lstat(dir); err == nil && lfi.Mode()&os.ModeSymlink != 0 {
		target, _ := os.Readlink(dir)
		shown = fmt.Sprintf("%s (a symbolic link to %s)", dir, target)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		me := os.Geteuid()
		if int(st.Uid) != me && st.Uid != 0 {
			return notPrivate("state dir %s belongs to %s, not to %s who runs chatsync: run chatsync as %s, or give this user a daemon.state_dir of its own",
				shown, userName(int(st.Uid)), userName(me), userName(int(st.Uid)))
		}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return notPrivate("state dir %s can be written by other users (mode %04o), who could replace the state file: run `chmod go-w %s` and start again",
			shown, perm, ShellQuote(dir))
	}
	return nil
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
