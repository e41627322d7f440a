package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/chatsync/chatsync/internal/mariadbtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mariadbtest.Stop()
	os.Exit(code)
}

func TestJournalFlags(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	base := []string{"--data", "d", "--accounts", "a.toml"}
	cfg, err := parseFlags(append(slices.Clone(base), "--journal", "mysql://chat@db.example:3307/cdrtool?tls=skip-verify", "--journal-password-file", pwFile), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.opts.JournalMySQL
	if c == nil || c.User != "chat" || c.Passwd != "s3cret" || c.Addr != "db.example:3307" || c.DBName != "cdrtool" || c.TLSConfig != "skip-verify" {
		t.Errorf("config %+v", c)
	}
	t.Setenv("CHATSYNC_JOURNAL_PASSWORD", "fromenv")
	cfg, err = parseFlags(append(slices.Clone(base), "--journal", "mysql://chat@db.example/cdrtool"), io.Discard, io.Discard)
	if err != nil || cfg.opts.JournalMySQL.Passwd != "fromenv" || cfg.opts.JournalMySQL.Addr != "db.example:3306" {
		t.Errorf("env password: %v %+v", err, cfg)
	}
	for _, tc := range []struct{ journal, want string }{
		{"mysql://chat:pw@db/cdrtool", "holds a password"},
		{"mysql://db/cdrtool", "want mysql://USER@HOST:PORT/DB"},
		{"mysql://chat@db/", "want mysql://USER@HOST:PORT/DB"},
		{"mysql://chat@db/x?tls=bogus", "bogus"},
		{"mysql://chat@db/x?foo=1", `unknown parameter "foo"`},
		{"postgres://chat@db/x", "want bbolt or mysql://"},
	} {
		_, err := parseFlags(append(slices.Clone(base), "--journal", tc.journal), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.journal, err, tc.want)
		}
	}
	// A CA file registers the driver's TLS configuration "custom".
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, selfSignedPEM(t), 0o600)
	cfg, err = parseFlags(append(slices.Clone(base), "--journal", "mysql://chat@db.example/cdrtool", "--journal-tls-ca", ca), io.Discard, io.Discard)
	if err != nil || cfg.opts.JournalMySQL.TLSConfig != "custom" {
		t.Errorf("--journal-tls-ca: %v %+v", err, cfg)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--journal", "mysql://chat@db/x?tls=skip-verify", "--journal-tls-ca", ca}, "--journal-tls-ca goes with ?tls=custom"},
		{[]string{"--journal", "mysql://chat@db/x", "--journal-tls-ca", pwFile}, "no PEM certificate"},
		{[]string{"--journal-tls-ca", ca}, "go with --journal mysql://"},
	} {
		_, err := parseFlags(append(slices.Clone(base), tc.args...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
	os.Unsetenv("CHATSYNC_JOURNAL_PASSWORD")
	if _, err := parseFlags(append(slices.Clone(base), "--journal", "mysql://chat@db/x"), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "needs a password") {
		t.Errorf("no password: %v", err)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// buildServer builds the chatsync-server binary once per test.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chatsync-server")
	if out, err := exec.Command("go", "build", "-tags", "journaltest", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestMySQLJournalConcurrentWritersNeverSkip runs three chatsync-server
// processes on one MariaDB database; nine writers put batches for one
// account through them while two readers page with after_id = the highest
// id they have seen. Every reader must see every row exactly once, in id
// order: with the lock and the horizon, and with the lock alone (all rows
// are chatsync-server's), and when one of the servers is killed with
// SIGKILL mid-way (its sessions' transactions roll back, their named locks
// are released, and the other two go on). The same load with both turned off
// (CHATSYNC_TEST_JOURNAL_OFF=lock,horizon) must make a reader skip rows:
// that is what proves the test able to fail. The horizon alone (what
// protects readers from rows of writers that take no lock, like CDRTool)
// is logged, not asserted: it has a window (see mysqlJournal).
func TestMySQLJournalConcurrentWritersNeverSkip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three servers on MariaDB")
	}
	bin := buildServer(t)
	for _, off := range []string{"", "horizon"} {
		t.Run("off="+off, func(t *testing.T) {
			missed, total := concurrentJournalRun(t, bin, off, false)
			if missed > 0 {
				t.Errorf("readers skipped %d of %d rows", missed, total)
			}
		})
	}
	t.Run("off=lock", func(t *testing.T) {
		missed, total := concurrentJournalRun(t, bin, "lock", false)
		t.Logf("the horizon alone: readers skipped %d of %d row sightings", missed, 2*total)
	})
	// kill -9 of the first server while its writers put: its open
	// transactions roll back and its named locks go with its sessions, so
	// the other two go on, and their readers still skip nothing.
	t.Run("kill", func(t *testing.T) {
		missed, total := concurrentJournalRun(t, bin, "", true)
		t.Logf("with the first server killed: %d of %d rows acknowledged", total, 9*12*8)
		if total == 9*12*8 {
			t.Errorf("the kill came after the writers were done")
		}
		if missed > 0 {
			t.Errorf("readers skipped %d of %d acknowledged rows", missed, total)
		}
	})
	t.Run("off=lock,horizon", func(t *testing.T) {
		for round := 1; round <= 3; round++ {
			missed, total := concurrentJournalRun(t, bin, "lock,horizon", false)
			t.Logf("round %d without lock and horizon: readers skipped %d of %d row sightings", round, missed, 2*total)
			if missed > 0 {
				return
			}
		}
		t.Errorf("without the lock and horizon no reader skipped a row: this test cannot tell")
	})
}

// concurrentJournalRun runs one round and returns how many (reader, row)
// pairs were missed and how many rows were put. It fails t on duplicates
// or pages out of id order. With kill, the first server (which no reader
// uses) gets SIGKILL while its writers put: they stop at their first
// error, and the readers may see rows whose put was never answered.
func concurrentJournalRun(t *testing.T, bin string, off string, kill bool) (missed, total int) {
	d := mariadbtest.New(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	accounts := filepath.Join(dir, "accounts.toml")
	os.WriteFile(pw, []byte(d.Password+"\n"), 0o600)
	os.WriteFile(accounts, []byte("[[account]]\naddress  = \"alice@example.com\"\npassword = \"secret\"\n"), 0o600)
	t.Setenv("CHATSYNC_TEST_JOURNAL_OFF", off)
	journal := fmt.Sprintf("mysql://%s@%s/%s", d.User, d.Addr(), d.Name)
	var bases []string
	var first *exec.Cmd
	for i := range 3 {
		// Started one after the other: the first creates the table.
		base, stop, cmd := startBinaryProc(t, bin, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, fmt.Sprint("data", i)),
			"--accounts", accounts, "--journal", journal, "--journal-password-file", pw)
		if i == 0 {
			first = cmd
		}
		if i > 0 || !kill {
			t.Cleanup(stop)
		}
		bases = append(bases, base)
	}
	var killOnce sync.Once
	var acked0 atomic.Int32 // puts answered by the first server
	if kill {
		t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	}
	const writers, puts, batch = 9, 12, 8
	client := func() *http.Client {
		return &http.Client{Transport: &digest.Transport{Username: "alice", Password: "secret"}, Timeout: 30 * time.Second}
	}
	call := func(c *http.Client, base string, q, form url.Values) (string, error) {
		q.Set("realm", "example.com")
		var resp *http.Response
		var err error
		if form != nil {
			resp, err = c.PostForm(base+"?"+q.Encode(), form)
		} else {
			resp, err = c.Get(base + "?" + q.Encode())
		}
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		return string(b), err
	}
	var (
		mu      sync.Mutex
		put     = map[uint64]bool{}
		wg      sync.WaitGroup
		writing sync.WaitGroup
	)
	for w := range writers {
		writing.Add(1)
		go func() {
			defer writing.Done()
			c := client()
			base := bases[w%len(bases)]
			for p := range puts {
				var els []string
				for i := range batch {
					els = append(els, fmt.Sprintf(`{"id":%d,"data":"w%d-p%d-%d"}`, i, w, p, i))
				}
				body, err := call(c, base, url.Values{"action": {"put_journal_entries"}},
					url.Values{"uuid": {fmt.Sprint("writer", w)}, "data": {"[" + strings.Join(els, ",") + "]"}})
				if err != nil {
					if !(kill && w%len(bases) == 0) {
						t.Error(err)
					}
					return
				}
				var r struct {
					Results []struct {
						JournalID *string `json:"journal_id"`
					} `json:"results"`
				}
				if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Results) != batch {
					t.Errorf("put: %v %s", err, body)
					return
				}
				if kill && w%len(bases) == 0 && acked0.Add(1) == 3 {
					// Mid-way: 3 of its 36 puts are answered.
					killOnce.Do(func() { first.Process.Kill() })
				}
				mu.Lock()
				for _, res := range r.Results {
					if res.JournalID == nil {
						t.Errorf("put: a row not stored: %s", body)
						continue
					}
					id, _ := strconv.ParseUint(*res.JournalID, 10, 64)
					put[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { writing.Wait(); close(done) }()
	seen := make([][]uint64, 2)
	for r := range seen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client()
			base := bases[(r+1)%len(bases)]
			var after uint64
			finished := false
			for {
				select {
				case <-done:
					finished = true
				default:
				}
				body, err := call(c, base, url.Values{"action": {"get_journal_entries"}, "after_id": {fmt.Sprint(after)}, "limit": {"37"}}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				var page struct {
					Results []struct {
						ID string `json:"id"`
					} `json:"results"`
				}
				if err := json.Unmarshal([]byte(body), &page); err != nil {
					t.Errorf("get: %v %.200s", err, body)
					return
				}
				for _, row := range page.Results {
					id, _ := strconv.ParseUint(row.ID, 10, 64)
					if id <= after {
						t.Errorf("reader %d: id %d after %d: not in id order or twice", r, id, after)
					}
					after = max(after, id)
					seen[r] = append(seen[r], id)
				}
				// After the writers are done, read until an empty page.
				if finished && len(page.Results) == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	total = len(put)
	if !kill && total != writers*puts*batch {
		t.Errorf("%d rows put, want %d", total, writers*puts*batch)
	}
	for r, ids := range seen {
		got := map[uint64]int{}
		for _, id := range ids {
			got[id]++
			if !put[id] && !kill {
				t.Errorf("reader %d saw id %d that no writer put", r, id)
			}
		}
		for id := range put {
			switch got[id] {
			case 0:
				missed++
			case 1:
			default:
				t.Errorf("reader %d saw id %d %d times", r, id, got[id])
			}
		}
	}
	return missed, total
}
