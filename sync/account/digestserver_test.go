package account

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer reproduces the real settings page's digest check
// (PROTOCOL §2, getSipAccountFromHTTPDigest) in front of a per-test
// handler: stateless nonces base64(T ":" md5(T ":" key)) with T an absolute
// expiry, challenges without algorithm, empty 401 bodies, re-challenges
// with no space after the commas, stale=true for an expired nonce, and the
// 200-with-text replies for malformed headers and unknown domains. Its
// clock is set by the test, so expiry needs no sleeping.
type testServer struct {
	*httptest.Server
	t *testing.T

	mu            sync.Mutex
	clock         time.Time
	nonceKey      string
	ttl           time.Duration
	accounts      map[string]testAccount // "user@domain"
	domains       map[string]bool
	challenges    int  // 401s carrying a challenge
	staleReplies  int  // 401s with stale=true
	unauthorized  int  // requests without Authorization
	bodies        int  // requests that carried a body, authenticated or not
	unquoted      bool // first challenge with unquoted values (RFC 7235 tokens)
	authenticated []seenRequest
	handler       http.HandlerFunc // after successful auth
}

type testAccount struct {
	password    string
	webPassword string
}

// seenRequest records an authenticated request as the server saw it.
type seenRequest struct {
	Method      string
	RequestURI  string
	DigestURI   string
	Username    string
	Realm       string // digest realm
	Query       url.Values
	Form        url.Values // body form only
	ContentType string
	Nc          string
	Nonce       string
	Opaque      string
	Algorithm   string // "" when the client sent none
	QOP         string
}

func newTestServer(t *testing.T, handler http.HandlerFunc) *testServer {
	t.Helper()
	s := &testServer{
		t:        t,
		clock:    time.Date(2026, 11, 25, 19, 58, 37, 0, time.UTC),
		nonceKey: "test-nonce-key",
		ttl:      300 * time.Second,
		accounts: map[string]testAccount{"alice@example.com": {password: "sip-secret"}},
		domains:  map[string]bool{"example.com": true},
		handler:  handler,
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// settingsURL is the endpoint the client is configured with.
func (s *testServer) settingsURL() string { return s.URL + "/settings.phtml" }

func (s *testServer) setHandler(h http.HandlerFunc) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

func (s *testServer) advance(d time.Duration) {
	s.mu.Lock()
	s.clock = s.clock.Add(d)
	s.mu.Unlock()
}

func (s *testServer) seen() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.authenticated...)
}

func (s *testServer) last() seenRequest {
	s.t.Helper()
	all := s.seen()
	if len(all) == 0 {
		s.t.Fatal("no authenticated request reached the server")
	}
	return all[len(all)-1]
}

