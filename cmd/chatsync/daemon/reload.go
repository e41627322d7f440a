package daemon

// Live reload of the config file. The daemon watches the directory that
// holds the config (editors that save by writing a new file and renaming it
// over the old one replace the inode, which a watch on the file itself would
// lose) and takes SIGHUP through Reload. A reload reads and checks the file
// as `chatsync config check` does; an invalid file is refused and the running
// config stays, with the problems shown in status and on the event stream
// until the file is fixed. A valid file is applied account by account:
// accounts that did not change keep running untouched, removed ones stop
// (after the batch in flight), added ones start, changed ones restart.
// Settings of the [daemon] table other than log_level and metrics_listen
// need a restart; that is logged and shown in status.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
)

// DefaultReloadDebounce is how long the config file must be quiet after a
// change before it is read: editors write a file in several steps.
const DefaultReloadDebounce = 300 * time.Millisecond

// reloader is the daemon's reload state.
type reloader struct {
	req chan struct{} // Reload requests (SIGHUP)

	mu       sync.Mutex
	loaded   time.Time         // when the config in effect was read
	errText  string            // why the last edit was refused; "" when it was not
	problems []config.Problem  // the problems of the refused edit
	restart  map[string]string // [daemon] key → why it needs a restart
}

func newReloader() *reloader {
	return &reloader{req: make(chan struct{}, 1), loaded: time.Now(), restart: map[string]string{}}
}

// Reload asks the daemon to read its config file again, as SIGHUP does. It
// does not wait; status and the event stream show the outcome.
func (d *Daemon) Reload() {
	select {
	case d.reload.req <- struct{}{}:
	default: // one is already pending
	}
}

// ConfigState is the daemon-level part of status: which config runs and
// whether the file on disk could be applied.
type ConfigState struct {
	Path     string
	Loaded   time.Time
	Error    string
	Problems []config.Problem
	// RestartNeeded says which changed settings wait for a restart.
	RestartNeeded string
}

// ConfigState returns the state of the config in effect.
func (d *Daemon) ConfigState() ConfigState {
	d.mu.Lock()
	path := d.opts.Config.Path
	d.mu.Unlock()
	r := d.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	var restart []string
	for _, k := range sortedKeys(r.restart) {
		restart = append(restart, r.restart[k])
	}
	return ConfigState{
		Path: path, Loaded: r.loaded, Error: r.errText,
		Problems:      append([]config.Problem(nil), r.problems...),
		RestartNeeded: strings.Join(restart, "; "),
	}
}

// reloadLoop serves reload requests and watches the config file until ctx
// is done. It is the only goroutine that changes the set of running
// accounts after Run started them.
func (d *Daemon) reloadLoop(ctx context.Context) {
	path := d.opts.Config.Path
	var events <-chan fsnotify.Event
	var errs <-chan error
	var w *fsnotify.Watcher
	names := map[string]bool{}
	if path != "" && !d.opts.NoConfigWatch {
		var err error
		w, err = watchConfig(path, names)
		if err != nil {
			d.log.Warn("cannot watch the config file; send SIGHUP (or restart) after editing it", "path", path, "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
			d.watchKeys(w, names)
		}
	}
	debounce := d.opts.ReloadDebounce
	if debounce <= 0 {
		debounce = DefaultReloadDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if names[filepath.Clean(ev.Name)] {
				timer.Reset(debounce)
			}
		case err := <-errs:
			d.log.Warn("watching the config file", "err", err)
		case <-timer.C:
			d.apply(ctx, "the config file or a key file changed")
			d.watchKeys(w, names)
		case <-d.reload.req:
			d.apply(ctx, "reload requested")
			d.watchKeys(w, names)
		}
	}
}

// watchKeys adds the key files of the running config to the watch, so
// that a key added with `chatsync key import` takes effect at once: the
// account restarts with it (mustRestart), which retries what was kept for
// want of that key. A key file whose directory cannot be watched takes
// effect at the next reload.
func (d *Daemon) watchKeys(w *fsnotify.Watcher, names map[string]bool) {
	if w == nil {
		return
	}
	d.mu.Lock()
	cfg := d.opts.Config
	d.mu.Unlock()
	for _, a := range cfg.Accounts {
		p := filepath.Clean(a.KeyFile)
		if names[p] {
			continue
		}
		if err := w.Add(filepath.Dir(p)); err != nil {
			d.log.Info("cannot watch the key file; a key added to it takes effect at the next reload (SIGHUP)", "path", p, "err", err)
			continue
		}
		names[p] = true
	}
}

