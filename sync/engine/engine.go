// Package engine replicates one account's message store through its journal.
//
// An Engine owns one account: its message store directory, its key, its
// cursor and its outbox (kept in the shared store.DB). Run drives one loop
// that does, in turn, everything that touches the account's state:
//
//   - local work: the watcher's reports (and rescans) are read, each changed
//     file is validated, indexed and, when its content is not the version this
//     device already holds, sealed once and written to the durable outbox;
//   - poll: other devices' entries after the cursor are read a page at a
//     time, opened and applied in journal order, the files written
//     atomically first and the versions, file index and cursor committed
//     after;
//   - push: the oldest outbox entries go out in one bounded batch, recorded
//     as in flight before the POST; the journal ids and the removal from the
//     outbox commit together.
//
// Push and poll fail and back off independently: a journal page the server
// cannot send does not keep this device's messages from leaving, and a
// batch the server refuses does not stop receiving. An entry the server
// refuses by itself is held back with its own backoff while the entries
// behind it go out.
//
// One goroutine does all of it on purpose. The journal decides between
// concurrent versions by id ("a later journal id wins"), and a local version
// that is queued but not yet sent will get a higher id than anything already
// in the journal, so the poller may leave such a message alone. That is only
// true while the batch carrying it is not in flight; doing push and poll in
// one loop means the poller never runs while a batch is in flight, and a batch
// left in flight by a crash or a lost reply is reconciled first, by reading
// this device's own rows back, before anything else is sent or applied.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/watch"
)

// Remote is the part of the SIP Account API the engine needs. It is
// implemented by *account.Client.
type Remote interface {
	GetJournalEntries(ctx context.Context, q account.JournalQuery) (*account.JournalPage, error)
	PutJournalEntries(ctx context.Context, uuid string, entries []account.PutEntry) ([]account.PutResult, error)
}

var _ Remote = (*account.Client)(nil)

// DefaultMaxMessageBytes is the largest message file replicated unless the
// config says otherwise: 512 KiB. Sealed, such a message is a row of at most
// about 700 kB even when it does not compress, which the real server
// stores (MariaDB's old max_allowed_packet was 1 MiB) and of which a page
// that PHP can build with its default 128M memory_limit (about 20 MB)
// holds 28. Chat text is a few hundred bytes a row.
const DefaultMaxMessageBytes = 512 << 10

// MaxIncomingBytes bounds a message that arrives from another device; the
// sender's max_message_bytes may be larger than this device's, up to the
// most the config allows, so this is generous.
const MaxIncomingBytes = 16 << 20

// DefaultBatchCount and DefaultBatchBytes bound one put_journal_entries
// call: 500 entries and 4 MiB, far below PHP's post_max_size (8M by
// default) and what one request of the real server inserts in a second.
const (
	DefaultBatchCount = 500
	DefaultBatchBytes = 4 << 20
)

