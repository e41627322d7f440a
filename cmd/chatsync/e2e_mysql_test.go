package main_test

// Issue #16's end-to-end test: the same chatsync daemons replicate through
// two chatsync-server processes that keep one journal in one MariaDB
// database (CDRTool's client_journal), with faults in front of one of them
// and kill -9 of the other in the middle of a put, losing, duplicating and
// skipping nothing.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/internal/mariadbtest"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/faultproxy"
)

// startMySQLServer starts chatsync-server number i with its journal in
// the database of journal. Its --data dir (for the account state and the
// digest nonce key) is its own, but holds nonceKey: the processes behind
// one name share nonce.key (README, "The journal in MySQL/MariaDB").
func startMySQLServer(t *testing.T, i int, journal, pwFile, nonceKey string) *e2eServer {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real binaries; skipped with -short")
	}
	dir := filepath.Join(t.TempDir(), fmt.Sprint("server", i))
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "nonce.key"), []byte(nonceKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	accounts := filepath.Join(dir, "accounts.toml")
	os.WriteFile(accounts, []byte(fmt.Sprintf("[[account]]\naddress = %q\npassword = %q\n", e2eAccount, e2ePassword)), 0o600)
	s := &e2eServer{dir: dir, args: []string{"--data", data, "--accounts", accounts,
		"--journal", journal, "--journal-password-file", pwFile}}
	s.start(t, "127.0.0.1:0")
	t.Cleanup(s.stop)
	c, err := account.New(account.Config{Address: e2eAccount, Password: e2ePassword, SettingsURL: s.url})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s
}

// startAgain starts a stopped or killed server at its old address.
func (s *e2eServer) startAgain(t *testing.T) {
	t.Helper()
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	s.start(t, u.Host)
}

