//go:build linux

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

type backlogFigures struct {
	N         int
	FileBytes int

	Push, FloorPush                   time.Duration
	PushRSS, PushAnon                 int64         // VmHWM; highest RssAnon sampled
	PushCPU                           time.Duration // the daemon's CPU time
	PushServerCPU, FloorPushServerCPU time.Duration

	Pull, FloorPull                   time.Duration
	PullRSS, PullAnon                 int64
	PullCPU                           time.Duration
	PullServerCPU, FloorPullServerCPU time.Duration
}

type serverFigures struct {
	N              int
	EnvBytes       int
	Put, Get       time.Duration
	PutCPU, GetCPU time.Duration
	RSS            int64
	OwnPoll        time.Duration // an empty poll by the writer of all the rows
}

type latencyFigures struct {
	N                  int
	P50, P99, Max      time.Duration
	FloorP50, FloorP99 time.Duration
}

type idleFigures struct {
	Messages        int
	Restart         time.Duration
	RestartCPU      time.Duration // the daemon's CPU until it settled: about one full rescan
	Window          time.Duration
	Settle          time.Duration
	CPUPerHour      time.Duration // from the threads' schedstat (ns)
	TickCPUPerHour  time.Duration // from utime+stime (10 ms ticks)
	WakeupsPerHour  float64       // context switches of all threads
	RSS, HWM, Anon  int64
	Threads         int
	FloorCPUPerHour time.Duration
}

type report struct {
	Machine               string
	LoadBefore, LoadAfter string
	Took                  time.Duration
	Backlogs              []backlogFigures
	Server                []serverFigures
	W2P, D2D              latencyFigures
	Idle                  idleFigures
}

// Targets of issue #7.
const (
	pushRatioTarget = 1.5
	pullTimeTarget  = 60 * time.Second
	pullRSSTarget   = 100 << 20
	w2pP99Target    = 250 * time.Millisecond
	d2dP50Target    = 2 * time.Second
	idleCPUTarget   = time.Second // per hour
	idleRSSTarget   = 30 << 20
)

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

func verdict(ok bool, how string) string {
	if ok {
		return "met (" + how + ")"
	}
	return "MISSED (" + how + ")"
}

