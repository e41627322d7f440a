package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// States of an engine, as Status reports them (apitype.AccountStatus).
const (
	StateStarting = apitype.StateStarting
	StateIdle     = apitype.StateIdle
	StateBackoff  = apitype.StateBackoff
	StatePaused   = apitype.StatePaused
	StateStopped  = apitype.StateStopped
)

// Status is a snapshot of an engine for `chatsync status`: the socket's
// account status, defined once in apitype, and what the engine keeps to
// fill it.
type Status struct {
	apitype.AccountStatus

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

// Held is an outbox entry the server refused; Rejected a message file
// that is not replicated.
type (
	Held     = apitype.Held
	Rejected = apitype.Rejected
)

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
	s.PollIntervalSeconds = e.opts.PollInterval.Seconds()
	s.Lagging = e.lagging()
	s.Stalled = stalled(s.AccountStatus, e.opts.PollInterval, e.opts.Now())
	return s
}

// stallPolls is how many poll intervals may pass without a good poll
// before the account counts as stalled; a server that holds polls may
// hold one for longPollWait, so it gets at least stallListening.
const (
	stallPolls     = 5
	stallListening = 3 * time.Minute
)

// retiredAfter is how long a device may go unheard before it no longer
// counts for the lag alarm: an old laptop given away is not a stall of
// this one. `chatsync devices` still lists it.
const retiredAfter = 30 * 24 * time.Hour

// stalled says why s counts as stalled at now, or "": no good poll for
// stallPolls intervals, an entry unsent for apitype.StallAfter, another
// device behind for apitype.LagAfter.
func stalled(s apitype.AccountStatus, interval time.Duration, now time.Time) string {
	if s.State == StateStopped || s.State == StatePaused || s.StartError != "" {
		return "" // said otherwise
	}
	limit := stallPolls * interval
	if s.Listening {
		limit = max(limit, stallListening)
	}
	since, what := s.LastGoodPoll, "the last good poll of the journal was"
	if since.IsZero() {
		since, what = s.Started, "no poll of the journal has worked since the start"
	}
	if !since.IsZero() && now.Sub(since) > limit {
		msg := fmt.Sprintf("%s %s ago (more than %d× the %s poll interval)", what, now.Sub(since).Round(time.Second), stallPolls, interval)
		if s.LastPollError != "" {
			msg += ": " + s.LastPollError
		} else {
			msg += "; `chatsync sync --wait` tries at once, the log says more"
		}
		return msg
	}
	if s.OutboxDepth > 0 && !s.OldestUnsent.IsZero() && now.Sub(s.OldestUnsent) > apitype.StallAfter {
		msg := fmt.Sprintf("the oldest of %d entries waiting to be sent was queued %s ago", s.OutboxDepth, now.Sub(s.OldestUnsent).Round(time.Second))
		switch {
		case s.LastPushError != "":
			msg += ": " + s.LastPushError
		case len(s.Held) > 0:
			msg += fmt.Sprintf("; the server refused %d of them (see held)", len(s.Held))
		}
		return msg
	}
	if l := s.Lagging; l != nil && now.Sub(l.Since) > apitype.LagAfter {
		return fmt.Sprintf("device %s has not applied %d of this device's messages, the oldest written %s ago: is it running? `chatsync devices` shows every device",
			deviceLabel(l.Name, l.DeviceID), l.Behind, now.Sub(l.Since).Round(time.Minute))
	}
	return ""
}

// deviceLabel names a device for people: its name and short id.
func deviceLabel(name, id string) string {
	short := strings.TrimPrefix(strings.ToLower(id), "urn:uuid:")
	if len(short) > 8 {
		short = short[:8]
	}
	if name == "" {
		return short
	}
	return name + " (" + short + ")"
}

// lagEvery is how often the lag of the other devices is counted for
// status (it reads every version this device holds).
const lagEvery = time.Minute

// lagging returns the other device furthest behind, counted at most once
// per lagEvery.
func (e *Engine) lagging() *apitype.Lag {
	now := e.opts.Now()
	e.lagMu.Lock()
	if !e.lagAt.IsZero() && now.Sub(e.lagAt) < lagEvery {
		defer e.lagMu.Unlock()
		return e.lag
	}
	e.lagAt = now
	e.lagMu.Unlock()
	ds, err := e.Devices()
	var lag *apitype.Lag
	for _, d := range ds.Devices {
		if err != nil || d.Self || d.Behind <= 0 || now.Sub(d.LastSeen) > retiredAfter {
			continue
		}
		if lag == nil || d.BehindSince.Before(lag.Since) {
			lag = &apitype.Lag{DeviceID: d.DeviceID, Name: d.Name, Behind: d.Behind, Since: d.BehindSince}
		}
	}
	e.lagMu.Lock()
	defer e.lagMu.Unlock()
	if err == nil {
		e.lag = lag
	}
	return e.lag
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
	if now.After(s.LastGoodPoll) {
		s.LastGoodPoll = now
	}
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
