package account

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
)

// decode unmarshals a cleaned reply into v, turning a failure into a
// Malformed error that names the action but quotes nothing of the body.
func decode(action string, js []byte, v any) error {
	if err := json.Unmarshal(js, v); err != nil {
		return &Error{Kind: KindMalformed, Action: action, Message: "unexpected reply shape", Err: err}
	}
	return nil
}

func isNull(js []byte) bool { return string(bytes.TrimSpace(js)) == "null" }

func wantObject(action string, js []byte) error {
	if len(js) == 0 || js[0] != '{' {
		return &Error{Kind: KindMalformed, Action: action, Message: "unexpected reply shape: want a JSON object"}
	}
	return nil
}

func (c *Client) get(ctx context.Context, action string, query url.Values) ([]byte, error) {
	js, _, err := c.call(ctx, request{action: action, query: query}, false)
	return js, err
}

// set calls a setter and returns its confirmation text.
func (c *Client) set(ctx context.Context, action string, query url.Values) (string, error) {
	_, msg, err := c.call(ctx, request{action: action, query: query}, true)
	return msg, err
}

// getObject calls a getter whose reply is a JSON object, decodes it into v
// and returns it. If orNull, a null reply is no error: getObject returns
// nil and leaves v alone.
func (c *Client) getObject(ctx context.Context, action string, orNull bool, v any) ([]byte, error) {
	js, err := c.get(ctx, action, nil)
	if err != nil || orNull && isNull(js) {
		return nil, err
	}
	if err := wantObject(action, js); err != nil {
		return nil, err
	}
	if err := decode(action, js, v); err != nil {
		return nil, err
	}
	return js, nil
}

// Identity is the reply of get_identity (PROTOCOL §5.1). Absent values are "".
type Identity = apitype.Identity

// Identity returns the account's identity (get_identity).
func (c *Client) Identity(ctx context.Context) (*Identity, error) {
	var w struct {
		SIPAddress      flexString `json:"sip_address"`
		Email           flexString `json:"email"`
		First           flexString `json:"first"`
		LastName        flexString `json:"lastname"`
		PSTNCallerID    flexString `json:"pstn_caller_id"`
		MobileNumber    flexString `json:"mobile_number"`
		Timezone        flexString `json:"timezone"`
		NoAnswerTimeout flexInt    `json:"no_answer_timeout"`
		QuickDial       flexString `json:"quick_dial"`
	}
	if _, err := c.getObject(ctx, "get_identity", false, &w); err != nil {
		return nil, err
	}
	return &Identity{
		SIPAddress:      string(w.SIPAddress),
		Email:           string(w.Email),
		FirstName:       string(w.First),
		LastName:        string(w.LastName),
		PSTNCallerID:    string(w.PSTNCallerID),
		MobileNumber:    string(w.MobileNumber),
		Timezone:        string(w.Timezone),
		NoAnswerTimeout: int(w.NoAnswerTimeout),
		QuickDial:       string(w.QuickDial),
	}, nil
}

// getStrings calls a getter whose reply is a list of strings.
func (c *Client) getStrings(ctx context.Context, action string) ([]string, error) {
	js, err := c.get(ctx, action, nil)
	if err != nil {
		return nil, err
	}
	var l flexStrings
	if err := decode(action, js, &l); err != nil {
		return nil, err
	}
	return []string(l), nil
}

// Aliases returns the account's aliases, "user@domain" (get_aliases; the
// server returns at most 20).
func (c *Client) Aliases(ctx context.Context) ([]string, error) {
	return c.getStrings(ctx, "get_aliases")
}

// AddAlias creates the alias name@<account domain> (add_alias). name is the
// user part only; the server lower-cases and trims it. It returns the
// server's confirmation text, for display only (it may be localized).
func (c *Client) AddAlias(ctx context.Context, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalidArg("alias name is empty")
	}
	if strings.Contains(name, "@") {
		return "", invalidArg("alias %q: give the user part only; the domain is the account's", name)
	}
	if hasControl(name) {
		return "", invalidArg("alias contains control characters")
	}
	return c.set(ctx, "add_alias", url.Values{"username": {name}})
}

// Enum returns the ENUM numbers ("+31...") that map to the account
// (get_enum; at most 10).
func (c *Client) Enum(ctx context.Context) ([]string, error) {
	return c.getStrings(ctx, "get_enum")
}

// Call is one completed call of get_history (PROTOCOL §5.4).
type Call = apitype.Call

// History is the reply of get_history: completed calls of the last 14 days.
type History = apitype.History

