package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
	"github.com/chatsync/chatsync/store/msgdir"
)

const (
	storeCarol = "carol@example.com" // another account in the same database
	storeBob   = "bob@example.com"   // the other side of the conversations
)

// storeAccount is one [[account]] block of a test config.
type storeAccount struct{ address, store, format string }

// writeStoreConfig writes a valid config with the accounts and returns
// its path.
func writeStoreConfig(t *testing.T, accounts ...storeAccount) string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[daemon]\nstate_dir = %q\nsocket = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"))
	for i, a := range accounts {
		fmt.Fprintf(&b, "\n[[account]]\naddress = %q\nsettings_url = \"http://127.0.0.1:1/settings.phtml\"\npassword_file = %q\nstore = %q\nstore_format = %q\nkey_file = %q\n",
			a.address, pw, a.store, a.format, filepath.Join(dir, fmt.Sprintf("k%d.key", i)))
	}
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// chatsync runs the command line in-process.
func chatsync(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, "test", strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// newBlinkDB makes a database with the client's exact schema at path.
func newBlinkDB(t *testing.T, path string, d blinkdb.Dialect) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := testschema.CreateForTest(path, d); err != nil {
		t.Fatal(err)
	}
	return path
}

// msg is a wire message from bob's conversation.
func msg(msgid, body string, extra ...string) map[string]any {
	m := map[string]any{"msgid": msgid, "remote_uri": storeBob, "direction": "incoming", "time": "2026-01-28 10:11:12.000001", "body": body}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// putRows writes messages into the account's rows through blinkdb.Put, as
// the daemon writes messages from other devices.
func putRows(t *testing.T, path string, d blinkdb.Dialect, account string, msgs ...map[string]any) {
	t.Helper()
	db, err := blinkdb.Open(path, d, account)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, m := range msgs {
		b, _ := json.Marshal(m)
		if _, err := db.Put(context.Background(), b, "urn:uuid:other-device"); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot reads the account's rows.
func snapshot(t *testing.T, path string, d blinkdb.Dialect, account string) map[blinkdb.Key]blinkdb.Row {
	t.Helper()
	db, err := blinkdb.Open(path, d, account)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// rawSQL opens the database as another program would, for what the wire
// message does not show (Blink Cocoa's uuid and journal_id) and for
// writing rows as the client does.
func rawSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	c, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetMaxOpenConns(1)
	t.Cleanup(func() { c.Close() })
	return c
}

// softDelete marks a Blink Qt row deleted, as the user's own delete in
// Blink Qt does.
func softDelete(t *testing.T, path, account, msgid string) {
	t.Helper()
	if _, err := rawSQL(t, path).Exec(`UPDATE messages SET state = 'deleted' WHERE account_id = ? AND message_id = ?`, account, msgid); err != nil {
		t.Fatal(err)
	}
}

// jsonFiles returns the message files of a JSON store: path → content.
func jsonFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return out
}

func canonical(t *testing.T, m map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(m)
	pm, err := msgdir.Parse(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(pm.Canonical)
}

// fakeHome points the home directory (and %APPDATA%) at a new directory,
// so that find looks at the test's files and nowhere else.
func fakeHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("USERPROFILE", home)
	t.Setenv("APPDATA", filepath.Join(home, "AppData", "Roaming"))
	return home
}

func TestStoreFindListsTheUsualDatabaseItsAccountsAndTheirConfigLines(t *testing.T) {
	home := fakeHome(t)
	home, appData := blinkdb.Roots()
	place := blinkdb.UsualPlaces(home, appData, runtime.GOOS)[0] // Blink Qt's, on every platform
	path := newBlinkDB(t, place.Path, place.Dialect)
	putRows(t, path, place.Dialect, testAccount, msg("m1", "one"), msg("m2", "two"), msg("m3", "three"))
	putRows(t, path, place.Dialect, storeCarol, msg("c1", "carol's"))
	softDelete(t, path, testAccount, "m3")

	code, out, errs := chatsync(t, "store", "find")
	if code != 0 {
		t.Fatalf("store find: exit %d, stderr %q", code, errs)
	}
	rel, _ := filepath.Rel(home, path)
	storeLine := "store        = " + tomlString("~"+string(filepath.Separator)+rel)
	for _, want := range []string{
		"Blink Qt: " + path,
		testAccount + ": 2 message(s), and 1 the user deleted; in its [[account]] block:",
		storeCarol + ": 1 message(s); in its [[account]] block:",
		storeLine,
		`store_format = "blink-qt"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("store find does not print %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, storeLine); n != 2 {
		t.Errorf("store find prints the store line %d times, want once per account:\n%s", n, out)
	}

	var res findResult
	code, out, _ = chatsync(t, "store", "find", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("store find --json: exit %d\n%s", code, out)
	}
	if len(res.Databases) != 1 || len(res.Databases[0].Accounts) != 2 {
		t.Fatalf("store find --json: %+v", res)
	}
	got := res.Databases[0]
	alice := got.Accounts[0]
	if got.Path != path || got.Format != "blink-qt" || alice.Account != testAccount || alice.Messages != 2 || alice.Deleted != 1 ||
		alice.Config.StoreFormat != "blink-qt" || alice.Config.Store != "~"+string(filepath.Separator)+rel {
		t.Errorf("store find --json: %+v", got)
	}
	if len(res.LookedIn) == 0 || res.LookedIn[0] != path {
		t.Errorf("looked_in = %v, want %s first", res.LookedIn, path)
	}
}

func TestStoreFindWithNothingFoundSaysWhereItLookedAndExits1(t *testing.T) {
	fakeHome(t)
	home, appData := blinkdb.Roots()
	code, _, errs := chatsync(t, "store", "find")
	if code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	for _, l := range blinkdb.UsualPlaces(home, appData, runtime.GOOS) {
		if !strings.Contains(errs, l.Path) {
			t.Errorf("stderr does not name %s:\n%s", l.Path, errs)
		}
	}
	if strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "chatsync store find PATH") {
		t.Errorf("want one line saying what to do, got %q", errs)
	}
}

func TestStoreFindAtAPathTellsTheFormatFromTheTable(t *testing.T) {
	fakeHome(t)
	path := newBlinkDB(t, filepath.Join(t.TempDir(), "copy.sqlite"), blinkdb.BlinkCocoa)
	putRows(t, path, blinkdb.BlinkCocoa, testAccount, msg("m1", "one"))
	before, _ := os.ReadFile(path)

	var res findResult
	code, out, errs := chatsync(t, "store", "find", path, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("store find PATH: exit %d, stderr %q\n%s", code, errs, out)
	}
	if len(res.Databases) != 1 || res.Databases[0].Format != "blink-cocoa" || len(res.Databases[0].Accounts) != 1 ||
		res.Databases[0].Accounts[0].Messages != 1 || res.Databases[0].Accounts[0].Config.Store != path {
		t.Errorf("store find PATH --json: %+v", res)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("store find changed %s", path)
	}

	// Told the wrong format, it says what is wrong and exits 1.
	code, out, _ = chatsync(t, "store", "find", path, "--format", "blink-qt")
	if code != ExitFailure || !strings.Contains(out, "cannot be used") || !strings.Contains(out, `no table "messages"`) {
		t.Errorf("store find PATH --format blink-qt: exit %d\n%s", code, out)
	}
	// A directory is not a database.
	code, _, errs = chatsync(t, "store", "find", t.TempDir())
	if code != ExitFailure || !strings.Contains(errs, "is a directory") {
		t.Errorf("store find DIR: exit %d, stderr %q", code, errs)
	}
}

func TestStoreExportCopiesOnlyTheAccountsLiveMessagesAsJSONFiles(t *testing.T) {
	for _, d := range []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa} {
		t.Run(string(d), func(t *testing.T) {
			db := newBlinkDB(t, filepath.Join(t.TempDir(), "history.db"), d)
			putRows(t, db, d, testAccount, msg("m1", "one"), msg("m2", "two", "remote_uri", "dave@example.com"), msg("gone", "deleted"))
			putRows(t, db, d, storeCarol, msg("c1", "carol's"))
			wantDeleted := 0
			if d == blinkdb.BlinkQt {
				softDelete(t, db, testAccount, "gone")
				wantDeleted = 1
			}
			cfg := writeStoreConfig(t, storeAccount{testAccount, db, string(d)})
			snap := snapshot(t, db, d, testAccount)
			dbBefore, _ := os.ReadFile(db)

			out := filepath.Join(t.TempDir(), "export")
			var res storeCopy
			code, stdout, errs := chatsync(t, "--config", cfg, "store", "export", "--format", "json", out, "--json")
			if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil {
				t.Fatalf("store export: exit %d, stderr %q\n%s", code, errs, stdout)
			}
			files := jsonFiles(t, out)
			want := map[string]string{}
			for _, row := range snap {
				if row.Deleted {
					continue
				}
				m, _ := msgdir.Parse(row.Message, 0)
				want[filepath.ToSlash(msgdir.IncomingPath(m))] = string(row.Message)
			}
			if len(files) != len(want) {
				t.Errorf("exported files %v, want %v", keys(files), keys(want))
			}
			for p, content := range want {
				if files[p] != content {
					t.Errorf("%s = %q, want the row's message %q", p, files[p], content)
				}
				if fi, err := os.Stat(filepath.Join(out, p)); err != nil || fi.Mode().Perm() != 0o600 && runtime.GOOS != "windows" {
					t.Errorf("%s: mode %v, %v; want 0600", p, fi.Mode(), err)
				}
			}
			if _, ok := files["bob@example.com/c1.json"]; ok {
				t.Errorf("carol's message was exported with alice's")
			}
			wantCopied := 3 - wantDeleted
			if res.Copied != wantCopied || res.Deleted != wantDeleted || len(res.Refused) != 0 || res.Account != testAccount || res.FromFormat != string(d) {
				t.Errorf("export result %+v, want %d copied, %d deleted", res, wantCopied, wantDeleted)
			}
			if after, _ := os.ReadFile(db); !bytes.Equal(dbBefore, after) {
				t.Errorf("export changed the database")
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestStoreExportOfAJSONStoreCopiesItsMessagesAndRefusesTheRest(t *testing.T) {
	store := t.TempDir()
	os.MkdirAll(filepath.Join(store, "notes", ".hidden"), 0o700)
	os.WriteFile(filepath.Join(store, "notes", "a.json"), []byte(`{"msgid": "a",  "body": "x", "n": 1.50}`), 0o644)
	os.WriteFile(filepath.Join(store, "notes", "twice.json"), []byte(`{"msgid": "a", "body": "again"}`), 0o644)
	os.WriteFile(filepath.Join(store, "notes", "broken.json"), []byte(`{"msgid": `), 0o644)
	os.WriteFile(filepath.Join(store, "notes", "draft.json.tmp"), []byte(`{"msgid": "tmp"}`), 0o644)
	os.WriteFile(filepath.Join(store, "notes", ".hidden", "h.json"), []byte(`{"msgid": "h"}`), 0o644)
	cfg := writeStoreConfig(t, storeAccount{testAccount, store, "json"})

	out := filepath.Join(t.TempDir(), "export")
	code, stdout, errs := chatsync(t, "--config", cfg, "store", "export", "--format", "json", out)
	if code != 0 {
		t.Fatalf("store export: exit %d, stderr %q", code, errs)
	}
	files := jsonFiles(t, out)
	if len(files) != 1 || files["unknown/a.json"] != `{"body":"x","msgid":"a","n":1.50}` {
		t.Errorf("exported %v, want unknown/a.json only, canonical", files)
	}
	for _, want := range []string{"exported 1 message(s) of " + testAccount, "2 refused:", "notes/broken.json: file is not a single JSON object", "notes/twice.json: repeats the msgid of notes/a.json"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("store export does not print %q:\n%s", want, stdout)
		}
	}
}

func TestStoreExportRefusesADirectoryThatHoldsAnything(t *testing.T) {
	store := t.TempDir()
	os.WriteFile(filepath.Join(store, "m.json"), []byte(`{"msgid":"m"}`), 0o600)
	cfg := writeStoreConfig(t, storeAccount{testAccount, store, "json"})

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o600)
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	for dir, want := range map[string]string{
		full:                         "is not empty (it holds keep.txt)",
		file:                         "exists and is not a directory",
		filepath.Join(store, "copy"): "is inside the account's store",
	} {
		code, _, errs := chatsync(t, "--config", cfg, "store", "export", "--format", "json", dir)
		if code != ExitFailure || !strings.Contains(errs, want) {
			t.Errorf("export to %s: exit %d, stderr %q; want %q", dir, code, errs, want)
		}
	}
	if files := jsonFiles(t, full); len(files) != 1 {
		t.Errorf("export wrote into the refused directory: %v", files)
	}
	if _, err := os.Stat(filepath.Join(store, "copy")); err == nil {
		t.Errorf("export made a directory inside the store")
	}
	// An empty directory is fine.
	empty := t.TempDir()
	if code, _, errs := chatsync(t, "--config", cfg, "store", "export", "--format", "json", empty); code != 0 {
		t.Errorf("export to an empty directory: exit %d, %s", code, errs)
	}
	if code, _, errs := chatsync(t, "--config", cfg, "store", "export", "--format", "blink-qt", filepath.Join(empty, "x")); code != ExitUsage {
		t.Errorf("export --format blink-qt: exit %d, %s; want a usage error", code, errs)
	}
}

func TestStoreImportFromBlinkIntoAJSONStoreKeepsTheFilesAlreadyThere(t *testing.T) {
	src := newBlinkDB(t, filepath.Join(t.TempDir(), "message_history.db"), blinkdb.BlinkQt)
	putRows(t, src, blinkdb.BlinkQt, testAccount, msg("m1", "from blink"), msg("m2", "two"), msg("m3", "three"), msg("gone", "deleted"))
	putRows(t, src, blinkdb.BlinkQt, storeCarol, msg("c1", "carol's"))
	softDelete(t, src, testAccount, "gone")
	srcSnap := snapshot(t, src, blinkdb.BlinkQt, testAccount)

	store := t.TempDir()
	mine := `{"msgid":"m1","body":"my own copy"}`
	os.MkdirAll(filepath.Join(store, "old"), 0o700)
	os.WriteFile(filepath.Join(store, "old", "m1.json"), []byte(mine), 0o600)
	// A file of another message holds the name m2's file would get.
	os.MkdirAll(filepath.Join(store, storeBob), 0o700)
	other := `{"msgid":"not-m2","body":"other"}`
	os.WriteFile(filepath.Join(store, storeBob, "m2.json"), []byte(other), 0o600)
	cfg := writeStoreConfig(t, storeAccount{testAccount, store, "json"})

	code, out, errs := chatsync(t, "--config", cfg, "store", "import", "--format", "blink-qt", src)
	if code != 0 {
		t.Fatalf("store import: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"imported 2 message(s) into the store of " + testAccount, "1 already there", "1 deleted by the user in Blink Qt: not imported", "a running chatsync daemon replicates"} {
		if !strings.Contains(out, want) {
			t.Errorf("store import does not print %q:\n%s", want, out)
		}
	}
	files := jsonFiles(t, store)
	if files["old/m1.json"] != mine || files[storeBob+"/m2.json"] != other {
		t.Errorf("import changed files that were there: %v", files)
	}
	if files[storeBob+"/m3.json"] != string(srcSnap[blinkdb.Key{MsgID: "m3", RemoteURI: storeBob}].Message) {
		t.Errorf("m3 = %q, want the row's message", files[storeBob+"/m3.json"])
	}
	var m2 string
	for p, c := range files {
		if strings.HasPrefix(p, storeBob+"/m2-") {
			m2 = c
		}
	}
	if m2 != string(srcSnap[blinkdb.Key{MsgID: "m2", RemoteURI: storeBob}].Message) {
		t.Errorf("m2 was not written beside the other message's file: %v", files)
	}
	if len(files) != 4 {
		t.Errorf("store holds %v, want the two old files, m2 and m3 (not carol's, not the deleted one)", keys(files))
	}
	for p := range files {
		if strings.HasSuffix(p, "/c1.json") || strings.HasSuffix(p, "/gone.json") {
			t.Errorf("imported carol's or a deleted message: %s", p)
		}
	}
}

func TestStoreImportIntoABlinkDatabaseMergesAndLeavesOtherAccountsAlone(t *testing.T) {
	db := newBlinkDB(t, filepath.Join(t.TempDir(), "history.sqlite"), blinkdb.BlinkCocoa)
	putRows(t, db, blinkdb.BlinkCocoa, testAccount, msg("m1", "one", "status", "delivered"))
	putRows(t, db, blinkdb.BlinkCocoa, storeCarol, msg("m1", "carol's one"), msg("c2", "carol's two"))
	carolBefore := snapshot(t, db, blinkdb.BlinkCocoa, storeCarol)
	cfg := writeStoreConfig(t,
		storeAccount{testAccount, db, "blink-cocoa"},
		storeAccount{storeCarol, db, "blink-cocoa"})

	src := t.TempDir()
	write := func(name string, m map[string]any) {
		b, _ := json.Marshal(m)
		os.WriteFile(filepath.Join(src, name), b, 0o600)
	}
	write("m1.json", msg("m1", "one", "status", "displayed")) // the same message, read since
	write("m2.json", msg("m2", "two"))
	write("m3.json", map[string]any{"msgid": "m3", "remote_uri": storeBob, "time": "2026-01-28 10:11:12"}) // no direction
	os.WriteFile(filepath.Join(src, "junk.json"), []byte("not json"), 0o600)

	code, _, errs := chatsync(t, "--config", cfg, "store", "import", "--format", "json", src)
	if code != ExitUsage || !strings.Contains(errs, "--account") {
		t.Fatalf("import with two accounts and no --account: exit %d, stderr %q; want a usage error naming --account", code, errs)
	}

	var res storeCopy
	code, out, errs := chatsync(t, "--config", cfg, "--account", testAccount, "store", "import", "--format", "json", src, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("store import: exit %d, stderr %q\n%s", code, errs, out)
	}
	if res.Copied != 1 || res.Merged != 1 || res.AlreadyThere != 0 || len(res.Refused) != 2 {
		t.Errorf("import result %+v, want 1 copied, 1 merged, 2 refused", res)
	}
	reasons := map[string]string{}
	for _, r := range res.Refused {
		reasons[r.Source] = r.Reason
	}
	if !strings.Contains(reasons["m3.json"], "direction") || !strings.Contains(reasons["junk.json"], "not a single JSON object") {
		t.Errorf("refusals %v, want m3.json for its direction and junk.json as not JSON", reasons)
	}

	snap := snapshot(t, db, blinkdb.BlinkCocoa, testAccount)
	var m1, m2 map[string]any
	json.Unmarshal(snap[blinkdb.Key{MsgID: "m1", RemoteURI: storeBob}].Message, &m1)
	json.Unmarshal(snap[blinkdb.Key{MsgID: "m2", RemoteURI: storeBob}].Message, &m2)
	if m1["status"] != "displayed" || m2["body"] != "two" || m2["direction"] != "incoming" || m2["time"] != "2026-01-28 10:11:12.000001" || len(snap) != 2 {
		t.Errorf("alice's rows after import: m1 %v, m2 %v (%d rows)", m1, m2, len(snap))
	}
	var uuid, journalID string
	if err := rawSQL(t, db).QueryRow(`SELECT uuid, journal_id FROM chat_messages WHERE local_uri = ? AND msgid = 'm2'`, testAccount).Scan(&uuid, &journalID); err != nil {
		t.Fatal(err)
	}
	if uuid != "import" || journalID != blinkdb.JournalIDMark {
		t.Errorf("imported row: uuid %q, journal_id %q; want %q, %q", uuid, journalID, "import", blinkdb.JournalIDMark)
	}
	carolAfter := snapshot(t, db, blinkdb.BlinkCocoa, storeCarol)
	if len(carolAfter) != len(carolBefore) {
		t.Errorf("carol has %d rows, had %d", len(carolAfter), len(carolBefore))
	}
	for k, r := range carolBefore {
		if carolAfter[k].Hash != r.Hash {
			t.Errorf("carol's row %v changed", k)
		}
	}

	// Again: everything is there now.
	res = storeCopy{}
	code, out, errs = chatsync(t, "--config", cfg, "--account", testAccount, "store", "import", "--format", "json", src, "--json")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Copied != 0 || res.Merged != 0 || res.AlreadyThere != 2 {
		t.Errorf("second import: exit %d, %+v, stderr %q; want 2 already there", code, res, errs)
	}
}

func TestStoreImportDoesNotBringBackAMessageTheUserDeletedInBlinkQt(t *testing.T) {
	db := newBlinkDB(t, filepath.Join(t.TempDir(), "message_history.db"), blinkdb.BlinkQt)
	putRows(t, db, blinkdb.BlinkQt, testAccount, msg("m1", "one"))
	softDelete(t, db, testAccount, "m1")
	cfg := writeStoreConfig(t, storeAccount{testAccount, db, "blink-qt"})
	src := t.TempDir()
	b, _ := json.Marshal(msg("m1", "one", "status", "displayed"))
	os.WriteFile(filepath.Join(src, "m1.json"), b, 0o600)

	code, out, errs := chatsync(t, "--config", cfg, "store", "import", "--format", "json", src)
	if code != 0 || !strings.Contains(out, "m1.json: the user deleted this message in this store") {
		t.Errorf("store import: exit %d, stderr %q\n%s", code, errs, out)
	}
	var state string
	rawSQL(t, db).QueryRow(`SELECT state FROM messages WHERE message_id = 'm1'`).Scan(&state)
	if state != "deleted" {
		t.Errorf("state = %q, want it still deleted", state)
	}
}

func TestStoreImportFromADatabaseWithoutTheAccountNamesTheAccountsItHas(t *testing.T) {
	src := newBlinkDB(t, filepath.Join(t.TempDir(), "history.sqlite"), blinkdb.BlinkCocoa)
	putRows(t, src, blinkdb.BlinkCocoa, storeCarol, msg("c1", "carol's"))
	store := t.TempDir()
	cfg := writeStoreConfig(t, storeAccount{testAccount, store, "json"})

	code, _, errs := chatsync(t, "--config", cfg, "store", "import", "--format", "blink-cocoa", src)
	if code != ExitFailure || !strings.Contains(errs, "has no messages of "+testAccount+" (it has "+storeCarol+" (1))") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	code, _, errs = chatsync(t, "--config", cfg, "store", "import", "--format", "blink-qt", src)
	if code != ExitFailure || !strings.Contains(errs, "check --format") {
		t.Errorf("import of a Cocoa file as blink-qt: exit %d, stderr %q", code, errs)
	}
	code, _, errs = chatsync(t, "--config", cfg, "store", "import", "--format", "json", src)
	if code != ExitFailure || !strings.Contains(errs, "is a file, not a directory") {
		t.Errorf("import of a database as json: exit %d, stderr %q", code, errs)
	}
	code, _, errs = chatsync(t, "--config", cfg, "store", "import", src)
	if code != ExitUsage || !strings.Contains(errs, "--format") {
		t.Errorf("import without --format: exit %d, stderr %q", code, errs)
	}
	if files := jsonFiles(t, store); len(files) != 0 {
		t.Errorf("refused imports wrote %v", files)
	}
}
