package engine

import (
	"context"
	"time"

	"github.com/chatsync/chatsync/sync/account"
)

// Instant sync. chatsync-server holds a get_journal_entries that asks for
// wait=SECONDS until a row it would return arrives (and says so with the
// X-Chatsync-Wait header, account.JournalPage.Waited). While the engine
// has caught up it keeps one such poll waiting, in a goroutine of its own,
// so a message another device writes arrives as soon as it is put rather
// than at the next interval poll. A server that does not know the
// parameter (the real one) answers at once, as to a plain poll: that
// answer is applied as one, and the engine polls at intervals from then
// on, asking again an hour later.
//
// The waiting poll only fetches. What it brings is applied by the loop,
// between its other steps, as a plain poll's page would be, and only if
// nothing has moved the cursor or left a batch in flight meanwhile:
// otherwise it is dropped and read again by a plain poll. Pushes go on
// while a poll waits; a request to sync now ends the wait, since a plain
// poll must then say what the server holds.

// longPollWait is how long the server is asked to hold a poll: below the
// idle timeouts of the proxies and NATs in between (commonly 30–60 s).
const longPollWait = 25 * time.Second

// longPollRetry is how long the engine polls at intervals after the
// server answered a waiting poll at once, or waiting polls failed twice in
// a row, before it tries one again.
const longPollRetry = time.Hour

// longPoll is the state of the waiting poll.
type longPoll struct {
	// offUntil: the server does not hold polls (or waiting polls fail):
	// poll at intervals until then.
	offUntil time.Time
	failures int
	// running is the poll that waits now, if any.
	running *waitingPoll
}

type waitingPoll struct {
	q       account.JournalQuery
	limit   int
	started time.Time
	cancel  context.CancelFunc
	done    chan waitResult
}

type waitResult struct {
	page *account.JournalPage
	err  error
}

// canWait reports whether a waiting poll may be started now: the engine
// has caught up and is not otherwise polling, reconciling or paused.
func (e *Engine) canWait() bool {
	now := e.opts.Now()
	return e.lp.running == nil && e.putting == nil && e.started && e.caughtUp && e.indexed && !e.needCheck && !e.storeMissing &&
		!now.Before(e.lp.offUntil) && !now.Before(e.pollRetry.until) && !e.probeDue()
}

// probeDue reports whether the consistency probe is due, which a plain
// poll makes: a waiting poll is ended for it (hourly).
func (e *Engine) probeDue() bool {
	return e.lastProbe.IsZero() || !e.opts.Now().Before(e.lastProbe.Add(e.opts.ProbeInterval))
}

// startWait starts a waiting poll after the cursor.
func (e *Engine) startWait(ctx context.Context) {
	q, err := e.pollQuery()
	if err != nil {
		return
	}
	q.Wait = longPollWait
	limit := 0
	if e.pages.limit > 0 {
		limit = e.pages.rows
		q.Limit = limit
	}
	wctx, cancel := context.WithCancel(ctx)
	started := e.opts.Now()
	// The server holds the poll: it had nothing for this device when the
	// poll started, and sends what comes as it comes. That is a poll
	// that worked, as of its start.
	q.OnHeld = func() {
		e.update(func(s *Status) {
			if started.After(s.LastPoll) {
				s.pollWorked(started)
			}
			s.Listening = true
		})
	}
	w := &waitingPoll{q: q, limit: limit, started: started, cancel: cancel, done: make(chan waitResult, 1)}
	e.lp.running = w
	remote := e.opts.Remote
	go func() {
		page, err := remote.GetJournalEntries(wctx, q)
		w.done <- waitResult{page, err}
	}()
}

// waitDone is the channel the waiting poll's result comes on (nil: none
// waits).
func (e *Engine) waitDone() <-chan waitResult {
	if e.lp.running == nil {
		return nil
	}
	return e.lp.running.done
}

// endWait ends the waiting poll, if any, and waits for its goroutine.
func (e *Engine) endWait() {
	if w := e.lp.running; w != nil {
		w.cancel()
		<-w.done
		e.lp.running = nil
		e.update(func(s *Status) { s.Listening = false })
	}
}

// finishWait takes the result of the waiting poll.
func (e *Engine) finishWait(ctx context.Context, r waitResult) {
	w := e.lp.running
	e.lp.running = nil
	w.cancel()
	e.update(func(s *Status) { s.Listening = false })
	if ctx.Err() != nil {
		return
	}
	now := e.opts.Now()
	if r.err != nil {
		// Something between here and the server may cut long requests:
		// a plain poll says at once whether the server is reachable.
		e.lp.failures++
		e.nextPoll = now
		if e.lp.failures >= 2 {
			e.lp.offUntil = now.Add(longPollRetry)
			e.log.Info("waiting polls keep failing; polling at intervals", "err", r.err, "retry_in", longPollRetry)
		}
		return
	}
	e.lp.failures = 0
	if r.page.Waited <= 0 {
		if e.lp.offUntil.IsZero() {
			e.log.Info("the server answers polls at once (it does not know wait=); polling at intervals",
				"poll_interval", e.opts.PollInterval, "active_poll_interval", e.opts.ActivePollInterval)
		}
		e.lp.offUntil = now.Add(longPollRetry)
	}
	if e.putting != nil {
		// Nothing is applied while a batch is in flight (the device's own
		// put ends its waiting poll): a new one starts after the put.
		return
	}
	cursor, err := e.db.Cursor(e.opts.Account)
	if err != nil || cursor != w.q.AfterID || e.needCheck || !e.started {
		e.nextPoll = now // read again by a plain poll
		return
	}
	if w.q.Limit > 0 && len(r.page.Entries) > w.q.Limit {
		e.pages.limit = -1 // it ignores limit after all
	}
	e.pages.fit(r.page, e.opts.PageBytes)
	more, err := e.applyPage(ctx, w.q, r.page, w.limit, w.started)
	if err != nil {
		e.failed(&e.pollRetry, "poll", err)
		return
	}
	e.succeeded(&e.pollRetry, "poll")
	if more {
		e.nextPoll = now // the rest of a cut page, by plain polls
		return
	}
	e.schedulePoll()
	e.probe(ctx)
}
