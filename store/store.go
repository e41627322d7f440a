package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"sync"
)

// FileName is the name of the bbolt file inside the state directory.
const FileName = "chatsync.db"

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero.
const DefaultTimeout = time.Second

var (
	// ErrLocked is returned (wrapped) by Open when another process holds the
	// state file, normally another chatsync daemon with the same state_dir.
	ErrLocked = errors.New("state file is locked")

	// ErrSchemaTooNew is returned (wrapped) by Open when the state file was
	// written by a newer chatsync whose schema this code does not know.
	ErrSchemaTooNew = errors.New("state file schema is newer than this chatsync")

	// ErrBatchInFlight is returned by NextBatch while an earlier batch is still
	// in flight: it must be reconciled (CompleteBatch) or failed (FailBatch)
	// before anything else is sent.
	ErrBatchInFlight = errors.New("a batch is already in flight")

	// ErrNoBatchInFlight is returned by CompleteBatch and FailBatch when no
	// batch is in flight.
	ErrNoBatchInFlight = errors.New("no batch in flight")

	// ErrUnknownToken is returned (wrapped) by CompleteBatch for a result
	// whose token is not part of the in-flight batch. Nothing is committed.
	ErrUnknownToken = errors.New("token is not part of the in-flight batch")

	// ErrDuplicateMsgID is returned (wrapped) by PutFile when the msgid is
	// already indexed for another path.
	ErrDuplicateMsgID = errors.New("msgid already used by another file")
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for the exclusive file lock before it
	// gives up with ErrLocked. Zero means DefaultTimeout; it never waits
	// forever.
	Timeout time.Duration

	// Now returns the current time, for Enqueued and batch Started times.
	// Nil means time.Now. Tests set it to a fixed clock.
	Now func() time.Time

	// RequirePrivate makes Open refuse (ErrNotPrivate) a state dir that
	// other users could write, or that belongs to another user (on unix;
	// Windows ACLs are not checked). The daemon sets it; tests that put
	// the state on a scratch mount need not.
	RequirePrivate bool
}

// DB is the daemon's state: one bbolt file per state directory. It is safe
// for concurrent use. Every method runs in its own transaction; none keeps a
// transaction open after it returns.
type DB struct {
	// mu is held shared by every transaction and exclusively while the
	// file is compacted and bolt replaced (Compact).
	mu       sync.RWMutex
	bolt     *bolt.DB
	path     string
	deviceID string
	now      func() time.Time
}

func (db *DB) view(fn func(*bolt.Tx) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.bolt.View(fn)
}

func (db *DB) update(fn func(*bolt.Tx) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.bolt.Update(fn)
}

// Open opens (creating if needed) the state in dir: the directory is created
// with mode 0700 and the file chatsync.db with mode 0600. Migrations run
// before Open returns. If another process holds the file, Open fails after
// opts.Timeout with an error that wraps ErrLocked.
//
// Open never starts over on a file that exists: a damaged one (truncated,
// zeroed pages, garbage, or empty) is an error that wraps ErrDamaged (a
// *DamagedError, which says what to do), found by reading the whole file
// once (state.go). A state file that is a symbolic link or not a regular
// file is refused with ErrNotPrivate, and so, with opts.RequirePrivate, is
// a state dir that other users could write.
func Open(dir string, opts Options) (*DB, error) {
	if dir == "" {
		return nil, errors.New("open state: empty state dir")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if opts.RequirePrivate {
		if err := checkPrivateDir(dir); err != nil {
			return nil, err
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	path := filepath.Join(dir, FileName)
	exists, err := checkStateFile(path)
	if err != nil {
		return nil, err
	}
	bdb, err := openBolt(path, exists, timeout)
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("another chatsync is already running with state dir %s: %w", dir, ErrLocked)
	}
	if err != nil {
		return nil, err
	}
	// bolt.Open keeps the mode of an existing file; the state names
	// conversations and devices, so it is owner-only.
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("open state: %w", err)
		}
	}
	db := &DB{bolt: bdb, path: path, now: opts.Now}
	if db.now == nil {
		db.now = time.Now
	}
	if err := db.prepare(); err != nil {
		bdb.Close()
		return nil, err
	}
	return db, nil
}

// prepare runs the migrations and reads (or makes) the device id. A file
// whose layout is not what its schema version says (a bucket of the v1
// layout lost) is damaged: bbolt would panic on it.
func (db *DB) prepare() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedError{Path: db.path, Reason: panicReason(r)}
		}
	}()
	if err := db.update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations); err != nil {
			return err
		}
		if reason, err := checkLayout(tx); err != nil || reason != "" {
			if err != nil {
				return err
			}
			return &DamagedError{Path: db.path, Reason: reason}
		}
		id, err := ensureDeviceID(tx)
		db.deviceID = id
		return err
	}); err != nil {
		var de *DamagedError
		if errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("open state %s: %w", db.path, err)
	}
	return nil
}

