package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/store/blinkdb"
)

// histLocal is how the history commands show a naive UTC message time.
func histLocal(t *testing.T, s string) string {
	t.Helper()
	at, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		t.Fatal(err)
	}
	return at.Local().Format("2006-01-02 15:04:05")
}

// writeHistFile writes a message file into a JSON store.
func writeHistFile(t *testing.T, root, rel string, m map[string]any) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func histMsg(msgid, remote, direction, at, body string) map[string]any {
	return map[string]any{"msgid": msgid, "remote_uri": remote, "direction": direction, "time": at, "body": body, "content_type": "text/plain"}
}

// historyJSONStore is alice's JSON store: two messages with bob, one with
// dave (the newest), and files that are not messages.
func historyJSONStore(t *testing.T) (cfg, store string) {
	t.Helper()
	store = t.TempDir()
	writeHistFile(t, store, "bob/m1.json", histMsg("m1", "sip:bob@example.com", "incoming", "2026-01-28 10:00:00.000001", "hello\nthere"))
	writeHistFile(t, store, "bob/m2.json", histMsg("m2", "sip:bob@example.com", "outgoing", "2026-01-28 10:05:00.000000", "hi bob"))
	writeHistFile(t, store, "dave/m3.json", histMsg("m3", "dave@example.com", "incoming", "2026-01-29 08:00:00.000000", "morning"))
	os.WriteFile(filepath.Join(store, "bob", ".m4.json.tmp"), []byte(`{"msgid":"m4","body":"half written"}`), 0o600)
	os.MkdirAll(filepath.Join(store, ".trash"), 0o700)
	os.WriteFile(filepath.Join(store, ".trash", "m5.json"), []byte(`{"msgid":"m5","remote_uri":"bob@example.com","body":"ignored dir"}`), 0o600)
	return writeStoreConfig(t, storeAccount{testAccount, store, "json"}), store
}

func histLines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

func wantHistLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	if g := histLines(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s printed\n%s\nwant\n%s", what, strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func TestConversationsOfAJSONStoreNewestLast(t *testing.T) {
	cfg, _ := historyJSONStore(t)
	code, out, errs := chatsync(t, "--config", cfg, "conversations")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wantHistLines(t, "conversations", out,
		"CONVERSATION      MESSAGES  LAST",
		"bob@example.com          2  "+histLocal(t, "2026-01-28 10:05:00"),
		"dave@example.com         1  "+histLocal(t, "2026-01-29 08:00:00"))

	code, out, errs = chatsync(t, "--config", cfg, "conversations", "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var res struct {
		Account       string `json:"account"`
		Conversations []struct {
			Name     string `json:"name"`
			Messages int    `json:"messages"`
			LastTime string `json:"last_time"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json printed %q: %v", out, err)
	}
	if res.Account != testAccount || len(res.Conversations) != 2 || res.Conversations[0].Name != "bob@example.com" || res.Conversations[0].Messages != 2 ||
		res.Conversations[0].LastTime != "2026-01-28 10:05:00.000000" || res.Conversations[1].Name != "dave@example.com" {
		t.Errorf("--json: %+v", res)
	}
}

func TestMessagesOfAJSONStoreOldestFirstOneLineEach(t *testing.T) {
	cfg, _ := historyJSONStore(t)
	code, out, errs := chatsync(t, "--config", cfg, "messages")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wantHistLines(t, "messages", out,
		histLocal(t, "2026-01-28 10:00:00")+"  ← bob@example.com  hello⏎there",
		histLocal(t, "2026-01-28 10:05:00")+"  → bob@example.com  hi bob",
		histLocal(t, "2026-01-29 08:00:00")+"  ← dave@example.com  morning")

	code, out, _ = chatsync(t, "--config", cfg, "messages", "--tail", "2")
	if code != 0 {
		t.Fatalf("--tail: exit %d", code)
	}
	wantHistLines(t, "--tail 2", out,
		histLocal(t, "2026-01-28 10:05:00")+"  → bob@example.com  hi bob",
		histLocal(t, "2026-01-29 08:00:00")+"  ← dave@example.com  morning")

	code, out, _ = chatsync(t, "--config", cfg, "messages", "--conversation", "sip:bob@example.com", "--tail", "1")
	if code != 0 {
		t.Fatalf("--conversation: exit %d", code)
	}
	wantHistLines(t, "--conversation sip:bob@example.com --tail 1", out, histLocal(t, "2026-01-28 10:05:00")+"  → bob@example.com  hi bob")

	code, out, errs = chatsync(t, "--config", cfg, "messages", "--conversation", "nobody@example.com")
	if code != 1 || out != "" || !strings.Contains(errs, "chatsync conversations") {
		t.Errorf("an unknown conversation: exit %d, %q, %q; want 1 and a hint", code, out, errs)
	}
	code, _, errs = chatsync(t, "--config", cfg, "messages", "--tail", "-3")
	if code != 2 {
		t.Errorf("--tail -3: exit %d (%s), want 2", code, errs)
	}

	code, out, _ = chatsync(t, "--config", cfg, "messages", "--json", "--conversation", "bob@example.com")
	if code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	var got []historyMessage
	for _, l := range histLines(out) {
		var m historyMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		got = append(got, m)
	}
	if len(got) != 2 || got[0].MsgID != "m1" || got[0].Body != "hello\nthere" || got[0].Conversation != "bob@example.com" ||
		got[0].RemoteURI != "sip:bob@example.com" || got[0].Direction != "incoming" || got[0].Time != "2026-01-28 10:00:00.000001" ||
		!bytes.Contains(got[0].Message, []byte(`"content_type":"text/plain"`)) || got[1].MsgID != "m2" {
		t.Errorf("--json: %+v", got)
	}
}

func TestMessagesShowsControlCharactersHarmlessly(t *testing.T) {
	store := t.TempDir()
	writeHistFile(t, store, "bob/m1.json", histMsg("m1", "bob@example.com", "incoming", "2026-01-28 10:00:00", "red \x1b[31malert\r\nnext\tcol"))
	cfg := writeStoreConfig(t, storeAccount{testAccount, store, "json"})
	code, out, _ := chatsync(t, "--config", cfg, "messages")
	if code != 0 || strings.Contains(out, "\x1b") {
		t.Fatalf("exit %d, %q", code, out)
	}
	wantHistLines(t, "messages", out, histLocal(t, "2026-01-28 10:00:00")+"  ← bob@example.com  red \uFFFD[31malert⏎next col")
}

func TestMessagesOfAStoreThatDoesNotExistSaysSo(t *testing.T) {
	cfg := writeStoreConfig(t, storeAccount{testAccount, filepath.Join(t.TempDir(), "missing"), "json"})
	code, out, errs := chatsync(t, "--config", cfg, "messages")
	if code != 1 || out != "" || !strings.Contains(errs, "does not exist") {
		t.Errorf("exit %d, %q, %q", code, out, errs)
	}
}

func TestConversationsAndMessagesNeedAnAccountWhenThereAreSeveral(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeHistFile(t, a, "bob/m1.json", histMsg("m1", "bob@example.com", "incoming", "2026-01-28 10:00:00", "for alice"))
	writeHistFile(t, b, "bob/m1.json", histMsg("m1", "bob@example.com", "incoming", "2026-01-28 10:00:00", "for carol"))
	cfg := writeStoreConfig(t, storeAccount{testAccount, a, "json"}, storeAccount{storeCarol, b, "json"})
	if code, _, errs := chatsync(t, "--config", cfg, "messages"); code != 2 || !strings.Contains(errs, "--account") {
		t.Errorf("two accounts, no --account: exit %d, %q", code, errs)
	}
	code, out, _ := chatsync(t, "--config", cfg, "--account", storeCarol, "messages")
	if code != 0 || !strings.Contains(out, "for carol") || strings.Contains(out, "for alice") {
		t.Errorf("--account carol: exit %d, %q", code, out)
	}
}

// historyBlinkDB is a Blink Qt database with alice's messages (one of them
// deleted by the user) and carol's.
func historyBlinkDB(t *testing.T) (cfg, db string) {
	t.Helper()
	db = newBlinkDB(t, filepath.Join(t.TempDir(), "message_history.db"), blinkdb.BlinkQt)
	putRows(t, db, blinkdb.BlinkQt, testAccount,
		histMsg("q1", "bob@example.com", "incoming", "2026-01-28 10:00:00.000001", "from the database"),
		histMsg("q2", "bob@example.com", "outgoing", "2026-01-28 10:01:00.000000", "deleted in Blink"),
		histMsg("q3", "dave@example.com", "outgoing", "2026-01-28 09:00:00.000000", "to dave"))
	softDelete(t, db, testAccount, "q2")
	putRows(t, db, blinkdb.BlinkQt, storeCarol,
		histMsg("c1", "bob@example.com", "incoming", "2026-01-30 10:00:00.000000", "carol's secret"),
		histMsg("c2", "erin@example.com", "incoming", "2026-01-30 11:00:00.000000", "carol and erin"))
	return writeStoreConfig(t, storeAccount{testAccount, db, "blink-qt"}), db
}

func TestConversationsAndMessagesOfABlinkQtDatabaseShowOnlyTheAccountsLiveRows(t *testing.T) {
	cfg, _ := historyBlinkDB(t)
	code, out, errs := chatsync(t, "--config", cfg, "conversations")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wantHistLines(t, "conversations", out,
		"CONVERSATION      MESSAGES  LAST",
		"dave@example.com         1  "+histLocal(t, "2026-01-28 09:00:00"),
		"bob@example.com          1  "+histLocal(t, "2026-01-28 10:00:00"))

	code, out, errs = chatsync(t, "--config", cfg, "messages")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	wantHistLines(t, "messages", out,
		histLocal(t, "2026-01-28 09:00:00")+"  → dave@example.com  to dave",
		histLocal(t, "2026-01-28 10:00:00")+"  ← bob@example.com  from the database")

	code, out, _ = chatsync(t, "--config", cfg, "messages", "--json", "--tail", "1")
	var m historyMessage
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.MsgID != "q1" || m.Body != "from the database" {
		t.Errorf("--json --tail 1: exit %d, %q", code, out)
	}
}

// followCmd starts `messages --follow` and returns its output, and a function
// that stops it (as Ctrl-C does) and returns its exit code.
func followCmd(t *testing.T, args ...string) (*lockedBuffer, *lockedBuffer, func() int) {
	t.Helper()
	oldPoll, oldCtx := followPoll, followContext
	followPoll = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	followContext = func(*cobra.Command) (context.Context, context.CancelFunc) { return ctx, func() {} }
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(args, "test", strings.NewReader(""), &out, &errb) }()
	var once sync.Once
	var code int
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("messages --follow did not stop on Ctrl-C")
			}
			followPoll, followContext = oldPoll, oldCtx
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return &out, &errb, stop
}

// waitForLine waits until out holds want, or fails after a deadline.
func waitForLine(t *testing.T, out, errb *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %q; printed %q, stderr %q", want, out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMessagesFollowPrintsAMessageWrittenIntoAJSONStoreAfterItStarted(t *testing.T) {
	cfg, store := historyJSONStore(t)
	out, errb, stop := followCmd(t, "--config", cfg, "messages", "--follow", "--tail", "1")
	waitForLine(t, out, errb, "morning")
	writeHistFile(t, store, "bob/m9.json", histMsg("m9", "bob@example.com", "incoming", "2026-01-30 12:00:00", "written later"))
	waitForLine(t, out, errb, "written later")
	if code := stop(); code != 0 {
		t.Errorf("exit %d after Ctrl-C, want 0 (stderr %q)", code, errb.String())
	}
	wantHistLines(t, "messages --follow --tail 1", out.String(),
		histLocal(t, "2026-01-29 08:00:00")+"  ← dave@example.com  morning",
		histLocal(t, "2026-01-30 12:00:00")+"  ← bob@example.com  written later")
}

func TestMessagesFollowPrintsARowPutIntoABlinkDatabaseButNotAnotherAccounts(t *testing.T) {
	cfg, db := historyBlinkDB(t)
	out, errb, stop := followCmd(t, "--config", cfg, "messages", "--follow", "--json")
	waitForLine(t, out, errb, "from the database")
	putRows(t, db, blinkdb.BlinkQt, storeCarol, histMsg("c9", "bob@example.com", "incoming", "2026-01-31 10:00:00.000000", "carol again"))
	putRows(t, db, blinkdb.BlinkQt, testAccount, histMsg("q9", "bob@example.com", "incoming", "2026-01-31 10:00:01.000000", "new row"))
	waitForLine(t, out, errb, "new row")
	if code := stop(); code != 0 {
		t.Errorf("exit %d after Ctrl-C, want 0 (stderr %q)", code, errb.String())
	}
	var ids []string
	for _, l := range histLines(out.String()) {
		var m historyMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ids = append(ids, m.MsgID)
	}
	if strings.Join(ids, " ") != "q3 q1 q9" {
		t.Errorf("--follow --json printed %v, want q3 q1 q9 (never carol's rows, nor the deleted one)", ids)
	}
}
