package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
)

const (
	testAccount  = "alice@example.com"
	testPassword = "secret"
)

// server is a real chatsync-server handler behind a real HTTP listener. Its
// backend can be replaced (a server that lost its journal) and a middleware
// can be put in front of it (faults).
type server struct {
	t       *testing.T
	mod     func(*accountserver.Options)
	http    *httptest.Server
	backend atomic.Pointer[accountserver.Server]
	mu      sync.Mutex
	wrap    func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
	now     atomic.Pointer[func() time.Time]
	// intercept runs after the server authenticated a request (see
	// accountserver.Options.Intercept).
	intercept atomic.Pointer[func(w http.ResponseWriter, r *http.Request, account, action string) bool]
	// keys are the keyrings of the devices made on this server: rows
	// opens rows with them to leave out the devices' reports.
	keys []*seal.Keyring
}

func newServer(t *testing.T) *server { return newServerWith(t, nil) }

// newServerWith is newServer with options of the real server's behaviour
// (page limits, caps, refused rows) set by mod.
func newServerWith(t *testing.T, mod func(*accountserver.Options)) *server {
	t.Helper()
	s := &server{t: t, mod: mod}
	s.backend.Store(s.newBackend(t.TempDir()))
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		wrap := s.wrap
		s.mu.Unlock()
		next := s.backend.Load()
		if wrap != nil && wrap(w, r, next) {
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.backend.Load().EndWaits() // Close waits for the requests it holds
		s.http.Close()
		s.backend.Load().Close()
	})
	return s
}

func (s *server) newBackend(dir string) *accountserver.Server {
	opts := accountserver.Options{
		DataDir:  dir,
		Accounts: []accountserver.Account{{Address: testAccount, Password: testPassword}},
		Intercept: func(w http.ResponseWriter, r *http.Request, account, action string) bool {
			if f := s.intercept.Load(); f != nil {
				return (*f)(w, r, account, action)
			}
			return false
		},
		Now: func() time.Time {
			if f := s.now.Load(); f != nil {
				return (*f)()
			}
			return time.Now()
		},
	}
	if s.mod != nil {
		s.mod(&opts)
	}
	srv, err := accountserver.New(opts)
	if err != nil {
		s.t.Fatal(err)
	}
	return srv
}

// reset replaces the server's journal with an empty one, as a restore of
// an old backup or a reinstall would.
func (s *server) reset() {
	old := s.backend.Swap(s.newBackend(s.t.TempDir()))
	old.Close()
}

func (s *server) setWrap(f func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	s.mu.Lock()
	s.wrap = f
	s.mu.Unlock()
}

func (s *server) setIntercept(f func(w http.ResponseWriter, r *http.Request, account, action string) bool) {
	s.intercept.Store(&f)
}

func (s *server) setClock(f func() time.Time) { s.now.Store(&f) }

// rows returns the account's journal rows but the devices' reports: the
// messages' rows, which most tests count.
func (s *server) rows() []accountserver.Entry {
	s.t.Helper()
	var out []accountserver.Entry
	for _, r := range s.allRows() {
		if !s.isReport(r) {
			out = append(out, r)
		}
	}
	return out
}

// allRows returns every row of the account's journal.
func (s *server) allRows() []accountserver.Entry {
	s.t.Helper()
	rows, err := s.backend.Load().Entries(testAccount)
	if err != nil {
		s.t.Fatal(err)
	}
	return rows
}

// reports returns the devices' report entries in the journal, opened.
func (s *server) reports() []seal.Entry {
	var out []seal.Entry
	for _, r := range s.allRows() {
		if en, ok := s.open(r); ok && en.Op == seal.OpReport {
			out = append(out, en)
		}
	}
	return out
}

func (s *server) isReport(r accountserver.Entry) bool {
	en, ok := s.open(r)
	return ok && en.Op == seal.OpReport
}

func (s *server) open(r accountserver.Entry) (seal.Entry, bool) {
	s.mu.Lock()
	keys := s.keys
	s.mu.Unlock()
	for _, kr := range keys {
		if en, err := kr.Open(r.Data, testAccount); err == nil {
			return en, true
		}
	}
	return seal.Entry{}, false
}

