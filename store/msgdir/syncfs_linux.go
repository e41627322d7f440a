package msgdir

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes the content of the temporary files durable. On Linux one
// syncfs(2) of the store's file system does it for all of them at once.
func syncFiles(r *os.Root, files []tempFile) error {
	if len(files) == 0 {
		return nil
	}
	return syncfs(r)
}

// syncDirs makes renames and removals in dirs durable, with one syncfs(2).
func syncDirs(r *os.Root, dirs []*os.Root) error {
	if len(dirs) == 0 {
		return nil
	}
	return syncfs(r)
}

func syncfs(r *os.Root) error {
	f, err := r.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
