package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/engine"
)

// caughtUp reports whether the account runs, has nothing to send and has
// applied the journal up to at least cursor (which counts other devices'
// rows only).
func caughtUp(rd *runningDaemon, addr string, cursor int64) bool {
	st, ok := rd.account(addr)
	return ok && st.StartError == "" && st.State == engine.StateIdle && st.OutboxDepth == 0 && st.Cursor >= cursor
}

func startError(rd *runningDaemon, addr string) string {
	st, _ := rd.account(addr)
	return st.StartError
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSecondDaemonOnTheSameStoreIsRefusedNamingTheFirst(t *testing.T) {
	const addr = "alice@example.com"
	srv := newTestServer(t, map[string]string{addr: "pw"})
	dir1, dir2 := shortTempDir(t), shortTempDir(t)
	alice := newTestAccount(t, dir1, addr, "pw")
	cfg1, cfg2 := filepath.Join(dir1, "config.toml"), filepath.Join(dir2, "config.toml")
	writeConfig(t, cfg1, daemonTable(dir1, "info")+alice.block(srv.url, "1s"))
	// The second daemon: its own state dir, the same message store.
	writeConfig(t, cfg2, daemonTable(dir2, "info")+alice.block(srv.url, "1s"))

	first := startTestDaemon(t, cfg1)
	alice.write(t, "carol/a1.json", "a1", "written once")
	waitUntil(t, 15*time.Second, "the first daemon to push the message", func() bool {
		return srv.rows(t, addr) == 1 && caughtUp(first, addr, 0)
	}, first.log)

	second := startTestDaemon(t, cfg2)
	host, _ := os.Hostname()
	want := fmt.Sprintf("message store %s is in use by another chatsync (pid %d on %s, state dir %s, account %s, since ",
		alice.store, os.Getpid(), host, filepath.Join(dir1, "state"), addr)
	waitUntil(t, 10*time.Second, "the second daemon to refuse the store", func() bool {
		return strings.Contains(startError(second, addr), want)
	}, second.log)
	if msg := startError(second, addr); !strings.HasSuffix(msg, "two daemons on one store would send every change twice. Stop that one, or give this account a store of its own") {
		t.Errorf("the refusal does not say what to do: %q", msg)
	}
	if r := second.runner(addr); r == nil || r.eng != nil {
		t.Fatal("the second daemon started an engine on the store")
	}
	// The first goes on alone: a new message reaches the server once.
	alice.write(t, "carol/a2.json", "a2", "also written once")
	waitUntil(t, 15*time.Second, "the first daemon to push the second message", func() bool {
		return srv.rows(t, addr) == 2 && caughtUp(first, addr, 0)
	}, first.log)
	if err := second.d.SyncNow(addr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := srv.rows(t, addr); n != 2 {
		t.Errorf("the server holds %d rows, want 2: the refused daemon pushed", n)
	}

	// Once the first has stopped, the store's lock is free; but the second
	// daemon's state has never synced this store, which holds the marker
	// of the first's: that is refused too, with what to do.
	first.stop()
	second.d.Reload()
	marker := filepath.Join(alice.store, markerName)
	wantMarker := fmt.Sprintf("message store %s was synced by chatsync under another state: it holds .chatsync-store, but the state in %s has no record of %s (a state file lost or moved aside, another daemon.state_dir, or another account address), and starting would make this a new device. Put the old state back; or, to start this store over as a new device, run `rm %s` and start chatsync again: the device re-reads the journal and pushes again only what the journal lacks",
		alice.store, filepath.Join(dir2, "state"), addr, marker)
	waitUntil(t, 10*time.Second, "the second daemon to refuse a store synced under another state", func() bool {
		return startError(second, addr) == wantMarker
	}, second.log)
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the marker: %v", err)
	}
}

// A chat client's database holds every account: each account's lock is
// its own, beside the file, taken also before the client has made the
// file, and the same whatever path names the file.
func TestALockOnADatabaseIsPerAccountAndHoldsThroughALinkAndBeforeTheFileExists(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "message_history.db")
	discard := slog.New(slog.DiscardHandler)
	first, err := lockStore(db, true, "alice@example.com", "/state/one", discard)
	if err != nil || first == nil {
		t.Fatalf("lock on a database not made yet: %v, %v; want a lock", first, err)
	}
	defer first.release()
	if err := os.WriteFile(db, []byte("sqlite"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "blink.db")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{db, link} {
		if l, err := lockStore(path, true, "Alice@example.com", "/state/two", discard); err == nil || !strings.Contains(err.Error(), "in use by another chatsync") || !strings.Contains(err.Error(), "/state/one") {
			l.release()
			t.Errorf("a second lock for alice through %s: %v; want it refused naming the first", path, err)
		}
	}
	other, err := lockStore(link, true, "bob@example.com", "/state/two", discard)
	if err != nil || other == nil {
		t.Errorf("bob's lock on the same database: %v, %v; want a lock of its own", other, err)
	}
	other.release()
}
