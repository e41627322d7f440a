package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/watch"
)

// dirStore is a directory of JSON files, one message per file, at any
// depth (SPEC §6), with the rules of store/msgdir: which names are
// messages, what makes a file a valid one, where an arriving message is
// written and how (atomically, durably, never through a link).
//
// Every read of the store goes through one handle on its directory, kept
// open, and through msgdir, which opens each directory below it through
// its parent's handle and refuses a symbolic link anywhere in a path
// (msgdir.ErrUnsafePath): a link swapped into the store cannot lead a read
// outside it, nor make the engine describe another file than the one it
// names. The handle is opened again when Unusable finds another directory
// at the store's path (a volume mounted there, the directory replaced).
// The handles of the directories below it are kept too (msgdir.Dirs), and
// looked at again at every use.
type dirStore struct {
	opts  *Options
	log   *slog.Logger
	known func() bool
	r     *os.Root
	dirs  *msgdir.Dirs
}

func (s *dirStore) Watch(ctx context.Context, ready func(), out chan<- watch.Change) error {
	return watch.Run(ctx, watch.Options{
		Root: s.opts.Store, Debounce: s.opts.Debounce, RescanInterval: s.opts.RescanInterval, Logger: s.log,
		Ready: ready,
	}, out)
}

// markerName is a hidden file chatsync keeps in every store it has
// indexed. A store directory without it, once files were indexed there, is
// not the store chatsync knows (an unmounted volume, an emptied disk), and
// taking its emptiness for deletions would delete every message on every
// device.
const markerName = ".chatsync-store"

func (s *dirStore) Unusable() string {
	store := s.opts.Store
	fi, err := os.Stat(store)
	if err == nil && fi.IsDir() {
		s.checkRoot(fi) // reads go to the directory that is there now
	} else {
		s.Close()
	}
	if errors.Is(err, fs.ErrNotExist) && !s.known() {
		// A store that never held a message here: a first run.
		if err := os.MkdirAll(store, 0o700); err != nil {
			return fmt.Sprintf("cannot create the message store %s: %v", store, err)
		}
		s.log.Info("created the message store", "store", store)
		return s.Unusable()
	}
	if err != nil || !fi.IsDir() {
		return fmt.Sprintf("message store %s is missing although this device knows messages in it: mount it or put it back (nothing is deleted meanwhile); to start over with a new, empty store, stop chatsync and run `chatsync state rebuild`: the history comes back from the journal", store)
	}
	if _, err := s.lstat(markerName); err == nil {
		return ""
	}
	if s.known() {
		return fmt.Sprintf("message store %s has lost its %s marker although this device knows files in it: if it is an unmounted or new volume, mount the right one; if you emptied it on purpose, run `touch %s`",
			store, markerName, filepath.Join(store, markerName))
	}
	if err := s.writeMarker(); err != nil {
		return fmt.Sprintf("cannot write %s in the message store: %v", markerName, err)
	}
	return ""
}

func (s *dirStore) Scan(dir string, found func(place), unreadable func(loc, reason string, dir bool)) error {
	return s.walk(dir, func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			if rel == dir {
				return err
			}
			unreadable(rel, unreadableReason(err), d == nil || d.IsDir())
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if rel != dir && msgdir.IgnoredDir(name) {
				return fs.SkipDir
			}
			return nil
		}
		if msgdir.Ignored(name) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone since the directory was read
		}
		found(place{loc: rel, info: fi})
		return nil
	})
}

func (s *dirStore) Look(p place, old *store.FileRecord, force bool) seen {
	rel, fi := p.loc, p.info
	if fi == nil {
		var err error
		fi, err = s.lstat(rel)
		switch {
		case errors.Is(err, msgdir.ErrUnsafePath): // (it may say ErrNotExist too)
			return seen{kind: seenRefused, reason: linkInPathReason, unsafe: true}
		case errors.Is(err, fs.ErrNotExist):
			return seen{kind: seenGone}
		case err != nil:
			return seen{kind: seenRefused, reason: unreadableReason(err)}
		case fi.IsDir():
			return seen{kind: seenDir}
		}
	}
	if !fi.Mode().IsRegular() {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return seen{kind: seenRefused, reason: "symbolic link: chatsync does not follow links; move the file into the store instead"}
		}
		return seen{kind: seenRefused, reason: "not a regular file"}
	}
	if old != nil && !force && old.Size == fi.Size() && old.MTime.Equal(fi.ModTime()) {
		return seen{kind: seenUnchanged}
	}
	max := s.opts.MaxMessageBytes
	if fi.Size() > max {
		return seen{kind: seenRefused, reason: fmt.Sprintf("larger than max_message_bytes (%d > %d bytes)", fi.Size(), max)}
	}
	data, after, err := s.readStable(rel, max)
	if err != nil {
		return seen{kind: seenRefused, reason: unreadableReason(err), unsafe: errors.Is(err, msgdir.ErrUnsafePath)}
	}
	now := s.opts.Now()
	if after == nil {
		return seen{kind: seenLater, at: now.Add(s.opts.SettleTime)} // still being written
	}
	msg, err := msgdir.Parse(data, max)
	if err != nil {
		if now.Sub(after.ModTime()) < s.opts.SettleTime {
			// A slow writer or an editor may not have finished: look
			// again before calling the file broken.
			return seen{kind: seenLater, at: after.ModTime().Add(s.opts.SettleTime)}
		}
		return seen{kind: seenRefused, reason: err.Error()}
	}
	return seen{kind: seenMessage, msg: msg, size: after.Size(), mtime: after.ModTime()}
}

