package blinkdb_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/blinktest"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
)

// fullMessage is a wire message with every field a dialect reads back, so
// a round trip must give it back unchanged.
func fullMessage(d blinkdb.Dialect, msgid string) map[string]any {
	if d == blinkdb.BlinkQt {
		return map[string]any{
			"msgid": msgid, "local_uri": alice, "remote_uri": bob,
			"time": "2026-01-28 10:11:12.123456", "date": "2026-01-28",
			"direction": "incoming", "body": "it's <b>here</b>", "content_type": "text/html",
			"status": "displayed", "encryption": "verified", "cpim_from": "Bob <bob@example.com>",
			"blink_qt": map[string]any{
				"display_name": "Bob", "uri": "sip:bob@example.com",
				"encryption_type": "['OpenPGP']", "decrypted": "1", "decryption_error": "",
				"disposition": "['positive-delivery', 'display']",
			},
		}
	}
	return map[string]any{
		"msgid": msgid, "local_uri": alice, "remote_uri": bob,
		"time": "2026-01-28 10:11:12.123456", "date": "2026-01-28",
		"direction": "outgoing", "body": "it's <b>here</b>", "content_type": "text/html",
		"media_type": "chat", "cpim_from": "Alice <alice@example.com>", "cpim_to": "Bob <bob@example.com>",
		"cpim_timestamp": "2026-01-28T11:11:12.123456+01:00", "private": "1", "status": "sent",
		"call_id": "abc@10.0.0.1", "encryption": "",
		"blink_cocoa": map[string]any{"sip_fromtag": "ft1", "sip_totag": "tt2"},
	}
}

func TestPutThenSnapshotGivesTheMessageBackFieldByField(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			want := fullMessage(d, "m1")
			put := f.put(t, want)
			snap := f.snapshot(t)
			row, ok := snap[key("m1")]
			if !ok || len(snap) != 1 {
				t.Fatalf("snapshot = %v, want one row m1", snap)
			}
			if diff := diffFields(decode(t, row.Message), want); diff != "" {
				t.Errorf("message after the round trip:\n%s", diff)
			}
			if row.Hash != put.Hash || string(row.Message) != string(put.Message) {
				t.Errorf("Put returned hash %s, snapshot has %s: Put must report the row as written", put.Hash, row.Hash)
			}
			if row.Deleted {
				t.Error("row reported deleted")
			}
		})
	}
}

// A row the client wrote, sent to a second device of the same format,
// becomes the same row there: every column equal (but Blink Cocoa's uuid
// and journal_id, which say who journaled it).
func TestSecondDeviceOfOneFormatRebuildsTheClientsRowExactly(t *testing.T) {
	over := map[blinkdb.Dialect]map[string]string{
		// An odd state word and a TLS note: details no other format keeps.
		blinkdb.BlinkQt: {"state": "queued", "encryption_type": "['TLS']", "display_name": "",
			"decryption_error": "x", "disposition": "None"},
		// An SMS row with a chat-style content type, and dialog tags.
		blinkdb.BlinkCocoa: {"content_type": "text", "sip_fromtag": "f", "sip_totag": "t",
			"cpim_from": "None <bob@example.com>"},
	}
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			a, b := newFixture(t, d), newFixture(t, d)
			a.insert(t, a.clientRow("m1", over[d]))
			want := a.row(t, alice, "m1")
			row := a.snapshot(t)[key("m1")]
			if _, err := b.db.Put(ctxT(t), row.Message, deviceB); err != nil {
				t.Fatal(err)
			}
			got := b.row(t, alice, "m1")
			if d == blinkdb.BlinkCocoa {
				want["uuid"], want["journal_id"] = "'"+deviceB+"'", "'chatsync'"
			}
			for c := range want {
				if got[c] != want[c] {
					t.Errorf("%s = %s on the second device, %s on the first", c, got[c], want[c])
				}
			}
			if snapB := b.snapshot(t)[key("m1")]; string(snapB.Message) != string(row.Message) {
				t.Errorf("second device's message\n%s\nfirst device's\n%s", snapB.Message, row.Message)
			}
		})
	}
}

