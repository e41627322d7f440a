// Package daemon runs chatsync: it turns a config into one replication
// engine per account over one state database, and keeps them running until
// it is stopped.
//
// An account that cannot start (its key file is missing, its password file
// unreadable) does not stop the others: it is shown in Status with what to
// do, and the rest replicate.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
)

// Options configure a Daemon.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Version is reported in status.
	Version string
	// Tune, if set, adjusts each engine's options before it starts (the
	// demo and tests use it for short intervals).
	Tune func(*engine.Options)
	// Transport, if set, is the HTTP transport of every account client
	// (tests inject faults with it).
	Transport http.RoundTripper
	// LogLevel, if set, is the level of Logger; a reload sets it to the
	// config's log_level (reload.go).
	LogLevel *slog.LevelVar
	// ReloadDebounce is how long the config file must be quiet after a
	// change before it is read again (default DefaultReloadDebounce).
	ReloadDebounce time.Duration
	// NoConfigWatch turns off watching the config file; Reload (SIGHUP)
	// still works.
	NoConfigWatch bool
}

// Daemon is a running chatsync.
type Daemon struct {
	opts Options
	log  *slog.Logger
	db   *store.DB

	mu       sync.Mutex
	accounts map[string]*accountRunner
	started  time.Time
	events   *eventHub
	reload   *reloader
	stalls   *stallWatch
	metrics  *metricsServer
	// traffic is what the clients of accounts that were restarted or
	// removed by a reload had sent and received, by address, so that
	// BytesSent and BytesReceived count from the daemon's start.
	traffic map[string][2]int64
}

// accountRunner is one account of the config and, if it could start, its
// engine.
type accountRunner struct {
	cfg    config.Account
	client *account.Client
	eng    *engine.Engine
	err    error // why it could not start
	// keySum is the hash of the key file the engine started with, and
	// started when it started (reload.go).
	keySum  [32]byte
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	// lock is the account's hold on its message store (storelock.go).
	lock *storeLock
}

// ErrAlreadyRunning is returned by New when another chatsync holds the
// state directory.
var ErrAlreadyRunning = errors.New("chatsync is already running")

// New opens the state database. It fails at once if another daemon uses
// the same state directory, if the state file is damaged (saying what to
// run to start again) and if the state is not private.
func New(opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	db, err := store.Open(cfg.Daemon.StateDir, store.Options{RequirePrivate: true})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w with state dir %s: stop it first (chatsync service stop), or give this one another daemon.state_dir", ErrAlreadyRunning, cfg.Daemon.StateDir)
	}
	var damaged *store.DamagedError
	if errors.As(err, &damaged) {
		return nil, damagedState(damaged, cfg)
	}
	if errors.Is(err, store.ErrNotPrivate) {
		return nil, err // says which file or dir, and what to run
	}
	if err != nil {
		return nil, fmt.Errorf("open the state in %s: %w", cfg.Daemon.StateDir, err)
	}
	d := &Daemon{opts: opts, log: opts.Logger, db: db, accounts: map[string]*accountRunner{}, events: newEventHub(), reload: newReloader(),
		stalls: newStallWatch(), traffic: map[string][2]int64{}}
	d.metrics = newMetricsServer(d)
	return d, nil
}

// DeviceID is this installation's id in the journal.
func (d *Daemon) DeviceID() string { return d.db.DeviceID() }

// Run starts every account and blocks until ctx is done, then stops them
// all, waiting for each to finish the batch in flight, and closes the state.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	d.started = time.Now()
	d.mu.Unlock()
	// Each account claims its store first (a lock and, the first time, a
	// write of the state), so that once the socket answers, every account
	// is in status as soon as it was before.
	claims := make([]claim, len(d.opts.Config.Accounts))
	for i, a := range d.opts.Config.Accounts {
		claims[i] = d.claim(a)
	}
	// The control socket opens next, so `chatsync status` works while the
	// accounts start (socket.go).
	sock, err := d.startSocket(ctx)
	if err != nil {
		for _, c := range claims {
			c.lock.release()
		}
		d.db.Close()
		return err
	}
	for i, a := range d.opts.Config.Accounts {
		d.startAccount(ctx, a, claims[i])
	}
	// Metrics are not worth failing the start for: a port in use is
	// logged and shown in status (metricsserver.go).
	d.metrics.set(d.opts.Config.Daemon.MetricsListen)
	d.log.Info("chatsync is running", "accounts", len(d.opts.Config.Accounts), "device", d.db.DeviceID(), "state_dir", d.opts.Config.Daemon.StateDir)
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		d.reloadLoop(ctx)
	}()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		d.watchStalls(ctx, StallCheckInterval)
	}()
	<-ctx.Done()
	<-reloaded // no reload starts an account from here on
	<-watched
	sock.stop()
	d.metrics.stop()
	d.mu.Lock()
	runners := make([]*accountRunner, 0, len(d.accounts))
	for _, r := range d.accounts {
		runners = append(runners, r)
	}
	d.mu.Unlock()
	for _, r := range runners {
		r.stop()
	}
	d.log.Info("chatsync stopped")
	return d.db.Close()
}

