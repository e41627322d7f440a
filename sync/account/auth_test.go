package account

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const enumReply = `["+31201234567","+31207654321"]`

func TestDigestNonceIsReusedAcrossCalls(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	c := newClient(t, s)
	for range 5 {
		got, err := c.Enum(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"+31201234567", "+31207654321"}) {
			t.Fatalf("Enum = %q", got)
		}
	}
	challenges, stale, unauth := s.counts()
	if challenges != 1 || unauth != 1 || stale != 0 {
		t.Fatalf("challenges=%d unauthorized=%d stale=%d, want 1 1 0", challenges, unauth, stale)
	}
	seen := s.seen()
	if len(seen) != 5 {
		t.Fatalf("%d authenticated requests, want 5", len(seen))
	}
	// One nonce, counted up: pre-emptive Authorization with nc 1..5.
	for i, r := range seen {
		if r.Nonce != seen[0].Nonce {
			t.Errorf("request %d used another nonce", i)
		}
		if want := []string{"00000001", "00000002", "00000003", "00000004", "00000005"}[i]; r.Nc != want {
			t.Errorf("request %d nc = %s, want %s", i, r.Nc, want)
		}
	}
}

func TestExpiredNonceIsRefreshedWithoutError(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	c := newClient(t, s)
	if _, err := c.Enum(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.advance(6 * time.Minute) // past the 300 s nonce lifetime
	got, err := c.Enum(t.Context())
	if err != nil {
		t.Fatalf("call after nonce expiry: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Enum = %q", got)
	}
	challenges, stale, _ := s.counts()
	if challenges != 2 || stale != 1 {
		t.Fatalf("challenges=%d stale=%d, want 2 1", challenges, stale)
	}
	seen := s.seen()
	if len(seen) != 2 || seen[0].Nonce == seen[1].Nonce || seen[1].Nc != "00000001" {
		t.Fatalf("second call did not switch to a fresh nonce: %+v", seen)
	}
	// The refreshed nonce is reused in turn.
	if _, err := c.Enum(t.Context()); err != nil {
		t.Fatal(err)
	}
	if challenges, _, _ := s.counts(); challenges != 2 {
		t.Fatalf("challenges=%d after a third call, want 2", challenges)
	}
}

func TestWrongPasswordIsAuthErrorNotRetryable(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	c := newClient(t, s, func(c *Config) { c.Password = "wrong-guess" })
	_, err := c.Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if e.Kind != KindAuth || e.Retryable() || e.StatusCode != http.StatusUnauthorized || e.Action != "get_enum" {
		t.Fatalf("got kind=%v retryable=%v status=%d action=%q, want auth/false/401/get_enum", e.Kind, e.Retryable(), e.StatusCode, e.Action)
	}
	msg := err.Error()
	for _, want := range []string{"authentication failed for alice@example.com", "password_file", "example.com"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "wrong-guess") || strings.Contains(msg, "sip-secret") {
		t.Errorf("message leaks a password: %q", msg)
	}
	// One unauthenticated probe and one answered challenge: no retry loop.
	if challenges, _, _ := s.counts(); challenges != 2 {
		t.Errorf("challenges = %d, want 2", challenges)
	}
	if len(s.seen()) != 0 {
		t.Error("a request with the wrong password got through")
	}
}

func TestWebPasswordIsPreferredOverSIPPassword(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	s.accounts["alice@example.com"] = testAccount{password: "sip-secret", webPassword: "web-secret"}

	c := newClient(t, s, func(c *Config) { c.WebPassword = "web-secret" })
	if _, err := c.Enum(t.Context()); err != nil {
		t.Fatalf("with web password: %v", err)
	}
	// The server only accepts the web password once one is stored, so the
	// SIP password alone must fail, and the message points at the right file.
	c2 := newClient(t, s)
	_, err := c2.Enum(t.Context())
	if !IsKind(err, KindAuth) {
		t.Fatalf("SIP password against a stored web password: err = %v, want auth", err)
	}
	c3 := newClient(t, s, func(c *Config) { c.WebPassword = "stale-web" })
	_, err = c3.Enum(t.Context())
	if !IsKind(err, KindAuth) || !strings.Contains(err.Error(), "web_password_file") {
		t.Fatalf("wrong web password: err = %v, want auth naming web_password_file", err)
	}
}

func TestDigestUsernameIsBareLocalPartAndRealmIsDomain(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	s.accounts["alice@example.com"] = testAccount{password: "sip-secret", webPassword: "web-secret"}
	// Mixed case and a sip: prefix: the server only accepts lower case.
	c := newClient(t, s, func(c *Config) {
		c.Address = "sip:Alice@Example.COM"
		c.WebPassword = "web-secret"
	})
	if _, err := c.Enum(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := s.last()
	if r.Username != "alice" || r.Realm != "example.com" {
		t.Errorf("digest username=%q realm=%q, want alice example.com", r.Username, r.Realm)
	}
	if got := r.Query["realm"]; !slices.Equal(got, []string{"example.com"}) {
		t.Errorf("realm query = %q, want [example.com]", got)
	}
	if got := r.Query["action"]; !slices.Equal(got, []string{"get_enum"}) {
		t.Errorf("action query = %q", got)
	}
}

func TestDigestURIIsExactPathAndQuery(t *testing.T) {
	s := newTestServer(t, reply(`{"success":true,"error_message":"Do not disturb has been enabled for 5 minutes"}`))
	c := newClient(t, s, func(c *Config) { c.SettingsURL = s.settingsURL() + "?tab=settings&user_agent=chatsync" })
	if _, err := c.SetDNDOn(t.Context(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	r := s.last()
	if r.DigestURI != r.RequestURI {
		t.Errorf("digest uri %q != request uri %q", r.DigestURI, r.RequestURI)
	}
	if want := "/settings.phtml?action=set_dnd_on&duration=5&realm=example.com&tab=settings&user_agent=chatsync"; r.RequestURI != want {
		t.Errorf("request uri = %q, want %q", r.RequestURI, want)
	}
}

func TestPutIsAuthenticatedWithPOSTMethodInDigest(t *testing.T) {
	s := newTestServer(t, reply(`{"results":[{"id":"a","journal_id":"1","source":"default"}],"success":true}`))
	c := newClient(t, s)
	// First call: no challenge cached, so a body-less probe gets the
	// challenge and the body is sent once, authenticated.
	res, err := c.PutJournalEntries(t.Context(), "urn:uuid:A", []PutEntry{{ID: "a", Data: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Stored || res[0].JournalID != 1 {
		t.Fatalf("results = %+v", res)
	}
	r := s.last()
	if r.Method != http.MethodPost || r.DigestURI != r.RequestURI {
		t.Fatalf("method=%s digest uri=%q request uri=%q", r.Method, r.DigestURI, r.RequestURI)
	}
}

func TestInvalidCredentialsTextIsAuthError(t *testing.T) {
	// The real server answers a digest header it cannot parse with status
	// 200 and this text (PROTOCOL §2.2 step 1).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Invalid credentials from %s")
	}))
	defer srv.Close()
	c, err := New(Config{Address: "alice@example.com", SettingsURL: srv.URL, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindAuth || e.Retryable() || e.StatusCode != 200 {
		t.Fatalf("err = %v, want non-retryable auth error with status 200", err)
	}
	if !strings.Contains(e.Message, "alice@example.com") {
		t.Errorf("message %q does not name the account", e.Message)
	}
}

func TestNoDomainFilterIsAuthErrorNamingTheDomain(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	s.accounts["alice@example.net"] = testAccount{password: "sip-secret"}
	c := newClient(t, s, func(c *Config) { c.Address = "alice@example.net" })
	_, err := c.Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindAuth || e.Retryable() {
		t.Fatalf("err = %v, want non-retryable auth error", err)
	}
	for _, want := range []string{"does not serve domain example.net", "no domainFilter", "settings_url"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("message %q lacks %q", e.Error(), want)
		}
	}
}

func TestUnknownAccountIsAuthError(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	c := newClient(t, s, func(c *Config) { c.Address = "bob@example.com" })
	if _, err := c.Enum(t.Context()); !IsKind(err, KindAuth) {
		t.Fatalf("err = %v, want auth", err)
	}
}

func Test401WithoutDigestChallengeIsAuthErrorSayingSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	c, err := New(Config{Address: "alice@example.com", SettingsURL: srv.URL, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Enum(t.Context())
	if !IsKind(err, KindAuth) || !strings.Contains(err.Error(), "without a digest challenge") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedirectToAnotherHostIsNotFollowed(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.Header().Set("WWW-Authenticate", `Digest realm="example.com", qop="auth", nonce="abc"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer other.Close()
	s := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/settings.phtml?"+r.URL.RawQuery, http.StatusFound)
	})
	c := newClient(t, s)
	_, err := c.Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindServer || e.StatusCode != http.StatusFound || e.Retryable() {
		t.Fatalf("err = %v, want a non-retryable server error with status 302", err)
	}
	if !strings.Contains(e.Message, "redirects") || strings.Contains(e.Message, "realm=") {
		t.Errorf("message = %q", e.Message)
	}
	if n := otherHits.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
}

func TestRedirectOnSameHostIsFollowedWithAuth(t *testing.T) {
	var s *testServer
	s = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/settings.phtml" {
			http.Redirect(w, r, "/v2/settings.phtml?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
			return
		}
		io.WriteString(w, enumReply)
	})
	c := newClient(t, s)
	got, err := c.Enum(t.Context())
	if err != nil || len(got) != 2 {
		t.Fatalf("Enum = %q, %v", got, err)
	}
	if r := s.last(); !strings.HasPrefix(r.RequestURI, "/v2/settings.phtml?") || r.DigestURI != r.RequestURI {
		t.Fatalf("last request %+v", r)
	}
}

func TestCallTimeoutIsRetryableTransportError(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	c := newClient(t, s, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	_, err := c.Enum(t.Context())
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindTransport || !e.Retryable() {
		t.Fatalf("err = %v, want retryable transport error", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v does not wrap context.DeadlineExceeded", err)
	}
}

func TestCancelledContextStopsTheCall(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	c := newClient(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Enum(ctx)
	if !errors.Is(err, context.Canceled) || !IsKind(err, KindTransport) || Retryable(err) {
		t.Fatalf("err = %v, want a non-retryable transport error wrapping context.Canceled", err)
	}
}

func TestConcurrentCallsShareOneNonce(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	c := newClient(t, s)
	if _, err := c.Enum(t.Context()); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := c.Enum(t.Context())
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if challenges, _, _ := s.counts(); challenges != 1 {
		t.Fatalf("challenges = %d, want 1", challenges)
	}
}

func TestDigestEchoesOpaqueAndAnswersMissingAlgorithmWithMD5(t *testing.T) {
	s := newTestServer(t, reply(enumReply))
	if _, err := newClient(t, s).Enum(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := s.last()
	// The server sends no algorithm; the response verified with MD5 above,
	// and the client must not claim another algorithm.
	if r.Opaque != md5hex("example.com") || r.Algorithm != "" || r.QOP != "auth" {
		t.Fatalf("opaque=%q algorithm=%q qop=%q", r.Opaque, r.Algorithm, r.QOP)
	}
}

func TestDigestAnswersUnquotedChallenge(t *testing.T) {
	// icholy/digest's own parser refuses `realm=example.com` and unquoted
	// base64 nonces; ours takes RFC 7235 tokens.
	s := newTestServer(t, reply(enumReply))
	s.unquoted = true
	got, err := newClient(t, s).Enum(t.Context())
	if err != nil || len(got) != 2 {
		t.Fatalf("Enum = %q, %v", got, err)
	}
}

func TestFirstPutSendsItsBodyOnce(t *testing.T) {
	s := newTestServer(t, reply(`{"results":[{"id":"a","journal_id":"1","source":"default"}],"success":true}`))
	c := newClient(t, s)
	if _, err := c.PutJournalEntries(t.Context(), "urn:uuid:A", []PutEntry{{ID: "a", Data: "x"}}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	bodies, unauth := s.bodies, s.unauthorized
	s.mu.Unlock()
	// A body-less probe fetched the challenge; the batch went up once.
	if bodies != 1 || unauth != 1 {
		t.Fatalf("bodies=%d unauthorized=%d, want 1 1", bodies, unauth)
	}
}
