package msgdir

import (
	"errors"
	"io/fs"
	"os"
)

// Op is one change of a batch: Data written to Rel, or Rel removed.
type Op struct {
	Rel    string
	Data   []byte
	Remove bool
}

// Result is the outcome of one Op.
type Result struct {
	Err error
	// Info describes the written file as chatsync wrote it, taken before
	// the rename: a change someone makes right after the rename is then
	// still seen as a change.
	Info fs.FileInfo
}

// maxOpenDirs bounds the directory handles a batch holds at once: a batch
// that touches more directories is applied in parts, in order.
const maxOpenDirs = 128

// Apply performs ops in order, each as durable and as atomic as WriteAtomic
// and Remove make it, but syncing the file system a few times for the whole
// batch instead of twice per file (a replaced file keeps its permission
// bits, as with WriteAtomic): every new content is written to its
// temporary file first, all of them are made durable together, then the
// renames and removals happen in order and are made durable together. A
// page of 5000 incoming messages then costs a handful of syncs, not 10,000.
// It returns one Result per op.
//
// Like WriteAtomic it works through handles on the store and on each
// directory, never through path names, so nothing it does can be led
// outside the store; a path through a symbolic link fails with
// ErrUnsafePath, and a failed op leaves no temporary file behind.
func Apply(root string, ops []Op) []Result {
	res := make([]Result, len(ops))
	writes := false
	for _, op := range ops {
		writes = writes || !op.Remove
	}
	r, err := openStore(root, writes)
	if err != nil {
		for i, op := range ops {
			if !op.Remove || !errors.Is(err, fs.ErrNotExist) {
				res[i].Err = err // (nothing to remove from a missing store)
			}
		}
		return res
	}
	defer r.Close()
	paths := make([]relPath, len(ops))
	for i, op := range ops {
		p := &paths[i]
		p.elems, p.name, p.err = splitRel(op.Rel)
		p.dir = dirKey(p.elems)
	}
	for start := 0; start < len(ops); {
		end := start
		dirs := map[string]bool{}
		for ; end < len(ops); end++ {
			if d := paths[end].dir; !dirs[d] {
				if len(dirs) == maxOpenDirs {
					break
				}
				dirs[d] = true
			}
		}
		applyPart(r, ops[start:end], paths[start:end], res[start:end])
		start = end
	}
	return res
}

// relPath is an Op's Rel, checked and split.
type relPath struct {
	elems []string
	name  string
	dir   string // dirKey(elems)
	err   error
}

// tempFile is a temporary file written by a batch, in the directory whose
// handle is dir.
type tempFile struct {
	dir  *os.Root
	name string
}

func applyPart(r *os.Root, ops []Op, paths []relPath, res []Result) {
	dirs := map[string]*os.Root{}
	defer func() {
		for _, d := range dirs {
			d.Close()
		}
	}()
	open := func(i int, create bool) (*os.Root, error) {
		p := paths[i]
		if p.err != nil {
			return nil, p.err
		}
		if d, ok := dirs[p.dir]; ok {
			return d, nil
		}
		d, _, err := openDir(r, p.elems, create, ops[i].Rel)
		if err != nil {
			return nil, err
		}
		dirs[p.dir] = d
		return d, nil
	}

	temps := make([]tempFile, len(ops))
	defer func() {
		for _, t := range temps {
			if t.name != "" {
				t.dir.Remove(t.name) // left over only when its op failed
			}
		}
	}()
	var written []tempFile
	for i, op := range ops {
		if op.Remove {
			continue
		}
		d, err := open(i, true)
		mode := newFileMode
		if err == nil {
			mode, err = targetMode(d, paths[i].name, op.Rel)
		}
		if err == nil {
			var name string
			name, res[i].Info, err = createTemp(d, op.Data, false, mode)
			temps[i] = tempFile{dir: d, name: name}
		}
		if err != nil {
			res[i].Err = err
			continue
		}
		written = append(written, temps[i])
	}
	if err := syncFiles(r, written); err != nil {
		for i, t := range temps {
			if t.name != "" && res[i].Err == nil {
				res[i].Err = err
			}
		}
		return
	}

	touched := map[*os.Root]bool{}
	for i, op := range ops {
		if res[i].Err != nil {
			continue
		}
		name := paths[i].name
		if op.Remove {
			d, err := open(i, false)
			if errors.Is(err, fs.ErrNotExist) {
				continue // no directory, no file: nothing to remove
			}
			if err == nil {
				err = removeRegular(d, name, op.Rel)
				touched[d] = true
			}
			res[i].Err = err
			continue
		}
		t := temps[i]
		err := checkTarget(t.dir, name, op.Rel)
		if err == nil {
			err = t.dir.Rename(t.name, name)
		}
		if err == nil {
			temps[i].name = ""
		}
		res[i].Err = err
		touched[t.dir] = true
	}
	list := make([]*os.Root, 0, len(touched))
	for d := range touched {
		list = append(list, d)
	}
	if err := syncDirs(r, list); err != nil {
		for i := range res {
			if res[i].Err == nil {
				res[i].Err = err
			}
		}
	}
}
