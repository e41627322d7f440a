// Package testschema creates Blink databases exactly as the clients create
// them, for tests: the CREATE statements are the clients' own, as
// ../../../shared/CLIENTS.md records them (dumped with .schema after
// running the clients' SQLObject classes), kept verbatim in the .sql files
// beside this file, with the table-version rows the clients write on
// creation and the rollback journal they use.
package testschema

import (
	"database/sql"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatsync/chatsync/store/blinkdb"
	_ "modernc.org/sqlite"
)

// BlinkQtSchema and BlinkCocoaSchema are the .schema dumps of CLIENTS.md,
// verbatim (comments included).
var (
	//go:embed blink_qt.sql
	BlinkQtSchema string
	//go:embed blink_cocoa.sql
	BlinkCocoaSchema string
)

// Schema returns the .schema dump of a dialect.
func Schema(d blinkdb.Dialect) (string, error) {
	switch d {
	case blinkdb.BlinkQt:
		return BlinkQtSchema, nil
	case blinkdb.BlinkCocoa:
		return BlinkCocoaSchema, nil
	}
	return "", fmt.Errorf("testschema: unknown dialect %q", d)
}

// versionRows are the rows each client writes into its version table when
// it creates its tables (CLIENTS.md).
var versionRows = map[blinkdb.Dialect]string{
	blinkdb.BlinkQt: `INSERT INTO table_versions (id, table_name, version) VALUES
		(1, 'table_versions', 1), (2, 'messages', 4), (3, 'downloaded_files', 1)`,
	blinkdb.BlinkCocoa: `INSERT INTO versions (id, table_name, version) VALUES
		(1, 'sessions', 7), (2, 'chat_messages', 8)`,
}

// Statements splits a schema dump into its CREATE statements, leaving out
// sqlite_sequence, which SQLite makes itself for the first AUTOINCREMENT
// table and refuses to be asked for.
func Statements(schema string) []string {
	var lines []string
	for _, l := range strings.Split(schema, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	var out []string
	for _, s := range strings.Split(strings.Join(lines, "\n"), ";") {
		s = strings.TrimSpace(s)
		if s == "" || strings.HasPrefix(s, "CREATE TABLE sqlite_sequence") {
			continue
		}
		out = append(out, s)
	}
	return out
}

// CreateForTest creates a new database at path with the dialect's tables
// exactly as the client creates them, its version rows, and
// journal_mode=delete. It fails if path exists.
func CreateForTest(path string, d blinkdb.Dialect) error {
	schema, err := Schema(d)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("testschema: %s exists", path)
	}
	db, err := open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := append([]string{"PRAGMA journal_mode = delete"}, Statements(schema)...)
	for _, s := range append(stmts, versionRows[d]) {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("testschema: %v: %s", err, s)
		}
	}
	return db.Close()
}

// open opens path as an SQLite URI, so that any character in it is taken
// as part of the file name.
func open(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	u := url.URL{Scheme: "file", Path: p}
	return sql.Open("sqlite", u.String())
}

// SetVersion records another version for the dialect's message table, the
// way the client's TableVersions.set_version does: for tests of a database
// at a version chatsync does not know.
func SetVersion(path string, d blinkdb.Dialect, version int) error {
	table, msgTable := "table_versions", "messages"
	if d == blinkdb.BlinkCocoa {
		table, msgTable = "versions", "chat_messages"
	}
	db, err := open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(`UPDATE `+table+` SET version = ? WHERE table_name = ?`, version, msgTable)
	return err
}
