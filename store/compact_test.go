package store

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestCompactShrinksTheStateAfterABacklogDrainsAndKeepsEveryRecord(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Compact does nothing on Windows")
	}
	dir := t.TempDir()
	db := mustOpen(t, dir, Options{})
	const n = 20_000
	ps := make([]Push, n)
	for i := range ps {
		id := fmt.Sprintf("m%06d", i)
		ps[i] = Push{MsgID: id, Op: OpPut, Envelope: "csy1:k1:" + strings.Repeat("A", 700), Hash: "sha256:x",
			File: &FileRecord{Path: "c/" + id + ".json", MsgID: id, Hash: "sha256:x", Size: 300}}
	}
	if _, err := db.EnqueueMany(alice, ps); err != nil {
		t.Fatal(err)
	}
	var id int64
	for {
		b, err := db.NextBatch(alice, 500, 4<<20)
		noErr(t, err)
		if len(b.Entries) == 0 {
			break
		}
		rs := make([]Result, len(b.Entries))
		for i, e := range b.Entries {
			id++
			rs[i] = Result{Token: e.Token, JournalID: id}
		}
		noErr(t, db.CompleteBatch(alice, rs))
	}
	if !db.Wasteful() {
		t.Fatal("Wasteful is false after 20,000 envelopes left the outbox")
	}

	// Reads go on while it compacts.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, ok, err := db.Version(alice, "m000042"); err != nil || !ok {
				t.Errorf("Version during the compaction: %v, %v", ok, err)
				return
			}
		}
	})
	before, after, err := db.Compact()
	close(stop)
	wg.Wait()
	noErr(t, err)
	t.Logf("state file %d → %d bytes (%d B per message after)", before, after, after/n)
	if after*2 > before {
		t.Errorf("compacted from %d to %d bytes; want at most half", before, after)
	}
	if fi, err := os.Stat(db.Path()); err != nil || fi.Size() != after || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file after the compaction: %v, %v", fi, err)
	}
	if db.Wasteful() {
		t.Error("still wasteful after the compaction")
	}
	count := 0
	for rec, err := range db.Files(alice) {
		noErr(t, err)
		count++
		if v, ok, err := db.Version(alice, rec.MsgID); err != nil || !ok || v.JournalID == 0 || !v.Own {
			t.Fatalf("version of %s after the compaction: %+v %v %v", rec.MsgID, v, ok, err)
		}
	}
	if count != n {
		t.Errorf("%d files indexed after the compaction, want %d", count, n)
	}
	// It is the state file from now on: written, closed and opened again.
	must[Entry](t)(db.Enqueue(alice, put("late", "1")))
	db = reopen(t, db, Options{})
	defer db.Close()
	if _, ok := must2(t)(db.Pending(alice, "late")); !ok {
		t.Error("an entry queued after the compaction is gone after a reopen")
	}
	if _, err := os.Stat(db.Path() + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the compaction's temporary file is left: %v", err)
	}
}