type wireCall struct {
	RemoteParty flexString  `json:"remoteParty"`
	DisplayName flexString  `json:"displayName"`
	StartTime   flexString  `json:"startTime"`
	StopTime    flexString  `json:"stopTime"`
	Timezone    flexString  `json:"timezone"`
	Duration    flexInt     `json:"duration"`
	Status      flexInt     `json:"status"`
	Price       flexString  `json:"price"`
	SessionID   flexString  `json:"sessionId"`
	FromTag     flexString  `json:"fromTag"`
	ToTag       flexString  `json:"toTag"`
	ProxyIP     flexString  `json:"proxyIP"`
	Media       flexStrings `json:"media"`
}

func (w wireCall) call() Call {
	return Call{
		RemoteParty: string(w.RemoteParty), DisplayName: string(w.DisplayName),
		StartTime: string(w.StartTime), StopTime: string(w.StopTime), Timezone: string(w.Timezone),
		Duration: int64(w.Duration), Status: int(w.Status), Price: string(w.Price),
		SessionID: string(w.SessionID), FromTag: string(w.FromTag), ToTag: string(w.ToTag),
		ProxyIP: string(w.ProxyIP), Media: []string(w.Media),
	}
}

// History returns the account's recent calls (get_history).
func (c *Client) History(ctx context.Context) (*History, error) {
	var w struct {
		Placed   []wireCall `json:"placed"`
		Received []wireCall `json:"received"`
	}
	if _, err := c.getObject(ctx, "get_history", false, &w); err != nil {
		return nil, err
	}
	h := &History{}
	for _, x := range w.Placed {
		h.Placed = append(h.Placed, x.call())
	}
	for _, x := range w.Received {
		h.Received = append(h.Received, x.call())
	}
	return h, nil
}

// Device is one registered SIP device (get_devices).
type Device = apitype.Device

// Devices returns the registered devices; nil when none is registered.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	const action = "get_devices"
	js, err := c.get(ctx, action, nil)
	if err != nil || isNull(js) {
		return nil, err
	}
	var w []struct {
		Contact       flexString `json:"contact"`
		PublicContact flexString `json:"publicContact"`
		Expires       flexString `json:"expires"`
		UserAgent     flexString `json:"user_agent"`
		Transport     flexString `json:"transport"`
	}
	if err := decode(action, js, &w); err != nil {
		return nil, err
	}
	var out []Device
	for _, d := range w {
		out = append(out, Device{Contact: string(d.Contact), PublicContact: string(d.PublicContact),
			Expires: string(d.Expires), UserAgent: string(d.UserAgent), Transport: string(d.Transport)})
	}
	return out, nil
}

// Prepaid is the account's prepaid status (get_prepaid). Its fields come
// from the NGNPro backend and only balance is known; Raw holds the whole
// object.
type Prepaid = apitype.Prepaid

// Prepaid returns the prepaid status; nil when the server has none.
func (c *Client) Prepaid(ctx context.Context) (*Prepaid, error) {
	var w struct {
		Balance flexString `json:"balance"`
	}
	js, err := c.getObject(ctx, "get_prepaid", true, &w)
	if err != nil || js == nil {
		return nil, err
	}
	return &Prepaid{Balance: string(w.Balance), Raw: json.RawMessage(bytes.Clone(js))}, nil
}

// BalanceEntry is one entry of the prepaid credit history. The known
// fields are decoded; Raw holds the whole entry.
type BalanceEntry = apitype.BalanceEntry

// BalanceHistory returns the prepaid credit history (get_balance_history,
// at most 200 entries); nil when there is none.
func (c *Client) BalanceHistory(ctx context.Context) ([]BalanceEntry, error) {
	const action = "get_balance_history"
	js, err := c.get(ctx, action, nil)
	if err != nil || isNull(js) {
		return nil, err
	}
	var raws []json.RawMessage
	if err := decode(action, js, &raws); err != nil {
		return nil, err
	}
	var out []BalanceEntry
	for _, r := range raws {
		var w struct {
			Date        flexString `json:"date"`
			Action      flexString `json:"action"`
			Description flexString `json:"description"`
			Value       flexString `json:"value"`
			Balance     flexString `json:"balance"`
		}
		if err := decode(action, r, &w); err != nil {
			return nil, err
		}
		out = append(out, BalanceEntry{Date: string(w.Date), Action: string(w.Action), Description: string(w.Description),
			Value: string(w.Value), Balance: string(w.Balance), Raw: json.RawMessage(bytes.Clone(r))})
	}
	return out, nil
}

// MonthlyUsage is the reply of get_monthly_usage: placed calls this month.
type MonthlyUsage = apitype.MonthlyUsage

