package engine

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatsync/chatsync/store"
)

// A device's state dir and store were copied to another machine (a cloned
// VM, a restored backup), so two devices write under one device id and the
// server's except_uuid hides each one's rows from the other. Each notices
// rows under its id that it never wrote, takes a new id, and reads what the
// other wrote: all three devices end with every message, and status says
// what happened.
func TestTwoDevicesWithOneDeviceIDNoticeItAndConverge(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	for _, id := range []string{"m1", "m2", "m3"} {
		a.write("c/"+id+".json", msg(id, "c@example.com", "before the copy"))
	}
	waitFor(t, 20*time.Second, "B to receive A's 3 messages", func() bool { return len(b.messages()) == 3 })
	since := time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	a.stop()

	clone := newDevice(t, "A'", srv, kr)
	for _, c := range [][2]string{{a.state, clone.state}, {a.store, clone.store}} {
		os.RemoveAll(c[1])
		if err := os.CopyFS(c[1], os.DirFS(c[0])); err != nil {
			t.Fatal(err)
		}
	}
	a.mayClone, clone.mayClone = true, true
	a.start()
	clone.start()
	if a.status().DeviceID != clone.status().DeviceID {
		t.Fatalf("the copy has device id %s, A %s: the setup did not copy the state", clone.status().DeviceID, a.status().DeviceID)
	}
	a.write("c/from-a.json", msg("from-a", "c@example.com", "written on A after the copy"))
	clone.write("c/from-clone.json", msg("from-clone", "c@example.com", "written on the copy"))

	all := func(d *device) bool { return len(d.messages()) == 5 }
	waitFor(t, 60*time.Second, "all three devices to hold all 5 messages", func() bool {
		return all(a) && all(b) && all(clone)
	}, func() string {
		return "A " + describe(a.messages()) + "; copy " + describe(clone.messages()) + "; B " + describe(b.messages())
	})
	since = time.Now()
	waitFor(t, 20*time.Second, "all idle", func() bool { return a.idle(since) && b.idle(since) && clone.idle(since) })
	want := b.messages()
	for _, d := range []*device{a, clone} {
		if got := d.messages(); !equalMaps(got, want) {
			t.Errorf("%s holds %s, B %s", d.name, describe(got), describe(want))
		}
	}
	sa, sc := a.status(), clone.status()
	if sa.DeviceID == sc.DeviceID {
		t.Errorf("A and its copy still share device id %s", sa.DeviceID)
	}
	if sa.Clone == "" && sc.Clone == "" {
		t.Errorf("neither A nor its copy says in status that it took a new id")
	}
	for _, s := range []Status{sa, sc} {
		if s.Clone != "" && !strings.Contains(s.Clone, "took a new id") {
			t.Errorf("status says %q", s.Clone)
		}
	}
	// The new id is kept: after a restart A writes under it.
	id := sa.DeviceID
	a.stop()
	a.start()
	if got := a.status().DeviceID; got != id {
		t.Errorf("after a restart A uses device id %s, want the one it took, %s", got, id)
	}
}

// copyDevice makes a copy of a's state dir and store as a new device (a
// cloned machine); a must be stopped.
func copyDevice(t *testing.T, a *device) *device {
	t.Helper()
	c := newDevice(t, a.name+"'", a.srv, a.kr)
	for _, p := range [][2]string{{a.state, c.state}, {a.store, c.store}} {
		os.RemoveAll(p[1])
		if err := os.CopyFS(p[1], os.DirFS(p[0])); err != nil {
			t.Fatal(err)
		}
	}
	a.mayClone, c.mayClone = true, true
	return c
}

