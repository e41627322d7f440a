package accountserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestActions(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		action string
		kv     []string
		body   string
	}{
		{"get_identity", nil, `{"sip_address":"alice@example.com","email":"alice@mail.example.com","first":"Alice","lastname":"Liddell","pstn_caller_id":"+31201234567","mobile_number":"+31612345678","timezone":"Europe\/Amsterdam","no_answer_timeout":20,"quick_dial":"31"}`},
		{"get_aliases", nil, `["alice.l@example.com","wonder@example.com"]`},
		{"get_enum", nil, `["+31201234567"]`},
		{"get_history", nil, `{"placed":[{"remoteParty":"bob@example.com","displayName":"","startTime":"2026-11-20 10:00:00","stopTime":"2026-11-20 10:01:00","timezone":"Europe\/Amsterdam","duration":60,"status":200,"price":0.25,"sessionId":"s1","fromTag":"f1","toTag":"t1","proxyIP":"192.0.2.1","media":["audio","video"]}],"received":[{"remoteParty":"carol@example.com","displayName":"Carol","startTime":"2026-10-01 08:00:00","stopTime":"2026-10-01 08:00:10","timezone":"Europe\/Amsterdam","duration":10,"status":200,"sessionId":"s2","fromTag":"f2","toTag":"t2","proxyIP":"192.0.2.2","media":["audio"]}]}`},
		{"get_devices", nil, `[{"contact":"192.0.2.7:5061","publicContact":"198.51.100.7:40000","expires":600,"user_agent":"Blink 5.0","transport":"tls"}]`},
		{"get_prepaid", nil, `{"balance":12.5}`},
		{"get_balance_history", nil, `[{"date":"2026-11-01 00:00:00","action":"Add balance","description":"Card 1234","value":20,"balance":20},{"date":"2026-11-02 00:00:00","action":"Session","description":"Free call","value":0,"balance":20}]`},
		{"get_monthly_usage", nil, `{"calls":1,"price":0.25}`},
		{"get_call_forwarding", nil, `{"FUNC":null,"FNOL":null,"FBUS":"bob@example.com","FNOA":"<voice-mailbox>","FUNV":null}`},
		{"get_accept_rules", nil, `{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]}},"temporary":{"groups":["everybody"],"duration":0},"groups":["coworkers"]}`},
		{"get_reject_rules", nil, `["sip:spam@example.net"]`},
		{"get_voicemail", nil, `{"Mailbox":"1001","Password":"1234","Name":"Alice","Email":"alice@mail.example.com","Info":"","Options":{"attach":"yes","delete":true,"keep_days":30},"Account":"1001@vm.example.com"}`},
		{"add_alias", nil, `{"success":false,"error_message":"Error: missing username"}`},
		{"add_alias", []string{"username", "  Al2 "}, `{"success":true,"error_message":"Added alias al2"}`},
		{"add_alias", []string{"username", "al2"}, `{"success":false,"error_message":"Error (SipPort): Alias al2@example.com already exists"}`},
		{"add_alias", []string{"username", "bob"}, `{"success":false,"error_message":"Error (SipPort): Alias bob@example.com already exists"}`},
		{"get_aliases", nil, `["al2@example.com","alice.l@example.com","wonder@example.com"]`},
		{"set_call_forwarding", nil, `{"success":true,"error_message":"Diversions remained the same"}`},
		{"set_call_forwarding", []string{"FUNC", "+31 20", "FBUS", "", "FUNV", "<mobile-number>", "FNOL", "carol@other.net"},
			`Key FUNC changed +31 20Key FNOL changed carol@other.netKey FBUS changed Key FUNV changed <mobile-number>{"success":true,"error_message":"Changed diversions FUNC=sip:+31 20@example.com FNOL=sip:carol@other.net FBUS= FUNV=sip:+31612345678@example.com "}`},
		{"get_call_forwarding", nil, `{"FUNC":"+31 20@example.com","FNOL":"carol@other.net","FBUS":null,"FNOA":"<voice-mailbox>","FUNV":"+31612345678@example.com"}`},
		{"set_call_forwarding", []string{"FNOA", "0101@elsewhere.org", "FUNC", "<voice-mailbox>"},
			`Key FUNC changed <voice-mailbox>Key FNOA changed 0101@elsewhere.org{"success":true,"error_message":"Changed diversions FUNC=<voice-mailbox> FNOA=sip:0101@example.com "}`},
		{"get_call_forwarding", nil, `{"FUNC":"<voice-mailbox>","FNOL":"carol@other.net","FBUS":null,"FNOA":"0101@example.com","FUNV":"+31612345678@example.com"}`},
		{"set_dnd_on", []string{"duration", "15"}, `{"success":true,"error_message":"Do not disturb has been enabled for 15 minutes"}`},
		{"get_accept_rules", nil, `{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]}},"temporary":{"groups":["nobody"],"duration":15},"groups":["coworkers"]}`},
		{"set_dnd_on", nil, `{"success":true,"error_message":"Do not disturb has been enabled"}`},
		{"set_dnd_off", nil, `{"success":true,"error_message":"Do not disturb has been disabled"}`},
		{"get_accept_rules", nil, `{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]}},"temporary":{"groups":["everybody"],"duration":0},"groups":["coworkers"]}`},
		{"set_privacy_on", nil, `{"success":true,"error_message":"Caller-ID is now hidden for outgoing calls"}`},
		{"set_privacy_off", nil, `{"success":true,"error_message":"Caller-ID is now visible for outgoing calls"}`},
		{"get_journal_entries", nil, `{"success":true,"error_message":null,"results":[],"rows":0}`},
		{"get_nothing", nil, `{"success":false,"error_message":"Error: invalid action"}`},
	} {
		wantBody(t, e.alice(tc.action, tc.kv...), 200, tc.body)
	}

	// Defaults of the minimal account.
	bob := e.client("bob", "bobpw")
	for _, tc := range []struct{ action, body string }{
		{"get_identity", `{"sip_address":"bob@example.com","email":"bob@example.com","first":"Bob","lastname":null,"pstn_caller_id":null,"mobile_number":null,"timezone":"Europe\/Amsterdam","no_answer_timeout":35,"quick_dial":null}`},
		{"get_aliases", `[]`},
		{"get_enum", `[]`},
		{"get_history", `{"placed":null,"received":null}`},
		{"get_devices", `null`},
		{"get_prepaid", `{"balance":0}`},
		{"get_balance_history", `[]`},
		{"get_monthly_usage", `{"calls":0,"price":0}`},
		{"get_call_forwarding", `{"FUNC":null,"FNOL":null,"FBUS":null,"FNOA":null,"FUNV":null}`},
		{"get_accept_rules", `{"temporary":{"groups":["everybody"],"duration":0},"groups":[]}`},
		{"get_reject_rules", `[]`},
		{"get_voicemail", `null`},
	} {
		wantBody(t, e.as(bob, "example.com", tc.action), 200, tc.body)
	}
	// A mailbox without options has the real server's default structure.
	wantBody(t, e.as(e.client("web", "webpw"), "example.com", "get_voicemail"), 200,
		`{"Mailbox":"2002","Password":"","Name":"","Email":"","Info":"","Options":{"delete":false},"Account":"2002@voicemail.example.net"}`)
	// The <mobile-number> bug without a mobile number.
	wantBody(t, e.as(bob, "example.com", "set_call_forwarding", "FNOL", "<mobile-number>"), 200,
		`Key FNOL changed <mobile-number>{"success":true,"error_message":"Changed diversions FNOL=sip:<mobile-number>@example.com "}`)
	wantBody(t, e.as(bob, "example.com", "get_call_forwarding"), 200, `{"FUNC":null,"FNOL":"<mobile-number>@example.com","FBUS":null,"FNOA":null,"FUNV":null}`)
}

