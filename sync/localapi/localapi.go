// Package localapi serves chatsync's control API: HTTP/1.1 with JSON
// bodies over the daemon's unix socket (see sync/safesocket), under /v1/.
//
//	GET  /v1/status                 daemon and per-account replication status
//	POST /v1/sync[?account=A][&wait=1][&timeout=30s]
//	                                push and poll now; with wait=1 reply once caught up
//	GET  /v1/events[?account=A]     NDJSON stream of apitype.Event until the daemon stops
//	GET  /v1/devices[?account=A]    the account's chatsync devices (apitype.Devices); without
//	                                account= and with several accounts, an array of them
//	POST /v1/devices/refresh[?account=A]
//	                                ask the other devices for fresh reports now; 202 and
//	                                {"refreshed": TIME}: a device whose report is newer answered
//	POST /v1/verify[?account=A][&repair=1][&progress=1]
//	                                compare the store with the journal (apitype.VerifyResult);
//	                                with repair=1 fix what differs; with progress=1 NDJSON lines
//	                                {"progress": apitype.VerifyProgress} then one {"result": ...}
//	                                (or {"error": "..."}). It reads the whole journal and may take
//	                                minutes; hanging up cancels it.
//	GET  /v1/metrics                Prometheus text format (sync/metrics), as daemon.metrics_listen
//	GET  /v1/account                the account API actions served
//	GET  /v1/account/{action}       a read action of the SIP Account API (get_identity, ...)
//	POST /v1/account/{action}       a write action (add_alias, set_dnd_on, ...)
//
// The account routes call the account's SIP Account API with the daemon's
// credentials and reply with the cleaned JSON of the apitype types. Every
// reply carries the Chatsync-Version header; errors are
// {"error": "...", "kind": "..."} with a status that fits. Requests with an
// Origin or Referer header are refused, and so are peers whose uid is not
// the daemon's, root's, or (with a socket group) in that group.
//
// The handlers depend on Backend, a narrow interface that *daemon.Daemon
// implements; they never see the engine or the store.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/safesocket"
)

// Backend is what the handlers need from the daemon.
//
// Methods that take an account address accept "" to mean the only
// account; they return errors wrapping ErrNoAccount, ErrAccountRequired
// or ErrNotRunning so the handlers can pick a status.
type Backend interface {
	// Status returns the daemon's status.
	Status() apitype.Status
	// SyncNow asks the account (every account for "") to push and poll now.
	SyncNow(addr string) error
	// Client returns the SIP Account API client of the account and its
	// address as configured.
	Client(addr string) (*account.Client, string, error)
	// Keyring loads the account's keys, to decrypt journal rows.
	Keyring(addr string) (*seal.Keyring, error)
	// DeviceID is this device's writer uuid in the journal for the
	// account addr.
	DeviceID(addr string) string
	// Subscribe returns a channel of events and a function that stops them
	// and releases the channel. A slow reader misses events.
	Subscribe() (<-chan apitype.Event, func())
	// Devices returns the chatsync devices of the account, or for "" of
	// the only account (an error when it does not run) or, when there are
	// several, of every account that runs.
	Devices(addr string) ([]apitype.Devices, error)
	// RefreshDevices makes the account (every running one for "") send
	// its report now and ask the other devices for theirs.
	RefreshDevices(addr string) error
	// Verify compares the account's store with the journal and, with
	// repair, fixes what differs; progress, if not nil, is called as it
	// goes. ctx ends it.
	Verify(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error)
}

// Errors a Backend wraps.
var (
	ErrNoAccount       = errors.New("no such account")            // 404
	ErrAccountRequired = errors.New("say which account")          // 400
	ErrNotRunning      = errors.New("the account is not running") // 503
)

// Options configure a Server.
type Options struct {
	// Version is sent in the Chatsync-Version header.
	Version string
	Logger  *slog.Logger
	// Group is the gid whose members may use the socket besides its owner,
	// or -1 (or 0 with GroupSet false) for none.
	Group    int
	GroupSet bool
	// OwnerUID is the uid allowed besides root; default os.Getuid().
	OwnerUID *int
	// ShutdownTimeout bounds how long Serve waits for requests in flight
	// after its context is done (default 5 s).
	ShutdownTimeout time.Duration
}

// Server is the control API. It is an http.Handler; Serve runs it on a
// listener.
type Server struct {
	b     Backend
	opts  Options
	owner int
	log   *slog.Logger
	mux   *http.ServeMux
}

