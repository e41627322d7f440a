package localapi

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/metrics"
)

// serveDevices answers GET /v1/devices: one apitype.Devices for the
// account asked for, or when none is named the only account's, and an
// array of them when the daemon has several accounts. The shape depends
// on the request and the config, never on which accounts run right now,
// so a script can rely on it.
func (s *Server) serveDevices(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "account"); err != nil {
		return err
	}
	addr := r.FormValue("account")
	devs, err := s.b.Devices(addr)
	if err != nil {
		return err
	}
	if addr == "" && len(s.b.Status().Accounts) > 1 {
		return writeJSON(w, http.StatusOK, devs)
	}
	if len(devs) == 0 {
		return httpErrorf(http.StatusServiceUnavailable, "no account runs: see `chatsync status`")
	}
	return writeJSON(w, http.StatusOK, devs[0])
}

// Refreshed is the reply of POST /v1/devices/refresh: the devices that
// report after this time have answered the request.
type Refreshed struct {
	Refreshed time.Time `json:"refreshed"`
}

// serveRefreshDevices answers POST /v1/devices/refresh with 202: the
// reports are asked for, and come at the other devices' next polls.
func (s *Server) serveRefreshDevices(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "account"); err != nil {
		return err
	}
	// Taken before the request goes out: a report made after it answers
	// it, even one that beats this reply.
	now := time.Now()
	if err := s.b.RefreshDevices(r.FormValue("account")); err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, Refreshed{Refreshed: now})
}

// VerifyLine is one line of POST /v1/verify?progress=1 (NDJSON): Progress
// lines while the verify goes on, then one with Result, or one with Error
// when it failed after the reply had begun.
type VerifyLine struct {
	Progress *apitype.VerifyProgress `json:"progress,omitempty"`
	Result   *apitype.VerifyResult   `json:"result,omitempty"`
	Error    string                  `json:"error,omitempty"`
}

// serveVerify answers POST /v1/verify. It reads the whole journal and may
// take minutes: the reply has no write deadline, and the request's
// context (the client hanging up, the daemon stopping) ends the verify.
func (s *Server) serveVerify(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "account", "repair", "progress"); err != nil {
		return err
	}
	repair, err := boolValue("repair", r.FormValue("repair"))
	if err != nil {
		return err
	}
	stream, err := boolValue("progress", r.FormValue("progress"))
	if err != nil {
		return err
	}
	// No deadline: the server sets none today, and a verify must not be
	// cut off if one is ever set for the quick routes.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	addr := r.FormValue("account")
	if !stream {
		res, err := s.b.Verify(r.Context(), addr, repair, nil)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	}

	fl, ok := w.(http.Flusher)
	if !ok {
		return httpErrorf(http.StatusInternalServerError, "streaming is not supported here")
	}
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	started, ended := false, false
	// line writes one line; the engine may report progress from more than
	// one goroutine, and never after Verify returned.
	line := func(l VerifyLine) {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if enc.Encode(l) == nil {
			fl.Flush()
		}
	}
	res, err := s.b.Verify(r.Context(), addr, repair, func(p apitype.VerifyProgress) { line(VerifyLine{Progress: &p}) })
	mu.Lock()
	begun := started
	mu.Unlock()
	if err != nil && !begun {
		mu.Lock()
		ended = true
		mu.Unlock()
		return err // a plain error reply: nothing was sent yet
	}
	if err != nil {
		_, body := errorReply(err)
		line(VerifyLine{Error: body.Error})
	} else {
		line(VerifyLine{Result: &res})
	}
	mu.Lock()
	ended = true
	mu.Unlock()
	return nil
}

// metricsSource reads the metrics from a Backend: every account's status
// and devices.
type metricsSource struct{ b Backend }

func (m metricsSource) Status() apitype.Status { return m.b.Status() }

func (m metricsSource) Devices() []apitype.Devices {
	devs, _ := m.b.Devices("") // an account that does not run has no devices to show
	return devs
}

// MetricsSource is b as sync/metrics reads it, for GET /v1/metrics and
// for the daemon's metrics_listen, so that both serve the same.
func MetricsSource(b Backend) metrics.Source { return metricsSource{b} }

// metricsHandler serves GET /v1/metrics.
func (s *Server) metricsHandler() func(http.ResponseWriter, *http.Request) error {
	h := metrics.Handler(MetricsSource(s.b))
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := checkParams(r); err != nil {
			return err
		}
		h.ServeHTTP(w, r)
		return nil
	}
}