// startAccount starts the engine of a, which has claimed its store (c).
func (d *Daemon) startAccount(ctx context.Context, a config.Account, c claim) {
	r := &accountRunner{cfg: a, done: make(chan struct{}), keySum: fileSum(a.KeyFile), started: time.Now()}
	lock, err := c.lock, c.err
	var eng *engine.Engine
	var client *account.Client
	if err == nil {
		eng, client, err = d.newEngine(a)
	}
	if err != nil {
		lock.release()
		r.err = err
		close(r.done)
		d.mu.Lock()
		d.accounts[a.Address] = r
		d.mu.Unlock()
		d.log.Error("account cannot start; the others keep running", "account", a.Address, "err", err)
		d.events.publish(engine.Event{Time: time.Now(), Account: a.Address, Kind: "error", Message: err.Error()})
		return
	}
	r.eng, r.client, r.lock = eng, client, lock
	actx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	d.mu.Lock()
	d.accounts[a.Address] = r
	d.mu.Unlock()
	d.log.Debug("account started", "account", a.Address, "store", a.Store, "settings_url", a.SettingsURL, "poll_interval", a.PollInterval, "key_file", a.KeyFile)
	go func() {
		defer close(r.done)
		eng.Run(actx)
	}()
}

func (r *accountRunner) stop() {
	if r.cancel != nil {
		r.cancel()
	}
	<-r.done
	r.lock.release()
	if r.client != nil {
		// Keep-alive connections would otherwise outlive the account
		// (two goroutines each, until the idle timeout).
		r.client.CloseIdleConnections()
	}
}

func (d *Daemon) newEngine(a config.Account) (*engine.Engine, *account.Client, error) {
	if a.Password == "" && a.WebPassword == "" {
		return nil, nil, fmt.Errorf("no password: write it into %s (mode 0600)", a.PasswordFile)
	}
	kr, err := seal.LoadKeyring(a.KeyFile)
	if err != nil {
		// seal's messages say what to do (generate, import, chmod): once.
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	client, err := account.New(account.Config{
		Address: a.Address, SettingsURL: a.SettingsURL, Password: a.Password, WebPassword: a.WebPassword,
		CAFile: a.CAFile, Transport: d.opts.Transport, UserAgent: "chatsync/" + d.opts.Version,
	})
	if err != nil {
		return nil, nil, err
	}
	opts := engine.Options{
		Account: a.Address, Store: a.Store, StoreFormat: a.StoreFormat, Keyring: kr, Remote: client, DB: d.db,
		PollInterval: a.PollInterval, ReplicateDeletes: a.ReplicateDeletes, MaxMessageBytes: a.MaxMessageBytes,
		Logger: d.log, OnEvent: d.events.publish, Failpoint: failpointFromEnv(),
		DeviceName: a.DeviceName, Version: d.opts.Version,
	}
	tuneFromEnv(&opts)
	if d.opts.Tune != nil {
		d.opts.Tune(&opts)
	}
	eng, err := engine.New(opts)
	if err != nil {
		return nil, nil, err
	}
	return eng, client, nil
}

// AccountStatus is the status of one configured account.
type AccountStatus struct {
	engine.Status
	// Error says why the account could not start, if it could not.
	StartError string `json:"start_error,omitempty"`
	// Started is when the account's engine was (last) started.
	Started time.Time `json:"started,omitzero"`
}

// Status returns every account's status, in config order. Each look also
// publishes the accounts that became stalled or recovered since the last
// (stall.go).
func (d *Daemon) Status() []AccountStatus {
	out := d.status()
	d.noticeStalls(out)
	return out
}

func (d *Daemon) status() []AccountStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []AccountStatus
	for _, a := range d.opts.Config.Accounts {
		r := d.accounts[a.Address]
		if r == nil {
			// Configured, its engine not made yet (the daemon or a reload
			// is starting it): say so rather than leave it out.
			out = append(out, AccountStatus{Status: engine.Status{AccountStatus: apitype.AccountStatus{Account: a.Address, State: apitype.StateStarting}}})
			continue
		}
		if r.eng == nil {
			out = append(out, AccountStatus{Status: engine.Status{AccountStatus: apitype.AccountStatus{Account: a.Address, State: apitype.StateError, Error: r.err.Error()}}, StartError: r.err.Error(), Started: r.started})
			continue
		}
		st := r.eng.Status()
		sent, received := r.client.Traffic()
		before := d.traffic[a.Address]
		st.BytesSent, st.BytesReceived = before[0]+sent, before[1]+received
		out = append(out, AccountStatus{Status: st, Started: r.started})
	}
	return out
}

// keepTraffic adds the bytes r's client sent and received to those of
// its account, before r is replaced or removed by a reload.
func (d *Daemon) keepTraffic(r *accountRunner) {
	if r.client == nil {
		return
	}
	sent, received := r.client.Traffic()
	d.mu.Lock()
	t := d.traffic[r.cfg.Address]
	d.traffic[r.cfg.Address] = [2]int64{t[0] + sent, t[1] + received}
	d.mu.Unlock()
}

// SyncNow asks every account (or the one named) to push and poll now.
func (d *Daemon) SyncNow(addr string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	for name, r := range d.accounts {
		if addr != "" && name != addr {
			continue
		}
		found = true
		if r.eng != nil {
			r.eng.SyncNow()
		}
	}
	if !found {
		return fmt.Errorf("no account %s in the config", addr)
	}
	return nil
}

// Subscribe returns a channel of events and a function to stop receiving
// them. A subscriber that does not keep up misses events rather than
// slowing the engines down.
func (d *Daemon) Subscribe() (<-chan engine.Event, func()) { return d.events.subscribe() }

// eventHub fans events out to subscribers without ever blocking the
// publisher.
type eventHub struct {
	mu   sync.Mutex
	subs map[chan engine.Event]struct{}
}

func newEventHub() *eventHub { return &eventHub{subs: map[chan engine.Event]struct{}{}} }

func (h *eventHub) publish(ev engine.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (h *eventHub) subscribe() (<-chan engine.Event, func()) {
	ch := make(chan engine.Event, 256)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}
