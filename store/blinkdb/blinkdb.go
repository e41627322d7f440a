package blinkdb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors that say why a database cannot be used; errors.Is tells them
// apart. SPEC §6b: a missing database or table pauses the account with a
// message; a table version chatsync does not know is refused, named.
var (
	ErrNoDatabase     = errors.New("blinkdb: the database file does not exist")
	ErrNoTable        = errors.New("blinkdb: the database has no message table")
	ErrUnknownVersion = errors.New("blinkdb: unknown table version")
	ErrSchema         = errors.New("blinkdb: the message table lacks a column")
	ErrBusy           = errors.New("blinkdb: the database stayed locked")
)

// Timing of lock waits.
//
// busyTimeout is how long SQLite itself waits for a lock on each
// statement. It is well below the clients' 5 s: while chatsync waits to
// commit it holds the PENDING lock, which makes the client's new reads
// wait, so no single wait of ours may come near 5 s. A wait that runs out
// rolls back, releases every lock, and is retried with backoff, up to
// busyBound in all.
const (
	busyTimeout      = 1000 // ms
	defaultBusyBound = 10 * time.Second
	// pageSize bounds how long one Snapshot read holds the shared lock:
	// a page is its own implicit transaction, so a client's write waits
	// at most one page.
	pageSize = 500
)

// Key is the table's unique key within this account: (msgid, account,
// remote_uri) with the account fixed. One msgid may appear with two remote
// URIs; the unique index allows it and so does the client.
type Key struct {
	MsgID     string
	RemoteURI string
}

// KeyOf is the key a message with this msgid and remote_uri has in the
// table once written: the clients write remote_uri as user@domain, with no
// sip: or sips: scheme.
func KeyOf(msgid, remoteURI string) Key { return Key{MsgID: msgid, RemoteURI: stripScheme(remoteURI)} }

// Row is one row of this account, as Snapshot and Put report it.
type Row struct {
	Key Key
	// Hash is the hex SHA-256 of every column but id, with types and NULLs
	// told apart. The tables have no change column and the clients update
	// rows in place, so this is how a change is seen. It also covers the
	// columns that are not replicated (Blink Cocoa's uuid and journal_id),
	// so compare Message too before pushing a new version.
	Hash string
	// Deleted is a Blink Qt soft delete (state 'deleted'): the row is still
	// there but the user deleted the message.
	Deleted bool
	// Message is the wire message: compact JSON with sorted keys, as
	// store/msgdir canonicalizes a message file.
	Message []byte
}

// DB is one account's view of a client's history database. Its methods may
// be called from several goroutines; they run one at a time.
type DB struct {
	path    string
	t       *table
	account string

	mu        sync.Mutex
	sql       *sql.DB
	file      os.FileInfo // what was opened, to notice the file being replaced
	opens     int         // how often the file was opened, for Changes
	busyBound time.Duration
}

// Open opens the database at path, which must exist, for the account with
// the given address (user@domain; a sip: prefix is dropped). It checks that
// the table is there, at the one version this package knows, with its
// columns. It neither creates nor changes anything.
func Open(path string, d Dialect, account string) (*DB, error) {
	t, err := d.table()
	if err != nil {
		return nil, err
	}
	account = stripScheme(strings.TrimSpace(account))
	if account == "" {
		return nil, errors.New("blinkdb: no account address")
	}
	db := &DB{path: path, t: t, account: account, busyBound: defaultBusyBound}
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.ensure(context.Background()); err != nil {
		return nil, err
	}
	return db, nil
}

// Changes returns a token that stays the same while no other program
// commits a change to the database, and differs once one has (SQLite's
// data_version, which this connection's own writes leave alone). A caller
// that read the rows after taking a token knows, while Changes returns it,
// that its view is complete but for its own writes.
func (db *DB) Changes(ctx context.Context) (string, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.ensure(ctx); err != nil {
		return "", err
	}
	var v int64
	err := db.retry(ctx, func() error { return db.sql.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v) })
	if err != nil {
		return "", fmt.Errorf("blinkdb: %s: %w", db.path, err)
	}
	return fmt.Sprintf("%d.%d", db.opens, v), nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.sql == nil {
		return nil
	}
	err := db.sql.Close()
	db.sql = nil
	return err
}

