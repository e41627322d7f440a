package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
)

const unknownKeyReason = "sealed under a key this device does not have (kept, and applied once the key is imported)"

// An entry under a key this device does not have yet is kept, shown in
// status with the key id, survives a restart and any number of newer rows,
// and is applied once the key is imported (the engine restarts with the
// new key file).
func TestEntryUnderAKeyImportedLaterArrivesAfterTheCursorPassedIt(t *testing.T) {
	srv := newServer(t)
	k1, _ := seal.GenerateKey()
	k2, _ := seal.GenerateKey()
	only1, _ := seal.NewKeyring(k1)
	only2, _ := seal.NewKeyring(k2)
	both, _ := seal.NewKeyring(k1, k2)
	x := newDevice(t, "X", srv, only2) // a device on the other key
	x.noReports = true                 // its one row is the one kept
	a := newDevice(t, "A", srv, only1)
	b := newDevice(t, "B", srv, only1)
	x.start()
	x.write("c/x.json", msg("x", "c@example.com", "under the key B does not have yet"))
	waitFor(t, 20*time.Second, "X's row", func() bool { return len(srv.rows()) == 1 })
	x.stop()
	b.start()
	a.start()
	for i := range 120 { // more than any overlap could reach back
		id := fmt.Sprintf("m%03d", i)
		a.write("c/"+id+".json", msg(id, "c@example.com", "newer"))
	}
	waitFor(t, 30*time.Second, "A's 120 messages on B", func() bool { return len(b.messages()) == 120 })
	s := b.status()
	if s.Unapplied != 1 || len(s.MissingKeys) != 1 || s.MissingKeys[0] != k2.ID() {
		t.Errorf("B's status: %d unapplied, missing keys %v; want 1 and X's key", s.Unapplied, s.MissingKeys)
	}
	if !strings.Contains(s.UnappliedHint, "chatsync key import") {
		t.Errorf("the hint does not say to import the key: %q", s.UnappliedHint)
	}
	b.stop()
	b.start()
	waitFor(t, 20*time.Second, "the kept entry shown again after a restart", func() bool { return b.status().Unapplied == 1 })
	b.stop()
	b.kr = both // the key is imported: the daemon restarts the engine with it
	b.start()
	waitFor(t, 20*time.Second, "X's message on B", func() bool { _, ok := b.messages()["x"]; return ok })
	waitFor(t, 20*time.Second, "nothing kept", func() bool { return b.status().Unapplied == 0 })
}

// A message whose file would pass through a symbolic link is kept, and
// arrives once the link is moved out of the store, although newer rows
// passed it.
func TestMessageBlockedByASymlinkArrivesOnceTheLinkIsRemoved(t *testing.T) {
	_, _, a, b := twoDevices(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(b.store, "carol@example.com")); err != nil {
		t.Fatal(err)
	}
	a.start()
	b.start()
	a.write("carol/m1.json", msg("m1", "carol@example.com", "into a linked directory"))
	waitFor(t, 20*time.Second, "the row kept on B", func() bool { return b.status().Unapplied == 1 })
	for i := range 5 {
		id := fmt.Sprintf("n%d", i)
		a.write("bob/"+id+".json", msg(id, "bob@example.com", "newer"))
	}
	waitFor(t, 20*time.Second, "the newer messages on B", func() bool { return len(b.messages()) == 5 })
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("chatsync wrote outside the store: %v", entries)
	}
	if err := os.Remove(filepath.Join(b.store, "carol@example.com")); err != nil {
		t.Fatal(err)
	}
	b.eng.SyncNow()
	waitFor(t, 20*time.Second, "m1 on B", func() bool { _, ok := b.messages()["m1"]; return ok })
	// The file is written before the kept row is dropped and the status
	// says so.
	waitFor(t, 20*time.Second, "no entry kept on B", func() bool { return b.status().Unapplied == 0 }, func() string {
		return fmt.Sprintf("%d entries still kept", b.status().Unapplied)
	})
}

// A second device made its own key by mistake (the "missing key" hint of
// old led there) and wrote under it; once the right key is imported there,
// its own messages are sealed again under the key the others use, and both
// stores converge.
func TestKeyMistakeHealsOnceTheRightKeyIsImported(t *testing.T) {
	srv := newServer(t)
	k1, _ := seal.GenerateKey()
	wrong, _ := seal.GenerateKey()
	right, _ := seal.NewKeyring(k1)
	mistaken, _ := seal.NewKeyring(wrong)
	a := newDevice(t, "A", srv, right)
	b := newDevice(t, "B", srv, mistaken)
	a.noReports, b.noReports = true, true // the rows kept are the messages'
	a.start()
	b.start()
	a.write("c/a1.json", msg("a1", "c@example.com", "from A"))
	b.write("c/b1.json", msg("b1", "c@example.com", "from B, under the wrong key"))
	waitFor(t, 20*time.Second, "each device to keep the other's entry", func() bool {
		return a.status().Unapplied == 1 && b.status().Unapplied == 1
	})
	b.stop()
	imported, _ := seal.NewKeyring(wrong, k1) // `chatsync key import` adds k1 as the newest key
	b.kr = imported
	b.start()
	waitFor(t, 30*time.Second, "A and B to hold the same two messages", func() bool {
		return len(a.messages()) == 2 && equalMaps(a.messages(), b.messages())
	})
	if n := b.status().Unapplied; n != 0 {
		t.Errorf("B still keeps %d entries after the import", n)
	}
}
