package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// accountCmd is the state shared by the `account` subcommands.
type accountCmd struct {
	g      *globals
	asJSON bool
}

func newAccountCmd(g *globals) *cobra.Command {
	a := &accountCmd{g: g}
	c := &cobra.Command{
		Use:   "account ACTION [ARGS]",
		Short: "Use the SIP Account API through the daemon",
		Long: `account calls the SIP Account API (settings.phtml) of an account through the
running daemon, with the daemon's credentials, and prints the reply: tables
for people, or stable JSON with --json. With several accounts in the config,
say which with --account.`,
		Example: `  chatsync account identity
  chatsync account aliases add bob
  chatsync account forwarding set FBUS='<voice-mailbox>' FNOA=+31201234567
  chatsync account dnd on --for 1h
  chatsync account journal get --after-id 100 --decrypt
  chatsync account history --json --account alice@example.com`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown account action %q: run `chatsync account --help` for the list", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			c.Help()
			return usagef("no action given (try `chatsync account identity`)")
		},
	}
	c.PersistentFlags().BoolVar(&a.asJSON, "json", false, "print JSON (stable: fields are only added)")

	get := func(use, short, action string, example string, out func() any, human func(io.Writer, any) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Example: example, Args: noArgs,
			RunE: func(c *cobra.Command, args []string) error {
				v := out()
				if err := a.call(c, action, nil, v); err != nil {
					return err
				}
				return a.print(v, human)
			},
		}
	}

	c.AddCommand(get("identity", "Show the account's identity (get_identity)", "get_identity",
		"  chatsync account identity", func() any { return new(apitype.Identity) }, printIdentity))

	aliases := get("aliases", "List the account's aliases (get_aliases); `aliases add NAME` adds one", "get_aliases",
		"  chatsync account aliases\n  chatsync account aliases add bob", func() any { return new([]string) }, printList("no aliases"))
	aliases.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown aliases action %q: use `chatsync account aliases add NAME`", args[0])
		}
		return nil
	}
	aliases.AddCommand(a.setter("add NAME", "Add an alias: NAME@<the account's domain> (add_alias)", "add_alias",
		"  chatsync account aliases add bob", exactArgs(1), func(c *cobra.Command, args []string) (url.Values, error) {
			return url.Values{"username": {args[0]}}, nil
		}))
	c.AddCommand(aliases)

	c.AddCommand(get("enum", "List the ENUM numbers that reach the account (get_enum)", "get_enum",
		"  chatsync account enum", func() any { return new([]string) }, printList("no ENUM numbers")))
	c.AddCommand(get("history", "Show the calls of the last 14 days (get_history)", "get_history",
		"  chatsync account history\n  chatsync account history --json", func() any { return new(apitype.History) }, printHistory))
	c.AddCommand(get("devices", "List the registered SIP devices (get_devices)", "get_devices",
		"  chatsync account devices", func() any { return new([]apitype.Device) }, printDevices))
	c.AddCommand(get("prepaid", "Show the prepaid balance (get_prepaid)", "get_prepaid",
		"  chatsync account prepaid", func() any { return new(apitype.Prepaid) }, func(w io.Writer, v any) error {
			_, err := fmt.Fprintf(w, "balance  %s\n", money(v.(*apitype.Prepaid).Balance))
			return err
		}))
	c.AddCommand(get("balance-history", "Show the prepaid balance history (get_balance_history)", "get_balance_history",
		"  chatsync account balance-history", func() any { return new([]apitype.BalanceEntry) }, printBalanceHistory))
	c.AddCommand(get("monthly-usage", "Show this month's calls and their price (get_monthly_usage)", "get_monthly_usage",
		"  chatsync account monthly-usage", func() any { return new(apitype.MonthlyUsage) }, func(w io.Writer, v any) error {
			u := v.(*apitype.MonthlyUsage)
			_, err := fmt.Fprintf(w, "calls  %d\nprice  %s\n", u.Calls, money(u.Price))
			return err
		}))

	fwd := get("forwarding", "Show call forwarding (get_call_forwarding); `forwarding set` changes it", "get_call_forwarding",
		"  chatsync account forwarding", func() any { return new(apitype.Forwarding) }, printForwarding)
	fwd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown forwarding action %q: use `chatsync account forwarding set FUNC=TARGET ...`", args[0])
		}
		return nil
	}
	fwd.AddCommand(a.setter("set FUNC=TARGET ...", "Change call forwarding (set_call_forwarding)", "set_call_forwarding",
		`  chatsync account forwarding set FUNC=bob@example.com
  chatsync account forwarding set FBUS='<voice-mailbox>' FNOA='<mobile-number>'
  chatsync account forwarding set FUNC=          # empty: remove the condition

Conditions: FUNC all calls, FNOL not online, FBUS busy, FNOA no answer,
FUNV unavailable. Targets: <voice-mailbox>, <mobile-number>, an address or a
number; an empty target removes the condition; the others are left as they are.`,
		func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("forwarding set needs FUNC=TARGET (conditions FUNC FNOL FBUS FNOA FUNV)")
			}
			return nil
		}, func(c *cobra.Command, args []string) (url.Values, error) {
			q := url.Values{}
			for _, arg := range args {
				k, v, ok := strings.Cut(arg, "=")
				k = strings.ToUpper(strings.TrimSpace(k))
				if !ok || !isForwardKey(k) {
					return nil, usagef("%q: want CONDITION=TARGET with CONDITION one of FUNC FNOL FBUS FNOA FUNV", arg)
				}
				if q.Has(k) {
					return nil, usagef("%s given twice", k)
				}
				q.Set(k, v)
			}
			return q, nil
		}))
	c.AddCommand(fwd)

	c.AddCommand(get("accept-rules", "Show when calls ring, and do-not-disturb (get_accept_rules)", "get_accept_rules",
		"  chatsync account accept-rules", func() any { return new(apitype.AcceptRules) }, printAcceptRules))
	c.AddCommand(get("reject-rules", "List the callers that are always rejected (get_reject_rules)", "get_reject_rules",
		"  chatsync account reject-rules", func() any { return new([]string) }, printList("no reject rules")))
	c.AddCommand(get("voicemail", "Show the voice mailbox (get_voicemail)", "get_voicemail",
		"  chatsync account voicemail\n  chatsync account voicemail --json   # includes the mailbox password", func() any { return new(*apitype.Voicemail) }, printVoicemail))

	var dndFor time.Duration
	dndOn := a.setter("on", "Turn do-not-disturb on, for a while or until `dnd off` (set_dnd_on)", "set_dnd_on",
		"  chatsync account dnd on\n  chatsync account dnd on --for 90m", noArgs,
		func(c *cobra.Command, args []string) (url.Values, error) {
			if dndFor < 0 {
				return nil, usagef("--for %s: want a positive duration such as 30m or 2h", dndFor)
			}
			minutes := int64((dndFor + time.Minute - 1) / time.Minute)
			return url.Values{"duration": {strconv.FormatInt(minutes, 10)}}, nil
		})
	dndOn.Flags().DurationVar(&dndFor, "for", 0, "turn do-not-disturb off again after `DURATION`, such as 90m or 2h (rounded up to whole minutes; default: until dnd off)")
	c.AddCommand(onOff("dnd", "Turn do-not-disturb on or off", dndOn,
		a.setter("off", "Turn do-not-disturb off (set_dnd_off)", "set_dnd_off", "  chatsync account dnd off", noArgs, nil)))
	c.AddCommand(onOff("privacy", "Hide or show your caller id on outgoing calls",
		a.setter("on", "Hide the caller id on outgoing calls (set_privacy_on)", "set_privacy_on", "  chatsync account privacy on", noArgs, nil),
		a.setter("off", "Show the caller id on outgoing calls (set_privacy_off)", "set_privacy_off", "  chatsync account privacy off", noArgs, nil)))

	c.AddCommand(a.journalCmd())
	return c
}

