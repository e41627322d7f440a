//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// config is what the command line sets.
type config struct {
	Sizes    []int         // backlog sizes, pushed and pulled
	Latency  int           // watch-to-push samples
	D2D      int           // device-to-device samples
	Idle     time.Duration // idle window measured
	Settle   time.Duration // wait after the restart before the idle window
	PprofDir string        // where CPU and heap profiles of the daemon go ("" for none)
	BinDir   string        // prebuilt chatsync and chatsync-server ("" to build them)
	Keep     bool          // keep the work directory
	Verbose  bool
	Log      io.Writer // progress
}

// The engine's defaults, which the floor copies.
const (
	batchCount = 500
	batchBytes = 4 << 20
)

type bench struct {
	cfg     config
	tmp     string
	bins    struct{ chatsync, server string }
	keyFile string
	keyring *seal.Keyring
	cleanup []func()
	start   time.Time
	rep     *report
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// run runs every scenario and returns the report.
func run(ctx context.Context, cfg config) (rep *report, err error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	b := &bench{cfg: cfg, start: time.Now(), rep: &report{}}
	b.tmp, err = os.MkdirTemp("", "chatsync-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
		if cfg.Keep || err != nil && cfg.Verbose {
			b.logf("work directory kept: %s", b.tmp)
		} else {
			os.RemoveAll(b.tmp)
		}
	}()
	if cfg.PprofDir != "" {
		if err := os.MkdirAll(cfg.PprofDir, 0o755); err != nil {
			return nil, err
		}
	}
	b.rep.Machine = fmt.Sprintf("%d CPUs (%s), %s %s/%s", runtime.NumCPU(), machine(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	b.rep.LoadBefore = loadavg()
	if err := b.build(); err != nil {
		return nil, err
	}
	b.keyFile = filepath.Join(b.tmp, "alice.key")
	if _, err := seal.GenerateKeyFile(b.keyFile); err != nil {
		return nil, err
	}
	if b.keyring, err = seal.LoadKeyring(b.keyFile); err != nil {
		return nil, err
	}
	sizes := slices.Clone(cfg.Sizes)
	slices.Sort(sizes)
	for i, n := range sizes {
		if err := b.backlog(ctx, n, i == len(sizes)-1); err != nil {
			return nil, err
		}
	}
	b.rep.LoadAfter = loadavg()
	b.rep.Took = time.Since(b.start)
	return b.rep, nil
}

// build compiles the two binaries into the work directory.
func (b *bench) build() error {
	if b.cfg.BinDir != "" {
		b.bins.chatsync = filepath.Join(b.cfg.BinDir, "chatsync")
		b.bins.server = filepath.Join(b.cfg.BinDir, "chatsync-server")
		return nil
	}
	dir := filepath.Join(b.tmp, "bin")
	b.bins.chatsync = filepath.Join(dir, "chatsync")
	b.bins.server = filepath.Join(dir, "chatsync-server")
	args := []string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}
	if b.cfg.PprofDir != "" {
		args = append(args, "-tags", "benchpprof")
	}
	args = append(args, "github.com/chatsync/chatsync/cmd/chatsync", "github.com/chatsync/chatsync/cmd/chatsync-server")
	b.logf("go %s", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = b.cfg.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the binaries (run chatsync-bench inside the chatsync module, e.g. `make bench`, or give -bin DIR): %w", err)
	}
	return nil
}

// message is one message file of a generated backlog.
type message struct {
	rel   string // path below the store, where a receiving device writes it too
	msgid string
	data  []byte // the file
}

var words = strings.Fields(`the a meeting tomorrow at noon is fine see you there sounds good did you get
the files I sent yesterday call me when you land thanks ok let's do it later can't talk now on my way
running five minutes late great news about the project here is the address lunch`)

// genMessages makes n chat messages of a realistic size (about 330 bytes
// as a file, 50-200 characters of body) over 40 conversations.
func genMessages(prefix string, n int, seed uint64) []message {
	r := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	out := make([]message, n)
	for i := range out {
		var body strings.Builder
		for body.Len() < 50+r.IntN(150) {
			if body.Len() > 0 {
				body.WriteByte(' ')
			}
			body.WriteString(words[r.IntN(len(words))])
		}
		peer := fmt.Sprintf("peer%02d@example.com", r.IntN(40))
		dir := "outgoing"
		if r.IntN(2) == 0 {
			dir = "incoming"
		}
		id := fmt.Sprintf("%s-%07d@bench.chatsync", prefix, i)
		obj := map[string]any{
			"msgid": id, "remote_uri": "sip:" + peer, "local_uri": "sip:" + benchAccount,
			"direction": dir, "content_type": "text/plain", "state": "delivered",
			"timestamp": base.Add(time.Duration(i) * 17 * time.Second).Format(time.RFC3339),
			"body":      body.String(),
		}
		data, _ := json.MarshalIndent(obj, "", "  ")
		m, _ := msgdir.Parse(data, 1<<20)
		out[i] = message{rel: filepath.ToSlash(msgdir.IncomingPath(m)), msgid: id, data: data}
	}
	return out
}

// sealAll seals the messages as the daemon would, for the floor.
func (b *bench) sealAll(msgs []message, device string) ([]string, int, error) {
	envs := make([]string, len(msgs))
	total := 0
	for i, m := range msgs {
		pm, err := msgdir.Parse(m.data, 1<<20)
		if err != nil {
			return nil, 0, err
		}
		envs[i], err = b.keyring.Seal(seal.Entry{Op: seal.OpPut, MsgID: pm.MsgID, Account: benchAccount,
			Device: device, Time: time.Now(), Message: pm.Canonical})
		if err != nil {
			return nil, 0, err
		}
		total += len(envs[i])
	}
	return envs, total, nil
}

func newClient(srv *server, addr string) (*account.Client, error) {
	return account.New(account.Config{Address: addr, Password: benchPassword, SettingsURL: srv.url, Timeout: 2 * time.Minute})
}

// floorPut puts the envelopes in batches bounded like the daemon's.
func floorPut(ctx context.Context, c *account.Client, uuid string, envs []string) error {
	for i := 0; i < len(envs); {
		var batch []account.PutEntry
		size := 0
		for ; i < len(envs) && len(batch) < batchCount && (len(batch) == 0 || size+len(envs[i]) <= batchBytes); i++ {
			batch = append(batch, account.PutEntry{ID: fmt.Sprintf("t%d", i), Data: envs[i]})
			size += len(envs[i])
		}
		res, err := c.PutJournalEntries(ctx, uuid, batch)
		if err != nil {
			return err
		}
		for _, r := range res {
			if !r.Stored {
				return fmt.Errorf("floor: the server did not store %s", r.ID)
			}
		}
	}
	return nil
}

// floorGet reads the whole journal, page after page, as a new device
// would, and returns the number of rows.
func floorGet(ctx context.Context, c *account.Client, except string) (int, error) {
	n := 0
	after := int64(0)
	for {
		page, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: except, AfterID: after})
		if err != nil {
			return n, err
		}
		n += len(page.Entries)
		if len(page.Entries) < account.JournalPageMax {
			return n, nil
		}
		after = page.MaxID()
	}
}

