package main_test

// The crash test of issue #6: the real chatsync-server behind a
// fault-injecting proxy, two real chatsync daemons, the writing one killed
// again and again (SIGKILL at seeded moments of its push, and exits at the
// failpoints), and at the end every message on the other device exactly
// once, none twice on the server, and both outboxes empty.
//
// Sizes: CHATSYNC_CRASH_MESSAGES (default 1200) messages over
// CHATSYNC_CRASH_ROUNDS (default 6) rounds, one crash of the writer per
// round. CHATSYNC_SEED reproduces a run.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/faultproxy"
	"github.com/chatsync/chatsync/sync/localclient"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *e2eDevice) kill() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.t.Fatalf("%s did not die after SIGKILL", d.name)
	}
	d.cmd = nil
}

// waitFailpoint waits for the daemon to exit at its failpoint (status 99).
func (d *e2eDevice) waitFailpoint(name string, timeout time.Duration) {
	d.t.Helper()
	select {
	case err := <-d.exited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 99 {
			d.t.Fatalf("%s exited with %v, want status 99 at failpoint %s; log:\n%s", d.name, err, name, d.log())
		}
	case <-time.After(timeout):
		d.t.Fatalf("%s did not reach failpoint %s within %s; log:\n%s", d.name, name, timeout, d.log())
	}
	d.cmd = nil
}

