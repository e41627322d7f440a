//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// floorFigures are one round's floors (floor.go), measured in this
// process just before the round's daemon.
type floorFigures struct {
	// Push: fair, sequential and pipelined; wire: sealed beforehand.
	SeqPush, PipePush, WirePush                            time.Duration
	SeqPushCPU, PipePushCPU                                time.Duration // this process's CPU
	SeqPushServerCPU, PipePushServerCPU, WirePushServerCPU time.Duration
	EnvBytes                                               int // the envelopes put

	// Pull: fair (open, validate, write, record) and wire (download).
	FairPull, WirePull                   time.Duration
	FairPullCPU                          time.Duration
	FairPullServerCPU, WirePullServerCPU time.Duration

	OwnPoll time.Duration // an empty poll by the writer of every row

	// Rescan: a walk of the fair pull's store, each file's size and
	// time compared.
	RescanWall, RescanCPU time.Duration
}

// daemonFigures are one round's daemon figures.
type daemonFigures struct {
	Push              time.Duration
	PushRSS, PushAnon int64         // VmHWM; highest RssAnon sampled
	PushCPU           time.Duration // the daemon's CPU time
	PushServerCPU     time.Duration

	Pull              time.Duration
	PullRSS, PullAnon int64
	PullCPU           time.Duration
	PullServerCPU     time.Duration

	// StateBytes is the size of A's state file once the push drained and
	// A stopped; PullStateBytes B's after the pull.
	StateBytes, PullStateBytes int64
	// StateInUse is what of A's state file holds data (bbolt's pages
	// less the free ones).
	StateInUse int64

	Rescan rescanFigures
}

// rescanFigures are one full look at an idle daemon's store.
type rescanFigures struct {
	CPU     time.Duration // RawCPU less the background over the same time
	Wakeups float64       // likewise
	RawCPU  time.Duration // schedstat, from the request until idle again
	TickCPU time.Duration // utime+stime over the same time (10 ms ticks)
	Wall    time.Duration // from the request until idle again (sampled every 100 ms)
	Scan    time.Duration // from the request until the scan ended, by the daemon's clock
	// BgCPUPerSec and BgWakeupsPerSec are the daemon's cost per second
	// in the 2 s before, asked nothing but its status.
	BgCPUPerSec     time.Duration
	BgWakeupsPerSec float64
	Profiled        bool // under -pprof: not reported
}

type roundFigures struct {
	Floor  floorFigures
	Daemon daemonFigures
}

type backlogFigures struct {
	N         int
	FileBytes int
	Rounds    []roundFigures
}

type latencyFigures struct {
	N                  int
	P50, P99, Max      time.Duration
	FloorP50, FloorP99 time.Duration
}

type idleFigures struct {
	Messages        int
	Restart         time.Duration
	RestartCPU      time.Duration // the daemon's CPU until it was idle after the restart
	Window          time.Duration
	Settle          time.Duration
	CPUPerHour      time.Duration // from the threads' schedstat (ns)
	TickCPUPerHour  time.Duration // from utime+stime (10 ms ticks)
	WakeupsPerHour  float64       // context switches of all threads
	RSS, HWM, Anon  int64
	Threads         int
	FloorCPUPerHour time.Duration
	Profiled        bool // under -pprof: not reported
}

type report struct {
	Machine               string
	LoadBefore, LoadAfter string
	Took                  time.Duration
	Rounds                int
	Profiled              bool
	Backlogs              []backlogFigures
	W2P, D2D, D2DStrict   latencyFigures
	Idle                  idleFigures
}

// The targets.
const (
	pushRatioBig    = 1.3 // push 100k / fair pipelined floor
	pushRatioSmall  = 1.5 // push 10k / fair pipelined floor
	pullRatioBig    = 1.3 // pull 100k / fair floor
	pullTimeTarget  = 20 * time.Second
	pullAnonTarget  = 50 << 20
	statePerMessage = 700 // bytes
	rescanTarget    = 400 * time.Millisecond
	idleCPUTarget   = 500 * time.Millisecond // per hour, the hourly rescan included
	idleWakeTarget  = 2500                   // per hour
	d2dP50Target    = 100 * time.Millisecond
	d2dP99Target    = 300 * time.Millisecond
	strictP50Target = 600 * time.Millisecond
	bigSize         = 100_000
	smallSize       = 10_000
)

