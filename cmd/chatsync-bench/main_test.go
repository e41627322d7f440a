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
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.write(&out)
	t.Logf("\n%s", out.String())
	if len(rep.Backlogs) != 1 || len(rep.Backlogs[0].Rounds) != cfg.Rounds {
		t.Fatalf("backlogs: %+v, want one of %d rounds", rep.Backlogs, cfg.Rounds)
	}
	for i, r := range rep.Backlogs[0].Rounds {
		f, d := r.Floor, r.Daemon
		for name, v := range map[string]time.Duration{
			"push": d.Push, "pull": d.Pull, "rescan CPU": d.Rescan.RawCPU, "rescan": d.Rescan.Wall,
			"sequential push floor": f.SeqPush, "pipelined push floor": f.PipePush, "wire push floor": f.WirePush,
			"fair pull floor": f.FairPull, "wire pull floor": f.WirePull, "rescan floor": f.RescanWall,
		} {
			if v <= 0 {
				t.Errorf("round %d: no %s figure", i+1, name)
			}
		}
		if d.PullRSS <= 0 || d.PullAnon <= 0 || d.StateBytes <= 0 {
			t.Errorf("round %d: memory or state figures missing: %+v", i+1, d)
		}
	}
	if rep.W2P.N != cfg.Latency || rep.D2D.N != cfg.D2D || rep.D2DStrict.N != cfg.D2D {
		t.Errorf("latency samples: %d, %d and %d, want %d, %d and %d", rep.W2P.N, rep.D2D.N, rep.D2DStrict.N, cfg.Latency, cfg.D2D, cfg.D2D)
	}
	if rep.Idle.Window <= 0 || rep.Idle.RSS <= 0 {
		t.Errorf("idle figures missing: %+v", rep.Idle)
	}

	// Every target is in the table, with chatsync's figure and, where one
	// applies, its floor.
	rows := rep.targets()
	for _, want := range []string{
		"push 300 / fair pipelined floor", "pull 300 / fair floor", "300 onto a new device", "pull peak anonymous memory (300)",
		"state file per message after a 300 push", "full rescan of 300 files", "idle with 300, hourly rescan included",
		"device to device p50 / p99, chatsync-server with long-poll", "device to device p50, a server without long-poll",
	} {
		found := false
		for _, row := range rows {
			if strings.HasPrefix(row.Figure, want) {
				found = true
				// A rescan of 300 files costs a few ms, within the noise
				// of the background subtracted from it: its raw figure is
				// checked above.
				if row.Value <= 0 && !strings.HasPrefix(row.Figure, "full rescan") {
					t.Errorf("target %q: no chatsync figure (%q)", row.Figure, row.Chatsync)
				}
				if row.HasFloor && row.FloorVal <= 0 {
					t.Errorf("target %q: no floor (%q)", row.Figure, row.Floor)
				}
				if !strings.Contains(out.String(), row.Figure) {
					t.Errorf("target %q is not in the report", row.Figure)
				}
			}
		}
		if !found {
			t.Errorf("no target row %q", want)
		}
	}
	if len(rows) != 10 {
		t.Errorf("%d target rows, want 10", len(rows))
	}
	for _, want := range []string{"push 300 / fair floor, sequential", "wire floor (download only)", "watch-to-push",
		"--strict-compat", "hourly rescan included", "chatsync-server put", "chatsync-server get", "2 rounds"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q", want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-sizes", "10_000, 2000"})
	if err != nil || len(cfg.Sizes) != 2 || cfg.Sizes[0] != 10000 || cfg.Sizes[1] != 2000 {
		t.Errorf("parseFlags = %+v, %v", cfg.Sizes, err)
	}
	if cfg.Rounds != 3 {
		t.Errorf("default rounds %d, want 3", cfg.Rounds)
	}
	for _, bad := range [][]string{{"-sizes", "0"}, {"-sizes", "x"}, {"-latency", "0"}, {"-rounds", "0"}, {"extra"}} {
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
