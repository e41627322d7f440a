package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Version is the version of a message that this device holds.
type Version struct {
	MsgID string
	// JournalID is the journal row of this version: pushed by this device or
	// applied from another. 0 means it is not (or, after ResetAccount, no
	// longer known to be) on the server.
	JournalID int64
	Hash      string
	Deleted   bool // a tombstone: the message was deleted
	// Own is set when this device wrote the version; else Device is the
	// device that did. Time is the writer's time of the version (from
	// its envelope): a later version from the same device is newer, so
	// an older one that turns up again is a replay.
	Own    bool
	Device string
	Time   time.Time
	// KeyID names the key the version was sealed under.
	KeyID string
}

type versionRecord struct {
	JournalID int64     `json:"journal_id"`
	Hash      string    `json:"hash,omitempty"`
	Deleted   bool      `json:"deleted,omitempty"`
	Own       bool      `json:"own,omitempty"`
	Device    string    `json:"device,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	KeyID     string    `json:"key_id,omitempty"`
}

func (r versionRecord) version(msgid string) Version {
	return Version{MsgID: msgid, JournalID: r.JournalID, Hash: r.Hash, Deleted: r.Deleted, Own: r.Own, Device: r.Device, Time: r.Time, KeyID: r.KeyID}
}

// Applied is a remote version that the engine has decided to apply and has
// already written to (or removed from) the message store.
type Applied struct {
	MsgID     string
	JournalID int64
	Hash      string
	Deleted   bool
	// Path, Size and MTime describe the file as written (relative,
	// slash-separated path). For a delete, Path is the file that was removed
	// (it may be empty if there was none).
	Path  string
	Size  int64
	MTime time.Time
	// Keep, for a delete, leaves the message's file and its index entry
	// alone: the device keeps what others delete (replicate_deletes off).
	Keep bool
	// Device, Time and KeyID are the writing device, its time of the
	// version and the key it sealed it under, from the envelope.
	Device string
	Time   time.Time
	KeyID  string
	// Own marks a version of this device's own, recognised in the
	// journal again (after a reset).
	Own bool
}

// Anchor identifies one journal row this device has seen: the engine checks
// from time to time that the server still holds it, to notice a journal
// that was reset or restored from a backup even after new rows with the
// same ids have appeared.
type Anchor struct {
	ID  int64  `json:"id"`
	Sig string `json:"sig"` // a hash of the row's uuid, timestamp and data
	// Theirs is set when another device wrote the row, so the check can
	// leave this device's own rows out (except_uuid).
	Theirs bool `json:"theirs,omitempty"`
	// Data is the SHA-256 (hex) of the row's data, for a row this device
	// put: it never learns the row's timestamp, so Sig is empty.
	Data string `json:"data,omitempty"`
}

// DataHash is the Anchor.Data of a row's data.
func DataHash(data string) string {
	sum := sha256.Sum256([]byte(data))
	return hex.EncodeToString(sum[:])
}

// Candidate returns the newest row this device has seen (polled, or put),
// which the next check promotes to the anchor once it has found the
// anchor and the candidate still on the server.
func (db *DB) Candidate(acct string) (Anchor, bool, error) {
	var an Anchor
	ok, err := db.stateJSON(acct, keyCandidate, &an)
	return an, ok, err
}

// stateJSON decodes the value under key in acct's state into v and
// reports whether it is there.
func (db *DB) stateJSON(acct string, key []byte, v any) (bool, error) {
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		var err error
		ok, err = getJSON(a.state, key, v)
		return err
	})
	return ok, err
}

func raiseCandidate(a *account, an Anchor) error {
	var cur Anchor
	if ok, err := getJSON(a.state, keyCandidate, &cur); err != nil || ok && cur.ID >= an.ID {
		return err
	}
	return putJSON(a.state, keyCandidate, an)
}

// Anchor returns the row recorded with SetAnchor, if any.
func (db *DB) Anchor(acct string) (Anchor, bool, error) {
	var an Anchor
	ok, err := db.stateJSON(acct, keyAnchor, &an)
	return an, ok, err
}

// SetAnchor records the row the engine will look for next time.
func (db *DB) SetAnchor(acct string, an Anchor) error {
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		return putJSON(a.state, keyAnchor, an)
	})
}

// Cursor returns the highest journal id of acct applied so far; polling
// continues with after_id = Cursor.
func (db *DB) Cursor(acct string) (int64, error) {
	var c int64
	err := db.view(func(tx *bolt.Tx) error {
		c = getI64(readAccount(tx, acct).state, keyCursor)
		return nil
	})
	return c, err
}

// Version returns the version of msgid that this device holds.
func (db *DB) Version(acct, msgid string) (Version, bool, error) {
	var v Version
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		var rec versionRecord
		var err error
		ok, err = getRec(readAccount(tx, acct).versions, []byte(msgid), &rec)
		v = rec.version(msgid)
		return err
	})
	return v, ok, err
}

// ApplyRemote records, in ONE transaction, a page of remote versions that
// the engine has already written to the message store: the held versions,
// the file index, and the cursor, which moves to cursor (it never moves
// backwards; a lower value leaves it where it is). The engine writes the
// files first and calls ApplyRemote after, so a crash in between makes it
// apply the same page again, which is idempotent. A put moves the msgid's
// index entry to Path (dropping the entry of the old path, whose file the
// engine removed or replaced); a delete removes the msgid's index entry and
// leaves a tombstone version. The rows in keep could not be applied for a
// reason that may go away; they are kept for a later try (UnappliedRows),
// in the same transaction as the cursor that passes them.
func (db *DB) ApplyRemote(acct string, cursor int64, applied []Applied, keep ...Unapplied) error {
	return db.ApplyPage(acct, Page{Cursor: cursor, Applied: applied, Keep: keep})
}

// Page is what ApplyPage records of one page of the journal.
type Page struct {
	Cursor  int64
	Applied []Applied
	Keep    []Unapplied
	// Newest, if set, is the newest row of the page, which becomes the
	// candidate (see Candidate) if it is newer than the one recorded.
	Newest *Anchor
	// Peers is what the page's rows said of the devices that wrote them.
	Peers []Peer
}

// ApplyPage is ApplyRemote with the page's newest row, in the same
// transaction.
func (db *DB) ApplyPage(acct string, p Page) error {
	cursor := p.Cursor
	if err := validApplied(p.Applied); err != nil {
		return err
	}
	err := db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		if err := applyVersions(a, p.Applied); err != nil {
			return err
		}
		if err := putUnapplied(a, p.Keep); err != nil {
			return err
		}
		if err := notePeers(a, p.Peers); err != nil {
			return err
		}
		if p.Newest != nil {
			if err := raiseCandidate(a, *p.Newest); err != nil {
				return err
			}
		}
		if err := raiseI64(a.state, keyHighwater, cursor); err != nil {
			return err
		}
		return raiseI64(a.state, keyCursor, cursor)
	})
	if err != nil {
		return fmt.Errorf("apply remote: %w", err)
	}
	return nil
}

func validApplied(applied []Applied) error {
	for _, ap := range applied {
		if ap.MsgID == "" || ap.JournalID <= 0 {
			return fmt.Errorf("apply remote: bad version %q journal id %d", ap.MsgID, ap.JournalID)
		}
		if !ap.Deleted && ap.Path == "" {
			return fmt.Errorf("apply remote %s: no path", ap.MsgID)
		}
	}
	return nil
}

// applyVersions records applied versions, their file index and the
// highwater in a's transaction.
func applyVersions(a *account, applied []Applied) error {
	high := int64(0)
	for _, ap := range applied {
		v := versionRecord{JournalID: ap.JournalID, Hash: ap.Hash, Deleted: ap.Deleted, Own: ap.Own, Device: ap.Device, Time: ap.Time, KeyID: ap.KeyID}
		if err := putRec(a.versions, []byte(ap.MsgID), v); err != nil {
			return err
		}
		var err error
		if ap.Deleted && ap.Keep {
			// The file stays (replicate_deletes is off): only the
			// version becomes a tombstone.
		} else if ap.Deleted {
			err = unindexMsgID(a, ap.MsgID, ap.Path)
		} else {
			err = indexFile(a, FileRecord{Path: ap.Path, MsgID: ap.MsgID, Hash: ap.Hash, Size: ap.Size, MTime: ap.MTime}, true)
		}
		if err != nil {
			return err
		}
		high = max(high, ap.JournalID)
	}
	return raiseI64(a.state, keyHighwater, high)
}

// ResetAccount handles a server whose journal went backwards (reset or
// restore), in one transaction:
//   - the cursor and the watermark go back to 0, so the whole new journal is
//     read again (the engine dedupes what it reads by msgid and hash against
//     the held versions);
//   - every held version forgets its journal id (hash and tombstone flag are
//     kept), and the token → journal id mappings are dropped;
//   - an in-flight batch stays in flight with watermark 0, so its
//     reconciliation searches the whole new journal;
//   - the outbox and the file index are kept; local files are never deleted.
//
// Re-queueing: the store cannot seal, so it does not enqueue by itself. The
// engine then walks Unpushed, which yields every held message (files and
// tombstones) that is not on the server and has no queued entry, seals each
// and enqueues it with EnqueueMany. A crash in between is harmless: a walk
// after restart yields only what was not enqueued yet.
func (db *DB) ResetAccount(acct string) error {
	err := db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		if err := putI64(a.state, keyCursor, 0); err != nil {
			return err
		}
		if err := putI64(a.state, keyHighwater, 0); err != nil {
			return err
		}
		if err := a.state.Delete(keyAnchor); err != nil {
			return err
		}
		if err := a.state.Delete(keyCandidate); err != nil {
			return err
		}
		if err := a.state.Delete(keyOwnCheck); err != nil {
			return err
		}
		if r, err := readInFlight(a); err != nil {
			return err
		} else if r != nil {
			r.Watermark = 0
			if err := putJSON(a.state, keyInFlight, r); err != nil {
				return err
			}
		}
		ab := tx.Bucket(bucketV1).Bucket(bucketAccounts).Bucket([]byte(acct))
		if err := ab.DeleteBucket(bucketSent); err != nil {
			return err
		}
		if _, err := ab.CreateBucket(bucketSent); err != nil {
			return err
		}
		// Kept rows were rows of the old journal, and what the other
		// devices applied were ids of it; the new one is read again
		// from 0.
		for _, name := range [][]byte{bucketUnapplied, bucketPeers} {
			if err := ab.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := ab.CreateBucket(name); err != nil {
				return err
			}
		}
		// A Put invalidates the cursor: re-seek after each one.
		c := a.versions.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var rec versionRecord
			if err := decodeRec(v, &rec); err != nil {
				return fmt.Errorf("version %q: %w", k, err)
			}
			if rec.JournalID == 0 {
				continue
			}
			rec.JournalID = 0
			key := bytes.Clone(k)
			if err := putRec(a.versions, key, rec); err != nil {
				return err
			}
			c.Seek(key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset account: %w", err)
	}
	return nil
}

// Unpushed is a held message that is not on the server and not queued.
type Unpushed struct {
	Version
	Path string // its file in the index; empty for a tombstone or a missing file
}

// Unpushed yields, in msgid order, every held version with no journal id and
// no outbox entry: after ResetAccount, what the engine must seal and
// enqueue again. It reads in pages of its own transactions and yields
// outside them, so the loop body may call any DB method; entries changed
// during the walk may or may not be seen.
func (db *DB) Unpushed(acct string) iter.Seq2[Unpushed, error] {
	return db.Versions(acct, func(v Version) bool { return v.JournalID == 0 })
}

// Versions yields, as Unpushed does, every held version for which keep
// returns true and that has no outbox entry.
func (db *DB) Versions(acct string, keep func(Version) bool) iter.Seq2[Unpushed, error] {
	return scan(db, acct, func(a *account) *bolt.Bucket { return a.versions },
		func(a *account, k, v []byte) (Unpushed, bool, error) {
			var rec versionRecord
			if err := decodeRec(v, &rec); err != nil {
				return Unpushed{}, false, fmt.Errorf("version %q: %w", k, err)
			}
			if !keep(rec.version(string(k))) {
				return Unpushed{}, false, nil
			}
			if _, queued := pendingSeq(a, string(k)); queued {
				return Unpushed{}, false, nil
			}
			u := Unpushed{Version: rec.version(string(k))}
			if p := a.filemsg.Get(k); p != nil {
				u.Path = string(p)
			}
			return u, true, nil
		})
}

// pageSize is how many keys a paged walk reads per transaction.
const pageSize = 512

// scan walks one bucket of acct in key order, pageSize keys per read
// transaction, and yields what decode keeps outside the transactions.
// decode must copy whatever it keeps from k and v.
func scan[T any](db *DB, acct string, bucket func(*account) *bolt.Bucket, decode func(a *account, k, v []byte) (T, bool, error)) iter.Seq2[T, error] {
	return scanPrefix(db, acct, nil, bucket, decode)
}

// scanPrefix is scan over the keys that start with prefix.
func scanPrefix[T any](db *DB, acct string, prefix []byte, bucket func(*account) *bolt.Bucket, decode func(a *account, k, v []byte) (T, bool, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var after []byte
		for {
			page, last, n, err := readPage(db, acct, prefix, after, pageSize, bucket, decode)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, t := range page {
				if !yield(t, nil) {
					return
				}
			}
			if n < pageSize {
				return
			}
			after = last
		}
	}
}

// readPage reads, in one transaction, up to n keys of bucket that start
// with prefix and come after the key after (nil: from the first), and
// returns what decode keeps of them, the last key read and how many were
// read.
func readPage[T any](db *DB, acct string, prefix, after []byte, n int, bucket func(*account) *bolt.Bucket, decode func(a *account, k, v []byte) (T, bool, error)) (page []T, last []byte, read int, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		b := bucket(a)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.First()
		if prefix != nil {
			k, v = c.Seek(prefix)
		}
		if after != nil {
			k, v = c.Seek(after)
			if bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && read < n && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			read++
			last = bytes.Clone(k)
			t, keep, err := decode(a, k, v)
			if err != nil {
				return err
			}
			if keep {
				page = append(page, t)
			}
		}
		return nil
	})
	return page, last, read, err
}

// Known is what the state holds of one message: what planning an incoming
// row of it needs.
type Known struct {
	Version    Version // the version held, if HasVersion
	HasVersion bool
	File       FileRecord // the file that holds it, if HasFile
	HasFile    bool
	// Pending is set while a local version of it is in the outbox, the
	// newest of which is PendingEntry.
	Pending      bool
	PendingEntry Entry
}

// Known returns, in one read transaction, what the state holds of each
// of msgids (a msgid it knows nothing of maps to the zero Known).
func (db *DB) Known(acct string, msgids []string) (map[string]Known, error) {
	out := make(map[string]Known, len(msgids))
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		for _, id := range msgids {
			if _, done := out[id]; done || !a.exists() {
				continue
			}
			var k Known
			key := []byte(id)
			var vr versionRecord
			ok, err := getRec(a.versions, key, &vr)
			if err != nil {
				return err
			}
			if ok {
				k.Version, k.HasVersion = vr.version(id), true
			}
			if a.filemsg != nil {
				if p := a.filemsg.Get(key); p != nil {
					var fr fileRecord
					ok, err := getRec(a.files, p, &fr)
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("file index: msgid %q points to missing path %q", id, p)
					}
					k.File, k.HasFile = fr.file(string(p)), true
				}
			}
			if seq, ok := pendingSeq(a, id); ok {
				var rec entryRecord
				found, err := getRec(a.outbox, u64(seq), &rec)
				if err != nil {
					return err
				}
				k.Pending, k.PendingEntry = found, rec.entry(seq)
			}
			out[id] = k
		}
		return nil
	})
	return out, err
}
