package accountserver

import (
	"bytes"
	"database/sql"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/internal/mariadbtest"
)

// syncBuffer is a bytes.Buffer safe for the reload loop's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tableEnv starts a server on the accounts table of a fresh database,
// re-read every reload; before, if set, runs on the database first.
func tableEnv(t *testing.T, reload time.Duration, before func(db *sql.DB)) (*env, *sql.DB, *syncBuffer) {
	t.Helper()
	d := mariadbtest.New(t)
	db := d.Open(t)
	if before != nil {
		before(db)
	}
	logs := &syncBuffer{}
	e := newEnv(t, func(o *Options) {
		o.Accounts = nil
		o.JournalMySQL = d.Config()
		o.AccountsTable = true
		o.AccountsReload = reload
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	return e, db, logs
}

func mustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// loginOK tells whether user@example.com with pw gets its identity.
func (e *env) loginOK(user, pw string) bool {
	e.t.Helper()
	r := e.as(e.client(user, pw), "example.com", "get_identity")
	return r.status == 200 && strings.HasPrefix(r.body, "{")
}

func TestAccountsTableIsCreatedWithTheDocumentedSchema(t *testing.T) {
	_, db, _ := tableEnv(t, time.Hour, nil)
	var ddl string
	if err := db.QueryRow("SHOW CREATE TABLE chatsync_accounts").Scan(new(string), &ddl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"`address` varchar(128) NOT NULL",
		"`password` varchar(255) NOT NULL DEFAULT ''",
		"`web_password` varchar(255) DEFAULT NULL",
		"`ha1` char(32) DEFAULT NULL",
		"`seed` longtext DEFAULT NULL",
		"PRIMARY KEY (`address`)",
	} {
		if !strings.Contains(ddl, want) {
			t.Errorf("no %q in\n%s", want, ddl)
		}
	}
}

func TestAccountsTableExistingIsNotAltered(t *testing.T) {
	var before string
	_, db, _ := tableEnv(t, time.Hour, func(db *sql.DB) {
		mustExec(t, db, strings.Replace(AccountsTableDDL, "PRIMARY KEY", "`note` text,\n  PRIMARY KEY", 1))
		if err := db.QueryRow("SHOW CREATE TABLE chatsync_accounts").Scan(new(string), &before); err != nil {
			t.Fatal(err)
		}
	})
	var after string
	if err := db.QueryRow("SHOW CREATE TABLE chatsync_accounts").Scan(new(string), &after); err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("table altered:\n%s\nnow\n%s", before, after)
	}
	// A table without the columns is refused at start.
	d := mariadbtest.New(t)
	db2 := d.Open(t)
	mustExec(t, db2, "CREATE TABLE chatsync_accounts (address varchar(128) PRIMARY KEY, password varchar(64))")
	_, err := New(Options{DataDir: t.TempDir(), JournalMySQL: d.Config(), AccountsTable: true})
	if err == nil || !strings.Contains(err.Error(), "lacks a column") {
		t.Errorf("table without web_password, ha1, seed: %v", err)
	}
}

// TestAccountsTableReloadsInsertUpdateDelete: accounts written with plain
// SQL are served within the reload interval.
func TestAccountsTableReloadsInsertUpdateDelete(t *testing.T) {
	e, db, _ := tableEnv(t, 50*time.Millisecond, nil)
	if e.loginOK("dave", "pw1") {
		t.Fatal("dave logs in before he is in the table")
	}
	mustExec(t, db, "INSERT INTO chatsync_accounts (address, password, seed) VALUES ('Dave@Example.com', 'pw1', ?)",
		`{"first":"David","aliases":["dj"],"no_answer_timeout":20,"balance":5}`)
	waitUntil(t, "inserted account logs in", func() bool { return e.loginOK("dave", "pw1") })
	wantBody(t, e.as(e.client("dave", "pw1"), "example.com", "get_aliases"), 200, `["dj@example.com"]`)

	mustExec(t, db, "UPDATE chatsync_accounts SET password = 'pw2' WHERE address = 'dave@example.com'")
	waitUntil(t, "old password refused after UPDATE", func() bool { return !e.loginOK("dave", "pw1") })
	if !e.loginOK("dave", "pw2") {
		t.Error("new password refused after UPDATE")
	}

	// A web password, when set, is the only accepted secret.
	mustExec(t, db, "UPDATE chatsync_accounts SET web_password = 'web' WHERE address = 'dave@example.com'")
	waitUntil(t, "web password accepted", func() bool { return e.loginOK("dave", "web") })
	if e.loginOK("dave", "pw2") {
		t.Error("SIP password accepted with a web password set")
	}

	mustExec(t, db, "INSERT INTO chatsync_accounts (address, ha1) VALUES ('erin@example.com', ?)", md5s("erin:example.com:hpw"))
	mustExec(t, db, "DELETE FROM chatsync_accounts WHERE address = 'dave@example.com'")
	waitUntil(t, "deleted account refused", func() bool { return !e.loginOK("dave", "web") })
	if !e.loginOK("erin", "hpw") {
		t.Error("account with ha1 refused")
	}
}

// TestAccountsTableBadRowIsSkipped: malformed rows are logged with their
// address and skipped; the other rows are served.
func TestAccountsTableBadRowIsSkipped(t *testing.T) {
	e, db, logs := tableEnv(t, 50*time.Millisecond, func(db *sql.DB) {
		mustExec(t, db, AccountsTableDDL)
		mustExec(t, db, "INSERT INTO chatsync_accounts (address, password, seed) VALUES "+
			"('bad-json@example.com', 'x', '{not json'), "+
			"('noat', 'x', NULL), "+
			"('nopw@example.com', '', NULL), "+
			"('badha1@example.com', '', NULL), "+
			"('badkey@example.com', 'x', '{\"colour\":\"red\"}'), "+
			"('badtz@example.com', 'x', '{\"timezone\":\"Mars/Olympus\"}'), "+
			"('seedpw@example.com', 'x', '{\"password\":\"y\"}'), "+
			"('good@example.com', 'gpw', '{\"timezone\":\"UTC\"}')")
		mustExec(t, db, "UPDATE chatsync_accounts SET ha1 = 'zz' WHERE address = 'badha1@example.com'")
	})
	if !e.loginOK("good", "gpw") {
		t.Fatalf("good account refused next to bad rows; logs:\n%s", logs)
	}
	for _, addr := range []string{"bad-json@example.com", "noat", "nopw@example.com", "badha1@example.com", "badkey@example.com", "badtz@example.com", "seedpw@example.com"} {
		if !strings.Contains(logs.String(), "address="+addr+" ") {
			t.Errorf("no log of the bad row %s:\n%s", addr, logs)
		}
	}
	if e.loginOK("bad-json", "x") || e.loginOK("badkey", "x") {
		t.Error("a bad row is served")
	}
	// A bad row written later does not stop an account added with it.
	mustExec(t, db, "INSERT INTO chatsync_accounts (address, password, seed) VALUES ('worse@example.com', 'x', '[1]'), ('frank@example.com', 'fpw', NULL)")
	waitUntil(t, "account inserted next to a bad row logs in", func() bool { return e.loginOK("frank", "fpw") })
	if !e.loginOK("good", "gpw") {
		t.Error("good account lost at a reload with a bad row")
	}
}

// TestAccountsTableReloadAccountsAtOnce is the SIGHUP path: ReloadAccounts
// swaps the accounts without waiting for the interval.
func TestAccountsTableReloadAccountsAtOnce(t *testing.T) {
	e, db, _ := tableEnv(t, time.Hour, nil)
	mustExec(t, db, "INSERT INTO chatsync_accounts (address, password) VALUES ('gina@example.com', 'g')")
	if e.loginOK("gina", "g") {
		t.Fatal("served before the reload (interval is an hour)")
	}
	if err := e.srv.ReloadAccounts(); err != nil {
		t.Fatal(err)
	}
	if !e.loginOK("gina", "g") {
		t.Error("refused after ReloadAccounts")
	}
}

func TestAccountsTableOptions(t *testing.T) {
	if _, err := New(Options{DataDir: t.TempDir(), AccountsTable: true}); err == nil || !strings.Contains(err.Error(), "set JournalMySQL") {
		t.Errorf("no JournalMySQL: %v", err)
	}
	d := mariadbtest.New(t)
	if _, err := New(Options{DataDir: t.TempDir(), JournalMySQL: d.Config(), AccountsTable: true, Accounts: seedAccounts(t)}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Accounts and AccountsTable: %v", err)
	}
}

// TestAccountFromRowSeedIsTheFileKeys: a seed in JSON gives the account
// the same TOML gives.
func TestAccountFromRowSeedIsTheFileKeys(t *testing.T) {
	got, err := accountFromRow(" Ivy@Example.com ", "ipw", "", "", `{
		"first": "Ivy", "no_answer_timeout": 20, "balance": 5, "timezone": "UTC", "privacy": true,
		"aliases": ["iv"], "forwarding": {"FBUS": "sip:bob@example.com"},
		"history": {"placed": [{"remote_party": "bob@example.com", "start_time": "2026-11-01 10:00:00", "duration": 60, "price": 0.5}]},
		"accept_rules": {"persistent": [{"days": 31, "start": "09:00", "stop": "17:00", "groups": ["everybody"]}]},
		"voicemail": {"mailbox": "1234", "options": {"delete": false}}}`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseAccounts([]byte(`[[account]]
address = "ivy@example.com"
password = "ipw"
first = "Ivy"
no_answer_timeout = 20
balance = 5.0
timezone = "UTC"
privacy = true
aliases = ["iv"]
forwarding = { FBUS = "sip:bob@example.com" }
[[account.history.placed]]
remote_party = "bob@example.com"
start_time = "2026-11-01 10:00:00"
duration = 60
price = 0.5
[[account.accept_rules.persistent]]
days = 31
start = "09:00"
stop = "17:00"
groups = ["everybody"]
[account.voicemail]
mailbox = "1234"
options = { delete = false }
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want[0]) {
		t.Errorf("got  %+v\nwant %+v", got, want[0])
	}
	for seed, wantErr := range map[string]string{
		`{"first": null}`:            "null is not allowed",
		`{"colour": "red"}`:          `unknown key "account.colour"`,
		`{"ha1": "x"}`:               "column of the table",
		`{"no_answer_timeout": "x"}`: "no_answer_timeout",
		`{} {}`:                      "data after the JSON object",
	} {
		if _, err := accountFromRow("ivy@example.com", "ipw", "", "", seed); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("seed %s: got %v, want %q", seed, err, wantErr)
		}
	}
}