func isForwardKey(k string) bool {
	switch k {
	case "FUNC", "FNOL", "FBUS", "FNOA", "FUNV":
		return true
	}
	return false
}

// onOff is a noun with the verbs on and off.
func onOff(name, short string, on, off *cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use: name + " on|off", Short: short,
		Example: fmt.Sprintf("  chatsync account %s on\n  chatsync account %s off", name, name),
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("%s %s: want on or off", name, args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return usagef("%s: say on or off", name) },
	}
	c.AddCommand(on, off)
	return c
}

// setter is a write action that prints the server's confirmation.
func (a *accountCmd) setter(use, short, action, example string, args cobra.PositionalArgs, params func(*cobra.Command, []string) (url.Values, error)) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Example: example, Args: args,
		RunE: func(c *cobra.Command, args []string) error {
			var q url.Values
			if params != nil {
				var err error
				if q, err = params(c, args); err != nil {
					return err
				}
			}
			var res apitype.Confirmation
			if err := a.call(c, action, q, &res); err != nil {
				return err
			}
			return a.print(&res, func(w io.Writer, v any) error {
				_, err := fmt.Fprintln(w, orDash(v.(*apitype.Confirmation).Message))
				return err
			})
		},
	}
}

func (a *accountCmd) call(c *cobra.Command, action string, q url.Values, out any) error {
	lc, err := a.g.localClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context(), 2*time.Minute)
	defer cancel()
	return daemonError(lc.Account(ctx, action, q, out))
}

