package cli

// `chatsync run` under a service manager. In a terminal (and in containers)
// run keeps plain signal handling; under systemd, launchd or the Windows
// service control manager it runs as a kardianos program: Start returns at
// once with the daemon running in a goroutine, and Stop cancels it and
// waits for it to save its state, within the manager's stop timeout. On
// Windows the log goes to the event log; elsewhere it stays on stderr, which
// journald and launchd collect.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	ks "github.com/kardianos/service"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
	"github.com/chatsync/chatsync/cmd/chatsync/service"
)

// stopTimeout bounds how long Stop waits for the daemon to save its state:
// below the Windows SCM's 20 s and systemd's TimeoutStopSec (30 s in our
// units).
const stopTimeout = 15 * time.Second

// onReloadSignal makes SIGHUP reload the config of d (Unix); the returned
// function stops that.
func onReloadSignal(d *daemon.Daemon) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				d.Reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// runUnderServiceManager runs the daemon as a kardianos program.
func runUnderServiceManager(g *globals) error {
	prg := &program{g: g}
	// The unit files only matter for install; a name is all Run needs.
	s, err := ks.New(prg, &ks.Config{Name: service.Name(), DisplayName: "chatsync"})
	if err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		if l, err := s.Logger(nil); err == nil {
			prg.sysLog = l
		}
	}
	return s.Run()
}

// program is chatsync as a kardianos service program.
type program struct {
	g      *globals
	sysLog ks.Logger // Windows event log; nil elsewhere

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan error
	stopHUP  func()
	stopping bool
}

func (p *program) logger(level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if p.sysLog != nil {
		return slog.New(&eventLogHandler{out: p.sysLog, opts: opts})
	}
	return slog.New(slog.NewTextHandler(p.g.stderr, opts))
}

// Start loads the config and opens the state, then runs the daemon in a
// goroutine and returns.
func (p *program) Start(ks.Service) error {
	level := new(slog.LevelVar)
	cfg, problems, err := config.Load(p.g.configFile())
	log := p.logger(level)
	for _, pr := range problems {
		log.Warn("config: " + pr.String())
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return err
	}
	level.Set(cfg.Daemon.LogLevel)
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, LogLevel: level, Version: p.g.version})
	if err != nil {
		log.Error("cannot start", "err", err)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.cancel, p.done, p.stopHUP = cancel, make(chan error, 1), onReloadSignal(d)
	p.mu.Unlock()
	go func() {
		err := d.Run(ctx)
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if !stopping {
			// It ended on its own: a fatal error. Exit non-zero so the
			// service manager restarts it (Restart=on-failure).
			log.Error("chatsync stopped on an error", "err", err)
			os.Exit(ExitFailure)
		}
		p.done <- err
	}()
	return nil
}

// Stop cancels the daemon and waits for it to save its state.
func (p *program) Stop(ks.Service) error {
	p.mu.Lock()
	p.stopping = true
	cancel, done, stopHUP := p.cancel, p.done, p.stopHUP
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	stopHUP()
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(stopTimeout):
		return fmt.Errorf("chatsync did not stop within %s", stopTimeout)
	}
}

// eventLogHandler writes slog records to a kardianos logger (the Windows
// event log): errors as errors, warnings as warnings, the rest as
// information, each as one text line.
type eventLogHandler struct {
	out   ks.Logger
	opts  *slog.HandlerOptions
	attrs []slog.Attr
	group string
}

func (h *eventLogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level()
}

func (h *eventLogHandler) Handle(ctx context.Context, r slog.Record) error {
	var buf bytes.Buffer
	var th slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{} // the event log has both
			}
			return a
		},
	})
	th = th.WithAttrs(h.attrs)
	if h.group != "" {
		th = th.WithGroup(h.group)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	line := string(bytes.TrimSpace(buf.Bytes()))
	switch {
	case r.Level >= slog.LevelError:
		return h.out.Error(line)
	case r.Level >= slog.LevelWarn:
		return h.out.Warning(line)
	}
	return h.out.Info(line)
}

func (h *eventLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *eventLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