// Options configure an Engine. Zero values pick the defaults.
type Options struct {
	Account string // the SIP address, as in the config
	// Store is the message store: a directory, or with StoreFormat a
	// chat client's history database file.
	Store string
	// StoreFormat is FormatJSON (the default), FormatBlinkQt or
	// FormatBlinkCocoa.
	StoreFormat string
	Keyring     *seal.Keyring
	Remote      Remote
	DB          *store.DB

	// PollInterval is the idle poll period (default 30 s).
	PollInterval time.Duration
	// ActivePollInterval is the poll period while messages flow (default 1 s),
	// kept for ActiveWindow (default 2 min) after the last message sent or
	// received.
	ActivePollInterval time.Duration
	ActiveWindow       time.Duration
	// ReplicateDeletes: a deleted file deletes the message on the other
	// devices, and deletes from them remove local files.
	ReplicateDeletes bool
	// MaxMessageBytes is the largest message file replicated
	// (DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// BatchCount and BatchBytes bound one put_journal_entries call
	// (defaults 500 entries, 4 MiB).
	BatchCount int
	BatchBytes int
	// Debounce and RescanInterval are passed to the watcher.
	Debounce       time.Duration
	RescanInterval time.Duration
	// SettleTime is how long a file that does not parse yet is given to be
	// completed by its writer before it is reported (default 2 s).
	SettleTime time.Duration
	// ReconcileGrace is how long after a batch was sent its reconciliation
	// waits for rows it cannot find yet before it sends them again: a server
	// may still be inserting a request whose reply was lost (default 30 s).
	ReconcileGrace time.Duration
	// MaxBackoff caps the wait after repeated errors of a push or a poll
	// (default 5 min); authentication failures wait at least AuthBackoff
	// (default 1 min).
	MaxBackoff  time.Duration
	AuthBackoff time.Duration
	// EntryBackoff is the first wait of an entry the server refused by
	// itself (journal_id null, or the row a put died on); it doubles with
	// every refusal up to MaxEntryBackoff (defaults 30 s and 1 h).
	EntryBackoff    time.Duration
	MaxEntryBackoff time.Duration
	// ProbeInterval is how often the engine checks that the server still
	// holds a row this device has seen, to notice a journal that was reset
	// or restored from a backup (default 1 h; also once after start).
	ProbeInterval time.Duration
	// PageBytes is the size of journal page the engine aims at when the
	// server honours get_journal_entries' limit (default 4 MiB); the real
	// server does not, and always sends up to 5000 rows.
	PageBytes int

	// DeviceName and Version are what this device's reports say it is
	// (default name: the host name).
	DeviceName string
	Version    string
	// NoReports: this device sends no reports (devices.go); the others
	// know of it only what its message rows say. Tests of journal ids
	// use it.
	NoReports bool

	Logger *slog.Logger
	// OnEvent, if set, is called (from the engine's goroutine; it must not
	// block) for every event worth showing to a user.
	OnEvent func(Event)
	// Now is the clock (tests).
	Now func() time.Time

	// Failpoint, if set, is called at named points of the push and poll
	// ("before-put", "after-put" — the server has stored the batch, the
	// mapping is not committed yet —, "before-apply-commit" — files of a
	// page are written, versions and cursor are not). Crash tests use it to
	// stop the engine exactly there; an error it returns aborts the step.
	Failpoint func(name string) error
}