func (a *accountCmd) print(v any, human func(io.Writer, any) error) error {
	if a.asJSON {
		return printJSON(a.g.stdout, v)
	}
	return human(a.g.stdout, v)
}

func table(w io.Writer, f func(tw *tabwriter.Writer)) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	f(tw)
	return tw.Flush()
}

func printIdentity(w io.Writer, v any) error {
	id := v.(*apitype.Identity)
	return table(w, func(tw *tabwriter.Writer) {
		for _, kv := range [][2]string{
			{"address", id.SIPAddress}, {"name", strings.TrimSpace(id.FirstName + " " + id.LastName)},
			{"email", id.Email}, {"caller id", id.PSTNCallerID}, {"mobile", id.MobileNumber},
			{"timezone", id.Timezone}, {"no answer after", fmt.Sprintf("%ds", id.NoAnswerTimeout)},
			{"quick dial", id.QuickDial},
		} {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], orDash(kv[1]))
		}
	})
}

func printList(empty string) func(io.Writer, any) error {
	return func(w io.Writer, v any) error {
		list := *v.(*[]string)
		if len(list) == 0 {
			_, err := fmt.Fprintln(w, empty)
			return err
		}
		for _, s := range list {
			fmt.Fprintln(w, s)
		}
		return nil
	}
}

func printHistory(w io.Writer, v any) error {
	h := v.(*apitype.History)
	if len(h.Placed)+len(h.Received) == 0 {
		_, err := fmt.Fprintln(w, "no calls in the last 14 days")
		return err
	}
	return table(w, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "DIRECTION\tPARTY\tSTART\tDURATION\tSTATUS\tPRICE\tMEDIA")
		row := func(dir string, c apitype.Call) {
			party := c.RemoteParty
			if c.DisplayName != "" {
				party = c.DisplayName + " <" + c.RemoteParty + ">"
			}
			price := "-"
			if c.Price != "" {
				price = money(c.Price)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", dir, party, c.StartTime, shortDuration(time.Duration(c.Duration)*time.Second),
				c.Status, price, strings.Join(c.Media, ","))
		}
		for _, c := range h.Placed {
			row("placed", c)
		}
		for _, c := range h.Received {
			row("received", c)
		}
	})
}

func printDevices(w io.Writer, v any) error {
	list := *v.(*[]apitype.Device)
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no registered devices")
		return err
	}
	return table(w, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "CONTACT\tPUBLIC\tEXPIRES\tTRANSPORT\tUSER AGENT")
		for _, d := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(d.Contact), orDash(d.PublicContact), orDash(d.Expires), orDash(d.Transport), orDash(d.UserAgent))
		}
	})
}

func printBalanceHistory(w io.Writer, v any) error {
	list := *v.(*[]apitype.BalanceEntry)
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no balance history")
		return err
	}
	return table(w, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "DATE\tACTION\tDESCRIPTION\tVALUE\tBALANCE")
		for _, e := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(e.Date), orDash(e.Action), orDash(e.Description), money(e.Value), money(e.Balance))
		}
	})
}

var forwardNames = []struct{ key, name string }{
	{"FUNC", "all calls"}, {"FNOL", "not online"}, {"FBUS", "busy"}, {"FNOA", "no answer"}, {"FUNV", "unavailable"},
}

func printForwarding(w io.Writer, v any) error {
	f := *v.(*apitype.Forwarding)
	return table(w, func(tw *tabwriter.Writer) {
		for _, n := range forwardNames {
			target := f[n.key]
			if target == "" {
				target = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", n.key, n.name, target)
		}
	})
}

func daysName(mask int) string {
	switch mask {
	case 127:
		return "every day"
	case 31:
		return "weekdays"
	case 96:
		return "weekend"
	}
	var out []string
	for i, d := range []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"} {
		if mask&(1<<i) != 0 {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return strconv.Itoa(mask)
	}
	return strings.Join(out, ",")
}

func printAcceptRules(w io.Writer, v any) error {
	r := v.(*apitype.AcceptRules)
	dnd := "off"
	if t := r.Temporary; t != nil && len(t.Groups) > 0 && t.Groups[0] == "nobody" {
		dnd = "on, until switched off"
		if t.Duration > 0 {
			dnd = "on, for " + shortDuration(time.Duration(t.Duration)*time.Minute)
		}
	}
	fmt.Fprintf(w, "do not disturb: %s\n", dnd)
	if len(r.Groups) > 0 {
		fmt.Fprintf(w, "groups: %s\n", strings.Join(r.Groups, ", "))
	}
	if len(r.Persistent) == 0 {
		_, err := fmt.Fprintln(w, "no persistent rules: calls from everybody ring")
		return err
	}
	masks := make([]int, 0, len(r.Persistent))
	for m := range r.Persistent {
		masks = append(masks, m)
	}
	sort.Ints(masks)
	return table(w, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "DAYS\tFROM\tTO\tRING FOR")
		for _, m := range masks {
			p := r.Persistent[m]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", daysName(m), orDash(p.Start), orDash(p.Stop), strings.Join(p.Groups, ","))
		}
	})
}

