package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/engine"
)

// TestShutdownLeavesNoGoroutineBehind runs a daemon with two accounts
// (one that replicates, one whose key is missing) and metrics through
// start, sync, a scrape and stop, and checks that every goroutine it
// started is gone afterwards.
func TestShutdownLeavesNoGoroutineBehind(t *testing.T) {
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: []accountserver.Account{
		{Address: "alice@example.com", Password: "pw"}, {Address: "bob@example.com", Password: "pw"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer srv.Close()
	defer hs.Close()

	dir, err := os.MkdirTemp("", "csleak") // short: the socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600)
	if _, err := seal.GenerateKeyFile(filepath.Join(dir, "alice.key")); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nmetrics_listen = \"127.0.0.1:0\"\n\n", filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"))
	for _, name := range []string{"alice", "bob"} {
		os.MkdirAll(filepath.Join(dir, name), 0o700)
		text += fmt.Sprintf("[[account]]\naddress = %q\nsettings_url = %q\npassword_file = %q\nstore = %q\nkey_file = %q\npoll_interval = \"1s\"\n\n",
			name+"@example.com", hs.URL+accountserver.Path, filepath.Join(dir, "pw"), filepath.Join(dir, name), filepath.Join(dir, name+".key"))
	}
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte(text), 0o600)
	cfg, problems := config.Parse(path, []byte(text))
	for _, p := range problems {
		if !p.Warning {
			t.Fatalf("config: %v", p)
		}
	}

	baseline := runtime.NumGoroutine()
	d, err := daemon.New(daemon.Options{Config: cfg, Tune: func(o *engine.Options) {
		o.ActivePollInterval = 50 * time.Millisecond
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	data := []byte(`{"msgid":"m1","remote_uri":"c@example.com","body":"x"}`)
	if err := msgdir.WriteAtomic(filepath.Join(dir, "alice"), "c/m1.json", data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	// Sent, by the status: the server's row count would include the
	// engine's reports.
	for {
		st := d.Status()
		if len(st) == 2 && st[0].Pushed >= 1 && st[0].OutboxDepth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message was never sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for d.MetricsAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the metrics listener never opened")
		}
		time.Sleep(20 * time.Millisecond)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	deadline = time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%d goroutines 10 s after shutdown, %d before the daemon started:\n%s", runtime.NumGoroutine(), baseline, dump.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
