package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/sync/apitype"
)

func init() {
	extraCommands = append(extraCommands, newStatusCmd, newSyncCmd, newAccountCmd)
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what the daemon is doing, per account",
		Long: `status asks the running daemon, through its control socket, for each account's
state, journal cursor, last push and poll (with their errors), outbox depth,
age of the oldest unsent entry, backoff, and the message files it refuses to
replicate, with the reason. While an account catches up with the journal
it shows the rows and pages read, the messages written and the rate.

It also shows the bytes sent to the server and received since the start,
and the other device furthest behind this one, if any is.

Exit status, for scripts:
  0  every account runs and is not stalled (idle, catching up, or retrying
     a failure that began less than 10 minutes ago)
  3  an account is paused, cannot start, fails in a way waiting will not
     fix (the server refuses the password, settings_url is not the API),
     has failed for 10 minutes or more, or is stalled: no good poll for 5
     poll intervals, an entry unsent for 10 minutes, or another device
     that has not applied this one's messages for a day; one line per such
     account on stderr, the details on stdout as usual (--json too)
  1  the daemon cannot be asked (not running, no permission)`,
		Example: "  chatsync status\n  chatsync status --json | jq '.accounts[].outbox_depth'\n  chatsync --account alice@example.com status",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			lc, err := g.localClient()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 30*time.Second)
			defer cancel()
			st, err := lc.Status(ctx)
			if err != nil {
				return daemonError(err)
			}
			now := time.Now()
			if asJSON {
				if err := printJSON(g.stdout, st); err != nil {
					return err
				}
			} else {
				printStatus(g.stdout, st, now)
			}
			return statusProblems(st, now)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable: fields are only added)")
	return c
}

// ExitNotRunning is the exit status of `chatsync status` when an account
// does not run as it should (apitype.AccountStatus.Problem).
const ExitNotRunning = 3

// exitError is an error with the exit status it should end the program
// with.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
func (e exitError) ExitCode() int { return e.code }

