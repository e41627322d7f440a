//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// idleAgain is the status of a daemon that has started, caught up and has
// nothing to send.
func idleAgain(s apitype.AccountStatus) bool {
	return s.State == apitype.StateIdle && !s.LastPoll.IsZero() && s.OutboxDepth == 0
}

// scenarios runs what follows the backlogs, on the devices of the largest
// one's last round: A restarts on its full store; watch-to-push and
// device-to-device latency against chatsync-server as it starts by
// default; then, while A settles, device-to-device against
// chatsync-server --strict-compat on two small devices of its own; then
// the idle cost of A.
func (b *bench) scenarios(ctx context.Context, k *kept) error {
	b.logf("latency: restarting A (%d messages indexed)", k.n)
	settleDisk()
	t0 := time.Now()
	if err := k.a.start(); err != nil {
		return err
	}
	done, err := k.a.waitFor(ctx, 5*time.Minute, "A idle after the restart", idleAgain)
	if err != nil {
		return err
	}
	s, err := sampleProc(k.a.pid())
	if err != nil {
		return err
	}
	b.rep.Idle.Restart, b.rep.Idle.RestartCPU = done.Sub(t0), s.onCPU
	if b.rep.W2P, b.rep.D2D, err = b.latency(ctx, k.srv, k.a, k.bd, true); err != nil {
		return err
	}
	if err := k.bd.stop(); err != nil {
		return err
	}
	b.discard(k.bd.dir)
	// A polls every second for two minutes after its last message: the
	// strict server's scenario runs meanwhile, on devices of its own that
	// stop before A's idle window.
	quiet := time.Now()
	if b.rep.D2DStrict, err = b.strictLatency(ctx); err != nil {
		return err
	}
	return b.idle(ctx, k.srv, k.a, k.n, quiet)
}

// strictLatency measures device to device against a server that, like the
// real one, does not hold a poll open: two devices with a few messages,
// their own server.
func (b *bench) strictLatency(ctx context.Context) (latencyFigures, error) {
	srv, err := b.startServer("strict-server", true)
	if err != nil {
		return latencyFigures{}, err
	}
	defer srv.stop()
	c, err := b.newDevice("strict-C", srv, "")
	if err != nil {
		return latencyFigures{}, err
	}
	d, err := b.newDevice("strict-D", srv, "")
	if err != nil {
		return latencyFigures{}, err
	}
	const few = 20
	if err := writeBacklog(c.store, genMessages("s", few, 5)); err != nil {
		return latencyFigures{}, err
	}
	b.logf("device-to-device, --strict-compat server: two devices with %d messages", few)
	if err := c.start(); err != nil {
		return latencyFigures{}, err
	}
	if err := d.start(); err != nil {
		return latencyFigures{}, err
	}
	if _, err := c.waitFor(ctx, 2*time.Minute, "C's messages pushed", func(s apitype.AccountStatus) bool {
		return idleAgain(s) && s.Pushed >= few
	}); err != nil {
		return latencyFigures{}, err
	}
	if _, err := d.waitFor(ctx, 2*time.Minute, "C's messages on D", func(s apitype.AccountStatus) bool {
		return idleAgain(s) && s.Received >= few
	}); err != nil {
		return latencyFigures{}, err
	}
	_, d2d, err := b.latency(ctx, srv, c, d, false)
	if err != nil {
		return latencyFigures{}, err
	}
	return d2d, errorsJoin(c.stop(), d.stop())
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// latency measures watch-to-push on a (if w2p), then device-to-device in
// both directions while a and bd talk, each next to its floor on the same
// server.
func (b *bench) latency(ctx context.Context, srv *server, a, bd *device, w2p bool) (w2pFig, d2dFig latencyFigures, err error) {
	evCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	aEv, err := a.events(evCtx)
	if err != nil {
		return w2pFig, d2dFig, err
	}
	bEv, err := bd.events(evCtx)
	if err != nil {
		return w2pFig, d2dFig, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	gap := func() { time.Sleep(time.Duration(200+r.IntN(800)) * time.Millisecond) }

	// Watch to push: a file written on A until A has it on the server
	// (the "pushed" event follows the server's reply).
	var w2ps []time.Duration
	if w2p {
		b.logf("watch-to-push: %d single messages on %s", b.cfg.Latency, a.name)
		for i := range b.cfg.Latency {
			gap()
			drain(aEv)
			t0 := time.Now()
			if _, err := live(a, i); err != nil {
				return w2pFig, d2dFig, err
			}
			at, err := waitEvent(aEv, apitype.EventPushed, 30*time.Second)
			if err != nil {
				return w2pFig, d2dFig, fmt.Errorf("watch-to-push: %w; log of %s:\n%s", err, a.name, a.logTail())
			}
			w2ps = append(w2ps, at.Sub(t0))
		}
	}

	// Device to device, while a conversation is going on: alternate
	// senders; a file written on one device until the other has written
	// it (its "received" event follows the file and the commit). The first
	// message each way is a warm-up.
	b.logf("device-to-device: %d messages, %s and %s alternating", b.cfg.D2D, a.name, bd.name)
	var d2ds []time.Duration
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
			return w2pFig, d2dFig, err
		}
		// A "received" event may be for an earlier message (the last
		// watch-to-push one, say): the message has arrived when its file
		// is there.
		deadline := t0.Add(90 * time.Second)
		var at time.Time
		for {
			at, err = waitEvent(toEv, apitype.EventReceived, time.Until(deadline))
			if err != nil {
				return w2pFig, d2dFig, fmt.Errorf("device-to-device: %w; log of %s:\n%s", err, to.name, to.logTail())
			}
			if _, err := os.Stat(filepath.Join(to.store, rel)); err == nil {
				break
			}
		}
		if i >= 0 {
			d2ds = append(d2ds, at.Sub(t0))
		}
	}
	cancel()

	fput, fputGet, err := b.latencyFloor(ctx, srv, max(len(w2ps), len(d2ds)))
	if err != nil {
		return w2pFig, d2dFig, err
	}
	if w2p {
		w2pFig = latencyFigures{N: len(w2ps), P50: pct(w2ps, 50), P99: pct(w2ps, 99), Max: pct(w2ps, 100),
			FloorP50: pct(fput, 50), FloorP99: pct(fput, 99)}
		b.logf("watch-to-push p50 %s p99 %s", ms(w2pFig.P50), ms(w2pFig.P99))
	}
	d2dFig = latencyFigures{N: len(d2ds), P50: pct(d2ds, 50), P99: pct(d2ds, 99), Max: pct(d2ds, 100),
		FloorP50: pct(fputGet, 50), FloorP99: pct(fputGet, 99)}
	b.logf("device-to-device p50 %s p99 %s", ms(d2dFig.P50), ms(d2dFig.P99))
	return w2pFig, d2dFig, nil
}