// Blink Qt → wire → Blink Cocoa → wire: every common field the Qt device
// sent comes back the same from the Cocoa device. And the other way, for
// the fields Blink Qt has columns for.
func TestCommonFieldsSurviveQtToCocoaAndBack(t *testing.T) {
	qt, cocoa := newFixture(t, blinkdb.BlinkQt), newFixture(t, blinkdb.BlinkCocoa)
	qt.insert(t, qt.clientRow("q1", map[string]string{"state": "accepted", "direction": "outgoing",
		"display_name": "Alice", "uri": "sip:" + alice, "encryption_type": "['OpenPGP']", "decrypted": "1"}))
	fromQt := decode(t, qt.snapshot(t)[key("q1")].Message)
	if _, err := cocoa.db.Put(ctxT(t), qt.snapshot(t)[key("q1")].Message, deviceB); err != nil {
		t.Fatal(err)
	}
	viaCocoa := decode(t, cocoa.snapshot(t)[key("q1")].Message)
	common := maps.Clone(fromQt)
	delete(common, "blink_qt")
	for k, v := range common {
		if viaCocoa[k] != v {
			t.Errorf("%s: Qt sent %v, Cocoa sends %v", k, v, viaCocoa[k])
		}
	}
	if fromQt["status"] != "sent" || fromQt["cpim_from"] != "Alice <alice@example.com>" || fromQt["encryption"] != "verified" {
		t.Errorf("Qt message %v: want status sent, cpim_from Alice <alice@example.com>, encryption verified", fromQt)
	}
	if raw := cocoa.row(t, alice, "q1"); raw["status"] != "'sent'" || raw["content_type"] != "'text/plain'" ||
		raw["media_type"] != "'sms'" {
		t.Errorf("Cocoa row status %s content_type %s media_type %s, want 'sent' 'text/plain' 'sms'",
			raw["status"], raw["content_type"], raw["media_type"])
	}

	cocoa.insert(t, cocoa.clientRow("c1", map[string]string{"media_type": "chat", "content_type": "html",
		"status": "displayed", "cpim_from": "Bob <bob@example.com>", "encryption": "verified"}))
	fromCocoa := decode(t, cocoa.snapshot(t)[key("c1")].Message)
	if _, err := qt.db.Put(ctxT(t), cocoa.snapshot(t)[key("c1")].Message, deviceB); err != nil {
		t.Fatal(err)
	}
	viaQt := decode(t, qt.snapshot(t)[key("c1")].Message)
	for _, k := range []string{"msgid", "local_uri", "remote_uri", "time", "date", "direction", "body",
		"content_type", "status", "cpim_from", "encryption"} {
		if viaQt[k] != fromCocoa[k] {
			t.Errorf("%s: Cocoa sent %v, Qt sends %v", k, fromCocoa[k], viaQt[k])
		}
	}
	if fromCocoa["content_type"] != "text/html" {
		t.Errorf("Cocoa chat 'html' sent as %v, want text/html", fromCocoa["content_type"])
	}
	if raw := qt.row(t, alice, "c1"); raw["display_name"] != "'Bob'" || raw["uri"] != "'sip:bob@example.com'" ||
		raw["disposition"] != "'None'" {
		t.Errorf("Qt row display_name %s uri %s disposition %s, want 'Bob' 'sip:bob@example.com' 'None'",
			raw["display_name"], raw["uri"], raw["disposition"])
	}
}

func TestStatusWordsMapBetweenTheClients(t *testing.T) {
	for _, tc := range []struct{ qt, wire, cocoa string }{
		{"pending", "queued", "queued"},
		{"accepted", "sent", "sent"},
		{"delivered", "delivered", "delivered"},
		{"displayed", "displayed", "displayed"},
		{"failed", "failed", "failed"},
		{"failed-local", "failed_local", "failed_local"}, // incoming: not resent by anyone
	} {
		qt, cocoa := newFixture(t, blinkdb.BlinkQt), newFixture(t, blinkdb.BlinkCocoa)
		qt.insert(t, qt.clientRow("m", map[string]string{"state": tc.qt}))
		row := qt.snapshot(t)[key("m")]
		if got := decode(t, row.Message)["status"]; got != tc.wire {
			t.Errorf("Qt %s sent as %v, want %s", tc.qt, got, tc.wire)
		}
		if _, err := cocoa.db.Put(ctxT(t), row.Message, deviceB); err != nil {
			t.Fatal(err)
		}
		if got := cocoa.row(t, alice, "m")["status"]; got != "'"+tc.cocoa+"'" {
			t.Errorf("Qt %s written to Cocoa as %s, want %s", tc.qt, got, tc.cocoa)
		}
	}
}

