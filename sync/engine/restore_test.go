package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// A server restored from a slightly older backup lost the newest rows of
// the journal. The device that wrote them pushes again only what was lost:
// its rows the journal still holds are recognised, not sent twice.
func TestAfterARestoreOnlyTheLostRowsArePushedAgain(t *testing.T) {
	srv, kr, a, _ := twoDevices(t)
	a.start()
	for i := range 10 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "before the restore"))
	}
	waitFor(t, 20*time.Second, "10 rows", func() bool { return len(srv.rows()) == 10 })
	since := time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	rows := srv.rows()
	var lost []int64
	for _, r := range rows[7:] {
		lost = append(lost, int64(r.ID))
	}
	if err := srv.client(t).DeleteJournalEntries(t.Context(), lost); err != nil { // the newest 3 rows are gone, as a restore would do
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "A to notice and push the lost rows again", func() bool {
		return !a.status().ResetAt.IsZero() && len(srv.rows()) == 10 && a.status().OutboxDepth == 0
	})
	since = time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	if got := len(srv.rows()); got != 10 {
		t.Errorf("the journal holds %d rows after the restore, want 10 (7 kept, 3 pushed again)", got)
	}
	oneRowPerMessage(t, srv, kr, "")
}

// B edited a message A wrote and deleted another; then the server lost
// B's rows (restored from a backup taken before them). The journal still
// holds A's older versions, which B reads again in its catch-up: they must
// not undo B's edit or bring back what B deleted. Both devices end with
// B's changes, and the journal holds them again.
func TestAfterARestoreADevicesOwnLostEditAndDeleteWin(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/edited.json", msg("edited", "c@example.com", "as A wrote it"))
	a.write("c/deleted.json", msg("deleted", "c@example.com", "B deletes this"))
	a.write("c/kept.json", msg("kept", "c@example.com", "nobody touches this"))
	waitFor(t, 20*time.Second, "B to receive A's 3 messages", func() bool { return len(b.messages()) == 3 })
	before := len(srv.rows())

	edited := msg("edited", "c@example.com", "as B edited it")
	paths := map[string]string{}
	for _, f := range b.files() {
		data, _ := os.ReadFile(filepath.Join(b.store, filepath.FromSlash(f)))
		m, _ := msgdir.Parse(data, 1<<20)
		paths[m.MsgID] = f
	}
	b.write(paths["edited"], edited)
	if err := os.Remove(filepath.Join(b.store, filepath.FromSlash(paths["deleted"]))); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"edited": canonical(t, edited), "kept": canonical(t, msg("kept", "c@example.com", "nobody touches this"))}
	waitFor(t, 20*time.Second, "A to take B's edit and delete", func() bool { return equalMaps(a.messages(), want) })

	var lost []int64
	for _, r := range srv.rows()[before:] {
		lost = append(lost, int64(r.ID))
	}
	if len(lost) != 2 {
		t.Fatalf("B's edit and delete made %d rows, want 2", len(lost))
	}
	// A is off while B finds out, so B's catch-up reads A's old versions
	// (A, finding out first, would have put B's versions back itself).
	a.stop()
	if err := srv.client(t).DeleteJournalEntries(t.Context(), lost); err != nil { // B's rows are gone, as a restore would do
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B to notice the restore and push its changes again", func() bool {
		return !b.status().ResetAt.IsZero() && len(srv.rows()) == before+2 && b.status().OutboxDepth == 0
	}, func() string {
		return fmt.Sprintf("B reset at %v, %d rows (want %d), B holds %s", b.status().ResetAt, len(srv.rows()), before+2, describe(b.messages()))
	})
	a.start()
	since := time.Now()
	waitFor(t, 30*time.Second, "both idle with the same messages", func() bool {
		return a.idle(since) && b.idle(since) && equalMaps(a.messages(), want) && equalMaps(b.messages(), want)
	})
	if got := b.messages(); !equalMaps(got, want) {
		t.Errorf("B holds %s after the restore, want its own edit and delete kept: %s", describe(got), describe(want))
	}
	if got := a.messages(); !equalMaps(got, want) {
		t.Errorf("A holds %s after the restore, want %s", describe(got), describe(want))
	}
	newest := map[string]seal.Entry{} // msgid → its newest version in the journal
	for _, r := range srv.rows() {
		en, err := kr.Open(r.Data, testAccount)
		if err != nil {
			t.Fatal(err)
		}
		newest[en.MsgID] = en
	}
	if en := newest["deleted"]; en.Op != seal.OpDelete {
		t.Errorf("the journal's newest version of the deleted message is %q, want a delete", en.Op)
	}
	if m, err := msgdir.Parse(newest["edited"].Message, 1<<20); err != nil || string(m.Canonical) != want["edited"] {
		t.Errorf("the journal's newest version of the edited message is %s, want B's edit", newest["edited"].Message)
	}
}

