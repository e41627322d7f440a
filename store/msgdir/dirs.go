package msgdir

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Dirs reads a store as Lstat, Open and ReadFile do, but keeps the handles
// of the directories it opens, so that the next read in a directory does
// not open every directory on the way again: it looks at each of them
// once, through its parent's handle, instead.
//
// A kept handle is used only once its directory has been looked at again,
// through its parent's handle, and found to be that same directory and not
// a link: a directory replaced by a link, or by another directory, since
// it was opened is refused or opened again, so the reads through Dirs are
// confined exactly as the others. (The handle keeps the directory alive,
// so its identity cannot be reused by another one meanwhile.)
//
// A Dirs is not safe for concurrent use.
type Dirs struct {
	root *os.Root
	kept map[string]keptDir // dirKey → handle
}

type keptDir struct {
	d  *os.Root
	fi fs.FileInfo // the directory as its parent showed it when it was opened
}

// maxKeptDirs bounds the handles a Dirs holds: when it is full, they are
// all closed.
const maxKeptDirs = 256

// NewDirs reads the store r, which the caller keeps open until Close.
func NewDirs(r *os.Root) *Dirs { return &Dirs{root: r, kept: map[string]keptDir{}} }

// Close closes the kept handles (not the store's).
func (c *Dirs) Close() {
	for _, k := range c.kept {
		k.d.Close()
	}
	clear(c.kept)
}

// dir returns a handle on the directory elems of the store, which the
// caller must not close.
func (c *Dirs) dir(elems []string, rel string) (*os.Root, error) {
	d := c.root
	for i, elem := range elems {
		key := strings.Join(elems[:i+1], "/")
		fi, err := d.Lstat(elem)
		switch {
		case err != nil:
			c.drop(key)
			return nil, err
		case fi.Mode()&fs.ModeSymlink != 0:
			c.drop(key)
			return nil, unsafePath(rel)
		case !fi.IsDir():
			c.drop(key)
			return nil, fmt.Errorf("%q: %s is not a directory", rel, elem)
		}
		if k, ok := c.kept[key]; ok && os.SameFile(k.fi, fi) {
			d = k.d
			continue
		}
		c.drop(key)
		next, _, err := openChild(d, elem, false, rel)
		if err != nil {
			return nil, err
		}
		if len(c.kept) >= maxKeptDirs {
			c.Close()
		}
		c.kept[key] = keptDir{d: next, fi: fi}
		d = next
	}
	return d, nil
}

func (c *Dirs) drop(key string) {
	if k, ok := c.kept[key]; ok {
		k.d.Close()
		delete(c.kept, key)
	}
}

// parent returns the handle of the directory that holds rel, and rel's
// name in it.
func (c *Dirs) parent(rel string) (*os.Root, string, error) {
	elems, name, err := splitRel(rel)
	if err != nil {
		return nil, "", err
	}
	d, err := c.dir(elems, rel)
	return d, name, err
}

// Lstat is Lstat of the store.
func (c *Dirs) Lstat(rel string) (fs.FileInfo, error) {
	d, name, err := c.parent(rel)
	if err != nil {
		return nil, err
	}
	return d.Lstat(name)
}

// Open is Open of the store.
func (c *Dirs) Open(rel string) (*os.File, error) {
	d, name, err := c.parent(rel)
	if err != nil {
		return nil, err
	}
	return openIn(d, name, rel)
}

// ReadFile is ReadFile of the store.
func (c *Dirs) ReadFile(rel string, max int64) ([]byte, error) {
	f, err := c.Open(rel)
	if err != nil {
		return nil, err
	}
	return readAll(f, max)
}
