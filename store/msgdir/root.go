package msgdir

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Every read and write of the store goes through an os.Root opened on the
// store and, below it, through a handle on each directory opened one
// element at a time. A handle keeps naming the directory that was checked
// wherever that directory is moved, so a symbolic link swapped in at any
// moment cannot redirect a write, a rename or a removal outside the store:
// the Root refuses a link that leads out, and a directory that was swapped
// for anything else between the check and the open is refused as well.

// ErrUnsafePath is returned when a path would leave the store or pass
// through a symbolic link.
var ErrUnsafePath = errors.New("path leaves the message store or passes through a symbolic link")

func unsafePath(rel string) error { return fmt.Errorf("%w: %q", ErrUnsafePath, rel) }

// splitRel checks that rel, slash- or OS-separated, names a file below the
// store, and splits it into its directory elements and its file name.
func splitRel(rel string) (dirs []string, name string, err error) {
	clean := filepath.Clean(filepath.FromSlash(rel))
	if clean == "." || filepath.IsAbs(clean) || filepath.VolumeName(clean) != "" {
		return nil, "", unsafePath(rel)
	}
	elems := strings.Split(clean, string(filepath.Separator))
	for _, e := range elems {
		if e == "" || e == "." || e == ".." {
			return nil, "", unsafePath(rel)
		}
	}
	return elems[:len(elems)-1], elems[len(elems)-1], nil
}

// dirKey names the directory elems for the maps of a batch.
func dirKey(elems []string) string { return strings.Join(elems, "/") }

// openStore opens the store's root directory, creating it (mode 0700)
// first when create is set. The root itself may be reached through a
// symbolic link: it is what the user configured.
func openStore(root string, create bool) (*os.Root, error) {
	if create {
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, err
		}
	}
	return os.OpenRoot(root)
}

// openDir opens the directory elems below r, one element at a time. An
// element that is a symbolic link, or that is swapped for another file
// while it is being opened, is refused with ErrUnsafePath. With create,
// missing directories are made with mode 0700, and made reports whether
// any was. The caller closes the handle.
func openDir(r *os.Root, elems []string, create bool, rel string) (d *os.Root, made bool, err error) {
	cur, err := r.OpenRoot(".")
	if err != nil {
		return nil, false, err
	}
	for _, elem := range elems {
		next, m, err := openChild(cur, elem, create, rel)
		cur.Close()
		if err != nil {
			return nil, made, err
		}
		made = made || m
		cur = next
	}
	return cur, made, nil
}

// openChild opens the directory elem of parent, which must be a directory
// and not a link to one: it is checked through parent's handle, opened
// through it, and the opened directory must be the one that was checked.
func openChild(parent *os.Root, elem string, create bool, rel string) (*os.Root, bool, error) {
	made := false
	fi, err := parent.Lstat(elem)
	if create && errors.Is(err, fs.ErrNotExist) {
		err = parent.Mkdir(elem, 0o700)
		made = err == nil
		if err == nil || errors.Is(err, fs.ErrExist) {
			fi, err = parent.Lstat(elem)
		}
	}
	if err != nil {
		return nil, made, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, made, unsafePath(rel)
	}
	if !fi.IsDir() {
		return nil, made, fmt.Errorf("%q: %s is not a directory", rel, elem)
	}
	d, err := parent.OpenRoot(elem)
	if err != nil {
		if refused(err) || swapped(parent, elem, fi) {
			return nil, made, fmt.Errorf("%w: %q (%v)", ErrUnsafePath, rel, err)
		}
		return nil, made, err
	}
	got, err := d.Stat(".")
	if err == nil && !os.SameFile(fi, got) {
		err = unsafePath(rel) // replaced between the check and the open
	}
	if err != nil {
		d.Close()
		return nil, made, err
	}
	return d, made, nil
}

// refused reports whether err is the Root refusing a path: a symbolic link
// that leads out of it (the os package does not export that error) or a
// chain of links too long to follow.
func refused(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err.Error() == "path escapes from parent" || errors.Is(err, syscall.ELOOP)
}

// swapped reports whether elem of parent is no longer the directory fi.
func swapped(parent *os.Root, elem string, fi fs.FileInfo) bool {
	now, err := parent.Lstat(elem)
	return err == nil && (now.Mode()&fs.ModeSymlink != 0 || !os.SameFile(fi, now))
}

// checkTarget refuses to write name in d when it is a symbolic link: the
// rename would replace the link, not write where it points, but a link in
// the store is the user's and is left alone.
func checkTarget(d *os.Root, name, rel string) error {
	_, err := targetMode(d, name, rel)
	return err
}

// newFileMode is the mode of a message file chatsync creates.
const newFileMode fs.FileMode = 0o600

// targetMode is checkTarget that also returns the mode the new version of
// name gets: the permission bits of the regular file it replaces (a user
// who made a file readable by others keeps it so), newFileMode for a new
// file.
func targetMode(d *os.Root, name, rel string) (fs.FileMode, error) {
	fi, err := d.Lstat(name)
	switch {
	case err != nil:
		return newFileMode, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		return 0, unsafePath(rel)
	case fi.Mode().IsRegular():
		return fi.Mode().Perm(), nil
	}
	return newFileMode, nil
}

// createTemp writes data to a new hidden temporary file in d (ignored by
// the watcher), with mode 0600 while it is written and then mode,
// synced when sync is set, and returns its name and what it looks like
// before any rename. A failed write removes the file.
func createTemp(d *os.Root, data []byte, sync bool, mode fs.FileMode) (string, fs.FileInfo, error) {
	var f *os.File
	var name string
	var err error
	for try := 0; ; try++ {
		name = ".chatsync-" + strconv.FormatUint(rand.Uint64(), 36) + ".tmp"
		// O_EXCL: never follows a link, never reuses a file.
		f, err = d.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) || try >= 100 {
			break
		}
	}
	if err != nil {
		return "", nil, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.Remove(name)
		return "", nil, err
	}
	return name, fi, nil
}

// removeRegular removes name from d if it is there and is a regular file.
func removeRegular(d *os.Root, name, rel string) error {
	fi, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %q is not a regular file", ErrUnsafePath, rel)
	}
	if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
