package blinkdb_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/blinktest"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
)

const (
	alice = "alice@example.com" // the account under test
	carol = "carol@example.com" // another account in the same file
	bob   = "bob@example.com"
	// deviceB is the journal device id of the device a message came from.
	deviceB = "urn:uuid:0b0b0b0b-0000-4000-8000-000000000002"
)

var dialects = []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa}

// fixture is one client database with its two views: db, chatsync's, and
// client, a connection that behaves like the client's (autocommit, the
// rollback journal, a 5 s busy timeout).
type fixture struct {
	path    string
	dialect blinkdb.Dialect
	db      *blinkdb.DB
	client  *sql.DB
}

func newFixture(t *testing.T, d blinkdb.Dialect) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	if err := testschema.CreateForTest(path, d); err != nil {
		t.Fatal(err)
	}
	return openFixture(t, path, d)
}

func openFixture(t *testing.T, path string, d blinkdb.Dialect) *fixture {
	t.Helper()
	db, err := blinkdb.Open(path, d, alice)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{path: path, dialect: d, db: db, client: clientConn(t, path)}
}

// clientConn opens the database as Blink does: Python's sqlite3 under
// SQLObject, autocommit, journal_mode=delete, 5 s busy timeout. One
// connection, so PRAGMA data_version compares like with like.
func clientConn(t *testing.T, path string) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	c, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	c.SetMaxOpenConns(1)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (f *fixture) table() string {
	if f.dialect == blinkdb.BlinkQt {
		return "messages"
	}
	return "chat_messages"
}

func (f *fixture) msgidCol() string {
	if f.dialect == blinkdb.BlinkQt {
		return "message_id"
	}
	return "msgid"
}

func (f *fixture) accountCol() string {
	if f.dialect == blinkdb.BlinkQt {
		return "account_id"
	}
	return "local_uri"
}

// clientRow is a row as the client itself writes one: Blink Qt's
// add_from_session for an incoming message, Blink Cocoa's server-history
// import (SMSWindowManager) for an incoming SIP MESSAGE. over changes
// columns.
func (f *fixture) clientRow(msgid string, over map[string]string) map[string]string {
	var r map[string]string
	if f.dialect == blinkdb.BlinkQt {
		r = map[string]string{
			"message_id": msgid, "account_id": alice, "remote_uri": bob,
			"display_name": "Bob", "uri": "sip:" + bob,
			"timestamp": "2026-01-28 10:11:12.123456", "direction": "incoming",
			"content": "hello", "content_type": "text/plain", "state": "delivered",
			"encryption_type": "", "decrypted": "0", "decryption_error": "",
			"disposition": "['positive-delivery', 'display']",
		}
	} else {
		r = map[string]string{
			"msgid": msgid, "direction": "incoming",
			"time": "2026-01-28 10:11:12.123456", "date": "2026-01-28",
			"sip_callid": msgid, "sip_fromtag": "", "sip_totag": "",
			"local_uri": alice, "remote_uri": bob,
			"cpim_from": bob, "cpim_to": alice,
			"cpim_timestamp": "2026-01-28T11:11:12.123456+01:00",
			"body":           "hello", "content_type": "text/plain", "private": "0",
			"status": "delivered", "media_type": "sms",
			"uuid": "", "journal_id": "", "encryption": "",
		}
	}
	maps.Copy(r, over)
	if a, ok := over["account"]; ok {
		delete(r, "account")
		r[f.accountCol()] = a
	}
	return r
}

// insert writes a row through the client's connection, as the client
// would (an autocommit INSERT naming every column).
func (f *fixture) insert(t *testing.T, r map[string]string) int64 {
	t.Helper()
	cols := slices.Sorted(maps.Keys(r))
	args := make([]any, len(cols))
	for i, c := range cols {
		args[i] = r[c]
	}
	res, err := f.client.Exec(`INSERT INTO `+f.table()+` (`+strings.Join(cols, ", ")+`) VALUES (?`+
		strings.Repeat(", ?", len(cols)-1)+`)`, args...)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

// row reads one row of the account by msgid as text, every column but id,
// through quote() so NULLs and types show.
func (f *fixture) row(t *testing.T, account, msgid string) map[string]string {
	t.Helper()
	rows := f.dump(t, f.accountCol()+` = '`+account+`' AND `+f.msgidCol()+` = '`+msgid+`'`)
	if len(rows) != 1 {
		t.Fatalf("%d rows of %s with msgid %s, want 1", len(rows), account, msgid)
	}
	delete(rows[0], "id")
	return rows[0]
}

// dump returns the rows matching where, ordered by id, every column
// (id included) as quote() shows it: byte-exact and typed.
func (f *fixture) dump(t *testing.T, where string) []map[string]string {
	t.Helper()
	rows, err := blinktest.Dump(f.client, f.table(), where)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (f *fixture) snapshot(t *testing.T) map[blinkdb.Key]blinkdb.Row {
	t.Helper()
	snap, err := f.db.Snapshot(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func (f *fixture) put(t *testing.T, msg map[string]any) blinkdb.Row {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	row, err := f.db.Put(ctxT(t), b, deviceB)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func key(msgid string) blinkdb.Key { return blinkdb.Key{MsgID: msgid, RemoteURI: bob} }

// diffFields lists the fields where got and want differ, or "" when they
// are equal field by field.
func diffFields(got, want map[string]any) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, _ := json.Marshal(got[k])
		w, _ := json.Marshal(want[k])
		if _, ok := got[k]; !ok || string(g) != string(w) {
			out = append(out, k+": got "+string(g)+", want "+string(w))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			g, _ := json.Marshal(got[k])
			out = append(out, k+": got "+string(g)+", want no field")
		}
	}
	return strings.Join(out, "\n")
}
