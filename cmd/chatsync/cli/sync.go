package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/localclient"
)

func newSyncCmd(g *globals) *cobra.Command {
	var wait, asJSON bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "sync",
		Short: "Push and poll now",
		Long: `sync asks the daemon to send what its outbox holds and to fetch what other
devices wrote, now rather than at the next poll.

With --wait it follows the daemon until every account (or the one given with
--account) has an empty outbox and has polled the journal after the request:
a progress bar with counts and an ETA on a terminal, one line per change
otherwise (on stderr), and a summary on stdout.`,
		Example: "  chatsync sync\n  chatsync sync --wait\n  chatsync sync --wait --timeout 10m --account alice@example.com",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			lc, err := g.localClient()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 30*time.Second)
			res, err := lc.SyncNow(ctx)
			cancel()
			if err != nil {
				return daemonError(err)
			}
			if !wait {
				if asJSON {
					return printJSON(g.stdout, res)
				}
				fmt.Fprintln(g.stdout, "sync requested")
				return nil
			}
			ctx, cancel = context.WithTimeout(c.Context(), timeout)
			defer cancel()
			final, err := followSync(ctx, lc, res.Requested, g.stderr)
			if err != nil {
				return err
			}
			res.Accounts = final
			if asJSON {
				return printJSON(g.stdout, res)
			}
			for _, a := range final {
				if a.StartError != "" {
					fmt.Fprintf(g.stdout, "%s: cannot start: %s\n", a.Account, oneLine(a.StartError))
					continue
				}
				fmt.Fprintf(g.stdout, "%s: caught up (cursor %d, %d sent, %d received since start)\n", a.Account, a.Cursor, a.Pushed, a.Received)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait until caught up, showing progress")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait, give up after this long")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable: fields are only added)")
	return c
}

// followSync polls the daemon's status until the accounts are caught up
// with a sync requested at t, reporting progress on w.
func followSync(ctx context.Context, lc *localclient.Client, t time.Time, w io.Writer) ([]apitype.AccountStatus, error) {
	tty := isTerminal(w)
	start := time.Now()
	total, last := -1, ""
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := lc.Status(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, daemonError(err)
		}
		done, depth, polled, running := true, 0, 0, 0
		var problems []string
		for _, a := range st.Accounts {
			if a.StartError != "" {
				continue
			}
			running++
			depth += a.OutboxDepth
			if a.LastPoll.After(t) {
				polled++
			}
			if !a.CaughtUp(t) {
				done = false
				for _, e := range []string{a.LastPushError, a.LastPollError} {
					if e != "" {
						problems = append(problems, a.Account+": "+oneLine(e))
					}
				}
			}
		}
		total = max(total, depth)
		line := progressLine(total, depth, polled, running, time.Since(start), problems)
		if tty {
			fmt.Fprintf(w, "\r\x1b[K%s", line)
		} else if line != last {
			fmt.Fprintln(w, line)
		}
		last = line
		if done {
			if tty {
				fmt.Fprintln(w)
			}
			for _, a := range st.Accounts {
				if a.Unapplied > 0 {
					hint := a.UnappliedHint
					if hint == "" {
						hint = "see `chatsync status`"
					}
					return st.Accounts, fmt.Errorf("%s: caught up, but %d journal entries cannot be applied yet: %s", a.Account, a.Unapplied, hint)
				}
			}
			return st.Accounts, nil
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	if tty {
		fmt.Fprintln(w)
	}
	return nil, fmt.Errorf("not caught up yet after waiting: %s (see `chatsync status`)", strings.TrimSpace(last))
}

// progressLine draws "[#####-----] 40/100 sent, 1/2 polled, ETA 3s".
func progressLine(total, depth, polled, running int, elapsed time.Duration, problems []string) string {
	sent := total - depth
	const width = 20
	filled := width
	if total > 0 {
		filled = width * sent / total
	}
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
	s := fmt.Sprintf("%s %d/%d sent, %d/%d accounts polled", bar, sent, total, polled, running)
	if sent > 0 && depth > 0 {
		eta := time.Duration(float64(elapsed) / float64(sent) * float64(depth))
		s += ", ETA " + shortDuration(eta)
	}
	if len(problems) > 0 {
		s += " — retrying: " + strings.Join(problems, "; ")
	}
	return s
}
