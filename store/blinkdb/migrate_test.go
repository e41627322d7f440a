package blinkdb_test

// Databases the clients migrated from an older table version differ from
// fresh ones (CLIENTS.md, "Migrated databases differ from fresh ones"):
// other index names, columns added by ALTER (so in another order, with SQL
// defaults), rows deleted or rewritten by the migration. chatsync must use
// them exactly as it uses fresh ones.

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatsync/chatsync/store/blinkdb"
)

// execAll runs statements on a plain connection, as the client's migration
// code does (autocommit, one statement at a time).
func execAll(t *testing.T, path string, stmts ...string) {
	t.Helper()
	c := clientConn(t, path)
	for _, s := range stmts {
		if _, err := c.Exec(s); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
	}
	c.Close()
}

// qtV1 is Blink Qt's messages table at version 1: no decryption columns
// (version 4 adds them by ALTER) and no unique index (version 2 adds it,
// as messages_msg_id). The rest is as CLIENTS.md records the table.
var qtV1 = []string{
	`PRAGMA journal_mode = delete`,
	`CREATE TABLE table_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL UNIQUE,
    version INT
)`,
	`CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    account_id VARCHAR(128),
    remote_uri VARCHAR(128),
    display_name VARCHAR(128),
    uri VARCHAR(128),
    timestamp TIMESTAMP,
    direction TEXT,
    content LONGTEXT,
    content_type TEXT,
    state TEXT,
    encryption_type TEXT,
    disposition TEXT
)`,
	`CREATE INDEX messages_remote_idx ON messages (remote_uri)`,
	`CREATE INDEX messages_id_idx ON messages (message_id)`,
	`CREATE TABLE downloaded_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id TEXT,
    account_id VARCHAR(128),
    remote_uri VARCHAR(128),
    filename TEXT
)`,
	`CREATE INDEX downloaded_files_id_idx ON downloaded_files (file_id)`,
	`CREATE UNIQUE INDEX downloaded_files_unq_idx ON downloaded_files (file_id, filename, account_id)`,
	`INSERT INTO table_versions (table_name, version) VALUES ('table_versions', 1), ('messages', 1), ('downloaded_files', 1)`,
}

// qtToV4 is Blink Qt's upgrade, one step at a time with the version
// recorded after each: v2 removes the rows whose message_id repeats (all
// but the first, in any account) and adds the unique index under the name
// messages_msg_id; v3 removes stored PGP key lookups; v4 adds the
// decryption columns with SQL defaults.
var qtToV4 = []string{
	`DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m WHERE EXISTS
		(SELECT 1 FROM messages o WHERE o.message_id = m.message_id AND o.id < m.id))`,
	`CREATE UNIQUE INDEX IF NOT EXISTS messages_msg_id ON messages (message_id, account_id, remote_uri)`,
	`UPDATE table_versions SET version = 2 WHERE table_name = 'messages'`,
	`DELETE FROM messages WHERE content_type = 'application/sylk-api-pgp-key-lookup'`,
	`UPDATE table_versions SET version = 3 WHERE table_name = 'messages'`,
	`ALTER TABLE messages ADD COLUMN decrypted TEXT DEFAULT '0'`,
	`ALTER TABLE messages ADD COLUMN decryption_error LONGTEXT DEFAULT ''`,
	`UPDATE table_versions SET version = 4 WHERE table_name = 'messages'`,
}

// qtV1Row is a row as Blink Qt wrote it at version 1 (no decryption
// columns yet).
func qtV1Row(msgid, account, state, contentType, body string) string {
	return `INSERT INTO messages (message_id, account_id, remote_uri, display_name, uri, timestamp,
		direction, content, content_type, state, encryption_type, disposition) VALUES ('` + msgid + `', '` +
		account + `', 'bob@example.com', 'Bob', 'sip:bob@example.com', '2019-03-04 05:06:07.080910', 'incoming', ` +
		sqlText(body) + `, '` + contentType + `', '` + state + `', '', 'None')`
}

