package blinktest_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/blinktest"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
)

func newDB(t *testing.T, d blinkdb.Dialect) (string, *blinktest.Writer, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.db")
	if err := testschema.CreateForTest(path, d); err != nil {
		t.Fatal(err)
	}
	w, err := blinktest.Open(path, d, "alice@example.com", "Alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	c, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	c.SetMaxOpenConns(1)
	t.Cleanup(func() { c.Close() })
	return path, w, c
}

// row reads one row by msgid, every column through quote().
func row(t *testing.T, c *sql.DB, table, idCol, msgid string) map[string]string {
	t.Helper()
	var cols []string
	rs, _ := c.Query(`SELECT name FROM pragma_table_info(?) WHERE name != 'id'`, table)
	for rs.Next() {
		var s string
		rs.Scan(&s)
		cols = append(cols, s)
	}
	rs.Close()
	sel := make([]string, len(cols))
	vals := make([]string, len(cols))
	ptrs := make([]any, len(cols))
	for i, col := range cols {
		sel[i], ptrs[i] = "quote("+col+")", &vals[i]
	}
	if err := c.QueryRow(`SELECT `+strings.Join(sel, ", ")+` FROM `+table+` WHERE `+idCol+` = ?`, msgid).Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, col := range cols {
		out[col] = vals[i]
	}
	return out
}

var at = time.Date(2026, 1, 28, 11, 11, 12, 123456789, time.FixedZone("", 3600))

func TestAddWritesEveryColumnAsTheBlinkClientDoes(t *testing.T) {
	ctx := context.Background()
	_, qt, qc := newDB(t, blinkdb.BlinkQt)
	m, err := qt.Add(ctx, blinktest.Message{Remote: "bob@example.com", RemoteName: "Bob", Direction: "outgoing", Body: "hi", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(m.MsgID) {
		t.Errorf("Qt msgid %q is not a uuid4", m.MsgID)
	}
	want := map[string]string{
		"message_id": "'" + m.MsgID + "'", "account_id": "'alice@example.com'", "remote_uri": "'bob@example.com'",
		"display_name": "'Alice'", "uri": "'sip:alice@example.com'", "timestamp": "'2026-01-28 10:11:12.123456'",
		"direction": "'outgoing'", "content": "'hi'", "content_type": "'text/plain'", "state": "'pending'",
		"encryption_type": "''", "decrypted": "'0'", "decryption_error": "''",
		"disposition": "'[''positive-delivery'', ''display'']'",
	}
	if got := row(t, qc, "messages", "message_id", m.MsgID); len(got) != len(want) {
		t.Errorf("Qt row %v", got)
	} else {
		for c, v := range want {
			if got[c] != v {
				t.Errorf("Qt %s = %s, want %s", c, got[c], v)
			}
		}
	}

	_, cocoa, cc := newDB(t, blinkdb.BlinkCocoa)
	m, err = cocoa.Add(ctx, blinktest.Message{Remote: "bob@example.com", Direction: "incoming", Body: "hi", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	// sha1("hi" + str(timestamp)), the sender's timestamp.
	if m.MsgID != "a4608fa15aa8772c21f18c62272c457e169efc1d" {
		t.Errorf("Cocoa chat msgid %q is not a sha1", m.MsgID)
	}
	want = map[string]string{
		"msgid": "'" + m.MsgID + "'", "direction": "'incoming'", "time": "'2026-01-28 10:11:12.123456'",
		"date": "'2026-01-28'", "sip_fromtag": "''", "sip_totag": "''", "local_uri": "'alice@example.com'",
		"remote_uri": "'bob@example.com'", "cpim_from": "'None <bob@example.com>'", "cpim_to": "'Alice <alice@example.com>'",
		"cpim_timestamp": "'2026-01-28T11:11:12.123456+01:00'", "body": "'hi'", "content_type": "'text'",
		"private": "'0'", "status": "'delivered'", "media_type": "'chat'", "uuid": "''", "journal_id": "''", "encryption": "''",
	}
	got := row(t, cc, "chat_messages", "msgid", m.MsgID)
	for c, v := range want {
		if got[c] != v {
			t.Errorf("Cocoa %s = %s, want %s", c, got[c], v)
		}
	}
	if !strings.HasSuffix(got["sip_callid"], "@192.0.2.10'") {
		t.Errorf("Cocoa sip_callid = %s, want the session's Call-ID", got["sip_callid"])
	}
}

// Blink Qt's update() never leaves 'displayed' and ignores 'received' for
// outgoing rows; the user's delete still marks a displayed row.
func TestBlinkQtStateChangesFollowTheClientsRules(t *testing.T) {
	ctx := context.Background()
	_, w, c := newDB(t, blinkdb.BlinkQt)
	m, _ := w.Add(ctx, blinktest.Message{MsgID: "m1", Remote: "bob@example.com", Direction: "outgoing", Body: "x"})
	state := func() string { return row(t, c, "messages", "message_id", m.MsgID)["state"] }
	w.SetState(ctx, "m1", "received")
	if s := state(); s != "'pending'" {
		t.Errorf("outgoing after 'received': %s, want 'pending'", s)
	}
	w.SetState(ctx, "m1", "displayed")
	w.SetState(ctx, "m1", "failed")
	if s := state(); s != "'displayed'" {
		t.Errorf("after displayed then failed: %s, want 'displayed'", s)
	}
	if err := w.SoftDelete(ctx, "m1"); err != nil || state() != "'deleted'" {
		t.Errorf("soft delete: %v, state %s", err, state())
	}
	if _, ok := w.Messages()["m1"]; ok || !w.Deleted()["m1"] {
		t.Error("the writer still counts m1 as live")
	}
}

// Blink Cocoa's getOne() raises on a msgid held by two rows: the client's
// update is lost, and counted.
func TestBlinkCocoaStatusChangeOfARepeatedMsgidIsLost(t *testing.T) {
	ctx := context.Background()
	_, w, c := newDB(t, blinkdb.BlinkCocoa)
	w.Add(ctx, blinktest.Message{MsgID: "m1", Remote: "bob@example.com", Direction: "incoming", Body: "x"})
	w.Add(ctx, blinktest.Message{MsgID: "m1", Remote: "dave@example.com", Direction: "incoming", Body: "x"})
	if err := w.SetStatus(ctx, "m1", "displayed"); !errors.Is(err, blinktest.ErrLost) || w.Lost() != 1 {
		t.Errorf("SetStatus of a repeated msgid: %v, Lost %d; want ErrLost, 1", err, w.Lost())
	}
	if err := w.Delete(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	var n int
	c.QueryRow(`SELECT count(*) FROM chat_messages`).Scan(&n)
	if n != 0 {
		t.Errorf("%d rows left after Delete, want 0", n)
	}
}

// A lock held past the clients' 5 s wait makes the write fail, as it makes
// the client drop the message; Locked counts it.
func TestWriteBehindALockHeldPastBlinksWaitFailsAndIsCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 5 s")
	}
	ctx := context.Background()
	_, w, c := newDB(t, blinkdb.BlinkQt)
	conn, err := c.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = w.Add(ctx, blinktest.Message{Remote: "bob@example.com", Direction: "incoming", Body: "lost"})
	conn.ExecContext(ctx, `ROLLBACK`)
	if !errors.Is(err, blinktest.ErrLocked) || w.Locked() != 1 {
		t.Errorf("Add behind a held lock: %v, Locked %d; want ErrLocked, 1", err, w.Locked())
	}
	if waited := time.Since(start); waited < 4*time.Second {
		t.Errorf("gave up after %v, before the 5 s busy timeout", waited)
	}
	if len(w.Messages()) != 0 {
		t.Error("the dropped message is counted as written")
	}
}

func TestRunMixesBlinkClientsAddsStatusChangesAndDeletes(t *testing.T) {
	for _, d := range []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa} {
		_, w, _ := newDB(t, d)
		st := w.Run(context.Background(), blinktest.RunOptions{Rate: 2000, Ops: 200})
		if st.Tried != 200 || st.Failed != 0 || st.Added == 0 || st.StatusChanges == 0 || st.SoftDeletes+st.Deletes == 0 {
			t.Errorf("%s: %+v", d, st)
		}
		if (d == blinkdb.BlinkQt) != (st.SoftDeletes > 0) {
			t.Errorf("%s: %d soft deletes, %d deletes", d, st.SoftDeletes, st.Deletes)
		}
		if got := len(w.Messages()) + len(w.Deleted()); got != st.Added {
			t.Errorf("%s: %d live + deleted, %d added", d, got, st.Added)
		}
	}
}
