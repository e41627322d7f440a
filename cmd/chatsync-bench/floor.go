//go:build linux

package main

// The floors: the work a backlog's push, pull and rescan cannot avoid,
// done in this process as plainly as it can be done. They are the
// reference the daemon is measured against, so they are kept minimal but
// honest: the fair floors do what the daemon's contract requires (read,
// parse, seal, put and record durably; fetch, open, validate, write every
// file atomically and durably, record durably), the wire floors only what
// the server requires.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/engine"
)

// floorDB opens a bbolt file with its defaults (every commit fsynced), as
// the daemon's state is.
func floorDB(path string) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, nil)
}

// record is one durable commit: each key of keys set to its value in the
// bucket.
func record(db *bolt.DB, bucket string, keys []string, vals [][]byte) error {
	return db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		for i, k := range keys {
			if err := bk.Put([]byte(k), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// stateInUse is how much of a stopped daemon's bbolt file holds data: its
// pages up to the high-water mark, less the free ones. The file itself
// grows in steps (doubling up to 1 GB), so its size alone is coarse.
func stateInUse(path string) (int64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var size int64
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return 0, err
	}
	return size - int64(db.Stats().FreePageN)*int64(db.Info().PageSize), nil
}

func idBytes(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// listStore lists the message files of a store as the daemon finds them:
// every directory read, hidden ones skipped, every name not a message
// ignored.
func listStore(root string) ([]string, error) {
	var rels []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && msgdir.IgnoredDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || msgdir.Ignored(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		rels = append(rels, rel)
		return err
	})
	return rels, err
}

// pushBatch is one put of the fair push floor, recorded before it is sent.
type pushBatch struct {
	entries []account.PutEntry
	msgids  []string
}

// fairPush is the push floor: the files of root listed, then for each
// batch of the daemon's size (500 entries, 4 MiB of envelopes) every file
// read, parsed as the daemon does (at most engine.DefaultMaxMessageBytes)
// and sealed; one durable record of the batch's tokens before the put, the
// put, and one durable record of the journal ids after it. Pipelined, the
// next batch is read, sealed and recorded while the put of the one before
// is in flight (one put in flight at a time). It returns the envelopes, in
// the order put, for the wire floor.
func fairPush(ctx context.Context, c *account.Client, kr *seal.Keyring, dbPath, root, device string, pipelined bool) ([]string, error) {
	db, err := floorDB(dbPath)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rels, err := listStore(root)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// send puts one batch and records what the server stored.
	send := func(pb *pushBatch) error {
		res, err := c.PutJournalEntries(ctx, device, pb.entries)
		if err != nil {
			return fmt.Errorf("put: %w", err)
		}
		ids := make([][]byte, len(res))
		for i, r := range res {
			if !r.Stored {
				return fmt.Errorf("the server did not store %s", r.ID)
			}
			ids[i] = idBytes(r.JournalID)
		}
		return record(db, "sent", pb.msgids, ids)
	}
	var (
		puts chan *pushBatch
		done chan error
	)
	if pipelined {
		puts, done = make(chan *pushBatch, 1), make(chan error, 1)
		defer func() {
			if puts != nil { // returning early: let the sender end
				close(puts)
				<-done
			}
		}()
		go func(puts <-chan *pushBatch) {
			var first error
			for pb := range puts {
				if first == nil {
					if first = send(pb); first != nil {
						cancel()
					}
				}
			}
			done <- first
		}(puts)
	}

	var envs []string
	var carry *account.PutEntry // the entry that did not fit the batch before
	var carryID string
	next := 0
	for carry != nil || next < len(rels) {
		if err := ctx.Err(); err != nil {
			break
		}
		pb := &pushBatch{}
		size := 0
		if carry != nil {
			pb.entries, pb.msgids, size = append(pb.entries, *carry), append(pb.msgids, carryID), len(carry.Data)
			carry = nil
		}
		for len(pb.entries) < engine.DefaultBatchCount && next < len(rels) {
			data, err := os.ReadFile(filepath.Join(root, rels[next]))
			if err != nil {
				return nil, err
			}
			m, err := msgdir.Parse(data, engine.DefaultMaxMessageBytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", rels[next], err)
			}
			env, err := kr.Seal(seal.Entry{Op: seal.OpPut, MsgID: m.MsgID, Account: benchAccount,
				Device: device, Time: time.Now(), Message: m.Canonical})
			if err != nil {
				return nil, err
			}
			en := account.PutEntry{ID: "t" + strconv.Itoa(next), Data: env}
			next++
			envs = append(envs, env)
			if len(pb.entries) > 0 && size+len(env) > engine.DefaultBatchBytes {
				carry, carryID = &en, m.MsgID
				break
			}
			pb.entries, pb.msgids = append(pb.entries, en), append(pb.msgids, m.MsgID)
			size += len(env)
		}
		tokens := make([]string, len(pb.entries))
		vals := make([][]byte, len(pb.entries))
		for i, en := range pb.entries {
			tokens[i], vals[i] = en.ID, []byte(pb.msgids[i])
		}
		if err := record(db, "outbox", tokens, vals); err != nil {
			return nil, err
		}
		if !pipelined {
			if err := send(pb); err != nil {
				return nil, err
			}
			continue
		}
		puts <- pb
	}
	if pipelined {
		close(puts)
		puts = nil
		if err := <-done; err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return envs, nil
}

// floorPut is the wire floor of a push: envelopes sealed beforehand, put
// in batches bounded like the daemon's, nothing recorded.
func floorPut(ctx context.Context, c *account.Client, uuid string, envs []string) error {
	for i := 0; i < len(envs); {
		var batch []account.PutEntry
		size := 0
		for ; i < len(envs) && len(batch) < engine.DefaultBatchCount && (len(batch) == 0 || size+len(envs[i]) <= engine.DefaultBatchBytes); i++ {
			batch = append(batch, account.PutEntry{ID: fmt.Sprintf("t%d", i), Data: envs[i]})
			size += len(envs[i])
		}
		res, err := c.PutJournalEntries(ctx, uuid, batch)
		if err != nil {
			return err
		}
		for _, r := range res {
			if !r.Stored {
				return fmt.Errorf("floor: the server did not store %s", r.ID)
			}
		}
	}
	return nil
}

// floorGet is the wire floor of a pull: the whole journal read page after
// page, as a new device would, and nothing else done with it. It returns
// the number of rows.
func floorGet(ctx context.Context, c *account.Client, except string) (int, error) {
	n := 0
	after := int64(0)
	for {
		page, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: except, AfterID: after})
		if err != nil {
			return n, err
		}
		n += len(page.Entries)
		if len(page.Entries) < account.JournalPageMax {
			return n, nil
		}
		after = page.MaxID()
	}
}

// stamp is what a rescan compares a file with.
type stamp struct {
	size  int64
	mtime time.Time
}

// fairPull is the pull floor: the journal read page after page (after_id
// cursor, except_uuid a device of its own), every row opened and its
// message validated as the daemon does, each page's files written with
// msgdir.Apply (the daemon's own atomic, durable batch writer), then one
// durable record per page of the cursor and of what each row became. It
// returns what it wrote, for the rescan floor.
func fairPull(ctx context.Context, c *account.Client, kr *seal.Keyring, dbPath, root string) (map[string]stamp, error) {
	db, err := floorDB(dbPath)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	index := map[string]stamp{}
	except := newUUID()
	after := int64(0)
	for {
		page, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: except, AfterID: after})
		if err != nil {
			return nil, err
		}
		ops := make([]msgdir.Op, 0, len(page.Entries))
		keys := make([]string, 0, len(page.Entries)+1)
		vals := make([][]byte, 0, len(page.Entries)+1)
		for _, row := range page.Entries {
			en, err := kr.Open(row.Data, benchAccount)
			if err != nil {
				return nil, fmt.Errorf("row %d: %w", row.ID, err)
			}
			m, err := msgdir.Parse(en.Message, engine.MaxIncomingBytes)
			if err != nil || m.MsgID != en.MsgID {
				return nil, fmt.Errorf("row %d: the message inside is not valid (%v)", row.ID, err)
			}
			ops = append(ops, msgdir.Op{Rel: msgdir.IncomingPath(m), Data: m.Canonical})
			keys, vals = append(keys, m.MsgID), append(vals, idBytes(row.ID))
		}
		for i, r := range msgdir.Apply(root, ops) {
			if r.Err != nil {
				return nil, r.Err
			}
			index[ops[i].Rel] = stamp{r.Info.Size(), r.Info.ModTime()}
		}
		after = max(after, page.MaxID())
		keys, vals = append(keys, "\x00cursor"), append(vals, idBytes(after))
		if err := record(db, "applied", keys, vals); err != nil {
			return nil, err
		}
		if len(page.Entries) < account.JournalPageMax {
			return index, nil
		}
	}
}

// rescanFloor is the least a full look at the store costs: every
// directory read, every message file's size and modification time
// compared with what was written, the files missing counted. It returns
// how many files differ from index (none, here).
func rescanFloor(root string, index map[string]stamp) (int, error) {
	differ, seen := 0, 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && msgdir.IgnoredDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if msgdir.Ignored(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st, ok := index[rel]
		if ok {
			seen++
		}
		if !ok || st.size != fi.Size() || !st.mtime.Equal(fi.ModTime()) {
			differ++
		}
		return nil
	})
	return differ + len(index) - seen, err
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}