// New returns a Server for b.
func New(b Backend, opts Options) *Server {
	s := &Server{b: b, opts: opts, owner: os.Getuid(), log: opts.Logger, mux: http.NewServeMux()}
	if opts.OwnerUID != nil {
		s.owner = *opts.OwnerUID
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.ShutdownTimeout <= 0 {
		s.opts.ShutdownTimeout = 5 * time.Second
	}
	s.handle("GET /v1/status", s.serveStatus)
	s.handle("POST /v1/sync", s.serveSync)
	s.handle("GET /v1/events", s.serveEvents)
	s.handle("GET /v1/devices", s.serveDevices)
	s.handle("POST /v1/devices/refresh", s.serveRefreshDevices)
	s.handle("POST /v1/verify", s.serveVerify)
	s.handle("GET /v1/metrics", s.metricsHandler())
	s.handle("GET /v1/account", s.serveActions)
	s.handle("/v1/account/{action}", s.serveAccount)
	s.handle("/", func(w http.ResponseWriter, r *http.Request) error {
		switch r.URL.Path {
		case "/v1/status", "/v1/events", "/v1/devices", "/v1/metrics", "/v1/account":
			w.Header().Set("Allow", http.MethodGet)
			return httpErrorf(http.StatusMethodNotAllowed, "%s %s: use GET", r.Method, r.URL.Path)
		case "/v1/sync", "/v1/devices/refresh", "/v1/verify":
			w.Header().Set("Allow", http.MethodPost)
			return httpErrorf(http.StatusMethodNotAllowed, "%s %s: use POST", r.Method, r.URL.Path)
		}
		return httpErrorf(http.StatusNotFound, "no route %s %s: see GET /v1/status, POST /v1/sync, GET /v1/events, GET /v1/devices, POST /v1/devices/refresh, POST /v1/verify, GET /v1/metrics, /v1/account/{action}", r.Method, r.URL.Path)
	})
	return s
}

// handle registers a handler that returns an error; one function (writeError)
// turns errors into replies.
func (s *Server) handle(pattern string, h func(http.ResponseWriter, *http.Request) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

type credsKey struct{}

type peer struct {
	creds safesocket.Creds
	err   error
}

// Serve answers requests on ln until ctx is done, then closes ln, ends the
// event streams and waits for the requests in flight. A done ctx is the
// normal way to stop it and is not an error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext: func(cctx context.Context, c net.Conn) context.Context {
			creds, err := safesocket.PeerCred(c)
			return context.WithValue(cctx, credsKey{}, peer{creds, err})
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHTTP checks who is asking and from where, then routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(apitype.VersionHeader, s.opts.Version)
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		s.writeError(w, r, httpErrorf(http.StatusForbidden, "requests with an Origin or Referer header are refused: the control socket is not for browsers"))
		return
	}
	if p, ok := r.Context().Value(credsKey{}).(peer); ok {
		if err := s.permit(p); err != nil {
			s.log.Warn("control socket: refused a peer", "err", err)
			s.writeError(w, r, err)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// permit decides whether a peer may use the API: root, the daemon's own
// user, and members of the socket group.
func (s *Server) permit(p peer) error {
	if errors.Is(p.err, safesocket.ErrNoPeerCred) {
		return nil // the socket's mode (or ACL) is all there is
	}
	if p.err != nil {
		return httpErrorf(http.StatusForbidden, "cannot tell who is connecting: %v", p.err)
	}
	c := p.creds
	if c.UID == 0 || c.UID == s.owner || (s.opts.GroupSet && s.opts.Group >= 0 && c.InGroup(s.opts.Group)) {
		return nil
	}
	return httpErrorf(http.StatusForbidden, "permission denied: uid %d may not use the control socket of chatsync running as uid %d", c.UID, s.owner)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "account"); err != nil {
		return err
	}
	st := s.b.Status()
	if a := r.FormValue("account"); a != "" {
		st.Accounts = filterAccounts(st.Accounts, a)
		if len(st.Accounts) == 0 {
			return fmt.Errorf("%w: %s is not in the config", ErrNoAccount, a)
		}
	}
	return writeJSON(w, http.StatusOK, st)
}

func filterAccounts(list []apitype.AccountStatus, addr string) []apitype.AccountStatus {
	var out []apitype.AccountStatus
	for _, a := range list {
		if strings.EqualFold(a.Account, addr) {
			out = append(out, a)
		}
	}
	return out
}

func (s *Server) serveSync(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "account", "wait", "timeout"); err != nil {
		return err
	}
	addr := r.FormValue("account")
	wait, err := boolValue("wait", r.FormValue("wait"))
	if err != nil {
		return err
	}
	timeout := 5 * time.Minute
	if v := r.FormValue("timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return httpErrorf(http.StatusBadRequest, "timeout %q: want a Go duration such as 30s", v)
		}
	}
	requested := time.Now()
	if err := s.b.SyncNow(addr); err != nil {
		return err
	}
	res := apitype.SyncResult{Requested: requested}
	if !wait {
		return writeJSON(w, http.StatusOK, res)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		accts := s.b.Status().Accounts
		if addr != "" {
			accts = filterAccounts(accts, addr)
		}
		done := true
		for _, a := range accts {
			if why := a.WaitWontHelp(requested); why != "" {
				// Waiting would only run into the timeout.
				return waitWontHelp(a, why)
			}
			if !a.CaughtUp(requested) {
				done = false
			}
		}
		if done {
			res.Accounts = accts
			return writeJSON(w, http.StatusOK, res)
		}
		select {
		case <-ctx.Done():
			if r.Context().Err() != nil {
				return r.Context().Err()
			}
			return httpErrorf(http.StatusGatewayTimeout, "not caught up after %s: see `chatsync status`", timeout)
		case <-tick.C:
		}
	}
}