// statusProblems returns an error with exit status ExitNotRunning that
// names every account that does not run as it should, or nil.
func statusProblems(st *apitype.Status, now time.Time) error {
	var lines []string
	for _, a := range st.Accounts {
		if p := a.Problem(now); p != "" {
			lines = append(lines, a.Account+": "+oneLine(p))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return exitError{ExitNotRunning, errors.New(strings.Join(lines, "; "))}
}

// printStatus writes the human form of st.
func printStatus(w io.Writer, st *apitype.Status, now time.Time) {
	for i, a := range st.Accounts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s  %s\n", a.Account, a.State)
		if a.StartError != "" {
			fmt.Fprintf(w, "  cannot start: %s\n", oneLine(a.StartError))
			continue
		}
		switch {
		case a.Error != "" && a.NeedsFix != "":
			fmt.Fprintf(w, "  problem:    %s (waiting will not fix this)\n", oneLine(a.Error))
		case a.Error != "":
			fmt.Fprintf(w, "  problem:    %s\n", oneLine(a.Error))
		case a.NeedsFix != "":
			fmt.Fprintf(w, "  problem:    %s (waiting will not fix this)\n", oneLine(a.NeedsFix))
		}
		outbox := fmt.Sprintf("%d unsent", a.OutboxDepth)
		if a.OutboxDepth > 0 && !a.OldestUnsent.IsZero() {
			outbox += fmt.Sprintf(", oldest %s", ago(a.OldestUnsent, now))
		}
		fmt.Fprintf(w, "  outbox:     %s\n", outbox)
		fmt.Fprintf(w, "  last push:  %s%s\n", ago(a.LastPush, now), errSuffix(a.LastPushError, a.Error))
		listening := ""
		if a.Listening && a.LastPollError == "" {
			listening = " (listening: the server sends new entries as they come)"
		}
		fmt.Fprintf(w, "  last poll:  %s%s%s\n", ago(a.LastPoll, now), listening, errSuffix(a.LastPollError, a.Error))
		fmt.Fprintf(w, "  journal:    cursor %d, %d sent and %d received since start\n", a.Cursor, a.Pushed, a.Received)
		if a.Catching() {
			c := *a.CatchUp
			fmt.Fprintf(w, "  catching up: %s, for %s\n", catchUpText(c.Pages, c.Rows, c.Written, c.RowsPerSecond(now)), shortDuration(now.Sub(c.Since)))
		}
		fmt.Fprintf(w, "  traffic:    %s sent, %s received since start\n", byteSize(a.BytesSent), byteSize(a.BytesReceived))
		if !a.FailingSince.IsZero() {
			fmt.Fprintf(w, "  failing:    since %s\n", ago(a.FailingSince, now))
		}
		if a.Stalled != "" {
			fmt.Fprintf(w, "  stalled:    %s\n", oneLine(a.Stalled))
		}
		if a.Lagging != nil {
			fmt.Fprintf(w, "  lagging:    %s\n", lagText(*a.Lagging, now))
		}
		if a.PollFailures > 0 {
			fmt.Fprintf(w, "  receiving:  %d failures in a row, next try %s (sending goes on)\n", a.PollFailures, ago(a.PollBackoffUntil, now))
		}
		if a.PushFailures > 0 {
			fmt.Fprintf(w, "  sending:    %d failures in a row, next try %s (receiving goes on)\n", a.PushFailures, ago(a.PushBackoffUntil, now))
		}
		if a.Failures > 0 && a.PollFailures == 0 && a.PushFailures == 0 {
			fmt.Fprintf(w, "  backoff:    %d failures in a row, next try %s\n", a.Failures, ago(a.BackoffUntil, now))
		}
		if len(a.Held) > 0 {
			fmt.Fprintf(w, "  refused by the server (%d, each tried again by itself; the others are sent):\n", len(a.Held))
			for _, h := range a.Held {
				fmt.Fprintf(w, "    %s: %s; refused %d times, next try %s\n", h.MsgID, oneLine(h.Reason), h.Attempts, ago(h.RetryAt, now))
			}
		}
		if a.LocalError != "" {
			fmt.Fprintf(w, "  state:      %s\n", a.LocalError)
		}
		if a.Clone != "" {
			fmt.Fprintf(w, "  device id:  %s: %s\n", a.DeviceID, oneLine(a.Clone))
		}
		if !a.ResetAt.IsZero() {
			fmt.Fprintf(w, "  reset:      the server's journal went backwards %s; what it lacked was queued again\n", ago(a.ResetAt, now))
		}
		if len(a.Skipped) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(a.Skipped)) {
				parts = append(parts, fmt.Sprintf("%d %s", a.Skipped[k], k))
			}
			fmt.Fprintf(w, "  skipped:    %s (journal entries this device cannot use)\n", strings.Join(parts, ", "))
		}
		if a.Unapplied > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(a.UnappliedReasons)) {
				parts = append(parts, fmt.Sprintf("%d %s", a.UnappliedReasons[k], k))
			}
			fmt.Fprintf(w, "  not applied yet: %s (kept, tried again on `chatsync sync`)\n", strings.Join(parts, ", "))
			if a.UnappliedHint != "" {
				fmt.Fprintf(w, "    %s\n", a.UnappliedHint)
			}
		}
		if a.Waiting > 0 {
			fmt.Fprintf(w, "  waiting:    %d files being written\n", a.Waiting)
		}
		if len(a.Rejected) > 0 {
			fmt.Fprintf(w, "  not replicated (%d):\n", len(a.Rejected))
			for _, r := range a.Rejected {
				fmt.Fprintf(w, "    %s: %s\n", r.Path, oneLine(r.Reason))
			}
		}
	}
	if len(st.Accounts) == 0 {
		fmt.Fprintln(w, "no accounts in the config")
	}
	if st.ConfigError != "" {
		fmt.Fprintf(w, "\nconfig %s was NOT reloaded; the daemon runs on the previous config. Fix:\n", st.ConfigPath)
		for _, p := range st.ConfigProblems {
			if !p.Warning {
				fmt.Fprintf(w, "  line %d: %s: %s\n", p.Line, p.Key, oneLine(p.Message))
			}
		}
		if len(st.ConfigProblems) == 0 {
			fmt.Fprintf(w, "  %s\n", oneLine(st.ConfigError))
		}
	}
	if st.ConfigError == "" {
		for _, p := range st.ConfigProblems {
			if p.Warning {
				fmt.Fprintf(w, "\nwarning: %s: %s\n", p.Key, oneLine(p.Message))
			}
		}
	}
	if st.RestartNeeded != "" {
		fmt.Fprintf(w, "\nrestart needed: %s\n", st.RestartNeeded)
	}
	fmt.Fprintf(w, "\nchatsync %s, device %s, up %s\n", st.Version, st.DeviceID, shortDuration(time.Duration(st.UptimeSeconds*float64(time.Second))))
}

// lagText says which device is furthest behind this one: "laptop
// (1a2b3c4d) has not applied 12 of this device's messages since 3 days
// ago".
func lagText(l apitype.Lag, now time.Time) string {
	msgs := "messages"
	if l.Behind == 1 {
		msgs = "message"
	}
	since := ago(l.Since, now)
	if d := now.Sub(l.Since); d > 24*time.Hour {
		since = days(d) + " ago"
	}
	return fmt.Sprintf("%s has not applied %d of this device's %s since %s", deviceLabel(apitype.SyncDevice{DeviceID: l.DeviceID, Name: l.Name}), l.Behind, msgs, since)
}

// byteSize writes n bytes in SI units: "512 B", "12.3 kB", "4.5 MB".
func byteSize(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		f /= 1000
		if f < 1000 || unit == "TB" {
			return fmt.Sprintf("%.1f %s", f, unit)
		}
	}
	return ""
}

// errSuffix marks a failed step; the error itself is left out when the
// problem line above already says it.
func errSuffix(e, problem string) string {
	if e == "" {
		return ""
	}
	if strings.Contains(problem, e) {
		return " (failed: see problem)"
	}
	return " (failed: " + oneLine(e) + ")"
}