func (s *testServer) counts() (challenges, stale, unauthorized int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.challenges, s.staleReplies, s.unauthorized
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (s *testServer) newNonce() string {
	t := float64(s.clock.Add(s.ttl).UnixNano()) / 1e9
	ts := strconv.FormatFloat(t, 'f', 4, 64)
	return base64.StdEncoding.EncodeToString([]byte(ts + ":" + md5hex(ts+":"+s.nonceKey)))
}

// challenge writes a 401 with an empty body. first selects the format of a
// request without credentials (", " separators); re-challenges use ",".
func (s *testServer) challenge(w http.ResponseWriter, realm string, first, stale bool) {
	nonce := s.newNonce()
	opaque := md5hex(realm)
	var h string
	switch {
	case first && s.unquoted:
		h = fmt.Sprintf("Digest realm=%s,\tqop=auth, nonce=%s, opaque=%s", realm, nonce, opaque)
	case first:
		h = fmt.Sprintf(`Digest realm="%s", qop="auth", nonce="%s", opaque="%s"`, realm, nonce, opaque)
	case stale:
		h = fmt.Sprintf(`Digest realm="%s",qop="auth",nonce="%s",stale=true, opaque="%s"`, realm, nonce, opaque)
		s.staleReplies++
	default:
		h = fmt.Sprintf(`Digest realm="%s",qop="auth",nonce="%s",opaque="%s"`, realm, nonce, opaque)
	}
	s.challenges++
	w.Header().Set("WWW-Authenticate", h)
	w.WriteHeader(http.StatusUnauthorized)
}

var authParam = regexp.MustCompile(`(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))`)

func parseAuthorization(h string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(h, "Digest ")
	if !ok {
		return nil, false
	}
	m := map[string]string{}
	for _, p := range authParam.FindAllStringSubmatch(rest, -1) {
		v := p[3]
		if p[2] != "" || p[3] == "" {
			v = strings.ReplaceAll(p[2], `\"`, `"`)
		}
		m[strings.ToLower(p[1])] = v
	}
	return m, true
}

func (s *testServer) serve(w http.ResponseWriter, r *http.Request) {
	// The page reads $_REQUEST: the query merged with a form body.
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form = url.Values{}
	}
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")

	s.mu.Lock()
	if len(body) > 0 {
		s.bodies++
	}
	realm := "SIP_settings"
	if v, ok := r.URL.Query()["realm"]; ok {
		realm = v[0]
		if _, d, ok := strings.Cut(realm, "@"); ok {
			realm = d
		}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		s.unauthorized++
		s.challenge(w, realm, true, false)
		s.mu.Unlock()
		return
	}
	p, ok := parseAuthorization(h)
	for _, k := range []string{"nonce", "nc", "cnonce", "qop", "username", "uri", "response"} {
		if p[k] == "" {
			ok = false
		}
	}
	if !ok {
		s.mu.Unlock()
		io.WriteString(w, "Invalid credentials from %s")
		return
	}
	user, domain := p["username"], realm
	if u, d, ok := strings.Cut(user, "@"); ok {
		user, domain = u, d
	}
	if !s.domains[domain] {
		s.mu.Unlock()
		io.WriteString(w, "error: no domainFilter available in ngnpro_engines.inc")
		return
	}
	acct, ok := s.accounts[user+"@"+domain]
	if !ok {
		s.challenge(w, realm, false, false)
		s.mu.Unlock()
		return
	}
	// Stored HA1 or web password: both need the bare user and realm=domain.
	ha1 := md5hex(user + ":" + domain + ":" + acct.password)
	if acct.webPassword != "" {
		ha1 = md5hex(strings.ToLower(user) + ":" + strings.ToLower(domain) + ":" + acct.webPassword)
	}
	want := md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + md5hex(r.Method+":"+p["uri"]))
	if want != p["response"] {
		s.challenge(w, realm, false, false)
		s.mu.Unlock()
		return
	}
	raw, err := base64.StdEncoding.DecodeString(p["nonce"])
	ts, mac, _ := strings.Cut(string(raw), ":")
	if err != nil || md5hex(ts+":"+s.nonceKey) != mac {
		s.challenge(w, realm, false, false)
		s.mu.Unlock()
		return
	}
	exp, _ := strconv.ParseFloat(ts, 64)
	if float64(s.clock.UnixNano())/1e9 > exp {
		s.challenge(w, realm, false, true)
		s.mu.Unlock()
		return
	}
	s.authenticated = append(s.authenticated, seenRequest{
		Method: r.Method, RequestURI: r.URL.RequestURI(), DigestURI: p["uri"],
		Username: p["username"], Realm: p["realm"], Query: r.URL.Query(), Form: form,
		ContentType: r.Header.Get("Content-Type"), Nc: p["nc"], Nonce: p["nonce"],
		Opaque: p["opaque"], Algorithm: p["algorithm"], QOP: p["qop"],
	})
	handler := s.handler
	s.mu.Unlock()
	if handler != nil {
		r.Form = form
		handler(w, r)
	}
}

// reply returns a handler that writes body with status 200.
func reply(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }
}

// newClient returns a client for alice@example.com on s.
func newClient(t *testing.T, s *testServer, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{Address: "alice@example.com", SettingsURL: s.settingsURL(), Password: "sip-secret"}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}
