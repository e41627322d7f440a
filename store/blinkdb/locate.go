package blinkdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Location is a client's history database at the place where the client
// keeps it.
type Location struct {
	Path    string
	Dialect Dialect
	// Client names the program that keeps the file there ("Blink Qt",
	// "Blink Pro", ...), for people choosing between several files.
	Client string
}

// cocoaApps are the names Blink Cocoa's builds keep their data under in
// ~/Library/Application Support: one code base, several products, each
// with its own history.sqlite (CLIENTS.md).
var cocoaApps = []string{"Blink", "Blink Pro", "Blink Lite", "SIP2SIP"}

// UsualPlaces lists where the clients keep their databases on goos
// (SPEC §6b), whether or not the files exist, for the user whose home
// directory is home. appData is %APPDATA% and is used on Windows only;
// when it is empty, Windows' default (home\AppData\Roaming) stands in. It
// takes the roots as arguments, not from the environment, so that every
// platform's list can be tested on any machine and `store find` can say
// where it looked. Paths are joined with this platform's separator.
func UsualPlaces(home, appData, goos string) []Location {
	join := filepath.Join
	switch goos {
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly":
		// Blink Qt keeps ~/.blink on every Unix but macOS.
		return []Location{{Path: join(home, ".blink", "message_history.db"), Dialect: BlinkQt, Client: "Blink Qt"}}
	case "windows":
		if appData == "" {
			appData = join(home, "AppData", "Roaming")
		}
		return []Location{{Path: join(appData, "Blink", "message_history.db"), Dialect: BlinkQt, Client: "Blink Qt"}}
	case "darwin":
		support := join(home, "Library", "Application Support")
		out := []Location{{Path: join(support, "Blink-Qt", "message_history.db"), Dialect: BlinkQt, Client: "Blink Qt"}}
		for _, app := range cocoaApps {
			out = append(out, Location{Path: join(support, app, "history", "history.sqlite"), Dialect: BlinkCocoa, Client: app})
		}
		return out
	}
	return nil
}

// LocateIn returns the UsualPlaces that hold a regular file (a link to
// one counts: a user may have moved the file and left a link).
func LocateIn(home, appData, goos string) []Location {
	var out []Location
	for _, l := range UsualPlaces(home, appData, goos) {
		if fi, err := os.Stat(l.Path); err == nil && fi.Mode().IsRegular() {
			out = append(out, l)
		}
	}
	return out
}

// Locate returns the client databases at their usual places on this
// platform, for the user running chatsync.
func Locate() []Location {
	home, appData := Roots()
	return LocateIn(home, appData, runtime.GOOS)
}

// Roots returns this user's home directory and %APPDATA% (empty off
// Windows), the roots UsualPlaces takes.
func Roots() (home, appData string) {
	home, _ = os.UserHomeDir()
	if runtime.GOOS == "windows" {
		appData = os.Getenv("APPDATA")
	}
	return home, appData
}

// AccountRows is one account of a client database and how many messages
// it holds there.
type AccountRows struct {
	// Account is the account column (Blink Qt account_id, Blink Cocoa
	// local_uri) as the client wrote it: user@domain, what the config's
	// address must be for Open to see these rows.
	Account string `json:"account"`
	// Messages counts the rows Snapshot reports: a msgid and a remote URI,
	// and not deleted.
	Messages int `json:"messages"`
	// Deleted counts Blink Qt's soft deletes (state 'deleted'): rows the
	// user deleted that are still in the file. Always 0 for Blink Cocoa,
	// which removes the row.
	Deleted int `json:"deleted"`
}

// Accounts lists the accounts that have messages in the database at path,
// ordered by address, after the same checks as Open (the table, its
// version, its columns). It is meant for finding out what a database
// holds before configuring it, possibly while the client runs, so it opens
// the file read-only: it can neither create a missing file nor change one,
// and the count is a single statement, so the shared lock it takes lasts
// one query.
func Accounts(ctx context.Context, path string, d Dialect) ([]AccountRows, error) {
	db, err := openReadOnly(ctx, path, d)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	t := db.t
	deleted := "0"
	if t == qtTable {
		deleted = `CAST(state AS TEXT) = 'deleted'`
	}
	q := `SELECT CAST(` + t.account + ` AS TEXT), ` +
		`sum(CASE WHEN ` + deleted + ` THEN 0 ELSE 1 END), sum(CASE WHEN ` + deleted + ` THEN 1 ELSE 0 END) ` +
		`FROM ` + t.name + ` WHERE coalesce(` + t.account + `, '') <> '' ` +
		`AND coalesce(` + t.msgid + `, '') <> '' AND coalesce(` + t.remote + `, '') <> '' ` +
		`GROUP BY 1 ORDER BY 1`
	var out []AccountRows
	err = db.retry(ctx, func() error {
		out = out[:0]
		rows, err := db.sql.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a AccountRows
			if err := rows.Scan(&a.Account, &a.Messages, &a.Deleted); err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("blinkdb: read %s: %w", path, err)
	}
	return out, nil
}

// Detect tells which client's table the database at path holds, for a
// file found somewhere other than its usual place. It reads the schema
// read-only and checks nothing else (Accounts and Open do). A file with
// neither table is ErrNoTable; one with both (no client makes such a
// file) is an error asking for the format.
func Detect(ctx context.Context, path string) (Dialect, error) {
	db, err := openUnchecked(path, BlinkQt)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var found []Dialect
	for _, d := range []Dialect{BlinkQt, BlinkCocoa} {
		t, _ := d.table()
		var n int
		err := db.retry(ctx, func() error {
			return db.sql.QueryRowContext(ctx,
				`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, t.name).Scan(&n)
		})
		if err != nil {
			return "", fmt.Errorf("blinkdb: read %s: %w", path, err)
		}
		if n > 0 {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: %s has neither Blink Qt's table %q nor Blink Cocoa's %q", ErrNoTable, path, qtTable.name, cocoaTable.name)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("blinkdb: %s has both Blink Qt's and Blink Cocoa's message table: say which with the format", path)
}

// openReadOnly opens path read-only and checks its table as Open does.
func openReadOnly(ctx context.Context, path string, d Dialect) (*DB, error) {
	db, err := openUnchecked(path, d)
	if err != nil {
		return nil, err
	}
	if err := db.retry(ctx, func() error { return db.checkTable(ctx) }); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openUnchecked opens path read-only, with no check of its table. A path
// that is not a regular file is ErrNoDatabase, as in Open.
func openUnchecked(path string, d Dialect) (*DB, error) {
	t, err := d.table()
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDatabase, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrNoDatabase, path)
	}
	name, err := readOnlyDSN(path)
	if err != nil {
		return nil, err
	}
	s, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("blinkdb: open %s: %w", path, err)
	}
	s.SetMaxOpenConns(1)
	return &DB{path: path, t: t, sql: s, file: fi, busyBound: defaultBusyBound}, nil
}

// readOnlyDSN is dsn with mode=ro (SQLite then opens the file read-only
// and never creates it) and query_only, so not even a statement of ours
// could write.
func readOnlyDSN(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout))
	q.Add("_pragma", "query_only(1)")
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String(), nil
}
