package daemon

// The control socket: the daemon's side of sync/localapi. Everything the
// socket needs from the daemon is here, so the rest of the package does not
// know about it beyond the two calls in Run.

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
	"github.com/chatsync/chatsync/sync/localapi"
	"github.com/chatsync/chatsync/sync/safesocket"
)

// socketServer is the running control socket.
type socketServer struct {
	cancel context.CancelFunc
	done   chan error
}

// startSocket opens the control socket (daemon.socket; none if empty) and
// serves the control API on it until stop is called or ctx is done.
func (d *Daemon) startSocket(ctx context.Context) (*socketServer, error) {
	cfg := d.opts.Config.Daemon
	if cfg.Socket == "" {
		return nil, nil
	}
	ln, err := safesocket.Listen(cfg.Socket, safesocket.Options{Group: cfg.SocketGroup})
	if err != nil {
		return nil, err
	}
	opts := localapi.Options{Version: d.opts.Version, Logger: d.log.With("component", "localapi"), Group: -1}
	if cfg.SocketGroup != "" {
		if gid, err := groupID(cfg.SocketGroup); err == nil {
			opts.Group, opts.GroupSet = gid, true
		}
	}
	srv := localapi.New(backend{d}, opts)
	sctx, cancel := context.WithCancel(ctx)
	s := &socketServer{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(sctx, ln) }()
	d.log.Info("control socket is open", "path", cfg.Socket)
	return s, nil
}

// stop closes the socket, ends the event streams and waits for the
// requests in flight.
func (s *socketServer) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

func groupID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}

// backend is the daemon as localapi sees it.
type backend struct{ d *Daemon }

var _ localapi.Backend = backend{}

func (b backend) DeviceID(addr string) string {
	if id, err := b.d.db.AccountDevice(addr); err == nil {
		return id
	}
	return b.d.DeviceID()
}

func (b backend) Status() apitype.Status {
	d := b.d
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	st := apitype.Status{Version: d.opts.Version, DeviceID: d.DeviceID(), Started: started, Accounts: []apitype.AccountStatus{}}
	if !started.IsZero() {
		st.UptimeSeconds = time.Since(started).Seconds()
	}
	for _, a := range d.Status() {
		st.Accounts = append(st.Accounts, accountStatus(a))
	}
	cs := d.ConfigState()
	st.ConfigPath, st.ConfigLoaded, st.ConfigError, st.RestartNeeded = cs.Path, cs.Loaded, cs.Error, cs.RestartNeeded
	problems := cs.Problems
	if p := d.metricsProblem(); p != nil {
		problems = append(problems, *p)
	}
	for _, p := range problems {
		st.ConfigProblems = append(st.ConfigProblems, apitype.ConfigProblem{Line: p.Line, Key: p.Key, Message: p.Message, Warning: p.Warning})
	}
	return st
}

func accountStatus(a AccountStatus) apitype.AccountStatus {
	out := a.Status.AccountStatus
	out.StartError, out.Started = a.StartError, a.Started
	if out.Clone == "" {
		out.DeviceID = "" // the installation's, shown once for the daemon
	}
	return out
}

func (b backend) SyncNow(addr string) error {
	if addr != "" {
		if _, err := b.runner(addr); err != nil && !errors.Is(err, localapi.ErrNotRunning) {
			return err
		}
	}
	return b.d.SyncNow(b.canonical(addr))
}

// canonical returns the configured spelling of addr (addresses compare
// case-insensitively), or addr.
func (b backend) canonical(addr string) string {
	b.d.mu.Lock()
	defer b.d.mu.Unlock()
	for name := range b.d.accounts {
		if strings.EqualFold(name, addr) {
			return name
		}
	}
	return addr
}

// runner finds the account named addr, or the only one for "".
func (b backend) runner(addr string) (*accountRunner, error) {
	d := b.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if addr == "" {
		if len(d.accounts) != 1 {
			names := sortedKeys(d.accounts)
			return nil, fmt.Errorf("%w: the config has %d accounts (%s): pass --account (or ?account=)", localapi.ErrAccountRequired, len(names), strings.Join(names, ", "))
		}
		for _, r := range d.accounts {
			return r, nil
		}
	}
	for name, r := range d.accounts {
		if strings.EqualFold(name, addr) {
			if r.client == nil {
				return r, fmt.Errorf("%w: %s: %v", localapi.ErrNotRunning, name, r.err)
			}
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not in the config", localapi.ErrNoAccount, addr)
}

func (b backend) Client(addr string) (*account.Client, string, error) {
	r, err := b.runner(addr)
	if err != nil {
		return nil, "", err
	}
	if r.client == nil {
		return nil, "", fmt.Errorf("%w: %s: %v", localapi.ErrNotRunning, r.cfg.Address, r.err)
	}
	return r.client, r.cfg.Address, nil
}

// Keyring reads the account's key file afresh, so a key added since the
// start is used too.
func (b backend) Keyring(addr string) (*seal.Keyring, error) {
	r, err := b.runner(addr)
	if err != nil {
		return nil, err
	}
	kr, err := seal.LoadKeyring(r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: key of %s: %v", localapi.ErrNotRunning, r.cfg.Address, err)
	}
	return kr, nil
}

func (b backend) Subscribe() (<-chan apitype.Event, func()) {
	src, unsubscribe := b.d.Subscribe()
	out := make(chan apitype.Event, 64)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case ev := <-src:
				select {
				case out <- event(ev):
				case <-done:
					return
				}
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			unsubscribe()
			close(done)
		})
	}
}

func (b backend) Devices(addr string) ([]apitype.Devices, error) { return b.d.Devices(addr) }
func (b backend) RefreshDevices(addr string) error               { return b.d.RefreshDevices(addr) }

func (b backend) Verify(ctx context.Context, addr string, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
	return b.d.Verify(ctx, addr, repair, progress)
}

func event(ev engine.Event) apitype.Event {
	return apitype.Event{Time: ev.Time, Account: ev.Account, Kind: ev.Kind, Count: ev.Count, Path: ev.Path, Message: ev.Message}
}
