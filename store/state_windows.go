//go:build windows

package store

import "os"

// openNoFollow opens the state file. Windows has no O_NOFOLLOW; the Lstat
// of checkStateFile is the check there.
func openNoFollow(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

// checkPrivateDir does nothing on Windows, where who may write a
// directory is a matter of its ACL, not of mode bits, and this check does
// not read ACLs.
func checkPrivateDir(dir string) error { return nil }
