package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/localclient"
)

// devices and verify ask the daemon about the account's other chatsync
// devices and about the journal (SPEC §8b); the daemon does the work.

func init() { extraCommands = append(extraCommands, newDevicesCmd, newVerifyCmd) }

// refreshWithin is how recently a device must have been heard from for
// `devices --refresh` to wait for its answer: one silent for longer is
// taken to be switched off or gone.
const refreshWithin = 7 * 24 * time.Hour

func newDevicesCmd(g *globals) *cobra.Command {
	var asJSON, refresh bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "devices",
		Short: "List the account's chatsync devices and how far behind this one each is",
		Long: `devices lists every chatsync device of the account that the journal shows,
this one first: its name (device_name of its config, by default its host
name), the start of its id, its version, when it was last heard from, the
keys it holds, and how many of this device's messages it had not applied
when it last reported ("3 behind"). A device that never reported (an older
chatsync) shows "behind: unknown".

Devices report when they start and now and then; --refresh asks them all
for a fresh report and waits (up to --timeout) until each one heard from in
the last 7 days has answered, which it does at its next poll. A device that
does not answer in time is named on stderr; the list is printed either way.

--json prints {"account", "devices": [{"device_id", "name", "version",
"last_seen", "key_ids", "behind", "self", ...}]}, an array of those when the
config has several accounts and --account is not given.`,
		Example: "  chatsync devices\n  chatsync devices --refresh\n  chatsync devices --json | jq '.devices[] | select(.behind > 0) | .name'",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			lc, err := g.localClient()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 30*time.Second)
			defer cancel()
			var devs *localclient.Devices
			var silent []apitype.SyncDevice
			if refresh {
				t, err := lc.RefreshDevices(ctx)
				if err != nil {
					return daemonError(err)
				}
				wctx, wcancel := context.WithTimeout(c.Context(), timeout)
				defer wcancel()
				devs, silent, err = waitForReports(wctx, lc, t, func(n int) {
					if !asJSON {
						fmt.Fprintf(g.stderr, "asked %d other device(s) for a fresh report; waiting up to %s for their next poll\n", n, timeout)
					}
				})
				if err != nil {
					return daemonError(err)
				}
				if len(silent) > 0 {
					defer fmt.Fprintln(g.stderr, silentLine(silent, timeout))
				}
			} else {
				if devs, err = lc.Devices(ctx); err != nil {
					return daemonError(err)
				}
			}
			if asJSON {
				return printJSON(g.stdout, devs)
			}
			printSyncDevices(g.stdout, devs.Accounts, silent, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&refresh, "refresh", false, "ask every device for a fresh report and wait for the answers")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --refresh, wait at most this long")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable: fields are only added)")
	return c
}