// writeBacklog writes the message files into a store, as a history that
// exists before chatsync is installed.
func writeBacklog(store string, msgs []message) error {
	made := map[string]bool{}
	for _, m := range msgs {
		p := filepath.Join(store, filepath.FromSlash(m.rel))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			made[d] = true
		}
		if err := os.WriteFile(p, m.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// countFiles counts the message files of a store.
func countFiles(store string) int {
	n := 0
	filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !msgdir.Ignored(d.Name()) {
			n++
		}
		return nil
	})
	return n
}

// backlog runs the push and pull of n messages and, for the last size, the
// latency and idle scenarios on the same devices.
func (b *bench) backlog(ctx context.Context, n int, last bool) error {
	msgs := genMessages("m", n, uint64(n))
	fileBytes := 0
	for _, m := range msgs {
		fileBytes += len(m.data)
	}

	// The floor: the same entries, sealed beforehand, put and fetched by a
	// client that does nothing else, against a fresh server.
	b.logf("%d: floor: sealing %d entries", n, n)
	floorDevice := newUUID()
	envs, envBytes, err := b.sealAll(msgs, floorDevice)
	if err != nil {
		return err
	}
	fsrv, err := b.startServer(fmt.Sprintf("floor-server-%d", n))
	if err != nil {
		return err
	}
	fc, err := newClient(fsrv, benchAccount)
	if err != nil {
		return err
	}
	before, _ := sampleProc(fsrv.pid())
	t0 := time.Now()
	if err := floorPut(ctx, fc, floorDevice, envs); err != nil {
		return fmt.Errorf("floor put: %w", err)
	}
	floorPush := time.Since(t0)
	mid, _ := sampleProc(fsrv.pid())
	t0 = time.Now()
	got, err := floorGet(ctx, fc, newUUID())
	if err != nil {
		return fmt.Errorf("floor get: %w", err)
	}
	floorPull := time.Since(t0)
	after, _ := sampleProc(fsrv.pid())
	if got != n {
		return fmt.Errorf("floor get: %d rows, want %d", got, n)
	}
	// What a poll costs the writer of all these rows: the daemon polls
	// with except_uuid = itself after its cursor, which its own pushes do
	// not move.
	t0 = time.Now()
	if _, err := fc.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: floorDevice}); err != nil {
		return fmt.Errorf("floor poll: %w", err)
	}
	ownPoll := time.Since(t0)
	fsrv.stop()
	envs = nil
	b.logf("%d: floor: put %s, get %s", n, floorPush.Round(time.Millisecond), floorPull.Round(time.Millisecond))
	b.rep.Server = append(b.rep.Server, serverFigures{N: n, EnvBytes: envBytes, Put: floorPush, Get: floorPull,
		PutCPU: mid.onCPU - before.onCPU, GetCPU: after.onCPU - mid.onCPU, RSS: after.hwm, OwnPoll: ownPoll})

	// Device A has the backlog on disk when chatsync starts for the first
	// time; timed from the start of the process until the last entry is on
	// the server.
	srv, err := b.startServer(fmt.Sprintf("server-%d", n))
	if err != nil {
		return err
	}
	a, err := b.newDevice(fmt.Sprintf("A-%d", n), srv)
	if err != nil {
		return err
	}
	if err := writeBacklog(a.store, msgs); err != nil {
		return err
	}
	b.logf("%d: push: %d files (%d KiB) in A's store; starting A", n, n, fileBytes>>10)
	sBefore, _ := sampleProc(srv.pid())
	t0 = time.Now()
	if err := a.start(); err != nil {
		return err
	}
	stopProf := a.profileCPU(fmt.Sprintf("push-%d", n))
	timeout := time.Minute + time.Duration(n)*5*time.Millisecond
	done, err := a.waitFor(ctx, timeout, fmt.Sprintf("%d entries pushed", n), func(s apitype.AccountStatus) bool {
		return s.Pushed >= int64(n) && s.OutboxDepth == 0
	})
	if err != nil {
		stopProf()
		return err
	}
	push := done.Sub(t0)
	aSample, _ := sampleProc(a.pid())
	sAfter, _ := sampleProc(srv.pid())
	stopProf()
	b.logf("%d: push: %s (A peak RSS %s)", n, push.Round(time.Millisecond), mib(aSample.hwm))
	c, err := newClient(srv, benchAccount)
	if err != nil {
		return err
	}
	if rows, err := floorGet(ctx, c, ""); err != nil || rows != n {
		return fmt.Errorf("after the push the server holds %d rows (%v), want %d", rows, err, n)
	}

	// Device B starts empty and pulls everything.
	bd, err := b.newDevice(fmt.Sprintf("B-%d", n), srv)
	if err != nil {
		return err
	}
	b.logf("%d: pull: starting B with an empty store", n)
	sBefore2, _ := sampleProc(srv.pid())
	t0 = time.Now()
	if err := bd.start(); err != nil {
		return err
	}
	stopProf = bd.profileCPU(fmt.Sprintf("pull-%d", n))
	done, err = bd.waitFor(ctx, timeout, fmt.Sprintf("%d entries received", n), func(s apitype.AccountStatus) bool {
		return s.Received >= int64(n) && s.State == apitype.StateIdle && s.OutboxDepth == 0
	})
	if err != nil {
		stopProf()
		return err
	}
	pull := done.Sub(t0)
	bSample, _ := sampleProc(bd.pid())
	sAfter2, _ := sampleProc(srv.pid())
	stopProf()
	bd.profileHeap(fmt.Sprintf("pull-%d", n))
	if got := countFiles(bd.store); got != n {
		return fmt.Errorf("after the pull B holds %d files, want %d", got, n)
	}
	b.logf("%d: pull: %s (B peak RSS %s)", n, pull.Round(time.Millisecond), mib(bSample.hwm))
	b.rep.Backlogs = append(b.rep.Backlogs, backlogFigures{
		N: n, FileBytes: fileBytes,
		Push: push, PushRSS: aSample.hwm, PushAnon: a.peakAnon, PushCPU: aSample.onCPU, PushServerCPU: sAfter.onCPU - sBefore.onCPU,
		FloorPush: floorPush, FloorPushServerCPU: mid.onCPU - before.onCPU,
		Pull: pull, PullRSS: bSample.hwm, PullAnon: bd.peakAnon, PullCPU: bSample.onCPU, PullServerCPU: sAfter2.onCPU - sBefore2.onCPU,
		FloorPull: floorPull, FloorPullServerCPU: after.onCPU - mid.onCPU,
	})
	if !last {
		return errorsJoin(a.stop(), bd.stop(), func() error { srv.stop(); return nil }())
	}
	if err := b.latency(ctx, srv, a, bd); err != nil {
		return err
	}
	if err := bd.stop(); err != nil {
		return err
	}
	return b.idle(ctx, srv, a, n)
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// live writes one new message into a device's store, as a chat client
// would, and returns its path.
func live(d *device, i int) (string, error) {
	id := fmt.Sprintf("live-%s-%05d@bench.chatsync", d.name, i)
	obj := map[string]any{
		"msgid": id, "remote_uri": "sip:bob@example.com", "local_uri": "sip:" + benchAccount,
		"direction": "outgoing", "content_type": "text/plain", "state": "delivered",
		"timestamp": time.Now().UTC().Format(time.RFC3339), "body": "are you there? " + strings.Repeat("x", 60),
	}
	data, _ := json.MarshalIndent(obj, "", "  ")
	m, _ := msgdir.Parse(data, 1<<20)
	rel := msgdir.IncomingPath(m)
	return rel, msgdir.WriteAtomic(d.store, rel, data)
}