// restoreDump replaces the server's journal with its first n rows, as a
// restore from a dump would: the same ids, writers, times and data; the
// next insert takes id n+1 again, an id the devices have already seen.
func restoreDump(t *testing.T, srv *server, n int) {
	t.Helper()
	rows := srv.rows()[:n]
	old := srv.backend.Swap(srv.newBackend(t.TempDir()))
	old.Close()
	for _, r := range rows {
		at, err := time.ParseInLocation(time.DateTime, r.Timestamp, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		srv.setClock(func() time.Time { return at })
		if _, err := srv.client(t).PutJournalEntries(t.Context(), r.UUID, []account.PutEntry{{ID: "dump", Data: r.Data}}); err != nil {
			t.Fatal(err)
		}
	}
	srv.setClock(time.Now)
	if got := srv.rows(); len(got) != n || got[n-1].ID != rows[n-1].ID || got[n-1].Timestamp != rows[n-1].Timestamp {
		t.Fatalf("the restored journal is not the dump: %v", got)
	}
}

// The server is restored from a dump taken before the newest rows, and
// the next rows written after the restore take the lost rows' ids, which
// the devices have already read past. Both devices notice, and end with
// every message: those written before the dump, the lost ones (pushed
// again by a device that holds them) and those written after the restore.
func TestAfterARestoreFromADumpRowsThatReuseLostIDsAreNotMissed(t *testing.T) {
	t.Run("B off during the restore", func(t *testing.T) { restoredFromADump(t, nil, true) })
	t.Run("B off during the restore, the real server's limit bug", func(t *testing.T) {
		restoredFromADump(t, func(o *accountserver.Options) { o.StrictCompat = true }, true)
	})
	t.Run("B online during the restore", func(t *testing.T) { restoredFromADump(t, nil, false) })
}

func restoredFromADump(t *testing.T, mod func(*accountserver.Options), offline bool) {
	srv := newServerWith(t, mod)
	kr := newKeyring(t)
	a, b := newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
	a.noReports, b.noReports = true, true // the test is of journal ids
	a.start()
	b.start()
	for i := range 5 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "before the restore"))
	}
	waitFor(t, 20*time.Second, "B to receive A's 5 messages", func() bool { return len(b.messages()) == 5 })
	since := time.Now()
	waitFor(t, 20*time.Second, "both idle", func() bool { return a.idle(since) && b.idle(since) })
	if offline {
		b.stop() // as a laptop would be
	}

	restoreDump(t, srv, 3)
	a.write("c/after.json", msg("after", "c@example.com", "written after the restore"))
	waitFor(t, 20*time.Second, "A's new message to take a lost row's id", func() bool {
		rows := srv.rows()
		return len(rows) >= 4 && rows[3].ID == 4
	})
	if offline {
		b.start()
	}
	waitFor(t, 60*time.Second, "both devices to hold all 6 messages", func() bool {
		return len(a.messages()) == 6 && len(b.messages()) == 6
	}, func() string { return "A " + describe(a.messages()) + "; B " + describe(b.messages()) })
	since = time.Now()
	waitFor(t, 20*time.Second, "both idle", func() bool { return a.idle(since) && b.idle(since) })
	if got, want := b.messages(), a.messages(); !equalMaps(got, want) {
		t.Errorf("B holds %s, A %s", describe(got), describe(want))
	}
}
