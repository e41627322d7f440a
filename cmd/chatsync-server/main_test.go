package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/chatsync/chatsync/sync/accountserver"
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
	base, stop, _ := startBinaryProc(t, bin, args...)
	return base, stop
}

// startBinaryProc is startBinary that also returns the process.
func startBinaryProc(t *testing.T, bin string, args ...string) (string, func(), *exec.Cmd) {
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
	}, cmd
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

// TestFlagsReachOptions checks that each page-behaviour flag parses and
// sets its server option, and what --strict-compat implies.
func TestFlagsReachOptions(t *testing.T) {
	base := []string{"--data", "d", "--accounts", "a.toml"}
	for _, tc := range []struct {
		args []string
		want accountserver.Options
	}{
		{nil, accountserver.Options{PageRows: 5000}},
		{[]string{"--page-bytes-limit", "20M"}, accountserver.Options{PageRows: 5000, PageBytesLimit: 20_000_000}},
		{[]string{"--page-bytes-limit", "1234"}, accountserver.Options{PageRows: 5000, PageBytesLimit: 1234}},
		{[]string{"--page-bytes-limit=2k"}, accountserver.Options{PageRows: 5000, PageBytesLimit: 2000}},
		{[]string{"--page-bytes-limit", "1G"}, accountserver.Options{PageRows: 5000, PageBytesLimit: 1_000_000_000}},
		{[]string{"--page-bytes-limit", "16Mi"}, accountserver.Options{PageRows: 5000, PageBytesLimit: 16 << 20}},
		{[]string{"--page-rows", "300"}, accountserver.Options{PageRows: 300}},
		{[]string{"--shuffle-same-second", "--shuffle-seed", "42"}, accountserver.Options{PageRows: 5000, ShuffleSameSecond: true, ShuffleSeed: 42}},
		{[]string{"--ignore-after-id"}, accountserver.Options{PageRows: 5000, IgnoreAfterID: true}},
		{[]string{"--max-row-bytes", "1M"}, accountserver.Options{PageRows: 5000, MaxRowBytes: 1_000_000}},
		{[]string{"--max-row-bytes", "1Mi", "--halt-on-error"}, accountserver.Options{PageRows: 5000, MaxRowBytes: 1 << 20, HaltOnError: true}},
		{[]string{"--strict-compat"}, accountserver.Options{PageRows: 5000, StrictCompat: true, PageBytesLimit: 20_000_000, ShuffleSameSecond: true}},
		{[]string{"--strict-compat", "--page-bytes-limit", "0", "--shuffle-same-second=false"}, accountserver.Options{PageRows: 5000, StrictCompat: true}},
		{[]string{"--strict-compat", "--page-bytes-limit", "50M"}, accountserver.Options{PageRows: 5000, StrictCompat: true, PageBytesLimit: 50_000_000, ShuffleSameSecond: true}},
	} {
		cfg, err := parseFlags(append(slices.Clone(base), tc.args...), io.Discard, io.Discard)
		if err != nil || cfg == nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		want := tc.want
		want.DataDir, want.MaxBody = "d", accountserver.DefaultMaxBody
		if !reflect.DeepEqual(cfg.opts, want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.args, cfg.opts, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--page-bytes-limit", "20X"}, `invalid value "20X" for flag -page-bytes-limit`},
		{[]string{"--page-bytes-limit", "-1"}, "want a number of bytes"},
		{[]string{"--max-row-bytes", "lots"}, `invalid value "lots" for flag -max-row-bytes`},
		{[]string{"--page-rows", "0"}, "--page-rows 0: want a positive number"},
		{[]string{"--halt-on-error"}, "--halt-on-error needs --max-row-bytes"},
	} {
		_, err := parseFlags(append(slices.Clone(base), tc.args...), io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}

// TestBinaryPageFlags runs the binary with page-behaviour flags and checks
// their effect over HTTP.
func TestBinaryPageFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chatsync-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	accounts := filepath.Join(dir, "accounts.toml")
	if err := os.WriteFile(accounts, []byte("[[account]]\naddress  = \"alice@example.com\"\npassword = \"secret\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, stop := startBinary(t, bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--accounts", accounts,
		"--page-rows", "2", "--ignore-after-id", "--max-row-bytes", "5", "--page-bytes-limit", "1k")
	defer stop()
	c := &http.Client{Transport: &digest.Transport{Username: "alice", Password: "secret"}, Timeout: 10 * time.Second}
	call := func(q url.Values, form url.Values) (int, string) {
		t.Helper()
		q.Set("realm", "example.com")
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
		return resp.StatusCode, string(b)
	}
	code, got := call(url.Values{"action": {"put_journal_entries"}},
		url.Values{"uuid": {"A"}, "data": {`[{"id":1,"data":"a"},{"id":2,"data":"toolong"},{"id":3,"data":"b"},{"id":4,"data":"c"}]`}})
	if want := `{"results":[{"id":1,"journal_id":"1","source":"default"},{"id":2,"journal_id":null,"source":"default"},{"id":3,"journal_id":"2","source":"default"},{"id":4,"journal_id":"3","source":"default"}],"success":true}`; code != 200 || got != want {
		t.Errorf("put with --max-row-bytes 5: %d %s", code, got)
	}
	code, got = call(url.Values{"action": {"get_journal_entries"}, "after_id": {"2"}}, nil)
	if code != 200 || !strings.Contains(got, `"id":"1"`) || !strings.Contains(got, `"id":"2"`) || !strings.HasSuffix(got, `"rows":2}`) {
		t.Errorf("get after_id=2 with --page-rows 2 --ignore-after-id: %d %s", code, got)
	}
	code, got = call(url.Values{"action": {"put_journal_entries"}}, url.Values{"uuid": {"A"}, "data": {`[{"id":5,"data":"` + strings.Repeat("x", 5) + `"}]`}})
	if code != 200 || !strings.Contains(got, `"journal_id":"4"`) {
		t.Fatalf("put: %d %s", code, got)
	}
	// A page of two rows with 600-byte uuids is over 1k: HTTP 500, empty.
	code, got = call(url.Values{"action": {"put_journal_entries"}}, url.Values{"uuid": {strings.Repeat("u", 600)}, "data": {`[{"id":6,"data":"y"},{"id":7,"data":"z"}]`}})
	if code != 200 || !strings.Contains(got, `"journal_id":"6"`) {
		t.Fatalf("put: %d %s", code, got)
	}
	code, got = call(url.Values{"action": {"get_journal_entries"}, "except_uuid": {"A"}}, nil)
	if code != 500 || got != "" {
		t.Errorf("page over --page-bytes-limit 1k: %d %.200q, want 500 and no body", code, got)
	}
	code, got = call(url.Values{"action": {"get_journal_entries"}}, nil)
	if code != 200 || !strings.HasSuffix(got, `"rows":2}`) {
		t.Errorf("small page: %d %.200s", code, got)
	}
}
