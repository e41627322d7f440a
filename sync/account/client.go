// Package account is a client for the SIP Account API: the settings page
// (settings.phtml, AGProjects cdrtool) that SIP services such as sip2sip
// expose to their users' clients. It speaks the API as the real server
// implements it, quirks included (PROTOCOL.md): HTTP Digest with the bare
// user name and realm=<domain> in the query, replies served as text/html,
// ids as strings, stray text and PHP diagnostics before the JSON, HTML
// error fragments instead of errors, and "success" as the only reliable
// outcome flag.
//
// The sync engine uses the journal methods; the control socket uses the
// typed methods and Do for passthrough. Every method takes a context and
// is safe for concurrent use. Failures after a request was attempted are
// *Error values whose Kind and Retryable tell the caller what to do.
package account

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/icholy/digest"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultMaxReplyBytes = 64 << 20
	DefaultMaxRowBytes   = 64 << 20
	DefaultUserAgent     = "chatsync"
)

// Config describes one account on one settings server.
type Config struct {
	// Address is the SIP address, "alice@example.com" (a "sip:" prefix is
	// accepted). The digest user name is the bare local part and the
	// domain goes into the realm query parameter, both lower-cased: the
	// real server only accepts that form when it stores a web password or
	// an HA1 (PROTOCOL §2.2 step 5, §11.3).
	Address string
	// SettingsURL is the API endpoint, e.g.
	// https://blink.sipthor.net/settings.phtml. A query it carries is kept;
	// action and realm are always set by the client.
	SettingsURL string
	// Password is the SIP password.
	Password string
	// WebPassword, when set, is used instead of Password (the server
	// prefers a stored web password over the SIP password).
	WebPassword string
	// CAFile optionally names a PEM file of extra CA certificates trusted
	// on top of the system roots.
	CAFile string
	// Timeout bounds each call, including the digest round trip. Default
	// DefaultTimeout. A get_journal_entries with JournalQuery.Wait gets
	// Timeout + Wait, so a held long poll is not cut.
	Timeout time.Duration
	// MaxReplyBytes bounds a reply body that is read whole; a larger one
	// is a Malformed error. Default DefaultMaxReplyBytes. Every action's
	// reply is read whole except a get_journal_entries page, which is
	// decoded as a stream (see MaxRowBytes) whatever its size: a legal
	// page (5000 rows of up to several MB each) can exceed any cap on the
	// whole reply. The page is read whole, under this cap, only when text
	// precedes its JSON (PHP notices printed by a deployment with
	// display_errors on, PROTOCOL §11.2).
	MaxReplyBytes int64
	// MaxRowBytes bounds one row of a get_journal_entries page: its JSON
	// text, counted with the comma and white space before it. A larger
	// row fails the call with a Malformed error naming the row's index
	// and the limit; so does any other member of the reply object over
	// the limit. Memory for a page is the rows kept plus about twice the
	// largest row. Default DefaultMaxRowBytes.
	MaxRowBytes int64
	// Transport is the base HTTP transport (tests, fault injection). The
	// digest layer wraps it. Default: a clone of http.DefaultTransport.
	// CAFile is applied to it when it is an *http.Transport.
	Transport http.RoundTripper
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string
}

// Client calls the SIP Account API for one account. It is safe for
// concurrent use.
type Client struct {
	address     string // as configured, for messages
	user        string // lower-case local part: the digest user name
	domain      string // lower-case domain: the realm parameter
	base        *url.URL
	webPassword bool
	timeout     time.Duration
	maxReply    int64
	maxRow      int64
	userAgent   string
	hc          *http.Client
	now         func() time.Time
	traffic     traffic
}

