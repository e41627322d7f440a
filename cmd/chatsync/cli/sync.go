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
// with a sync requested at t, reporting progress on w. It gives up at once
// on an account that waiting will not help (apitype.AccountStatus.WaitWontHelp).
func followSync(ctx context.Context, lc *localclient.Client, t time.Time, w io.Writer) ([]apitype.AccountStatus, error) {
	tty := isTerminal(w)
	start := time.Now()
	total, last, printed := -1, "", ""
	var printedAt time.Time
	printedCatching := -1
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	endLine := func() {
		if tty && last != "" {
			fmt.Fprintln(w)
		}
	}
	for {
		st, err := lc.Status(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			endLine()
			return nil, daemonError(err)
		}
		var p syncProgress
		done := true
		for _, a := range st.Accounts {
			if why := a.WaitWontHelp(t); why != "" {
				endLine()
				return st.Accounts, fmt.Errorf("%s: %s", a.Account, oneLine(why))
			}
			p.running++
			p.depth += a.OutboxDepth
			if a.LastPoll.After(t) && a.LastPollError == "" {
				p.polled++
			}
			if a.Catching() {
				c := *a.CatchUp
				p.catching++
				p.pages += c.Pages
				p.rows += c.Rows
				p.written += c.Written
				p.rate += c.RowsPerSecond(time.Now())
			}
			if !a.CaughtUp(t) {
				done = false
				// Only what failed since the request: an older error may
				// be gone at the next try, which the request brought on.
				if a.LastPushError != "" && a.LastPush.After(t) {
					p.problems = append(p.problems, a.Account+": sending: "+oneLine(a.LastPushError))
				}
				if a.LastPollError != "" && a.LastPoll.After(t) {
					p.problems = append(p.problems, a.Account+": receiving: "+oneLine(a.LastPollError))
				}
			}
		}
		total = max(total, p.depth)
		p.total = total
		line := p.line(time.Since(start))
		switch {
		case tty:
			fmt.Fprintf(w, "\r\x1b[K%s", line)
		case line != printed && time.Since(start) >= time.Second && (time.Since(printedAt) >= time.Second || p.catching != printedCatching):
			// One line per change, at most one a second while a
			// catch-up's counts change all the time; none for a sync
			// that ends (or fails) within a second, which says only
			// its result.
			fmt.Fprintln(w, line)
			printed, printedAt, printedCatching = line, time.Now(), p.catching
		}
		last = line
		if done {
			endLine()
			for _, a := range st.Accounts {
				if a.Unapplied > 0 {
					hint := a.UnappliedHint
					if hint == "" {
						hint = "see `chatsync status`"
					}
					entries := "entries cannot"
					if a.Unapplied == 1 {
						entries = "entry cannot"
					}
					return st.Accounts, fmt.Errorf("%s: caught up, but %d journal %s be applied yet: %s", a.Account, a.Unapplied, entries, hint)
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
	endLine()
	return nil, fmt.Errorf("not caught up yet after waiting: %s (see `chatsync status`)", strings.TrimSpace(last))
}

// syncProgress is what one look at the status says of a sync.
type syncProgress struct {
	total, depth, polled, running int
	// catching counts the accounts reading the journal to its end, and
	// pages, rows, written and rate (rows per second) add up theirs.
	catching             int
	pages, rows, written int64
	rate                 float64
	problems             []string
}

// line draws "[#####-----] 40/100 sent, 1/2 polled, ETA 3s", and while
// the journal is read "receiving: 1200 rows in 3 pages, 1180 messages
// written, 800 rows/s".
func (p syncProgress) line(elapsed time.Duration) string {
	sent := p.total - p.depth
	const width = 20
	// Done are the entries sent and the accounts polled since the request.
	filled := 0
	if n := p.total + p.running; n > 0 {
		filled = width * (sent + p.polled) / n
	}
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
	s := fmt.Sprintf("%s %d/%d sent, %d/%d accounts polled", bar, sent, p.total, p.polled, p.running)
	if sent > 0 && p.depth > 0 {
		eta := time.Duration(float64(elapsed) / float64(sent) * float64(p.depth))
		s += ", ETA " + shortDuration(eta)
	}
	if p.catching > 0 {
		s += ", " + catchUpText(p.pages, p.rows, p.written, p.rate)
	}
	if len(p.problems) > 0 {
		s += " — retrying: " + strings.Join(p.problems, "; ")
	}
	return s
}

// catchUpText says how far a catch-up got.
func catchUpText(pages, rows, written int64, rate float64) string {
	return fmt.Sprintf("receiving: %d rows in %d pages, %d messages written, %d rows/s", rows, pages, written, int(rate))
}
