package accountserver

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// request is one authenticated API call.
type request struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	p    params
	acct *Account
	ip   string
}

// actions maps the action parameter to its handler (exact string match,
// like the real if/elseif chain).
var actions = map[string]func(*request){
	"get_identity":           (*request).getIdentity,
	"get_aliases":            (*request).getAliases,
	"add_alias":              (*request).addAlias,
	"get_enum":               (*request).getEnum,
	"get_history":            (*request).getHistory,
	"get_devices":            (*request).getDevices,
	"get_prepaid":            (*request).getPrepaid,
	"get_balance_history":    (*request).getBalanceHistory,
	"get_monthly_usage":      (*request).getMonthlyUsage,
	"get_call_forwarding":    (*request).getCallForwarding,
	"set_call_forwarding":    (*request).setCallForwarding,
	"get_accept_rules":       (*request).getAcceptRules,
	"get_reject_rules":       (*request).getRejectRules,
	"get_voicemail":          (*request).getVoicemail,
	"set_dnd_on":             (*request).setDNDOn,
	"set_dnd_off":            (*request).setDNDOff,
	"set_privacy_on":         (*request).setPrivacyOn,
	"set_privacy_off":        (*request).setPrivacyOff,
	"get_journal_entries":    (*request).getJournalEntries,
	"put_journal_entries":    (*request).putJournalEntries,
	"delete_journal_entries": (*request).deleteJournalEntries,
}

// apiMarkers are the substrings that make the real page skip its HTML
// header (a substring test, not a prefix test).
var apiMarkers = []string{"get_", "set_", "put_", "delete_", "export_", "add_"}

func (q *request) dispatch(action string) {
	if action == "" {
		q.page()
		return
	}
	if h := actions[action]; h != nil {
		h(q)
		return
	}
	prefix := ""
	if !slices.ContainsFunc(apiMarkers, func(m string) bool { return strings.Contains(action, m) }) {
		prefix = q.htmlHeader()
	}
	writeJSONPrefixed(q.w, http.StatusOK, prefix, result{false, "Error: invalid action"})
}

func (q *request) htmlHeader() string {
	return "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>SIP settings of " +
		html.EscapeString(q.acct.Address) + "</title>\n</head>\n<body>\n"
}

// page is the stand-in for the settings web UI, served without action.
func (q *request) page() {
	var b strings.Builder
	b.WriteString(q.htmlHeader())
	fmt.Fprintf(&b, "<h1>SIP settings of %s</h1>\n<p>This is chatsync-server. Use one of the API actions:</p>\n<ul>\n", html.EscapeString(q.acct.Address))
	names := make([]string, 0, len(actions))
	for n := range actions {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "<li><code>action=%s</code></li>\n", n)
	}
	b.WriteString("</ul>\n</body>\n</html>\n")
	writeText(q.w, http.StatusOK, b.String())
}

func (q *request) ok(v any) { writeJSON(q.w, http.StatusOK, v) }

// storeFailed answers a database failure the way a SOAP failure of the
// real server looks to a client of a set/add action.
func (q *request) storeFailed(err error) {
	q.s.log.Error("store failed", "account", q.acct.Address, "err", err)
	q.ok(result{false, "Error (SipPort): database failure"})
}

func (q *request) loadState() (accountState, bool) {
	st, err := q.s.state(q.acct)
	if err != nil {
		q.s.log.Error("reading state failed", "account", q.acct.Address, "err", err)
		fatal(q.w)
		return st, false
	}
	return st, true
}

func strp(s string) *string { return &s }

type identityReply struct {
	SipAddress      string  `json:"sip_address"`
	Email           *string `json:"email"`
	First           *string `json:"first"`
	Lastname        *string `json:"lastname"`
	PSTNCallerID    *string `json:"pstn_caller_id"`
	MobileNumber    *string `json:"mobile_number"`
	Timezone        string  `json:"timezone"`
	NoAnswerTimeout int     `json:"no_answer_timeout"`
	QuickDial       *string `json:"quick_dial"`
}

func (q *request) getIdentity() {
	a := q.acct
	id := identityReply{
		SipAddress:      a.Address,
		Email:           a.Email,
		First:           a.First,
		Lastname:        a.Lastname,
		PSTNCallerID:    a.PSTNCallerID,
		MobileNumber:    a.MobileNumber,
		Timezone:        a.Timezone,
		NoAnswerTimeout: 35,
		QuickDial:       a.QuickDial,
	}
	if id.Email == nil {
		id.Email = strp(a.Address)
	}
	if id.First == nil {
		u := a.user()
		id.First = strp(strings.ToUpper(u[:1]) + u[1:])
	}
	if t := a.NoAnswerTimeout; t != nil && *t > 0 {
		id.NoAnswerTimeout = min(*t, 900)
	}
	q.ok(id)
}