// MonthlyUsage returns this month's usage (get_monthly_usage). The action
// fails on the current public server (PROTOCOL §5.9); that comes back as a
// KindServer error.
func (c *Client) MonthlyUsage(ctx context.Context) (*MonthlyUsage, error) {
	var w struct {
		Calls flexInt    `json:"calls"`
		Price flexString `json:"price"`
	}
	if _, err := c.getObject(ctx, "get_monthly_usage", false, &w); err != nil {
		return nil, err
	}
	return &MonthlyUsage{Calls: int64(w.Calls), Price: string(w.Price)}, nil
}

// Call forwarding conditions (the keys of CallForwarding and
// SetCallForwarding) and the special targets.
const (
	ForwardAll         = "FUNC" // all calls
	ForwardNotOnline   = "FNOL" // not online
	ForwardBusy        = "FBUS" // busy
	ForwardNoAnswer    = "FNOA" // no answer
	ForwardUnavailable = "FUNV" // unavailable

	TargetVoicemail = "<voice-mailbox>"
	TargetMobile    = "<mobile-number>"
)

// ForwardingConditions lists the forwarding keys in the server's order.
var ForwardingConditions = []string{ForwardAll, ForwardNotOnline, ForwardBusy, ForwardNoAnswer, ForwardUnavailable}

func isForwardingCondition(k string) bool {
	switch k {
	case ForwardAll, ForwardNotOnline, ForwardBusy, ForwardNoAnswer, ForwardUnavailable:
		return true
	}
	return false
}

// CallForwarding returns the active forwarding conditions and their
// targets (get_call_forwarding). Unset conditions are absent. Targets have
// the sip: prefix stripped by the server; a voicemail target is
// TargetVoicemail.
func (c *Client) CallForwarding(ctx context.Context) (map[string]string, error) {
	const action = "get_call_forwarding"
	js, err := c.get(ctx, action, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if string(js) == "[]" {
		return out, nil
	}
	if err := wantObject(action, js); err != nil {
		return nil, err
	}
	var w map[string]flexString
	if err := decode(action, js, &w); err != nil {
		return nil, err
	}
	for k, v := range w {
		if v != "" && isForwardingCondition(k) {
			out[k] = string(v)
		}
	}
	return out, nil
}

// SetCallForwarding changes the given conditions (set_call_forwarding);
// the others keep their targets. A target is TargetVoicemail, TargetMobile,
// an address or a number (the server adds the account domain and "sip:");
// "" removes the condition. Keys other than the Forward* constants are
// refused before anything is sent. It returns the server's confirmation
// text, for display only.
func (c *Client) SetCallForwarding(ctx context.Context, targets map[string]string) (string, error) {
	if len(targets) == 0 {
		return "", invalidArg("no forwarding condition given (want one of %s)", strings.Join(ForwardingConditions, " "))
	}
	q := url.Values{}
	for k, v := range targets {
		if !isForwardingCondition(k) {
			return "", invalidArg("unknown forwarding condition %q (want one of %s)", k, strings.Join(ForwardingConditions, " "))
		}
		if hasControl(v) {
			return "", invalidArg("forwarding target for %s contains control characters", k)
		}
		q.Set(k, strings.TrimSpace(v))
	}
	return c.set(ctx, "set_call_forwarding", q)
}

// AcceptRule is one persistent accept rule: during Start-Stop ("HH:MM") on
// its days, calls from Groups ring ("everybody", "nobody" or a group).
type AcceptRule = apitype.AcceptRule

// TemporaryRule is the temporary accept rule that do-not-disturb sets:
// Groups ["nobody"] for Duration minutes (0: until switched off).
type TemporaryRule = apitype.TemporaryRule

// AcceptRules is the reply of get_accept_rules (PROTOCOL §5.10).
type AcceptRules = apitype.AcceptRules

// AcceptRules returns the accept rules (get_accept_rules).
func (c *Client) AcceptRules(ctx context.Context) (*AcceptRules, error) {
	const action = "get_accept_rules"
	type wireRule struct {
		Start  flexString  `json:"start"`
		Stop   flexString  `json:"stop"`
		Groups flexStrings `json:"groups"`
	}
	var w struct {
		Persistent json.RawMessage `json:"persistent"`
		Temporary  *struct {
			Groups   flexStrings `json:"groups"`
			Duration flexInt     `json:"duration"`
		} `json:"temporary"`
		Groups flexStrings `json:"groups"`
	}
	if _, err := c.getObject(ctx, action, false, &w); err != nil {
		return nil, err
	}
	r := &AcceptRules{Groups: []string(w.Groups)}
	if w.Temporary != nil {
		r.Temporary = &TemporaryRule{Groups: []string(w.Temporary.Groups), Duration: int64(w.Temporary.Duration)}
	}
	p := bytes.TrimSpace(w.Persistent)
	switch {
	case len(p) == 0 || isNull(p):
	case p[0] == '[':
		// PHP encodes an array keyed 0..n-1 as a list.
		var l []wireRule
		if err := decode(action, p, &l); err != nil {
			return nil, err
		}
		for i, x := range l {
			if r.Persistent == nil {
				r.Persistent = map[int]AcceptRule{}
			}
			r.Persistent[i] = AcceptRule{Start: string(x.Start), Stop: string(x.Stop), Groups: []string(x.Groups)}
		}
	default:
		var m map[string]wireRule
		if err := decode(action, p, &m); err != nil {
			return nil, err
		}
		for k, x := range m {
			days, err := strconv.Atoi(k)
			if err != nil {
				return nil, &Error{Kind: KindMalformed, Action: action, Message: "accept rule days key is not a number"}
			}
			if r.Persistent == nil {
				r.Persistent = map[int]AcceptRule{}
			}
			r.Persistent[days] = AcceptRule{Start: string(x.Start), Stop: string(x.Stop), Groups: []string(x.Groups)}
		}
	}
	return r, nil
}

// RejectRules returns the reject list (get_reject_rules): the backend's
// reject members, probably SIP URIs. The field set is not public, so any
// list (or map) of scalars is accepted; other elements keep their JSON
// text. nil when the list is empty or null.
func (c *Client) RejectRules(ctx context.Context) ([]string, error) {
	const action = "get_reject_rules"
	js, err := c.get(ctx, action, nil)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	b := bytes.TrimSpace(js)
	switch {
	case isNull(b):
		return nil, nil
	case len(b) > 0 && b[0] == '[':
		if err := decode(action, b, &raws); err != nil {
			return nil, err
		}
	case len(b) > 0 && b[0] == '{':
		var m map[string]json.RawMessage
		if err := decode(action, b, &m); err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			raws = append(raws, m[k])
		}
	default:
		return nil, &Error{Kind: KindMalformed, Action: action, Message: "unexpected reply shape: want a list"}
	}
	var out []string
	for _, r := range raws {
		var s flexString
		if json.Unmarshal(r, &s) != nil {
			s = flexString(bytes.TrimSpace(r))
		}
		out = append(out, string(s))
	}
	return out, nil
}

