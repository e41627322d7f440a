package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/store"
)

func TestMissingStateNextToAKnownStoreIsRefusedAndStartsOverOnlyWhenAsked(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	srv := newTestServer(t, map[string]string{alice: "pw-a", bob: "pw-b"})
	dir := shortTempDir(t)
	a := newTestAccount(t, dir, alice, "pw-a")
	b := newTestAccount(t, dir, bob, "pw-b")
	cfg := filepath.Join(dir, "config.toml")
	writeConfig(t, cfg, daemonTable(dir, "info")+a.block(srv.url, "1s"))
	rd := startTestDaemon(t, cfg)
	for i := range 5 {
		a.write(t, fmt.Sprintf("carol/m%d.json", i), fmt.Sprintf("m%d", i), "before the state was lost")
	}
	waitUntil(t, 15*time.Second, "five messages pushed", func() bool { return srv.rows(t, alice) == 5 && caughtUp(rd, alice, 0) }, rd.log)
	oldID := rd.d.DeviceID()
	rd.stop()

	// The state is lost (a new disk, a wiped dir); bob is new.
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfg, daemonTable(dir, "info")+a.block(srv.url, "1s")+"\n"+b.block(srv.url, "1s"))
	rd = startTestDaemon(t, cfg)
	marker := filepath.Join(a.store, markerName)
	waitUntil(t, 10*time.Second, "alice refused", func() bool {
		return strings.HasPrefix(startError(rd, alice), "message store "+a.store+" was synced by chatsync under another state: it holds .chatsync-store, but the state in "+filepath.Join(dir, "state")+" has no record of "+alice)
	}, rd.log)
	// The other account runs.
	b.write(t, "carol/b1.json", "b1", "bob's")
	waitUntil(t, 15*time.Second, "bob to push", func() bool { return srv.rows(t, bob) == 1 && caughtUp(rd, bob, 0) }, rd.log)
	if r := rd.runner(alice); r == nil || r.eng != nil {
		t.Fatal("alice's engine started")
	}
	// The refusal stays across restarts until the user says otherwise.
	rd.stop()
	rd = startTestDaemon(t, cfg)
	waitUntil(t, 10*time.Second, "alice refused again", func() bool { return strings.Contains(startError(rd, alice), "rm "+marker) }, rd.log)

	// rm the marker, as the message says: alice starts over as a new
	// device and pushes nothing the journal has.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	rd.d.Reload()
	waitUntil(t, 20*time.Second, "alice to start over and catch up", func() bool { return caughtUp(rd, alice, 5) }, rd.log)
	if rd.d.DeviceID() == oldID {
		t.Error("the new state has the old device id")
	}
	a.write(t, "carol/after.json", "after", "after starting over")
	waitUntil(t, 15*time.Second, "the new message pushed", func() bool { return caughtUp(rd, alice, 5) && srv.rows(t, alice) >= 6 }, rd.log)
	if n := srv.rows(t, alice); n != 6 {
		t.Errorf("the server holds %d rows for alice, want 6: starting over pushed again what the journal had", n)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the engine did not write the marker again: %v", err)
	}
}

func TestEmptyStateFileIsRefusedWithTheCommandsThatStartAgain(t *testing.T) {
	const addr = "alice@example.com"
	srv := newTestServer(t, map[string]string{addr: "pw"})
	dir := shortTempDir(t)
	a := newTestAccount(t, dir, addr, "pw")
	cfgPath := filepath.Join(dir, "config.toml")
	writeConfig(t, cfgPath, daemonTable(dir, "info")+a.block(srv.url, "1s"))
	rd := startTestDaemon(t, cfgPath)
	for i := range 3 {
		a.write(t, fmt.Sprintf("carol/m%d.json", i), fmt.Sprintf("m%d", i), "before the state was emptied")
	}
	waitUntil(t, 15*time.Second, "three messages pushed", func() bool { return srv.rows(t, addr) == 3 && caughtUp(rd, addr, 0) }, rd.log)
	rd.stop()

	state := filepath.Join(dir, "state", store.FileName)
	if err := os.Truncate(state, 0); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: cfg})
	if !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("New = %v, want ErrDamaged", err)
	}
	want := fmt.Sprintf("state file %s is damaged (it is empty (0 bytes): its content was lost, by a crash of the file system, a full disk or a failed copy); chatsync does not run on it. To start again, run `chatsync state rebuild --config %s`: it keeps the damaged file beside a new state, and the device re-reads the journal and pushes again only what the journal lacks",
		state, cfgPath)
	if err.Error() != want {
		t.Errorf("New = %q\nwant  %q", err, want)
	}
	if fi, err := os.Stat(state); err != nil || fi.Size() != 0 {
		t.Errorf("the empty file was written: %v %v", fi, err)
	}
	// The rebuild it names; then the device starts over, pushing
	// nothing again.
	if _, err := RebuildState(cfg, false, time.Now()); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	rd = startTestDaemon(t, cfgPath)
	waitUntil(t, 20*time.Second, "the device to catch up again", func() bool { return caughtUp(rd, addr, 3) }, rd.log)
	a.write(t, "carol/after.json", "after", "after starting again")
	waitUntil(t, 15*time.Second, "the new message pushed", func() bool { return caughtUp(rd, addr, 3) && srv.rows(t, addr) >= 4 }, rd.log)
	if n := srv.rows(t, addr); n != 4 {
		t.Errorf("the server holds %d rows, want 4", n)
	}
}

func TestStateDirThatOthersCanWriteIsRefusedAtStart(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits do not say who may write on Windows")
	}
	dir := shortTempDir(t)
	a := newTestAccount(t, dir, "alice@example.com", "pw")
	cfgPath := filepath.Join(dir, "config.toml")
	writeConfig(t, cfgPath, daemonTable(dir, "info")+a.block("https://example.invalid/settings.phtml", "1s"))
	stateDir := filepath.Join(dir, "state")
	os.Mkdir(stateDir, 0o700)
	if err := os.Chmod(stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: cfg})
	want := fmt.Sprintf("state dir %s can be written by other users (mode 0777), who could replace the state file: run `chmod go-w %s` and start again", stateDir, stateDir)
	if err == nil || err.Error() != want {
		t.Errorf("New = %v\nwant %s", err, want)
	}
}
