package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/blinktest"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
)

const otherAccount = "carol@example.org"

// newDBDevice is a device whose store is a Blink database of dialect d,
// made with the client's exact schema.
func newDBDevice(t *testing.T, name string, srv *server, kr *seal.Keyring, d blinkdb.Dialect) *device {
	t.Helper()
	dev := newDevice(t, name, srv, kr)
	file := "message_history.db"
	if d == blinkdb.BlinkCocoa {
		file = "history.sqlite"
	}
	dev.store = filepath.Join(filepath.Dir(dev.store), file)
	if err := testschema.CreateForTest(dev.store, d); err != nil {
		t.Fatal(err)
	}
	dev.tweak = func(o *Options) { o.StoreFormat = string(d) }
	return dev
}

// dbAndJSON is a server and devices A, on a database of dialect d, and B,
// on a JSON directory, of one account sharing one key, not started yet.
func dbAndJSON(t *testing.T, d blinkdb.Dialect) (*server, *seal.Keyring, *device, *device) {
	t.Helper()
	srv := newServer(t)
	kr := newKeyring(t)
	return srv, kr, newDBDevice(t, "A", srv, kr, d), newDevice(t, "B", srv, kr)
}

// client writes into a device's database as the chat client would, as
// account acct.
func client(t *testing.T, dev *device, d blinkdb.Dialect, acct string) *blinkdb.DB {
	t.Helper()
	db, err := blinkdb.Open(dev.store, d, acct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rows returns msgid → the message of every live row of the account.
func dbMessages(t *testing.T, db *blinkdb.DB) map[string]string {
	t.Helper()
	snap, err := db.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, r := range snap {
		if !r.Deleted {
			out[k.MsgID] = string(r.Message)
		}
	}
	return out
}

// rawRows is every column of every row of the table, byte-exact
// (blinktest.Dump), for a comparison.
func rawRows(t *testing.T, path, table string) []string {
	t.Helper()
	var out []string
	for _, r := range dumpDB(t, path, table, "1") {
		out = append(out, fmt.Sprint(r)) // a map prints with its keys sorted
	}
	return out
}

// dumpDB is blinktest.Dump on the database at path, read-only.
func dumpDB(t *testing.T, path, table, where string) []map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := blinktest.Dump(db, table, where)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func putJSON(t *testing.T, db *blinkdb.DB, obj map[string]any) {
	t.Helper()
	if _, err := db.Put(context.Background(), []byte(canonical(t, obj)), "client"); err != nil {
		t.Fatal(err)
	}
}

// settled waits until the device has polled after now with nothing left
// to send, after a look at its whole store.
func settled(t *testing.T, d *device) {
	t.Helper()
	since := time.Now()
	d.eng.SyncNow()
	waitFor(t, 20*time.Second, d.name+" to settle", func() bool { return d.idle(since) })
}

// A Blink Qt database and a JSON directory of one account keep one
// history: a row the client writes reaches the directory; an edit, a new
// file and a deleted file there reach the database; the client's soft
// delete deletes the file. Nothing chatsync writes into the database comes
// back as a new version, and the other account's rows in the same file
// are neither changed nor sent.
func TestABlinkQtDatabaseAndAJSONDirectoryConvergeWithoutEchoes(t *testing.T) {
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	qt := client(t, a, blinkdb.BlinkQt, testAccount)
	other := client(t, a, blinkdb.BlinkQt, otherAccount)

	putJSON(t, qt, msg("m1", "bob@example.com", "hello from Blink"))
	carol := msg("c1", "dave@example.com", "carol's own message")
	carol["local_uri"] = otherAccount
	putJSON(t, other, carol)
	before := rawRows(t, a.store, "messages")
	otherRow := before[len(before)-1]

	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 on B", func() bool { return strings.Contains(b.messages()["m1"], "hello from Blink") })

	b.write(fileOf(t, b, "m1"), msg("m1", "bob@example.com", "edited on B"))
	waitFor(t, 20*time.Second, "B's edit in the Qt database", func() bool {
		return strings.Contains(dbMessages(t, qt)["m1"], "edited on B")
	})
	b.write("bob/m2.json", msg("m2", "bob@example.com", "new on B"))
	waitFor(t, 20*time.Second, "m2 in the Qt database", func() bool { return strings.Contains(dbMessages(t, qt)["m2"], "new on B") })
	settled(t, a)
	settled(t, b)
	if got := serverMsgIDs(t, srv, kr); got["m1"] != 2 || got["m2"] != 1 || len(got) != 2 {
		t.Errorf("journal rows per msgid = %v, want m1: 2 (Qt's, B's edit), m2: 1; a third row of m1 or a second of m2 is A sending back what it received", got)
	}

	// The client's own soft delete is a delete.
	sqlExec(t, a.store, `UPDATE messages SET state = 'deleted' WHERE message_id = 'm1' AND account_id = ?`, testAccount)
	waitFor(t, 20*time.Second, "m1 gone from B", func() bool { _, ok := b.messages()["m1"]; return !ok })
	// A file deleted on B removes the row.
	if err := os.Remove(filepath.Join(b.store, filepath.FromSlash(fileOf(t, b, "m2")))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "m2 gone from the Qt database", func() bool { _, ok := dbMessages(t, qt)["m2"]; return !ok })
	settled(t, a)
	if got := serverMsgIDs(t, srv, kr); got["m1"] != 3 || got["m2"] != 2 || got["c1"] != 0 {
		t.Errorf("journal rows per msgid = %v, want m1: 3, m2: 2 and nothing of the other account", got)
	}
	after := rawRows(t, a.store, "messages")
	if !contains(after, otherRow) {
		t.Errorf("the other account's row changed:\nbefore %s\nafter  %v", otherRow, after)
	}
}

// A message from another device becomes a row the client can load: every
// column set, in the client's formats, and Blink Cocoa's journal_id not a
// number.
func TestRowsChatsyncInsertsHaveEveryColumnInTheClientsFormat(t *testing.T) {
	for _, d := range []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa} {
		t.Run(string(d), func(t *testing.T) {
			srv := newServer(t)
			kr := newKeyring(t)
			a := newDBDevice(t, "A", srv, kr, d)
			b := newDevice(t, "B", srv, kr)
			a.start()
			b.start()
			b.write("bob/m1.json", msg("m1", "bob@example.com", "from the JSON device"))
			db := client(t, a, d, testAccount)
			waitFor(t, 20*time.Second, "m1 in the database", func() bool { _, ok := dbMessages(t, db)["m1"]; return ok })
			table, id := "messages", "message_id"
			if d == blinkdb.BlinkCocoa {
				table, id = "chat_messages", "msgid"
			}
			nulls := nullColumns(t, a.store, table, id+" = 'm1'")
			if len(nulls) > 0 {
				t.Errorf("columns left NULL in the row chatsync inserted: %v", nulls)
			}
			if d == blinkdb.BlinkCocoa {
				var jid string
				queryRow(t, a.store, `SELECT journal_id FROM chat_messages WHERE msgid = 'm1'`, &jid)
				if jid == "" || strings.Trim(jid, "0123456789") == "" {
					t.Errorf("journal_id = %q: Blink Cocoa would journal it again, or delete a server row by it", jid)
				}
			}
			var ts string
			queryRow(t, a.store, `SELECT CAST(`+map[blinkdb.Dialect]string{blinkdb.BlinkQt: "timestamp", blinkdb.BlinkCocoa: "time"}[d]+` AS TEXT) FROM `+table+` WHERE `+id+` = 'm1'`, &ts)
			if _, err := time.Parse("2006-01-02 15:04:05.000000", ts); err != nil {
				t.Errorf("time %q is not in the client's layout: %v", ts, err)
			}
		})
	}
}

// A database the client replaced by an empty one is not taken for the
// deletion of every message: the account pauses and says what to do.
func TestAnEmptiedDatabasePausesInsteadOfDeletingEverywhere(t *testing.T) {
	srv, kr, a, b := dbAndJSON(t, blinkdb.BlinkQt)
	putJSON(t, client(t, a, blinkdb.BlinkQt, testAccount), msg("m1", "bob@example.com", "hello"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 on B", func() bool { _, ok := b.messages()["m1"]; return ok })
	settled(t, a)

	saved := a.store + ".saved"
	if err := os.Link(a.store, saved); err != nil {
		t.Fatal(err)
	}
	tmp := a.store + ".new"
	if err := testschema.CreateForTest(tmp, blinkdb.BlinkQt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, a.store); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "A to pause", func() bool {
		st := a.status()
		return st.State == StatePaused && strings.Contains(st.Error, "state rebuild")
	}, func() string { return fmt.Sprintf("%+v", a.status()) })
	settled(t, b)
	if _, ok := b.messages()["m1"]; !ok {
		t.Error("m1 was deleted on B")
	}
	if got := serverMsgIDs(t, srv, kr); got["m1"] != 1 {
		t.Errorf("journal rows of m1 = %d, want 1 (no delete)", got["m1"])
	}

	// The old file put back, the account resumes, and still deletes
	// nothing.
	if err := os.Rename(saved, a.store); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "A to resume", func() bool { return a.status().State != StatePaused },
		func() string { return fmt.Sprintf("%+v", a.status()) })
	settled(t, a)
	if got := serverMsgIDs(t, srv, kr); got["m1"] != 1 {
		t.Errorf("journal rows of m1 = %d after the file came back, want 1", got["m1"])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sqlExec(t *testing.T, path, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func queryRow(t *testing.T, path, q string, dst ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(q).Scan(dst...); err != nil {
		t.Fatal(err)
	}
}

// nullColumns lists the columns of the row where is NULL.
func nullColumns(t *testing.T, path, table, where string) []string {
	t.Helper()
	rows := dumpDB(t, path, table, where)
	if len(rows) != 1 {
		t.Fatalf("%d rows where %s, want 1", len(rows), where)
	}
	var out []string
	for c, v := range rows[0] {
		if v == "NULL" {
			out = append(out, c)
		}
	}
	return out
}