const notProfiled = "not measured: -pprof inflates idle"

// spread is a figure over the rounds: its median and range.
type spread struct {
	Med, Min, Max float64
	Vals          []float64 // in round order
}

func spreadOf(vals []float64) spread {
	if len(vals) == 0 {
		return spread{}
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Med: med, Min: s[0], Max: s[len(s)-1], Vals: vals}
}

// fig is a figure of every round.
func (b *backlogFigures) fig(f func(*roundFigures) float64) spread {
	var vals []float64
	for i := range b.Rounds {
		vals = append(vals, f(&b.Rounds[i]))
	}
	return spreadOf(vals)
}

// ratio is num/den of every round: a daemon's figure over the floor
// measured just before it.
func (b *backlogFigures) ratio(num, den func(*roundFigures) float64) spread {
	return b.fig(func(r *roundFigures) float64 {
		d := den(r)
		if d == 0 {
			return 0
		}
		return num(r) / d
	})
}

// seconds makes a figure of a duration.
func seconds(f func(*roundFigures) time.Duration) func(*roundFigures) float64 {
	return func(r *roundFigures) float64 { return f(r).Seconds() }
}

func medDur(b *backlogFigures, f func(*roundFigures) time.Duration) time.Duration {
	return time.Duration(b.fig(seconds(f)).Med * float64(time.Second))
}

func medBytes(b *backlogFigures, f func(*roundFigures) int64) int64 {
	return int64(b.fig(func(r *roundFigures) float64 { return float64(f(r)) }).Med)
}

func (s spread) times() string {
	if len(s.Vals) <= 1 {
		return fmt.Sprintf("%.2f×", s.Med)
	}
	return fmt.Sprintf("%.2f× [%.2f–%.2f]", s.Med, s.Min, s.Max)
}

// The figures of a backlog used by the tables.
var (
	dPush       = func(r *roundFigures) time.Duration { return r.Daemon.Push }
	dPull       = func(r *roundFigures) time.Duration { return r.Daemon.Pull }
	dRescan     = func(r *roundFigures) time.Duration { return r.Daemon.Rescan.CPU }
	fSeqPush    = func(r *roundFigures) time.Duration { return r.Floor.SeqPush }
	fPipePush   = func(r *roundFigures) time.Duration { return r.Floor.PipePush }
	fWirePush   = func(r *roundFigures) time.Duration { return r.Floor.WirePush }
	fFairPull   = func(r *roundFigures) time.Duration { return r.Floor.FairPull }
	fWirePull   = func(r *roundFigures) time.Duration { return r.Floor.WirePull }
	fRescan     = func(r *roundFigures) time.Duration { return r.Floor.RescanCPU }
	dPullAnon   = func(r *roundFigures) int64 { return r.Daemon.PullAnon }
	dStateBytes = func(r *roundFigures) int64 { return r.Daemon.StateBytes }
)

// backlog returns the figures of the backlog of size want, or if it was
// not measured, of the largest one (want = bigSize) or the largest one
// below bigSize, else the smallest (want = smallSize).
func (r *report) backlog(want int) *backlogFigures {
	if len(r.Backlogs) == 0 {
		return nil
	}
	var best *backlogFigures
	for i := range r.Backlogs {
		b := &r.Backlogs[i]
		if b.N == want {
			return b
		}
		switch {
		case best == nil:
			best = b
		case want >= bigSize && b.N > best.N:
			best = b
		case want < bigSize && b.N < bigSize && (best.N >= bigSize || b.N > best.N):
			best = b
		}
	}
	return best
}

