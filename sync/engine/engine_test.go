package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMessagesWrittenOnAAppearOnBWithTheSameContent(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	b.start()
	want := map[string]string{}
	for i := range 200 {
		m := msg(fmt.Sprintf("m%03d@example.com", i), fmt.Sprintf("bob%d@example.com", i%7), fmt.Sprintf("hello %d", i))
		a.write(fmt.Sprintf("bob%d/m%03d.json", i%7, i), m)
		want[m["msgid"].(string)] = canonical(t, m)
	}
	// The files appear before the page is committed and counted.
	waitFor(t, 60*time.Second, "200 messages on B", func() bool { return equalMaps(b.messages(), want) && b.status().Received == 200 })
	if got := len(b.files()); got != 200 {
		t.Errorf("B has %d files, want 200", got)
	}
	if got := len(srv.rows()); got != 200 {
		t.Errorf("server holds %d rows, want 200 (one per message, none pushed back by B)", got)
	}
	if s := a.status(); s.Pushed != 200 {
		t.Errorf("A pushed %d, want 200", s.Pushed)
	}
	if s := b.status(); s.Received != 200 || s.Pushed != 0 {
		t.Errorf("B received %d and pushed %d, want 200 and 0", s.Received, s.Pushed)
	}
}

func TestJournalRowsHoldNoBodyMsgidOrAddressInClear(t *testing.T) {
	srv := newServer(t)
	a := newDevice(t, "A", srv, newKeyring(t))
	a.start()
	a.write("carol/secret.json", msg("very-secret-msgid", "carol@example.org", "the launch code is 1234"))
	waitFor(t, 20*time.Second, "the message on the server", func() bool { return len(srv.rows()) == 1 })
	row := srv.rows()[0]
	for _, clear := range []string{"very-secret-msgid", "carol", "example.org", "launch", "1234", "alice", "body", "msgid"} {
		if strings.Contains(row.Data, clear) {
			t.Errorf("journal row contains %q in clear: %s", clear, row.Data)
		}
	}
	if !strings.HasPrefix(row.Data, "cs3.") {
		t.Errorf("journal row %q is not a chatsync envelope of the current format (cs3)", row.Data)
	}
}

