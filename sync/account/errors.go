package account

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kind classifies an *Error so callers can decide what to do without
// parsing messages (which partly come from the server and are localized).
type Kind int

const (
	// KindTransport: the request did not complete (DNS, TCP, TLS, timeout,
	// cancelled context). The server may or may not have acted on it.
	KindTransport Kind = iota + 1
	// KindAuth: the server refused our credentials or our identity: a 401
	// that persisted after a fresh challenge, the 200 "Invalid credentials"
	// text, or the 200 "no domainFilter" text (the server does not serve
	// the account's domain). Needs a configuration change.
	KindAuth
	// KindRejected: the server understood the request and said no
	// ("success": false, or an error_message without "success"). Message
	// holds the server's error_message.
	KindRejected
	// KindMalformed: the reply could not be understood: not JSON where JSON
	// was expected, an unexpected shape, a non-numeric journal id, text we
	// do not recognise before the JSON, or a body over MaxReplyBytes.
	KindMalformed
	// KindServer: the server reported a failure of its own: HTTP 5xx (or an
	// unexpected non-2xx status), an empty reply, a PHP fatal error, a
	// database error text, or a getter's HTML error fragment.
	KindServer
	// KindRateLimited: HTTP 429. RetryAfter says how long the server asked
	// us to wait, when it said so.
	KindRateLimited
)

func (k Kind) String() string {
	switch k {
	case KindTransport:
		return "transport"
	case KindAuth:
		return "auth"
	case KindRejected:
		return "rejected"
	case KindMalformed:
		return "malformed"
	case KindServer:
		return "server"
	case KindRateLimited:
		return "rate-limited"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is the error type returned by Client methods once a request has
// been attempted. Bad arguments caught before any request is sent are
// plain errors wrapping ErrInvalidArgument instead.
//
// Messages never contain passwords or journal data; server-provided texts
// (error_message, the text of an HTML error fragment) are included because
// they are what the user needs to see.
type Error struct {
	Kind       Kind
	Action     string        // the API action, e.g. "get_journal_entries"
	StatusCode int           // HTTP status, 0 when no response was received
	Message    string        // what happened and, where useful, what to do
	RetryAfter time.Duration // from Retry-After (429/503), 0 when absent
	Err        error         // underlying cause, if any

	// hint, when set, is what to do, said after the cause.
	hint string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("account")
	if e.Action != "" {
		b.WriteString(" ")
		b.WriteString(e.Action)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.hint != "" {
		b.WriteString(": ")
		b.WriteString(e.hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether repeating the same request later may succeed
// without anyone changing the configuration. The sync engine backs off
// (honouring RetryAfter) and retries these; the others are shown to the
// user and retried only slowly or after a config change.
//
//   - Transport (except the caller's own cancellation): networks come back; a timeout may have hidden a success,
//     so callers of non-idempotent actions (put) must be ready for
//     duplicates, which the journal design already is.
//   - RateLimited, and Server with 5xx or an empty/fatal reply: the server
//     is overloaded or broken for now.
//   - Malformed: usually a proxy, captive portal or truncated reply in
//     between, which is transient; a server that is permanently broken
//     will keep failing and the backoff caps the cost.
//   - Auth: the same credentials will be refused again; hammering a digest
//     endpoint with a wrong password can also get the account locked.
//   - Rejected: the server looked at the request and said no; the same
//     request gets the same answer.
//   - Server with a 3xx (a redirect we refuse to follow) or a 4xx status
//     other than 408/425/429 (e.g. 404: wrong settings_url): a
//     configuration problem, not a transient one.
func (e *Error) Retryable() bool {
	if errors.Is(e.Err, context.Canceled) {
		return false // the caller gave up; there is nothing to retry for it
	}
	switch e.Kind {
	case KindTransport, KindRateLimited, KindMalformed:
		return true
	case KindServer:
		if e.StatusCode >= 300 && e.StatusCode < 500 {
			switch e.StatusCode {
			case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
				return true
			}
			return false
		}
		return true
	}
	return false
}

// IsKind reports whether err is (or wraps) an *Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// Retryable reports whether err is (or wraps) an *Error whose Retryable
// method says so.
func Retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable()
	}
	return false
}

// ErrInvalidArgument is wrapped by errors for bad arguments detected before
// any request is sent (unknown forwarding key, duplicate put ids, ...).
var ErrInvalidArgument = errors.New("invalid argument")

func invalidArg(format string, args ...any) error {
	return fmt.Errorf("account: %w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// transportError wraps a failure to get a response. It names the host,
// not the request URL: the URL carries the device id and the query (and
// net/http puts it into every error it returns), which are noise in a
// message and, for a journal write, long.
func transportError(action string, err error) *Error {
	host := ""
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
		err = ue.Err
	}
	e := &Error{Kind: KindTransport, Action: action, Message: "request failed", Err: err}
	to := ""
	if host != "" {
		to = " to " + host
		e.Message = "cannot reach " + host
	}
	switch {
	case errors.Is(err, context.Canceled):
		e.Message = "request" + to + " cancelled"
		return e // the caller gave up: nothing to advise
	case errors.Is(err, context.DeadlineExceeded):
		e.Message = "request" + to + " timed out"
	}
	e.hint = "check settings_url and the network"
	return e
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
// Nonsense and past dates give 0. The result is capped at a day so a
// broken header cannot park the engine forever.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	const maxWait = 24 * time.Hour
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxWait/time.Second) {
			return maxWait
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	if d > maxWait {
		return maxWait
	}
	return d
}