// Voicemail is the account's voicemail box (get_voicemail). Password is the
// mailbox password in clear text, as the server sends it: do not log it.
type Voicemail = apitype.Voicemail

// Voicemail returns the voicemail box; nil when the account has none.
// Options keeps the server's JSON value: the real server sends a
// structure (PROTOCOL §12: {"delete":false}), old servers a string; null
// leaves it empty.
func (c *Client) Voicemail(ctx context.Context) (*Voicemail, error) {
	var w struct {
		Mailbox  flexString      `json:"Mailbox"`
		Password flexString      `json:"Password"`
		Name     flexString      `json:"Name"`
		Email    flexString      `json:"Email"`
		Info     flexString      `json:"Info"`
		Options  json.RawMessage `json:"Options"`
		Account  flexString      `json:"Account"`
	}
	js, err := c.getObject(ctx, "get_voicemail", true, &w)
	if err != nil || js == nil {
		return nil, err
	}
	var opts json.RawMessage
	if len(w.Options) > 0 && !isNull(w.Options) {
		var b bytes.Buffer
		json.Compact(&b, w.Options) // cannot fail: decoding checked it
		opts = b.Bytes()
	}
	return &Voicemail{Mailbox: string(w.Mailbox), Password: string(w.Password), Name: string(w.Name),
		Email: string(w.Email), Info: string(w.Info), Options: opts, Account: string(w.Account)}, nil
}

// SetDNDOn turns do-not-disturb on (set_dnd_on) for d, sent as whole
// minutes in "duration" and rounded up (90s is 2 minutes); d <= 0 turns it
// on until SetDNDOff. It returns the server's confirmation text, for
// display only.
func (c *Client) SetDNDOn(ctx context.Context, d time.Duration) (string, error) {
	var minutes int64
	if d > 0 {
		minutes = int64((d + time.Minute - 1) / time.Minute)
	}
	return c.set(ctx, "set_dnd_on", url.Values{"duration": {strconv.FormatInt(minutes, 10)}})
}

// SetDNDOff turns do-not-disturb off (set_dnd_off).
func (c *Client) SetDNDOff(ctx context.Context) (string, error) {
	return c.set(ctx, "set_dnd_off", nil)
}

// SetPrivacyOn hides the caller id on outgoing calls (set_privacy_on).
func (c *Client) SetPrivacyOn(ctx context.Context) (string, error) {
	return c.set(ctx, "set_privacy_on", nil)
}

// SetPrivacyOff shows the caller id on outgoing calls (set_privacy_off).
func (c *Client) SetPrivacyOff(ctx context.Context) (string, error) {
	return c.set(ctx, "set_privacy_off", nil)
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