// write prints the table (Markdown, so it can go into the README as it
// is) and the notes below it.
func (r *report) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, "| "+strings.Join(cells, "\t| ")+"\t|") }
	row("scenario", "chatsync", "floor", "target", "result")
	row("---", "---", "---", "---", "---")
	for _, b := range r.Backlogs {
		ratio := b.Push.Seconds() / b.FloorPush.Seconds()
		target, res := "—", fmt.Sprintf("%.1f× floor", ratio)
		if b.N == 10_000 {
			target = fmt.Sprintf("≤ %.1f× floor", pushRatioTarget)
			res = verdict(ratio <= pushRatioTarget, fmt.Sprintf("%.1f×", ratio))
		}
		row(fmt.Sprintf("push %s backlog", count(b.N)),
			fmt.Sprintf("%s, %s, peak RSS %s (anon %s)", secs(b.Push), rate(b.N, b.Push), mib(b.PushRSS), mib(b.PushAnon)),
			fmt.Sprintf("%s, %s", secs(b.FloorPush), rate(b.N, b.FloorPush)), target, res)
	}
	for _, b := range r.Backlogs {
		target, res := "—", fmt.Sprintf("%.1f× floor", b.Pull.Seconds()/b.FloorPull.Seconds())
		if b.N == 100_000 {
			target = "< 60 s, RSS < 100 MB"
			ok := b.Pull < pullTimeTarget && b.PullRSS < pullRSSTarget
			res = verdict(ok, fmt.Sprintf("%s, %s", secs(b.Pull), mib(b.PullRSS)))
		}
		row(fmt.Sprintf("pull %s onto an empty device", count(b.N)),
			fmt.Sprintf("%s, %s, peak RSS %s (anon %s)", secs(b.Pull), rate(b.N, b.Pull), mib(b.PullRSS), mib(b.PullAnon)),
			fmt.Sprintf("%s, %s", secs(b.FloorPull), rate(b.N, b.FloorPull)), target, res)
	}
	if r.W2P.N > 0 {
		row(fmt.Sprintf("watch-to-push p50 / p99 (%d msgs)", r.W2P.N),
			fmt.Sprintf("%s / %s", ms(r.W2P.P50), ms(r.W2P.P99)),
			fmt.Sprintf("%s / %s (one put)", ms(r.W2P.FloorP50), ms(r.W2P.FloorP99)),
			"p99 < 250 ms", verdict(r.W2P.P99 < w2pP99Target, "p99 "+ms(r.W2P.P99)))
		row(fmt.Sprintf("device-to-device p50 / p99 (%d msgs, active)", r.D2D.N),
			fmt.Sprintf("%s / %s", ms(r.D2D.P50), ms(r.D2D.P99)),
			fmt.Sprintf("%s / %s (put + get)", ms(r.D2D.FloorP50), ms(r.D2D.FloorP99)),
			"p50 < 2 s", verdict(r.D2D.P50 < d2dP50Target, "p50 "+ms(r.D2D.P50)))
	}
	if r.Idle.Window > 0 {
		i := r.Idle
		row(fmt.Sprintf("idle, %s messages indexed", count(i.Messages)),
			fmt.Sprintf("%.2f s CPU/h, %.0f wakeups/h, RSS %s (anon %s)", i.CPUPerHour.Seconds(), i.WakeupsPerHour, mib(i.RSS), mib(i.Anon)),
			fmt.Sprintf("%.2f s CPU/h (1 poll / 30 s)", i.FloorCPUPerHour.Seconds()),
			"< 1 s CPU/h, RSS < 30 MB",
			verdict(i.CPUPerHour < idleCPUTarget && i.RSS < idleRSSTarget, fmt.Sprintf("%.2f s/h, %s", i.CPUPerHour.Seconds(), mib(i.RSS))))
	}
	for _, s := range r.Server {
		row(fmt.Sprintf("chatsync-server put, %s entries", count(s.N)),
			fmt.Sprintf("%s, %.1f MB/s", rate(s.N, s.Put), float64(s.EnvBytes)/(1<<20)/s.Put.Seconds()),
			"(is the floor)", "—", fmt.Sprintf("server CPU %s", secs(s.PutCPU)))
		row(fmt.Sprintf("chatsync-server get, %s entries", count(s.N)),
			fmt.Sprintf("%s, %.1f MB/s", rate(s.N, s.Get), float64(s.EnvBytes)/(1<<20)/s.Get.Seconds()),
			"(is the floor)", "—", fmt.Sprintf("server CPU %s", secs(s.GetCPU)))
	}
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(w, legend)
	fmt.Fprintf(w, "machine: %s; load average %s before, %s after; the run took %s\n",
		r.Machine, r.LoadBefore, r.LoadAfter, r.Took.Round(time.Second))
	for _, b := range r.Backlogs {
		fmt.Fprintf(w, "%s: peak RSS without mapped files (RssAnon, sampled every 20 ms): push %s, pull %s\n", count(b.N), mib(b.PushAnon), mib(b.PullAnon))
		fmt.Fprintf(w, "%s: push: daemon CPU %s, server CPU %s (floor: server CPU %s); pull: daemon CPU %s, server CPU %s (floor: server CPU %s)\n",
			count(b.N), secs(b.PushCPU), secs(b.PushServerCPU), secs(b.FloorPushServerCPU),
			secs(b.PullCPU), secs(b.PullServerCPU), secs(b.FloorPullServerCPU))
	}
	for _, s := range r.Server {
		fmt.Fprintf(w, "%s: an empty poll (except_uuid = the writer of every row, after_id 0) takes %s\n", count(s.N), ms(s.OwnPoll))
	}
	if r.W2P.N > 0 {
		fmt.Fprintf(w, "latency maxima: watch-to-push %s, device-to-device %s\n", ms(r.W2P.Max), ms(r.D2D.Max))
	}
	if r.Idle.Window > 0 {
		i := r.Idle
		fmt.Fprintf(w, "idle: the restart (a full scan of the store, as the hourly rescan does) took %s; the daemon had used %s of CPU when the window began\n", secs(i.Restart), secs(i.RestartCPU))
		fmt.Fprintf(w, "idle: window %s, %s after the restart settled; CPU %.2f s/h by utime+stime (10 ms ticks); RSS %s of which anonymous %s; peak RSS %s; %d threads\n",
			i.Window.Round(time.Second), i.Settle, i.TickCPUPerHour.Seconds(), mib(i.RSS), mib(i.Anon), mib(i.HWM), i.Threads)
	}
}

// legend explains the columns; printed under the table.
const legend = `RSS is VmHWM (peak) or VmRSS (idle) of the daemon from /proc, which counts the pages of
its bbolt state file that are mapped in; "anon" is RssAnon, the process's own memory
(peak sampled every 20 ms). CPU is the sum of the threads' schedstat run time.`
