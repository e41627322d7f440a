package store

import (
	"fmt"
	"iter"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileRecord is the file index entry of one message file: what the file
// held when the engine last read or wrote it.
type FileRecord struct {
	Path  string // relative to the message store, slash-separated
	MsgID string
	Hash  string
	Size  int64
	MTime time.Time
}

type fileRecord struct {
	MsgID string    `json:"msgid"`
	Hash  string    `json:"hash,omitempty"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

func (r fileRecord) file(path string) FileRecord {
	return FileRecord{Path: path, MsgID: r.MsgID, Hash: r.Hash, Size: r.Size, MTime: r.MTime}
}

func (f FileRecord) validate() error {
	if f.Path == "" || f.MsgID == "" {
		return fmt.Errorf("file index: empty path or msgid (%q, %q)", f.Path, f.MsgID)
	}
	return nil
}

// File returns the index entry for path.
func (db *DB) File(acct, path string) (FileRecord, bool, error) {
	var f FileRecord
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		var rec fileRecord
		var err error
		ok, err = getRec(readAccount(tx, acct).files, []byte(path), &rec)
		f = rec.file(path)
		return err
	})
	return f, ok, err
}

// FileByMsgID returns the index entry of the file that holds msgid: to find
// the file an incoming version rewrites or deletes, and to detect a file
// that repeats the msgid of another.
func (db *DB) FileByMsgID(acct, msgid string) (FileRecord, bool, error) {
	var f FileRecord
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if a.filemsg == nil {
			return nil
		}
		p := a.filemsg.Get([]byte(msgid))
		if p == nil {
			return nil
		}
		var rec fileRecord
		var err error
		if ok, err = getRec(a.files, p, &rec); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("file index: msgid %q points to missing path %q", msgid, p)
		}
		f = rec.file(string(p))
		return nil
	})
	return f, ok, err
}

// PutFiles upserts index entries in one transaction. A path that held
// another msgid is re-pointed. A msgid that is already indexed for another
// path fails the whole call with ErrDuplicateMsgID (the engine checks
// FileByMsgID first and reports the repeating file, or deletes the stale
// entry of a file that was moved).
func (db *DB) PutFiles(acct string, files ...FileRecord) error {
	for _, f := range files {
		if err := f.validate(); err != nil {
			return err
		}
	}
	err := db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		for _, f := range files {
			if err := indexFile(a, f, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put files: %w", err)
	}
	return nil
}

// DeleteFiles removes index entries (missing paths are ignored) in one
// transaction.
func (db *DB) DeleteFiles(acct string, paths ...string) error {
	err := db.update(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		for _, p := range paths {
			if err := unindexPath(a, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete files: %w", err)
	}
	return nil
}

// Files yields the whole file index in path order, for the reconcile scan
// at start. It reads in pages of its own transactions and yields outside
// them, so memory stays flat for any number of files and the loop body may
// call any DB method; entries changed during the walk may or may not be
// seen.
func (db *DB) Files(acct string) iter.Seq2[FileRecord, error] {
	return scan(db, acct, filesBucket, decodeFile)
}

// FilesAfter returns, in one read transaction, at most n index entries
// in path order after the path after ("" for the first).
func (db *DB) FilesAfter(acct, after string, n int) ([]FileRecord, error) {
	var from []byte
	if after != "" {
		from = []byte(after)
	}
	page, _, _, err := readPage(db, acct, nil, from, n, filesBucket, decodeFile)
	return page, err
}

// FilesUnder yields the index entries of the files below dir (a
// slash-separated path relative to the store), like Files but reading only
// that part of the index.
func (db *DB) FilesUnder(acct, dir string) iter.Seq2[FileRecord, error] {
	return scanPrefix(db, acct, []byte(strings.TrimSuffix(dir, "/")+"/"), filesBucket, decodeFile)
}

func filesBucket(a *account) *bolt.Bucket { return a.files }

// decodeFile decodes the index entry of the path k.
func decodeFile(_ *account, k, v []byte) (FileRecord, bool, error) {
	var rec fileRecord
	if err := decodeRec(v, &rec); err != nil {
		return FileRecord{}, false, fmt.Errorf("file %q: %w", k, err)
	}
	return rec.file(string(k)), true, nil
}

// indexFile records f. If f.MsgID is indexed at another path, that entry is
// dropped when move is set (the engine moved the message's file) and is an
// ErrDuplicateMsgID otherwise.
func indexFile(a *account, f FileRecord, move bool) error {
	key := []byte(f.Path)
	if old := a.filemsg.Get([]byte(f.MsgID)); old != nil && string(old) != f.Path {
		if !move {
			return fmt.Errorf("%w: %q is already the msgid of %q", ErrDuplicateMsgID, f.MsgID, old)
		}
		if err := a.files.Delete(old); err != nil {
			return err
		}
	}
	var prev fileRecord
	if ok, err := getRec(a.files, key, &prev); err != nil {
		return err
	} else if ok && prev.MsgID != f.MsgID {
		if err := dropMsgIDIfAt(a, prev.MsgID, f.Path); err != nil {
			return err
		}
	}
	rec := fileRecord{MsgID: f.MsgID, Hash: f.Hash, Size: f.Size, MTime: f.MTime}
	if err := putRec(a.files, key, rec); err != nil {
		return err
	}
	return a.filemsg.Put([]byte(f.MsgID), key)
}

// unindexPath drops the entry of path and its reverse entry.
func unindexPath(a *account, path string) error {
	var prev fileRecord
	ok, err := getRec(a.files, []byte(path), &prev)
	if err != nil || !ok {
		return err
	}
	if err := a.files.Delete([]byte(path)); err != nil {
		return err
	}
	return dropMsgIDIfAt(a, prev.MsgID, path)
}

// unindexMsgID drops the entry of the file holding msgid, and the entry of
// path if it still names msgid.
func unindexMsgID(a *account, msgid, path string) error {
	if p := a.filemsg.Get([]byte(msgid)); p != nil {
		if err := unindexPath(a, string(p)); err != nil {
			return err
		}
	}
	if path == "" {
		return nil
	}
	var prev fileRecord
	if ok, err := getRec(a.files, []byte(path), &prev); err != nil {
		return err
	} else if ok && prev.MsgID == msgid {
		return unindexPath(a, path)
	}
	return nil
}

// dropMsgIDIfAt deletes the reverse entry of msgid if it points to path.
func dropMsgIDIfAt(a *account, msgid, path string) error {
	if p := a.filemsg.Get([]byte(msgid)); p != nil && string(p) == path {
		return a.filemsg.Delete([]byte(msgid))
	}
	return nil
}
