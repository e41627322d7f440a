package msgdir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// The reads of the store go through a handle on it, r, and below it
// through a handle on each directory, opened as the writes open them
// (openChild): a directory that is a symbolic link, or that is swapped for
// one at any moment, is refused, so nothing outside the store is ever read,
// listed or looked at, and no file is read under another file's name.

// errNotRegular is a file that is not a regular file (a FIFO, a device, a
// directory): it is not opened, so it cannot block the reader.
var errNotRegular = errors.New("not a regular file")

// inDir runs f with a handle on the directory elems of r (r itself when
// elems is empty), each element opened through its parent's handle.
func inDir(r *os.Root, elems []string, rel string, f func(d *os.Root) error) error {
	d := r
	for _, elem := range elems {
		next, _, err := openChild(d, elem, false, rel)
		if d != r {
			d.Close()
		}
		if err != nil {
			return err
		}
		d = next
	}
	if d != r {
		defer d.Close()
	}
	return f(d)
}

// Lstat describes rel, a path below the store r, as os.Lstat does: a
// symbolic link at rel is described, not followed. A symbolic link in a
// directory on the way, even one swapped in meanwhile, fails with
// ErrUnsafePath.
func Lstat(r *os.Root, rel string) (fs.FileInfo, error) {
	elems, name, err := splitRel(rel)
	if err != nil {
		return nil, err
	}
	var fi fs.FileInfo
	err = inDir(r, elems, rel, func(d *os.Root) error {
		fi, err = d.Lstat(name)
		return err
	})
	return fi, err
}

// openTries is how many times Open looks at a file that is replaced
// between its look and its open before it gives up.
const openTries = 3

// Open opens rel, a path below the store r, for reading. It must be a
// regular file reached without any symbolic link: a link at rel or in a
// directory on the way, even one swapped in meanwhile, fails with
// ErrUnsafePath; anything else that is not a regular file is refused
// without being opened.
func Open(r *os.Root, rel string) (*os.File, error) {
	elems, name, err := splitRel(rel)
	if err != nil {
		return nil, err
	}
	var f *os.File
	err = inDir(r, elems, rel, func(d *os.Root) (err error) {
		f, err = openIn(d, name, rel)
		return err
	})
	return f, err
}

// openIn opens the regular file name of d, the directory of rel, as Open
// does.
func openIn(d *os.Root, name, rel string) (*os.File, error) {
	for try := 1; ; try++ {
		fi, err := d.Lstat(name)
		switch {
		case err != nil:
			return nil, err
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, unsafePath(rel)
		case !fi.Mode().IsRegular():
			return nil, errNotRegular
		}
		f, err := d.Open(name)
		if err != nil {
			if refused(err) {
				return nil, fmt.Errorf("%w: %q (%v)", ErrUnsafePath, rel, err)
			}
			return nil, err
		}
		got, err := f.Stat()
		if err == nil && os.SameFile(fi, got) {
			return f, nil // the regular file that is at rel, not a link
		}
		f.Close()
		if err != nil {
			return nil, err
		}
		// Replaced between the look and the open: by a writer that
		// renames a new version into place, or by a link.
		if try == openTries {
			return nil, fmt.Errorf("%w: %q is replaced whenever it is opened", ErrUnsafePath, rel)
		}
	}
}

// ReadFile reads rel, opened as Open opens it. With max > 0 it reads at
// most max+1 bytes, so that a huge file is never read whole: a file larger
// than max comes back cut one byte past max, which Parse refuses with
// ErrTooLarge.
func ReadFile(r *os.Root, rel string, max int64) ([]byte, error) {
	f, err := Open(r, rel)
	if err != nil {
		return nil, err
	}
	return readAll(f, max)
}

// readAll reads f, up to max+1 bytes when max > 0, and closes it.
func readAll(f *os.File, max int64) ([]byte, error) {
	defer f.Close()
	var src io.Reader = f
	if max > 0 {
		src = io.LimitReader(f, max+1)
	}
	return io.ReadAll(src)
}

// WalkDir walks the directory dir below the store r ("" for the whole
// store) as filepath.WalkDir does: fn is called with dir itself (as given)
// and then with every file and directory below it, by its slash-separated
// path relative to the store; a directory's entries are in name order, a
// directory's name taken with its trailing slash, so the files come in the
// byte order of their paths; fs.SkipDir and
// fs.SkipAll work as they do there, and a directory that cannot be read is
// passed to fn a second time with the error. Symbolic links are passed to
// fn and never followed.
//
// Every directory is opened through its parent's handle and must be the
// directory that was listed: one swapped for a link while the walk runs is
// passed to fn with an error that wraps ErrUnsafePath, and nothing outside
// the store is ever listed.
func WalkDir(r *os.Root, dir string, fn func(rel string, d fs.DirEntry, err error) error) error {
	var elems []string
	if dir != "" {
		parents, name, err := splitRel(dir)
		if err != nil {
			return fn(dir, nil, err)
		}
		elems = append(parents, name)
	}
	called := false // fn has seen dir
	err := inDir(r, elems, dir, func(d *os.Root) error {
		fi, err := d.Stat(".")
		if err != nil {
			return err
		}
		de := fs.FileInfoToDirEntry(fi)
		called = true
		if err := fn(dir, de, nil); err != nil {
			return err
		}
		return walkDir(d, dir, de, fn)
	})
	if err != nil && !called {
		err = fn(dir, nil, err)
	}
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

// walkDir calls fn for everything in d, the directory rel whose entry is de.
func walkDir(d *os.Root, rel string, de fs.DirEntry, fn func(string, fs.DirEntry, error) error) error {
	entries, err := readDir(d)
	if err != nil {
		if err := fn(rel, de, err); err != nil {
			if err == fs.SkipDir {
				return nil
			}
			return err
		}
	}
	for _, e := range entries {
		p := path.Join(rel, e.Name())
		if err := fn(p, e, nil); err != nil {
			if err == fs.SkipDir {
				if e.IsDir() {
					continue
				}
				return nil // the rest of this directory is skipped
			}
			return err
		}
		if !e.IsDir() {
			continue
		}
		child, _, err := openChild(d, e.Name(), false, p)
		if err == nil {
			err = walkDir(child, p, e, fn)
			child.Close()
			if err == fs.SkipDir {
				err = nil
			}
		} else if err = fn(p, e, err); err == fs.SkipDir {
			err = nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readDir lists d in walk order: by name, a directory's name taken with
// the slash that follows it, so that a walk visits paths in their byte
// order ("a.json" before "a/x.json") and can be merged with a sorted index.
// Each entry's Info is taken through the handle when it is listed.
func readDir(d *os.Root) ([]fs.DirEntry, error) {
	f, err := d.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	key := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(key(a), key(b)) })
	return entries, err
}