func (o *Options) defaults() {
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDur(&o.PollInterval, 30*time.Second)
	setDur(&o.ActivePollInterval, time.Second)
	setDur(&o.ActiveWindow, 2*time.Minute)
	setDur(&o.SettleTime, 2*time.Second)
	setDur(&o.ReconcileGrace, 30*time.Second)
	setDur(&o.MaxBackoff, 5*time.Minute)
	setDur(&o.AuthBackoff, time.Minute)
	setDur(&o.EntryBackoff, 30*time.Second)
	setDur(&o.MaxEntryBackoff, time.Hour)
	setDur(&o.ProbeInterval, time.Hour)
	if o.PageBytes <= 0 {
		o.PageBytes = 4 << 20
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.BatchCount <= 0 {
		o.BatchCount = DefaultBatchCount
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Event is something that happened, for the event stream and the log
// (Kind is one of apitype's Event kinds).
type Event = apitype.Event

// Engine replicates one account. Make it with New, start it with Run.
type Engine struct {
	opts   Options
	db     *store.DB
	device string
	log    *slog.Logger
	kick   chan struct{}

	mu     sync.Mutex
	status Status

	// Everything below belongs to the Run goroutine.
	started    bool // the start-up scan and catch-up poll are done (or given up on)
	caughtUp   bool // the catch-up read the whole journal
	afterReset bool // the journal went backwards: the catch-up reads this device's rows too
	indexed    bool // the start-up index scan is done
	needCheck  bool // the in-flight marker must be looked at
	recheck    map[string]time.Time
	rejected   map[string]string
	lastActive time.Time
	nextPoll   time.Time
	lastProbe  time.Time
	// formerIDs are the device ids this account wrote under before it took
	// its current one (clone.go).
	formerIDs []string
	// readingOn is set while the journal is read page after page: the
	// check that the newest row seen is still there is made only at the
	// first page of new rows after a complete read (journalLostNewest).
	readingOn bool
	// cutSecond is the last page, if it may have been cut and holds one
	// second only: once the next page shows it was cut, that is warned
	// of (a server that orders by timestamp misses rows there).
	cutSecond    cutSecond
	storeMissing bool
	published    struct{ waiting int }
	// pushRetry and pollRetry are the two kinds of network work's
	// backoffs; a success of one leaves the other's alone.
	pushRetry, pollRetry retry
	// pushAt is when the outbox can next be pushed: zero when it is empty
	// (or a push is possible now), else the end of the push backoff or of
	// the hold of the entries the server refused.
	pushAt time.Time
	pages  pager
	// seenMax is the highest journal id planned so far: a row at or below
	// it that cannot be applied was counted and logged already.
	seenMax int64
	// batchMax bounds the entries of the next put: halved when the server
	// refuses a request as a whole (a body over its post_max_size reads as
	// "Missing uuid"), so the entry that causes it ends up alone.
	batchMax int
	// reconcileAt is when the batch in flight may be reconciled: after
	// its grace, or after a failed reconciliation's backoff.
	reconcileAt time.Time
	// diedWithReply is set when the last put failed with a reply from the
	// server (a 500, a MySQL error text): the reconciliation then holds
	// back the first entry that was not stored, the row the request died on.
	diedWithReply bool
	// held lists the entries the server refused, by msgid, for status.
	held map[string]heldEntry
	// watchFailed is set (by the watcher's goroutine) when no watcher could
	// be made; the engine then rescans the store every minute itself.
	watchFailed atomic.Bool
	lastScan    time.Time
	// ambiguousAt is when a put last failed without telling whether the
	// server stored it.
	ambiguousAt time.Time
	rescanNow   bool // SyncNow asked for a full look at the store
	// newAtStart holds the files the start-up index found for the first
	// time; decideAll treats them as new copies (see decide).
	newAtStart map[string]bool
	// goneAtStart holds the indexed files the start-up index did not
	// find: decideAll queues their deletes.
	goneAtStart map[string]bool
	batch       localBatch
	// prog is what the log says of the talk with the server (status.go).
	prog progress
	// lp is the poll that waits for the server to have something
	// (longpoll.go).
	lp longPoll
	// turns counts the loop's turns, for the tests that make sure it
	// sleeps while it waits.
	turns atomic.Int64
	// putting is the batch whose put is in flight (push.go).
	putting *putting
	// deciding is set while what to push at start is decided.
	deciding *deciding
	// pumping is set while the start-up index of a first backlog pushes
	// what it queues (pump).
	pumping context.Context
	// pushedSinceCompact counts entries pushed since the state file was
	// last looked at for compaction.
	pushedSinceCompact int
	// store is the account's message store.
	store messageStore
	// cursor is the journal id this device has applied up to, as the
	// last poll left it: what the entries it seals say (Entry.Applied).
	cursor int64
	// rep is the state of this device's reports (devices.go).
	rep reporter
	// calls are functions other goroutines run in the Run goroutine
	// (inLoop); stopped is closed when Run ends.
	calls   chan func()
	stopped chan struct{}

	// lag is the other device furthest behind, counted at lagAt
	// (status.go), and lagCache the lags last counted, for lagKey
	// (devices.go); any goroutine.
	lagMu    sync.Mutex
	lagAt    time.Time
	lag      *apitype.Lag
	lagKey   string
	lagCache []store.Lag
}

// New checks opts and makes an Engine.
func New(opts Options) (*Engine, error) {
	opts.defaults()
	switch {
	case opts.Account == "":
		return nil, errors.New("engine: no account address")
	case opts.Store == "":
		return nil, errors.New("engine: no message store directory")
	case opts.Keyring == nil:
		return nil, errors.New("engine: no key")
	case opts.Remote == nil:
		return nil, errors.New("engine: no remote")
	case opts.DB == nil:
		return nil, errors.New("engine: no state database")
	}
	// A store reached through a symbolic link (~/Chats → /data/chats) is
	// watched and walked at its real place: a walk does not follow a link.
	if real, err := filepath.EvalSymlinks(opts.Store); err == nil {
		opts.Store = real
	}
	device, err := opts.DB.AccountDevice(opts.Account)
	if err != nil {
		return nil, fmt.Errorf("engine: read the device id: %w", err)
	}
	clone, cloned, err := opts.DB.LastClone(opts.Account)
	if err != nil {
		return nil, fmt.Errorf("engine: read the device id: %w", err)
	}
	former, err := opts.DB.FormerDevices(opts.Account)
	if err != nil {
		return nil, fmt.Errorf("engine: read the device id: %w", err)
	}
	e := &Engine{
		opts:        opts,
		db:          opts.DB,
		device:      device,
		formerIDs:   former,
		log:         opts.Logger.With("account", opts.Account),
		kick:        make(chan struct{}, 1),
		calls:       make(chan func()),
		stopped:     make(chan struct{}),
		recheck:     map[string]time.Time{},
		rejected:    map[string]string{},
		newAtStart:  map[string]bool{},
		goneAtStart: map[string]bool{},
		held:        map[string]heldEntry{},
		needCheck:   true,
		batchMax:    opts.BatchCount,
	}
	if e.store, err = newStore(&e.opts, e.log, e.hasIndexedFiles); err != nil {
		return nil, err
	}
	if last, ok, err := opts.DB.SentReport(opts.Account); err == nil && ok {
		e.rep.lastAt = last.At
	}
	if e.cursor, err = opts.DB.Cursor(opts.Account); err != nil {
		return nil, fmt.Errorf("engine: read the cursor: %w", err)
	}
	e.status = Status{AccountStatus: apitype.AccountStatus{Account: opts.Account, State: StateStarting, Skipped: map[string]int{}, DeviceID: device}}
	if cloned {
		e.status.Clone = cloneNotice(clone)
	}
	return e, nil
}

// errNotRunning is an inLoop call to an engine whose Run has not started
// or has ended.
var errNotRunning = errors.New("the account is not running")

// inLoop runs fn in the Run goroutine, which owns the store and the
// loop's state, and waits for it. It fails if ctx ends first or Run is
// not running.
func (e *Engine) inLoop(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case e.calls <- func() { defer close(done); fn() }:
	case <-e.stopped:
		return errNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done // once taken, it runs to its end
	return nil
}

// SyncNow asks the engine to push and poll at once.
func (e *Engine) SyncNow() {
	e.mu.Lock()
	e.status.syncRequested = true
	e.mu.Unlock()
	e.wake()
}

func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run replicates until ctx is done. It returns nil then; errors along the
// way are retried with backoff and shown in Status, never returned.
func (e *Engine) Run(ctx context.Context) error {
	changes := make(chan watch.Change)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	watching := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := e.store.Watch(wctx, func() { close(watching) }, changes)
		if err != nil {
			e.log.Error("cannot watch the message store; changes are found by rescans only", "err", err,
				"hint", "on Linux, raise fs.inotify.max_user_instances")
			e.watchFailed.Store(true)
			select {
			case <-watching:
			default:
				close(watching)
			}
		}
	}()
	defer close(e.stopped)
	defer func() {
		e.endWait()
		e.endPut()
		cancel()
		wg.Wait()
		e.store.Close()
		e.setState(StateStopped, "")
	}()
	// The start-up scan must come after the watches are in place, or a
	// file written between the two would be missed by both.
	select {
	case <-watching:
	case <-ctx.Done():
		return nil
	}

	// Poll briskly for a while after start: someone who just started
	// chatsync is probably about to use it.
	e.lastActive = e.opts.Now()
	if held, err := e.db.Held(e.opts.Account); err == nil {
		for _, en := range held {
			e.held[en.MsgID] = heldEntry{Entry: en}
		}
	}
	e.publishUnapplied()
	var pending *watch.Change
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		e.turns.Add(1)
		if e.lp.running != nil && e.probeDue() {
			e.endWait() // a plain poll, then the probe
			e.nextPoll = time.Time{}
		}
		if pending != nil && e.indexed {
			c := *pending
			pending = nil
			e.handleChange(c)
		}
		e.localWork(ctx)
		busy := e.networkWork(ctx)
		if e.deciding != nil && e.decideStep() {
			busy = true
		}
		if n := len(e.recheck); n != e.published.waiting {
			e.published.waiting = n
			e.update(func(s *Status) { s.Waiting = n })
		}

		wait := e.nextWake()
		if busy {
			wait = 0
		} else if e.canWait() {
			e.startWait(ctx)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case c := <-changes:
			pending = merge(pending, c)
		case r := <-e.waitDone():
			e.finishWait(ctx, r)
		case r := <-e.putDone():
			e.finishPush(ctx, r)
		case fn := <-e.calls:
			fn()
		case <-e.kick:
			e.mu.Lock()
			now := e.status.syncRequested
			e.status.syncRequested = false
			e.mu.Unlock()
			if now {
				// Sync now: look at the whole store (a file written a
				// moment ago may not be reported yet), then push and
				// poll: a plain poll, which says what the server holds
				// now.
				e.endWait()
				e.rescanNow = true
				e.nextPoll = time.Time{}
				e.pushRetry.until, e.pollRetry.until = time.Time{}, time.Time{}
				e.pushAt = time.Time{}
			}
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func merge(a *watch.Change, b watch.Change) *watch.Change {
	if a == nil {
		return &b
	}
	a.Paths = append(a.Paths, b.Paths...)
	if b.Rescan && !a.Rescan {
		a.Rescan, a.Reason = true, b.Reason
	}
	return a
}

// localWork does the start-up index scan once and the re-checks of files
// that were still being written.
func (e *Engine) localWork(ctx context.Context) {
	if !e.rootPresent() {
		return
	}
	if !e.indexed {
		// Index what is on disk before the first poll, so that a message
		// that already exists here (SIP forks a MESSAGE to every device)
		// is recognised when another device's copy arrives, rather than
		// written a second time. What to push is decided after the
		// catch-up poll (decideAll), once the journal's versions are known.
		// A store that cannot be read yet (a database locked for
		// longer than the busy bound) is indexed at the next try.
		//
		// A first backlog where the journal holds nothing of other
		// devices has nothing to be recognised against: it is decided as
		// it is indexed, each file read once, and pushed while the rest
		// is read (firstBacklog).
		first := e.firstBacklog(ctx)
		if first {
			e.pumping = ctx
		}
		e.indexed = e.scan("", first)
		e.pumping = nil
		if !e.indexed {
			e.rootPresent() // pauses on what the scan found, if it says
			return
		}
	}
	now := e.opts.Now()
	for rel, at := range e.recheck {
		if !now.Before(at) {
			delete(e.recheck, rel)
			e.handlePlace(place{loc: rel}, e.decides(), false)
		}
	}
	if e.rescanNow || e.watchFailed.Load() && now.Sub(e.lastScan) >= watchlessRescan {
		e.rescanNow = false
		e.scan("", e.decides())
		e.retryKept()
	}
	e.flush()
}

// indexRetry is how soon a start-up index that could not read the store is
// tried again.
const indexRetry = 5 * time.Second

// watchlessRescan is how often the store is rescanned when it cannot be
// watched.
const watchlessRescan = time.Minute

// networkWork does one step of network work — a batch in flight to
// reconcile, one page to poll, one batch to push — reporting whether more is
// waiting right away.
func (e *Engine) networkWork(ctx context.Context) bool {
	if !e.indexed {
		return false
	}
	defer e.publishNet()
	if e.needCheck {
		// Nothing is sent or applied while a batch may be in flight. The
		// reconciliation waits for its grace and its own failures, not for
		// the push backoff, so receiving is not held back that long.
		if e.opts.Now().Before(e.reconcileAt) {
			return false
		}
		done, err := e.reconcile(ctx)
		if ctx.Err() != nil {
			return false
		}
		var tooLarge *pageTooLargeError
		if err != nil && errors.As(err, &tooLarge) && e.pushRetry.failures >= startAnyway {
			// The server cannot send the rows the reconciliation must read
			// (a stock server behind on large rows). Sending the batch
			// again may store some of it twice, which changes nothing on
			// the other devices; not sending it would stop this device's
			// messages for good.
			e.log.Warn("cannot read back the batch in flight; sending it again", "err", err)
			if err = e.db.FailBatch(e.opts.Account, err); err == nil {
				e.needCheck = false
				return true
			}
		}
		if err != nil {
			e.failed(&e.pushRetry, "push", err)
			e.reconcileAt = e.pushRetry.until
			return false
		}
		if !done {
			return false
		}
		e.needCheck = false
	}
	more := e.pollStep(ctx)
	if ctx.Err() != nil {
		return false
	}
	if e.pushStep(ctx) {
		more = true
	}
	if e.reportStep(ctx) {
		more = true
	}
	return more && ctx.Err() == nil
}

// pollStep reads one page of the journal when a poll is due: the catch-up
// at start (and after a reset) until the journal is read, then one poll per
// interval, each paging until the journal is read, followed by the
// consistency probe when that is due.
func (e *Engine) pollStep(ctx context.Context) (more bool) {
	now := e.opts.Now()
	if e.deciding != nil || e.putting != nil || e.lp.running != nil || e.storeMissing || now.Before(e.pollRetry.until) || e.started && now.Before(e.nextPoll) {
		return false // nothing is read while a batch is in flight; a waiting poll is the poll
	}
	more, err := e.poll(ctx)
	switch {
	case err != nil || more:
	case !e.started:
		// Caught up: decide what of the store is to be pushed, a chunk
		// at a time beside the pushes (decideStep), and then finish the
		// start.
		e.deciding = &deciding{}
		more = true
	case !e.caughtUp:
		err = e.finishCatchUp()
		more = true
	default:
		e.schedulePoll()
		e.probe(ctx)
	}
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		e.failed(&e.pollRetry, "poll", err)
		if !e.started && e.pollRetry.failures >= startAnyway {
			// The catch-up keeps failing: decide what to push without it,
			// so this device's messages leave meanwhile. What is lost is
			// only the recognition of copies SIP delivered to every device
			// (they may be journaled twice, which changes nothing).
			e.log.Warn("cannot catch up with the journal; sending this device's changes meanwhile", "failures", e.pollRetry.failures)
			e.decideAll()
			e.started = true
			e.newAtStart, e.goneAtStart = nil, map[string]bool{}
		}
		return false
	}
	e.succeeded(&e.pollRetry, "poll")
	return more
}

// finishCatchUp ends the catch-up once what to push is decided: only now
// is queued again what the journal lacks, since before the catch-up this
// device's old copies of other devices' messages would win over their
// edits.
func (e *Engine) finishCatchUp() error {
	if err := e.requeueUnpushed(); err != nil {
		return err
	}
	e.started, e.caughtUp, e.afterReset = true, true, false
	e.newAtStart, e.goneAtStart = nil, map[string]bool{}
	e.caughtUpNow()
	if err := e.retryUnapplied(); err != nil {
		return err
	}
	return e.resealUnreadable()
}

// deciding is where the decision of what to push at start has got to.
type deciding struct {
	after string // the last path decided
}

// decideStep decides what to push of the next chunk of the file index
// (a batch's worth), while a put of what was decided before is in flight:
// the backlog is read and sealed while the server stores it, and the
// outbox holds at most the batch in flight and the next one. It reports
// whether more is to be done right away.
func (e *Engine) decideStep() bool {
	acct := e.opts.Account
	if e.storeMissing {
		return false
	}
	if e.putting != nil {
		if st, err := e.db.Stats(acct); err == nil && st.OutboxDepth >= 2*e.opts.BatchCount {
			return false // the next batch is ready: go on when this one is out
		}
	}
	recs, err := e.db.FilesAfter(acct, e.deciding.after, e.opts.BatchCount)
	if err != nil {
		e.log.Error("cannot read the file index", "err", err)
		e.deciding = nil // the catch-up is made again
		e.failed(&e.pollRetry, "poll", err)
		return false
	}
	e.decideRecords(recs)
	if len(recs) == e.opts.BatchCount {
		e.deciding.after = recs[len(recs)-1].Path
		return true
	}
	e.deciding = nil
	if err := e.finishCatchUp(); err != nil {
		e.failed(&e.pollRetry, "poll", err)
		return false
	}
	return true
}

// startAnyway is how many failed catch-up polls in a row make the engine
// start pushing without the catch-up.
const startAnyway = 3

// pushStep starts sending one batch of the outbox, if there is one to send
// now and none is in flight; finishPush takes the reply.
func (e *Engine) pushStep(ctx context.Context) (more bool) {
	if e.putting != nil {
		return false
	}
	if st, err := e.db.Stats(e.opts.Account); err == nil && st.OutboxDepth == 0 {
		// Nothing to send: whatever failed before is resolved.
		e.pushAt = time.Time{}
		e.succeeded(&e.pushRetry, "push")
		if e.pushedSinceCompact >= compactAfter {
			e.pushedSinceCompact = 0
			e.compactState()
		}
		return false
	}
	now := e.opts.Now()
	if now.Before(e.pushRetry.until) || now.Before(e.pushAt) {
		return false
	}
	started, err := e.push(ctx)
	if ctx.Err() != nil {
		return false
	}
	if err != nil || !started {
		e.afterPush(false, err)
		return false
	}
	return e.putting == nil // a batch in flight to reconcile first
}

// compactAfter is how many entries pushed since the last look make the
// engine look, once the outbox is empty, whether the state file is worth
// compacting: their envelopes left free pages behind.
const compactAfter = 5000

// compactState gives the state file's free pages back to the file system
// when most of it is free (store.DB.Compact).
func (e *Engine) compactState() {
	if !e.db.Wasteful() {
		return
	}
	before, after, err := e.db.Compact()
	if err != nil {
		e.log.Warn("cannot compact the state file; it keeps its size", "err", err)
		return
	}
	if before > 0 {
		e.log.Info("compacted the state file after the outbox drained", "bytes_before", before, "bytes_after", after)
	}
}

// afterPush counts a push's outcome: a failure backs pushing off.
func (e *Engine) afterPush(sent bool, err error) {
	if err != nil {
		e.failed(&e.pushRetry, "push", err)
		e.pushAt = e.pushRetry.until
		return
	}
	if sent || !e.pushAt.IsZero() {
		// A batch went out, or all that is left is held back by itself:
		// sending works, the held entries are shown on their own.
		e.succeeded(&e.pushRetry, "push")
	}
}

// retry is the backoff state of one kind of network work.
type retry struct {
	failures int
	until    time.Time
	err      string
}

// failed counts a failure of kind's work and schedules its next attempt.
// A failure is logged at warn level when its message differs from the last
// one, so a server that stays down is reported once, not at every retry.
func (e *Engine) failed(r *retry, kind string, err error) {
	r.failures++
	d := e.backoff(r.failures, err)
	r.until = e.opts.Now().Add(d) // counted from the failure, not from the start of the attempt
	msg := err.Error()
	level := slog.LevelWarn
	if msg == r.err {
		level = slog.LevelDebug
	}
	r.err = msg
	e.log.Log(context.Background(), level, kind+" failed; retrying", "err", msg, "failures", r.failures, "retry_in", d.Round(time.Millisecond))
	e.emit(Event{Kind: "error", Message: kind + ": " + msg})
}

// succeeded ends a backoff of kind's work.
func (e *Engine) succeeded(r *retry, kind string) {
	if r.failures > 0 {
		e.log.Info(kind+" works again", "after_failures", r.failures)
	}
	*r = retry{}
}

// publishNet shows the network state in the status.
func (e *Engine) publishNet() {
	held := make([]Held, 0, len(e.held))
	for _, msgid := range slices.Sorted(maps.Keys(e.held)) {
		en := e.held[msgid]
		held = append(held, Held{MsgID: msgid, Attempts: en.Attempts, RetryAt: en.RetryAt, Reason: en.LastError})
	}
	push, poll := e.pushRetry, e.pollRetry
	e.mu.Lock()
	s := &e.status
	s.PushFailures, s.PushBackoffUntil = push.failures, push.until
	s.PollFailures, s.PollBackoffUntil = poll.failures, poll.until
	s.Failures, s.BackoffUntil = max(push.failures, poll.failures), time.Time{}
	for _, r := range []retry{push, poll} {
		if r.failures > 0 && (s.BackoffUntil.IsZero() || r.until.Before(s.BackoffUntil)) {
			s.BackoffUntil = r.until
		}
	}
	s.Held = held
	e.mu.Unlock()
	if e.storeMissing {
		return
	}
	var problems []string
	if poll.failures > 0 {
		problems = append(problems, "receiving: "+poll.err)
	}
	if push.failures > 0 {
		problems = append(problems, "sending: "+push.err)
	}
	switch {
	case len(problems) > 0:
		e.setState(StateBackoff, strings.Join(problems, "; "))
	case !e.started:
		e.setState(StateStarting, "")
	default:
		e.setState(StateIdle, "")
	}
}

func (e *Engine) schedulePoll() {
	now := e.opts.Now()
	interval := e.opts.PollInterval
	if now.Sub(e.lastActive) < e.opts.ActiveWindow {
		interval = e.opts.ActivePollInterval
	}
	e.nextPoll = now.Add(interval)
}

// nextWake is how long the loop may sleep: until the next poll, the end of
// a backoff, an entry the server refused is due again, a file to look at
// again, or a rescan.
func (e *Engine) nextWake() time.Duration {
	now := e.opts.Now()
	next := now.Add(time.Hour)
	if e.storeMissing {
		next = now.Add(time.Second) // look for it again
	}
	if e.watchFailed.Load() {
		next = earlier(next, e.lastScan.Add(watchlessRescan))
	}
	switch {
	case !e.indexed:
		// Network work waits for the start-up index, which waits for the
		// store, and is tried again a little later if the store could
		// not be read.
		next = earlier(next, now.Add(indexRetry))
	case e.needCheck:
		next = earlier(next, e.reconcileAt)
	default:
		switch {
		case e.lp.running != nil:
			// The waiting poll wakes the loop when it ends; the probe
			// ends it.
			next = earlier(next, e.lastProbe.Add(e.opts.ProbeInterval))
		case e.putting != nil || e.deciding != nil:
			// No poll while a batch is in flight or what to push is
			// decided: the put's reply wakes the loop.
		case !e.storeMissing:
			poll := e.pollRetry.until
			if e.started && e.nextPoll.After(poll) {
				poll = e.nextPoll
			}
			next = earlier(next, poll)
		}
		if !e.pushAt.IsZero() {
			next = earlier(next, e.pushAt)
		}
	}
	for _, at := range e.recheck {
		next = earlier(next, at)
	}
	return max(next.Sub(now), 0)
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// backoff returns how long to wait after the failures-th failure in a row
// of one kind of work: exponential from one second with ±20 % jitter, at
// least what the server asked for with Retry-After, and at least AuthBackoff
// after an authentication failure (which needs a person to fix the
// configuration).
func (e *Engine) backoff(failures int, err error) time.Duration {
	d := time.Second << min(failures-1, 20)
	d = min(d, e.opts.MaxBackoff)
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	var ae *account.Error
	if errors.As(err, &ae) {
		if ae.RetryAfter > d {
			d = ae.RetryAfter
		}
		if ae.Kind == account.KindAuth && d < e.opts.AuthBackoff {
			d = e.opts.AuthBackoff
		}
	}
	return d
}

func (e *Engine) emit(ev Event) {
	ev.Account = e.opts.Account
	if ev.Time.IsZero() {
		ev.Time = e.opts.Now()
	}
	if e.opts.OnEvent != nil {
		e.opts.OnEvent(ev)
	}
}

// rootPresent reports whether the store is there to be used, pausing or
// resuming the account when that changes.
func (e *Engine) rootPresent() bool {
	missing := e.store.Unusable()
	if (missing != "") != e.storeMissing {
		e.storeMissing = missing != ""
		if e.storeMissing {
			e.log.Error("message store unusable; replication of this account is paused", "store", e.store.Describe(""), "reason", missing)
			e.setState(StatePaused, missing)
			e.emit(Event{Kind: "error", Message: missing})
		} else {
			e.log.Info("message store is back", "store", e.store.Describe(""))
			e.setState(StateIdle, "")
			if e.indexed {
				e.scan("", e.decides())
			}
		}
	}
	if e.storeMissing {
		e.setState(StatePaused, missing)
	}
	return !e.storeMissing
}

// hasIndexedFiles reports whether the file index of the account holds
// anything.
func (e *Engine) hasIndexedFiles() bool {
	for _, err := range e.db.Files(e.opts.Account) {
		return err == nil
	}
	return false
}

func (e *Engine) failpoint(name string) error {
	if e.opts.Failpoint != nil {
		return e.opts.Failpoint(name)
	}
	return nil
}

// decides reports whether what the store holds is decided on as it is
// found (queued when it is not the version held): once the catch-up has
// decided what to push at start, or while it does (a change to a file it
// has passed would otherwise wait for the next rescan).
func (e *Engine) decides() bool { return e.started || e.deciding != nil }
