//go:build !windows

package engine

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileID names the file fi describes among all files of the machine (its
// device and inode): a file replaced by another has another id, one
// rewritten in place (a VACUUM) keeps it.
func fileID(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
