package engine

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"net/http"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/watch"
)

// Hostile tests of the database store (store_db.go) as the engine uses
// it: what the client, the file and the lock do to it while chatsync runs.

// hostileOps is, per msgid, how many put and delete rows the journal
// holds.
type hostileOps struct{ puts, deletes int }

func hostileJournal(t *testing.T, srv *server, kr *seal.Keyring) map[string]hostileOps {
	t.Helper()
	out := map[string]hostileOps{}
	for _, r := range srv.rows() {
		en, err := kr.Open(r.Data, testAccount)
		if err != nil {
			t.Fatalf("row %d does not open: %v", r.ID, err)
		}
		o := out[en.MsgID]
		if en.Op == seal.OpDelete {
			o.deletes++
		} else {
			o.puts++
		}
		out[en.MsgID] = o
	}
	return out
}

func hostileDeletes(ops map[string]hostileOps) int {
	n := 0
	for _, o := range ops {
		n += o.deletes
	}
	return n
}

func hostileMaxID(srv *server) int64 {
	var m int64
	for _, r := range srv.rows() {
		m = max(m, int64(r.ID))
	}
	return m
}

// hostileCount is how many rows of the Qt table match where.
func hostileCount(t *testing.T, path, where string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// lockedFirstScan is the store with the client holding an exclusive lock
// on the database for the whole of the engine's first scan (a VACUUM or a
// long write of the client's), released as soon as that scan gave up.
type lockedFirstScan struct {
	messageStore
	path    string
	t       *testing.T
	once    sync.Once
	scanErr atomic.Value
}

func (l *lockedFirstScan) Scan(dir string, found func(place), unreadable func(loc, reason string, dir bool)) error {
	first := false
	l.once.Do(func() { first = true })
	if !first {
		return l.messageStore.Scan(dir, found, unreadable)
	}
	db, err := sql.Open("sqlite", "file:"+l.path)
	if err != nil {
		l.t.Error(err)
		return l.messageStore.Scan(dir, found, unreadable)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		l.t.Error(err)
		return l.messageStore.Scan(dir, found, unreadable)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN EXCLUSIVE`); err != nil {
		l.t.Error(err)
		return l.messageStore.Scan(dir, found, unreadable)
	}
	err = l.messageStore.Scan(dir, found, unreadable)
	conn.ExecContext(context.Background(), `ROLLBACK`)
	l.scanErr.Store(fmt.Sprint(err))
	return err
}

// A restart whose first scan finds the database locked (ErrBusy) must not
// take the rows it could not read for deleted: the lock going away a
// moment later must not let the catch-up delete the account's history on
// every device.
func TestAStartupScanThatFindsTheDatabaseLockedDeletesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the database's 10 s busy bound")
	}
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	putJSON(t, qt, msg("m1", "bob@example.com", "one"))
	putJSON(t, qt, msg("m2", "bob@example.com", "two"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 and m2 on B", func() bool { return len(b.messages()) == 2 })
	settled(t, a)
	a.stop()

	l := &lockedFirstScan{path: a.store, t: t}
	a.wrapStore = func(s messageStore) messageStore { l.messageStore = s; return l }
	a.start()
	waitFor(t, 30*time.Second, "A's first scan to fail on the lock", func() bool { return l.scanErr.Load() != nil })
	t.Logf("first scan: %v", l.scanErr.Load())
	waitFor(t, 30*time.Second, "A to catch up", func() bool {
		st := a.status()
		return st.State == StateIdle && st.OutboxDepth == 0
	}, func() string { return fmt.Sprintf("%+v", a.status()) })
	settled(t, a)
	settled(t, b)
	ops := hostileJournal(t, srv, kr)
	if n := hostileDeletes(ops); n > 0 {
		t.Errorf("the journal holds %d deletes after a start-up scan that hit a lock: %+v", n, ops)
	}
	if got := b.messages(); len(got) != 2 {
		t.Errorf("B holds %s, want m1 and m2", describe(got))
	}
	if got := dbMessages(t, qt); len(got) != 2 {
		t.Errorf("A's database holds %s, want m1 and m2", describe(got))
	}
}

// A client that recreated its database (a new profile, a repaired file)
// and then received one message is not a user who deleted every other
// message: the one new row must not lift the pause and delete the
// account's history on every device.
func TestARecreatedDatabaseWithOneNewMessageDeletesNothingElsewhere(t *testing.T) {
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	for i := range 3 {
		putJSON(t, qt, msg(fmt.Sprintf("m%d", i), "bob@example.com", "old history"))
	}
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "the history on B", func() bool { return len(b.messages()) == 3 })
	settled(t, a)

	tmp := a.store + ".new"
	if err := testschema.CreateForTest(tmp, blinkdb.BlinkQt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.store); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "A to pause", func() bool { return a.status().State == StatePaused },
		func() string { return fmt.Sprintf("%+v", a.status()) })
	fresh := client(t, a, blinkdb.BlinkQt, testAccount)
	putJSON(t, fresh, msg("new1", "bob@example.com", "the first message after the client started again"))
	// Either A stays paused (three rechecks of the file pass) or it
	// resumes and sends new1; either way nothing may be deleted.
	deadline := time.Now().Add(3*dbRecheck + 5*time.Second)
	for time.Now().Before(deadline) {
		if _, ok := b.messages()["new1"]; ok || hostileDeletes(hostileJournal(t, srv, kr)) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.status().State == StatePaused {
		if n := hostileDeletes(hostileJournal(t, srv, kr)); n > 0 {
			t.Errorf("%d deletes while paused", n)
		}
		return
	}
	settled(t, a)
	settled(t, b)
	ops := hostileJournal(t, srv, kr)
	if n := hostileDeletes(ops); n > 0 {
		t.Errorf("one new row in a recreated database made A delete %d messages everywhere: %+v", n, ops)
	}
	if got := b.messages(); len(got) != 4 {
		t.Errorf("B holds %s, want the 3 old messages and new1", describe(got))
	}
}

// A message from a JSON device with a field the client's column cannot
// hold (here a body that is a JSON array) is skipped like one lacking a
// field: the cursor moves on and later messages arrive.
func TestAMessageWithANonTextFieldIsSkippedAndTheCursorMovesOn(t *testing.T) {
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	a.start()
	b.start()
	bad := msg("bad", "bob@example.com", "")
	bad["body"] = []any{"rich", "content"}
	b.write("bob/bad.json", bad)
	waitFor(t, 20*time.Second, "B to push the odd message", func() bool { return serverMsgIDs(t, srv, kr)["bad"] == 1 })
	b.write("bob/m2.json", msg("m2", "bob@example.com", "after the odd one"))
	waitFor(t, 20*time.Second, "B to push m2", func() bool { return serverMsgIDs(t, srv, kr)["m2"] == 1 })
	top := hostileMaxID(srv)
	waitFor(t, 20*time.Second, "A's cursor past both rows with no poll error", func() bool {
		st := a.status()
		return st.Cursor >= top && st.LastPollError == ""
	}, func() string {
		st := a.status()
		return fmt.Sprintf("cursor %d (want %d), poll failures %d, poll error %q, skipped %v", st.Cursor, top, st.PollFailures, st.LastPollError, st.Skipped)
	})
}

// A page whose first write fails must not leave later rows written into
// the database but not recorded: the next scan would take them for the
// client's own new messages and push them back under this device's name.
func TestRowsAfterAFailedWriteInOnePageAreNotPushedBack(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDBDevice(t, "A", srv, kr, blinkdb.BlinkQt)
	a.tweak = func(o *Options) {
		o.StoreFormat = string(blinkdb.BlinkQt)
		o.PollInterval, o.ActivePollInterval, o.ProbeInterval = time.Hour, time.Hour, time.Hour // A polls when told
	}
	b := newDevice(t, "B", srv, kr)
	a.start()
	b.start()
	settled(t, a) // caught up: A decides what to push as it scans
	bad := msg("a-bad", "bob@example.com", "")
	bad["body"] = map[string]any{"html": "<b>x</b>"}
	b.write("bob/a-bad.json", bad)
	b.write("bob/z-good.json", msg("z-good", "bob@example.com", "good"))
	waitFor(t, 20*time.Second, "B to push both", func() bool { return len(serverMsgIDs(t, srv, kr)) == 2 })
	a.eng.SyncNow() // one page with both rows
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	waitFor(t, 20*time.Second, "z-good in A's database", func() bool { _, ok := dbMessages(t, qt)["z-good"]; return ok })
	// Let A look at its database again, then push whatever it decided.
	before := a.status()
	a.eng.SyncNow()
	waitFor(t, 20*time.Second, "A to rescan and poll after z-good landed", func() bool {
		st := a.status()
		polled := st.LastPoll.After(before.LastPoll) || st.PollFailures != before.PollFailures
		return polled && st.OutboxDepth == 0
	}, func() string { return fmt.Sprintf("%+v", a.status()) })
	if got := hostileJournal(t, srv, kr)["z-good"]; got.puts != 1 {
		t.Errorf("z-good has %d put rows, want 1: A pushed back a row it wrote itself (A pushed %d)", got.puts, a.status().Pushed)
	}
}

// One msgid under two remote URIs in one account: an incoming delete of
// the message chatsync replicates removes that row only, not the other
// conversation's row the engine refused as a duplicate.
func TestAnIncomingDeleteLeavesTheSameMsgidUnderAnotherRemoteURI(t *testing.T) {
	_, _, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	putJSON(t, qt, msg("m1", "bob@example.com", "to bob"))
	putJSON(t, qt, msg("m1", "carol@example.com", "to carol, same msgid"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 on B", func() bool { _, ok := b.messages()["m1"]; return ok })
	settled(t, a)
	if n := len(a.status().Rejected); n != 1 {
		t.Fatalf("A rejects %d locations, want 1 (the second m1): %+v", n, a.status().Rejected)
	}
	if err := os.Remove(filepath.Join(b.store, filepath.FromSlash(fileOf(t, b, "m1")))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "bob's m1 gone from A's database", func() bool {
		return hostileCount(t, a.store, `message_id = 'm1' AND remote_uri = 'bob@example.com'`) == 0
	})
	if n := hostileCount(t, a.store, `message_id = 'm1' AND remote_uri = 'carol@example.com'`); n != 1 {
		t.Errorf("carol's row with the same msgid was deleted too (%d left): a delete from another device removed a row it never replicated", n)
	}
}

// A change the client commits in the same tick of the file clock as the
// scan before a page (same size, same mtime: Stale cannot see it) must
// not be overwritten by the page and then recorded as chatsync's own
// write, so that it is neither kept nor sent. The tick is simulated by
// putting the file's mtime back.
func TestAClientChangeTheStaleCheckCannotSeeIsNotLost(t *testing.T) {
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	a.tweak = func(o *Options) {
		o.StoreFormat = string(blinkdb.BlinkQt)
		o.PollInterval, o.ActivePollInterval, o.ProbeInterval = time.Hour, time.Hour, time.Hour // A polls when told
	}
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	putJSON(t, qt, msg("m1", "bob@example.com", "original"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 on B", func() bool { _, ok := b.messages()["m1"]; return ok })
	b.write(fileOf(t, b, "m1"), msg("m1", "bob@example.com", "edited on B"))
	waitFor(t, 20*time.Second, "B's edit in the journal", func() bool { return serverMsgIDs(t, srv, kr)["m1"] == 2 })
	b.stop()

	var done atomic.Bool
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request, acct, action string) bool {
		if action != "get_journal_entries" || done.Load() {
			return false
		}
		done.Store(true)
		fi, err := os.Stat(a.store)
		if err != nil {
			t.Error(err)
			return false
		}
		sig := dbFilesSig(a.store)
		db, err := sql.Open("sqlite", "file:"+a.store+"?_pragma=busy_timeout(5000)")
		if err == nil {
			_, err = db.Exec(`UPDATE messages SET content = 'changed in Blink' WHERE message_id = 'm1'`)
			db.Close()
		}
		if err != nil {
			t.Error(err)
		}
		os.Chtimes(a.store, fi.ModTime(), fi.ModTime())
		if dbFilesSig(a.store) != sig {
			t.Errorf("could not hide the change from Stale: %v → %v", sig, dbFilesSig(a.store))
		}
		return false
	})
	a.eng.SyncNow()
	waitFor(t, 20*time.Second, "A's poll", func() bool { return done.Load() })
	settled(t, a)
	settled(t, a)
	inDB := strings.Contains(dbMessages(t, qt)["m1"], "changed in Blink")
	inJournal := false
	for _, r := range srv.rows() {
		if en, err := kr.Open(r.Data, testAccount); err == nil && strings.Contains(string(en.Message), "changed in Blink") {
			inJournal = true
		}
	}
	if !inDB && !inJournal {
		t.Errorf("the client's change is neither in its database (%s) nor in the journal: overwritten by B's older edit and never sent",
			dbMessages(t, qt)["m1"])
	}
}

// With replicate_deletes off, a delete from another device leaves the row
// and a soft delete in the client sends nothing; nothing is pushed back.
func TestReplicateDeletesOffKeepsRowsAndSendsNoDeletes(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDBDevice(t, "A", srv, kr, blinkdb.BlinkQt)
	a.tweak = func(o *Options) { o.StoreFormat = string(blinkdb.BlinkQt); o.ReplicateDeletes = false }
	b := newDevice(t, "B", srv, kr)
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	putJSON(t, qt, msg("mine", "bob@example.com", "written in Blink"))
	a.start()
	b.start()
	b.write("bob/theirs.json", msg("theirs", "bob@example.com", "from B"))
	waitFor(t, 20*time.Second, "theirs in A's database", func() bool { _, ok := dbMessages(t, qt)["theirs"]; return ok })
	waitFor(t, 20*time.Second, "mine on B", func() bool { _, ok := b.messages()["mine"]; return ok })
	if err := os.Remove(filepath.Join(b.store, "bob", "theirs.json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "B's delete in the journal", func() bool { return hostileJournal(t, srv, kr)["theirs"].deletes == 1 })
	sqlExec(t, a.store, `UPDATE messages SET state = 'deleted' WHERE message_id = 'mine'`)
	settled(t, a)
	settled(t, a)
	settled(t, b)
	if _, ok := dbMessages(t, qt)["theirs"]; !ok {
		t.Error("B's delete removed the row although replicate_deletes is off")
	}
	if _, ok := b.messages()["mine"]; !ok {
		t.Error("the client's soft delete reached B although replicate_deletes is off")
	}
	ops := hostileJournal(t, srv, kr)
	if ops["mine"] != (hostileOps{puts: 1}) || ops["theirs"] != (hostileOps{puts: 1, deletes: 1}) {
		t.Errorf("journal = %+v, want mine: 1 put; theirs: 1 put, 1 delete (B's)", ops)
	}
}

// A restart finds what chatsync wrote into the database in its index:
// nothing is pushed again, neither rows it received nor the client's.
func TestARestartPushesNothingAgain(t *testing.T) {
	for _, d := range []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa} {
		t.Run(string(d), func(t *testing.T) {
			srv := newServer(t)
			kr := newKeyring(t)
			a := newDBDevice(t, "A", srv, kr, d)
			b := newDevice(t, "B", srv, kr)
			db := client(t, a, d, testAccount)
			putJSON(t, db, msg("mine", "bob@example.com", "written in Blink"))
			a.start()
			b.start()
			b.write("bob/theirs.json", msg("theirs", "bob@example.com", "from B"))
			lean := msg("lean", "bob@example.com", "few fields")
			delete(lean, "status")
			delete(lean, "media_type")
			b.write("bob/lean.json", lean)
			waitFor(t, 20*time.Second, "B's messages in A's database", func() bool { return len(dbMessages(t, db)) == 3 })
			settled(t, a)
			before := hostileJournal(t, srv, kr)
			for range 2 {
				a.stop()
				a.start()
				settled(t, a)
				if st := a.status(); st.Pushed != 0 {
					t.Errorf("A pushed %d entries after a restart", st.Pushed)
				}
			}
			if after := hostileJournal(t, srv, kr); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("journal changed over restarts:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// VACUUM rewrites the whole file (Blink Cocoa does it after every
// delete): nothing is taken for a change or a delete.
func TestAVacuumChangesNothing(t *testing.T) {
	for _, d := range []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa} {
		t.Run(string(d), func(t *testing.T) {
			srv := newServer(t)
			kr := newKeyring(t)
			a := newDBDevice(t, "A", srv, kr, d)
			b := newDevice(t, "B", srv, kr)
			db := client(t, a, d, testAccount)
			for i := range 20 {
				putJSON(t, db, msg(fmt.Sprintf("m%02d", i), "bob@example.com", strings.Repeat("x", 2000)))
			}
			a.start()
			b.start()
			waitFor(t, 20*time.Second, "the messages on B", func() bool { return len(b.messages()) == 20 })
			settled(t, a)
			before := hostileJournal(t, srv, kr)
			table, id := "messages", "message_id"
			if d == blinkdb.BlinkCocoa {
				table, id = "chat_messages", "msgid"
			}
			sig := dbFilesSig(a.store)
			sqlExec(t, a.store, `DELETE FROM `+table+` WHERE `+id+` IN ('m00', 'm01')`)
			sqlExec(t, a.store, `VACUUM`)
			if dbFilesSig(a.store) == sig {
				t.Fatal("VACUUM did not change the file")
			}
			waitFor(t, 20*time.Second, "the two deletes on B", func() bool { return len(b.messages()) == 18 })
			settled(t, a)
			after := hostileJournal(t, srv, kr)
			if hostileDeletes(after) != 2 || len(serverMsgIDs(t, srv, kr)) != 20 || len(srv.rows()) != len(before)+2 {
				t.Errorf("after a delete and a VACUUM the journal is %+v, want the 20 puts and 2 deletes", after)
			}
		})
	}
}

// The client migrating its table while chatsync runs: a version chatsync
// does not know pauses the account, naming the version, and deletes
// nothing; the known version back, it resumes and catches up.
func TestAMigrationToAnUnknownVersionPausesAndDeletesNothing(t *testing.T) {
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	putJSON(t, qt, msg("m1", "bob@example.com", "hello"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 on B", func() bool { _, ok := b.messages()["m1"]; return ok })
	settled(t, a)
	sqlExec(t, a.store, `UPDATE table_versions SET version = 5 WHERE table_name = 'messages'`)
	waitFor(t, 20*time.Second, "A to pause naming version 5", func() bool {
		st := a.status()
		return st.State == StatePaused && strings.Contains(st.Error, "version 5")
	}, func() string { return fmt.Sprintf("%+v", a.status()) })
	b.write("bob/m2.json", msg("m2", "bob@example.com", "while A is paused"))
	waitFor(t, 20*time.Second, "B to push m2", func() bool { return serverMsgIDs(t, srv, kr)["m2"] == 1 })
	settled(t, b)
	if n := hostileCount(t, a.store, `message_id = 'm2'`); n != 0 {
		t.Errorf("m2 was written into a table of unknown version")
	}
	sqlExec(t, a.store, `UPDATE table_versions SET version = 4 WHERE table_name = 'messages'`)
	waitFor(t, 30*time.Second, "m2 in A's database once the version is known again", func() bool { _, ok := dbMessages(t, qt)["m2"]; return ok },
		func() string { return fmt.Sprintf("%+v", a.status()) })
	settled(t, a)
	if n := hostileDeletes(hostileJournal(t, srv, kr)); n != 0 {
		t.Errorf("%d deletes after a migration", n)
	}
	if _, ok := b.messages()["m1"]; !ok {
		t.Error("m1 gone from B")
	}
}

// hostileDBDeviceOf is a device of account acct (a second account of the
// server) whose store is another device's database file.
func hostileDBDeviceOf(t *testing.T, name, acct string, srv *server, kr *seal.Keyring, file string, d blinkdb.Dialect) *device {
	t.Helper()
	dev := newDevice(t, name, srv, kr)
	dev.store = file
	dev.tweak = func(o *Options) {
		o.StoreFormat = string(d)
		o.Account = acct
		c, err := account.New(account.Config{
			Address: acct, Password: testPassword,
			SettingsURL: srv.http.URL + accountserver.Path, Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Remote = c
	}
	return dev
}

// Two accounts in one database file, two engines on it: each replicates
// its own rows only, each one's writes are not taken for changes by the
// other, and neither echoes.
func TestTwoAccountsInOneDatabaseFileStayApart(t *testing.T) {
	srv := newServerWith(t, func(o *accountserver.Options) {
		o.Accounts = append(o.Accounts, accountserver.Account{Address: otherAccount, Password: testPassword})
	})
	kr := newKeyring(t)
	a := newDBDevice(t, "A", srv, kr, blinkdb.BlinkQt)
	c := hostileDBDeviceOf(t, "A-carol", otherAccount, srv, kr, a.store, blinkdb.BlinkQt)
	b := newDevice(t, "B", srv, kr)
	alice := client(t, a, blinkdb.BlinkQt, testAccount)
	carol := client(t, a, blinkdb.BlinkQt, otherAccount)
	putJSON(t, alice, msg("a1", "bob@example.com", "alice's"))
	cm := msg("c1", "dave@example.com", "carol's")
	cm["local_uri"] = otherAccount
	putJSON(t, carol, cm)
	a.start()
	c.start()
	b.start()
	waitFor(t, 20*time.Second, "a1 on B", func() bool { _, ok := b.messages()["a1"]; return ok })
	for i := range 5 {
		b.write(fmt.Sprintf("bob/b%d.json", i), msg(fmt.Sprintf("b%d", i), "bob@example.com", "from B"))
	}
	waitFor(t, 20*time.Second, "B's messages in alice's rows", func() bool { return len(dbMessages(t, alice)) == 6 })
	putJSON(t, carol, func() map[string]any {
		m := msg("c2", "dave@example.com", "carol's second")
		m["local_uri"] = otherAccount
		return m
	}())
	settled(t, a)
	settled(t, c)
	settled(t, b)
	if got := dbMessages(t, carol); len(got) != 2 {
		t.Errorf("carol's rows: %s, want c1 and c2", describe(got))
	}
	if got := b.messages(); len(got) != 6 {
		t.Errorf("B holds %s, want alice's 6 only", describe(got))
	}
	ops := hostileJournal(t, srv, kr)
	for id, o := range ops {
		if o != (hostileOps{puts: 1}) {
			t.Errorf("alice's journal: %s %+v, want one put", id, o)
		}
	}
	if st := c.status(); st.Pushed != 2 || st.State != StateIdle {
		t.Errorf("carol's engine: pushed %d (want 2), state %s %s", st.Pushed, st.State, st.Error)
	}
}

// An edit from another device that changes a message's remote_uri
// moves its row: the client must not keep the old row as a second copy
// of the message in the old conversation.
func TestAnEditThatChangesTheRemoteURIMovesTheRow(t *testing.T) {
	_, _, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	a.start()
	b.start()
	b.write("bob/m1.json", msg("m1", "bob@example.com", "first"))
	waitFor(t, 20*time.Second, "m1 in A's database", func() bool { return hostileCount(t, a.store, `message_id = 'm1'`) == 1 })
	b.write("bob/m1.json", msg("m1", "robert@example.com", "to the right address"))
	waitFor(t, 20*time.Second, "the edit in A's database", func() bool {
		return hostileCount(t, a.store, `message_id = 'm1' AND remote_uri = 'robert@example.com'`) == 1
	})
	settled(t, a)
	if n := hostileCount(t, a.store, `message_id = 'm1'`); n != 1 {
		t.Errorf("A's database holds %d rows of m1, want 1 (the old row at bob@example.com stays as a stale copy; A rejects it: %+v)", n, a.status().Rejected)
	}
}

// hostileBigDB makes a Blink Qt database of n rows of this account in 50
// conversations, as the client fills them.
func hostileBigDB(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "message_history.db")
	if err := testschema.CreateForTest(path, blinkdb.BlinkQt); err != nil {
		b.Fatal(err)
	}
	db, err := blinkdb.Open(path, blinkdb.BlinkQt, testAccount)
	if err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(msg("seed", "conv00@example.com", "message of an ordinary chat, a line or two long"))
	if _, err := db.Put(context.Background(), data, "dev"); err != nil {
		b.Fatal(err)
	}
	db.Close()
	s, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cols := "account_id, display_name, uri, timestamp, direction, content, content_type, state, encryption_type, decrypted, decryption_error, disposition"
	if _, err := s.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?)
		INSERT INTO messages (message_id, remote_uri, `+cols+`)
		SELECT 'b' || i, 'conv' || (i % 50) || '@example.com', `+cols+` FROM n, messages WHERE message_id = 'seed'`, n-1); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkDBStore20k measures the database store on 20,000 rows of one
// account: "snapshot" reads every row; "index" is a new device's first
// scan; "rescan" a scan that finds every row unchanged (what every change
// the watcher reports costs, and what a page costs once the file changed);
// "client-edit" the client updating one row and the engine's rescan
// deciding to push it; "apply-one" writing one incoming message and the
// rescan that the changed file then causes before the next page.
func BenchmarkDBStore20k(b *testing.B) {
	path := hostileBigDB(b, 20000)
	b.Run("snapshot", func(b *testing.B) {
		db, err := blinkdb.Open(path, blinkdb.BlinkQt, testAccount)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			rows, err := db.Snapshot(context.Background())
			if err != nil || len(rows) != 20000 {
				b.Fatal(len(rows), err)
			}
		}
	})
	// The floor of a read: the same rows and columns read by plain SQL,
	// without the pages, the mapping to messages or the hashes. Run with
	// -count so the two interleave (snapshot, floor, snapshot, floor...).
	b.Run("floor-select", func(b *testing.B) {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			rows, err := db.Query(`SELECT * FROM messages WHERE account_id = ?`, testAccount)
			if err != nil {
				b.Fatal(err)
			}
			cols, _ := rows.Columns()
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			n := 0
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					b.Fatal(err)
				}
				n++
			}
			rows.Close()
			if n != 20000 {
				b.Fatal(n)
			}
		}
	})
	b.Run("index", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			e := benchEngineOf(b, path, FormatBlinkQt)
			b.StartTimer()
			e.scan("", false)
		}
	})
	e := benchEngineOf(b, path, FormatBlinkQt)
	e.scan("", false)
	e.started = true
	b.Run("rescan", func(b *testing.B) {
		for b.Loop() {
			e.handleChange(watch.Change{Rescan: true})
		}
	})
	s, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("client-edit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if _, err := s.Exec(`UPDATE messages SET content = ? WHERE message_id = 'b7'`, fmt.Sprint("edit ", i)); err != nil {
				b.Fatal(err)
			}
			e.handleChange(watch.Change{Rescan: true})
		}
	})
	b.Run("apply-one", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			m := msg(fmt.Sprint("in", i), "conv01@example.com", "incoming")
			data, _ := json.Marshal(m)
			res := e.store.Apply([]storeOp{{loc: "conv01@example.com/" + fmt.Sprint("in", i), data: data, device: "dev"}})
			if res[0].err != nil {
				b.Fatal(res[0].err)
			}
			if e.store.Stale() {
				e.scan("", true)
			}
		}
	})
}

// BenchmarkDBStoreSigCollisions counts the client's same-size commits
// that leave the database's signature (sizes and mtimes of the file, its
// journal and log) as it was: Stale cannot see those.
func BenchmarkDBStoreSigCollisions(b *testing.B) {
	path := hostileBigDB(b, 100)
	s, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	same, total := 0, 0
	for b.Loop() {
		sig := dbFilesSig(path)
		if _, err := s.Exec(`UPDATE messages SET state = CASE state WHEN 'accepted' THEN 'displayed' ELSE 'accepted' END WHERE message_id = 'b7'`); err != nil {
			b.Fatal(err)
		}
		total++
		if dbFilesSig(path) == sig {
			same++
		}
	}
	b.ReportMetric(float64(same)/float64(total), "unseen/commit")
}

// dbFilesSig is what the watcher's poll looks at: the sizes and times of
// the database, its journal and its log.
func dbFilesSig(path string) [3][2]int64 {
	var s [3][2]int64
	for i, suffix := range []string{"", "-journal", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			s[i] = [2]int64{fi.Size(), fi.ModTime().UnixNano()}
		}
	}
	return s
}