// An entry queued under the shared id when A finds the copy is not sent
// under A's new id (the copy would take it for its own, posted again): A
// takes the new id once its outbox is sent, and the copy gets the message.
func TestEntryQueuedWhenACloneIsFoundReachesTheClone(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	a.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "before the copy"))
	since := time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return len(srv.rows()) == 1 && a.idle(since) })
	a.stop()
	clone := copyDevice(t, a)
	clone.start()
	clone.write("c/from-clone.json", msg("from-clone", "c@example.com", "on the copy"))
	waitFor(t, 20*time.Second, "the copy's row", func() bool { return len(srv.rows()) == 2 })

	var refuse atomic.Bool
	refuse.Store(true)
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, acct, action string) bool {
		if action == "put_journal_entries" && refuse.Load() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	a.write("c/from-a.json", msg("from-a", "c@example.com", "on A")) // queued at start under the shared id
	a.start()
	waitFor(t, 20*time.Second, "A's entry queued and refused", func() bool { s := a.status(); return s.OutboxDepth == 1 && s.PushFailures > 0 })
	refuse.Store(false)
	waitFor(t, 30*time.Second, "every message on both", func() bool {
		return len(a.messages()) == 3 && len(clone.messages()) == 3 && a.status().DeviceID != clone.status().DeviceID
	}, func() string {
		return fmt.Sprintf("A %s (%s), copy %s (%s), copy skipped %v", describe(a.messages()), a.status().DeviceID, describe(clone.messages()), clone.status().DeviceID, clone.status().Skipped)
	})
}

// Clones that exist when chatsync is upgraded to one that looks for them
// (a state without the mark of the last look): what the copy wrote before
// A first looked reaches A too.
func TestCloneRowsWrittenBeforeTheFirstLookReachTheDevice(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "before the copy"))
	since := time.Now()
	waitFor(t, 20*time.Second, "B has m1 and A idle", func() bool { return len(b.messages()) == 1 && a.idle(since) })
	a.stop()
	clone := copyDevice(t, a)
	clone.start()
	clone.write("c/early.json", msg("early", "c@example.com", "on the copy, before A's upgrade"))
	waitFor(t, 20*time.Second, "the copy's row", func() bool { return len(srv.rows()) == 2 })
	b.write("c/fromb.json", msg("fromb", "c@example.com", "from B"))
	waitFor(t, 20*time.Second, "B's row", func() bool { return len(srv.rows()) == 3 })

	dropOwnCheck(t, a.state) // as a state from before the look was made
	a.start()
	waitFor(t, 20*time.Second, "A's first look", func() bool {
		_, ok, err := a.db.OwnCheck(testAccount)
		return err == nil && ok && a.messages()["fromb"] != ""
	})
	clone.write("c/late.json", msg("late", "c@example.com", "on the copy, after A's upgrade"))
	waitFor(t, 30*time.Second, "A to hold everything the copy wrote", func() bool {
		return len(a.messages()) == 4 && a.status().Clone != ""
	}, func() string { return describe(a.messages()) })
}

// dropOwnCheck removes the mark of the last look for clones from a
// stopped device's state.
func dropOwnCheck(t *testing.T, stateDir string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(stateDir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("v1")).Bucket([]byte("accounts")).Bucket([]byte(testAccount)).Bucket([]byte("state")).Delete([]byte("own_check"))
	}); err != nil {
		t.Fatal(err)
	}
}

// After A took a new id, a reset makes it read its rows under the former
// id again: they are recognised as its own, not pushed a second time.
func TestResetAfterANewDeviceIDPushesNothingTheJournalHas(t *testing.T) {
	srv, kr, a, _ := twoDevices(t)
	a.start()
	for i := range 10 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	since := time.Now()
	waitFor(t, 20*time.Second, "10 rows and A idle", func() bool { return len(srv.rows()) == 10 && a.idle(since) })
	a.stop()
	clone := copyDevice(t, a)
	clone.start()
	clone.write("c/fc.json", msg("fc", "c@example.com", "on the copy"))
	waitFor(t, 20*time.Second, "11 rows", func() bool { return len(srv.rows()) == 11 })
	clone.stop()
	a.start()
	waitFor(t, 20*time.Second, "A to take a new id", func() bool { return a.status().Clone != "" && len(a.messages()) == 11 })
	a.write("c/last.json", msg("last", "c@example.com", "y"))
	since = time.Now()
	waitFor(t, 20*time.Second, "12 rows and A idle", func() bool { return len(srv.rows()) == 12 && a.idle(since) })
	rows := srv.rows()
	if err := srv.client(t).DeleteJournalEntries(t.Context(), []int64{int64(rows[11].ID)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "A to notice and put back the lost row", func() bool {
		return !a.status().ResetAt.IsZero() && a.status().OutboxDepth == 0 && len(srv.rows()) >= 12
	})
	since = time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	oneRowPerMessage(t, srv, kr, "")
}