func printVoicemail(w io.Writer, v any) error {
	vm := *v.(**apitype.Voicemail)
	if vm == nil {
		_, err := fmt.Fprintln(w, "no voice mailbox")
		return err
	}
	return table(w, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "mailbox\t%s\n", orDash(vm.Mailbox))
		fmt.Fprintf(tw, "account\t%s\n", orDash(vm.Account))
		fmt.Fprintf(tw, "name\t%s\n", orDash(vm.Name))
		fmt.Fprintf(tw, "email\t%s\n", orDash(vm.Email))
		fmt.Fprintf(tw, "options\t%s\n", orDash(voicemailOptions(vm.Options)))
		fmt.Fprintf(tw, "password\t(hidden: --json shows it)\n")
	})
}

// voicemailOptions shows the server's Options value for people: an
// object as "key=value" pairs in key order ("delete=false"), a string (old
// servers) as it is, anything else as its JSON.
func voicemailOptions(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return oneLine(s)
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return oneLine(string(raw))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := string(m[k])
		var str string
		if strings.HasPrefix(v, `"`) && json.Unmarshal(m[k], &str) == nil {
			v = str
		}
		parts = append(parts, oneLine(k)+"="+oneLine(v))
	}
	return strings.Join(parts, " ")
}

func (a *accountCmd) journalCmd() *cobra.Command {
	var afterID int64
	var allDevices, decrypt bool
	get := &cobra.Command{
		Use:   "get",
		Short: "Show the raw journal rows of other devices (get_journal_entries)",
		Long: `get shows the rows the server holds in the account's journal: by default those
written by the other devices (as the daemon polls them), with --all-devices
also this device's own. The data is ciphertext; --decrypt has the daemon open
it with this device's key and shows the message instead (keys never leave
the daemon).

A page holds at most 5000 rows. When it is full there may be more, and get
says so on standard error with the --after-id that continues it without
skipping rows (rows of one second come in no defined order, so the highest
id shown is not safe); --json adds "full": true and "next_after_id".`,
		Example: "  chatsync account journal get\n  chatsync account journal get --after-id 120 --all-devices\n  chatsync account journal get --decrypt --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if afterID < 0 {
				return usagef("--after-id %d: want a journal id (0 or more)", afterID)
			}
			q := url.Values{}
			if afterID > 0 {
				q.Set("after_id", strconv.FormatInt(afterID, 10))
			}
			if allDevices {
				q.Set("all_devices", "1")
			}
			if decrypt {
				q.Set("decrypt", "1")
			}
			var out journalGetOutput
			if err := a.call(c, "get_journal_entries", q, &out.JournalPage); err != nil {
				return err
			}
			last, oneSecond := out.continuation()
			if a.asJSON {
				return printJSON(a.g.stdout, &out)
			}
			if err := printJournal(a.g.stdout, &out.JournalPage, decrypt); err != nil {
				return err
			}
			if out.Full {
				fullPageHint(a.g.stderr, len(out.Entries), out.NextAfterID, last, oneSecond)
			}
			return nil
		},
	}
	get.Flags().Int64Var(&afterID, "after-id", 0, "only rows with a journal id above `N`")
	get.Flags().BoolVar(&allDevices, "all-devices", false, "include the rows this device wrote")
	get.Flags().BoolVar(&decrypt, "decrypt", false, "show the plaintext, opened by the daemon with this device's key")
	c := &cobra.Command{
		Use:     "journal get",
		Short:   "Read the account's journal",
		Example: "  chatsync account journal get --decrypt",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown journal action %q: use `chatsync account journal get`", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return usagef("journal: say get") },
	}
	c.AddCommand(get)
	return c
}

