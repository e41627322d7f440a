package msgdir

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Names hands out the files of the messages one page writes, so that two
// messages never share a file: a msgid such as "a/b" is named by a hash
// that another msgid may be spelled as, and where the store's file system
// folds case (macOS, Windows) msgids that differ only in case name one
// file. Without Names the second message of such a pair overwrites the
// first and one message is lost on every device.
//
// The zero value is ready to use; use one Names per page, in journal
// order. Files that exist already are the caller's to check (the engine
// does, with the file index and the file's msgid); Names checks the page's
// own paths against each other, case-folded where the file system folds
// case, and checks a name it makes up against the files on disk.
type Names struct {
	owner map[string]string // page path (normalized, folded if the store folds case) → msgid
	fold  int8              // 0 not known yet, 1 the store folds case, -1 it does not
}

// Claim returns the file, relative to the store root, that msgid is
// written to when rel is the file planned for it: rel itself, unless the
// page gave rel (or a path equal to it but for case, where the store's
// file system folds case) to another message already. Then it is rel with
// "-" and 8 hex digits of the hash of msgid before ".json" (with a further
// "-2", "-3"... while that is taken too, in the page or on disk by a file
// of another message). The same msgid and rel always get the same file.
func (n *Names) Claim(root, rel, msgid string) string {
	if n.owner == nil {
		n.owner = map[string]string{}
	}
	if n.fold == 0 {
		n.fold = -1
		if foldsCase(root) {
			n.fold = 1
		}
	}
	if o, ok := n.owner[n.key(rel)]; !ok || o == msgid {
		n.owner[n.key(rel)] = msgid
		return rel
	}
	var r *os.Root // opened only when a name is made up
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	base, ext := rel, ""
	if strings.HasSuffix(rel, ".json") {
		base, ext = strings.TrimSuffix(rel, ".json"), ".json"
	}
	base += "-" + HashBytes([]byte(msgid))[:8]
	for i := 1; ; i++ {
		alt := base + ext
		if i > 1 {
			alt = base + "-" + strconv.Itoa(i) + ext
		}
		if o, ok := n.owner[n.key(alt)]; ok && o != msgid {
			continue
		}
		if r == nil {
			r, _ = os.OpenRoot(root)
		}
		if r != nil && heldByAnother(r, alt, msgid) {
			continue
		}
		n.owner[n.key(alt)] = msgid
		return alt
	}
}

// key is rel as Names compares it: cleaned, slash-separated and, where the
// file system folds case, in lower case.
func (n *Names) key(rel string) string {
	k := filepath.ToSlash(filepath.Clean(filepath.FromSlash(rel)))
	if n.fold > 0 {
		k = strings.ToLower(k)
	}
	return k
}

// heldByAnother reports whether rel exists in r and is not a message file
// of msgid.
func heldByAnother(r *os.Root, rel, msgid string) bool {
	if _, err := r.Lstat(rel); errors.Is(err, fs.ErrNotExist) {
		return false
	}
	data, err := r.ReadFile(rel)
	if err != nil {
		return true
	}
	m, err := Parse(data, 0)
	return err != nil || m.MsgID != msgid
}

// foldCase caches, per store root, whether its file system folds case.
var foldCase sync.Map

// foldsCase reports whether the file system of the store root treats names
// that differ only in case as one name. It is found out once per store by
// creating a probe file and looking it up in upper case; if that cannot be
// done, it is assumed on macOS and Windows, whose usual file systems do.
func foldsCase(root string) bool {
	if v, ok := foldCase.Load(root); ok {
		return v.(bool)
	}
	folds, err := probeCase(root)
	if err != nil {
		return runtime.GOOS == "darwin" || runtime.GOOS == "windows"
	}
	foldCase.Store(root, folds)
	return folds
}

func probeCase(root string) (bool, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return false, err
	}
	defer r.Close()
	name := fmt.Sprintf(".chatsync-case-%x.tmp", rand.Uint64())
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	f.Close()
	defer r.Remove(name)
	lower, err := r.Lstat(name)
	if err != nil {
		return false, err
	}
	upper, err := r.Lstat(strings.ToUpper(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(lower, upper), nil
}
