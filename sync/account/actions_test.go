package account

import (
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantQuery checks the query of the last request: exactly action, realm
// and extra.
func wantQuery(t *testing.T, s *testServer, action string, extra url.Values) {
	t.Helper()
	want := url.Values{"action": {action}, "realm": {"example.com"}}
	maps.Copy(want, extra)
	if got := s.last().Query; !reflect.DeepEqual(got, want) {
		t.Errorf("query = %v, want %v", got, want)
	}
}

func TestIdentityParsesNullsAndEscapedSlashes(t *testing.T) {
	s := newTestServer(t, reply(`{"sip_address":"alice@example.com","email":"alice@example.org","first":"Alice","lastname":"Liddell","pstn_caller_id":"+31201234567","mobile_number":null,"timezone":"Europe\/Amsterdam","no_answer_timeout":35,"quick_dial":null}`))
	got, err := newClient(t, s).Identity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &Identity{SIPAddress: "alice@example.com", Email: "alice@example.org", FirstName: "Alice", LastName: "Liddell",
		PSTNCallerID: "+31201234567", Timezone: "Europe/Amsterdam", NoAnswerTimeout: 35}
	if *got != *want {
		t.Fatalf("Identity = %+v, want %+v", got, want)
	}
	wantQuery(t, s, "get_identity", nil)
}

func TestAliasesParsesList(t *testing.T) {
	s := newTestServer(t, reply(`["al@example.com","alice.liddell@example.com"]`))
	got, err := newClient(t, s).Aliases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"al@example.com", "alice.liddell@example.com"}) {
		t.Fatalf("Aliases = %q", got)
	}
	wantQuery(t, s, "get_aliases", nil)
}

const soapErrorFragment = `<div class=row-fluid><div class=span12><span class='alert alert-error'>Error (SipPort): Account not found (1001): <b>alice@example.com</b> does not exist</span></div></div>`

func TestGetterHTMLErrorFragmentIsServerErrorNotEmptyData(t *testing.T) {
	for _, tail := range []string{"[]", "null"} {
		s := newTestServer(t, reply(soapErrorFragment+tail))
		got, err := newClient(t, s).Aliases(t.Context())
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindServer || !e.Retryable() {
			t.Fatalf("fragment+%s: Aliases = %q, %v; want a retryable server error", tail, got, err)
		}
		if want := "Error (SipPort): Account not found (1001): alice@example.com does not exist"; !strings.Contains(e.Message, want) {
			t.Errorf("message %q lacks %q", e.Message, want)
		}
		if strings.Contains(e.Message, "<") {
			t.Errorf("message keeps tags: %q", e.Message)
		}
	}
}

func TestAddAliasSendsUsernameAndReturnsConfirmation(t *testing.T) {
	s := newTestServer(t, reply(`{"success":true,"error_message":"Added alias bob@example.com"}`))
	c := newClient(t, s)
	msg, err := c.AddAlias(t.Context(), "bob")
	if err != nil || msg != "Added alias bob@example.com" {
		t.Fatalf("AddAlias = %q, %v", msg, err)
	}
	wantQuery(t, s, "add_alias", url.Values{"username": {"bob"}})

	if _, err := c.AddAlias(t.Context(), "bob@example.com"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("alias with a domain: err = %v, want ErrInvalidArgument", err)
	}
	if n := len(s.seen()); n != 1 {
		t.Errorf("%d requests, want 1 (the bad alias must not be sent)", n)
	}
}

func TestSetterSuccessFalseIsRejectedWithServerMessage(t *testing.T) {
	s := newTestServer(t, reply(`{"success":false,"error_message":"Error (SipPort): Alias exists (1011): bob@example.com"}`))
	_, err := newClient(t, s).AddAlias(t.Context(), "bob")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindRejected || e.Retryable() || e.Action != "add_alias" {
		t.Fatalf("err = %v, want non-retryable rejected", err)
	}
	if !strings.Contains(e.Message, "Alias exists (1011)") {
		t.Errorf("message = %q", e.Message)
	}
}