func TestBlinkQtDatabaseMigratedFromVersion1IsSnapshottedAndWrittenAsAFreshOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "message_history.db")
	stmts := append([]string(nil), qtV1...)
	stmts = append(stmts,
		qtV1Row("old-1", alice, "displayed", "text/plain", "from 2019"),
		qtV1Row("old-1", carol, "delivered", "text/plain", "a duplicate the v2 step removes"),
		qtV1Row("old-2", alice, "delivered", "text/html", "<b>also</b> from 2019"),
		qtV1Row("key-lookup", alice, "delivered", "application/sylk-api-pgp-key-lookup", "lookup"),
		qtV1Row("carol-1", carol, "delivered", "text/plain", "carol's"),
	)
	execAll(t, path, append(stmts, qtToV4...)...)

	f := openFixture(t, path, blinkdb.BlinkQt)
	var idx string
	f.client.QueryRow(`SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND sql LIKE '%UNIQUE%' ORDER BY name)`).Scan(&idx)
	if idx != "messages_msg_id" {
		t.Fatalf("unique index of the migrated table: %q, want messages_msg_id (the setup is wrong)", idx)
	}
	other := `account_id != '` + alice + `'`
	before := f.dump(t, other)
	if len(before) != 1 || before[0]["message_id"] != "'carol-1'" || before[0]["decrypted"] != "'0'" {
		t.Fatalf("carol's rows after the migration: %v; want carol-1 only (v2 removed the repeated old-1), decrypted '0' by the ALTER's default", before)
	}

	snap := f.snapshot(t)
	if len(snap) != 2 {
		t.Fatalf("snapshot of the migrated table: %d rows, want alice's old-1 and old-2: %v", len(snap), snap)
	}
	got := decode(t, snap[key("old-1")].Message)
	want := map[string]any{
		"msgid": "old-1", "local_uri": alice, "remote_uri": bob, "time": "2019-03-04 05:06:07.080910",
		"date": "2019-03-04", "direction": "incoming", "body": "from 2019", "content_type": "text/plain",
		"status": "displayed", "encryption": "", "cpim_from": "Bob <bob@example.com>",
		"blink_qt": map[string]any{"display_name": "Bob", "uri": "sip:bob@example.com", "encryption_type": "",
			"decrypted": "0", "decryption_error": "", "disposition": "None"},
	}
	if diff := diffFields(got, want); diff != "" {
		t.Errorf("old-1 from the migrated table:\n%s", diff)
	}

	// A new message: every column written, in the client's formats, also
	// the two the migration added.
	f.put(t, map[string]any{"msgid": "new-1", "remote_uri": bob, "direction": "outgoing",
		"time": "2026-01-28 10:11:12.5", "body": "after the migration", "status": "delivered"})
	r := f.row(t, alice, "new-1")
	for c, v := range map[string]string{
		"timestamp": "'2026-01-28 10:11:12.500000'", "state": "'delivered'", "content": "'after the migration'",
		"content_type": "'text/plain'", "decrypted": "'0'", "decryption_error": "''", "disposition": "'None'",
		"encryption_type": "''", "uri": "'sip:alice@example.com'", "display_name": "''", "account_id": "'" + alice + "'",
	} {
		if r[c] != v {
			t.Errorf("new row: %s = %s, want %s", c, r[c], v)
		}
	}
	for c, v := range r {
		if v == "NULL" {
			t.Errorf("new row: %s is NULL", c)
		}
	}

	// A merge into an old row changes what the message changes, and the
	// unique index (named otherwise) still keeps it one row.
	f.put(t, map[string]any{"msgid": "old-2", "remote_uri": bob, "status": "displayed"})
	f.put(t, map[string]any{"msgid": "old-2", "remote_uri": bob, "status": "displayed"})
	rows := f.dump(t, `message_id = 'old-2'`)
	if len(rows) != 1 || rows[0]["state"] != "'displayed'" || rows[0]["content"] != "'<b>also</b> from 2019'" ||
		rows[0]["content_type"] != "'text/html'" || rows[0]["decrypted"] != "'0'" {
		t.Errorf("old-2 after the merge: %v; want one row, state 'displayed', its body and type kept", rows)
	}
	if s := decode(t, f.snapshot(t)[key("old-2")].Message); s["status"] != "displayed" || s["body"] != "<b>also</b> from 2019" {
		t.Errorf("old-2 in the snapshot after the merge: status %v body %v", s["status"], s["body"])
	}

	if err := f.db.Delete(ctxT(t), "old-1"); err != nil {
		t.Fatal(err)
	}
	snap = f.snapshot(t)
	if _, ok := snap[key("old-1")]; ok || len(snap) != 2 {
		t.Errorf("after Delete(old-1): %v, want old-2 and new-1", snap)
	}
	assertSameRows(t, before, f.dump(t, other))
}