// targetRow is one row of the table of targets.
type targetRow struct {
	Figure   string
	Chatsync string
	Value    float64 // chatsync's figure; 0 when not measured
	Floor    string
	FloorVal float64 // the floor's figure; 0 where none applies
	HasFloor bool
	Ratio    string
	Target   string
	Result   string
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// sizedVerdict is the verdict on an absolute target for size want, given
// only when that size was measured.
func sizedVerdict(ok bool, n, want int) string {
	if n != want {
		return "— (another size)"
	}
	return verdict(ok)
}

// at names the size a target is for when another size was measured.
func at(target string, n, want int) string {
	if n == want {
		return target
	}
	return target + " (at " + count(want) + ")"
}

// short writes a duration under a second in milliseconds.
func short(d time.Duration) string {
	if d < time.Second {
		return ms(d)
	}
	return secs(d)
}

// targets is the table of targets.
func (r *report) targets() []targetRow {
	var rows []targetRow
	pushRow := func(b *backlogFigures, target float64, want int) {
		if b == nil {
			return
		}
		ratio := b.ratio(seconds(dPush), seconds(fPipePush))
		push, floor := medDur(b, dPush), medDur(b, fPipePush)
		rows = append(rows, targetRow{
			Figure:   fmt.Sprintf("push %s / fair pipelined floor", count(b.N)),
			Chatsync: fmt.Sprintf("%s (%s)", secs(push), rate(b.N, push)), Value: push.Seconds(),
			Floor: secs(floor), FloorVal: floor.Seconds(), HasFloor: true,
			Ratio: ratio.times(), Target: at(fmt.Sprintf("≤ %.1f×", target), b.N, want), Result: verdict(ratio.Med <= target),
		})
	}
	big, small := r.backlog(bigSize), r.backlog(smallSize)
	pushRow(big, pushRatioBig, bigSize)
	pushRow(small, pushRatioSmall, smallSize)
	if b := big; b != nil {
		ratio := b.ratio(seconds(dPull), seconds(fFairPull))
		pull, floor := medDur(b, dPull), medDur(b, fFairPull)
		rows = append(rows, targetRow{
			Figure:   fmt.Sprintf("pull %s / fair floor", count(b.N)),
			Chatsync: fmt.Sprintf("%s (%s)", secs(pull), rate(b.N, pull)), Value: pull.Seconds(),
			Floor: secs(floor), FloorVal: floor.Seconds(), HasFloor: true,
			Ratio: ratio.times(), Target: at(fmt.Sprintf("≤ %.1f×", pullRatioBig), b.N, bigSize), Result: verdict(ratio.Med <= pullRatioBig),
		}, targetRow{
			Figure:   fmt.Sprintf("%s onto a new device (pull time)", count(b.N)),
			Chatsync: secs(pull), Value: pull.Seconds(),
			Floor: secs(floor), FloorVal: floor.Seconds(), HasFloor: true,
			Ratio: ratio.times(), Target: at("≤ 20 s", b.N, bigSize), Result: sizedVerdict(pull <= pullTimeTarget, b.N, bigSize),
		})
		anon := medBytes(b, dPullAnon)
		rows = append(rows, targetRow{
			Figure:   fmt.Sprintf("pull peak anonymous memory (%s)", count(b.N)),
			Chatsync: mib(anon), Value: float64(anon), Floor: "—", Ratio: "—",
			Target: at("≤ 50 MB", b.N, bigSize), Result: sizedVerdict(anon <= pullAnonTarget, b.N, bigSize),
		})
		state := float64(medBytes(b, dStateBytes)) / float64(b.N)
		rows = append(rows, targetRow{
			Figure:   fmt.Sprintf("state file per message after a %s push", count(b.N)),
			Chatsync: fmt.Sprintf("%.0f B", state), Value: state, Floor: "—", Ratio: "—",
			Target: at(fmt.Sprintf("≤ %d B", statePerMessage), b.N, bigSize), Result: sizedVerdict(state <= statePerMessage, b.N, bigSize),
		})
		rescan := targetRow{Figure: fmt.Sprintf("full rescan of %s files (daemon CPU)", count(b.N)),
			Target: at("≤ 0.4 s", b.N, bigSize), HasFloor: true}
		floor = medDur(b, fRescan)
		rescan.Floor, rescan.FloorVal = short(floor)+" (walk, stat, compare)", floor.Seconds()
		if r.Profiled {
			rescan.Chatsync, rescan.Ratio, rescan.Result = notProfiled, "—", "—"
		} else {
			cpu := medDur(b, dRescan)
			rescan.Chatsync, rescan.Value = short(cpu), cpu.Seconds()
			rescan.Ratio = b.ratio(seconds(dRescan), seconds(fRescan)).times()
			rescan.Result = sizedVerdict(cpu <= rescanTarget, b.N, bigSize)
		}
		rows = append(rows, rescan)

		i := r.Idle
		idle := targetRow{Figure: fmt.Sprintf("idle with %s, hourly rescan included", count(b.N)),
			Target: at(fmt.Sprintf("≤ %.1f s CPU/h, ≤ %s wakeups/h", idleCPUTarget.Seconds(), thousands(idleWakeTarget)), b.N, bigSize), Ratio: "—", HasFloor: true}
		fl := i.FloorCPUPerHour + floor
		idle.Floor, idle.FloorVal = fmt.Sprintf("%.2f s CPU/h (a poll / 30 s, one walk)", fl.Seconds()), fl.Seconds()
		switch {
		case r.Profiled || i.Profiled:
			idle.Chatsync, idle.Result = notProfiled, "—"
		case i.Window > 0:
			cpu, wake := r.idleWithRescan(b)
			idle.Chatsync, idle.Value = fmt.Sprintf("%.2f s CPU/h, %s wakeups/h", cpu.Seconds(), thousands(int(wake))), cpu.Seconds()
			idle.Result = sizedVerdict(cpu <= idleCPUTarget && wake <= idleWakeTarget, i.Messages, bigSize)
		default:
			idle.Chatsync, idle.Result = "not measured", "—"
		}
		rows = append(rows, idle)
	}
	d := r.D2D
	rows = append(rows, targetRow{
		Figure:   "device to device p50 / p99, chatsync-server with long-poll",
		Chatsync: fmt.Sprintf("%s / %s", ms(d.P50), ms(d.P99)), Value: d.P50.Seconds(),
		Floor: fmt.Sprintf("%s / %s (put + get)", ms(d.FloorP50), ms(d.FloorP99)), FloorVal: d.FloorP50.Seconds(), HasFloor: true,
		Ratio: "—", Target: fmt.Sprintf("≤ %.0f / %.0f ms", d2dP50Target.Seconds()*1000, d2dP99Target.Seconds()*1000),
		Result: verdict(d.P50 <= d2dP50Target && d.P99 <= d2dP99Target),
	})
	d = r.D2DStrict
	rows = append(rows, targetRow{
		Figure:   "device to device p50, a server without long-poll (1 s active poll)",
		Chatsync: fmt.Sprintf("%s (p99 %s)", secs(d.P50), secs(d.P99)), Value: d.P50.Seconds(),
		Floor: fmt.Sprintf("%s / %s (put + get)", ms(d.FloorP50), ms(d.FloorP99)), FloorVal: d.FloorP50.Seconds(), HasFloor: true,
		Ratio: "—", Target: "≤ " + secs(strictP50Target), Result: verdict(d.P50 <= strictP50Target),
	})
	return rows
}

// idleWithRescan is the idle cost per hour with one full rescan of the
// backlog b (its median) added, as the daemon does every hour.
func (r *report) idleWithRescan(b *backlogFigures) (time.Duration, float64) {
	cpu := r.Idle.CPUPerHour + medDur(b, dRescan)
	wake := r.Idle.WakeupsPerHour + b.fig(func(r *roundFigures) float64 { return r.Daemon.Rescan.Wakeups }).Med
	return cpu, wake
}

func mib(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f msg/s", float64(n)/d.Seconds())
}

func count(n int) string {
	switch {
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return fmt.Sprint(n)
	}
}

// thousands writes n with a comma every three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// table writes a Markdown table, aligned.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, head ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)}
	t.row(head...)
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
	}
	t.row(seps...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, "| "+strings.Join(cells, "\t| ")+"\t|") }

