package daemon

// An account's store and the state must belong together. The engine keeps
// a marker (.chatsync-store) in every store it has indexed, and the daemon
// records each account in the state (store.AddAccount) before its engine
// first touches the store. So a store that holds the marker while the state
// has no record of its account was synced under another state: the state
// file was lost, emptied or moved aside, daemon.state_dir points elsewhere
// now, or the account's address changed. Starting would silently make this
// a new device (a new device id, every file taken for new), so the account
// is refused with what to do; the others run. Removing the marker is the
// user's "yes, start this store over".

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/store"
)

// markerName is the file the engine keeps in every store it has indexed
// (sync/engine: markerName).
const markerName = ".chatsync-store"

// claim is the outcome of an account's claim on its store: the lock it
// holds, or why it may not run.
type claim struct {
	lock *storeLock
	err  error
}

func (d *Daemon) claim(a config.Account) claim {
	lock, err := d.claimStore(a)
	return claim{lock: lock, err: err}
}

// claimStore takes the account's store for this daemon: its lock, then the
// check that this state is the one the store was synced with.
func (d *Daemon) claimStore(a config.Account) (*storeLock, error) {
	known, err := d.db.KnowsAccount(a.Address)
	if err != nil {
		return nil, fmt.Errorf("read the state: %w", err)
	}
	if !known && !a.IsDatabase() {
		// A first run: the store directory is made here (as the engine
		// would), so that it is locked from the start.
		if err := os.MkdirAll(a.Store, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create the message store %s: %w", a.Store, err)
		}
	}
	lock, err := lockStore(a.Store, a.IsDatabase(), a.Address, d.opts.Config.Daemon.StateDir, d.log)
	if err != nil {
		return nil, err
	}
	if known {
		return lock, nil
	}
	marker := filepath.Join(a.Store, markerName)
	if _, err := os.Lstat(marker); err == nil {
		lock.release()
		return nil, fmt.Errorf("message store %s was synced by chatsync under another state: it holds %s, but the state in %s has no record of %s (a state file lost or moved aside, another daemon.state_dir, or another account address), and starting would make this a new device. Put the old state back; or, to start this store over as a new device, run `rm %s` and start chatsync again: the device re-reads the journal and pushes again only what the journal lacks",
			a.Store, markerName, d.opts.Config.Daemon.StateDir, a.Address, store.ShellQuote(marker))
	}
	if err := d.db.AddAccount(a.Address); err != nil {
		lock.release()
		return nil, fmt.Errorf("record the account in the state: %w", err)
	}
	return lock, nil
}

// stateError is an error of the state with the daemon's wording.
type stateError struct {
	msg string
	err error
}

func (e *stateError) Error() string { return e.msg }
func (e *stateError) Unwrap() error { return e.err }

// damagedState says what to do about a damaged state file: rebuild the
// state, which keeps the damaged file beside the new one (rebuild.go).
func damagedState(de *store.DamagedError, cfg *config.Config) error {
	return &stateError{err: de, msg: fmt.Sprintf("state file %s is damaged (%s); chatsync does not run on it. To start again, run `%s`: it keeps the damaged file beside a new state, and the device re-reads the journal and pushes again only what the journal lacks",
		de.Path, de.Reason, RebuildCommand(cfg))}
}

// RebuildCommand is the command line that rebuilds the state of cfg.
func RebuildCommand(cfg *config.Config) string {
	cmd := "chatsync state rebuild"
	if cfg.Path != "" && cfg.Path != config.DefaultPath() {
		cmd += " --config " + store.ShellQuote(cfg.Path)
	}
	return cmd
}