func TestHTMLReplies(t *testing.T) {
	e := newEnv(t, nil)
	r := e.alice("frobnicate")
	if r.status != 200 || !strings.HasPrefix(r.body, "<!DOCTYPE html>") || !strings.HasSuffix(r.body, "\n"+`{"success":false,"error_message":"Error: invalid action"}`) {
		t.Errorf("unknown action without marker: %q", r.body)
	}
	r = e.alice("")
	if r.status != 200 || !strings.Contains(r.body, "<html>") || !strings.Contains(r.body, "alice@example.com") {
		t.Errorf("no action: %q", r.body)
	}
	r = e.do(e.client("alice", "secret"), url.Values{"action": {"get_identity"}}, nil)
	if r.status != 200 || r.body != "error: no domainFilter available in ngnpro_engines.inc" {
		t.Errorf("no realm: %d %q", r.status, r.body)
	}
	resp, err := http.Get(e.hs.URL + "/other.phtml")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("other path: %d", resp.StatusCode)
	}
}

func TestBalanceHistoryCSV(t *testing.T) {
	e := newEnv(t, nil)
	r := e.alice("get_balance_history", "csv", "1")
	want := "Id,Account,Date,Action,Description,Value,Final Balance\n1,alice@example.com,2026-11-01 00:00:00,Add balance,Card 1234,20.0000,20.0000\n"
	if r.status != 200 || r.body != want {
		t.Errorf("got %d %q", r.status, r.body)
	}
	if ct, cd := r.header.Get("Content-Type"), r.header.Get("Content-Disposition"); ct != "text/csv" || cd != "attachment; filename=alice@example.com-prepaid-history.csv" {
		t.Errorf("headers %q %q", ct, cd)
	}
}