// checkLayout returns what is missing of the layout drawn in doc.go, or "".
// The methods take the buckets for granted: a bucket missing in an
// account (one added to accountBuckets later) is made, empty.
func checkLayout(tx *bolt.Tx) (string, error) {
	v1 := tx.Bucket(bucketV1)
	if v1 == nil || v1.Bucket(bucketMeta) == nil || v1.Bucket(bucketAccounts) == nil {
		return "its schema version is set, but buckets of that schema are missing", nil
	}
	accts := v1.Bucket(bucketAccounts)
	var names [][]byte
	if err := accts.ForEachBucket(func(k []byte) error {
		names = append(names, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return "", err
	}
	for _, k := range names {
		ab := accts.Bucket(k)
		for _, name := range accountBuckets {
			if ab.Bucket(name) == nil {
				if _, err := ab.CreateBucket(name); err != nil {
					return "", fmt.Errorf("account %s: %w", k, err)
				}
			}
		}
	}
	return "", nil
}

// Close closes the file and releases the lock.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.bolt.Close()
}

// Path returns the path of the bbolt file.
func (db *DB) Path() string { return db.path }

// DeviceID returns this installation's device id, "urn:uuid:" and a random
// version 4 UUID, made at the first Open and kept since.
func (db *DB) DeviceID() string { return db.deviceID }

func ensureDeviceID(tx *bolt.Tx) (string, error) {
	meta := tx.Bucket(bucketV1).Bucket(bucketMeta)
	if v := meta.Get(keyDeviceID); len(v) > 0 {
		return string(v), nil
	}
	id, err := newUUID()
	if err != nil {
		return "", err
	}
	id = "urn:uuid:" + id
	return id, meta.Put(keyDeviceID, []byte(id))
}

// newUUID returns a random (version 4) UUID in its canonical text form.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// newToken returns an opaque random outbox token (128 bits, hex).
func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Bucket and key names; the tree is drawn in doc.go.
var (
	bucketV1       = []byte("v1")
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")

	keySchemaVersion = []byte("schema_version")
	keyDeviceID      = []byte("device_id")

	bucketState     = []byte("state")
	bucketOutbox    = []byte("outbox")
	bucketPending   = []byte("pending")
	bucketSent      = []byte("sent")
	bucketVersions  = []byte("versions")
	bucketFiles     = []byte("files")
	bucketFileMsg   = []byte("filemsg")
	bucketUnapplied = []byte("unapplied")
	bucketPeers     = []byte("peers")

	keyCursor    = []byte("cursor")
	keyHighwater = []byte("highwater")
	keyAnchor    = []byte("anchor")
	keyCandidate = []byte("candidate")
	keyOutboxLen = []byte("outbox_len")
	keyInFlight  = []byte("inflight")

	accountBuckets = [][]byte{bucketState, bucketOutbox, bucketPending, bucketSent, bucketVersions, bucketFiles, bucketFileMsg, bucketUnapplied, bucketPeers}
)

// account is the set of an account's buckets in one transaction. In a read
// transaction for an account that was never written, every field is nil.
type account struct {
	state, outbox, pending, sent, versions, files, filemsg, unapplied, peers *bolt.Bucket
}

func (a *account) exists() bool { return a.state != nil }

// readAccount returns the buckets of acct, or an empty account.
func readAccount(tx *bolt.Tx, acct string) *account {
	ab := tx.Bucket(bucketV1).Bucket(bucketAccounts).Bucket([]byte(acct))
	if ab == nil {
		return &account{}
	}
	return bindAccount(ab)
}

// writeAccount returns the buckets of acct, creating them if needed.
func writeAccount(tx *bolt.Tx, acct string) (*account, error) {
	if acct == "" {
		return nil, errors.New("empty account address")
	}
	ab, err := tx.Bucket(bucketV1).Bucket(bucketAccounts).CreateBucketIfNotExists([]byte(acct))
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", acct, err)
	}
	for _, name := range accountBuckets {
		if _, err := ab.CreateBucketIfNotExists(name); err != nil {
			return nil, fmt.Errorf("account %s: %w", acct, err)
		}
	}
	return bindAccount(ab), nil
}

func bindAccount(ab *bolt.Bucket) *account {
	return &account{
		state:     ab.Bucket(bucketState),
		outbox:    ab.Bucket(bucketOutbox),
		pending:   ab.Bucket(bucketPending),
		sent:      ab.Bucket(bucketSent),
		versions:  ab.Bucket(bucketVersions),
		files:     ab.Bucket(bucketFiles),
		filemsg:   ab.Bucket(bucketFileMsg),
		unapplied: ab.Bucket(bucketUnapplied),
		peers:     ab.Bucket(bucketPeers),
	}
}

// Accounts returns the addresses of all accounts that have state.
func (db *DB) Accounts() ([]string, error) {
	var out []string
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketAccounts).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// Integer values are 8 bytes big-endian, so keys sort numerically.

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func getU64(b *bolt.Bucket, key []byte) uint64 {
	if b == nil {
		return 0
	}
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, key []byte, v uint64) error { return b.Put(key, u64(v)) }

func getI64(b *bolt.Bucket, key []byte) int64 { return int64(getU64(b, key)) }

func putI64(b *bolt.Bucket, key []byte, v int64) error { return putU64(b, key, uint64(v)) }

// raiseI64 stores v under key if it is higher than the stored value.
func raiseI64(b *bolt.Bucket, key []byte, v int64) error {
	if v > getI64(b, key) {
		return putI64(b, key, v)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// getJSON decodes the value under key into v and reports whether it exists.
// json.Unmarshal copies, so v never aliases the transaction's memory.
func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	if b == nil {
		return false, nil
	}
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}
