package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/apitype"
)

func verifyOf(t *testing.T, d *device, repair bool) apitype.VerifyResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var phases []string
	r, err := d.eng.Verify(ctx, repair, func(p apitype.VerifyProgress) { phases = append(phases, p.Phase) })
	if err != nil {
		t.Fatalf("%s: Verify(repair %v): %v", d.name, repair, err)
	}
	if len(phases) == 0 || phases[0] != "store" {
		t.Errorf("%s: progress phases %v, want the store first, then the journal", d.name, phases)
	}
	return r
}

// forge changes what d's state says while d is stopped: what a bug, or
// a restore of the state from a backup, could leave.
func forge(t *testing.T, d *device, f func(db *store.DB, cursor int64)) {
	t.Helper()
	db, err := store.Open(d.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cursor, err := db.Cursor(testAccount)
	if err != nil {
		t.Fatal(err)
	}
	f(db, cursor)
}

// Verify finds each kind of difference between the store and the journal,
// made where the replication cannot see it: a same-size edit with its
// time kept, states that forgot a file, took a message for deleted or for
// sent, a row under a key this device lacks. Repair makes the stores and
// the journal agree on all but the row no key here opens.
func TestVerifyFindsEachKindOfDifferenceAndRepairFixesIt(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	for i := range 6 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", fmt.Sprintf("message %d", i)))
	}
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "6 messages on B", func() bool { return len(b.messages()) == 6 })
	barrier(t, a, b)
	if r := verifyOf(t, b, false); !r.InSync || r.Messages != 7 || r.Local != 7 {
		t.Fatalf("B before any difference: %+v, want in sync with 7 messages", r)
	}

	// A row under another key.
	x := newDevice(t, "X", srv, newKeyring(t))
	x.noReports = true
	x.write("c/x.json", msg("x1", "c@example.com", "under another key"))
	x.start()
	waitFor(t, 20*time.Second, "X's row", func() bool { return x.status().OutboxDepth == 0 && x.status().Pushed == 1 })
	x.stop()
	barrier(t, a, b)
	barrier(t, b, a)
	a.stop()
	b.stop()

	// A: m6, written while A was stopped, which A's state takes for sent
	// (as m0's row).
	a.write("c/m6.json", msg("m6", "c@example.com", "never sent"))
	p6 := filepath.Join(a.store, "c", "m6.json")
	forge(t, a, func(db *store.DB, cursor int64) {
		data, _ := os.ReadFile(p6)
		fi, err := os.Stat(p6)
		if err != nil {
			t.Fatal(err)
		}
		m, err := msgdir.Parse(data, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		v0, _, _ := db.Version(testAccount, "m0")
		if err := db.ApplyRemote(testAccount, cursor, []store.Applied{{MsgID: "m6", JournalID: v0.JournalID, Hash: m.Hash,
			Path: "c/m6.json", Size: fi.Size(), MTime: fi.ModTime(), Own: true, Time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	})
	// B: m1 edited with its size and time kept (no rescan sees it); m2's
	// file and index entry gone (nothing to send a delete for); m5's file
	// gone and the state taking it for deleted by another device.
	p1 := filepath.Join(b.store, filepath.FromSlash(fileOf(t, b, "m1")))
	fi, err := os.Stat(p1)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p1)
	edited := strings.Replace(string(data), "message 1", "MESSAGE 1", 1)
	if len(edited) != len(data) || edited == string(data) {
		t.Fatalf("the edit changed the size or nothing: %q", edited)
	}
	if err := os.WriteFile(p1, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p1, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	rel2, rel5 := fileOf(t, b, "m2"), fileOf(t, b, "m5")
	for _, rel := range []string{rel2, rel5} {
		if err := os.Remove(filepath.Join(b.store, filepath.FromSlash(rel))); err != nil {
			t.Fatal(err)
		}
	}
	forge(t, b, func(db *store.DB, cursor int64) {
		if err := db.DeleteFiles(testAccount, rel2); err != nil {
			t.Fatal(err)
		}
		v5, _, _ := db.Version(testAccount, "m5")
		if err := db.ApplyRemote(testAccount, cursor, []store.Applied{{MsgID: "m5", JournalID: v5.JournalID, Deleted: true, Path: rel5,
			Device: v5.Device, Time: v5.Time}}); err != nil {
			t.Fatal(err)
		}
	})
	a.start()
	b.start()
	barrier(t, a, b)
	barrier(t, b, a)

	r := verifyOf(t, b, false)
	if r.InSync || r.MissingHere != 1 || r.Differs != 1 || r.Undecryptable != 1 || r.DeletedHereAliveThere != 1 || r.NeverPushed != 0 {
		t.Errorf("B: %+v\nwant missing_here 1 (m2), differs 1 (m1), undecryptable 1 (X's row), deleted_here_alive_there 1 (m5)", r)
	}
	kinds := map[string]string{}
	for _, ex := range r.Examples {
		kinds[ex.MsgID] = ex.Kind
	}
	for id, kind := range map[string]string{"m1": apitype.VerifyDiffers, "m2": apitype.VerifyMissingHere, "m5": apitype.VerifyDeletedHere} {
		if kinds[id] != kind {
			t.Errorf("B's examples say %s is %q, want %q: %+v", id, kinds[id], kind, r.Examples)
		}
	}
	if ra := verifyOf(t, a, false); ra.NeverPushed != 1 || len(ra.Examples) == 0 || ra.Examples[0].MsgID != "m6" || ra.MissingHere+ra.Differs+ra.DeletedHereAliveThere != 0 {
		t.Errorf("A: %+v, want m6 never pushed, and only that (and X's row)", ra)
	}

	rb := verifyOf(t, b, true)
	if rb.Applied != 2 || rb.Queued != 1 {
		t.Errorf("B's repair wrote %d and queued %d, want m2 and m5 written, m1's edit queued: %+v", rb.Applied, rb.Queued, rb)
	}
	ra := verifyOf(t, a, true)
	if ra.Queued != 1 || ra.NeverPushed != 0 {
		t.Errorf("A's repair: %+v, want m6 queued and then on the server", ra)
	}
	barrier(t, a, b)
	barrier(t, b, a)
	for _, d := range []*device{a, b} {
		r := verifyOf(t, d, false)
		if r.MissingHere+r.NeverPushed+r.Differs+r.DeletedHereAliveThere != 0 || r.Undecryptable != 1 || r.InSync {
			t.Errorf("%s after the repairs: %+v, want only X's row left, which no key here opens", d.name, r)
		}
	}
	if got, want := a.messages()["m1"], b.messages()["m1"]; got != want || !strings.Contains(got, "MESSAGE 1") {
		t.Errorf("m1 on A = %s, on B = %s: want B's unseen edit on both", got, want)
	}
	for _, id := range []string{"m2", "m5", "m6"} {
		if _, ok := b.messages()[id]; !ok {
			t.Errorf("B lacks %s after the repair", id)
		}
	}
}