func TestEditAndDeleteOnBReachA(t *testing.T) {
	_, _, a, b := twoDevices(t)
	a.start()
	b.start()
	m1, m2 := msg("m1", "bob@example.com", "first"), msg("m2", "bob@example.com", "second")
	a.write("bob/m1.json", m1)
	a.write("bob/m2.json", m2)
	waitFor(t, 20*time.Second, "both messages on B", func() bool { return len(b.messages()) == 2 })

	edited := msg("m1", "bob@example.com", "first, edited on B")
	edited["status"] = "delivered"
	var m1Path string
	for _, f := range b.files() {
		if strings.Contains(f, "m1") {
			m1Path = f
		}
	}
	b.write(m1Path, edited)
	for _, f := range b.files() {
		if strings.Contains(f, "m2") {
			if err := os.Remove(filepath.Join(b.store, filepath.FromSlash(f))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]string{"m1": canonical(t, edited)}
	waitFor(t, 20*time.Second, "the edit and the delete on A", func() bool { return equalMaps(a.messages(), want) })
	if _, err := os.Stat(filepath.Join(a.store, "bob", "m2.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("m2 still on A: %v", err)
	}
	if got := a.files(); len(got) != 1 || got[0] != "bob/m1.json" {
		t.Errorf("A's files = %v, want the edit in place at bob/m1.json", got)
	}
}

func TestRestartPushesNothingAgain(t *testing.T) {
	srv := newServer(t)
	a := newDevice(t, "A", srv, newKeyring(t))
	a.start()
	for i := range 20 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	waitFor(t, 20*time.Second, "20 rows", func() bool { return len(srv.rows()) == 20 })
	a.stop()
	a.start()
	start := time.Now()
	waitFor(t, 20*time.Second, "A idle after restart", func() bool { return a.idle(start) })
	if got := len(srv.rows()); got != 20 {
		t.Errorf("server holds %d rows after a restart, want 20", got)
	}
}

func TestChangesMadeWhileStoppedAreFoundAtStart(t *testing.T) {
	_, _, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m1.json", msg("m1", "c@example.com", "one"))
	a.write("c/m2.json", msg("m2", "c@example.com", "two"))
	waitFor(t, 20*time.Second, "two messages on B", func() bool { return len(b.messages()) == 2 })
	a.stop()
	edited := msg("m1", "c@example.com", "one, edited while stopped")
	a.write("c/m1.json", edited)
	os.Remove(filepath.Join(a.store, "c", "m2.json"))
	m3 := msg("m3", "c@example.com", "three")
	a.write("c/m3.json", m3)
	a.start()
	want := map[string]string{"m1": canonical(t, edited), "m3": canonical(t, m3)}
	waitFor(t, 20*time.Second, "B to follow A's offline changes", func() bool { return equalMaps(b.messages(), want) })
}

func TestConcurrentEditsOfOneMessageConverge(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m.json", msg("m", "c@example.com", "original"))
	waitFor(t, 20*time.Second, "m on B", func() bool { return len(b.messages()) == 1 })
	for round := range 5 {
		a.write("c/m.json", msg("m", "c@example.com", fmt.Sprintf("A's edit %d", round)))
		for _, f := range b.files() {
			b.write(f, msg("m", "c@example.com", fmt.Sprintf("B's edit %d", round)))
		}
	}
	waitFor(t, 30*time.Second, "A and B to hold the same version", func() bool {
		am, bm := a.messages(), b.messages()
		return len(am) == 1 && equalMaps(am, bm) && a.status().OutboxDepth == 0 && b.status().OutboxDepth == 0
	})
	// And it stays that way: the version both hold is the one with the
	// highest journal id.
	rows := srv.rows()
	last := rows[len(rows)-1]
	en, err := kr.Open(last.Data, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.messages()["m"]; got != string(en.Message) {
		t.Errorf("devices hold %s, want the last journal version %s", got, en.Message)
	}
}

func TestSameMessageOnBothDevicesBeforeSyncCausesNoRewriteNoEchoNoDuplicate(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	m := msg("forked@example.com", "bob@example.com", "delivered to every device")
	a.write("from-a/forked.json", m)
	b.write("elsewhere/forked-copy.json", m)
	bPath := filepath.Join(b.store, "elsewhere", "forked-copy.json")
	before, _ := os.Stat(bPath)
	a.start()
	waitFor(t, 20*time.Second, "A's copy on the server", func() bool { return len(srv.rows()) == 1 })
	b.start()
	start := time.Now()
	waitFor(t, 20*time.Second, "B idle", func() bool { return b.idle(start) })
	a.stop() // let A see whatever B might have sent, then look
	if got := b.files(); len(got) != 1 || got[0] != "elsewhere/forked-copy.json" {
		t.Errorf("B's files = %v, want only its own copy", got)
	}
	after, _ := os.Stat(bPath)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("B's copy was rewritten")
	}
	if got := len(srv.rows()); got != 1 {
		t.Errorf("server holds %d rows, want 1 (B must not push a message it got from the journal)", got)
	}
}

func TestDeleteWinsOverALateCopyOfTheMessage(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	m := msg("late@example.com", "bob@example.com", "hi")
	a.start()
	a.write("bob/late.json", m)
	waitFor(t, 20*time.Second, "the put", func() bool { return len(srv.rows()) == 1 })
	os.Remove(filepath.Join(a.store, "bob", "late.json"))
	waitFor(t, 20*time.Second, "the delete", func() bool { return len(srv.rows()) == 2 })

	// B got the same message from SIP before it ever synced, and starts
	// after the delete.
	b.write("inbox/late.json", m)
	b.start()
	waitFor(t, 20*time.Second, "B to drop its copy", func() bool { return len(b.files()) == 0 })
	// And a copy that turns up later still is removed too.
	b.write("inbox/again.json", m)
	waitFor(t, 20*time.Second, "B to drop the later copy", func() bool { return len(b.files()) == 0 })
	start := time.Now()
	waitFor(t, 20*time.Second, "B idle", func() bool { return b.idle(start) })
	if got := len(srv.rows()); got != 2 {
		t.Errorf("server holds %d rows, want 2 (B resurrected the message)", got)
	}
}

func TestInvalidFilesAreReportedAndTheRestStillSyncs(t *testing.T) {
	_, _, a, b := twoDevices(t)
	a.tweak = func(o *Options) { o.MaxMessageBytes = 2048 }
	a.writeRaw("bad/notjson.json", `{"msgid": "x", `)
	a.writeRaw("bad/nomsgid.json", `{"body":"no id"}`)
	a.writeRaw("bad/huge.json", `{"msgid":"huge","body":"`+strings.Repeat("x", 4096)+`"}`)
	a.write("good/one.json", msg("dup", "c@example.com", "first"))
	a.write("good/two.json", msg("dup", "c@example.com", "second file, same msgid"))
	a.write("good/ok.json", msg("ok", "c@example.com", "fine"))
	a.writeRaw(".hidden.json", `not even json`)
	a.writeRaw("notes.txt", `not a message`)
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "four rejected files in A's status", func() bool { return len(a.status().Rejected) == 4 })
	got := map[string]string{}
	for _, r := range a.status().Rejected {
		got[r.Path] = r.Reason
	}
	for path, want := range map[string]string{
		"bad/notjson.json": "not a single JSON object",
		"bad/nomsgid.json": `no "msgid"`,
		"bad/huge.json":    "larger than max_message_bytes",
		"good/two.json":    "repeats the msgid of good/one.json",
	} {
		if !strings.Contains(got[path], want) {
			t.Errorf("rejection of %s = %q, want it to mention %q", path, got[path], want)
		}
	}
	waitFor(t, 20*time.Second, "the valid messages on B", func() bool {
		m := b.messages()
		return len(m) == 2 && m["ok"] != "" && m["dup"] != ""
	})
	// Fixing a file takes it off the list and replicates it.
	a.write("bad/nomsgid.json", msg("fixed", "c@example.com", "now with an id"))
	waitFor(t, 20*time.Second, "the fixed file on B", func() bool { return b.messages()["fixed"] != "" })
	waitFor(t, 20*time.Second, "the fixed file off the rejected list", func() bool { return len(a.status().Rejected) == 3 })
}

func TestIncompleteFileIsWaitedForNotRejected(t *testing.T) {
	srv := newServer(t)
	a := newDevice(t, "A", srv, newKeyring(t))
	a.tweak = func(o *Options) { o.SettleTime = 5 * time.Second }
	a.start()
	// A slow writer: the first half now, the rest a moment later.
	p := filepath.Join(a.store, "slow.json")
	if err := os.WriteFile(p, []byte(`{"msgid":"slow","body":"par`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the half-written file to be waited for", func() bool { return a.status().Waiting == 1 })
	if got := a.status().Rejected; len(got) != 0 {
		t.Errorf("half-written file rejected at once: %v", got)
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`tial"}`)
	f.Close()
	waitFor(t, 20*time.Second, "the completed file on the server", func() bool { return len(srv.rows()) == 1 })
	if got := a.status().Rejected; len(got) != 0 {
		t.Errorf("completed file still rejected: %v", got)
	}
}
