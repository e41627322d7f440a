//go:build linux

// Command chatsync-bench measures chatsync end to end, the way its users
// feel it: it builds the real chatsync and chatsync-server, runs them on
// loopback and prints tables of figures, each next to its floor (the same
// work done by a minimal client of the SIP Account API in this process),
// and a table of the targets, met or missed.
//
// Each backlog size is measured in rounds that alternate the floors and
// the daemon (F D F D F D), each round on fresh servers and fresh devices;
// a figure is the median of the rounds, a ratio the median of the rounds'
// ratios (each daemon against the floor measured just before it), shown
// with its range. The fair floors do the work the daemon's contract
// requires: push = read, parse, seal, put, one durable record before and
// one after each batch (sequential, and pipelined); pull = fetch, open,
// validate, write every file atomically and durably, one durable record a
// page. The wire floors (a put of envelopes sealed beforehand; a download)
// stand beside them.
//
// Scenarios: a backlog pushed by a device that starts with it on disk; the
// same backlog pulled onto an empty device; a full rescan of the pulled
// store; watch-to-push latency of single messages; device-to-device
// latency while a conversation is active, against chatsync-server (which
// long-polls) and against chatsync-server --strict-compat (which, like the
// real server, does not); the idle cost of a daemon (CPU per hour,
// wakeups, RSS), with and without the hourly rescan; chatsync-server's
// put and get throughput.
//
// Usage:
//
//	go run ./cmd/chatsync-bench [-sizes 10000,100000] [-rounds 3] [-latency 60] [-d2d 40]
//	                            [-idle 90s] [-settle 130s] [-quick] [-pprof DIR] [-keep]
//
// or `make bench`. -pprof DIR builds the daemon with -tags benchpprof and
// saves CPU profiles of the push, the pull, the rescan and the idle window
// (2 s each; `go tool pprof -top DIR/push-100000-r1-cpu-*` merges them) and
// a heap profile after the pull; the profiler inflates what it measures,
// so the idle and rescan figures are then not reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatsync-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatsync-bench:", err)
		os.Exit(1)
	}
	rep.write(os.Stdout)
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("chatsync-bench", flag.ContinueOnError)
	sizes := fs.String("sizes", "10000,100000", "backlog `sizes` pushed and pulled, comma-separated")
	rounds := fs.Int("rounds", 3, "`rounds` per backlog size, each the floors then the daemon, on fresh servers")
	latency := fs.Int("latency", 60, "watch-to-push `samples`")
	d2d := fs.Int("d2d", 40, "device-to-device `samples` (against each of the two servers)")
	idle := fs.Duration("idle", 90*time.Second, "idle `window` measured (the daemon polls every 30 s)")
	settle := fs.Duration("settle", 130*time.Second, "`wait` after the daemon's last activity before the idle window: it polls every second for 2 minutes after a start or any activity")
	quick := fs.Bool("quick", false, "a smoke run: -sizes 300 -rounds 2 -latency 5 -d2d 3 -idle 2s -settle 0.5s")
	pprofDir := fs.String("pprof", "", "save CPU and heap profiles of the daemon in `dir`")
	binDir := fs.String("bin", "", "use chatsync and chatsync-server from `dir` instead of building them")
	keep := fs.Bool("keep", false, "keep the work directory (stores, logs)")
	quiet := fs.Bool("q", false, "no progress on standard error")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := config{Rounds: *rounds, Latency: *latency, D2D: *d2d, Idle: *idle, Settle: *settle, PprofDir: *pprofDir, BinDir: *binDir, Keep: *keep, Verbose: true, Log: os.Stderr}
	if *quiet {
		cfg.Log = nil
	}
	if *quick {
		*sizes = "300"
		cfg.Rounds, cfg.Latency, cfg.D2D, cfg.Idle, cfg.Settle = 2, 5, 3, 2*time.Second, 500*time.Millisecond
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		if err != nil || n <= 0 {
			return config{}, fmt.Errorf("-sizes: %q is not a positive number", s)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if cfg.Rounds <= 0 || cfg.Latency <= 0 || cfg.D2D <= 0 || cfg.Idle <= 0 || cfg.Settle < 0 {
		return config{}, fmt.Errorf("-rounds, -latency, -d2d and -idle must be positive")
	}
	return cfg, nil
}