// New checks cfg and returns a client. It sends nothing.
func New(cfg Config) (*Client, error) {
	user, domain, err := splitAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	base, err := parseSettingsURL(cfg.SettingsURL)
	if err != nil {
		return nil, err
	}
	password := cfg.Password
	if cfg.WebPassword != "" {
		password = cfg.WebPassword
	}
	if password == "" {
		return nil, fmt.Errorf("account %s: no password: set password_file (or web_password_file)", cfg.Address)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("account %s: timeout %v is negative", cfg.Address, cfg.Timeout)
	}
	if cfg.MaxReplyBytes < 0 {
		return nil, fmt.Errorf("account %s: max reply bytes %d is negative", cfg.Address, cfg.MaxReplyBytes)
	}
	if cfg.MaxRowBytes < 0 {
		return nil, fmt.Errorf("account %s: max row bytes %d is negative", cfg.Address, cfg.MaxRowBytes)
	}
	c := &Client{
		address:     strings.TrimSpace(cfg.Address),
		user:        user,
		domain:      domain,
		base:        base,
		webPassword: cfg.WebPassword != "",
		timeout:     cfg.Timeout,
		maxReply:    cfg.MaxReplyBytes,
		maxRow:      cfg.MaxRowBytes,
		userAgent:   cfg.UserAgent,
		now:         time.Now,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxReply == 0 {
		c.maxReply = DefaultMaxReplyBytes
	}
	if c.maxRow == 0 {
		c.maxRow = DefaultMaxRowBytes
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}

	baseRT := cfg.Transport
	if cfg.CAFile != "" {
		pool, err := loadCAFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		var ht *http.Transport
		switch t := baseRT.(type) {
		case nil:
			ht = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			ht = t.Clone()
		default:
			return nil, fmt.Errorf("account %s: ca_file cannot be applied to a custom transport %T", cfg.Address, baseRT)
		}
		if ht.TLSClientConfig == nil {
			ht.TLSClientConfig = &tls.Config{}
		}
		ht.TLSClientConfig.RootCAs = pool
		baseRT = ht
	}
	if baseRT == nil {
		baseRT = http.DefaultTransport.(*http.Transport).Clone()
	}

	// Digest auth (PROTOCOL §2) is icholy/digest's Transport: it caches the
	// challenge per host and answers later requests pre-emptively with the
	// same nonce and a growing nc (the real nonce is stateless and valid for
	// 300 s), and on a 401 (stale=true or not) it takes the new challenge
	// and retries once; a second 401 reaches us and becomes KindAuth. The
	// nonce is not expired ahead of time: the server's stale=true costs one
	// extra round trip every five minutes, the same as a pre-emptive
	// refresh would, and needs no clock agreement. MD5 without an algorithm
	// parameter, qop=auth, opaque echo and uri = path?query are what it
	// sends (checked by the tests against a server doing the real checks).
	dt := &digest.Transport{
		Username: user,
		Password: password,
		// Our own challenge parser: icholy's only accepts [A-Za-z0-9-] in
		// unquoted values (so realm=example.com or a base64 nonce sent
		// unquoted would fail) and turns an unparsable challenge into a
		// transport error that loses the 401. See challenge.go.
		FindChallenge: findChallenge,
		// Send a body-less probe before streaming a put's body when no
		// challenge is cached yet, so the first batch is not uploaded twice.
		Probe: true,
		// icholy drains a 401's body with no bound before retrying; cap it.
		// Beneath both, the meter sees every attempt on the wire: probes,
		// challenges and retries included (Traffic).
		Transport: boundedAuthBody{meter{rt: baseRT, t: &c.traffic}},
	}
	c.hc = &http.Client{
		Transport:     dt,
		CheckRedirect: sameOriginRedirects,
	}
	return c, nil
}

// Address returns the account address as configured.
func (c *Client) Address() string { return c.address }

func splitAddress(addr string) (user, domain string, err error) {
	a := strings.TrimSpace(addr)
	lower := strings.ToLower(a)
	for _, p := range []string{"sip:", "sips:"} {
		if strings.HasPrefix(lower, p) {
			a = a[len(p):]
			break
		}
	}
	user, domain, ok := strings.Cut(a, "@")
	if !ok || user == "" || domain == "" || strings.Contains(domain, "@") ||
		strings.ContainsAny(a, " \t\r\n/?#") {
		return "", "", fmt.Errorf("account address %q: want user@domain, e.g. alice@example.com", addr)
	}
	return strings.ToLower(user), strings.ToLower(domain), nil
}

func parseSettingsURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("settings_url %q: %v", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("settings_url %q: want an https:// URL", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("settings_url %q: no host", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("settings_url: must not carry a user name or password; use password_file")
	}
	u.Fragment = ""
	u.RawFragment = ""
	return u, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate found", path)
	}
	return pool, nil
}

// sameOriginRedirects follows redirects only to the same scheme and host.
// Another host would be answered with a digest response computed from our
// password (an offline-crackable MD5), and a downgrade to http would expose
// the traffic; the caller gets the 3xx instead and an error that names the
// target.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return http.ErrUseLastResponse
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// boundedAuthBody caps the body of 401 replies. digest.Transport drains the
// 401 body before answering the challenge with io.Copy and no limit; the
// real server sends an empty one.
type boundedAuthBody struct{ rt http.RoundTripper }

const maxAuthBody = 64 << 10

func (b boundedAuthBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && resp.Body != nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxAuthBody), resp.Body}
	}
	return resp, err
}