// maxAliases is how many aliases get_aliases returns (the SOAP query limit).
const maxAliases = 20

func (q *request) getAliases() {
	st, ok := q.loadState()
	if !ok {
		return
	}
	al := slices.Clone(st.Aliases)
	slices.SortFunc(al, func(x, y string) int {
		xu, _, _ := strings.Cut(x, "@")
		yu, _, _ := strings.Cut(y, "@")
		return strings.Compare(xu, yu)
	})
	if len(al) > maxAliases {
		al = al[:maxAliases]
	}
	if al == nil {
		al = []string{}
	}
	q.ok(al)
}

var errAliasTaken = errors.New("alias taken")

func (q *request) addAlias() {
	raw := q.p.get("username")
	u := strings.ToLower(strings.Trim(raw, " \t\n\r\x00\x0b"))
	if !phpTruthy(raw) || u == "" {
		q.ok(result{false, "Error: missing username"})
		return
	}
	if strings.ContainsAny(u, "@:;<>\"' \t\r\n/\\") {
		q.ok(result{false, "Error (SipPort): Invalid alias username " + u})
		return
	}
	alias := u + "@" + q.acct.domain()
	if q.s.accts.Load().accounts[alias] != nil {
		q.ok(result{false, "Error (SipPort): Alias " + alias + " already exists"})
		return
	}
	err := q.s.updateState(q.acct, func(st *accountState) error {
		if slices.Contains(st.Aliases, alias) {
			return errAliasTaken
		}
		st.Aliases = append(st.Aliases, alias)
		return nil
	})
	switch {
	case errors.Is(err, errAliasTaken):
		q.ok(result{false, "Error (SipPort): Alias " + alias + " already exists"})
	case err != nil:
		q.storeFailed(err)
	default:
		q.ok(result{true, "Added alias " + u})
	}
}

func (q *request) getEnum() {
	e := q.acct.Enum
	if len(e) > 10 {
		e = e[:10]
	}
	if e == nil {
		e = []string{}
	}
	q.ok(e)
}

type callReply struct {
	RemoteParty string   `json:"remoteParty"`
	DisplayName string   `json:"displayName"`
	StartTime   string   `json:"startTime"`
	StopTime    string   `json:"stopTime"`
	Timezone    string   `json:"timezone"`
	Duration    int      `json:"duration"`
	Status      int      `json:"status"`
	Price       *float64 `json:"price,omitempty"`
	SessionID   string   `json:"sessionId"`
	FromTag     string   `json:"fromTag"`
	ToTag       string   `json:"toTag"`
	ProxyIP     string   `json:"proxyIP"`
	Media       []string `json:"media"`
}

type historyReply struct {
	Placed   []callReply `json:"placed"`
	Received []callReply `json:"received"`
}

// maxCalls is how many calls per direction get_history returns.
const maxCalls = 50

func (q *request) calls(cs []Call, placed bool) []callReply {
	var out []callReply
	for _, c := range cs {
		if len(out) == maxCalls {
			break
		}
		if placed && c.Status == 435 {
			continue
		}
		cr := callReply{
			RemoteParty: c.RemoteParty,
			DisplayName: c.DisplayName,
			StartTime:   c.StartTime,
			StopTime:    c.StopTime,
			Timezone:    q.acct.Timezone,
			Duration:    c.Duration,
			Status:      c.Status,
			SessionID:   c.SessionID,
			FromTag:     c.FromTag,
			ToTag:       c.ToTag,
			ProxyIP:     c.ProxyIP,
			Media:       c.Media,
		}
		if placed {
			cr.DisplayName = ""
			cr.Price = &c.Price
		}
		if cr.Status == 0 {
			cr.Status = 200
		}
		if cr.StopTime == "" {
			if t, err := time.Parse(timeLayout, c.StartTime); err == nil {
				cr.StopTime = t.Add(time.Duration(c.Duration) * time.Second).Format(timeLayout)
			}
		}
		if cr.Media == nil {
			cr.Media = []string{"audio"}
		}
		out = append(out, cr)
	}
	return out
}

func (q *request) getHistory() {
	q.ok(historyReply{
		Placed:   q.calls(q.acct.History.Placed, true),
		Received: q.calls(q.acct.History.Received, false),
	})
}

type deviceReply struct {
	Contact       string `json:"contact"`
	PublicContact string `json:"publicContact"`
	Expires       int    `json:"expires"`
	UserAgent     string `json:"user_agent"`
	Transport     string `json:"transport"`
}

