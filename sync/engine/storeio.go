package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/chatsync/chatsync/store/msgdir"
)

// Every read of the store goes through one handle on its directory, kept
// open, and through msgdir, which opens each directory below it through
// its parent's handle and refuses a symbolic link anywhere in a path
// (msgdir.ErrUnsafePath): a link swapped into the store cannot lead a read
// outside it, nor make the engine describe another file than the one it
// names. The handle is opened again when rootPresent finds another
// directory at the store's path (a volume mounted there, the directory
// replaced). The handles of the directories below it are kept too
// (msgdir.Dirs), and looked at again at every use.

// storeHandle is the store's handle and the directory handles kept below.
type storeHandle struct {
	r    *os.Root
	dirs *msgdir.Dirs
}

// storeRoot returns the handle on the store, opening it if need be.
func (e *Engine) storeRoot() (*os.Root, *msgdir.Dirs, error) {
	if e.root.r == nil {
		r, err := os.OpenRoot(e.opts.Store)
		if err != nil {
			return nil, nil, err
		}
		e.root = storeHandle{r: r, dirs: msgdir.NewDirs(r)}
	}
	return e.root.r, e.root.dirs, nil
}

// checkRoot drops the handle on the store if fi, the directory at the
// store's path now, is not the directory it holds.
func (e *Engine) checkRoot(fi fs.FileInfo) {
	if e.root.r == nil {
		return
	}
	if got, err := e.root.r.Stat("."); err == nil && os.SameFile(got, fi) {
		return
	}
	e.closeRoot()
}

func (e *Engine) closeRoot() {
	if e.root.r != nil {
		e.root.dirs.Close()
		e.root.r.Close()
		e.root = storeHandle{}
	}
}

// lstat describes the file rel of the store as os.Lstat does (a link at
// rel is described, not followed); a link in a directory on the way is
// refused with msgdir.ErrUnsafePath.
func (e *Engine) lstat(rel string) (fs.FileInfo, error) {
	_, dirs, err := e.storeRoot()
	if err != nil {
		return nil, err
	}
	return dirs.Lstat(rel)
}

// open opens the regular file rel of the store (msgdir.Open).
func (e *Engine) open(rel string) (*os.File, error) {
	_, dirs, err := e.storeRoot()
	if err != nil {
		return nil, err
	}
	return dirs.Open(rel)
}

// readFile reads the regular file rel of the store, up to one byte more
// than max_message_bytes (msgdir.ReadFile).
func (e *Engine) readFile(rel string) ([]byte, error) {
	_, dirs, err := e.storeRoot()
	if err != nil {
		return nil, err
	}
	return dirs.ReadFile(rel, e.opts.MaxMessageBytes)
}

// walk walks the store below dir (msgdir.WalkDir).
func (e *Engine) walk(dir string, fn func(rel string, d fs.DirEntry, err error) error) error {
	r, _, err := e.storeRoot()
	if err != nil {
		return err
	}
	return msgdir.WalkDir(r, dir, fn)
}

// linkInPathReason is why a file whose path passes through a symbolic link
// is not replicated.
const linkInPathReason = "symbolic link in its path: chatsync does not follow links; move the files into the store instead"

// rejectUnreadable reports a file that cannot be looked at or read: one
// whose path passes through a symbolic link as links are reported, any
// other with its error.
func (e *Engine) rejectUnreadable(rel string, err error) {
	if errors.Is(err, msgdir.ErrUnsafePath) {
		e.reject(rel, linkInPathReason)
		return
	}
	e.reject(rel, fmt.Sprintf("cannot read: %v", err))
}

// writeMarker creates the store's marker through the store's handle; a
// name already there (a link put in its place) is an error, not a file
// written elsewhere.
func (e *Engine) writeMarker() error {
	r, _, err := e.storeRoot()
	if err != nil {
		return err
	}
	f, err := r.OpenFile(markerName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString("chatsync keeps this file to recognise its message store; leave it here\n")
	return errors.Join(err, f.Close())
}