func TestDaemonsReplicateThroughTwoServerProcessesOnOneMariaDBThroughKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real binaries and MariaDB; skipped with -short")
	}
	began := time.Now()
	d := mariadbtest.New(t)
	db := d.Open(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "journal-password")
	os.WriteFile(pw, []byte(d.Password+"\n"), 0o600)
	journal := fmt.Sprintf("mysql://%s@%s/%s", d.User, d.Addr(), d.Name)
	var raw [32]byte
	rand.Read(raw[:])
	nonceKey := hex.EncodeToString(raw[:])

	// One after the other: the first creates the table.
	s1 := startMySQLServer(t, 1, journal, pw, nonceKey)
	s2 := startMySQLServer(t, 2, journal, pw, nonceKey)

	// Faults in front of server 2: for puts, the crash test's menu (the
	// faults after which reconciliation finds the rows at once, and the
	// ones that say for sure nothing was stored) but null-journal-ids and
	// missing-rows, which hold an entry back for EntryBackoff (30 s) and
	// are the crash test's; for gets, the default menu.
	seed := faultproxy.SeedFromEnv()
	t.Logf("seed %d: reproduce with CHATSYNC_SEED=%d", seed, seed)
	proxy, err := faultproxy.New(faultproxy.Options{
		Target: s2.url, Seed: seed, Rate: 0.2, MaxLatency: 300 * time.Millisecond,
		ActionFaults: map[string][]faultproxy.Fault{"put_journal_entries": {
			faultproxy.SuccessFalse, faultproxy.TooManyRequest, faultproxy.Latency,
			faultproxy.DropAfterCommit, faultproxy.CloseAfterCommit, faultproxy.ServerErrorAfterCommit,
			faultproxy.HTMLErrorAfterCommit, faultproxy.TruncatedJSON, faultproxy.MissingSuccess,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxied := &e2eServer{url: proxy.URL + "/settings.phtml", client: s2.client}

	key := newKeyFile(t)
	a := newE2EDevice(t, "A", s1, key)      // straight to server 1
	b := newE2EDevice(t, "B", proxied, key) // through the faults to server 2
	a.start()
	b.start()

	want := map[string]string{} // msgid → canonical JSON
	counts := map[*e2eDevice]int{}
	write := func(dev *e2eDevice, n int) {
		t.Helper()
		for range n {
			i := counts[dev]
			counts[dev]++
			id := fmt.Sprintf("%s-%05d@e2e.test", dev.name, i)
			peer := fmt.Sprintf("peer%d", i%5)
			obj := e2eMsg(id, fmt.Sprintf("message %d written on %s", i, dev.name))
			obj["remote_uri"] = peer + "@example.com"
			rel := fmt.Sprintf("%s/%s-%05d.json", peer, dev.name, i)
			dev.write(rel, obj)
			data, err := os.ReadFile(filepath.Join(dev.store, rel))
			if err != nil {
				t.Fatal(err)
			}
			m, err := msgdir.Parse(data, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = string(m.Canonical)
		}
	}
	bursts := func(steps int, during func(step int)) {
		for step := range steps {
			write(a, 5)
			write(b, 5)
			if during != nil {
				during(step)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	outboxesEmpty := func() bool {
		sa, okA := a.status(t)
		sb, okB := b.status(t)
		return okA && okB && sa.OutboxDepth == 0 && sb.OutboxDepth == 0
	}

	// 1. Both write in bursts, and the first bursts reach both stores.
	bursts(10, nil)
	eventually(t, 40*time.Second, "the first bursts in both stores and both outboxes empty", func() bool {
		am, _ := a.messages()
		bm, _ := b.messages()
		return len(am) == len(want) && len(bm) == len(want) && outboxesEmpty()
	}, a, b)
	// A's device uuid, from its rows, to count what the kill rolls back.
	kr, err := seal.LoadKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	aUUID := ""
	for _, r := range s1.allRows(t) {
		if en, err := kr.Open(r.Data, e2eAccount); err == nil && en.Op != seal.OpReport && strings.HasPrefix(en.MsgID, "A-") {
			aUUID = r.UUID
			break
		}
	}
	if aUUID == "" {
		t.Fatal("no row of A's in the journal after the first bursts")
	}

	// 2. kill -9 of server 1 in the middle of a put of A: a burst on A
	// (B quiet), and the kill as soon as the account's journal lock is
	// held, i.e. a put's transaction is open. A dirty read counts the rows
	// then, so what the kill rolled back shows.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"); err != nil {
		t.Fatal(err)
	}
	lockName := "chatsync_journal:" + e2eAccount
	type seen struct {
		holder sql.NullInt64
		dirty  int
	}
	killed := make(chan seen, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		// The kill comes once the lock is held and the holder has
		// inserted rows that are not committed: the dirty count has grown
		// since the lock was taken.
		var s seen
		var holder sql.NullInt64
		base := -1
		for time.Now().Before(deadline) {
			if err := conn.QueryRowContext(context.Background(),
				"SELECT IS_USED_LOCK(?), (SELECT COUNT(*) FROM client_journal WHERE account = ? AND uuid = ?)", lockName, e2eAccount, aUUID).Scan(&s.holder, &s.dirty); err != nil {
				break
			}
			switch {
			case !s.holder.Valid:
				base = -1
			case s.holder != holder || base < 0:
				base = s.dirty
			case s.dirty > base:
				deadline = time.Time{} // inserts under way: kill now
				continue
			}
			holder = s.holder
			time.Sleep(time.Millisecond)
		}
		s1.cmd.Process.Signal(syscall.SIGKILL)
		s1.cmd.Wait()
		s1.cmd = nil
		killed <- s
	}()
	write(a, 400)
	k := <-killed
	killedAt := time.Since(began)
	// The dead server's session goes, and its lock with it.
	var holder sql.NullInt64
	eventually(t, 10*time.Second, "the journal lock free after the kill", func() bool {
		return db.QueryRow("SELECT IS_USED_LOCK(?)", lockName).Scan(&holder) == nil && !holder.Valid
	})
	var committed int
	if err := db.QueryRow("SELECT COUNT(*) FROM client_journal WHERE account = ? AND uuid = ?", e2eAccount, aUUID).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if k.holder.Valid {
		t.Logf("SIGKILLed server 1 at %s with a put's transaction open (lock held by connection %d): %d rows of A's visible to a dirty read, %d committed after the kill (%d rolled back)",
			killedAt.Round(time.Millisecond), k.holder.Int64, k.dirty, committed, k.dirty-committed)
	} else {
		t.Logf("SIGKILLed server 1 at %s without catching a put in flight (%d rows of A's committed)", killedAt.Round(time.Millisecond), committed)
	}
	write(a, 50) // while server 1 is down: A backs off and retries
	time.Sleep(500 * time.Millisecond)
	s1.startAgain(t)
	t.Logf("server 1 back at %s on %s", time.Since(began).Round(time.Millisecond), s1.url)

	// 3. Both write in bursts again; server 2 restarts (SIGTERM) in the
	// middle, while B writes.
	bursts(10, func(step int) {
		if step == 4 {
			s2.restart(t, func(string) {})
			t.Logf("server 2 restarted at %s", time.Since(began).Round(time.Millisecond))
		}
	})

	// 4. The faults stop; everything settles.
	proxy.SetRate(0)
	settle := time.Now()
	total := len(want)
	eventually(t, 75*time.Second, fmt.Sprintf("all %d messages in both stores and both daemons caught up", total), func() bool {
		am, _ := a.messages()
		bm, _ := b.messages()
		if len(am) != total || len(bm) != total {
			return false
		}
		sa, okA := a.status(t)
		sb, okB := b.status(t)
		return okA && okB && sa.CaughtUp(settle) && sb.CaughtUp(settle)
	}, a, b)
	t.Logf("converged %s after the faults stopped; %s in all; faults injected: %v",
		time.Since(settle).Round(time.Millisecond), time.Since(began).Round(time.Millisecond), proxy.Counts())

	// Both stores hold exactly the messages written, each once.
	am, _ := a.messages()
	bm, _ := b.messages()
	for _, dev := range []struct {
		name string
		got  map[string]string
	}{{"A", am}, {"B", bm}} {
		for id, c := range want {
			if dev.got[id] != c {
				t.Errorf("%s's copy of %s is %q, want %q", dev.name, id, dev.got[id], c)
				break
			}
		}
	}
	if !sameMaps(am, bm) {
		t.Errorf("A's and B's stores differ")
	}
	for _, dev := range []*e2eDevice{a, b} {
		if files := countFiles(t, dev.store); files != total {
			t.Errorf("%s holds %d message files for %d messages", dev.name, files, total)
		}
	}

	// The journal is one: both servers serve the same rows, the rows in
	// the table, and every message version is in it once.
	rows1, rows2 := s1.allRows(t), s2.allRows(t)
	var inTable []account.JournalEntry
	q, err := db.Query("SELECT id, uuid, data FROM client_journal WHERE account = ? ORDER BY id", e2eAccount)
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var r account.JournalEntry
		var data []byte
		if err := q.Scan(&r.ID, &r.UUID, &data); err != nil {
			t.Fatal(err)
		}
		r.Data = string(data)
		inTable = append(inTable, r)
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	same := func(x, y []account.JournalEntry) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i].ID != y[i].ID || x[i].Data != y[i].Data || x[i].UUID != y[i].UUID {
				return false
			}
		}
		return true
	}
	if !same(rows1, inTable) || !same(rows2, inTable) {
		t.Errorf("server 1 serves %d rows, server 2 %d, the table holds %d: not the same journal", len(rows1), len(rows2), len(inTable))
	}
	perMsg := eachVersionOnce(t, rows1, key, total, fmt.Sprintf("seed %d", seed))
	for id := range want {
		if perMsg[id] != 1 {
			t.Errorf("the journal holds %d rows of %s, want 1", perMsg[id], id)
			break
		}
	}

	// Nothing skipped, refused or left in an outbox.
	for _, dev := range []*e2eDevice{a, b} {
		st, ok := dev.status(t)
		if !ok {
			t.Errorf("%s: no status", dev.name)
			continue
		}
		if st.OutboxDepth != 0 || len(st.Held) != 0 || len(st.Rejected) != 0 || len(st.Skipped) != 0 {
			t.Errorf("%s: outbox %d, held %v, rejected %v, skipped %v; want all empty", dev.name, st.OutboxDepth, st.Held, st.Rejected, st.Skipped)
		}
	}
	for _, dev := range []*e2eDevice{a, b} {
		log := dev.log()
		t.Logf("%s's log: reconciled a batch in flight: %v; waited before sending missing entries again: %v", dev.name,
			strings.Contains(log, "reconciled the batch that was in flight"), strings.Contains(log, "waiting before sending them again"))
	}
	t.Logf("%d messages (%d from A, %d from B), %d journal rows in all (reports included), %s",
		total, counts[a], counts[b], len(inTable), time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("seed %d: reproduce with CHATSYNC_SEED=%d", seed, seed)
	}
}
