package account

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCleanReplyAcceptsQuirksAndRefusesErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want string // cleaned JSON, when ok
		kind Kind   // error kind otherwise
	}{
		{"plain object", `{"a":1}`, `{"a":1}`, 0},
		{"trailing newline and BOM", "\xef\xbb\xbf{\"a\":1}\n", `{"a":1}`, 0},
		{"bare null", "null", "null", 0},
		{"stray forwarding text", `Key FUNC changed 123{"success":true}`, `{"success":true}`, 0},
		{"forwarding text with braces in value", `Key FUNC changed {x}{"success":true}`, `{"success":true}`, 0},
		{"text-mode PHP notice", "\nNotice: Undefined index: limit in /x.php on line 3\n[1,2]", "[1,2]", 0},
		{"html warning", "<br />\n<b>Warning</b>:  Undefined variable $limit in <b>/x.php</b> on line <b>9</b><br />\n{\"rows\":0}", `{"rows":0}`, 0},
		{"empty", "  \n", "", KindServer},
		{"invalid credentials", "Invalid credentials from %s", "", KindAuth},
		{"no domain filter", "error: no domainFilter available in ngnpro_engines.inc", "", KindAuth},
		{"html error fragment then object", soapErrorFragment + `{"FUNC":null}`, "", KindServer},
		{"fatal error then json", "<b>Fatal error</b>: boom\n[]", "", KindServer},
		{"unknown prefix", `hello there{"success":true}`, "", KindMalformed},
		{"html page", "<!DOCTYPE html><html><head><title>Login</title></head><body>x</body></html>", "", KindMalformed},
		{"plain text", "Service temporarily down", "", KindMalformed},
		{"truncated json", `{"results":[{"id":"1"`, "", KindMalformed},
		{"two objects", `{"a":1}{"b":2}`, "", KindMalformed},
		{"null glued to a word", "annull", "", KindMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, e := cleanReply([]byte(tc.body))
			if tc.kind == 0 {
				if e != nil || string(got) != tc.want {
					t.Fatalf("cleanReply = %q, %v; want %q", got, e, tc.want)
				}
				return
			}
			if e == nil || e.Kind != tc.kind {
				t.Fatalf("cleanReply = %q, %v; want kind %v", got, e, tc.kind)
			}
		})
	}
}

