package store

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt never gives pages back to the file system: after a backlog of
// 100,000 messages has gone out, the outbox's envelopes (about 700 bytes
// each) are free pages in a file that stays at its largest. Compact copies
// what is in use into a new file and puts it in the old one's place.

// compactMin is the smallest file worth compacting, and compactWaste the
// share of it that must be free.
const (
	compactMin   = 4 << 20
	compactWaste = 0.5
)

// Wasteful reports whether the file is at least compactMin bytes and at
// least compactWaste of it is free pages.
func (db *DB) Wasteful() bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	fi, err := os.Stat(db.path)
	if err != nil || fi.Size() < compactMin {
		return false
	}
	var inUse int64
	if err := db.bolt.View(func(tx *bolt.Tx) error { inUse = tx.Size(); return nil }); err != nil {
		return false
	}
	st := db.bolt.Stats()
	free := int64(st.FreePageN+st.PendingPageN)*int64(db.bolt.Info().PageSize) + fi.Size() - inUse
	return float64(free) >= compactWaste*float64(fi.Size())
}

// Compact rewrites the state file with only the pages in use, and reports
// its size before and after. Every other use of the DB waits meanwhile
// (about a second per 100,000 messages). The new file is complete and
// locked before it takes the old one's name; a crash leaves either file
// whole. On Windows, where an open file cannot be replaced, it does
// nothing.
func (db *DB) Compact() (before, after int64, err error) {
	if runtime.GOOS == "windows" {
		return 0, 0, nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if fi, err := os.Stat(db.path); err == nil {
		before = fi.Size()
	}
	tmp := db.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return before, 0, fmt.Errorf("compact the state: %w", err)
	}
	if err := bolt.Compact(dst, db.bolt, 4<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return before, 0, fmt.Errorf("compact the state: %w", err)
	}
	if err := os.Rename(tmp, db.path); err != nil {
		dst.Close()
		os.Remove(tmp)
		return before, 0, fmt.Errorf("compact the state: %w", err)
	}
	if d, err := os.Open(filepath.Dir(db.path)); err == nil {
		d.Sync()
		d.Close()
	}
	old := db.bolt
	db.bolt = dst
	old.Close()
	if fi, err := os.Stat(db.path); err == nil {
		after = fi.Size()
	}
	return before, after, nil
}