func (q *request) getDevices() {
	var out []deviceReply
	for _, d := range q.acct.Devices {
		out = append(out, deviceReply(d))
	}
	q.ok(out) // null when none are registered
}

func (q *request) getPrepaid() {
	q.ok(struct {
		Balance float64 `json:"balance"`
	}{q.acct.Balance})
}

type balanceReply struct {
	Date        string  `json:"date"`
	Action      string  `json:"action"`
	Description string  `json:"description"`
	Value       float64 `json:"value"`
	Balance     float64 `json:"balance"`
}

func (q *request) getBalanceHistory() {
	h := q.acct.BalanceHistory
	if len(h) > 200 {
		h = h[:200]
	}
	if phpTruthy(q.p.get("csv")) {
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		cw.Write([]string{"Id", "Account", "Date", "Action", "Description", "Value", "Final Balance"})
		n := 0
		for _, e := range h {
			if e.Value == 0 { // zero-value sessions are left out
				continue
			}
			n++
			cw.Write([]string{strconv.Itoa(n), q.acct.Address, e.Date, e.Action, e.Description,
				strconv.FormatFloat(e.Value, 'f', 4, 64), strconv.FormatFloat(e.Balance, 'f', 4, 64)})
		}
		cw.Flush()
		q.w.Header().Set("Content-Type", "text/csv")
		q.w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%s-prepaid-history.csv", q.acct.Address))
		q.w.WriteHeader(http.StatusOK)
		q.w.Write(buf.Bytes())
		return
	}
	out := make([]balanceReply, 0, len(h))
	for _, e := range h {
		out = append(out, balanceReply(e))
	}
	q.ok(out)
}

func (q *request) getMonthlyUsage() {
	if q.s.opts.StrictCompat {
		fatal(q.w) // "Call to private method" in the real server
		return
	}
	loc, err := time.LoadLocation(q.acct.Timezone)
	if err != nil {
		loc = time.UTC
	}
	now := q.s.now().In(loc)
	calls, price := 0, 0.0
	for _, c := range q.acct.History.Placed {
		t, err := time.ParseInLocation(timeLayout, c.StartTime, loc)
		if err != nil || t.Year() != now.Year() || t.Month() != now.Month() {
			continue
		}
		calls++
		price += c.Price
	}
	q.ok(struct {
		Calls int     `json:"calls"`
		Price float64 `json:"price"`
	}{calls, math.Round(price*1e4) / 1e4})
}

type forwardingReply struct {
	FUNC *string `json:"FUNC"`
	FNOL *string `json:"FNOL"`
	FBUS *string `json:"FBUS"`
	FNOA *string `json:"FNOA"`
	FUNV *string `json:"FUNV"`
}

// forwardingDisplay turns a stored target into what get_call_forwarding
// shows: no sip:/sips: prefix, the voicemail box as <voice-mailbox>.
func forwardingDisplay(fw map[string]string, k string) *string {
	v, ok := fw[k]
	if !ok || v == "" {
		return nil
	}
	if strings.Contains(v, "voice-mailbox") && !strings.Contains(v, "@") {
		return strp("<voice-mailbox>")
	}
	low := strings.ToLower(v)
	switch {
	case strings.HasPrefix(low, "sips:"):
		v = v[5:]
	case strings.HasPrefix(low, "sip:"):
		v = v[4:]
	}
	return &v
}

func (q *request) getCallForwarding() {
	st, ok := q.loadState()
	if !ok {
		return
	}
	fw := st.Forwarding
	q.ok(forwardingReply{
		FUNC: forwardingDisplay(fw, "FUNC"),
		FNOL: forwardingDisplay(fw, "FNOL"),
		FBUS: forwardingDisplay(fw, "FBUS"),
		FNOA: forwardingDisplay(fw, "FNOA"),
		FUNV: forwardingDisplay(fw, "FUNV"),
	})
}

// normalizeTarget applies the steps of PROTOCOL §5.8 to one provided value.
func (q *request) normalizeTarget(v string) string {
	const vm, mobile = "<voice-mailbox>", "<mobile-number>"
	if v == mobile && q.acct.MobileNumber != nil && *q.acct.MobileNumber != "" {
		v = *q.acct.MobileNumber
	}
	if v == "" || v == vm {
		return v
	}
	domain := q.acct.domain()
	if !strings.Contains(v, "@") {
		v += "@" + domain
	}
	if v[0] == '+' || v[0] == '0' {
		user, _, _ := strings.Cut(v, "@")
		v = user + "@" + domain
	}
	if low := strings.ToLower(v); !strings.HasPrefix(low, "sip:") && !strings.HasPrefix(low, "sips:") {
		v = "sip:" + v
	}
	return v
}

