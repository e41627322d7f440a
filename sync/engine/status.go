package engine

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
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
	// LastScan is when the last full look at the store ended (the
	// start-up index, `chatsync sync`, the hourly safety rescan).
	LastScan time.Time `json:"last_scan,omitzero"`
	// Listening is set while the server holds a poll for this account
	// (chatsync-server's long poll): what other devices write arrives as
	// they write it, and LastPoll is when the held poll started.
	Listening bool `json:"listening,omitempty"`
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

	// LastPollErrorKind and LastPushErrorKind are the account.Kind of
	// LastPollError and LastPushError ("auth", "server", ...), empty when
	// the failure was not the server's answer.
	LastPollErrorKind string `json:"last_poll_error_kind,omitempty"`
	LastPushErrorKind string `json:"last_push_error_kind,omitempty"`
	// NeedsFix is the error, while sending or receiving fails in a way
	// waiting will not fix (see needsFix).
	NeedsFix string `json:"needs_fix,omitempty"`
	// FailingSince is when sending or receiving began to fail without a
	// success since.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// CatchUp is the progress of the last catch-up with the journal.
	CatchUp *apitype.CatchUp `json:"catch_up,omitempty"`

	syncRequested bool
	// pollFix, pushFix and pollSince, pushSince are NeedsFix and
	// FailingSince of each direction.
	pollFix, pushFix     string
	pollSince, pushSince time.Time
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
	if e.status.CatchUp != nil {
		s.CatchUp = new(*e.status.CatchUp)
	}
	e.mu.Unlock()
	s.NeedsFix = cmp.Or(s.pollFix, s.pushFix)
	if s.PollFailures == 0 && s.LastPollError == "" {
		s.pollSince = time.Time{}
	}
	if s.PushFailures == 0 && s.LastPushError == "" {
		s.pushSince = time.Time{}
	}
	for _, t := range []time.Time{s.pollSince, s.pushSince} {
		if !t.IsZero() && (s.FailingSince.IsZero() || t.Before(s.FailingSince)) {
			s.FailingSince = t
		}
	}
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

// errorKind returns the account.Kind of err as a word, or "" when err is
// not the server's answer.
func errorKind(err error) string {
	if ae, ok := errors.AsType[*account.Error](err); ok {
		return ae.Kind.String()
	}
	return ""
}

// needsFix returns err's text when waiting will not make it go away: the
// server refused the credentials, or the settings_url is not the API (a
// 404 or another 4xx, a redirect, an HTML page instead of JSON). It
// returns "" for everything else, which the backoff retries.
func needsFix(err error) string {
	ae, ok := errors.AsType[*account.Error](err)
	if !ok || errors.Is(ae.Err, context.Canceled) {
		return ""
	}
	switch {
	case ae.Kind == account.KindAuth,
		ae.Kind == account.KindServer && !ae.Retryable(),
		ae.Kind == account.KindMalformed && strings.Contains(ae.Message, "HTML page"):
		return ae.Error()
	}
	return ""
}

// pollFailed and pollWorked record the outcome of a poll that reached
// (or tried to reach) the server in s; pushFailed and pushWorked the same
// for a push.
func (s *Status) pollFailed(now time.Time, err error) {
	s.LastPoll, s.LastPollError = now, err.Error()
	s.LastPollErrorKind, s.pollFix = errorKind(err), needsFix(err)
	if s.pollSince.IsZero() {
		s.pollSince = now
	}
}

func (s *Status) pollWorked(now time.Time) {
	s.LastPoll, s.LastPollError, s.LastPollErrorKind, s.pollFix, s.pollSince = now, "", "", "", time.Time{}
}

func (s *Status) pushFailed(now time.Time, err error) {
	s.LastPush, s.LastPushError = now, err.Error()
	s.LastPushErrorKind, s.pushFix = errorKind(err), needsFix(err)
	if s.pushSince.IsZero() {
		s.pushSince = now
	}
}

func (s *Status) pushWorked(now time.Time) {
	s.LastPush, s.LastPushError, s.LastPushErrorKind, s.pushFix, s.pushSince = now, "", "", "", time.Time{}
}

// progress is what the engine logs about its talk with the server: a
// person reading the log at info sees the first contact, a summary of a
// catch-up every few seconds, that it caught up, and every batch sent.
type progress struct {
	contacted bool      // the server answered once since the start
	lastLog   time.Time // when the catch-up was last summarised at info
	warnedCut bool      // a page cut within one second was warned of
}

// catchUpLogEvery is how often a catch-up is summarised at info; every
// page is logged at debug.
const catchUpLogEvery = 5 * time.Second

// pageRead counts a journal page read from the server (rows rows, written
// of them applied to the store) in the status and logs it: during a
// catch-up at debug with a summary at info every catchUpLogEvery, after it
// at info when it changed the store.
func (e *Engine) pageRead(started time.Time, rows, written int) {
	now := e.opts.Now()
	if !e.prog.contacted {
		e.prog.contacted = true
		e.log.Info("the server answered; reading the journal", "rows", rows)
	}
	if e.caughtUp {
		if written > 0 {
			e.log.Info("applied journal entries from other devices", "messages", written)
		}
		return
	}
	var c apitype.CatchUp
	e.update(func(s *Status) {
		if s.CatchUp == nil || !s.CatchUp.Done.IsZero() {
			s.CatchUp = &apitype.CatchUp{Since: started}
			e.prog.lastLog = now
		}
		s.CatchUp.Pages++
		s.CatchUp.Rows += int64(rows)
		s.CatchUp.Written += int64(written)
		c = *s.CatchUp
	})
	e.log.Debug("read a page of the journal", "rows", rows, "messages", written)
	if now.Sub(e.prog.lastLog) >= catchUpLogEvery {
		e.prog.lastLog = now
		e.log.Info("catching up with the journal", "pages", c.Pages, "rows", c.Rows, "messages", c.Written,
			"rows_per_second", int(c.RowsPerSecond(now)))
	}
}

// caughtUpNow marks the catch-up done, and says so at info.
func (e *Engine) caughtUpNow() {
	now := e.opts.Now()
	var c apitype.CatchUp
	e.update(func(s *Status) {
		if s.CatchUp == nil {
			s.CatchUp = &apitype.CatchUp{Since: now}
		}
		if s.CatchUp.Done.IsZero() {
			s.CatchUp.Done = now
		}
		c = *s.CatchUp
	})
	e.log.Info("caught up with the journal", "messages", c.Written, "rows", c.Rows, "pages", c.Pages,
		"took", c.Done.Sub(c.Since).Round(time.Millisecond))
}

// batchPushed logs a batch the server stored.
func (e *Engine) batchPushed(stored, sent int) {
	if stored == sent {
		e.log.Info("sent a batch to the journal", "entries", stored)
		return
	}
	e.log.Info("sent a batch to the journal", "entries", stored, "refused", sent-stored)
}
