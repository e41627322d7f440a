//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// kept is what the last round of the largest backlog leaves running for
// the latency and idle scenarios: its server, A (stopped, its store full)
// and B (running, its store full).
type kept struct {
	n     int
	srv   *server
	a, bd *device
}

// backlog measures a backlog of n messages in rounds that alternate the
// floors and the daemon (F D F D ...), each round on fresh servers, with
// fresh state and fresh stores to pull into: a ratio is taken between a
// round's daemon and the floor measured just before it, so that a slow
// moment of the machine touches both. For the largest size (last), the last round's server and devices
// are kept for the scenarios that follow.
func (b *bench) backlog(ctx context.Context, n int, last bool) (*kept, error) {
	msgs := genMessages("m", n, uint64(n))
	bf := backlogFigures{N: n}
	for _, m := range msgs {
		bf.FileBytes += len(m.data)
	}
	// The backlog is written once: the floors read it, and it is the store
	// of device A in every round (A only reads it; the marker it leaves
	// is removed after each round).
	src := filepath.Join(b.tmp, fmt.Sprintf("%d-backlog", n))
	b.logf("%d: writing the backlog (%d files)", n, n)
	if err := writeBacklog(src, msgs); err != nil {
		return nil, err
	}
	var k *kept
	for r := 1; r <= b.cfg.Rounds; r++ {
		dir := fmt.Sprintf("%d-r%d", n, r)
		fl, err := b.floorRound(ctx, n, dir, src)
		if err != nil {
			return nil, err
		}
		keep := last && r == b.cfg.Rounds
		dm, kk, err := b.daemonRound(ctx, n, dir, src, keep)
		if err != nil {
			return nil, err
		}
		k = kk
		bf.Rounds = append(bf.Rounds, roundFigures{Floor: fl, Daemon: dm})
		b.logf("%d round %d: push %.2f× the pipelined floor, pull %.2f× the fair floor, rescan %s CPU",
			n, r, dm.Push.Seconds()/fl.PipePush.Seconds(), dm.Pull.Seconds()/fl.FairPull.Seconds(), secs(dm.Rescan.CPU))
		if keep {
			b.discard(filepath.Join(b.tmp, dir, "floor"))
		} else {
			b.discard(filepath.Join(b.tmp, dir))
		}
	}
	if !last {
		b.discard(src)
	}
	b.rep.Backlogs = append(b.rep.Backlogs, bf)
	return k, nil
}

// discard sets a directory aside to be removed while nothing is measured
// (removing 100k files takes this machine's file system about half a
// minute, and a measurement that follows pays for it). With -keep nothing
// is removed.
func (b *bench) discard(dir string) {
	if !b.cfg.Keep {
		b.trash = append(b.trash, dir)
	}
}

// emptyTrash removes what discard set aside.
func (b *bench) emptyTrash() {
	if len(b.trash) == 0 {
		return
	}
	t0 := time.Now()
	for _, dir := range b.trash {
		os.RemoveAll(dir)
	}
	b.logf("removed %d directories of earlier rounds in %s", len(b.trash), time.Since(t0).Round(100*time.Millisecond))
	b.trash = nil
}

// cleanStore removes what a daemon left in a store besides the messages
// (hidden names: its marker and its lock file), so that a fresh state may
// take the store as its own; it checks the messages are all still there.
func cleanStore(store string, n int) error {
	ents, err := os.ReadDir(store)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && !e.IsDir() {
			if err := os.Remove(filepath.Join(store, e.Name())); err != nil {
				return err
			}
		}
	}
	if got := countFiles(store); got != n {
		return fmt.Errorf("the backlog holds %d files after a round, want %d", got, n)
	}
	return nil
}

// settleDisk writes out what the setup of a measurement left dirty (a
// backlog of files written just before, the previous measurement's
// stores), so that the first durable commit measured does not pay for it:
// an fsync, and the syncfs(2) of msgdir.Apply, would.
func settleDisk() { syscall.Sync() }

// serverCPU follows a server's CPU time across a measurement.
func serverCPU(s *server) func() time.Duration {
	s0, _ := sampleProc(s.pid())
	return func() time.Duration {
		s1, _ := sampleProc(s.pid())
		return s1.onCPU - s0.onCPU
	}
}

