//go:build !linux

package msgdir

import "os"

// syncFiles makes the content of the temporary files durable, one fsync
// each, each opened through the handle of its directory.
func syncFiles(r *os.Root, files []tempFile) error {
	for _, t := range files {
		f, err := t.dir.OpenFile(t.name, os.O_RDWR, 0)
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
func syncDirs(r *os.Root, dirs []*os.Root) error {
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}