func (t *table) end() { t.tw.Flush() }

// perRound lists a daemon's and its floor's figure of every round.
func perRound(b *backlogFigures, num, den func(*roundFigures) time.Duration) string {
	var parts []string
	for i := range b.Rounds {
		parts = append(parts, fmt.Sprintf("%.2f/%.2f", num(&b.Rounds[i]).Seconds(), den(&b.Rounds[i]).Seconds()))
	}
	return strings.Join(parts, " ")
}

// write prints the tables (Markdown, so they can go into the README as
// they are) and the notes below them.
func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "Targets (the median of %d rounds; a ratio is the median of the rounds' ratios, each between the daemon and the floor measured just before it, with its range):\n\n", r.Rounds)
	t := newTable(w, "figure", "chatsync", "floor", "ratio, median [min–max]", "target", "result")
	for _, row := range r.targets() {
		t.row(row.Figure, row.Chatsync, row.Floor, row.Ratio, row.Target, row.Result)
	}
	t.end()

	fmt.Fprintf(w, "\nPush, pull and rescan against every floor (seconds; the last column is chatsync/floor in each round):\n\n")
	t = newTable(w, "figure", "chatsync", "floor", "ratio, median [min–max]", "per round")
	for i := range r.Backlogs {
		b := &r.Backlogs[i]
		n := count(b.N)
		cmp := func(what string, d, f func(*roundFigures) time.Duration, floor string) {
			t.row(fmt.Sprintf("%s %s / %s", what, n, floor), secs(medDur(b, d)), secs(medDur(b, f)),
				b.ratio(seconds(d), seconds(f)).times(), perRound(b, d, f))
		}
		cmp("push", dPush, fSeqPush, "fair floor, sequential")
		cmp("push", dPush, fPipePush, "fair floor, pipelined")
		cmp("push", dPush, fWirePush, "wire floor (sealed beforehand, put)")
		cmp("pull", dPull, fFairPull, "fair floor")
		cmp("pull", dPull, fWirePull, "wire floor (download only)")
		if r.Profiled {
			t.row(fmt.Sprintf("rescan %s / walk, stat, compare (CPU)", n), notProfiled, secs(medDur(b, fRescan)), "—", "—")
		} else {
			cmp("rescan", dRescan, fRescan, "walk, stat, compare (CPU)")
		}
	}
	t.end()

	if len(r.Backlogs) > 0 {
		fmt.Fprintf(w, "\nMemory, CPU, state and the server (medians):\n\n")
		head := []string{"figure"}
		for _, b := range r.Backlogs {
			head = append(head, count(b.N))
		}
		t = newTable(w, head...)
		each := func(name string, f func(b *backlogFigures) string) {
			cells := []string{name}
			for i := range r.Backlogs {
				cells = append(cells, f(&r.Backlogs[i]))
			}
			t.row(cells...)
		}
		dur := func(f func(*roundFigures) time.Duration) func(*backlogFigures) string {
			return func(b *backlogFigures) string { return secs(medDur(b, f)) }
		}
		each("push: peak RSS (anonymous)", func(b *backlogFigures) string {
			return fmt.Sprintf("%s (%s)", mib(medBytes(b, func(r *roundFigures) int64 { return r.Daemon.PushRSS })),
				mib(medBytes(b, func(r *roundFigures) int64 { return r.Daemon.PushAnon })))
		})
		each("pull: peak RSS (anonymous)", func(b *backlogFigures) string {
			return fmt.Sprintf("%s (%s)", mib(medBytes(b, func(r *roundFigures) int64 { return r.Daemon.PullRSS })), mib(medBytes(b, dPullAnon)))
		})
		each("push: daemon CPU / fair floor CPU, sequential / pipelined", func(b *backlogFigures) string {
			return fmt.Sprintf("%s / %s / %s", dur(func(r *roundFigures) time.Duration { return r.Daemon.PushCPU })(b),
				dur(func(r *roundFigures) time.Duration { return r.Floor.SeqPushCPU })(b), dur(func(r *roundFigures) time.Duration { return r.Floor.PipePushCPU })(b))
		})
		each("pull: daemon CPU / fair floor CPU", func(b *backlogFigures) string {
			return fmt.Sprintf("%s / %s", dur(func(r *roundFigures) time.Duration { return r.Daemon.PullCPU })(b),
				dur(func(r *roundFigures) time.Duration { return r.Floor.FairPullCPU })(b))
		})
		each("push: server CPU, daemon / pipelined floor / wire floor", func(b *backlogFigures) string {
			return fmt.Sprintf("%s / %s / %s", dur(func(r *roundFigures) time.Duration { return r.Daemon.PushServerCPU })(b),
				dur(func(r *roundFigures) time.Duration { return r.Floor.PipePushServerCPU })(b), dur(func(r *roundFigures) time.Duration { return r.Floor.WirePushServerCPU })(b))
		})
		each("pull: server CPU, daemon / fair floor / wire floor", func(b *backlogFigures) string {
			return fmt.Sprintf("%s / %s / %s", dur(func(r *roundFigures) time.Duration { return r.Daemon.PullServerCPU })(b),
				dur(func(r *roundFigures) time.Duration { return r.Floor.FairPullServerCPU })(b), dur(func(r *roundFigures) time.Duration { return r.Floor.WirePullServerCPU })(b))
		})
		each("state file per message: after the push (pages in use) / after the pull", func(b *backlogFigures) string {
			return fmt.Sprintf("%.0f B (%.0f B) / %.0f B", float64(medBytes(b, dStateBytes))/float64(b.N),
				float64(medBytes(b, func(r *roundFigures) int64 { return r.Daemon.StateInUse }))/float64(b.N),
				float64(medBytes(b, func(r *roundFigures) int64 { return r.Daemon.PullStateBytes }))/float64(b.N))
		})
		each("rescan: wall until idle / scan / wakeups / background", func(b *backlogFigures) string {
			if r.Profiled {
				return notProfiled
			}
			return fmt.Sprintf("%s / %s / %.0f / %s CPU/s, %.0f wakeups/s",
				dur(func(r *roundFigures) time.Duration { return r.Daemon.Rescan.Wall })(b),
				dur(func(r *roundFigures) time.Duration { return r.Daemon.Rescan.Scan })(b),
				b.fig(func(r *roundFigures) float64 { return r.Daemon.Rescan.Wakeups }).Med,
				ms(medDur(b, func(r *roundFigures) time.Duration { return r.Daemon.Rescan.BgCPUPerSec })),
				b.fig(func(r *roundFigures) float64 { return r.Daemon.Rescan.BgWakeupsPerSec }).Med)
		})
		each("chatsync-server put (wire floor, 500/request)", func(b *backlogFigures) string {
			d := medDur(b, fWirePush)
			env := b.fig(func(r *roundFigures) float64 { return float64(r.Floor.EnvBytes) }).Med
			return fmt.Sprintf("%s, %.1f MB/s, server CPU %s", strings.TrimSuffix(rate(b.N, d), " msg/s")+" entries/s",
				env/(1<<20)/d.Seconds(), dur(func(r *roundFigures) time.Duration { return r.Floor.WirePushServerCPU })(b))
		})
		each("chatsync-server get (wire floor, 5000/page)", func(b *backlogFigures) string {
			d := medDur(b, fWirePull)
			env := b.fig(func(r *roundFigures) float64 { return float64(r.Floor.EnvBytes) }).Med
			return fmt.Sprintf("%s, %.1f MB/s, server CPU %s", strings.TrimSuffix(rate(b.N, d), " msg/s")+" entries/s",
				env/(1<<20)/d.Seconds(), dur(func(r *roundFigures) time.Duration { return r.Floor.WirePullServerCPU })(b))
		})
		each("an empty poll by the writer of every row (after_id 0)", func(b *backlogFigures) string {
			return ms(medDur(b, func(r *roundFigures) time.Duration { return r.Floor.OwnPoll }))
		})
		t.end()
	}

	fmt.Fprintf(w, "\nLatency and idle (one run each):\n\n")
	t = newTable(w, "scenario", "chatsync", "floor", "maximum")
	if l := r.W2P; l.N > 0 {
		t.row(fmt.Sprintf("watch-to-push p50 / p99 (%d msgs)", l.N), fmt.Sprintf("%s / %s", ms(l.P50), ms(l.P99)),
			fmt.Sprintf("%s / %s (one put)", ms(l.FloorP50), ms(l.FloorP99)), ms(l.Max))
	}
	for _, d := range []struct {
		name string
		l    latencyFigures
	}{{"chatsync-server (long-poll)", r.D2D}, {"chatsync-server --strict-compat (1 s poll)", r.D2DStrict}} {
		if d.l.N > 0 {
			t.row(fmt.Sprintf("device to device p50 / p99, %s (%d msgs)", d.name, d.l.N), fmt.Sprintf("%s / %s", ms(d.l.P50), ms(d.l.P99)),
				fmt.Sprintf("%s / %s (put + get)", ms(d.l.FloorP50), ms(d.l.FloorP99)), ms(d.l.Max))
		}
	}
	if i := r.Idle; i.Window > 0 {
		name := fmt.Sprintf("idle, %s messages indexed", count(i.Messages))
		if r.Profiled || i.Profiled {
			t.row(name, notProfiled, fmt.Sprintf("%.2f s CPU/h (1 poll / 30 s)", i.FloorCPUPerHour.Seconds()), "—")
		} else {
			t.row(name, fmt.Sprintf("%.2f s CPU/h, %s wakeups/h, RSS %s (anon %s)", i.CPUPerHour.Seconds(), thousands(int(i.WakeupsPerHour)), mib(i.RSS), mib(i.Anon)),
				fmt.Sprintf("%.2f s CPU/h (1 poll / 30 s)", i.FloorCPUPerHour.Seconds()), "—")
			if b := r.backlogOf(i.Messages); b != nil {
				cpu, wake := r.idleWithRescan(b)
				t.row(name+", hourly rescan included", fmt.Sprintf("%.2f s CPU/h, %s wakeups/h", cpu.Seconds(), thousands(int(wake))),
					fmt.Sprintf("%.2f s CPU/h (and one walk)", (i.FloorCPUPerHour+medDur(b, fRescan)).Seconds()), "—")
			}
		}
	}
	t.end()

	fmt.Fprintln(w)
	fmt.Fprintln(w, legend)
	if i := r.Idle; i.Window > 0 && !r.Profiled {
		fmt.Fprintf(w, "idle: A's restart on its full store (the start-up index) took %s and %s of CPU; "+
			"window %s, %s after its last activity; CPU %.2f s/h by utime+stime; peak RSS %s; %d threads\n",
			secs(i.Restart), secs(i.RestartCPU), i.Window.Round(time.Second), i.Settle, i.TickCPUPerHour.Seconds(), mib(i.HWM), i.Threads)
	}
	if r.Profiled {
		fmt.Fprintln(w, "-pprof: the daemon ran with the profiler on; push and pull figures are inflated by it too, idle and rescan are not reported")
	}
	fmt.Fprintf(w, "machine: %s; load average %s before, %s after; %d rounds; the run took %s\n",
		r.Machine, r.LoadBefore, r.LoadAfter, r.Rounds, r.Took.Round(time.Second))
}

func (r *report) backlogOf(n int) *backlogFigures {
	for i := range r.Backlogs {
		if r.Backlogs[i].N == n {
			return &r.Backlogs[i]
		}
	}
	return nil
}

// legend explains the figures; printed under the tables.
const legend = `Each round runs the floors, then the daemon, on fresh chatsync-servers with fresh state and
empty stores to pull into; both push the same backlog on disk, after a sync(2) of the setup.
Push: from the start of the daemon until the last entry is on the server; pull: from the start
of an empty device until every entry is a file and it is idle. Fair floors (in this process):
push = list the store, then per batch of 500 entries / 4 MiB read, parse, seal, one durable
bbolt commit, put, one durable commit (pipelined: the next batch is prepared while a put is in
flight); pull = per page of 5000 fetch, open, validate, write every file with msgdir.Apply
(atomic, durable), one durable commit. Wire floors: the put of envelopes sealed beforehand; the
download only. Rescan: the daemon's CPU from "chatsync sync" until it is idle again, less its
background over the same time (it also polls once); its floor walks the store and compares
each file's size and time. RSS is VmHWM; "anonymous" is RssAnon (the state file mapped in is
not counted), sampled every 20 ms. CPU is the threads' schedstat run time.`