// floorRound measures the floors of one round: the fair push, sequential
// and pipelined, and the wire push, each into a fresh server; then, from
// the sequential floor's server, the wire pull and the fair pull; then the
// rescan floor on the fair pull's store.
func (b *bench) floorRound(ctx context.Context, n int, dir, src string) (floorFigures, error) {
	var f floorFigures
	round := dir
	dir = filepath.Join(dir, "floor")
	path := func(name string) string { return filepath.Join(b.tmp, dir, name) }
	if err := os.MkdirAll(path(""), 0o700); err != nil {
		return f, err
	}

	b.logf("%s: floor: push (read, parse, seal, record, put, record), sequential", round)
	seqSrv, err := b.startServer(filepath.Join(dir, "seq"), false)
	if err != nil {
		return f, err
	}
	defer seqSrv.stop()
	c, err := newClient(seqSrv, benchAccount)
	if err != nil {
		return f, err
	}
	seqDevice := newUUID()
	settleDisk()
	srvCPU, cpu0, t0 := serverCPU(seqSrv), selfCPU(), time.Now()
	if _, err := fairPush(ctx, c, b.keyring, path("seq.db"), src, seqDevice, false); err != nil {
		return f, fmt.Errorf("fair push floor: %w", err)
	}
	f.SeqPush, f.SeqPushCPU, f.SeqPushServerCPU = time.Since(t0), selfCPU()-cpu0, srvCPU()

	b.logf("%s: floor: push, pipelined", round)
	pipeSrv, err := b.startServer(filepath.Join(dir, "pipe"), false)
	if err != nil {
		return f, err
	}
	pc, err := newClient(pipeSrv, benchAccount)
	if err != nil {
		return f, err
	}
	settleDisk()
	srvCPU, cpu0, t0 = serverCPU(pipeSrv), selfCPU(), time.Now()
	envs, err := fairPush(ctx, pc, b.keyring, path("pipe.db"), src, newUUID(), true)
	if err != nil {
		return f, fmt.Errorf("pipelined push floor: %w", err)
	}
	f.PipePush, f.PipePushCPU, f.PipePushServerCPU = time.Since(t0), selfCPU()-cpu0, srvCPU()
	pipeSrv.stop()

	// The wire floor puts the pipelined floor's envelopes again, sealed
	// before its clock starts.
	b.logf("%s: floor: push, wire (envelopes sealed beforehand)", round)
	wireSrv, err := b.startServer(filepath.Join(dir, "wire"), false)
	if err != nil {
		return f, err
	}
	wc, err := newClient(wireSrv, benchAccount)
	if err != nil {
		return f, err
	}
	for _, e := range envs {
		f.EnvBytes += len(e)
	}
	settleDisk()
	srvCPU, t0 = serverCPU(wireSrv), time.Now()
	if err := floorPut(ctx, wc, newUUID(), envs); err != nil {
		return f, fmt.Errorf("wire push floor: %w", err)
	}
	f.WirePush, f.WirePushServerCPU = time.Since(t0), srvCPU()
	wireSrv.stop()
	envs = nil

	b.logf("%s: floor: pull, wire (download only), then fair (open, validate, write, record)", round)
	settleDisk()
	srvCPU, t0 = serverCPU(seqSrv), time.Now()
	got, err := floorGet(ctx, c, newUUID())
	if err != nil {
		return f, fmt.Errorf("wire pull floor: %w", err)
	}
	f.WirePull, f.WirePullServerCPU = time.Since(t0), srvCPU()
	if got != n {
		return f, fmt.Errorf("wire pull floor: %d rows, want %d", got, n)
	}
	dest := path("pull-store")
	settleDisk()
	srvCPU, cpu0, t0 = serverCPU(seqSrv), selfCPU(), time.Now()
	index, err := fairPull(ctx, c, b.keyring, path("pull.db"), dest)
	if err != nil {
		return f, fmt.Errorf("fair pull floor: %w", err)
	}
	f.FairPull, f.FairPullCPU, f.FairPullServerCPU = time.Since(t0), selfCPU()-cpu0, srvCPU()
	if len(index) != n {
		return f, fmt.Errorf("fair pull floor: %d files written, want %d", len(index), n)
	}

	// What a poll costs the writer of all these rows: the daemon polls
	// with except_uuid = itself after its cursor, which its own pushes do
	// not move.
	t0 = time.Now()
	if _, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: seqDevice}); err != nil {
		return f, fmt.Errorf("floor poll: %w", err)
	}
	f.OwnPoll = time.Since(t0)
	seqSrv.stop()

	settleDisk()
	cpu0, t0 = selfCPU(), time.Now()
	differ, err := rescanFloor(dest, index)
	if err != nil {
		return f, fmt.Errorf("rescan floor: %w", err)
	}
	f.RescanWall, f.RescanCPU = time.Since(t0), selfCPU()-cpu0
	if differ != 0 {
		return f, fmt.Errorf("rescan floor: %d files differ from what was written", differ)
	}
	b.logf("%s: floor: push %s sequential, %s pipelined, %s wire; pull %s fair, %s wire; rescan %s CPU", round,
		secs(f.SeqPush), secs(f.PipePush), secs(f.WirePush), secs(f.FairPull), secs(f.WirePull), secs(f.RescanCPU))
	return f, nil
}

