package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/chatsync/chatsync/internal/mariadbtest"
	"github.com/chatsync/chatsync/sync/accountserver"
)

func TestAccountsTableFlags(t *testing.T) {
	t.Setenv("CHATSYNC_JOURNAL_PASSWORD", "pw")
	base := []string{"--data", "d", "--journal", "mysql://chat@db/x"}
	cfg, err := parseFlags(append(slices.Clone(base), "--accounts-table"), io.Discard, io.Discard)
	if err != nil || !cfg.opts.AccountsTable || cfg.opts.AccountsReload != accountserver.DefaultAccountsReload {
		t.Errorf("--accounts-table: %v %+v", err, cfg)
	}
	cfg, err = parseFlags(append(slices.Clone(base), "--accounts-table", "--accounts-reload", "2s"), io.Discard, io.Discard)
	if err != nil || cfg.opts.AccountsReload != 2*time.Second {
		t.Errorf("--accounts-reload 2s: %v %+v", err, cfg)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", "d", "--accounts-table"}, "needs --journal mysql://"},
		{append(slices.Clone(base), "--accounts-table", "--accounts", "a.toml"), "exclude each other"},
		{append(slices.Clone(base), "--accounts-table", "--accounts-reload", "0s"), "want a positive interval"},
		{base, "--accounts is required"},
	} {
		_, err := parseFlags(tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestBinaryAccountsTableReloadsOnSIGHUP starts the binary on an empty
// accounts table with a reload interval of an hour: an account inserted
// with SQL logs in after SIGHUP, a deleted one is refused after the next.
func TestBinaryAccountsTableReloadsOnSIGHUP(t *testing.T) {
	d := mariadbtest.New(t)
	db := d.Open(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(d.Password+"\n"), 0o600)
	bin := buildServer(t)
	base, stop, cmd := startBinaryProc(t, bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"),
		"--accounts-table", "--accounts-reload", "1h",
		"--journal", fmt.Sprintf("mysql://%s@%s/%s", d.User, d.Addr(), d.Name), "--journal-password-file", pw)
	t.Cleanup(stop)
	login := func() bool {
		c := &http.Client{Transport: &digest.Transport{Username: "hank", Password: "hpw"}, Timeout: 30 * time.Second}
		resp, err := c.Get(base + "?realm=example.com&action=get_identity")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.HasPrefix(string(b), "{")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if login() {
		t.Fatal("logs in on an empty table")
	}
	if _, err := db.Exec("INSERT INTO chatsync_accounts (address, password) VALUES ('hank@example.com', 'hpw')"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("inserted account logs in after SIGHUP", login)
	if _, err := db.Exec("DELETE FROM chatsync_accounts"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("deleted account refused after SIGHUP", func() bool { return !login() })
}