// waitEvent returns the time the first event of kind arrived.
func waitEvent(ch <-chan apitype.Event, kind string, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return time.Time{}, fmt.Errorf("the event stream ended")
			}
			if ev.Kind == kind {
				return ev.Time, nil
			}
		case <-t.C:
			return time.Time{}, fmt.Errorf("no %s event within %s", kind, timeout)
		}
	}
}

func drain(ch <-chan apitype.Event) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// latency measures watch-to-push on A, then device-to-device in both
// directions while A and B talk, each next to its floor.
func (b *bench) latency(ctx context.Context, srv *server, a, bd *device) error {
	evCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	aEv, err := a.events(evCtx)
	if err != nil {
		return err
	}
	bEv, err := bd.events(evCtx)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	gap := func() { time.Sleep(time.Duration(200+r.IntN(800)) * time.Millisecond) }

	// Watch to push: a file written on A until A has it on the server
	// (the "pushed" event follows the server's reply).
	b.logf("watch-to-push: %d single messages on A", b.cfg.Latency)
	var w2p []time.Duration
	for i := range b.cfg.Latency {
		gap()
		drain(aEv)
		t0 := time.Now()
		if _, err := live(a, i); err != nil {
			return err
		}
		at, err := waitEvent(aEv, apitype.EventPushed, 30*time.Second)
		if err != nil {
			return fmt.Errorf("watch-to-push: %w; log of A:\n%s", err, a.logTail())
		}
		w2p = append(w2p, at.Sub(t0))
	}

	// Device to device, while a conversation is going on: alternate
	// senders; a file written on one device until the other has written
	// it (its "received" event follows the file and the commit). The first
	// message each way is a warm-up.
	b.logf("device-to-device: %d messages, A and B alternating", b.cfg.D2D)
	var d2d []time.Duration
	for i := -2; i < b.cfg.D2D; i++ {
		from, to, toEv := a, bd, bEv
		if i%2 != 0 {
			from, to, toEv = bd, a, aEv
		}
		gap()
		drain(toEv)
		t0 := time.Now()
		rel, err := live(from, 1000+i+2)
		if err != nil {
			return err
		}
		// A "received" event may be for an earlier message (the last
		// watch-to-push one, say): the message has arrived when its file
		// is there.
		deadline := t0.Add(90 * time.Second)
		var at time.Time
		for {
			at, err = waitEvent(toEv, apitype.EventReceived, time.Until(deadline))
			if err != nil {
				return fmt.Errorf("device-to-device: %w; log of %s:\n%s", err, to.name, to.logTail())
			}
			if _, err := os.Stat(filepath.Join(to.store, rel)); err == nil {
				break
			}
		}
		if i >= 0 {
			d2d = append(d2d, at.Sub(t0))
		}
	}
	cancel()

	// Floors on the same server, on an account of their own (the devices
	// must not see these rows): one entry per put; one put then one get
	// by another device.
	c, err := newClient(srv, floorAccount)
	if err != nil {
		return err
	}
	envs, _, err := b.sealAll([]message{{data: []byte(`{"msgid":"floor@bench.chatsync","remote_uri":"sip:bob@example.com","local_uri":"sip:alice@example.com","direction":"outgoing","content_type":"text/plain","state":"delivered","timestamp":"2024-03-01T09:00:00Z","body":"are you there? xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)}}, newUUID())
	if err != nil {
		return err
	}
	sender, receiver := newUUID(), newUUID()
	var fw2p, fd2d []time.Duration
	for i := range max(b.cfg.Latency, b.cfg.D2D) {
		t0 := time.Now()
		res, err := c.PutJournalEntries(ctx, sender, []account.PutEntry{{ID: fmt.Sprint(i), Data: envs[0]}})
		if err != nil {
			return err
		}
		put := time.Since(t0)
		if _, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: receiver, AfterID: res[0].JournalID - 1}); err != nil {
			return err
		}
		fw2p = append(fw2p, put)
		fd2d = append(fd2d, time.Since(t0))
	}
	b.rep.W2P = latencyFigures{N: len(w2p), P50: pct(w2p, 50), P99: pct(w2p, 99), Max: pct(w2p, 100),
		FloorP50: pct(fw2p, 50), FloorP99: pct(fw2p, 99)}
	b.rep.D2D = latencyFigures{N: len(d2d), P50: pct(d2d, 50), P99: pct(d2d, 99), Max: pct(d2d, 100),
		FloorP50: pct(fd2d, 50), FloorP99: pct(fd2d, 99)}
	b.logf("watch-to-push p50 %s p99 %s; device-to-device p50 %s p99 %s", ms(b.rep.W2P.P50), ms(b.rep.W2P.P99), ms(b.rep.D2D.P50), ms(b.rep.D2D.P99))
	return nil
}

// pct is the p-th percentile (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[min(max(i, 0), len(s)-1)]
}

// idle restarts A on its full store, waits until it has settled, and
// measures what it costs while nothing happens; the floor is a client
// that only polls, as often as the daemon's idle poll.
func (b *bench) idle(ctx context.Context, srv *server, a *device, n int) error {
	if err := a.stop(); err != nil {
		return err
	}
	b.logf("idle: restarting A with %d messages indexed", n)
	t0 := time.Now()
	if err := a.start(); err != nil {
		return err
	}
	done, err := a.waitFor(ctx, 5*time.Minute, "A idle after the restart", func(s apitype.AccountStatus) bool {
		return s.State == apitype.StateIdle && !s.LastPoll.IsZero() && s.OutboxDepth == 0
	})
	if err != nil {
		return err
	}
	restart := done.Sub(t0)
	time.Sleep(b.cfg.Settle)
	s0, err := sampleProc(a.pid())
	if err != nil {
		return err
	}
	b.logf("idle: restart took %s; measuring %s", restart.Round(time.Millisecond), b.cfg.Idle)
	stopProf := a.profileCPU("idle")
	select {
	case <-time.After(b.cfg.Idle):
	case <-ctx.Done():
		stopProf()
		return ctx.Err()
	}
	s1, err := sampleProc(a.pid())
	stopProf()
	if err != nil {
		return err
	}
	st, err := a.status(ctx)
	if err != nil {
		return err
	}
	if st.Pushed != 0 || st.Received != 0 {
		return fmt.Errorf("idle: A pushed %d and received %d entries after the restart; want none", st.Pushed, st.Received)
	}
	win := s1.at.Sub(s0.at)
	perHour := float64(time.Hour) / float64(win)

	// The floor: empty polls of the journal by a minimal client, scaled
	// to one poll per 30 s (this process's own CPU time).
	c, err := newClient(srv, benchAccount)
	if err != nil {
		return err
	}
	var top int64 // the newest row: the polls below find nothing after it
	for {
		page, err := c.GetJournalEntries(ctx, account.JournalQuery{AfterID: top})
		if err != nil {
			return err
		}
		top = max(top, page.MaxID())
		if len(page.Entries) < account.JournalPageMax {
			break
		}
	}
	const polls = 50
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for range polls {
		if _, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: newUUID(), AfterID: top}); err != nil {
			return err
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	perPoll := (tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)) / polls

	b.rep.Idle = idleFigures{
		Messages: n, Restart: restart, RestartCPU: s0.onCPU, Window: win, Settle: b.cfg.Settle,
		CPUPerHour:     time.Duration(float64(s1.onCPU-s0.onCPU) * perHour),
		TickCPUPerHour: time.Duration(float64(s1.cpu-s0.cpu) * perHour),
		WakeupsPerHour: float64(s1.ctxsw-s0.ctxsw) * perHour,
		RSS:            s1.rss, HWM: s1.hwm, Anon: s1.anon, Threads: s1.threads,
		FloorCPUPerHour: perPoll * 120,
	}
	b.logf("idle: %.2f s CPU/h, %.0f wakeups/h, RSS %s", b.rep.Idle.CPUPerHour.Seconds(), b.rep.Idle.WakeupsPerHour, mib(s1.rss))
	return a.stop()
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}