func TestSetterBranchesOnSuccessNotOnLocalizedText(t *testing.T) {
	// A Dutch confirmation is still a success; an English-looking error
	// text with success true is still a success.
	s := newTestServer(t, reply(`{"success":true,"error_message":"Niet storen is uitgeschakeld"}`))
	msg, err := newClient(t, s).SetDNDOff(t.Context())
	if err != nil || msg != "Niet storen is uitgeschakeld" {
		t.Fatalf("SetDNDOff = %q, %v", msg, err)
	}
	wantQuery(t, s, "set_dnd_off", nil)
}

func TestEnumParsesNumbers(t *testing.T) {
	s := newTestServer(t, reply(`["+31201234567"]`))
	got, err := newClient(t, s).Enum(t.Context())
	if err != nil || !slices.Equal(got, []string{"+31201234567"}) {
		t.Fatalf("Enum = %q, %v", got, err)
	}
	wantQuery(t, s, "get_enum", nil)
}

func TestHistoryParsesCallsAndNullDirections(t *testing.T) {
	s := newTestServer(t, reply(`{"placed":[{"remoteParty":"bob@example.com","displayName":"","startTime":"2026-11-24 10:11:12","stopTime":"2026-11-24 10:12:00","timezone":"Europe\/Amsterdam","duration":48,"status":"200","price":"0.0120","sessionId":"abc@192.0.2.7","fromTag":"f1","toTag":"t1","proxyIP":"192.0.2.1","media":["audio","video"]}],"received":null}`))
	got, err := newClient(t, s).History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &History{Placed: []Call{{RemoteParty: "bob@example.com", StartTime: "2026-11-24 10:11:12", StopTime: "2026-11-24 10:12:00",
		Timezone: "Europe/Amsterdam", Duration: 48, Status: 200, Price: "0.0120", SessionID: "abc@192.0.2.7", FromTag: "f1", ToTag: "t1",
		ProxyIP: "192.0.2.1", Media: []string{"audio", "video"}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("History = %+v\nwant %+v", got, want)
	}
	wantQuery(t, s, "get_history", nil)
}

func TestDevicesParsesListAndNullIsNone(t *testing.T) {
	s := newTestServer(t, reply(`[{"contact":"192.0.2.7:5061","publicContact":"198.51.100.4:40001","expires":3600,"user_agent":"Blink 5.1","transport":"tls"}]`))
	c := newClient(t, s)
	got, err := c.Devices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{{Contact: "192.0.2.7:5061", PublicContact: "198.51.100.4:40001", Expires: "3600", UserAgent: "Blink 5.1", Transport: "tls"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Devices = %+v", got)
	}
	wantQuery(t, s, "get_devices", nil)

	s.setHandler(reply("null"))
	if got, err := c.Devices(t.Context()); err != nil || got != nil {
		t.Fatalf("Devices on null = %+v, %v", got, err)
	}
}

func TestPrepaidKeepsBalanceAndRawObject(t *testing.T) {
	body := `{"balance":12.5,"session_counter":0,"max_sessions":1}`
	s := newTestServer(t, reply(body))
	got, err := newClient(t, s).Prepaid(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Balance != "12.5" || string(got.Raw) != body {
		t.Fatalf("Prepaid = %+v", got)
	}
	wantQuery(t, s, "get_prepaid", nil)
}

func TestBalanceHistoryParsesEntries(t *testing.T) {
	s := newTestServer(t, reply(`[{"id":"7","date":"2026-11-01 10:00:00","action":"Debit balance","description":"Session to +31201234567","value":"-0.1200","balance":"12.3800"}]`))
	got, err := newClient(t, s).BalanceHistory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("BalanceHistory = %+v", got)
	}
	e := got[0]
	if e.Date != "2026-11-01 10:00:00" || e.Action != "Debit balance" || e.Description != "Session to +31201234567" ||
		e.Value != "-0.1200" || e.Balance != "12.3800" || !strings.Contains(string(e.Raw), `"id":"7"`) {
		t.Fatalf("entry = %+v", e)
	}
	wantQuery(t, s, "get_balance_history", nil)
}

func TestMonthlyUsageParsesIntendedShape(t *testing.T) {
	s := newTestServer(t, reply(`{"calls":"12","price":"1.40"}`))
	got, err := newClient(t, s).MonthlyUsage(t.Context())
	if err != nil || *got != (MonthlyUsage{Calls: 12, Price: "1.40"}) {
		t.Fatalf("MonthlyUsage = %+v, %v", got, err)
	}
	wantQuery(t, s, "get_monthly_usage", nil)
}

func TestMonthlyUsageFatalErrorIsServerError(t *testing.T) {
	// The real get_monthly_usage calls a private method (PROTOCOL §5.9).
	s := newTestServer(t, reply("<br />\n<b>Fatal error</b>:  Uncaught Error: Call to private method SipSettings::getCallStatistics() from global scope in /var/www/CDRTool/library/sip_settings.php:9876\nStack trace:\n#0 {main}\n  thrown in <b>/var/www/CDRTool/library/sip_settings.php</b> on line <b>9876</b><br />\n"))
	_, err := newClient(t, s).MonthlyUsage(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindServer || !strings.Contains(e.Message, "Call to private method") {
		t.Fatalf("err = %v, want server error quoting the PHP error", err)
	}
}

func TestCallForwardingKeepsSetConditionsOnly(t *testing.T) {
	s := newTestServer(t, reply(`{"FUNC":null,"FNOL":"<voice-mailbox>","FBUS":"bob@example.com","FNOA":"+31201234567@example.com","FUNV":null}`))
	got, err := newClient(t, s).CallForwarding(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ForwardNotOnline: TargetVoicemail, ForwardBusy: "bob@example.com", ForwardNoAnswer: "+31201234567@example.com"}
	if !maps.Equal(got, want) {
		t.Fatalf("CallForwarding = %v, want %v", got, want)
	}
	wantQuery(t, s, "get_call_forwarding", nil)
}

func TestSetCallForwardingParsesPastStrayTextAndEncodesTargets(t *testing.T) {
	// The real reply starts with a leftover printf per key (PROTOCOL §5.8).
	s := newTestServer(t, reply(`Key FNOL changed <voice-mailbox>Key FBUS changed 0612345678Key FUNC changed {"success":true,"error_message":"Changed diversions FNOL=<voice-mailbox> FBUS=sip:0612345678@example.com "}`))
	msg, err := newClient(t, s).SetCallForwarding(t.Context(), map[string]string{
		ForwardNotOnline: TargetVoicemail, ForwardBusy: "0612345678", ForwardAll: "",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Changed diversions FNOL=<voice-mailbox> FBUS=sip:0612345678@example.com"; msg != want {
		t.Errorf("message = %q, want %q", msg, want)
	}
	r := s.last()
	if !strings.Contains(r.RequestURI, "FNOL=%3Cvoice-mailbox%3E") || !strings.Contains(r.RequestURI, "FUNC=&") {
		t.Errorf("request uri %q: want FNOL=%%3Cvoice-mailbox%%3E and an empty FUNC", r.RequestURI)
	}
	wantQuery(t, s, "set_call_forwarding", url.Values{"FNOL": {"<voice-mailbox>"}, "FBUS": {"0612345678"}, "FUNC": {""}})
}

func TestSetCallForwardingRejectsUnknownKeysBeforeSending(t *testing.T) {
	s := newTestServer(t, reply(`{"success":true,"error_message":"Diversions remained the same"}`))
	c := newClient(t, s)
	for _, m := range []map[string]string{{"FOO": "x"}, {"func": "x"}, {}} {
		if _, err := c.SetCallForwarding(t.Context(), m); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%v: err = %v, want ErrInvalidArgument", m, err)
		}
	}
	if n := len(s.seen()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestAcceptRulesParsesDayMasksAndTemporary(t *testing.T) {
	s := newTestServer(t, reply(`{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]},"96":{"start":"00:00","stop":"23:59","groups":["nobody"]}},"temporary":{"groups":["nobody"],"duration":30},"groups":["family"]}`))
	got, err := newClient(t, s).AcceptRules(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &AcceptRules{
		Persistent: map[int]AcceptRule{
			31: {Start: "09:00", Stop: "17:00", Groups: []string{"everybody"}},
			96: {Start: "00:00", Stop: "23:59", Groups: []string{"nobody"}},
		},
		Temporary: &TemporaryRule{Groups: []string{"nobody"}, Duration: 30},
		Groups:    []string{"family"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AcceptRules = %+v\nwant %+v", got, want)
	}
	wantQuery(t, s, "get_accept_rules", nil)
}

func TestRejectRulesParsesURIs(t *testing.T) {
	s := newTestServer(t, reply(`["sip:spam@example.net","sip:+3190012345@example.com"]`))
	got, err := newClient(t, s).RejectRules(t.Context())
	if err != nil || !slices.Equal(got, []string{"sip:spam@example.net", "sip:+3190012345@example.com"}) {
		t.Fatalf("RejectRules = %q, %v", got, err)
	}
	wantQuery(t, s, "get_reject_rules", nil)
}

func TestVoicemailParsesBoxAndNullIsNone(t *testing.T) {
	// The real server's reply: Options is a structure (PROTOCOL §12).
	s := newTestServer(t, reply(`{"Mailbox":"1001","Password":"1234","Name":"Alice","Email":"a@x","Info":"","Options":{"delete":false},"Account":"1001@vm.example.com"}`))
	c := newClient(t, s)
	got, err := c.Voicemail(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &Voicemail{Mailbox: "1001", Password: "1234", Name: "Alice", Email: "a@x", Options: json.RawMessage(`{"delete":false}`), Account: "1001@vm.example.com"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Voicemail = %+v (options %s)\nwant %+v", got, got.Options, want)
	}
	wantQuery(t, s, "get_voicemail", nil)
	js, _ := json.Marshal(got)
	if !strings.Contains(string(js), `"options":{"delete":false}`) {
		t.Errorf("JSON of the box: %s", js)
	}

	// An old server's string Options, spaced-out JSON, and a null one.
	for _, tc := range []struct{ options, want string }{
		{`"attach=yes"`, `"attach=yes"`},
		{`{ "delete" : true, "n": [1, 2] }`, `{"delete":true,"n":[1,2]}`},
		{`null`, ``},
	} {
		s.setHandler(reply(`{"Mailbox":"1234","Password":"9876","Name":"Alice Liddell","Email":"alice@example.org","Info":null,"Options":` + tc.options + `,"Account":"1234@vm.example.com"}`))
		got, err := c.Voicemail(t.Context())
		if err != nil {
			t.Fatalf("Options %s: %v", tc.options, err)
		}
		if string(got.Options) != tc.want || got.Mailbox != "1234" || got.Info != "" || got.Account != "1234@vm.example.com" {
			t.Errorf("Options %s: got %+v (options %s), want options %s", tc.options, got, got.Options, tc.want)
		}
	}
	s.setHandler(reply(`{"Mailbox":"1234","Password":"9876","Name":"Alice","Email":"","Info":"","Account":"1234@vm.example.com"}`))
	if got, err := c.Voicemail(t.Context()); err != nil || got.Options != nil {
		t.Fatalf("Voicemail without Options = %+v, %v", got, err)
	}
	js, _ = json.Marshal(&Voicemail{Mailbox: "1"})
	if strings.Contains(string(js), "options") {
		t.Errorf("no options: %s", js)
	}

	s.setHandler(reply("null"))
	if got, err := c.Voicemail(t.Context()); err != nil || got != nil {
		t.Fatalf("Voicemail on null = %+v, %v", got, err)
	}
}

func TestSetDNDOnSendsWholeMinutes(t *testing.T) {
	s := newTestServer(t, reply(`{"success":true,"error_message":"Do not disturb has been enabled for 90 minutes"}`))
	c := newClient(t, s)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{90 * time.Minute, "90"}, {90 * time.Second, "2"}, {time.Hour + time.Second, "61"}, {0, "0"}, {-time.Minute, "0"}} {
		msg, err := c.SetDNDOn(t.Context(), tc.d)
		if err != nil || msg != "Do not disturb has been enabled for 90 minutes" {
			t.Fatalf("SetDNDOn(%v) = %q, %v", tc.d, msg, err)
		}
		wantQuery(t, s, "set_dnd_on", url.Values{"duration": {tc.want}})
	}
}

func TestPrivacySettersSendTheirActions(t *testing.T) {
	s := newTestServer(t, nil)
	c := newClient(t, s)
	s.setHandler(reply(`{"success":true,"error_message":"Caller-ID is now hidden for outgoing calls"}`))
	if msg, err := c.SetPrivacyOn(t.Context()); err != nil || msg != "Caller-ID is now hidden for outgoing calls" {
		t.Fatalf("SetPrivacyOn = %q, %v", msg, err)
	}
	wantQuery(t, s, "set_privacy_on", nil)
	s.setHandler(reply(`{"success":true,"error_message":"Caller-ID is now visible for outgoing calls"}`))
	if msg, err := c.SetPrivacyOff(t.Context()); err != nil || msg != "Caller-ID is now visible for outgoing calls" {
		t.Fatalf("SetPrivacyOff = %q, %v", msg, err)
	}
	wantQuery(t, s, "set_privacy_off", nil)
}

func TestUnknownActionReplyIsRejected(t *testing.T) {
	s := newTestServer(t, reply(`{"success":false,"error_message":"Error: invalid action"}`))
	js, err := newClient(t, s).Do(t.Context(), "get_everything", nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindRejected || !strings.Contains(e.Message, "Error: invalid action") {
		t.Fatalf("err = %v, want rejected", err)
	}
	if string(js) != `{"success":false,"error_message":"Error: invalid action"}` {
		t.Errorf("Do returned %s alongside the error", js)
	}
}

func TestDoReturnsCleanJSON(t *testing.T) {
	s := newTestServer(t, reply("Key FUNC changed 123{\"success\":true,\"error_message\":\"Changed diversions FUNC=sip:123@example.com \"}"))
	js, err := newClient(t, s).Do(t.Context(), "set_call_forwarding", url.Values{"FUNC": {"123"}})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(js, &v); err != nil || v["success"] != true {
		t.Fatalf("Do = %s (%v)", js, err)
	}
	r := s.last()
	if r.Method != "GET" || r.Query.Get("FUNC") != "123" || r.Query.Get("action") != "set_call_forwarding" {
		t.Fatalf("request %+v", r)
	}
}

func TestDoSendsJournalWritesAsFormPOST(t *testing.T) {
	s := newTestServer(t, reply(`{"results":[],"success":true}`))
	_, err := newClient(t, s).Do(t.Context(), "put_journal_entries", url.Values{"uuid": {"A"}, "data": {"{}"}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.last()
	if r.Method != "POST" || r.Form.Get("uuid") != "A" || r.Form.Get("data") != "{}" || r.Query.Get("uuid") != "" {
		t.Fatalf("request %+v", r)
	}
}

func TestDoRefusesReservedParamsAndBadActions(t *testing.T) {
	s := newTestServer(t, reply(`[]`))
	c := newClient(t, s)
	for _, tc := range []struct {
		action string
		params url.Values
	}{
		{"get_enum", url.Values{"realm": {"evil.example"}}},
		{"get_enum", url.Values{"action": {"set_dnd_on"}}},
		{"", nil},
		{"get enum", nil},
		{"get_enum&x=1", nil},
	} {
		if _, err := c.Do(t.Context(), tc.action, tc.params); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Do(%q, %v): err = %v, want ErrInvalidArgument", tc.action, tc.params, err)
		}
	}
	if n := len(s.seen()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}