// daemonRound measures the daemon in one round, on a fresh server: device
// A starts with the backlog on disk and pushes it (timed from the start of
// the process until the last entry is on the server); A stops; device B
// starts empty and pulls everything (timed likewise); then B, idle, is
// asked for a full look at its store (the rescan).
func (b *bench) daemonRound(ctx context.Context, n int, dir, backlog string, keep bool) (daemonFigures, *kept, error) {
	var f daemonFigures
	srv, err := b.startServer(filepath.Join(dir, "server"), false)
	if err != nil {
		return f, nil, err
	}
	a, err := b.newDevice(filepath.Join(dir, "A"), srv, backlog)
	if err != nil {
		return f, nil, err
	}
	b.logf("%s: push: %d files in A's store; starting A", dir, n)
	settleDisk()
	srvCPU, t0 := serverCPU(srv), time.Now()
	if err := a.start(); err != nil {
		return f, nil, err
	}
	stopProf := a.profileCPU("push-" + filepath.Base(dir))
	timeout := time.Minute + time.Duration(n)*5*time.Millisecond
	done, err := a.waitFor(ctx, timeout, fmt.Sprintf("%d entries pushed", n), func(s apitype.AccountStatus) bool {
		return s.Pushed >= int64(n) && s.OutboxDepth == 0
	})
	if err != nil {
		stopProf()
		return f, nil, err
	}
	f.Push = done.Sub(t0)
	aSample, _ := sampleProc(a.pid())
	f.PushServerCPU = srvCPU()
	stopProf()
	f.PushRSS, f.PushAnon, f.PushCPU = aSample.hwm, a.peakAnon, aSample.onCPU
	c, err := newClient(srv, benchAccount)
	if err != nil {
		return f, nil, err
	}
	// Beside the n messages, A's device report (sent once its outbox is
	// empty) may be there already.
	if rows, err := floorGet(ctx, c, ""); err != nil || rows < n || rows > n+1 {
		return f, nil, fmt.Errorf("after the push the server holds %d rows (%v), want %d and perhaps A's report", rows, err, n)
	}
	// A stops, so that its polls (every second for two minutes after
	// activity) do not load the server during B's pull.
	if err := a.stop(); err != nil {
		return f, nil, err
	}
	if !keep { // (the kept A starts again on this store, with this state)
		if err := cleanStore(a.store, n); err != nil {
			return f, nil, err
		}
	}
	if fi, err := os.Stat(a.stateFile()); err == nil {
		f.StateBytes = fi.Size()
	}
	if f.StateInUse, err = stateInUse(a.stateFile()); err != nil {
		return f, nil, fmt.Errorf("A's state file: %w", err)
	}
	b.logf("%s: push: %s (A peak RSS %s, state file %s)", dir, secs(f.Push), mib(f.PushRSS), mib(f.StateBytes))

	bd, err := b.newDevice(filepath.Join(dir, "B"), srv, "")
	if err != nil {
		return f, nil, err
	}
	b.logf("%s: pull: starting B with an empty store", dir)
	settleDisk()
	srvCPU, t0 = serverCPU(srv), time.Now()
	if err := bd.start(); err != nil {
		return f, nil, err
	}
	stopProf = bd.profileCPU("pull-" + filepath.Base(dir))
	done, err = bd.waitFor(ctx, timeout, fmt.Sprintf("%d entries received", n), func(s apitype.AccountStatus) bool {
		return s.Received >= int64(n) && s.State == apitype.StateIdle && s.OutboxDepth == 0
	})
	if err != nil {
		stopProf()
		return f, nil, err
	}
	f.Pull = done.Sub(t0)
	bSample, _ := sampleProc(bd.pid())
	f.PullServerCPU = srvCPU()
	stopProf()
	f.PullRSS, f.PullAnon, f.PullCPU = bSample.hwm, bd.peakAnon, bSample.onCPU
	bd.profileHeap("pull-" + filepath.Base(dir))
	if got := countFiles(bd.store); got != n {
		return f, nil, fmt.Errorf("after the pull B holds %d files, want %d", got, n)
	}
	if fi, err := os.Stat(bd.stateFile()); err == nil {
		f.PullStateBytes = fi.Size()
	}
	b.logf("%s: pull: %s (B peak RSS %s, anonymous %s)", dir, secs(f.Pull), mib(f.PullRSS), mib(f.PullAnon))

	if f.Rescan, err = b.rescan(ctx, bd, "rescan-"+filepath.Base(dir)); err != nil {
		return f, nil, err
	}
	if keep {
		return f, &kept{n: n, srv: srv, a: a, bd: bd}, nil
	}
	err = bd.stop()
	srv.stop()
	return f, nil, err
}

