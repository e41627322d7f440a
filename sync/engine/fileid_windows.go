package engine

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileID names the file fi describes by its creation time: a file
// replaced by another has another, one rewritten in place (a VACUUM)
// keeps it.
func fileID(fi fs.FileInfo) string {
	if d, ok := fi.Sys().(*syscall.Win32FileAttributeData); ok {
		return fmt.Sprintf("c%d:%d", d.CreationTime.HighDateTime, d.CreationTime.LowDateTime)
	}
	return ""
}