// waitForReports polls the device list until every other device heard
// from within refreshWithin has reported after t, or ctx ends. It returns
// the last list and the devices that did not answer; asked is told once
// how many are waited for.
func waitForReports(ctx context.Context, lc *localclient.Client, t time.Time, asked func(int)) (*localclient.Devices, []apitype.SyncDevice, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	told := false
	var last *localclient.Devices
	for {
		devs, err := lc.Devices(ctx)
		if err != nil {
			if last != nil && ctx.Err() != nil {
				break // the timeout: say who is silent
			}
			return nil, nil, err
		}
		last = devs
		silent := unanswered(devs.Accounts, t)
		if !told {
			asked(len(silent))
			told = true
		}
		if len(silent) == 0 {
			return devs, nil, nil
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	return last, unanswered(last.Accounts, t), nil
}

// unanswered lists the other devices heard from within refreshWithin of
// t that have not reported since t. A device whose rows this one cannot
// open, and so has never read a report of, is not waited for: its answer
// could not be read either.
func unanswered(accounts []apitype.Devices, t time.Time) []apitype.SyncDevice {
	var out []apitype.SyncDevice
	for _, a := range accounts {
		for _, d := range a.Devices {
			if d.Self || d.LastSeen.IsZero() || t.Sub(d.LastSeen) > refreshWithin {
				continue
			}
			if d.Reported.IsZero() && len(d.MissingKeys) > 0 {
				continue
			}
			if !d.Reported.After(t) {
				out = append(out, d)
			}
		}
	}
	return out
}

// silentLine names the devices that did not answer a refresh.
func silentLine(silent []apitype.SyncDevice, waited time.Duration) string {
	var names []string
	never := true
	for _, d := range silent {
		names = append(names, deviceLabel(d))
		never = never && d.Reported.IsZero()
	}
	why := "they answer at their next poll: not running?"
	if never {
		why = "they never sent a report: an older chatsync, or not running?"
	}
	return fmt.Sprintf("no fresh report within %s from %s: %s", waited, strings.Join(names, ", "), why)
}

// shortID is the first 8 hex digits of a device's uuid.
func shortID(id string) string {
	id = strings.TrimPrefix(strings.ToLower(id), "urn:uuid:")
	if len(id) > 8 {
		id = id[:8]
	}
	return id
}

// deviceLabel is "laptop (1a2b3c4d)".
func deviceLabel(d apitype.SyncDevice) string {
	name := d.Name
	if name == "" {
		name = "unnamed"
	}
	return name + " (" + shortID(d.DeviceID) + ")"
}

// printSyncDevices writes one line per chatsync device, this one first,
// aligned; silent are the devices that did not answer a refresh just
// made.
func printSyncDevices(w io.Writer, accounts []apitype.Devices, silent []apitype.SyncDevice, now time.Time) {
	quiet := map[string]bool{}
	for _, d := range silent {
		quiet[d.DeviceID] = true
	}
	for i, a := range accounts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		n := len(a.Devices)
		plural := "s"
		if n == 1 {
			plural = ""
		}
		fmt.Fprintf(w, "%s: %d chatsync device%s\n", a.Account, n, plural)
		var rows [][]string
		for _, d := range a.Devices {
			noAnswer := quiet[d.DeviceID] || !a.Refreshed.IsZero() && a.Refreshed.After(d.Reported) && now.Sub(a.Refreshed) > answerWithin
			rows = append(rows, []string{orDash(d.Name), shortID(d.DeviceID), orDash(d.Version), heard(d, now), keysText(d.KeyIDs), devicePoint(d, noAnswer, now)})
		}
		printTable(w, "  ", rows)
	}
	if len(accounts) == 0 {
		fmt.Fprintln(w, "no account runs: see `chatsync status`")
	}
}

// heard says when a device was last heard from: "2m ago", and "not heard
// from for 12 days" once it is more than a day.
func heard(d apitype.SyncDevice, now time.Time) string {
	switch {
	case d.Self:
		return "(this device)"
	case d.LastSeen.IsZero():
		return "never heard from"
	case now.Sub(d.LastSeen) > 24*time.Hour:
		return "not heard from for " + days(now.Sub(d.LastSeen))
	}
	return ago(d.LastSeen, now)
}

// days is d in whole days: "1 day", "12 days".
func days(d time.Duration) string {
	n := int(d / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return strconv.Itoa(n) + " days"
}

func keysText(ids []string) string {
	if len(ids) == 0 {
		return "keys: -"
	}
	return "keys " + strings.Join(ids, ",")
}

// answerWithin is how long after a refresh a running device has
// answered it (at its next poll), and reportDue how long after it applied
// something it says so by itself (the engine's ReportInterval and a
// margin).
const (
	answerWithin = 2 * time.Minute
	reportDue    = 65 * time.Minute
)

// devicePoint says how far behind this device another one is, and which
// of its rows this device cannot open. Versions written after the device
// last said how far it had applied (Unconfirmed) are not taken for
// missing there while it may still say so: a running device reports
// within reportDue, or at once when asked. noAnswer marks a device that
// did not answer a refresh.
func devicePoint(d apitype.SyncDevice, noAnswer bool, now time.Time) string {
	var parts []string
	switch {
	case d.Self:
	case d.Behind < 0:
		parts = append(parts, "behind: unknown (no report)")
	case d.Behind == 0:
		parts = append(parts, "up to date")
	case d.Behind == d.Unconfirmed && !noAnswer && now.Sub(d.AppliedAt) < reportDue:
		parts = append(parts, fmt.Sprintf("up to date as of %s; %d newer not confirmed yet", ago(d.AppliedAt, now), d.Unconfirmed))
	default:
		s := strconv.Itoa(d.Behind) + " behind"
		switch {
		case noAnswer:
			s += ", did not answer a refresh: not running?"
		case !d.AppliedAt.IsZero() && now.Sub(d.AppliedAt) > time.Minute:
			s += ", as of its report " + ago(d.AppliedAt, now)
		}
		parts = append(parts, s)
	}
	if len(d.MissingKeys) > 0 {
		parts = append(parts, "sealed under a key this device lacks: "+strings.Join(d.MissingKeys, ", "))
	}
	return strings.Join(parts, "; ")
}

func newVerifyCmd(g *globals) *cobra.Command {
	var asJSON, repair, progress bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "verify",
		Short: "Compare the store with the journal; exit 0 only when they agree",
		Long: `verify has the daemon read the whole journal, keep the latest version of every
message and compare it with the message store here. It counts the messages
that are in the journal but missing here, here but never sent, different,
that this device cannot decrypt, and deleted here but alive in the journal,
and names up to 10 of them. It changes nothing.

--repair also fixes what it can: it writes here what is missing or older,
and queues what the journal lacks to be sent. It shows its progress on
stderr (--progress does for a plain verify too; both do on a terminal).
Changes still queued to be sent are not differences.

The journal is read from its start, so on a large account this takes a
while; Ctrl-C stops it. With several accounts, give --account.

Exit status: 0 when the store and the journal agree (after --repair: when
they agree after it), 1 when they do not or the verify failed.`,
		Example: "  chatsync verify\n  chatsync verify --repair\n  chatsync verify --json | jq .missing_here",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			lc, err := g.localClient()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), timeout)
			defer cancel()
			var show func(apitype.VerifyProgress)
			var pw *progressWriter
			if progress || (!asJSON && (repair || isTerminal(g.stderr))) {
				pw = &progressWriter{w: g.stderr, tty: isTerminal(g.stderr)}
				show = pw.show
			}
			res, err := lc.Verify(ctx, repair, show)
			pw.end()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("the verify did not end within %s: raise --timeout", timeout)
				}
				return daemonError(err)
			}
			if asJSON {
				if err := printJSON(g.stdout, res); err != nil {
					return err
				}
			} else {
				printVerify(g.stdout, res)
			}
			if !res.InSync {
				return exitError{ExitFailure, errors.New(notInSyncLine(res))}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&repair, "repair", false, "write here what is missing or older, queue what the journal lacks")
	c.Flags().BoolVar(&progress, "progress", false, "show progress on stderr")
	c.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable: fields are only added)")
	return c
}

