package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/chatsync/chatsync/internal/syncbuf"
	"github.com/chatsync/chatsync/sync/accountserver"
)

// syncBuffer is a log destination written by goroutines while the test reads it.
type syncBuffer = syncbuf.Buffer

// TestShutdownAnswersAHeldLongPoll runs serve, the binary's serve and
// shutdown sequence, with a get_journal_entries held by wait=60 and
// stops it: the held get is answered (an empty page, not a cut
// connection) and serve returns, both long before the 60 s wait and
// without Shutdown giving up on running requests.
func TestShutdownAnswersAHeldLongPoll(t *testing.T) {
	accts, err := accountserver.ParseAccounts([]byte("[[account]]\naddress  = \"alice@example.com\"\npassword = \"secret\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), Accounts: accts})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, hs, srv, ln, false, log) }()

	type result struct {
		status int
		header http.Header
		body   string
		err    error
	}
	replies := make(chan result, 1)
	go func() {
		c := &http.Client{Transport: &digest.Transport{Username: "alice", Password: "secret"}}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet,
			"http://"+ln.Addr().String()+accountserver.Path+"?action=get_journal_entries&realm=example.com&wait=60", nil)
		resp, err := c.Do(req)
		if err != nil {
			replies <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replies <- result{resp.StatusCode, resp.Header, string(b), err}
	}()
	const patience = 20 * time.Second // far below the 60 s wait
	deadline := time.Now().Add(patience)
	for srv.Waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the get was not held within %v", patience)
		}
		time.Sleep(2 * time.Millisecond)
	}

	stop()
	timeout := time.After(patience)
	select {
	case r := <-replies:
		if r.err != nil || r.status != 200 || r.body != `{"success":true,"error_message":null,"results":[],"rows":0}` ||
			r.header.Get(accountserver.WaitHeader) != "60" {
			t.Errorf("held get at shutdown: %d %q %s=%q %v, want 200, an empty page, 60",
				r.status, r.body, accountserver.WaitHeader, r.header.Get(accountserver.WaitHeader), r.err)
		}
	case <-timeout:
		t.Fatalf("the held get was not answered within %v of the shutdown", patience)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-timeout:
		t.Fatalf("serve did not return within %v of the shutdown", patience)
	}
	if out := logs.String(); strings.Contains(out, "were cut") || !strings.Contains(out, "held_long_polls=1") {
		t.Errorf("shutdown log, want one held long poll and nothing cut:\n%s", out)
	}
}