// rescan asks an idle daemon for a full look at its store, through the
// socket as `chatsync sync` does, and measures what it costs: the CPU and
// wakeups from the request until the status says the scan ended after the
// request and the account is idle again, less what the daemon spends in
// the same time when nothing is asked (its polls, every second after
// activity, and the status requests of this harness, sent every 100 ms in
// both windows). The sync also polls once: an empty poll, a few ms.
func (b *bench) rescan(ctx context.Context, d *device, name string) (rescanFigures, error) {
	var f rescanFigures
	f.Profiled = b.cfg.PprofDir != ""
	const every = 100 * time.Millisecond
	settleDisk()
	bg0, err := sampleProc(d.pid())
	if err != nil {
		return f, err
	}
	for time.Since(bg0.at) < 2*time.Second {
		if _, err := d.status(ctx); err != nil {
			return f, err
		}
		time.Sleep(every)
	}
	bg1, err := sampleProc(d.pid())
	if err != nil {
		return f, err
	}
	bgWin := bg1.at.Sub(bg0.at)
	f.BgCPUPerSec = time.Duration(float64(bg1.onCPU-bg0.onCPU) / bgWin.Seconds())
	f.BgWakeupsPerSec = float64(bg1.ctxsw-bg0.ctxsw) / bgWin.Seconds()

	stopProf := d.profileCPU(name)
	defer stopProf()
	s0, err := sampleProc(d.pid())
	if err != nil {
		return f, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	res, err := d.lc.SyncNow(rctx)
	cancel()
	if err != nil {
		return f, fmt.Errorf("rescan: sync: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var st apitype.AccountStatus
	for {
		time.Sleep(every)
		if st, err = d.status(ctx); err == nil && st.LastScan.After(res.Requested) && st.State == apitype.StateIdle {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return f, fmt.Errorf("rescan: %s stopped answering its status after `chatsync sync` (%v); log:\n%s", d.name, err, d.logTail())
			}
			return f, fmt.Errorf("rescan: %s did not finish a full look at its store within 2 minutes of `chatsync sync` (last status %+v; does it report last_scan?); log:\n%s", d.name, st, d.logTail())
		}
		if ctx.Err() != nil {
			return f, ctx.Err()
		}
	}
	s1, err := sampleProc(d.pid())
	if err != nil {
		return f, err
	}
	win := s1.at.Sub(s0.at)
	f.Wall, f.Scan = win, st.LastScan.Sub(res.Requested)
	f.RawCPU, f.TickCPU = s1.onCPU-s0.onCPU, s1.cpu-s0.cpu
	f.CPU = max(f.RawCPU-time.Duration(float64(f.BgCPUPerSec)*win.Seconds()), 0)
	f.Wakeups = max(float64(s1.ctxsw-s0.ctxsw)-f.BgWakeupsPerSec*win.Seconds(), 0)
	b.logf("rescan on %s: %s CPU (%s less %s/s of background), scan %s, %.0f wakeups", d.name,
		secs(f.CPU), secs(f.RawCPU), ms(f.BgCPUPerSec), secs(f.Scan), f.Wakeups)
	return f, nil
}