// Both clients resend their own outgoing rows left in failed-local; a
// message another device failed to send must not be sent by this one.
func TestOutgoingFailedLocalArrivesAsFailed(t *testing.T) {
	for _, d := range dialects {
		f := newFixture(t, d)
		msg := fullMessage(d, "m1")
		msg["direction"], msg["status"] = "outgoing", "failed_local"
		f.put(t, msg)
		col := map[blinkdb.Dialect]string{blinkdb.BlinkQt: "state", blinkdb.BlinkCocoa: "status"}[d]
		if got := f.row(t, alice, "m1")[col]; got != "'failed'" {
			t.Errorf("%s: %s = %s, want 'failed'", d, col, got)
		}
	}
}

var clientTime = regexp.MustCompile(`^'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}'$`)

// A message with only what every device has becomes a row the client can
// load: no column NULL (there are no SQL defaults), times in SQLObject's
// layout, the client's flags and words.
func TestPutFillsEveryColumnInTheClientsFormats(t *testing.T) {
	minimal := map[string]any{"msgid": "m1", "remote_uri": bob, "direction": "incoming",
		"time": "2026-01-28T11:11:12.5+01:00", "body": "hi"}
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			f.put(t, minimal)
			r := f.row(t, alice, "m1")
			for c, v := range r {
				if v == "NULL" {
					t.Errorf("column %s is NULL", c)
				}
				if !strings.HasPrefix(v, "'") {
					t.Errorf("column %s = %s, want text", c, v)
				}
			}
			want := map[string]string{}
			if d == blinkdb.BlinkQt {
				want = map[string]string{"timestamp": "'2026-01-28 10:11:12.500000'", "account_id": "'" + alice + "'",
					"state": "'delivered'", "content_type": "'text/plain'", "decrypted": "'0'",
					"disposition": "'None'", "uri": "'sip:bob@example.com'", "display_name": "''"}
			} else {
				want = map[string]string{"time": "'2026-01-28 10:11:12.500000'", "date": "'2026-01-28'",
					"cpim_timestamp": "'2026-01-28T10:11:12.500000+00:00'", "local_uri": "'" + alice + "'",
					"private": "'0'", "status": "'delivered'", "media_type": "'sms'", "content_type": "'text/plain'",
					"cpim_from": "'" + bob + "'", "cpim_to": "'" + alice + "'",
					"uuid": "'" + deviceB + "'", "journal_id": "'chatsync'", "sip_callid": "''"}
			}
			for c, v := range want {
				if r[c] != v {
					t.Errorf("%s = %s, want %s", c, r[c], v)
				}
			}
			timeCol := map[blinkdb.Dialect]string{blinkdb.BlinkQt: "timestamp", blinkdb.BlinkCocoa: "time"}[d]
			if !clientTime.MatchString(r[timeCol]) {
				t.Errorf("%s = %s, not YYYY-MM-DD HH:MM:SS.ffffff", timeCol, r[timeCol])
			}
		})
	}
}

// Blink Cocoa sends delete_journal_entries with the journal_id of the rows
// its user deletes: what chatsync writes there must be no server row id.
func TestCocoaJournalIDIsNeverANumberAndUUIDIsTheWritingDevice(t *testing.T) {
	f := newFixture(t, blinkdb.BlinkCocoa)
	f.put(t, fullMessage(blinkdb.BlinkCocoa, "m1"))
	r := f.row(t, alice, "m1")
	if jid := r["journal_id"]; jid == "''" || regexp.MustCompile(`^'\d`).MatchString(jid) {
		t.Errorf("journal_id = %s: empty or numeric", jid)
	}
	if r["uuid"] != "'"+deviceB+"'" {
		t.Errorf("uuid = %s, want the writing device %s", r["uuid"], deviceB)
	}
	if _, err := f.db.Put(ctxT(t), []byte(`{"msgid":"m2","remote_uri":"bob@example.com","direction":"incoming","time":"2026-01-28 10:00:00"}`), ""); !errors.Is(err, blinkdb.ErrIncomplete) {
		t.Errorf("Put without a device: %v, want ErrIncomplete", err)
	}
}

