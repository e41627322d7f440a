//go:build !linux

package msgdir

import "os"

// syncFiles makes the content of files durable, one fsync each.
func syncFiles(root string, files []string) error {
	for _, name := range files {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncDirs makes renames and removals in dirs durable.
func syncDirs(root string, dirs []string) error {
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}