func (s *server) client(t *testing.T) *account.Client {
	c, err := account.New(account.Config{
		Address: testAccount, Password: testPassword,
		SettingsURL: s.http.URL + accountserver.Path, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newKeyring(t *testing.T) *seal.Keyring {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// device is one installation: a message store, a state dir and an engine.
type device struct {
	t     *testing.T
	name  string
	store string
	state string
	srv   *server
	kr    *seal.Keyring
	tweak func(*Options)
	// wrapStore, if set, wraps the engine's store: a test sees, or
	// changes, every call the engine makes to it.
	wrapStore func(messageStore) messageStore
	db        *store.DB
	eng       *Engine
	// mayClone is set where another device shares this one's id, so
	// taking a new one is right (elsewhere it fails the test).
	mayClone bool
	// noReports: the device sends no reports, for tests of journal ids
	// and of counts of rows that cannot be opened.
	noReports bool
	cancel    context.CancelFunc
	done      chan error
}

func newDevice(t *testing.T, name string, srv *server, kr *seal.Keyring) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{t: t, name: name, store: filepath.Join(dir, "store"), state: filepath.Join(dir, "state"), srv: srv, kr: kr}
	srv.mu.Lock()
	if !slices.Contains(srv.keys, kr) {
		srv.keys = append(srv.keys, kr)
	}
	srv.mu.Unlock()
	if err := os.MkdirAll(d.store, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	return d
}

// twoDevices is the usual setup: a server and devices A and B of one
// account sharing one key, not started yet.
func twoDevices(t *testing.T) (*server, *seal.Keyring, *device, *device) {
	t.Helper()
	srv := newServer(t)
	kr := newKeyring(t)
	return srv, kr, newDevice(t, "A", srv, kr), newDevice(t, "B", srv, kr)
}

func (d *device) options() Options {
	o := Options{
		Account: testAccount, Store: d.store, Keyring: d.kr, Remote: d.srv.client(d.t), DB: d.db,
		PollInterval: 200 * time.Millisecond, ActivePollInterval: 50 * time.Millisecond,
		ReplicateDeletes: true, Debounce: 20 * time.Millisecond, SettleTime: 200 * time.Millisecond,
		ReconcileGrace: 500 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AuthBackoff: 200 * time.Millisecond,
		EntryBackoff: 200 * time.Millisecond, MaxEntryBackoff: 200 * time.Millisecond, ProbeInterval: 200 * time.Millisecond,
	}
	if os.Getenv("CHATSYNC_TEST_LOG") != "" { // to debug a test: every engine's log on stderr
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("device", d.name)
	}
	o.NoReports = d.noReports
	if d.tweak != nil {
		d.tweak(&o)
	}
	return o
}

func (d *device) start() {
	d.t.Helper()
	if d.eng != nil {
		d.t.Fatalf("%s already running", d.name)
	}
	db, err := store.Open(d.state, store.Options{})
	if err != nil {
		d.t.Fatal(err)
	}
	d.db = db
	eng, err := New(d.options())
	if err != nil {
		d.t.Fatal(err)
	}
	if d.wrapStore != nil {
		eng.store = d.wrapStore(eng.store)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.eng, d.cancel, d.done = eng, cancel, make(chan error, 1)
	go func() { d.done <- eng.Run(ctx) }()
}

// stop stops the engine and waits for it, as a shutdown would.
func (d *device) stop() {
	if d.eng == nil {
		return
	}
	if c := d.eng.Status().Clone; c != "" && !d.mayClone {
		d.t.Errorf("%s took a new device id where no other device used its id: %s", d.name, c)
	}
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Errorf("%s: Run returned %v", d.name, err)
		}
	case <-time.After(30 * time.Second):
		d.t.Errorf("%s: Run did not return after cancel", d.name)
	}
	d.db.Close()
	d.eng, d.db = nil, nil
}

func (d *device) write(rel string, obj map[string]any) {
	d.t.Helper()
	data, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		d.t.Fatal(err)
	}
	d.writeRaw(rel, string(data))
}

func (d *device) writeRaw(rel, data string) {
	d.t.Helper()
	p := filepath.Join(d.store, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		d.t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		d.t.Fatal(err)
	}
}

// messages returns msgid → canonical JSON of every message file in the store.
func (d *device) messages() map[string]string {
	d.t.Helper()
	out := map[string]string{}
	for _, f := range d.files() {
		data, err := os.ReadFile(filepath.Join(d.store, filepath.FromSlash(f)))
		if err != nil {
			continue
		}
		m, err := msgdir.Parse(data, 1<<24)
		if err != nil {
			continue
		}
		out[m.MsgID] = string(m.Canonical)
	}
	return out
}

// files lists the message files of the store (relative, sorted).
func (d *device) files() []string {
	var out []string
	filepath.Walk(d.store, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !msgdir.Ignored(fi.Name()) {
			r, _ := filepath.Rel(d.store, p)
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func (d *device) status() Status { return d.eng.Status() }

// idle reports whether the device has nothing left to send, nothing it
// is waiting for, and has polled since since.
func (d *device) idle(since time.Time) bool {
	s := d.status()
	return s.State == StateIdle && s.OutboxDepth == 0 && s.LastPoll.After(since)
}

// waitFor polls cond until it holds or the deadline passes; state, if
// given, describes what there was instead.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range state {
				what += ": " + f()
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func msg(id, remote, body string) map[string]any {
	return map[string]any{
		"msgid": id, "remote_uri": remote, "local_uri": testAccount, "body": body,
		"direction": "outgoing", "media_type": "chat", "content_type": "text/plain",
		"time": "2026-11-25 10:00:00", "status": "sent",
	}
}

func canonical(t *testing.T, obj map[string]any) string {
	t.Helper()
	data, _ := json.Marshal(obj)
	m, err := msgdir.Parse(data, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return string(m.Canonical)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func describe(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 10 {
		return fmt.Sprintf("%d messages: %s ...", len(keys), strings.Join(keys[:10], " "))
	}
	return fmt.Sprintf("%d messages: %s", len(keys), strings.Join(keys, " "))
}
