package engine

import (
	"maps"

	"slices"
	"time"

	"github.com/chatsync/chatsync/store"
)

// States of an engine, as Status reports them.
const (
	StateStarting = "starting" // indexing the store and catching up with the journal
	StateIdle     = "idle"     // caught up; waiting for changes or the next poll
	StateBackoff  = "backoff"  // sending or receiving failed; waiting to retry (the other goes on)
	StatePaused   = "paused"   // the message store directory is missing
	StateStopped  = "stopped"
)

// Status is a snapshot of an engine for `chatsync status`.
type Status struct {
	Account string `json:"account"`
	State   string `json:"state"`
	// Error is the current problem, if any, in words that say what to do.
	Error string `json:"error,omitempty"`
	// LocalError is set while local changes cannot be recorded in the
	// state database (a full or read-only disk); they are retried.
	LocalError string `json:"local_error,omitempty"`

	Cursor       int64     `json:"cursor"`
	OutboxDepth  int       `json:"outbox_depth"`
	OldestUnsent time.Time `json:"oldest_unsent,omitzero"`

	LastPush      time.Time `json:"last_push,omitzero"`
	LastPushError string    `json:"last_push_error,omitempty"`
	LastPoll      time.Time `json:"last_poll,omitzero"`
	LastPollError string    `json:"last_poll_error,omitempty"`
	// BackoffUntil is when the next attempt is made after Failures
	// failures in a row: the earlier of the push's and the poll's, which
	// back off independently (PushBackoffUntil, PollBackoffUntil).
	BackoffUntil     time.Time `json:"backoff_until,omitzero"`
	Failures         int       `json:"failures,omitempty"`
	PushBackoffUntil time.Time `json:"push_backoff_until,omitzero"`
	PushFailures     int       `json:"push_failures,omitempty"`
	PollBackoffUntil time.Time `json:"poll_backoff_until,omitzero"`
	PollFailures     int       `json:"poll_failures,omitempty"`
	// Held lists the outbox entries the server refused by themselves;
	// each waits with its own backoff while the entries behind it are sent.
	Held []Held `json:"held,omitempty"`

	// Pushed and Received count journal entries since the engine started.
	Pushed   int64 `json:"pushed"`
	Received int64 `json:"received"`
	// Skipped counts journal entries that could not be applied, by reason
	// (wrong key, tampered, foreign account, bad entry).
	Skipped map[string]int `json:"skipped,omitempty"`
	// Unapplied counts the journal entries kept because they could not be
	// applied for a reason that can go away (UnappliedReasons); they are
	// tried again at start, after a rescan and on a sync. MissingKeys
	// names the keys they were sealed under that this device lacks, and
	// UnappliedHint says what to do.
	Unapplied        int            `json:"unapplied,omitempty"`
	UnappliedReasons map[string]int `json:"unapplied_reasons,omitempty"`
	MissingKeys      []string       `json:"missing_keys,omitempty"`
	UnappliedHint    string         `json:"unapplied_hint,omitempty"`
	// Rejected lists the files of the message store that are not
	// replicated, with the reason, until they are fixed.
	Rejected []Rejected `json:"rejected,omitempty"`
	// Waiting counts files that do not parse yet and are given a moment
	// to be completed by their writer before they are reported.
	Waiting int `json:"waiting,omitempty"`
	// ResetAt is when the server's journal was last seen going backwards.
	ResetAt time.Time `json:"reset_at,omitzero"`
	// DeviceID is the id this account writes under; Clone says why it is
	// not the installation's (another device used the same id).
	DeviceID string `json:"device_id"`
	Clone    string `json:"clone,omitempty"`

	syncRequested bool
}

// heldEntry is an entry the server refused, and how often it was held
// back in this run (its backoff doubles with each).
type heldEntry struct {
	store.Entry
	holds int
}

// Held is an outbox entry the server refused: the message, how often it
// was refused, when it is sent again, and why.
type Held struct {
	MsgID    string    `json:"msgid"`
	Attempts int       `json:"attempts"`
	RetryAt  time.Time `json:"retry_at"`
	Reason   string    `json:"reason"`
}

// Rejected is a message file that is not replicated.
type Rejected struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Status returns a snapshot of the engine's state.
func (e *Engine) Status() Status {
	st, err := e.db.Stats(e.opts.Account)
	e.mu.Lock()
	s := e.status
	s.Skipped = maps.Clone(e.status.Skipped)
	s.Rejected = append([]Rejected(nil), e.status.Rejected...)
	s.Held = append([]Held(nil), e.status.Held...)
	s.UnappliedReasons = maps.Clone(e.status.UnappliedReasons)
	s.MissingKeys = slices.Clone(e.status.MissingKeys)
	e.mu.Unlock()
	if err == nil {
		s.Cursor = st.Cursor
		s.OutboxDepth = st.OutboxDepth
		s.OldestUnsent = st.OldestUnsent
	}
	return s
}

func (e *Engine) setState(state, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status.State == StateStopped {
		return
	}
	e.status.State = state
	e.status.Error = msg
}

func (e *Engine) update(f func(s *Status)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.status)
}

// publishRejected copies the rejected-file map into the status.
func (e *Engine) publishRejected() {
	list := make([]Rejected, 0, len(e.rejected))
	for _, p := range slices.Sorted(maps.Keys(e.rejected)) {
		list = append(list, Rejected{Path: p, Reason: e.rejected[p]})
	}
	e.update(func(s *Status) { s.Rejected = list })
}