// progressWriter shows a verify's progress: one line redrawn on a
// terminal, else a line per phase and at most one a second.
type progressWriter struct {
	w       io.Writer
	tty     bool
	last    string
	phase   string
	printed time.Time
}

func (p *progressWriter) show(v apitype.VerifyProgress) {
	line := progressLine(v)
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.last = line
		return
	}
	if v.Phase != p.phase || time.Since(p.printed) >= time.Second {
		fmt.Fprintln(p.w, line)
		p.phase, p.printed = v.Phase, time.Now()
	}
}

// end finishes the redrawn line.
func (p *progressWriter) end() {
	if p != nil && p.tty && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

// progressLine is "journal: 12,000 rows read (3 pages)".
func progressLine(v apitype.VerifyProgress) string {
	switch v.Phase {
	case "journal":
		return fmt.Sprintf("journal: %s read (%s)", count(int(v.Rows), "row"), count(int(v.Pages), "page"))
	case "store":
		if v.Total > 0 {
			return fmt.Sprintf("store: %s of %s messages compared", thousands(int64(v.Done)), thousands(int64(v.Total)))
		}
		return fmt.Sprintf("store: %s messages read", thousands(int64(v.Done)))
	case "repair":
		if v.Total == 0 {
			return "repair: nothing it can fix"
		}
		return fmt.Sprintf("repair: %s of %s fixed", thousands(int64(v.Done)), thousands(int64(v.Total)))
	}
	return fmt.Sprintf("%s: %s rows, %d of %d", v.Phase, thousands(v.Rows), v.Done, v.Total)
}

// thousands writes n with commas: 12,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printTable writes rows with their columns aligned, two spaces apart,
// each line after indent and without trailing blanks.
func printTable(w io.Writer, indent string, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// verifyKinds are the differences a verify counts, in the order shown.
var verifyKinds = []struct {
	kind, label string
	count       func(*apitype.VerifyResult) int
}{
	{apitype.VerifyMissingHere, "missing here", func(r *apitype.VerifyResult) int { return r.MissingHere }},
	{apitype.VerifyNeverPushed, "never pushed", func(r *apitype.VerifyResult) int { return r.NeverPushed }},
	{apitype.VerifyDiffers, "differs", func(r *apitype.VerifyResult) int { return r.Differs }},
	{apitype.VerifyUndecryptable, "undecryptable", func(r *apitype.VerifyResult) int { return r.Undecryptable }},
	{apitype.VerifyDeletedHere, "deleted here, alive there", func(r *apitype.VerifyResult) int { return r.DeletedHereAliveThere }},
}

// countsLine is "1,234 messages in the journal, 1,230 here". The
// journal's count includes the messages deleted since, so when it is in
// sync and the two differ it says so, lest they look like a difference.
func countsLine(r *apitype.VerifyResult) string {
	s := count(r.Messages, "message") + " in the journal"
	if r.InSync && r.Messages != r.Local {
		s += " (deleted ones too)"
	}
	return s + ", " + thousands(int64(r.Local)) + " here"
}

// count is "1 message", "1,234 messages".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(int64(n)) + " " + noun + "s"
}

// notInSyncLine is the one line on stderr for a verify that found
// differences: what they are, by kind.
func notInSyncLine(r *apitype.VerifyResult) string {
	var parts []string
	for _, k := range verifyKinds {
		if n := k.count(r); n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", thousands(int64(n)), k.label))
		}
	}
	msg := r.Account + ": not in sync"
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	if r.Hint != "" {
		msg += ": " + oneLine(r.Hint)
	}
	return msg
}

