package blinkdb_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
)

func TestUsualPlacesAreSPECsTableForEachPlatform(t *testing.T) {
	home := filepath.Join("home", "u")
	support := filepath.Join(home, "Library", "Application Support")
	for _, tc := range []struct {
		goos, appData string
		want          []blinkdb.Location
	}{
		{"linux", "", []blinkdb.Location{{Path: filepath.Join(home, ".blink", "message_history.db"), Dialect: blinkdb.BlinkQt, Client: "Blink Qt"}}},
		{"windows", filepath.Join("C", "Roaming"), []blinkdb.Location{{Path: filepath.Join("C", "Roaming", "Blink", "message_history.db"), Dialect: blinkdb.BlinkQt, Client: "Blink Qt"}}},
		// No %APPDATA%: Windows' default under the home directory.
		{"windows", "", []blinkdb.Location{{Path: filepath.Join(home, "AppData", "Roaming", "Blink", "message_history.db"), Dialect: blinkdb.BlinkQt, Client: "Blink Qt"}}},
		{"darwin", "ignored", []blinkdb.Location{
			{Path: filepath.Join(support, "Blink-Qt", "message_history.db"), Dialect: blinkdb.BlinkQt, Client: "Blink Qt"},
			{Path: filepath.Join(support, "Blink", "history", "history.sqlite"), Dialect: blinkdb.BlinkCocoa, Client: "Blink"},
			{Path: filepath.Join(support, "Blink Pro", "history", "history.sqlite"), Dialect: blinkdb.BlinkCocoa, Client: "Blink Pro"},
			{Path: filepath.Join(support, "Blink Lite", "history", "history.sqlite"), Dialect: blinkdb.BlinkCocoa, Client: "Blink Lite"},
			{Path: filepath.Join(support, "SIP2SIP", "history", "history.sqlite"), Dialect: blinkdb.BlinkCocoa, Client: "SIP2SIP"},
		}},
		{"plan9", "", nil},
	} {
		if got := blinkdb.UsualPlaces(home, tc.appData, tc.goos); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("UsualPlaces(%s, %q):\n got %+v\nwant %+v", tc.goos, tc.appData, got, tc.want)
		}
	}
}

func TestLocateInReportsOnlyFilesThatExist(t *testing.T) {
	home := t.TempDir()
	support := filepath.Join(home, "Library", "Application Support")
	qt := filepath.Join(support, "Blink-Qt", "message_history.db")
	pro := filepath.Join(support, "Blink Pro", "history", "history.sqlite")
	for _, p := range []string{qt, pro} {
		os.MkdirAll(filepath.Dir(p), 0o700)
	}
	if err := testschema.CreateForTest(qt, blinkdb.BlinkQt); err != nil {
		t.Fatal(err)
	}
	if err := testschema.CreateForTest(pro, blinkdb.BlinkCocoa); err != nil {
		t.Fatal(err)
	}
	// A directory where Blink Lite's file would be is not a database.
	os.MkdirAll(filepath.Join(support, "Blink Lite", "history", "history.sqlite"), 0o700)

	got := blinkdb.LocateIn(home, "", "darwin")
	want := []blinkdb.Location{
		{Path: qt, Dialect: blinkdb.BlinkQt, Client: "Blink Qt"},
		{Path: pro, Dialect: blinkdb.BlinkCocoa, Client: "Blink Pro"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LocateIn:\n got %+v\nwant %+v", got, want)
	}
	if got := blinkdb.LocateIn(home, "", "linux"); len(got) != 0 {
		t.Errorf("LocateIn(linux) = %+v, want nothing (no ~/.blink)", got)
	}
}

func TestAccountsCountsEveryAccountsMessagesAndQtSoftDeletes(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, d)
			for _, id := range []string{"a1", "a2", "a3"} {
				f.put(t, map[string]any{"msgid": id, "remote_uri": bob, "direction": "incoming", "time": "2026-01-28 10:11:12", "body": id})
			}
			f.insert(t, f.clientRow("c1", map[string]string{"account": carol}))
			// Not a message: no msgid. Not counted, as Snapshot leaves it out.
			f.insert(t, f.clientRow("", map[string]string{"account": carol}))
			wantDeleted := 0
			if d == blinkdb.BlinkQt {
				f.insert(t, f.clientRow("a4", map[string]string{"state": "deleted"}))
				wantDeleted = 1
			}

			got, err := blinkdb.Accounts(ctxT(t), f.path, d)
			if err != nil {
				t.Fatal(err)
			}
			want := []blinkdb.AccountRows{
				{Account: alice, Messages: 3, Deleted: wantDeleted},
				{Account: carol, Messages: 1},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Accounts:\n got %+v\nwant %+v", got, want)
			}
			snap := f.snapshot(t)
			live := 0
			for _, r := range snap {
				if !r.Deleted {
					live++
				}
			}
			if live != got[0].Messages {
				t.Errorf("Accounts says %d messages of %s, Snapshot has %d", got[0].Messages, alice, live)
			}
		})
	}
}

func TestAccountsNeitherCreatesNorChangesTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "message_history.db")
	if _, err := blinkdb.Accounts(ctxT(t), missing, blinkdb.BlinkQt); !errors.Is(err, blinkdb.ErrNoDatabase) {
		t.Errorf("Accounts of a missing file: %v, want ErrNoDatabase", err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Accounts created %s (%v)", missing, err)
	}

	f := newFixture(t, blinkdb.BlinkCocoa)
	f.put(t, map[string]any{"msgid": "m1", "remote_uri": bob, "direction": "outgoing", "time": "2026-01-28 10:11:12"})
	f.db.Close()
	before, _ := os.ReadFile(f.path)
	fiBefore, _ := os.Stat(f.path)
	if _, err := blinkdb.Accounts(ctxT(t), f.path, blinkdb.BlinkCocoa); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(f.path)
	fiAfter, _ := os.Stat(f.path)
	if !bytes.Equal(before, after) || !fiBefore.ModTime().Equal(fiAfter.ModTime()) {
		t.Errorf("Accounts changed %s", f.path)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.path))
	if len(entries) != 1 {
		t.Errorf("Accounts left files beside the database: %v", entries)
	}
}

func TestAccountsRefusesWhatOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	qt := filepath.Join(dir, "qt.db")
	if err := testschema.CreateForTest(qt, blinkdb.BlinkQt); err != nil {
		t.Fatal(err)
	}
	if _, err := blinkdb.Accounts(ctxT(t), qt, blinkdb.BlinkCocoa); !errors.Is(err, blinkdb.ErrNoTable) {
		t.Errorf("Blink Qt's file read as Blink Cocoa's: %v, want ErrNoTable", err)
	}
	if err := testschema.SetVersion(qt, blinkdb.BlinkQt, 5); err != nil {
		t.Fatal(err)
	}
	_, err := blinkdb.Accounts(ctxT(t), qt, blinkdb.BlinkQt)
	if !errors.Is(err, blinkdb.ErrUnknownVersion) || !bytes.Contains([]byte(err.Error()), []byte("version 5")) {
		t.Errorf("table at version 5: %v, want ErrUnknownVersion naming version 5", err)
	}
}

func TestDetectTellsTheClientByItsTable(t *testing.T) {
	dir := t.TempDir()
	for _, d := range dialects {
		p := filepath.Join(dir, string(d)+".db")
		if err := testschema.CreateForTest(p, d); err != nil {
			t.Fatal(err)
		}
		if got, err := blinkdb.Detect(ctxT(t), p); err != nil || got != d {
			t.Errorf("Detect(%s) = %q, %v; want %q", p, got, err, d)
		}
	}
	// An SQLite file of some other program.
	other := filepath.Join(dir, "other.db")
	c := clientConn(t, other)
	if _, err := c.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := blinkdb.Detect(ctxT(t), other); !errors.Is(err, blinkdb.ErrNoTable) {
		t.Errorf("Detect of a file without either table: %v, want ErrNoTable", err)
	}
	if _, err := blinkdb.Detect(ctxT(t), filepath.Join(dir, "none.db")); !errors.Is(err, blinkdb.ErrNoDatabase) {
		t.Errorf("Detect of a missing file: %v, want ErrNoDatabase", err)
	}
}