// The client may hold the message already (Blink Qt also gets it from
// SylkServer or SIP): Put merges into that row instead of failing on the
// unique key, and writes nothing when the row already says it.
func TestPutMergesIntoTheRowWithTheSameUniqueKey(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			id := f.insert(t, f.clientRow("m1", nil))
			before := f.row(t, alice, "m1")
			msg := map[string]any{"msgid": "m1", "remote_uri": bob, "status": "displayed", "body": "edited"}
			f.put(t, msg)
			rows := f.dump(t, f.msgidCol()+` = 'm1'`)
			if len(rows) != 1 || rows[0]["id"] != strconv.FormatInt(id, 10) {
				t.Fatalf("rows after the merge: %v, want the one row with id %d", rows, id)
			}
			after := rows[0]
			statusCol, bodyCol := "state", "content"
			if d == blinkdb.BlinkCocoa {
				statusCol, bodyCol = "status", "body"
			}
			if after[statusCol] != "'displayed'" || after[bodyCol] != "'edited'" {
				t.Errorf("merged row %s = %s, %s = %s; want 'displayed', 'edited'", statusCol, after[statusCol], bodyCol, after[bodyCol])
			}
			for c, v := range before {
				if c != statusCol && c != bodyCol && after[c] != v {
					t.Errorf("%s changed from %s to %s, though the message did not carry it", c, v, after[c])
				}
			}
			var v1, v2 int
			f.client.QueryRow(`PRAGMA data_version`).Scan(&v1)
			f.put(t, msg)
			f.client.QueryRow(`PRAGMA data_version`).Scan(&v2)
			if v1 != v2 {
				t.Error("Put of what the row already says wrote to the file")
			}
		})
	}
}