// dsn names the file as an SQLite URI so that mode=rw can forbid creating
// it (a missing database is an error, not a new empty one). journal_mode is
// deliberately absent: it is the client's choice. secure_delete makes our
// deletes overwrite the deleted text, since Blink Cocoa VACUUMs after its
// own deletes for the same reason and a VACUUM here would hold an
// exclusive lock for as long as the whole file takes to copy. _txlock
// makes every transaction BEGIN IMMEDIATE, so a write takes its lock up
// front instead of failing to upgrade a read lock halfway.
func dsn(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/… on Windows becomes file:///C:/…
	}
	q := url.Values{}
	q.Set("mode", "rw")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout))
	q.Add("_pragma", "secure_delete(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String(), nil
}

// ensure (re)opens the database when needed and checks the table. The
// client may replace the file (a restore, a new profile), which leaves an
// open handle on the old one; the file's identity is compared on every call
// and a new file is opened and checked afresh. The table version is checked
// on every call too, so a client that migrated its table meanwhile is
// noticed before anything is written. Both checks are a stat and two small
// queries.
func (db *DB) ensure(ctx context.Context) error {
	fi, err := os.Stat(db.path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoDatabase, db.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrNoDatabase, db.path)
	}
	if db.sql != nil && !os.SameFile(fi, db.file) {
		db.sql.Close()
		db.sql = nil
	}
	if db.sql == nil {
		name, err := dsn(db.path)
		if err != nil {
			return err
		}
		s, err := sql.Open("sqlite", name)
		if err != nil {
			return fmt.Errorf("blinkdb: open %s: %w", db.path, err)
		}
		// One connection: our own statements never wait for each other,
		// and the file sees one more reader at most.
		s.SetMaxOpenConns(1)
		db.sql, db.file = s, fi
		db.opens++
	}
	return db.retry(ctx, func() error { return db.checkTable(ctx) })
}

// checkTable refuses a database whose message table is missing, is at a
// version this package was not written for, or lacks a column. The
// clients record the version in a table of their own (SQLObject classes
// TableVersion, table table_versions, in Blink Qt, and TableVersionEntry,
// table versions, in Blink Cocoa): one row per table, table_name and
// version.
func (db *DB) checkTable(ctx context.Context) error {
	t := db.t
	var n int
	if err := db.sql.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, t.name).Scan(&n); err != nil {
		return fmt.Errorf("blinkdb: read %s: %w", db.path, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s has no table %q", ErrNoTable, db.path, t.name)
	}
	var version sql.NullString
	err := db.sql.QueryRowContext(ctx,
		`SELECT CAST(version AS TEXT) FROM `+t.versionTable+` WHERE table_name = ?`, t.name).Scan(&version)
	switch {
	case err != nil && isNoSuchTable(err), errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s records no version for table %q (chatsync knows version %d)",
			ErrUnknownVersion, db.path, t.name, t.version)
	case err != nil:
		return fmt.Errorf("blinkdb: read %s: %w", db.path, err)
	case !version.Valid || version.String != fmt.Sprint(t.version):
		v := "NULL"
		if version.Valid {
			v = version.String
		}
		return fmt.Errorf("%w: table %q of %s is at version %s; chatsync knows version %d",
			ErrUnknownVersion, t.name, db.path, v, t.version)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, t.name)
	if err != nil {
		return fmt.Errorf("blinkdb: read %s: %w", db.path, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return err
		}
		have[c] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range append([]string{"id"}, t.columns...) {
		if !have[c] {
			return fmt.Errorf("%w: table %q of %s has no column %q", ErrSchema, t.name, db.path, c)
		}
	}
	return nil
}

func isNoSuchTable(err error) bool { return strings.Contains(err.Error(), "no such table") }

