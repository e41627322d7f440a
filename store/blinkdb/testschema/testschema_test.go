package testschema_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
)

var dialects = []blinkdb.Dialect{blinkdb.BlinkQt, blinkdb.BlinkCocoa}

// The database holds exactly the statements of the dump: SQLite keeps the
// text of each CREATE as it was given, so comparing sqlite_master with the
// dump proves the tables, indexes and their spelling are the clients'.
func TestCreatedDatabaseHoldsTheDumpVerbatim(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "h.db")
			if err := testschema.CreateForTest(path, d); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rows, err := db.Query(`SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid`)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var s string
				rows.Scan(&s)
				got = append(got, s)
			}
			schema, _ := testschema.Schema(d)
			// SQLite makes sqlite_sequence itself, after the first
			// AUTOINCREMENT table, with the text the Qt dump shows.
			want := testschema.Statements(schema)
			want = append(want[:1], append([]string{"CREATE TABLE sqlite_sequence(name,seq)"}, want[1:]...)...)
			if strings.Join(got, ";\n") != strings.Join(want, ";\n") {
				t.Errorf("sqlite_master:\n%s\nwant the dump:\n%s", strings.Join(got, ";\n"), strings.Join(want, ";\n"))
			}
			var mode string
			db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
			if mode != "delete" {
				t.Errorf("journal_mode = %q, want delete", mode)
			}
		})
	}
}

// The .sql files are CLIENTS.md's dumps, character for character, when the
// shared folder is beside the repository (it is for developers and CI).
func TestSchemaFilesAreTheDumpsOfClientsMD(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "shared", "CLIENTS.md"))
	if err != nil {
		t.Skipf("CLIENTS.md not beside the repository: %v", err)
	}
	for _, d := range dialects {
		schema, _ := testschema.Schema(d)
		if !strings.Contains(string(doc), "```sql\n"+schema+"```") {
			t.Errorf("%s: the schema file is not a sql block of CLIENTS.md", d)
		}
	}
}