// Blink Qt's own delete only sets state='deleted'; that is a delete.
func TestQtSoftDeleteIsReportedAsDeleted(t *testing.T) {
	f := newFixture(t, blinkdb.BlinkQt)
	f.insert(t, f.clientRow("m1", nil))
	before := f.snapshot(t)[key("m1")]
	if before.Deleted {
		t.Fatal("fresh row reported deleted")
	}
	if _, err := f.client.Exec(`UPDATE messages SET state = 'deleted' WHERE message_id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	after := f.snapshot(t)[key("m1")]
	if !after.Deleted || after.Hash == before.Hash {
		t.Errorf("after the soft delete: Deleted %v, hash changed %v; want true, true", after.Deleted, after.Hash != before.Hash)
	}
}

// The clients update rows in place (status, body, Qt's bulk 'displayed'
// across accounts); the row hash sees each change and only that row.
func TestSnapshotHashSeesInPlaceUpdates(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			f.insert(t, f.clientRow("m1", nil))
			f.insert(t, f.clientRow("m2", nil))
			statusCol, bodyCol := "state", "content"
			if d == blinkdb.BlinkCocoa {
				statusCol, bodyCol = "status", "body"
			}
			prev := f.snapshot(t)
			for _, upd := range []string{statusCol + ` = 'displayed'`, bodyCol + ` = 'decrypted text'`} {
				if _, err := f.client.Exec(`UPDATE ` + f.table() + ` SET ` + upd + ` WHERE ` + f.msgidCol() + ` = 'm1'`); err != nil {
					t.Fatal(err)
				}
				now := f.snapshot(t)
				if now[key("m1")].Hash == prev[key("m1")].Hash {
					t.Errorf("%s: hash of m1 unchanged", upd)
				}
				if now[key("m2")].Hash != prev[key("m2")].Hash {
					t.Errorf("%s: hash of the untouched m2 changed", upd)
				}
				prev = now
			}
		})
	}
}

// Another account's rows in the same file are neither reported nor
// changed, byte for byte, by Put, a merge or Delete, even with the same
// msgid and remote (the clients' own lookups ignore the account; ours
// must not).
func TestOtherAccountsRowsStayByteForByte(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			f.insert(t, f.clientRow("shared", map[string]string{"account": carol}))
			f.insert(t, f.clientRow("carol-only", map[string]string{"account": carol}))
			f.insert(t, f.clientRow("shared", nil))
			other := `` + f.accountCol() + ` != '` + alice + `'`
			before := f.dump(t, other)

			f.put(t, fullMessage(d, "shared"))     // merge
			f.put(t, fullMessage(d, "carol-only")) // new, for alice
			f.put(t, fullMessage(d, "new"))
			snap := f.snapshot(t)
			if err := f.db.Delete(ctxT(t), "shared"); err != nil {
				t.Fatal(err)
			}

			for k := range snap {
				if k.MsgID != "shared" && k.MsgID != "carol-only" && k.MsgID != "new" {
					t.Errorf("snapshot has %v", k)
				}
			}
			if len(snap) != 3 {
				t.Errorf("snapshot has %d rows, want alice's 3", len(snap))
			}
			after := f.dump(t, other)
			if len(after) != len(before) {
				t.Fatalf("other account: %d rows before, %d after", len(before), len(after))
			}
			for i := range before {
				if !maps.Equal(before[i], after[i]) {
					t.Errorf("other account's row changed:\n%v\n%v", before[i], after[i])
				}
			}
			if n := len(f.dump(t, f.accountCol()+` = '`+alice+`' AND `+f.msgidCol()+` = 'shared'`)); n != 0 {
				t.Errorf("Delete left %d of alice's rows", n)
			}
		})
	}
}

// Delete removes the account's rows for the msgid whatever the remote,
// as Blink Qt's remove_message does for a delete from another device.
func TestDeleteRemovesTheAccountsRowsForTheMsgid(t *testing.T) {
	for _, d := range dialects {
		f := newFixture(t, d)
		f.insert(t, f.clientRow("m1", nil))
		f.insert(t, f.clientRow("m1", map[string]string{"remote_uri": "dave@example.com"}))
		f.insert(t, f.clientRow("m2", nil))
		if err := f.db.Delete(ctxT(t), "m1"); err != nil {
			t.Fatal(err)
		}
		if err := f.db.Delete(ctxT(t), "never-there"); err != nil {
			t.Errorf("%s: deleting an unknown msgid: %v", d, err)
		}
		snap := f.snapshot(t)
		if _, ok := snap[key("m2")]; len(snap) != 1 || !ok {
			t.Errorf("%s: after Delete(m1): %v, want only m2", d, snap)
		}
	}
}

func TestUnknownTableVersionIsRefusedNamingIt(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "h.db")
			if err := testschema.CreateForTest(path, d); err != nil {
				t.Fatal(err)
			}
			if err := testschema.SetVersion(path, d, 9); err != nil {
				t.Fatal(err)
			}
			_, err := blinkdb.Open(path, d, alice)
			if !errors.Is(err, blinkdb.ErrUnknownVersion) || !strings.Contains(err.Error(), "version 9") {
				t.Errorf("Open of a version 9 table: %v; want ErrUnknownVersion naming version 9", err)
			}

			// A client that migrates while chatsync has the file open is
			// noticed before anything is written.
			path2 := filepath.Join(t.TempDir(), "h.db")
			testschema.CreateForTest(path2, d)
			f := openFixture(t, path2, d)
			testschema.SetVersion(path2, d, 3)
			if _, err := f.db.Snapshot(ctxT(t)); !errors.Is(err, blinkdb.ErrUnknownVersion) || !strings.Contains(err.Error(), "version 3") {
				t.Errorf("Snapshot after a migration to version 3: %v", err)
			}
			if _, err := f.db.Put(ctxT(t), mustJSON(fullMessage(d, "m")), deviceB); !errors.Is(err, blinkdb.ErrUnknownVersion) {
				t.Errorf("Put after a migration to version 3: %v", err)
			}
		})
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestMissingDatabaseOrTableIsRefusedAndNothingIsCreated(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "message_history.db")
	if _, err := blinkdb.Open(missing, blinkdb.BlinkQt, alice); !errors.Is(err, blinkdb.ErrNoDatabase) {
		t.Errorf("Open of a missing file: %v, want ErrNoDatabase", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the missing database: %v", err)
	}
	// A Blink Qt file is no Blink Cocoa database.
	qt := filepath.Join(dir, "qt.db")
	testschema.CreateForTest(qt, blinkdb.BlinkQt)
	if _, err := blinkdb.Open(qt, blinkdb.BlinkCocoa, alice); !errors.Is(err, blinkdb.ErrNoTable) ||
		!strings.Contains(err.Error(), "chat_messages") {
		t.Errorf("Open of a file without chat_messages: %v, want ErrNoTable naming it", err)
	}
}

// chatsync never changes the client's journal mode or schema.
func TestJournalModeAndSchemaAreLeftAsTheClientMadeThem(t *testing.T) {
	for _, d := range dialects {
		f := newFixture(t, d)
		schema := func() string {
			var all []string
			rows, _ := f.client.Query(`SELECT type || name || ifnull(sql, '') FROM sqlite_master ORDER BY name`)
			for rows.Next() {
				var s string
				rows.Scan(&s)
				all = append(all, s)
			}
			rows.Close()
			return strings.Join(all, "\n")
		}
		before := schema()
		f.put(t, fullMessage(d, "m1"))
		f.snapshot(t)
		f.db.Delete(ctxT(t), "m1")
		var mode string
		f.client.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
		if mode != "delete" {
			t.Errorf("%s: journal_mode = %s, want delete", d, mode)
		}
		if _, err := os.Stat(f.path + "-wal"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a -wal file exists", d)
		}
		if schema() != before {
			t.Errorf("%s: schema changed", d)
		}
	}
}

// A writer that behaves like the client (autocommit, rollback journal,
// 5 s busy timeout, its own connection) keeps inserting and updating while
// chatsync snapshots, puts and deletes: it never fails with "database is
// locked", and neither does chatsync.
func TestClientLikeWriterIsNeverLockedOut(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			// Enough rows that a snapshot takes several pages.
			tx, _ := f.client.Begin()
			for i := range 1200 {
				r := f.clientRow("seed-"+strconv.Itoa(i), nil)
				if i%3 == 0 {
					r[f.accountCol()] = carol
				}
				cols, args := []string{}, []any{}
				for c, v := range r {
					cols, args = append(cols, c), append(args, v)
				}
				if _, err := tx.Exec(`INSERT INTO `+f.table()+` (`+strings.Join(cols, ",")+`) VALUES (?`+
					strings.Repeat(",?", len(cols)-1)+`)`, args...); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}

			writer, err := blinktest.Open(f.path, d, alice, "Alice")
			if err != nil {
				t.Fatal(err)
			}
			defer writer.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const writes = 150
			type result struct{ locked, other int }
			done := make(chan result, 1)
			go func() {
				var res result
				for i := range writes {
					_, err := writer.Add(ctx, blinktest.Message{MsgID: "w-" + strconv.Itoa(i), Remote: bob,
						RemoteName: "Bob", Direction: "incoming", Body: "hello " + strconv.Itoa(i)})
					if err == nil {
						// An in-place update, as the client's status change.
						err = writer.SetStatus(ctx, "seed-"+strconv.Itoa(i), "displayed")
					}
					if err == nil && i%25 == 24 {
						// The user deletes a message: Blink Qt marks it,
						// Blink Cocoa deletes it and VACUUMs the file.
						if d == blinkdb.BlinkQt {
							err = writer.SoftDelete(ctx, "seed-"+strconv.Itoa(i-1))
						} else {
							err = writer.Delete(ctx, "seed-"+strconv.Itoa(i-1))
						}
					}
					switch {
					case err == nil:
					case errors.Is(err, blinktest.ErrLocked):
						res.locked++
					default:
						res.other++
						t.Errorf("client write: %v", err)
					}
				}
				if n := int(writer.Locked()); n != res.locked {
					t.Errorf("the writer counted %d lock failures, its calls returned %d", n, res.locked)
				}
				done <- res
			}()

			ops := 0
			for running := true; running; {
				select {
				case res := <-done:
					if res.locked != 0 || res.other != 0 {
						t.Errorf("client writer: %d 'database is locked' failures, %d other, of %d writes", res.locked, res.other, writes)
					}
					running = false
				case <-ctx.Done():
					t.Fatal("client writer did not finish within its deadline")
				default:
					id := "p-" + strconv.Itoa(ops)
					if _, err := f.db.Put(ctx, mustJSON(fullMessage(d, id)), deviceB); err != nil {
						t.Fatalf("Put while the client writes: %v", err)
					}
					if _, err := f.db.Snapshot(ctx); err != nil {
						t.Fatalf("Snapshot while the client writes: %v", err)
					}
					if ops%2 == 0 {
						if err := f.db.Delete(ctx, id); err != nil {
							t.Fatalf("Delete while the client writes: %v", err)
						}
					}
					ops++
				}
			}
			if ops == 0 {
				t.Error("chatsync made no call while the client wrote")
			}
			t.Logf("%s: %d client operations, %d lock failures, %d chatsync Put+Snapshot rounds",
				d, len(writer.Ops()), writer.Locked(), ops)
			snap := f.snapshot(t)
			for i := range writes {
				if _, ok := snap[key("w-"+strconv.Itoa(i))]; !ok {
					t.Fatalf("client's row w-%d missing from the snapshot", i)
				}
			}
		})
	}
}

// SQLITE_BUSY is retried: a lock held briefly is waited out; one held past
// the bound is reported as ErrBusy, not waited on forever.
func TestBusyIsRetriedWithinTheBound(t *testing.T) {
	f := newFixture(t, blinkdb.BlinkQt)
	ctx := ctxT(t)
	conn, err := f.client.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(1500 * time.Millisecond) // longer than one busy_timeout of ours
		conn.ExecContext(ctx, `COMMIT`)
		close(released)
	}()
	start := time.Now()
	if _, err := f.db.Put(ctx, mustJSON(fullMessage(blinkdb.BlinkQt, "m1")), deviceB); err != nil {
		t.Fatalf("Put behind a 1.5 s lock: %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("Put returned after %v, before the lock was released", waited)
	}
	<-released

	blinkdb.SetBusyBound(f.db, 300*time.Millisecond)
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`)
	start = time.Now()
	_, err = f.db.Put(ctx, mustJSON(fullMessage(blinkdb.BlinkQt, "m2")), deviceB)
	if !errors.Is(err, blinkdb.ErrBusy) {
		t.Errorf("Put behind a lock held past the bound: %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("Put gave up after %v; the bound was 300ms (plus one busy timeout)", waited)
	}
}

// The client may replace its file (restore, new profile); chatsync follows
// the path, not the old inode.
func TestReplacedFileIsReopened(t *testing.T) {
	f := newFixture(t, blinkdb.BlinkCocoa)
	f.put(t, fullMessage(blinkdb.BlinkCocoa, "old"))
	repl := filepath.Join(t.TempDir(), "new.db")
	testschema.CreateForTest(repl, blinkdb.BlinkCocoa)
	g := openFixture(t, repl, blinkdb.BlinkCocoa)
	g.insert(t, g.clientRow("new", nil))
	if err := os.Rename(repl, f.path); err != nil {
		t.Fatal(err)
	}
	snap := f.snapshot(t)
	if _, ok := snap[key("new")]; !ok || len(snap) != 1 {
		t.Errorf("snapshot after the file was replaced: %v, want the new file's row only", snap)
	}
}

// The connection settings take effect, on a path with the space of macOS's
// "Application Support" and characters an SQLite URI must escape.
func TestOpenSetsItsPragmasOnAnAwkwardPath(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "Application Support")
	dir := filepath.Join(parent, "Blink?#%")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "history.sqlite")
	if err := testschema.CreateForTest(path, blinkdb.BlinkCocoa); err != nil {
		t.Fatal(err)
	}
	db, err := blinkdb.Open(path, blinkdb.BlinkCocoa, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for pragma, want := range map[string]string{"busy_timeout": "1000", "secure_delete": "1", "journal_mode": "delete"} {
		if got, err := blinkdb.Pragma(db, pragma); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("%s holds %d entries; a mis-escaped path opened another file", parent, len(entries))
	}
}

