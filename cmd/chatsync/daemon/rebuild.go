package daemon

// `chatsync state rebuild`: a new state for the stores of the config,
// built the way a new device builds it. The new state knows every
// account's store (so the store guard lets them run) and has a new device
// id; it holds no cursor, no versions and no outbox. At its first start each
// account reads the whole journal before it pushes anything: a message the
// store already holds with the same content is recorded, not written and
// not pushed again; one the store lacks is written; and only what the
// journal lacks is pushed. The rows the old device id wrote are read like
// another device's, which is what lets the journal's copy of every message
// be recognised.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/store"
)

// Rebuilt says what RebuildState did.
type Rebuilt struct {
	StateDir string   `json:"state_dir"`
	KeptAs   string   `json:"kept_as,omitempty"` // where the old state file went; empty if there was none
	Damaged  string   `json:"damaged,omitempty"` // what was wrong with the old state file, if it was damaged
	DeviceID string   `json:"device_id"`         // the new device id
	Accounts []string `json:"accounts"`
}

// RebuildState replaces the state file of cfg with a new one, keeping the
// old one beside it (chatsync.db.old-TIME). It refuses while a daemon runs
// on the state or on one of the stores, and, unless force is set, when the
// old state opens and still holds changes not sent: those would be lost (a
// deleted message would come back from the journal).
func RebuildState(cfg *config.Config, force bool, now time.Time) (*Rebuilt, error) {
	dir := cfg.Daemon.StateDir
	var locks []*storeLock
	defer func() {
		for _, l := range locks {
			l.release()
		}
	}()
	for _, a := range cfg.Accounts {
		l, err := lockStore(a.Store, a.IsDatabase(), a.Address, dir, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, err
		}
		locks = append(locks, l)
	}

	res := &Rebuilt{StateDir: dir}
	path := filepath.Join(dir, store.FileName)
	if _, err := os.Lstat(path); err == nil {
		damaged, err := checkOldState(cfg, force)
		if err != nil {
			return nil, err
		}
		res.Damaged = damaged
		res.KeptAs = path + ".old-" + now.UTC().Format("20060102T150405Z")
		if err := os.Rename(path, res.KeptAs); err != nil {
			return nil, fmt.Errorf("move the old state file aside: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}

	db, err := store.Open(dir, store.Options{RequirePrivate: true})
	if err != nil {
		return nil, fmt.Errorf("create the new state in %s: %w", dir, err)
	}
	defer db.Close()
	for _, a := range cfg.Accounts {
		if err := db.AddAccount(a.Address); err != nil {
			return nil, fmt.Errorf("record %s in the new state: %w", a.Address, err)
		}
		res.Accounts = append(res.Accounts, a.Address)
	}
	res.DeviceID = db.DeviceID()
	return res, db.Close()
}

// checkOldState opens the state file that is there, to refuse a rebuild
// under a running daemon and one that would lose changes not sent yet. It
// returns what is wrong with the file if it is damaged (which is why one
// rebuilds).
func checkOldState(cfg *config.Config, force bool) (damaged string, err error) {
	dir := cfg.Daemon.StateDir
	old, err := store.Open(dir, store.Options{Timeout: 200 * time.Millisecond})
	var de *store.DamagedError
	switch {
	case errors.Is(err, store.ErrLocked):
		return "", fmt.Errorf("%w with state dir %s: stop it first (chatsync service stop, or stop `chatsync run`), then rebuild", ErrAlreadyRunning, dir)
	case errors.As(err, &de):
		return de.Reason, nil
	case err != nil:
		return "", fmt.Errorf("open the old state to check it: %w", err)
	}
	defer old.Close()
	if force {
		return "", nil
	}
	unsent := 0
	for _, a := range cfg.Accounts {
		st, err := old.Stats(a.Address)
		if err != nil {
			return "", fmt.Errorf("read the old state of %s: %w", a.Address, err)
		}
		unsent += st.OutboxDepth
	}
	if unsent > 0 {
		return "", fmt.Errorf("the state in %s is not damaged and holds %d change(s) not sent yet, which a rebuild would lose (a message deleted here would come back from the journal): start chatsync and let it send them (chatsync sync --wait), or rebuild anyway with --force", dir, unsent)
	}
	return "", nil
}
