package accountserver

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestFirstChallenge(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct{ realmParam, realm string }{
		{"example.com", "example.com"},
		{"alice@example.com", "example.com"},
		{"", "SIP_settings"},
	} {
		q := url.Values{"action": {"get_identity"}}
		if tc.realmParam != "" {
			q.Set("realm", tc.realmParam)
		}
		r := e.do(http.DefaultClient, q, nil)
		m := challengeRE.FindStringSubmatch(r.header.Get("WWW-Authenticate"))
		if r.status != 401 || r.body != "" || m == nil {
			t.Fatalf("realm %q: got %d %q body %q", tc.realmParam, r.status, r.header.Get("WWW-Authenticate"), r.body)
		}
		if m[1] != tc.realm || m[3] != md5s(tc.realm) {
			t.Errorf("realm %q: challenge realm %q opaque %q", tc.realmParam, m[1], m[3])
		}
		raw, err := base64.StdEncoding.DecodeString(m[2])
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^\d+\.\d{4}:[0-9a-f]{32}$`).Match(raw) {
			t.Errorf("nonce decodes to %q", raw)
		}
		if !strings.HasPrefix(string(raw), "1795637017.") { // 2026-11-25 19:58:37 UTC + 300 s
			t.Errorf("nonce expiry %q", raw)
		}
	}
}

func TestDigestFailures(t *testing.T) {
	e := newEnv(t, nil)
	const uri = "/settings.phtml?action=get_identity&realm=example.com"
	const query = "action=get_identity&realm=example.com"
	nonce := e.challengeFor("example.com")
	good := authHeader("alice", "example.com", "secret", "GET", uri, nonce)
	wantBody(t, e.raw(query, good), 200, `{"sip_address":"alice@example.com","email":"alice@mail.example.com","first":"Alice","lastname":"Liddell","pstn_caller_id":"+31201234567","mobile_number":"+31612345678","timezone":"Europe\/Amsterdam","no_answer_timeout":20,"quick_dial":"31"}`)

	t.Run("missing parts", func(t *testing.T) {
		for _, part := range []string{"nc", "cnonce", "qop", "username", "uri", "response", "nonce"} {
			re := regexp.MustCompile(`(^Digest |, )` + part + `=("[^"]*"|[^,]*)`)
			h := re.ReplaceAllString(good, "${1}x=1")
			if h == good {
				t.Fatalf("could not drop %s", part)
			}
			wantBody(t, e.raw(query, h), 200, "Invalid credentials from %s")
		}
	})
	rechallenge := regexp.MustCompile(`^Digest realm="example.com",qop="auth",nonce="[^"]+",opaque="5ababd603b22780302dd8d83498e5172"$`)
	t.Run("wrong password", func(t *testing.T) {
		r := e.raw(query, authHeader("alice", "example.com", "wrong", "GET", uri, nonce))
		if r.status != 401 || r.body != "" || !rechallenge.MatchString(r.header.Get("WWW-Authenticate")) {
			t.Errorf("got %d %q %q", r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("method counts", func(t *testing.T) {
		r := e.raw(query, authHeader("alice", "example.com", "secret", "POST", uri, nonce))
		if r.status != 401 {
			t.Errorf("response for POST accepted on GET: %d", r.status)
		}
	})
	t.Run("uri not compared", func(t *testing.T) {
		r := e.raw(query, authHeader("alice", "example.com", "secret", "GET", "/elsewhere", nonce))
		if r.status != 200 {
			t.Errorf("got %d", r.status)
		}
	})
	t.Run("forged nonce", func(t *testing.T) {
		forged := base64.StdEncoding.EncodeToString([]byte("9999999999.0000:" + strings.Repeat("0", 32)))
		r := e.raw(query, authHeader("alice", "example.com", "secret", "GET", uri, forged))
		if r.status != 401 || !rechallenge.MatchString(r.header.Get("WWW-Authenticate")) {
			t.Errorf("got %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("stale", func(t *testing.T) {
		e.clock.Add(301 * time.Second)
		defer e.clock.Add(-301 * time.Second)
		r := e.raw(query, good)
		stale := regexp.MustCompile(`^Digest realm="example.com",qop="auth",nonce="[^"]+",stale=true, opaque="5ababd603b22780302dd8d83498e5172"$`)
		if r.status != 401 || r.body != "" || !stale.MatchString(r.header.Get("WWW-Authenticate")) {
			t.Errorf("got %d %q %q", r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unknown domain", func(t *testing.T) {
		n := e.challengeFor("other.net")
		r := e.raw("action=get_identity&realm=other.net", authHeader("alice", "other.net", "secret", "GET", uri, n))
		wantBody(t, r, 200, "error: no domainFilter available in ngnpro_engines.inc")
	})
	t.Run("unknown account", func(t *testing.T) {
		r := e.raw(query, authHeader("nobody", "example.com", "secret", "GET", uri, nonce))
		if r.status != 401 || r.body != "" || !rechallenge.MatchString(r.header.Get("WWW-Authenticate")) {
			t.Errorf("got %d %q %q", r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("not digest", func(t *testing.T) {
		r := e.raw(query, "Basic YWxpY2U6c2VjcmV0")
		if r.status != 401 || !challengeRE.MatchString(r.header.Get("WWW-Authenticate")) {
			t.Errorf("got %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
	})
}

// TestPasswordModes is the §11.3 table, run with the digest transport.
func TestPasswordModes(t *testing.T) {
	e := newEnv(t, nil)
	const noDomain = "error: no domainFilter available in ngnpro_engines.inc"
	type mode struct {
		user, domain, pw string
	}
	modes := map[string]mode{
		"web password": {"web", "example.com", "webpw"},
		"stored ha1":   {"hashed", "example.org", "hpw"},
		"clear text":   {"alice", "example.com", "secret"},
	}
	for name, m := range modes {
		clear := name == "clear text"
		cases := []struct {
			user, realm string // realm "" = no realm parameter
			ok          bool
			body        string
		}{
			{m.user, m.domain, true, ""},
			{m.user, m.user + "@" + m.domain, true, ""},
			{m.user + "@" + m.domain, m.domain, clear, ""},
			{m.user + "@" + m.domain, "", clear, ""},
			{strings.ToUpper(m.user), m.domain, clear, ""},
			{m.user, "", false, noDomain},
			{m.user, strings.ToUpper(m.domain), false, noDomain},
		}
		for _, tc := range cases {
			q := url.Values{"action": {"get_journal_entries"}}
			if tc.realm != "" {
				q.Set("realm", tc.realm)
			}
			r := e.do(e.client(tc.user, m.pw), q, nil)
			switch {
			case tc.body != "":
				if r.status != 200 || r.body != tc.body {
					t.Errorf("%s: %s/%q: got %d %q", name, tc.user, tc.realm, r.status, r.body)
				}
			case tc.ok:
				if r.status != 200 || !strings.HasPrefix(r.body, `{"success":true`) {
					t.Errorf("%s: %s/%q: got %d %q, want 200", name, tc.user, tc.realm, r.status, r.body)
				}
			default:
				if r.status != 401 || r.body != "" {
					t.Errorf("%s: %s/%q: got %d %q, want 401", name, tc.user, tc.realm, r.status, r.body)
				}
			}
		}
		// A wrong password is always 401.
		r := e.do(e.client(m.user, "wrong"), url.Values{"action": {"get_identity"}, "realm": {m.domain}}, nil)
		if r.status != 401 || r.body != "" {
			t.Errorf("%s: wrong password: %d %q", name, r.status, r.body)
		}
	}
	// With a web password the SIP password is not accepted.
	r := e.as(e.client("web", "sippw"), "example.com", "get_identity")
	if r.status != 401 {
		t.Errorf("web account with SIP password: %d", r.status)
	}
}

func TestNonceSurvivesRestart(t *testing.T) {
	e := newEnv(t, nil)
	nonce := e.challengeFor("example.com")
	e.restart()
	const uri = "/settings.phtml?action=get_identity&realm=example.com"
	r := e.raw("action=get_identity&realm=example.com", authHeader("alice", "example.com", "secret", "GET", uri, nonce))
	if r.status != 200 {
		t.Fatalf("old nonce after restart: %d %q", r.status, r.body)
	}
}

func TestParseDigest(t *testing.T) {
	d := parseDigest(`username="a,b", realm="r", nonce="n=1", uri="/x?a=1,b", cnonce='c', nc=00000001, qop=auth, response="0"`)
	if d == nil {
		t.Fatal("nil")
	}
	want := map[string]string{"username": "a,b", "nonce": "n=1", "uri": "/x?a=1,b", "cnonce": "c", "nc": "00000001", "qop": "auth", "response": ""}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %q, want %q", k, d[k], v)
		}
	}
	if parseDigest(`username="a", nonce="n", uri="/", response="r", qop=auth, nc=1`) != nil {
		t.Error("accepted a header without cnonce")
	}
}
