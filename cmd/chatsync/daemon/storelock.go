package daemon

// One daemon per message store. The state file is locked by bbolt, but two
// daemons with different state dirs on one store would each replicate it:
// every local write would reach the server twice, and each would take the
// other's writes for edits. So an account holds a lock file in its store
// while its engine runs: .chatsync-lock, locked with flock (unix) or
// LockFileEx (Windows), which the system releases when the process dies,
// however it dies. The file says who holds it, so that the refusal can name
// the other daemon. It is a hidden name, which the engine neither indexes
// nor replicates (msgdir.Ignored), and it stays when the lock is released:
// removing it would race with a daemon that is taking it.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chatsync/chatsync/store/msgdir"
)

// lockName is the lock file in each message store.
const lockName = ".chatsync-lock"

var (
	// errLockHeld is what tryLock returns when another open file holds
	// the lock.
	errLockHeld = errors.New("the lock is held")
	// errNoLocks is what tryLock returns when the file system cannot lock
	// files (some network file systems).
	errNoLocks = errors.New("the file system does not support locks")
)

// storeLock is an account's hold on its message store.
type storeLock struct {
	f *os.File
}

// release lets another daemon take the store. It is safe on nil.
func (l *storeLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// lockInfo is what the lock file says about the daemon that holds it.
type lockInfo struct {
	PID      int
	Host     string
	StateDir string
	Account  string
	Since    string
}

func (i lockInfo) String() string {
	var parts []string
	if i.PID > 0 {
		p := "pid " + strconv.Itoa(i.PID)
		if i.Host != "" {
			p += " on " + i.Host
		}
		parts = append(parts, p)
	}
	if i.StateDir != "" {
		parts = append(parts, "state dir "+i.StateDir)
	}
	if i.Account != "" {
		parts = append(parts, "account "+i.Account)
	}
	if i.Since != "" {
		parts = append(parts, "since "+i.Since)
	}
	if len(parts) == 0 {
		return "it did not say which"
	}
	return strings.Join(parts, ", ")
}

func (i lockInfo) encode() []byte {
	return fmt.Appendf(nil, "chatsync holds this file while it syncs this message store; leave it here\npid: %d\nhost: %s\nstate_dir: %s\naccount: %s\nsince: %s\n",
		i.PID, i.Host, i.StateDir, i.Account, i.Since)
}

func decodeLockInfo(r io.Reader) lockInfo {
	var i lockInfo
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			i.PID, _ = strconv.Atoi(v)
		case "host":
			i.Host = v
		case "state_dir":
			i.StateDir = v
		case "account":
			i.Account = v
		case "since":
			i.Since = v
		}
	}
	return i
}

// lockStore takes the lock of the message store for account, for the
// daemon of stateDir, or says which daemon holds it. The lock of a
// directory is a file in it; a directory that is not there yet is not
// locked (nil, nil): the engine pauses the account until it is, and says
// so. The lock of a chat client's database (database set), which holds
// every account, is a file beside it, one per account, taken also before
// the client has made the database. A file system without locks is logged
// to log and not locked.
func lockStore(store string, database bool, account, stateDir string, log *slog.Logger) (*storeLock, error) {
	dir, name := store, lockName
	if database {
		if real, err := filepath.EvalSymlinks(store); err == nil {
			store = real // one lock, whatever path names the file
		}
		dir, name = filepath.Dir(store), "."+filepath.Base(store)+lockName+"-"+msgdir.SafeName(strings.ToLower(account))
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("message store %s: %w", store, err)
	}
	f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	root.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file of the message store: %w", err)
	}
	switch err := tryLock(f); {
	case errors.Is(err, errLockHeld):
		other := decodeLockInfo(io.NewSectionReader(f, 0, 4096))
		f.Close()
		return nil, fmt.Errorf("message store %s is in use by another chatsync (%s): two daemons on one store would send every change twice. Stop that one, or give this account a store of its own",
			store, other)
	case errors.Is(err, errNoLocks):
		f.Close()
		log.Warn("the message store's file system cannot lock files: a second chatsync on this store would not be noticed", "account", account, "store", store, "err", err)
		return nil, nil
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("cannot lock the message store %s: %w", store, err)
	}
	host, _ := os.Hostname()
	info := lockInfo{PID: os.Getpid(), Host: host, StateDir: stateDir, Account: account, Since: time.Now().Format(time.RFC3339)}
	if err := f.Truncate(0); err == nil {
		f.WriteAt(info.encode(), 0) // only a description: the lock is what counts
	}
	return &storeLock{f: f}, nil
}