// cocoaV3 is Blink Cocoa's chat_messages before version 4: no uuid and
// journal_id (the version 4 step adds them by ALTER), and the three indexes
// older versions had. encryption, the column the class lists after
// journal_id, came later still; CLIENTS.md does not say by which step, so
// it is added by ALTER after them here.
var cocoaV3 = []string{
	`PRAGMA journal_mode = delete`,
	`CREATE TABLE versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL UNIQUE,
    version INT
)`,
	`CREATE TABLE chat_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msgid TEXT,
    direction TEXT,
    time TIMESTAMP,
    date DATE,
    sip_callid TEXT,
    sip_fromtag TEXT,
    sip_totag TEXT,
    local_uri VARCHAR(128),
    remote_uri VARCHAR(128),
    cpim_from VARCHAR(128),
    cpim_to VARCHAR(128),
    cpim_timestamp TEXT,
    body LONGTEXT,
    content_type TEXT,
    private TEXT,
    status TEXT,
    media_type TEXT
)`,
	`CREATE UNIQUE INDEX chat_messages_msg_idx ON chat_messages (msgid, local_uri, remote_uri)`,
	`CREATE INDEX chat_messages_id_idx ON chat_messages (msgid)`,
	`CREATE INDEX chat_messages_local_idx ON chat_messages (local_uri)`,
	`CREATE INDEX chat_messages_remote_idx ON chat_messages (remote_uri)`,
	`CREATE INDEX chat_messages_date_index ON chat_messages (date)`,
	`CREATE INDEX chat_messages_time_index ON chat_messages (time)`,
	`CREATE INDEX chat_messages_sip_callid_index ON chat_messages (sip_callid)`,
	`INSERT INTO versions (table_name, version) VALUES ('sessions', 2), ('chat_messages', 3)`,
}

// cocoaInstance is the Blink Cocoa instance id the version 4 step writes
// into every old row's uuid.
const cocoaInstance = "5c0c0a00-1111-4222-8333-444455556666"

// cocoaToV8 is Blink Cocoa's migration as CLIENTS.md gives it: uuid and
// journal_id added by ALTER (with the client's quoted column names) and
// every old row set to uuid = the instance id, journal_id = '0'; the
// sylk-message-metadata rows removed (the < 7 / < 8 steps); the version
// recorded.
var cocoaToV8 = []string{
	`alter table chat_messages add column 'uuid' TEXT`,
	`alter table chat_messages add column 'journal_id' TEXT`,
	`UPDATE chat_messages SET uuid = '` + cocoaInstance + `', journal_id = '0'`,
	`alter table chat_messages add column 'encryption' TEXT`,
	`DELETE FROM chat_messages WHERE content_type = 'application/sylk-message-metadata'`,
	`UPDATE versions SET version = 8 WHERE table_name = 'chat_messages'`,
}

func cocoaV3Row(msgid, account, status, contentType, body string) string {
	return `INSERT INTO chat_messages (msgid, direction, time, date, sip_callid, sip_fromtag, sip_totag,
		local_uri, remote_uri, cpim_from, cpim_to, cpim_timestamp, body, content_type, private, status, media_type)
		VALUES ('` + msgid + `', 'outgoing', '2018-07-08 09:10:11.121314', '2018-07-08', 'cid@10.0.0.1', '', '', '` +
		account + `', 'bob@example.com', 'Alice <` + account + `>', 'Bob <bob@example.com>',
		'2018-07-08T11:10:11.121314+02:00', ` + sqlText(body) + `, '` + contentType + `', '0', '` + status + `', 'chat')`
}

