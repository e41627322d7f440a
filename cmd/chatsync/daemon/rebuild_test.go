package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/store"
)

// A rebuild under a running daemon, or of a healthy state that still holds
// changes not sent, would lose them: both are refused, and the state file
// stays where it is. --force rebuilds the second and keeps the old file.
func TestStateRebuildRefusesARunningDaemonAndUnsentChangesUnlessForced(t *testing.T) {
	const alice = "alice@example.com"
	srv := newTestServer(t, map[string]string{alice: "pw-a"})
	dir := shortTempDir(t)
	a := newTestAccount(t, dir, alice, "pw-a")
	cfgPath := filepath.Join(dir, "config.toml")
	writeConfig(t, cfgPath, daemonTable(dir, "info")+a.block(srv.url, "1s"))
	cfg, _, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(cfg.Daemon.StateDir, store.FileName)

	rd := startTestDaemon(t, cfgPath)
	waitUntil(t, 15*time.Second, "alice caught up", func() bool { return caughtUp(rd, alice, 0) }, rd.log)
	_, err = RebuildState(cfg, true, time.Now())
	if err == nil || !strings.Contains(err.Error(), "in use by another chatsync") {
		t.Errorf("a rebuild while the daemon runs returned %v, want a refusal naming the other chatsync", err)
	}
	oldID := rd.d.DeviceID()
	rd.stop()

	// One change is left in the outbox, as a daemon stopped before it
	// could send it would leave it.
	db, err := store.Open(cfg.Daemon.StateDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(alice, store.Push{MsgID: "m1", Op: store.OpDelete, Envelope: "cs2:x", Hash: ""}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = RebuildState(cfg, false, time.Now())
	if err == nil || !strings.Contains(err.Error(), "holds 1 change(s) not sent yet") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("a rebuild of a state with an unsent change returned %v, want a refusal that says so and names --force", err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("a refused rebuild moved the state file: %v", err)
	}

	res, err := RebuildState(cfg, true, time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("rebuild --force: %v", err)
	}
	if want := state + ".old-20261201T130000Z"; res.KeptAs != want {
		t.Errorf("the old state was kept as %q, want %q", res.KeptAs, want)
	}
	if _, err := os.Stat(res.KeptAs); err != nil {
		t.Errorf("the old state file is gone: %v", err)
	}
	if res.DeviceID == "" || res.DeviceID == oldID || len(res.Accounts) != 1 || res.Accounts[0] != alice {
		t.Errorf("rebuild made device %q (old %q) for %v, want a new id for [%s]", res.DeviceID, oldID, res.Accounts, alice)
	}
	db, err = store.Open(cfg.Daemon.StateDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	known, err := db.KnowsAccount(alice)
	st, _ := db.Stats(alice)
	if err != nil || !known || st.OutboxDepth != 0 || db.DeviceID() != res.DeviceID {
		t.Errorf("the new state knows alice: %v (%v), outbox %d, device %s; want a known account, an empty outbox and device %s", known, err, st.OutboxDepth, db.DeviceID(), res.DeviceID)
	}
}
