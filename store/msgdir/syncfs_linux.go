package msgdir

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes the content of files durable. On Linux one syncfs(2) of
// the store's file system does it for all of them at once.
func syncFiles(root string, files []string) error {
	if len(files) == 0 {
		return nil
	}
	return syncfs(root)
}

// syncDirs makes renames and removals in dirs durable, with one syncfs(2).
func syncDirs(root string, dirs []string) error {
	if len(dirs) == 0 {
		return nil
	}
	return syncfs(root)
}

func syncfs(root string) error {
	f, err := os.Open(root)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