// waitWontHelp is the reply to a sync with wait=1 for an account that
// cannot catch up without a change: 502 with kind "auth" for refused
// credentials, 502 for a settings_url that is not the API, 503 for an
// account that cannot start or is paused.
func waitWontHelp(a apitype.AccountStatus, why string) error {
	msg := a.Account + ": " + why
	switch {
	case a.StartError != "" || a.State == apitype.StatePaused:
		return httpErrorf(http.StatusServiceUnavailable, "%s", msg)
	case a.LastPollErrorKind == "auth" || a.LastPushErrorKind == "auth":
		return &kindError{httpError{http.StatusBadGateway, msg}, "auth"}
	}
	return httpErrorf(http.StatusBadGateway, "%s", msg)
}

// kindError is an httpError whose reply names the kind of failure.
type kindError struct {
	httpError
	kind string
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "account"); err != nil {
		return err
	}
	addr := r.FormValue("account")
	fl, ok := w.(http.Flusher)
	if !ok {
		return httpErrorf(http.StatusInternalServerError, "streaming is not supported here")
	}
	ch, stop := s.b.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if addr != "" && ev.Account != "" && !strings.EqualFold(ev.Account, addr) {
				continue
			}
			if err := enc.Encode(ev); err != nil {
				return nil // the reader went away
			}
			fl.Flush()
		}
	}
}

func (s *Server) serveActions(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string][]string{"read": apitype.ReadActions, "write": apitype.WriteActions})
}

// httpError is an error with the status it should be answered with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func httpErrorf(code int, format string, args ...any) error {
	return &httpError{code, fmt.Sprintf(format, args...)}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, body := errorReply(err)
	if ae, ok := errors.AsType[*account.Error](err); ok && ae.Kind == account.KindRateLimited && ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
	}
	if code >= 500 {
		s.log.Info("control socket: request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", body.Error)
	}
	writeJSON(w, code, body)
}

// errorReply picks the status and body for err.
func errorReply(err error) (int, apitype.Error) {
	if ke, ok := errors.AsType[*kindError](err); ok {
		return ke.code, apitype.Error{Error: ke.msg, Kind: ke.kind}
	}
	if he, ok := errors.AsType[*httpError](err); ok {
		return he.code, apitype.Error{Error: he.msg}
	}
	if ae, ok := errors.AsType[*account.Error](err); ok {
		body := apitype.Error{Error: ae.Error(), Kind: ae.Kind.String()}
		switch {
		case ae.Kind == account.KindAuth:
			// Its message says what to check already.
			body.Error = "the SIP account server refused the daemon's credentials: " + ae.Error()
			return http.StatusBadGateway, body
		case ae.Kind == account.KindServer && (ae.StatusCode == 401 || ae.StatusCode == 403):
			body.Kind = account.KindAuth.String()
			body.Error = "the SIP account server refused the daemon's credentials (" + ae.Error() + "): check password_file (or web_password_file) of the account in the config"
			return http.StatusBadGateway, body
		case ae.Kind == account.KindRejected:
			return http.StatusUnprocessableEntity, body
		case ae.Kind == account.KindRateLimited:
			return http.StatusServiceUnavailable, body
		case ae.Kind == account.KindTransport && errors.Is(ae.Err, context.DeadlineExceeded):
			return http.StatusGatewayTimeout, body
		}
		return http.StatusBadGateway, body
	}
	switch {
	case errors.Is(err, account.ErrInvalidArgument), errors.Is(err, ErrAccountRequired):
		return http.StatusBadRequest, apitype.Error{Error: err.Error()}
	case errors.Is(err, ErrNoAccount):
		return http.StatusNotFound, apitype.Error{Error: err.Error()}
	case errors.Is(err, ErrNotRunning):
		return http.StatusServiceUnavailable, apitype.Error{Error: err.Error()}
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, apitype.Error{Error: "the request was cancelled (is the daemon stopping?)"}
	}
	return http.StatusInternalServerError, apitype.Error{Error: err.Error()}
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// checkParams parses the query and form body and refuses parameters not
// in allowed.
func checkParams(r *http.Request, allowed ...string) error {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	}
	if err := r.ParseForm(); err != nil {
		return httpErrorf(http.StatusBadRequest, "bad parameters: %v", err)
	}
	for k := range r.Form {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return httpErrorf(http.StatusBadRequest, "unknown parameter %q for %s (want %s)", k, r.URL.Path, strings.Join(allowed, ", "))
		}
	}
	return nil
}