func (s *dirStore) Read(loc string) (msgdir.Message, error) {
	data, err := s.readFile(loc)
	if err != nil {
		return msgdir.Message{}, err
	}
	return msgdir.Parse(data, s.opts.MaxMessageBytes)
}

func (s *dirStore) Place(msg msgdir.Message, cur string, names *msgdir.Names) (string, error) {
	rel := cur
	if rel == "" {
		rel = path.Clean(strings.ReplaceAll(msgdir.IncomingPath(msg), `\`, "/"))
		if taken, err := s.takenByAnother(rel, msg.MsgID); err == nil && taken {
			rel = strings.TrimSuffix(rel, ".json") + "-" + msg.Hash[:8] + ".json"
		}
	}
	return names.Claim(s.opts.Store, rel, msg.MsgID), nil
}

// takenByAnother reports whether a file that is not the message msgid
// already exists at rel.
func (s *dirStore) takenByAnother(rel, msgid string) (bool, error) {
	data, err := s.readFile(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	msg, err := msgdir.Parse(data, s.opts.MaxMessageBytes)
	return err != nil || msg.MsgID != msgid, nil
}

func (s *dirStore) Apply(ops []storeOp) []storeResult {
	mops := make([]msgdir.Op, len(ops))
	for i, op := range ops {
		mops[i] = msgdir.Op{Rel: op.loc, Remove: op.remove}
		if !op.remove {
			mops[i].Data = append(append([]byte(nil), op.data...), '\n')
		}
	}
	out := make([]storeResult, len(ops))
	for i, r := range msgdir.Apply(s.opts.Store, mops) {
		out[i].err = r.Err
		if r.Info != nil {
			out[i].size, out[i].mtime = r.Info.Size(), r.Info.ModTime()
		}
	}
	return out
}

func (s *dirStore) Remove(loc string) error { return msgdir.Remove(s.opts.Store, loc) }

// Stale is false: the engine looks at a file itself before it writes over
// it.
func (s *dirStore) Stale() bool { return false }

func (s *dirStore) Describe(loc string) string {
	if loc == "" {
		return s.opts.Store
	}
	return filepath.Join(s.opts.Store, filepath.FromSlash(loc))
}

// readStable reads the file rel of the store and stats it after the read;
// a nil FileInfo means it changed while being read.
func (s *dirStore) readStable(rel string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := s.open(rel)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	after, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || int64(len(data)) != after.Size() {
		return data, nil, nil
	}
	return data, after, nil
}

// storeRoot returns the handle on the store, opening it if need be.
func (s *dirStore) storeRoot() (*os.Root, *msgdir.Dirs, error) {
	if s.r == nil {
		r, err := os.OpenRoot(s.opts.Store)
		if err != nil {
			return nil, nil, err
		}
		s.r, s.dirs = r, msgdir.NewDirs(r)
	}
	return s.r, s.dirs, nil
}

// checkRoot drops the handle on the store if fi, the directory at the
// store's path now, is not the directory it holds.
func (s *dirStore) checkRoot(fi fs.FileInfo) {
	if s.r == nil {
		return
	}
	if got, err := s.r.Stat("."); err == nil && os.SameFile(got, fi) {
		return
	}
	s.Close()
}

func (s *dirStore) Close() {
	if s.r != nil {
		s.dirs.Close()
		s.r.Close()
		s.r, s.dirs = nil, nil
	}
}

// lstat describes the file rel of the store as os.Lstat does (a link at
// rel is described, not followed); a link in a directory on the way is
// refused with msgdir.ErrUnsafePath.
func (s *dirStore) lstat(rel string) (fs.FileInfo, error) {
	_, dirs, err := s.storeRoot()
	if err != nil {
		return nil, err
	}
	return dirs.Lstat(rel)
}

// open opens the regular file rel of the store (msgdir.Open).
func (s *dirStore) open(rel string) (*os.File, error) {
	_, dirs, err := s.storeRoot()
	if err != nil {
		return nil, err
	}
	return dirs.Open(rel)
}

// readFile reads the regular file rel of the store, up to one byte more
// than max_message_bytes (msgdir.ReadFile).
func (s *dirStore) readFile(rel string) ([]byte, error) {
	_, dirs, err := s.storeRoot()
	if err != nil {
		return nil, err
	}
	return dirs.ReadFile(rel, s.opts.MaxMessageBytes)
}

// walk walks the store below dir (msgdir.WalkDir).
func (s *dirStore) walk(dir string, fn func(rel string, d fs.DirEntry, err error) error) error {
	r, _, err := s.storeRoot()
	if err != nil {
		return err
	}
	return msgdir.WalkDir(r, dir, fn)
}

// linkInPathReason is why a file whose path passes through a symbolic link
// is not replicated.
const linkInPathReason = "symbolic link in its path: chatsync does not follow links; move the files into the store instead"

// unreadableReason is why a file that cannot be looked at or read is not
// replicated: one whose path passes through a symbolic link as links are
// reported, any other with its error.
func unreadableReason(err error) string {
	if errors.Is(err, msgdir.ErrUnsafePath) {
		return linkInPathReason
	}
	return fmt.Sprintf("cannot read: %v", err)
}

// writeMarker creates the store's marker through the store's handle; a
// name already there (a link put in its place) is an error, not a file
// written elsewhere.
func (s *dirStore) writeMarker() error {
	r, _, err := s.storeRoot()
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