func TestCleanReplyBoundsCandidateStarts(t *testing.T) {
	// Many openers before the JSON: give up after maxJSONStarts tries
	// rather than re-scanning the body once per opener.
	body := strings.Repeat("{", 1<<20) + `{"a":1}`
	start := time.Now()
	_, e := cleanReply([]byte(body))
	if e == nil || e.Kind != KindMalformed {
		t.Fatalf("err = %v, want malformed", e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	// A few openers in a real prefix are fine.
	body = strings.Repeat("Key FUNC changed {\n", maxJSONStarts-1) + `{"success":true}`
	if got, e := cleanReply([]byte(body)); e != nil || string(got) != `{"success":true}` {
		t.Fatalf("cleanReply = %q, %v", got, e)
	}
}

func TestCleanReplyAllocationIsLinear(t *testing.T) {
	bodies := [][]byte{
		bytes.Repeat([]byte("["), 4<<20),
		append(bytes.Repeat([]byte("<b>Warning</b>: x {\n"), 100000), []byte("[1]")...),
		append([]byte("Key FUNC changed "), bytes.Repeat([]byte(`{"a":`), 200000)...),
	}
	for i, b := range bodies {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cleanReply(b)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(16*len(b)+1<<20) {
			t.Errorf("body %d (%d bytes): allocated %d bytes", i, len(b), alloc)
		}
	}
}

func TestOversizedReplyIsMalformed(t *testing.T) {
	s := newTestServer(t, reply(`["`+strings.Repeat("x", 2000)+`"]`))
	_, err := newClient(t, s, func(c *Config) { c.MaxReplyBytes = 1000 }).Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindMalformed || !strings.Contains(e.Message, "larger than 1000 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestWrongSettingsURLIsNotRetryable(t *testing.T) {
	s := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	_, err := newClient(t, s).Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindServer || e.StatusCode != 404 || e.Retryable() || !strings.Contains(e.Message, "settings_url") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"30":                            30 * time.Second,
		"-5":                            0,
		"soon":                          0,
		"99999999":                      24 * time.Hour,
		"Wed, 25 Nov 2026 20:01:00 GMT": time.Minute,
		"Wed, 25 Nov 2026 19:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFindChallengeParsesServerFormatsAndVariants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
		realm  string
		nonce  string
		opaque string
		stale  bool
		ok     bool
	}{
		{"first challenge", []string{`Digest realm="example.com", qop="auth", nonce="MTc5NTYzNzAzMS45MDQzOjdjMDA=", opaque="5ababd603b22780302dd8d83498e5172"`},
			"example.com", "MTc5NTYzNzAzMS45MDQzOjdjMDA=", "5ababd603b22780302dd8d83498e5172", false, true},
		{"re-challenge without spaces", []string{`Digest realm="example.com",qop="auth",nonce="bm9uY2U=",opaque="abc"`},
			"example.com", "bm9uY2U=", "abc", false, true},
		{"stale", []string{`Digest realm="example.com",qop="auth",nonce="bjI=",stale=true, opaque="abc"`},
			"example.com", "bjI=", "abc", true, true},
		{"unquoted values and tabs", []string{"Digest realm=example.com,\tnonce=bm9u+Y2U/=,algorithm=MD5, qop=\"auth,auth-int\",stale=TRUE"},
			"example.com", "bm9u+Y2U/=", "", true, true},
		{"escaped quote in realm", []string{`Digest realm="ex\"ample", nonce="n"`}, `ex"ample`, "n", "", false, true},
		{"after a basic challenge in one header", []string{`Basic realm="x", Digest realm="example.com", nonce="n", qop="auth"`},
			"example.com", "n", "", false, true},
		{"second header", []string{`Basic realm="x"`, `Digest realm="example.com", nonce="n"`}, "example.com", "n", "", false, true},
		{"sha-256 only", []string{`Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"`}, "", "", "", false, false},
		{"auth-int only", []string{`Digest realm="r", nonce="n", qop="auth-int"`}, "", "", "", false, false},
		{"no nonce", []string{`Digest realm="r", qop="auth"`}, "", "", "", false, false},
		{"unterminated quote", []string{`Digest realm="r, nonce="n"`}, "", "", "", false, false},
		{"basic only", []string{`Basic realm="r"`}, "", "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.header {
				h.Add("WWW-Authenticate", v)
			}
			c, err := findChallenge(h)
			if !tc.ok {
				if err == nil {
					t.Fatalf("found %+v, want none", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Realm != tc.realm || c.Nonce != tc.nonce || c.Opaque != tc.opaque || c.Stale != tc.stale {
				t.Fatalf("challenge = %+v", c)
			}
			if c.Algorithm != "" && c.Algorithm != "MD5" {
				t.Fatalf("algorithm = %q", c.Algorithm)
			}
		})
	}
	c, _ := findChallenge(http.Header{"Www-Authenticate": {`Digest realm="r", nonce="n", qop="auth-int, auth"`}})
	if c == nil || !slices.Equal(c.QOP, []string{"auth-int", "auth"}) {
		t.Fatalf("qop list = %+v", c)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
	for name, cfg := range map[string]Config{
		"no domain":       {Address: "alice", SettingsURL: "https://x.example/s", Password: "p"},
		"two ats":         {Address: "a@b@c", SettingsURL: "https://x.example/s", Password: "p"},
		"empty user":      {Address: "@example.com", SettingsURL: "https://x.example/s", Password: "p"},
		"bad scheme":      {Address: "a@example.com", SettingsURL: "ftp://x.example/s", Password: "p"},
		"no host":         {Address: "a@example.com", SettingsURL: "https:///s", Password: "p"},
		"creds in url":    {Address: "a@example.com", SettingsURL: "https://u:pw@x.example/s", Password: "p"},
		"no password":     {Address: "a@example.com", SettingsURL: "https://x.example/s"},
		"missing ca file": {Address: "a@example.com", SettingsURL: "https://x.example/s", Password: "p", CAFile: filepath.Join(dir, "nope.pem")},
		"ca without cert": {Address: "a@example.com", SettingsURL: "https://x.example/s", Password: "p", CAFile: empty},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		} else if strings.Contains(err.Error(), "pw") && name == "creds in url" {
			t.Errorf("%s: error leaks the URL password: %v", name, err)
		}
	}
}

func TestCAFileIsTrustedOnTopOfSystemRoots(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(enumReply)) // no auth: this test is about TLS
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Address: "alice@example.com", SettingsURL: srv.URL + "/settings.phtml", Password: "p"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enum(t.Context()); !IsKind(err, KindTransport) {
		t.Fatalf("without ca_file: err = %v, want a transport (TLS) error", err)
	}
	cfg.CAFile = caFile
	c, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Enum(t.Context())
	if err != nil || len(got) != 2 {
		t.Fatalf("with ca_file: %q, %v", got, err)
	}
}