// PutOver writes only over the row the caller saw: a row the client
// changed, or inserted, since is left as the client wrote it.
func TestPutOverRefusesARowTheClientChangedSinceItWasSeen(t *testing.T) {
	f := newFixture(t, blinkdb.BlinkQt)
	seen := f.put(t, fullMessage(blinkdb.BlinkQt, "m1"))
	if _, err := f.db.PutOver(ctxT(t), mustJSON(fullMessage(blinkdb.BlinkQt, "m1")), "dev", seen.Hash); err != nil {
		t.Fatalf("PutOver over the row as seen: %v", err)
	}
	db := f.client
	if _, err := db.Exec(`UPDATE messages SET state = 'displayed', content = 'changed by the client' WHERE message_id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	edit := fullMessage(blinkdb.BlinkQt, "m1")
	edit["body"] = "from another device"
	if _, err := f.db.PutOver(ctxT(t), mustJSON(edit), "dev", seen.Hash); !errors.Is(err, blinkdb.ErrChanged) {
		t.Errorf("PutOver over a changed row: %v, want ErrChanged", err)
	}
	if _, err := f.db.PutOver(ctxT(t), mustJSON(fullMessage(blinkdb.BlinkQt, "m2")), "dev", "some-hash"); !errors.Is(err, blinkdb.ErrChanged) {
		t.Errorf("PutOver of a row expected but absent: %v, want ErrChanged", err)
	}
	var body string
	if err := db.QueryRow(`SELECT content FROM messages WHERE message_id = 'm1'`).Scan(&body); err != nil || body != "changed by the client" {
		t.Errorf("content = %q (%v), want the client's change kept", body, err)
	}
}