func (b boundedAuthBody) CloseIdleConnections() {
	if ci, ok := b.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// CloseIdleConnections closes idle connections of the underlying transport.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// request is one API call.
type request struct {
	action string
	query  url.Values // extra query parameters
	form   url.Values // non-nil: POST with this form body
	// wait is how long the server may hold the call (a long poll); it is
	// added to the call's timeout, which would otherwise cut it.
	wait time.Duration
	// header, if not nil, receives the reply's header.
	header *http.Header
	// onHeader, if set, is called with the reply's header as soon as it
	// arrives, before the body is read.
	onHeader func(http.Header)
}

// reservedParams are set by the client and may not be passed by callers.
var reservedParams = map[string]bool{"action": true, "realm": true}

// endpoint returns the URL for an action: the settings URL with its query
// kept, action and realm set, and the extra parameters added.
func (c *Client) endpoint(action string, extra url.Values) *url.URL {
	u := *c.base
	q := u.Query()
	for k, vs := range extra {
		q[k] = append([]string(nil), vs...)
	}
	q.Set("action", action)
	q.Set("realm", c.domain)
	u.RawQuery = q.Encode()
	return &u
}

// send performs the call and returns the cleaned JSON of a 2xx reply.
func (c *Client) send(ctx context.Context, r request) ([]byte, error) {
	resp, cancel, err := c.roundTrip(ctx, r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	return c.readReply(r.action, resp, resp.Body)
}

// roundTrip sends r and returns the response, whose body is to be read
// within the call's timeout: the caller closes the body, then calls
// cancel.
func (c *Client) roundTrip(ctx context.Context, r request) (*http.Response, context.CancelFunc, error) {
	// One timeout covers the digest round trip too: the server
	// authenticates before it holds a call, so its 401 comes at once and
	// only the retry is held for r.wait.
	ctx, cancel := context.WithTimeout(ctx, c.timeout+r.wait)

	u := c.endpoint(r.action, r.query)
	var req *http.Request
	var err error
	if r.form != nil {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(r.form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	}
	if err != nil {
		cancel()
		return nil, nil, &Error{Kind: KindTransport, Action: r.action, Message: "cannot build request", Err: err}
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json, text/html;q=0.9, */*;q=0.1")

	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, transportError(r.action, err)
	}
	if r.header != nil {
		*r.header = resp.Header
	}
	if r.onHeader != nil && resp.StatusCode == http.StatusOK {
		r.onHeader(resp.Header)
	}
	return resp, cancel, nil
}

// readReply reads a whole reply body from body (resp.Body, or a reader
// over it that has not consumed anything yet), at most MaxReplyBytes,
// maps a non-2xx status to an error and returns the cleaned JSON.
func (c *Client) readReply(action string, resp *http.Response, body io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, c.maxReply+1))
	if err != nil {
		return nil, transportError(action, fmt.Errorf("reading reply: %w", err))
	}
	if int64(len(b)) > c.maxReply {
		return nil, &Error{Kind: KindMalformed, Action: action, StatusCode: resp.StatusCode,
			Message: fmt.Sprintf("reply is larger than %d bytes", c.maxReply)}
	}
	if e := c.statusError(action, resp); e != nil {
		return nil, e
	}
	js, e := cleanReply(b)
	if e != nil {
		e.Action = action
		e.StatusCode = resp.StatusCode
		switch {
		case errors.Is(e.Err, errUnknownDomain):
			e.Err = nil
			e.Message = fmt.Sprintf("the server at settings_url does not serve domain %s (it said %q): check the domain of the account address and settings_url",
				c.domain, e.Message)
		case e.Kind == KindAuth:
			e.Message = c.authAdvice(e.Message)
		}
		return nil, e
	}
	return js, nil
}

// statusError maps a non-2xx status to an *Error.
func (c *Client) statusError(action string, resp *http.Response) *Error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	e := &Error{Action: action, StatusCode: code}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	switch {
	case code == http.StatusUnauthorized:
		e.Kind = KindAuth
		if _, err := findChallenge(resp.Header); err != nil {
			e.Message = "the server answered 401 without a digest challenge (MD5, qop=auth) that can be answered: check settings_url"
		} else {
			e.Message = c.authAdvice("authentication failed")
		}
	case code == http.StatusForbidden:
		e.Kind = KindAuth
		e.Message = c.authAdvice("access forbidden (HTTP 403)")
	case code == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
		e.Message = "rate limited by the server (HTTP 429)"
	case code >= 300 && code < 400:
		e.Kind = KindServer
		e.Message = fmt.Sprintf("settings_url redirects (HTTP %d) to %q, which is not followed with credentials: set settings_url to the final URL",
			code, redactURL(resp.Header.Get("Location")))
	case code >= 500:
		e.Kind = KindServer
		e.Message = fmt.Sprintf("server error (HTTP %d)", code)
	default:
		e.Kind = KindServer
		e.Message = fmt.Sprintf("unexpected HTTP status %d: check settings_url", code)
	}
	return e
}

// authAdvice words an authentication failure with what to check.
func (c *Client) authAdvice(what string) string {
	pw := "password_file (or web_password_file)"
	if c.webPassword {
		pw = "web_password_file (it is used instead of password_file when set)"
	}
	return fmt.Sprintf("%s for %s: check %s and that the settings_url serves %s", what, c.address, pw, c.domain)
}

// redactURL drops user info and the query of a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// Do calls action with params and returns the reply's JSON after the same
// authentication and quirk cleaning as the typed methods. Journal writes
// (put_journal_entries, delete_journal_entries) are sent as form POSTs,
// everything else as GET. params may not contain action or realm.
//
// If the reply is an object with "success": false, Do returns both the JSON
// and a KindRejected *Error carrying error_message.
func (c *Client) Do(ctx context.Context, action string, params url.Values) (json.RawMessage, error) {
	if !validAction(action) {
		return nil, invalidArg("action %q: want a name like get_identity", action)
	}
	for k := range params {
		if reservedParams[k] {
			return nil, invalidArg("parameter %q is set by the client", k)
		}
	}
	r := request{action: action, query: params}
	if action == "put_journal_entries" || action == "delete_journal_entries" {
		r = request{action: action, form: params}
		if r.form == nil {
			r.form = url.Values{}
		}
	}
	js, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	if _, e := checkEnvelope(js, false); e != nil {
		e.Action = action
		return json.RawMessage(js), e
	}
	return json.RawMessage(js), nil
}

func validAction(a string) bool {
	if a == "" || len(a) > 64 {
		return false
	}
	for i := 0; i < len(a); i++ {
		ch := a[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}

// call sends r and checks the success envelope. requireSuccess is for
// actions whose reply always carries "success" (setters, journal).
// It returns the JSON and the server's message (error_message on success).
func (c *Client) call(ctx context.Context, r request, requireSuccess bool) ([]byte, string, error) {
	js, err := c.send(ctx, r)
	if err != nil {
		return nil, "", err
	}
	msg, e := checkEnvelope(js, requireSuccess)
	if e != nil {
		e.Action = r.action
		return nil, "", e
	}
	return js, msg, nil
}

// Traffic returns the bytes of the requests this client sent and of the
// replies it read, since it was made: what the daemon reports as
// bytes_sent and bytes_received, for an estimate of what syncing costs on
// a metered link.
//
// Every HTTP attempt that got an answer counts, the digest layer's
// body-less probes, 401 challenges and retries as well as redirects
// followed: each costs traffic. Sent is, per attempt, the request target
// of the request line (path and query: a GET action's parameters travel
// there) plus the body (a POST's form). Received is the reply body bytes
// read, as they were read: a body closed half-read counts the part read.
// Headers, TLS and TCP overhead are not counted, nor is an attempt that
// failed without an answer (its bytes may or may not have left).
func (c *Client) Traffic() (sent, received int64) {
	return c.traffic.sent.Load(), c.traffic.received.Load()
}

// traffic is the counts of Traffic.
type traffic struct{ sent, received atomic.Int64 }

// meter is the transport that counts Traffic, beneath the digest layer
// so that it sees each attempt on the wire.
type meter struct {
	rt http.RoundTripper
	t  *traffic
}

func (m meter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	// The client's bodies are forms in memory, so ContentLength is their
	// exact size (0 for GETs and for the digest layer's probes).
	m.t.sent.Add(int64(len(req.URL.RequestURI())) + max(req.ContentLength, 0))
	if resp.Body != nil {
		resp.Body = &meteredBody{ReadCloser: resp.Body, n: &m.t.received}
	}
	return resp, nil
}

func (m meter) CloseIdleConnections() {
	if ci, ok := m.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// meteredBody counts the bytes read from a reply body into n.
type meteredBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *meteredBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}