// printVerify writes the human form of a verify's result.
func printVerify(w io.Writer, r *apitype.VerifyResult) {
	if r.Applied > 0 || r.Queued > 0 {
		fmt.Fprintf(w, "repaired: %s written here, %s queued to be sent\n", thousands(int64(r.Applied)), thousands(int64(r.Queued)))
	}
	if r.InSync {
		fmt.Fprintf(w, "in sync: %s\n", countsLine(r))
	} else {
		fmt.Fprintf(w, "not in sync: %s\n", countsLine(r))
		var rows [][]string
		for _, k := range verifyKinds {
			if n := k.count(r); n > 0 {
				rows = append(rows, []string{k.label + ":", thousands(int64(n))})
			}
		}
		printTable(w, "  ", rows)
		if len(r.UndecryptableKeys) > 0 {
			var keys []string
			for _, id := range slices.Sorted(maps.Keys(r.UndecryptableKeys)) {
				name := id
				if name == "" {
					name = "no chatsync key"
				}
				keys = append(keys, fmt.Sprintf("%s: %s", name, thousands(int64(r.UndecryptableKeys[id]))))
			}
			fmt.Fprintf(w, "  undecryptable rows by key: %s\n", strings.Join(keys, ", "))
		}
		if len(r.Examples) > 0 {
			fmt.Fprintln(w, "examples:")
			var rows [][]string
			for _, e := range r.Examples[:min(len(r.Examples), 10)] {
				kind := e.Kind
				if e.KeyID != "" {
					kind += " (key " + e.KeyID + ")"
				}
				what := e.MsgID
				if what == "" && e.JournalID > 0 {
					what = fmt.Sprintf("journal row %d", e.JournalID) // a row that does not open has no msgid to show
				}
				rows = append(rows, []string{orDash(what), kind})
			}
			printTable(w, "  ", rows)
		}
	}
	if r.Pending > 0 {
		fmt.Fprintf(w, "%s changes queued here and not sent yet are not counted\n", thousands(int64(r.Pending)))
	}
	if r.Hint != "" {
		fmt.Fprintf(w, "hint: %s\n", oneLine(r.Hint))
	}
}