func TestStrictCompat(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.StrictCompat = true })
	r := e.alice("get_monthly_usage")
	if r.status != 500 || r.body != "" {
		t.Errorf("monthly usage: %d %q", r.status, r.body)
	}
	e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"data":"a"},{"data":"b"}]`)
	wantBody(t, e.alice("get_journal_entries", "limit", "1"), 200, `{"success":true,"error_message":null,"results":[],"rows":0}`)
	wantIDs(t, e.alice("get_journal_entries", "limit", "5000"), seq(1, 2))
	wantBody(t, e.alice("delete_journal_entries", "form:data", "[1,2]"), 200, `{"error_message":"database error"}`)
	wantIDs(t, e.alice("get_journal_entries"), seq(1, 2))
}

func TestParamsMerge(t *testing.T) {
	e := newEnv(t, nil)
	// The body wins over the query; the action may come from the body.
	r := e.do(e.client("alice", "secret"), url.Values{"realm": {"example.com"}, "action": {"get_identity"}},
		url.Values{"action": {"put_journal_entries"}, "uuid": {"A"}, "data": {`[{"id":"x","data":"y"}]`}})
	wantBody(t, r, 200, `{"results":[{"id":"x","journal_id":"1","source":"default"}],"success":true}`)
	// PUT with a form body works too, and bad escapes stay literal.
	req, _ := http.NewRequest("PUT", e.url+"?realm=example.com&action=put_journal_entries&uuid=%zz", strings.NewReader("data=%5B%7B%22data%22%3A%22z%25%22%7D%5D&x=%%"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.client("alice", "secret").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantBody(t, reply{resp.StatusCode, readAll(resp), resp.Header}, 200, `{"results":[{"id":null,"journal_id":"2","source":"default"}],"success":true}`)
	rows, _ := e.srv.Entries("alice@example.com")
	if len(rows) != 2 || rows[1].UUID != "%zz" || rows[1].Data != "z%" {
		t.Errorf("rows %+v", rows)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxBody = 1000 })
	r := e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"data":"`+strings.Repeat("x", 1000)+`"}]`)
	if r.status != 413 || r.body != `{"success":false,"error_message":"Request body larger than 1000 bytes"}` {
		t.Errorf("got %d %q", r.status, r.body)
	}
	r = e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"data":"`+strings.Repeat("x", 900)+`"}]`)
	if r.status != 200 {
		t.Errorf("body under the limit: %d", r.status)
	}
	// Without a Content-Length the limit holds as well.
	req, _ := http.NewRequest("POST", e.url+"?realm=example.com&action=put_journal_entries", struct{ *strings.Reader }{strings.NewReader("uuid=A&data=" + strings.Repeat("y", 2000))})
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked body: %d", resp.StatusCode)
	}
}

func TestParseAccountsErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"[[account]]\naddress = \"a@b\"\npassword = \"x\"\npasword = \"y\"\n", `line 4: unknown key "account.pasword"`},
		{"[[account]]\naddress = \"a@b\"\npassword = \"x\"\n[account.forwarding]\nFOO = \"x\"\n", `forwarding key "FOO"`},
		{"[[account]]\naddress = \"ab\"\npassword = \"x\"\n", `address must be "user@domain"`},
		{"[[account]]\naddress = \"a@b\"\n", "set password"},
		{"[[account]]\naddress = \"a@b\"\npassword = 5\n", "line 3"},
		{"[[account]]\naddress = \"a@b\"\npassword = \"x\"\ntimezone = \"Mars/Base\"\n", `timezone "Mars/Base"`},
		{"", "no [[account]]"},
		{"[[account]]\naddress = \"a@b\"\npassword = \"x\"\n[account.voicemail]\noptions = \"attach=yes\"\n", "want a table, e.g. options = { delete = false }"},
	} {
		_, err := ParseAccounts([]byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.toml, err, tc.want)
		}
	}
}

func TestPHPHelpers(t *testing.T) {
	for in, want := range map[string]string{`12.50`: "12.5", `true`: "1", `false`: "", `1e25`: "1.0E+25", `0.00001`: "1.0E-5", `-0`: "0", `123456789012345678901`: "1.2345678901235E+20", `"s"`: "s"} {
		if got, ok := phpScalarString([]byte(in)); !ok || got != want {
			t.Errorf("phpScalarString(%s) = %q, want %q", in, got, want)
		}
	}
	b, _ := phpJSON([]string{"a/b", "é😀", "<&>", `\/`})
	if want := `["a\/b","\u00e9\ud83d\ude00","<&>","\\\/"]`; string(b) != want {
		t.Errorf("phpJSON = %s, want %s", b, want)
	}
	c, _ := canonicalJSON([]byte(` {"b" : [1, 2.50, "x/é", null, true], "a":{}} `))
	if want := `{"b":[1,2.5,"x/é",null,true],"a":{}}`; string(c) != want {
		t.Errorf("canonicalJSON = %s, want %s", c, want)
	}
	for in, want := range map[string]int64{"12abc": 12, " -3": -3, "abc": 0, "99999999999999999999": 1<<63 - 1} {
		if got := phpIntval(in); got != want {
			t.Errorf("phpIntval(%q) = %d", in, got)
		}
	}
}