func (q *request) setCallForwarding() {
	var stray strings.Builder
	changes := map[string]string{}
	var order []string
	for _, k := range forwardingKeys {
		raw, ok := q.p.lookup(k)
		if !ok {
			continue
		}
		fmt.Fprintf(&stray, "Key %s changed %s", k, raw) // the real server's leftover printf
		changes[k] = q.normalizeTarget(raw)
		order = append(order, k)
	}
	if len(order) == 0 {
		q.ok(result{true, "Diversions remained the same"})
		return
	}
	err := q.s.updateState(q.acct, func(st *accountState) error {
		for k, v := range changes {
			if v == "" {
				delete(st.Forwarding, k)
			} else {
				st.Forwarding[k] = v
			}
		}
		return nil
	})
	if err != nil {
		q.storeFailed(err)
		return
	}
	msg := "Changed diversions "
	for _, k := range order {
		msg += k + "=" + changes[k] + " "
	}
	writeJSONPrefixed(q.w, http.StatusOK, stray.String(), result{true, msg})
}

// orderedRules encodes persistent accept rules as a JSON object whose keys
// (the day masks) keep the seed's order, like a PHP array.
type orderedRules []AcceptRule

func (o orderedRules) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, r := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := json.Marshal(struct {
			Start  string   `json:"start"`
			Stop   string   `json:"stop"`
			Groups []string `json:"groups"`
		}{r.Start, r.Stop, nonNil(r.Groups)})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%q:", strconv.Itoa(r.Days))
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (q *request) getAcceptRules() {
	st, ok := q.loadState()
	if !ok {
		return
	}
	rules := q.acct.AcceptRules
	tmp := TemporaryRule{Groups: nonNil(st.Temporary.Groups), Duration: st.Temporary.Duration}
	groups := nonNil(slices.DeleteFunc(slices.Clone(rules.Groups), func(g string) bool { return g == "" }))
	if len(rules.Persistent) == 0 {
		q.ok(struct {
			Temporary TemporaryRule `json:"temporary"`
			Groups    []string      `json:"groups"`
		}{tmp, groups})
		return
	}
	q.ok(struct {
		Persistent orderedRules  `json:"persistent"`
		Temporary  TemporaryRule `json:"temporary"`
		Groups     []string      `json:"groups"`
	}{orderedRules(rules.Persistent), tmp, groups})
}

func (q *request) getRejectRules() { q.ok(nonNil(q.acct.RejectRules)) }

type voicemailReply struct {
	Mailbox  string           `json:"Mailbox"`
	Password string           `json:"Password"`
	Name     string           `json:"Name"`
	Email    string           `json:"Email"`
	Info     string           `json:"Info"`
	Options  VoicemailOptions `json:"Options"`
	Account  string           `json:"Account"`
}

func (q *request) getVoicemail() {
	v := q.acct.Voicemail
	if v == nil {
		q.ok(nil)
		return
	}
	server := v.Server
	if server == "" {
		server = "vm." + q.acct.domain()
	}
	mailbox := v.Mailbox
	if mailbox == "" {
		mailbox = q.acct.user()
	}
	opts := v.Options
	if opts == nil {
		opts = VoicemailOptions{"delete": false}
	}
	q.ok(voicemailReply{mailbox, v.Password, v.Name, v.Email, v.Info, opts, mailbox + "@" + server})
}

func (q *request) setTemporary(groups []string, duration int, msg string) {
	err := q.s.updateState(q.acct, func(st *accountState) error {
		st.Temporary = TemporaryRule{Groups: groups, Duration: duration}
		return nil
	})
	if err != nil {
		q.storeFailed(err)
		return
	}
	q.ok(result{true, msg})
}

func (q *request) setDNDOn() {
	n := phpIntval(q.p.get("duration"))
	n = max(min(n, math.MaxInt32), math.MinInt32)
	msg := "Do not disturb has been enabled"
	if n > 0 {
		msg += fmt.Sprintf(" for %d minutes", n)
	}
	q.setTemporary([]string{"nobody"}, int(n), msg)
}

func (q *request) setDNDOff() {
	q.setTemporary([]string{"everybody"}, 0, "Do not disturb has been disabled")
}

func (q *request) setPrivacy(on bool, msg string) {
	err := q.s.updateState(q.acct, func(st *accountState) error {
		st.Privacy = on
		return nil
	})
	if err != nil {
		q.storeFailed(err)
		return
	}
	q.ok(result{true, msg})
}

func (q *request) setPrivacyOn() { q.setPrivacy(true, "Caller-ID is now hidden for outgoing calls") }
func (q *request) setPrivacyOff() {
	q.setPrivacy(false, "Caller-ID is now visible for outgoing calls")
}