func TestBlinkCocoaDatabaseMigratedFromVersion3IsSnapshottedAndWrittenAsAFreshOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.sqlite")
	stmts := append([]string(nil), cocoaV3...)
	stmts = append(stmts,
		cocoaV3Row("old-1", alice, "delivered", "text", "from 2018"),
		cocoaV3Row("old-2", alice, "sent", "html", "<i>also</i> from 2018"),
		cocoaV3Row("meta", alice, "delivered", "application/sylk-message-metadata", "{}"),
		cocoaV3Row("carol-1", carol, "delivered", "text", "carol's"),
		cocoaV3Row("old-1", carol, "delivered", "text", "carol's, same msgid as alice's"),
	)
	execAll(t, path, append(stmts, cocoaToV8...)...)

	f := openFixture(t, path, blinkdb.BlinkCocoa)
	other := `local_uri != '` + alice + `'`
	before := f.dump(t, other)
	if len(before) != 2 || before[0]["uuid"] != "'"+cocoaInstance+"'" || before[0]["journal_id"] != "'0'" || before[0]["encryption"] != "NULL" {
		t.Fatalf("carol's rows after the migration: %v; want two, with the migration's uuid and journal_id '0'", before)
	}
	schema := func() string {
		var s string
		f.client.QueryRow(`SELECT group_concat(name || ':' || ifnull(sql, ''), char(10)) FROM (SELECT name, sql FROM sqlite_master ORDER BY name)`).Scan(&s)
		return s
	}
	schemaBefore := schema()
	if !strings.Contains(schemaBefore, "chat_messages_sip_callid_index") {
		t.Fatal("the migrated table lacks its old indexes (the setup is wrong)")
	}

	snap := f.snapshot(t)
	if len(snap) != 2 {
		t.Fatalf("snapshot of the migrated table: %d rows, want alice's old-1 and old-2: %v", len(snap), snap)
	}
	// The migration's uuid and journal_id are not sent; encryption is NULL
	// in old rows, so there is no such field.
	got := decode(t, snap[key("old-2")].Message)
	want := map[string]any{
		"msgid": "old-2", "local_uri": alice, "remote_uri": bob, "time": "2018-07-08 09:10:11.121314",
		"date": "2018-07-08", "direction": "outgoing", "body": "<i>also</i> from 2018", "content_type": "text/html",
		"media_type": "chat", "cpim_from": "Alice <alice@example.com>", "cpim_to": "Bob <bob@example.com>",
		"cpim_timestamp": "2018-07-08T11:10:11.121314+02:00", "private": "0", "status": "sent", "call_id": "cid@10.0.0.1",
		"blink_cocoa": map[string]any{"sip_fromtag": "", "sip_totag": ""},
	}
	if diff := diffFields(got, want); diff != "" {
		t.Errorf("old-2 from the migrated table:\n%s", diff)
	}

	// A new row: every column, the added ones included.
	f.put(t, map[string]any{"msgid": "new-1", "remote_uri": bob, "direction": "incoming",
		"time": "2026-01-28T11:11:12.25+01:00", "body": "after the migration", "content_type": "text/plain"})
	r := f.row(t, alice, "new-1")
	for c, v := range map[string]string{
		"time": "'2026-01-28 10:11:12.250000'", "date": "'2026-01-28'", "cpim_timestamp": "'2026-01-28T10:11:12.250000+00:00'",
		"status": "'delivered'", "media_type": "'sms'", "content_type": "'text/plain'", "private": "'0'",
		"uuid": "'" + deviceB + "'", "journal_id": "'chatsync'", "encryption": "''", "sip_callid": "''",
		"cpim_from": "'" + bob + "'", "cpim_to": "'" + alice + "'",
	} {
		if r[c] != v {
			t.Errorf("new row: %s = %s, want %s", c, r[c], v)
		}
	}
	for c, v := range r {
		if v == "NULL" {
			t.Errorf("new row: %s is NULL", c)
		}
	}

	// A merge into an old row: the status changes; the migration's uuid and
	// journal_id and the NULL encryption stay (the message has no such
	// fields); carol's row with the same msgid is left alone.
	f.put(t, map[string]any{"msgid": "old-1", "remote_uri": bob, "status": "displayed"})
	r = f.row(t, alice, "old-1")
	if r["status"] != "'displayed'" || r["uuid"] != "'"+cocoaInstance+"'" || r["journal_id"] != "'0'" ||
		r["encryption"] != "NULL" || r["body"] != "'from 2018'" || r["content_type"] != "'text'" {
		t.Errorf("old-1 after the merge: %v; want status 'displayed', uuid, journal_id, encryption, body and type as they were", r)
	}

	if err := f.db.Delete(ctxT(t), "old-1"); err != nil {
		t.Fatal(err)
	}
	snap = f.snapshot(t)
	if _, ok := snap[key("old-1")]; ok || len(snap) != 2 {
		t.Errorf("after Delete(old-1): %v, want old-2 and new-1", snap)
	}
	assertSameRows(t, before, f.dump(t, other))
	if s := schema(); s != schemaBefore {
		t.Errorf("the schema changed:\n%s\nwas\n%s", s, schemaBefore)
	}
}

// sqlText quotes s as an SQL string literal.
func sqlText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// assertSameRows checks that rows (another account's, in full, id
// included) are byte for byte what they were.
func assertSameRows(t *testing.T, before, after []map[string]string) {
	t.Helper()
	if len(after) != len(before) {
		t.Fatalf("other account: %d rows before, %d after", len(before), len(after))
	}
	for i := range before {
		if !maps.Equal(before[i], after[i]) {
			t.Errorf("other account's row changed:\n%v\n%v", before[i], after[i])
		}
	}
}