// journalGetOutput is what `journal get --json` prints: the page, and
// whether it was full (the fields are only added: omitted if not full).
type journalGetOutput struct {
	apitype.JournalPage
	// Full says the page holds account.JournalPageMax rows, the real
	// server's cap: there may be more (it has no "more" flag).
	Full bool `json:"full,omitempty"`
	// NextAfterID is the --after-id that continues a full page without
	// skipping rows (see continuation).
	NextAfterID int64 `json:"next_after_id,omitempty"`
}

// continuation sets Full and NextAfterID; for a full page it returns the
// page's last (highest) timestamp and whether every row has it. The server orders a page by a one-second timestamp and
// same-second rows come in no defined order, so a page cut at its cap
// may lack lower ids of its last second while it holds higher ones:
// continuing after the highest id shown would skip those. Continuing
// after the highest id of the earlier seconds (which a page always holds
// whole) reads the rows of the last second again instead. If the whole
// page is one second there is no earlier one: the highest id it is.
func (o *journalGetOutput) continuation() (last string, oneSecond bool) {
	if len(o.Entries) < account.JournalPageMax {
		return "", false
	}
	o.Full = true
	for _, e := range o.Entries {
		if timestampLess(last, e.Timestamp) {
			last = e.Timestamp
		}
	}
	var maxAll, maxBefore int64
	for _, e := range o.Entries {
		maxAll = max(maxAll, e.ID)
		if timestampLess(e.Timestamp, last) {
			maxBefore = max(maxBefore, e.ID)
		}
	}
	if maxBefore == 0 {
		o.NextAfterID = maxAll
		return last, true
	}
	o.NextAfterID = maxBefore
	return last, false
}

// timestampLess orders journal timestamps: "YYYY-MM-DD HH:MM:SS" strings
// (MySQL) compare as text, Unix seconds (the old Mongo backend) as
// numbers.
func timestampLess(a, b string) bool {
	if isDigits(a) && isDigits(b) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			return len(a) < len(b)
		}
	}
	return a < b
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// fullPageHint tells on stderr that a page is full and how to continue.
func fullPageHint(w io.Writer, rows int, next int64, last string, oneSecond bool) {
	fmt.Fprintf(w, "this page is full: %d rows, the most the server returns in one page, so there may be more.\n", rows)
	if oneSecond {
		fmt.Fprintf(w, "Continue with --after-id %d. The whole page is from one second (%s), and rows of one second come\n"+
			"in no defined order: rows of that second missing from this page may be skipped.\n", next, last)
		return
	}
	fmt.Fprintf(w, "Continue with --after-id %d, not the highest id shown: rows of one second come in no defined order,\n"+
		"so this page may lack lower ids of its last second (%s); --after-id %d reads that second again.\n", next, last, next)
}

func shortUUID(u string) string {
	u = strings.TrimPrefix(u, "urn:uuid:")
	if len(u) > 8 {
		return u[:8]
	}
	return u
}

func printJournal(w io.Writer, p *apitype.JournalPage, decrypt bool) error {
	if len(p.Entries) == 0 {
		_, err := fmt.Fprintln(w, "no journal rows")
		return err
	}
	return table(w, func(tw *tabwriter.Writer) {
		if !decrypt {
			fmt.Fprintln(tw, "ID\tTIMESTAMP\tDEVICE\tDATA")
			for _, e := range p.Entries {
				data := e.Data
				if len(data) > 48 {
					data = fmt.Sprintf("%s… (%d bytes)", data[:40], len(e.Data))
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.ID, e.Timestamp, shortUUID(e.UUID), data)
			}
			return
		}
		fmt.Fprintln(tw, "ID\tTIMESTAMP\tDEVICE\tOP\tMSGID\tMESSAGE")
		for _, e := range p.Entries {
			if e.Plain == nil {
				fmt.Fprintf(tw, "%d\t%s\t%s\t?\t-\tcannot decrypt: %s\n", e.ID, e.Timestamp, shortUUID(e.UUID), oneLine(e.DecryptError))
				continue
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Timestamp, shortUUID(e.UUID), e.Plain.Op, e.Plain.MsgID, messagePreview(e.Plain.Message))
		}
	})
}

// messagePreview shows who a message is with and the start of its body.
func messagePreview(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "-"
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return "-"
	}
	body, _ := m["body"].(string)
	body = oneLine(body)
	if r := []rune(body); len(r) > 40 {
		body = string(r[:40]) + "…"
	}
	if remote, _ := m["remote_uri"].(string); remote != "" {
		return fmt.Sprintf("%s: %q", remote, body)
	}
	return strconv.Quote(body)
}
