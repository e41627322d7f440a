package daemon

// daemon.metrics_listen: the Prometheus metrics of sync/metrics on
// http://ADDRESS/metrics, plain HTTP on a loopback address (the config
// accepts no other: the metrics say when the user chats). The control
// socket serves the same at GET /v1/metrics. A reload that changes the
// address moves the listener; one that cannot listen is logged and shown
// in status, and the daemon runs on without metrics.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/sync/localapi"
	"github.com/chatsync/chatsync/sync/metrics"
)

// metricsServer is the listener of daemon.metrics_listen, if any.
type metricsServer struct {
	log     *slog.Logger
	handler http.Handler

	mu   sync.Mutex
	addr string // as configured; "" for none
	// bound is the address it listens on (the port chosen for ":0"), and
	// err why it does not listen on addr.
	bound string
	err   error
	hs    *http.Server
	done  chan struct{}
}

func newMetricsServer(d *Daemon) *metricsServer {
	mux := http.NewServeMux()
	// The source of GET /v1/metrics too, so both serve the same.
	mux.Handle("GET /metrics", metrics.Handler(localapi.MetricsSource(backend{d})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "chatsync serves only GET /metrics here", http.StatusNotFound)
	})
	return &metricsServer{log: d.log.With("component", "metrics"), handler: mux}
}

// set makes the server listen on addr, closing the listener of the
// previous address; "" closes it. A failure to listen is kept for status.
func (m *metricsServer) set(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if addr == m.addr && (m.hs != nil || addr == "") {
		return
	}
	m.closeLocked()
	m.addr, m.bound, m.err = addr, "", nil
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		m.err = err
		m.log.Error("cannot serve the metrics; the daemon runs on without them", "metrics_listen", addr, "err", err)
		return
	}
	m.bound = ln.Addr().String()
	m.hs = &http.Server{Handler: m.handler, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)}
	m.done = make(chan struct{})
	go func(hs *http.Server, done chan struct{}) {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics listener failed", "metrics_listen", addr, "err", err)
		}
	}(m.hs, m.done)
	m.log.Info("serving metrics", "url", "http://"+m.bound+"/metrics")
}

// closeLocked stops the listener, giving a scrape in flight a moment.
func (m *metricsServer) closeLocked() {
	if m.hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.hs.Shutdown(ctx); err != nil {
		m.hs.Close()
	}
	<-m.done
	m.hs, m.done = nil, nil
}

// stop closes the listener for good (at shutdown).
func (m *metricsServer) stop() { m.set("") }

// state returns the address it listens on and why it does not listen on
// the configured one.
func (m *metricsServer) state() (addr, bound string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr, m.bound, m.err
}

// MetricsAddr is the address the metrics are served on ("" when none),
// with the port chosen when daemon.metrics_listen asks for port 0.
func (d *Daemon) MetricsAddr() string {
	_, bound, _ := d.metrics.state()
	return bound
}

// metricsProblem is the failure to listen on daemon.metrics_listen as a
// warning of the config, for status: the daemon runs on, and nothing in
// the file is wrong, but what it asks for is not served.
func (d *Daemon) metricsProblem() *config.Problem {
	addr, _, err := d.metrics.state()
	if err == nil {
		return nil
	}
	return &config.Problem{Key: "daemon.metrics_listen", Warning: true,
		Message: "cannot serve the metrics on " + addr + ": " + err.Error() + ": the daemon runs without them; choose another port, or stop what listens there, and save the config again"}
}