// isBusy reports whether err is SQLite saying another connection holds a
// lock.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// retry runs fn until it does not fail with SQLITE_BUSY, backing off
// exponentially with jitter, for at most busyBound. fn must be a whole
// transaction (or a single statement), so that a retry starts clean.
func (db *DB) retry(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(db.busyBound)
	wait := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil || !isBusy(err) {
			return err
		}
		sleep := wait/2 + rand.N(wait/2+1)
		if time.Now().Add(sleep).After(deadline) {
			return fmt.Errorf("%w for %v: %v", ErrBusy, db.busyBound, err)
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// selectCols reads every column but id through quote(), which gives the
// stored value exactly, typed: modernc.org/sqlite would otherwise turn
// TIMESTAMP and DATE text into time.Time and lose its exact shape.
func (t *table) selectCols() string {
	var b strings.Builder
	b.WriteString("id")
	for _, c := range t.columns {
		b.WriteString(", quote(" + c + ")")
	}
	return b.String()
}

// scanRow reads one row of selectCols into its rec and its Row.
func (db *DB) scanRow(sc interface{ Scan(...any) error }) (int64, rec, Row, error) {
	t := db.t
	var id int64
	quoted := make([]string, len(t.columns))
	dest := []any{&id}
	for i := range quoted {
		dest = append(dest, &quoted[i])
	}
	if err := sc.Scan(dest...); err != nil {
		return 0, nil, Row{}, err
	}
	r := rec{}
	h := sha256.New()
	for i, c := range t.columns {
		io.WriteString(h, quoted[i])
		h.Write([]byte{0})
		if v, ok := unquote(quoted[i]); ok {
			r[c] = v
		}
	}
	w, deleted := toWire(t, r)
	msg, err := json.Marshal(w)
	if err != nil {
		return 0, nil, Row{}, err
	}
	return id, r, Row{
		Key:     Key{MsgID: r[t.msgid], RemoteURI: r[t.remote]},
		Hash:    hex.EncodeToString(h.Sum(nil)),
		Deleted: deleted,
		Message: msg,
	}, nil
}

// unquote reverses SQLite's quote(): 'text' with doubled quotes, X'hex'
// for a blob, NULL, or a number as written.
func unquote(q string) (string, bool) {
	switch {
	case q == "NULL":
		return "", false
	case strings.HasPrefix(q, "'") && strings.HasSuffix(q, "'") && len(q) >= 2:
		return strings.ReplaceAll(q[1:len(q)-1], "''", "'"), true
	case strings.HasPrefix(q, "X'") && strings.HasSuffix(q, "'"):
		b, err := hex.DecodeString(q[2 : len(q)-1])
		if err == nil {
			return string(b), true
		}
	}
	return q, true
}

// Snapshot returns every row of this account, keyed by the unique key.
// It reads in pages of rows ordered by id, each page its own short read, so
// it never holds the shared lock for long; a row changed while it runs is
// reported as it was at some moment during the call (ids do not change,
// not even on VACUUM, since id is the INTEGER PRIMARY KEY). Rows without a
// msgid or remote_uri are not messages and are left out.
func (db *DB) Snapshot(ctx context.Context) (map[Key]Row, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.ensure(ctx); err != nil {
		return nil, err
	}
	t := db.t
	query := `SELECT ` + t.selectCols() + ` FROM ` + t.name +
		` WHERE ` + t.account + ` = ? AND id > ? ORDER BY id LIMIT ?`
	out := map[Key]Row{}
	after := int64(math.MinInt64)
	for {
		var page []Row
		var last int64
		err := db.retry(ctx, func() error {
			page, last = page[:0], after
			rows, err := db.sql.QueryContext(ctx, query, db.account, after, pageSize)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				id, _, row, err := db.scanRow(rows)
				if err != nil {
					return err
				}
				page, last = append(page, row), id
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("blinkdb: snapshot %s: %w", db.path, err)
		}
		for _, row := range page {
			if row.Key.MsgID != "" && row.Key.RemoteURI != "" {
				out[row.Key] = row
			}
		}
		if len(page) < pageSize {
			return out, nil
		}
		after = last
	}
}

// Put writes a message that arrived from another device, as the client
// writes one: a new row with every column filled in the client's formats,
// or, when this account already has a row with the same unique key (the
// client may have received the message itself, from SylkServer or SIP), a
// merge into that row: the message's fields win, and fields it lacks keep
// the row's values. Nothing is written when the row already says what the
// message says. device is the id of the device that wrote the message to
// the journal; Blink Cocoa keeps it in uuid, as its own replication does
// (Blink Qt has no such column). Put returns the row as it now is, whose
// Hash lets the caller recognize its own write in the next Snapshot.
func (db *DB) Put(ctx context.Context, msg []byte, device string) (Row, error) {
	return db.put(ctx, msg, device, nil)
}

// ErrChanged is a PutOver refused because the row is not the one the
// caller last saw: the client changed it meanwhile.
var ErrChanged = errors.New("blinkdb: the row changed since it was read")

// PutOver is Put for a caller that decided to write msg after looking at
// the row: seen is the Hash of the row with the message's key as the caller
// last read it ("" when there was none). If the row is not that any more
// (the client changed it, or wrote a row with that key, meanwhile), nothing
// is written and the error is ErrChanged, so a change the caller has not
// seen is never merged away.
func (db *DB) PutOver(ctx context.Context, msg []byte, device, seen string) (Row, error) {
	return db.put(ctx, msg, device, &seen)
}

func (db *DB) put(ctx context.Context, msg []byte, device string, seen *string) (Row, error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Row{}, fmt.Errorf("blinkdb: message is not a JSON object")
	}
	msgid, _, _ := text(obj["msgid"])
	remote, _, _ := text(obj["remote_uri"])
	remote = KeyOf(msgid, remote).RemoteURI
	if msgid == "" || remote == "" {
		return Row{}, fmt.Errorf("%w: msgid and remote_uri", ErrIncomplete)
	}

	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.ensure(ctx); err != nil {
		return Row{}, err
	}
	t := db.t
	byKey := `SELECT ` + t.selectCols() + ` FROM ` + t.name +
		` WHERE ` + t.msgid + ` = ? AND ` + t.account + ` = ? AND ` + t.remote + ` = ?`
	var out Row
	err := db.retry(ctx, func() error {
		tx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		id, old, cur, err := db.scanRow(tx.QueryRowContext(ctx, byKey, msgid, db.account, remote))
		if errors.Is(err, sql.ErrNoRows) {
			old, cur = nil, Row{}
		} else if err != nil {
			return err
		}
		if seen != nil && cur.Hash != *seen {
			return ErrChanged
		}
		r, err := fromWire(t, obj, old, db.account, device)
		if err != nil {
			return err
		}
		if old == nil {
			id, err = db.insert(ctx, tx, r)
		} else {
			err = db.update(ctx, tx, id, old, r)
		}
		if err != nil {
			return err
		}
		_, _, out, err = db.scanRow(tx.QueryRowContext(ctx,
			`SELECT `+t.selectCols()+` FROM `+t.name+` WHERE id = ?`, id))
		if err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		return Row{}, fmt.Errorf("blinkdb: put %q: %w", msgid, err)
	}
	return out, nil
}

func (db *DB) insert(ctx context.Context, tx *sql.Tx, r rec) (int64, error) {
	t := db.t
	args := make([]any, len(t.columns))
	for i, c := range t.columns {
		if v, ok := r[c]; ok {
			args[i] = v
		}
	}
	q := `INSERT INTO ` + t.name + ` (` + strings.Join(t.columns, ", ") + `) VALUES (?` +
		strings.Repeat(", ?", len(t.columns)-1) + `)`
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// update writes the columns that differ, and nothing when none does, so an
// incoming version the row already holds does not touch the file.
func (db *DB) update(ctx context.Context, tx *sql.Tx, id int64, old, r rec) error {
	var set []string
	var args []any
	for _, c := range db.t.columns {
		v, ok := r[c]
		ov, had := old[c]
		if ok == had && v == ov {
			continue
		}
		set = append(set, c+" = ?")
		if ok {
			args = append(args, v)
		} else {
			args = append(args, nil)
		}
	}
	if len(set) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE `+db.t.name+` SET `+strings.Join(set, ", ")+` WHERE id = ?`,
		append(args, id)...)
	return err
}

// Delete removes this account's rows with the msgid, as Blink Qt does for
// a delete that comes from another device (remove_message destroys the
// rows; it is the user's own delete in Blink Qt that only marks them
// 'deleted'). Unlike the clients, which delete the msgid in every account,
// it leaves other accounts' rows alone, and unlike Blink Cocoa it does not
// VACUUM (see dsn for why that is not needed). Deleting a msgid the
// account does not have is not an error.
func (db *DB) Delete(ctx context.Context, msgid string) error {
	return db.delete(ctx, msgid, ` WHERE `+db.t.msgid+` = ? AND `+db.t.account+` = ?`, msgid, db.account)
}

// DeleteRow removes this account's one row with key k (a message that
// moved to another conversation: its row under the old remote_uri).
func (db *DB) DeleteRow(ctx context.Context, k Key) error {
	return db.delete(ctx, k.MsgID, ` WHERE `+db.t.msgid+` = ? AND `+db.t.account+` = ? AND `+db.t.remote+` = ?`,
		k.MsgID, db.account, k.RemoteURI)
}

func (db *DB) delete(ctx context.Context, msgid, where string, args ...any) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.ensure(ctx); err != nil {
		return err
	}
	err := db.retry(ctx, func() error {
		tx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+db.t.name+where, args...); err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		return fmt.Errorf("blinkdb: delete %q: %w", msgid, err)
	}
	return nil
}