// latencyFloor measures, on an account of its own on srv (the devices must
// not see these rows), one entry put, and one put then one get by another
// device.
func (b *bench) latencyFloor(ctx context.Context, srv *server, samples int) (put, putGet []time.Duration, err error) {
	c, err := newClient(srv, floorAccount)
	if err != nil {
		return nil, nil, err
	}
	envs, _, err := b.sealAll([]message{{data: []byte(`{"msgid":"floor@bench.chatsync","remote_uri":"sip:bob@example.com","local_uri":"sip:alice@example.com","direction":"outgoing","content_type":"text/plain","state":"delivered","timestamp":"2024-03-01T09:00:00Z","body":"are you there? xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)}}, newUUID())
	if err != nil {
		return nil, nil, err
	}
	sender, receiver := newUUID(), newUUID()
	for i := range samples {
		t0 := time.Now()
		res, err := c.PutJournalEntries(ctx, sender, []account.PutEntry{{ID: fmt.Sprint(i), Data: envs[0]}})
		if err != nil {
			return nil, nil, err
		}
		p := time.Since(t0)
		if _, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: receiver, AfterID: res[0].JournalID - 1}); err != nil {
			return nil, nil, err
		}
		put, putGet = append(put, p), append(putGet, time.Since(t0))
	}
	return put, putGet, nil
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

// idle measures what A costs while nothing happens, once b.cfg.Settle
// has passed since its last activity (quiet); the floor is a client that
// only polls, as often as the daemon's idle poll. Under -pprof the window
// is profiled and its figures are not reported: the profiler's sampling
// inflates them many times.
func (b *bench) idle(ctx context.Context, srv *server, a *device, n int, quiet time.Time) error {
	b.emptyTrash()
	if wait := time.Until(quiet.Add(b.cfg.Settle)); wait > 0 {
		b.logf("idle: A settles for %s more", wait.Round(time.Second))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	settleDisk()
	st0, err := a.status(ctx)
	if err != nil {
		return err
	}
	s0, err := sampleProc(a.pid())
	if err != nil {
		return err
	}
	b.logf("idle: measuring A for %s", b.cfg.Idle)
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
	if st.Pushed != st0.Pushed || st.Received != st0.Received {
		return fmt.Errorf("idle: A pushed %d and received %d entries in the window; want none", st.Pushed-st0.Pushed, st.Received-st0.Received)
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
	cpu0 := selfCPU()
	for range polls {
		if _, err := c.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: newUUID(), AfterID: top}); err != nil {
			return err
		}
	}
	perPoll := (selfCPU() - cpu0) / polls

	b.rep.Idle = idleFigures{
		Messages: n, Restart: b.rep.Idle.Restart, RestartCPU: b.rep.Idle.RestartCPU, Window: win, Settle: b.cfg.Settle,
		CPUPerHour:     time.Duration(float64(s1.onCPU-s0.onCPU) * perHour),
		TickCPUPerHour: time.Duration(float64(s1.cpu-s0.cpu) * perHour),
		WakeupsPerHour: float64(s1.ctxsw-s0.ctxsw) * perHour,
		RSS:            s1.rss, HWM: s1.hwm, Anon: s1.anon, Threads: s1.threads,
		FloorCPUPerHour: perPoll * 120,
		Profiled:        b.cfg.PprofDir != "",
	}
	b.logf("idle: %.2f s CPU/h, %.0f wakeups/h, RSS %s", b.rep.Idle.CPUPerHour.Seconds(), b.rep.Idle.WakeupsPerHour, mib(s1.rss))
	return a.stop()
}
