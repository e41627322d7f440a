package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// TestBinary builds the real binary, runs it, talks to it over HTTP with a
// digest client, stops it with SIGTERM and checks that a restart on the
// same data directory still has the journal.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chatsync-server")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	accounts := filepath.Join(dir, "accounts.toml")
	if err := os.WriteFile(accounts, []byte("[[account]]\naddress  = \"alice@example.com\"\npassword = \"secret\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	c := &http.Client{Transport: &digest.Transport{Username: "alice", Password: "secret"}, Timeout: 10 * time.Second}

	call := func(base string, q url.Values, form url.Values) string {
		t.Helper()
		u := base + "?" + q.Encode()
		var resp *http.Response
		var err error
		if form != nil {
			resp, err = c.PostForm(u, form)
		} else {
			resp, err = c.Get(u)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", u, resp.StatusCode, b)
		}
		return string(b)
	}

	base, stop := startBinary(t, bin, "--listen", "127.0.0.1:0", "--data", data, "--accounts", accounts)
	got := call(base, url.Values{"action": {"put_journal_entries"}, "realm": {"example.com"}},
		url.Values{"uuid": {"A"}, "data": {`[{"id":"m1","data":"hello/world"}]`}})
	if want := `{"results":[{"id":"m1","journal_id":"1","source":"default"}],"success":true}`; got != want {
		t.Errorf("put: %s", got)
	}
	stop()

	base, stop = startBinary(t, bin, "--listen", "127.0.0.1:0", "--data", data, "--accounts", accounts)
	defer stop()
	got = call(base, url.Values{"action": {"get_journal_entries"}, "realm": {"example.com"}}, nil)
	if !strings.Contains(got, `"id":"1"`) || !strings.Contains(got, `"data":"hello\/world"`) || !strings.HasSuffix(got, `"rows":1}`) {
		t.Errorf("get after restart: %s", got)
	}
	got = call(base, url.Values{"action": {"put_journal_entries"}, "realm": {"example.com"}},
		url.Values{"uuid": {"A"}, "data": {`[{"id":"m2","data":"again"}]`}})
	if !strings.Contains(got, `"journal_id":"2"`) {
		t.Errorf("id after restart: %s", got)
	}
}

// startBinary runs bin, waits for its first stdout line and returns the
// settings URL and a function that SIGTERMs it and checks it exits 0.
func startBinary(t *testing.T, bin string, args ...string) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	var first string
	select {
	case first = <-lines:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no first line; stderr:\n%s", stderr.String())
	}
	base, ok := strings.CutPrefix(first, "listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/settings.phtml") {
		cmd.Process.Kill()
		t.Fatalf("first line %q; stderr:\n%s", first, stderr.String())
	}
	stopped := false
	return base, func() {
		if stopped {
			return
		}
		stopped = true
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exit: %v; stderr:\n%s", err, stderr.String())
			}
		case <-ctx.Done():
			cmd.Process.Kill()
			t.Fatalf("did not stop on SIGTERM; stderr:\n%s", stderr.String())
		}
		if strings.Contains(stderr.String(), "secret") || strings.Contains(stderr.String(), "hello") {
			t.Errorf("stderr leaks a password or journal data:\n%s", stderr.String())
		}
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	accounts := filepath.Join(dir, "a.toml")
	os.WriteFile(accounts, []byte("[[account]]\naddress = \"a@b\"\npasword = \"x\"\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--accounts", accounts}, "--data is required"},
		{[]string{"--data", dir}, "--accounts is required"},
		{[]string{"--data", dir, "--accounts", accounts, "--tls-cert", "x"}, "--tls-cert and --tls-key go together"},
		{[]string{"--data", dir, "--accounts", accounts}, `line 3: unknown key "account.pasword"`},
		{[]string{"--data", dir, "--accounts", filepath.Join(dir, "missing.toml")}, "no such file"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
}
