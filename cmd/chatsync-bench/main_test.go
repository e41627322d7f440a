//go:build linux

package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs the whole harness on a tiny backlog, so that it keeps
// working as chatsync changes. It checks that every scenario produced its
// figures, never the figures themselves: timings belong in the benchmark's
// report, not in pass/fail tests.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries; skipped with -short")
	}
	cfg, err := parseFlags([]string{"-quick", "-q"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.write(&out)
	t.Logf("\n%s", out.String())
	if len(rep.Backlogs) != 1 || rep.Backlogs[0].Push <= 0 || rep.Backlogs[0].Pull <= 0 || rep.Backlogs[0].PullRSS <= 0 {
		t.Errorf("backlog figures missing: %+v", rep.Backlogs)
	}
	if rep.W2P.N != cfg.Latency || rep.D2D.N != cfg.D2D {
		t.Errorf("latency samples: %d and %d, want %d and %d", rep.W2P.N, rep.D2D.N, cfg.Latency, cfg.D2D)
	}
	if rep.Idle.Window <= 0 || rep.Idle.RSS <= 0 {
		t.Errorf("idle figures missing: %+v", rep.Idle)
	}
	for _, want := range []string{"push 300 backlog", "pull 300 onto an empty device", "watch-to-push", "device-to-device", "idle", "chatsync-server put"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no %q row", want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-sizes", "10_000, 2000"})
	if err != nil || len(cfg.Sizes) != 2 || cfg.Sizes[0] != 10000 || cfg.Sizes[1] != 2000 {
		t.Errorf("parseFlags = %+v, %v", cfg.Sizes, err)
	}
	for _, bad := range [][]string{{"-sizes", "0"}, {"-sizes", "x"}, {"-latency", "0"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