// watchConfig watches the directory of the config file and, when the file
// is a symbolic link, the directory of its target. names receives the
// paths whose events count.
func watchConfig(path string, names map[string]bool) (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	paths := []string{filepath.Clean(path)}
	if target, err := filepath.EvalSymlinks(path); err == nil && target != paths[0] {
		paths = append(paths, target)
	}
	for _, p := range paths {
		names[p] = true
		if err := w.Add(filepath.Dir(p)); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// apply reads the config file and, if it is valid, makes it the running
// config.
func (d *Daemon) apply(ctx context.Context, why string) {
	if ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	old := d.opts.Config
	d.mu.Unlock()
	cfg, problems, err := config.Load(old.Path)
	if err != nil {
		d.refuse(err, problems)
		return
	}
	for _, p := range problems {
		d.log.Warn("config: "+p.String(), "path", old.Path)
	}

	// The [daemon] table: log_level applies now, the rest at the next start.
	if d.opts.LogLevel != nil && d.opts.LogLevel.Level() != cfg.Daemon.LogLevel {
		d.opts.LogLevel.Set(cfg.Daemon.LogLevel)
		d.log.Info("log level changed", "log_level", cfg.Daemon.LogLevel.String())
	}
	restart := map[string]string{}
	for key, pair := range map[string][2]string{
		"state_dir":    {old.Daemon.StateDir, cfg.Daemon.StateDir},
		"socket":       {old.Daemon.Socket, cfg.Daemon.Socket},
		"socket_group": {old.Daemon.SocketGroup, cfg.Daemon.SocketGroup},
	} {
		if pair[0] != pair[1] {
			restart[key] = fmt.Sprintf("daemon.%s changed to %q: restart chatsync to use it (still %q)", key, pair[1], pair[0])
		}
	}
	for _, k := range sortedKeys(restart) {
		d.log.Warn("config: a setting changed that needs a restart", "key", "daemon."+k, "detail", restart[k])
	}
	running := cfg
	if len(restart) > 0 {
		c := *cfg
		c.Daemon = old.Daemon
		c.Daemon.LogLevel = cfg.Daemon.LogLevel
		c.Daemon.MetricsListen = cfg.Daemon.MetricsListen
		running = &c
	}

	// The accounts, by address.
	oldByAddr := map[string]config.Account{}
	for _, a := range old.Accounts {
		oldByAddr[a.Address] = a
	}
	newByAddr := map[string]bool{}
	var stop []string
	var start []config.Account
	var added, removed, restarted, unchanged []string
	for _, a := range cfg.Accounts {
		newByAddr[a.Address] = true
		prev, existed := oldByAddr[a.Address]
		switch {
		case !existed:
			added = append(added, a.Address)
			start = append(start, a)
		case !sameAccount(prev, a) || d.mustRestart(a):
			restarted = append(restarted, a.Address)
			stop = append(stop, a.Address)
			start = append(start, a)
		default:
			unchanged = append(unchanged, a.Address)
		}
	}
	for _, a := range old.Accounts {
		if !newByAddr[a.Address] {
			removed = append(removed, a.Address)
			stop = append(stop, a.Address)
		}
	}

	// Stop first (each finishes its batch in flight), so a restarted
	// account never runs twice over the same state.
	d.mu.Lock()
	var runners []*accountRunner
	for _, addr := range stop {
		if r := d.accounts[addr]; r != nil {
			runners = append(runners, r)
			delete(d.accounts, addr)
		}
	}
	d.opts.Config = running
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(r.stop)
	}
	wg.Wait()
	for _, r := range runners {
		d.keepTraffic(r)
	}
	// metrics_listen applies now: the listener moves (or closes, or
	// opens); saving the config again retries one that failed.
	if old.Daemon.MetricsListen != cfg.Daemon.MetricsListen {
		d.log.Info("metrics_listen changed", "from", old.Daemon.MetricsListen, "to", cfg.Daemon.MetricsListen)
	}
	d.metrics.set(cfg.Daemon.MetricsListen)
	for _, a := range start {
		d.startAccount(ctx, a, d.claim(a))
	}

	r := d.reload
	r.mu.Lock()
	wasRefused := r.errText != ""
	r.loaded, r.errText, r.problems, r.restart = time.Now(), "", nil, restart
	r.mu.Unlock()

	summary := fmt.Sprintf("%d account(s): %s", len(cfg.Accounts), describe(added, removed, restarted, unchanged))
	d.log.Info("config reloaded", "why", why, "path", cfg.Path, "added", added, "removed", removed, "restarted", restarted, "unchanged", len(unchanged))
	if wasRefused {
		d.log.Info("the config error is fixed", "path", cfg.Path)
	}
	d.events.publish(engine.Event{Time: time.Now(), Kind: apitype.EventConfigReloaded, Message: summary})
}

// refuse records an invalid config file: the running config stays.
func (d *Daemon) refuse(err error, problems []config.Problem) {
	var cerr *config.Error
	text := err.Error()
	if errors.As(err, &cerr) {
		problems = cerr.Problems
	}
	r := d.reload
	r.mu.Lock()
	same := r.errText == text
	r.errText, r.problems = text, problems
	r.mu.Unlock()
	if same {
		return // the same mistake saved again: said already
	}
	d.log.Error("config not reloaded: the file has errors; the running config stays until they are fixed", "err", text)
	d.events.publish(engine.Event{Time: time.Now(), Kind: apitype.EventConfigError, Message: text})
}

// sameAccount reports whether a and b configure an account the same way.
// Where the block stands in the file does not matter.
func sameAccount(a, b config.Account) bool {
	a.Line, b.Line = 0, 0
	return a == b
}

// mustRestart reports whether an account whose config is unchanged must
// restart anyway: it could not start before (its key or password file may
// be there now), or its key file changed (a key was added to it).
func (d *Daemon) mustRestart(a config.Account) bool {
	d.mu.Lock()
	r := d.accounts[a.Address]
	d.mu.Unlock()
	if r == nil || r.eng == nil {
		return true
	}
	return r.keySum != fileSum(a.KeyFile)
}

// fileSum is the SHA-256 of a file's content (zero if it cannot be read).
func fileSum(path string) [32]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(data)
}

func describe(added, removed, restarted, unchanged []string) string {
	var parts []string
	for _, g := range []struct {
		what  string
		addrs []string
	}{{"added", added}, {"removed", removed}, {"restarted", restarted}, {"unchanged", unchanged}} {
		if len(g.addrs) > 0 {
			parts = append(parts, g.what+" "+strings.Join(g.addrs, ", "))
		}
	}
	if len(parts) == 0 {
		return "no accounts"
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
