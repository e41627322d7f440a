package msgdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Op is one change of a batch: Data written to Rel, or Rel removed.
type Op struct {
	Rel    string
	Data   []byte
	Remove bool
}

// Apply performs ops in order, each as durable and as atomic as WriteAtomic
// and Remove make it, but syncing the file system a few times for the whole
// batch instead of twice per file: every new content is written to its
// temporary file first, all of them are made durable together, then the
// renames and removals happen in order and are made durable together. A
// page of 5000 incoming messages then costs a handful of syncs, not 10,000.
// It returns one Result per op.
func Apply(root string, ops []Op) []Result {
	res := make([]Result, len(ops))
	errs := make([]error, len(ops))
	defer func() {
		for i := range res {
			res[i].Err = errs[i]
		}
	}()
	temps := make([]string, len(ops))
	var written []string
	defer func() {
		for _, t := range temps {
			if t != "" {
				os.Remove(t) // left over only when its rename failed
			}
		}
	}()
	for i, op := range ops {
		if op.Remove {
			continue
		}
		path, err := Resolve(root, op.Rel)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(path), 0o700)
		}
		if err == nil {
			temps[i], res[i].Info, err = writeTemp(filepath.Dir(path), op.Data)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		written = append(written, temps[i])
	}
	if err := syncFiles(root, written); err != nil {
		for i, t := range temps {
			if t != "" && errs[i] == nil {
				errs[i] = err
			}
		}
		return res
	}
	dirs := map[string]bool{}
	for i, op := range ops {
		if errs[i] != nil {
			continue
		}
		path, err := Resolve(root, op.Rel)
		if err != nil {
			errs[i] = err
			continue
		}
		if op.Remove {
			errs[i] = removeRegular(path, op.Rel)
		} else {
			errs[i] = os.Rename(temps[i], path)
			if errs[i] == nil {
				temps[i] = ""
			}
		}
		dirs[filepath.Dir(path)] = true
	}
	list := make([]string, 0, len(dirs))
	for d := range dirs {
		list = append(list, d)
	}
	if err := syncDirs(root, list); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return res
}

// Result is the outcome of one Op.
type Result struct {
	Err error
	// Info describes the written file as chatsync wrote it, taken before
	// the rename: a change someone makes right after the rename is then
	// still seen as a change.
	Info fs.FileInfo
}

func writeTemp(dir string, data []byte) (string, fs.FileInfo, error) {
	tmp, err := os.CreateTemp(dir, ".chatsync-*.tmp")
	if err != nil {
		return "", nil, err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = tmp.Stat()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", nil, err
	}
	return tmp.Name(), fi, nil
}

func removeRegular(path, rel string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %q is not a regular file", ErrUnsafePath, rel)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