func (d *e2eDevice) status(t *testing.T) (apitype.AccountStatus, bool) {
	c := &localclient.Client{Socket: filepath.Join(d.dir, "s.sock")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil || len(st.Accounts) != 1 {
		return apitype.AccountStatus{}, false
	}
	return st.Accounts[0], true
}

func TestSIGKILLedWriterUnderRandomFaultsLosesAndDuplicatesNothing(t *testing.T) {
	srv := startServer(t)
	seed := faultproxy.SeedFromEnv()
	t.Logf("seed %d: reproduce with CHATSYNC_SEED=%d", seed, seed)
	total := envInt("CHATSYNC_CRASH_MESSAGES", 1200)
	rounds := envInt("CHATSYNC_CRASH_ROUNDS", 6)
	rng := rand.New(rand.NewPCG(seed, seed^1))
	began := time.Now()

	// Ambiguous faults that store nothing (a 5xx before the server, a
	// stall) make the daemon wait ReconcileGrace (30 s) before it sends
	// again; the puts get the faults after which reconciliation finds the
	// rows at once, and the ones that say for sure nothing was stored.
	putFaults := []faultproxy.Fault{
		faultproxy.SuccessFalse, faultproxy.TooManyRequest, faultproxy.Latency,
		faultproxy.DropAfterCommit, faultproxy.CloseAfterCommit, faultproxy.ServerErrorAfterCommit,
		faultproxy.HTMLErrorAfterCommit, faultproxy.TruncatedJSON, faultproxy.MissingSuccess,
		faultproxy.NullJournalIDs, faultproxy.MissingRows,
	}
	proxy, err := faultproxy.New(faultproxy.Options{
		Target: srv.url, Seed: seed, Rate: 0.2, MaxLatency: 300 * time.Millisecond,
		ActionFaults: map[string][]faultproxy.Fault{"put_journal_entries": putFaults},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxied := &e2eServer{url: proxy.URL + "/settings.phtml", client: srv.client}

	key := newKeyFile(t)
	a, b := newE2EDevice(t, "A", proxied, key), newE2EDevice(t, "B", proxied, key)
	srv.keys = append(srv.keys, key) // srv.rows leaves their reports out
	b.start()

	want := map[string]string{} // msgid → canonical JSON
	next := 0
	write := func(n int) {
		for range n {
			if next >= total {
				return
			}
			id := fmt.Sprintf("crash-%05d@e2e.test", next)
			obj := e2eMsg(id, fmt.Sprintf("message %d of seed %d: %x", next, seed, rng.Uint64()))
			obj["remote_uri"] = fmt.Sprintf("peer%d@example.com", next%7)
			data, _ := json.MarshalIndent(obj, "", "  ")
			if err := msgdir.WriteAtomic(a.store, fmt.Sprintf("peer%d/m%05d.json", next%7, next), data); err != nil {
				t.Fatal(err)
			}
			m, err := msgdir.Parse(data, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = string(m.Canonical)
			next++
		}
	}

	// Each round writes a burst (a third while A is down, the rest while
	// it runs) and ends with A's death: at a failpoint in rounds 1, 3, 5
	// (before the POST, after the server's insert before the mapping is
	// committed, in the middle of applying a page), else by SIGKILL once
	// the server holds a seeded number of the burst's rows.
	failpoints := []string{"before-put", "after-put", "before-apply-commit"}
	kills := 0
	for round := range rounds {
		burst := (total - next) / (rounds - round)
		write(burst / 3)
		if round%2 == 1 {
			fp := failpoints[(round/2)%len(failpoints)]
			a.start("CHATSYNC_FAILPOINT=" + fp)
			write(burst - burst/3)
			a.waitFailpoint(fp, 90*time.Second)
			t.Logf("round %d: A exited at failpoint %s (%d messages written, %s)", round, fp, next, time.Since(began).Round(time.Millisecond))
		} else {
			// The moment is seeded: in round 0 once the server holds a
			// seeded number of the burst's rows (after a push), else a
			// seeded time after the start, wherever A is then (indexing,
			// sealing, in the middle of a POST or of a commit).
			before := len(srv.rows(t))
			delay := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
			a.start()
			write(burst - burst/3)
			if round == 0 {
				target := before + 1 + rng.IntN(max(burst, 1))
				eventually(t, 90*time.Second, fmt.Sprintf("round %d: %d rows on the server before the kill", round, target), func() bool {
					return len(srv.rows(t)) >= min(target, next)
				}, a)
			} else {
				<-time.After(delay) // the chaos schedule, not a wait for a condition
			}
			a.kill()
			t.Logf("round %d: SIGKILLed A with %d rows on the server (%d messages written, %s)", round, len(srv.rows(t)), next, time.Since(began).Round(time.Millisecond))
		}
		kills++
		if round == 1 {
			// The reader dies too, in the middle of applying a page.
			b.stop()
			b.start("CHATSYNC_FAILPOINT=before-apply-commit")
			b.waitFailpoint("before-apply-commit", 60*time.Second)
			b.start()
		}
	}
	write(total - next)
	if kills < 4 {
		t.Fatalf("only %d crashes of the writer; want at least 4 (raise CHATSYNC_CRASH_ROUNDS)", kills)
	}

	// The dust settles: faults stop, A runs to the end.
	proxy.SetRate(0)
	a.start()
	settle := time.Now()
	eventually(t, 180*time.Second, fmt.Sprintf("all %d messages on B and both outboxes empty", total), func() bool {
		bm, _ := b.messages()
		if len(bm) != total {
			return false
		}
		sa, okA := a.status(t)
		sb, okB := b.status(t)
		return okA && okB && sa.CaughtUp(settle) && sb.CaughtUp(settle)
	}, a, b)
	t.Logf("converged %s after the last crash; %s in all; faults injected: %v", time.Since(settle).Round(time.Millisecond), time.Since(began).Round(time.Millisecond), proxy.Counts())

	// Every message on B exactly once, with the right content.
	bm, _ := b.messages()
	for id, c := range want {
		if bm[id] != c {
			t.Errorf("B's copy of %s is %q, want %q", id, bm[id], c)
			break
		}
	}
	if files := countFiles(t, b.store); files != total {
		t.Errorf("B holds %d message files for %d messages", files, total)
	}
	if files := countFiles(t, a.store); files != total {
		t.Errorf("A holds %d message files for %d messages (something came back as a copy)", files, total)
	}

	// The server holds every message once: no version twice.
	eachVersionOnce(t, srv.allRows(t), key, total, fmt.Sprintf("seed %d", seed))
	for _, d := range []*e2eDevice{a, b} {
		st, _ := d.status(t)
		if st.OutboxDepth != 0 || len(st.Rejected) != 0 || len(st.Skipped) != 0 {
			t.Errorf("%s: outbox %d, rejected %v, skipped %v; want all empty", d.name, st.OutboxDepth, st.Rejected, st.Skipped)
		}
	}
	if t.Failed() {
		t.Logf("seed %d: reproduce with CHATSYNC_SEED=%d", seed, seed)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && !msgdir.Ignored(de.Name()) {
			n++
		}
		return nil
	})
	return n
}

// eachVersionOnce checks that rows, a journal with its devices' reports,
// hold total messages, each version of each once, and no other row: no
// row was stored twice (exactly once through crashes and faults). what
// names the run in the errors (its seed, say). It returns the rows of each
// message.
func eachVersionOnce(t *testing.T, rows []account.JournalEntry, keyFile string, total int, what string) map[string]int {
	t.Helper()
	kr, err := seal.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	versions, perMsg := map[string]int{}, map[string]int{}
	messageRows := 0
	for _, r := range rows {
		en, err := kr.Open(r.Data, e2eAccount)
		if err != nil {
			t.Fatalf("journal row %d does not open: %v", r.ID, err)
		}
		if en.Op == seal.OpReport {
			continue // a device's report, not a message
		}
		messageRows++
		sum := sha256.Sum256(en.Message)
		versions[en.MsgID+"/"+string(en.Op)+"/"+fmt.Sprintf("%x", sum[:8])]++
		perMsg[en.MsgID]++
	}
	var dups []string
	for v, n := range versions {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s ×%d", v, n))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("the journal holds %d duplicated versions (%s): %v", len(dups), what, dups[:min(len(dups), 10)])
	}
	if len(perMsg) != total || messageRows != total {
		t.Errorf("the journal holds %d message rows for %d messages, want %d and %d (%s)", messageRows, len(perMsg), total, total, what)
	}
	return perMsg
}
