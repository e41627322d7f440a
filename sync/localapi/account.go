package localapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// accountAction is one route of /v1/account/{action}.
type accountAction struct {
	write  bool     // POST, else GET
	params []string // accepted parameters besides "account"
	call   func(ctx context.Context, c *account.Client, p url.Values, x *actionCtx) (any, error)
}

// actionCtx is what some actions need beyond the client.
type actionCtx struct {
	s    *Server
	addr string // the account's address as configured
}

func confirm(msg string, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return apitype.Confirmation{Message: msg}, nil
}

var accountActions = map[string]accountAction{
	"get_identity": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.Identity(ctx)
	}},
	"get_aliases": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return nonNil(c.Aliases(ctx))
	}},
	"add_alias": {write: true, params: []string{"username"}, call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		name := strings.TrimSpace(p.Get("username"))
		if name == "" {
			return nil, httpErrorf(http.StatusBadRequest, "add_alias needs username=NAME")
		}
		return confirm(c.AddAlias(ctx, name))
	}},
	"get_enum": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return nonNil(c.Enum(ctx))
	}},
	"get_history": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.History(ctx)
	}},
	"get_devices": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return nonNil(c.Devices(ctx))
	}},
	"get_prepaid": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.Prepaid(ctx)
	}},
	"get_balance_history": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return nonNil(c.BalanceHistory(ctx))
	}},
	"get_monthly_usage": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.MonthlyUsage(ctx)
	}},
	"get_call_forwarding": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.CallForwarding(ctx)
	}},
	"set_call_forwarding": {write: true, params: account.ForwardingConditions, call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		targets := map[string]string{}
		for k, v := range p {
			if k != "account" {
				targets[k] = v[len(v)-1]
			}
		}
		if len(targets) == 0 {
			return nil, httpErrorf(http.StatusBadRequest, "set_call_forwarding needs at least one of %s (an empty value removes the condition)", strings.Join(account.ForwardingConditions, "= "))
		}
		return confirm(c.SetCallForwarding(ctx, targets))
	}},
	"get_accept_rules": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.AcceptRules(ctx)
	}},
	"get_reject_rules": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return nonNil(c.RejectRules(ctx))
	}},
	"get_voicemail": {call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return c.Voicemail(ctx)
	}},
	"set_dnd_on": {write: true, params: []string{"duration"}, call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		d, err := parseMinutes(p.Get("duration"))
		if err != nil {
			return nil, err
		}
		return confirm(c.SetDNDOn(ctx, d))
	}},
	"set_dnd_off": {write: true, call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return confirm(c.SetDNDOff(ctx))
	}},
	"set_privacy_on": {write: true, call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return confirm(c.SetPrivacyOn(ctx))
	}},
	"set_privacy_off": {write: true, call: func(ctx context.Context, c *account.Client, p url.Values, _ *actionCtx) (any, error) {
		return confirm(c.SetPrivacyOff(ctx))
	}},
	"get_journal_entries": {params: []string{"after_id", "after_timestamp", "all_devices", "decrypt"}, call: getJournal},
}

// parseMinutes reads set_dnd_on's duration: whole minutes as on the wire,
// or a Go duration ("90m", "2h"). Empty or 0 means until switched off.
func parseMinutes(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Minute, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, httpErrorf(http.StatusBadRequest, "duration %q: want minutes (90) or a Go duration (1h30m)", v)
	}
	return d, nil
}

func getJournal(ctx context.Context, c *account.Client, p url.Values, x *actionCtx) (any, error) {
	q := account.JournalQuery{ExceptUUID: x.s.b.DeviceID(x.addr), AfterTimestamp: p.Get("after_timestamp")}
	if v := p.Get("after_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, httpErrorf(http.StatusBadRequest, "after_id %q: want a journal id (a number ≥ 0)", v)
		}
		q.AfterID = n
	}
	all, err := boolValue("all_devices", p.Get("all_devices"))
	if err != nil {
		return nil, err
	}
	if all {
		q.ExceptUUID = ""
	}
	decrypt, err := boolValue("decrypt", p.Get("decrypt"))
	if err != nil {
		return nil, err
	}
	page, err := c.GetJournalEntries(ctx, q)
	if err != nil {
		return nil, err
	}
	out := apitype.JournalPage{Rows: page.Rows, Entries: make([]apitype.JournalEntry, 0, len(page.Entries))}
	for _, e := range page.Entries {
		out.Entries = append(out.Entries, apitype.JournalEntry{ID: e.ID, Source: e.Source, Timestamp: e.Timestamp,
			Account: e.Account, UUID: e.UUID, IPAddress: e.IPAddress, Data: e.Data})
	}
	if decrypt {
		kr, err := x.s.b.Keyring(x.addr)
		if err != nil {
			return nil, err
		}
		for i := range out.Entries {
			e := &out.Entries[i]
			plain, err := kr.Open(e.Data, x.addr)
			if err != nil {
				e.DecryptError = err.Error()
				continue
			}
			e.Plain = &apitype.JournalPlain{Op: string(plain.Op), MsgID: plain.MsgID, Account: plain.Account,
				Device: plain.Device, Time: plain.Time, Message: plain.Message}
		}
	}
	return out, nil
}

// boolValue parses v, the value of the parameter name: "" is false.
func boolValue(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, httpErrorf(http.StatusBadRequest, "%s=%q: want 1 or 0", name, v)
	}
	return b, nil
}

// nonNil turns a nil list into an empty one, so replies are [] not null.
func nonNil[T any](list []T, err error) ([]T, error) {
	if err == nil && list == nil {
		list = []T{}
	}
	return list, err
}

func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("action")
	act, ok := accountActions[name]
	if !ok {
		if name == "put_journal_entries" || name == "delete_journal_entries" {
			return httpErrorf(http.StatusNotFound, "%s is not served: the daemon alone writes this device's journal rows", name)
		}
		return httpErrorf(http.StatusNotFound, "unknown account action %q: see GET /v1/account for the list", name)
	}
	method := http.MethodGet
	if act.write {
		method = http.MethodPost
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		return httpErrorf(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, method)
	}
	if err := checkParams(r, append([]string{"account"}, act.params...)...); err != nil {
		return err
	}
	for k, v := range r.Form {
		if len(v) > 1 {
			return httpErrorf(http.StatusBadRequest, "parameter %q given %d times", k, len(v))
		}
	}
	c, addr, err := s.b.Client(r.Form.Get("account"))
	if err != nil {
		return err
	}
	p := url.Values{}
	for k, v := range r.Form {
		if k != "account" {
			p[k] = slices.Clone(v)
		}
	}
	res, err := act.call(r.Context(), c, p, &actionCtx{s: s, addr: addr})
	if err != nil {
		return fmt.Errorf("account %s: %w", addr, err)
	}
	return writeJSON(w, http.StatusOK, res)
}
