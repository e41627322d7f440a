package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
)

// A batch is put by a goroutine of its own, so the loop prepares the next
// one (reads, seals, queues) while the server stores this one. One batch is
// in flight at a time, and nothing is polled or applied meanwhile: the
// journal's rule "a later id wins" is only safe to apply once this
// device's batch has its ids (see the package doc).

// putting is the batch whose put is in flight.
type putting struct {
	batch   store.Batch
	entries []account.PutEntry
	done    chan putResult
}

type putResult struct {
	results []account.PutResult
	err     error
}

// push starts sending the oldest outbox entries that are not held back as
// one batch. started reports that a put is in flight (or that the outbox
// needs a look first); when nothing could be sent, pushAt says when to
// look again.
func (e *Engine) push(ctx context.Context) (started bool, err error) {
	acct := e.opts.Account
	batch, err := e.db.NextBatch(acct, e.batchMax, e.opts.BatchBytes)
	if errors.Is(err, store.ErrBatchInFlight) {
		e.needCheck = true
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the outbox: %w", err)
	}
	if len(batch.Entries) == 0 {
		e.pushAt = batch.HeldUntil // zero: the outbox is empty
		return false, nil
	}
	e.pushAt = time.Time{}
	entries := make([]account.PutEntry, len(batch.Entries))
	for i, en := range batch.Entries {
		entries[i] = account.PutEntry{ID: en.Token, Data: en.Envelope}
	}
	if err := e.failpoint("before-put"); err != nil {
		return false, err
	}
	p := &putting{batch: batch, entries: entries, done: make(chan putResult, 1)}
	e.putting = p
	remote, device := e.opts.Remote, e.device
	go func() {
		results, err := remote.PutJournalEntries(ctx, device, entries)
		p.done <- putResult{results, err}
	}()
	return true, nil
}

// putDone is the channel the put in flight reports on (nil: none).
func (e *Engine) putDone() <-chan putResult {
	if e.putting == nil {
		return nil
	}
	return e.putting.done
}

// endPut waits for the put in flight, if any, at shutdown: its batch stays
// recorded as in flight and is reconciled at the next start.
func (e *Engine) endPut() {
	if e.putting != nil {
		<-e.putting.done
		e.putting = nil
	}
}

// finishPush records the outcome of the put in flight, as pushStep
// records its start: a failure backs the push off.
func (e *Engine) finishPush(ctx context.Context, r putResult) {
	sent, err := e.pushed(ctx, r)
	if ctx.Err() != nil {
		return
	}
	e.afterPush(sent, err)
}

// pushed records the server's reply to the put in flight.
func (e *Engine) pushed(ctx context.Context, r putResult) (sent bool, err error) {
	acct := e.opts.Account
	p := e.putting
	e.putting = nil
	if ctx.Err() != nil {
		return false, ctx.Err() // in flight: reconciled at the next start
	}
	batch, entries, results := p.batch, p.entries, r.results
	now := e.opts.Now()
	if err := r.err; err != nil {
		e.update(func(s *Status) { s.pushFailed(now, err) })
		if !definitelyNotStored(err) {
			// The server may have stored some or all rows: find out
			// before anything is sent again.
			e.needCheck = true
			e.ambiguousAt = now
			e.diedWithReply = repliedWithFailure(err)
			return false, fmt.Errorf("push %d entries: %w", len(entries), err)
		}
		if refusedWhole(err) {
			if len(entries) > 1 {
				// Something in the request makes the server refuse all
				// of it (a body over PHP's post_max_size reads as
				// "Missing uuid"): send half as many until the entry that
				// does it goes alone, and is held back by itself.
				e.batchMax = max(len(entries)/2, 1)
			} else {
				en := batch.Entries[0]
				if ferr := e.db.CompleteBatch(acct, []store.Result{e.hold(en, err.Error())}); ferr != nil {
					e.needCheck = true
					return false, ferr
				}
				return true, nil // the entry's failure, not the push's: the rest goes on
			}
		}
		if ferr := e.db.FailBatch(acct, err); ferr != nil {
			e.needCheck = true
		}
		for _, en := range batch.Entries {
			delete(e.held, en.MsgID) // sent again with the next batch, not held
		}
		return false, fmt.Errorf("push %d entries: %w", len(entries), err)
	}
	if err := e.failpoint("after-put"); err != nil {
		e.needCheck = true
		return false, err
	}
	byToken := make(map[string]store.Entry, len(batch.Entries))
	for _, en := range batch.Entries {
		byToken[en.Token] = en
	}
	res := make([]store.Result, 0, len(results))
	stored := 0
	backwards := false
	for _, r := range results {
		if !r.Stored {
			res = append(res, e.hold(byToken[r.ID], "the server did not store it (journal_id null): "+
				"a row larger than the server's database takes (MariaDB max_allowed_packet) is answered so"))
			continue
		}
		if r.JournalID <= batch.Watermark {
			backwards = true
		}
		res = append(res, store.Result{Token: r.ID, JournalID: r.JournalID})
		delete(e.held, byToken[r.ID].MsgID)
		stored++
	}
	if backwards {
		// Forget the old journal before recording the new ids, so these
		// rows count as being in the new journal and are not queued again.
		if err := e.journalWentBackwards(fmt.Sprintf("the server gave new entries ids at or below %d, an id this device had already seen", batch.Watermark)); err != nil {
			e.needCheck = true
			return false, err
		}
	}
	if err := e.db.CompleteBatch(acct, res); err != nil {
		e.needCheck = true
		return false, fmt.Errorf("record pushed entries: %w", err)
	}
	e.batchMax = min(e.batchMax*2, e.opts.BatchCount)
	e.lastActive = now
	// Others may be talking too: look soon, but not after every batch of a
	// long backlog (each poll makes the server walk this device's rows).
	e.nextPoll = earlier(e.nextPoll, now.Add(e.opts.ActivePollInterval))
	e.update(func(s *Status) {
		s.pushWorked(now)
		s.Pushed += int64(stored)
	})
	e.batchPushed(stored, len(entries))
	e.pushedSinceCompact += stored
	if stored > 0 {
		e.emit(Event{Kind: "pushed", Count: stored})
	}
	return true, nil
}

// hold records that the server refused the entry en by itself: it waits
// with its own backoff (EntryBackoff, doubling per refusal) while the
// entries behind it are sent. The first refusal is logged with what to
// do; status lists the entry until it is stored.
func (e *Engine) hold(en store.Entry, reason string) store.Result {
	prev, wasHeld := e.held[en.MsgID]
	holds := 0
	if wasHeld {
		holds = prev.holds + 1
	}
	d := min(e.opts.EntryBackoff<<min(holds, 20), e.opts.MaxEntryBackoff)
	en.Attempts++
	en.LastError = reason
	en.RetryAt = e.opts.Now().Add(d)
	if !wasHeld {
		e.log.Warn("the server refused a message; it is tried again with backoff and does not hold back the others",
			"msgid", en.MsgID, "envelope_bytes", len(en.Envelope), "reason", reason, "retry_in", d,
			"hint", "if it keeps failing, the message is larger than the server takes: ask the provider to raise its limits, or delete the message")
	}
	e.held[en.MsgID] = heldEntry{Entry: en, holds: holds}
	return store.Result{Token: en.Token, Err: reason, RetryAt: en.RetryAt}
}

// definitelyNotStored reports whether a failed put certainly stored
// nothing, so its entries can be sent again as they are. Everything else
// is ambiguous and the batch is reconciled first (store.DB.FailBatch).
func definitelyNotStored(err error) bool {
	var ae *account.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Kind {
	case account.KindAuth, account.KindRateLimited:
		return true // refused before the request reached the inserts
	case account.KindRejected:
		// The real server answers success:false only for a request it
		// refuses as a whole (Missing uuid, Missing data, Json decode
		// error), before inserting anything.
		return true
	case account.KindTransport:
		var op *net.OpError
		return errors.As(ae.Err, &op) && op.Op == "dial"
	}
	return ae.StatusCode == 400 || ae.StatusCode == 413
}

// refusedWhole reports whether the server refused a put for what the
// request held (not for who sent it or when).
func refusedWhole(err error) bool {
	var ae *account.Error
	return errors.As(err, &ae) && (ae.Kind == account.KindRejected || ae.StatusCode == 400 || ae.StatusCode == 413)
}

// repliedWithFailure reports whether a put that failed ambiguously got a
// reply from the server (a 500, a PHP or MySQL error text), as opposed to
// a timeout or a lost connection: the server then died on a row.
func repliedWithFailure(err error) bool {
	var ae *account.Error
	return errors.As(err, &ae) && (ae.Kind == account.KindServer || ae.Kind == account.KindMalformed)
}

// reconcile resolves a batch that is in flight (left by a crash or by a
// reply that was lost): this device's own rows above the batch's watermark
// are read back and matched by their exact envelope. Matched entries are
// recorded as stored; the rest stay queued and are sent again, but only
// once ReconcileGrace has passed since the batch was sent, since a server
// may still be working on a request whose reply never came. When the put
// failed with a reply from the server, the first entry not stored is the
// row the server died on: it is held back, so the rows behind it go out.
func (e *Engine) reconcile(ctx context.Context) (done bool, err error) {
	acct := e.opts.Account
	batch, ok, err := e.db.InFlight(acct)
	if err != nil || !ok {
		return err == nil, err
	}
	want := make(map[string]string, len(batch.Entries)) // envelope → token
	for _, en := range batch.Entries {
		want[en.Envelope] = en.Token
	}
	var results []store.Result
	after := batch.Watermark
	for len(want) > 0 {
		page, limit, err := e.getPage(ctx, account.JournalQuery{AfterID: after})
		if err != nil {
			return false, fmt.Errorf("reconcile the batch in flight: %w", err)
		}
		for _, row := range page.Entries {
			if !strings.EqualFold(row.UUID, e.device) {
				continue
			}
			if token, ok := want[row.Data]; ok {
				results = append(results, store.Result{Token: token, JournalID: row.ID})
				delete(want, row.Data)
			}
		}
		complete := e.pages.complete(len(page.Entries), limit)
		next := nextAfter(page, after, complete)
		if complete || next <= after {
			break
		}
		after = next
	}
	// The grace counts from the failure when this process saw one (a
	// timeout comes long after the batch was sent), else from the send.
	since := batch.Started
	if e.ambiguousAt.After(since) {
		since = e.ambiguousAt
	}
	if len(want) > 0 && e.opts.Now().Sub(since) < e.opts.ReconcileGrace {
		e.log.Info("some entries of the batch in flight are not on the server yet; waiting before sending them again",
			"found", len(results), "missing", len(want))
		e.reconcileAt = since.Add(e.opts.ReconcileGrace)
		return false, nil
	}
	if e.diedWithReply && len(want) > 0 {
		// The server answered with an error. If it stored some rows first,
		// it died on the first one it did not store (PHP with
		// Halt_On_Error = yes): hold that one back. If it stored none,
		// send fewer at a time until the entry it dies on goes alone, and
		// hold it back once it has failed alone a few times.
		for _, en := range batch.Entries {
			if _, missing := want[en.Envelope]; !missing {
				continue
			}
			switch {
			case len(results) > 0:
				results = append(results, e.hold(en, "the server failed on this entry (it stored the entries before it, then answered with an error)"))
			case len(batch.Entries) > 1:
				e.batchMax = max(len(batch.Entries)/2, 1)
			case en.Attempts >= 2:
				results = append(results, e.hold(en, "the server fails on this entry whenever it is sent, alone"))
			}
			break
		}
		e.diedWithReply = false
	}
	if err := e.db.CompleteBatch(acct, results); err != nil {
		return false, fmt.Errorf("record the reconciled batch: %w", err)
	}
	for _, en := range batch.Entries {
		if _, missing := want[en.Envelope]; !missing {
			delete(e.held, en.MsgID)
		}
	}
	stored := 0
	for _, r := range results {
		if r.JournalID > 0 {
			stored++
		}
	}
	e.log.Info("reconciled the batch that was in flight", "already_stored", stored, "to_resend", len(want))
	e.update(func(s *Status) {
		s.Pushed += int64(stored)
		s.LastPushError, s.LastPushErrorKind, s.pushFix, s.pushSince = "", "", "", time.Time{}
	})
	return true, nil
}

// firstBacklog reports whether the start-up index may decide what to push
// as it finds it: this device has indexed nothing of this store yet, has
// no batch in flight, and the journal holds no row of another device (one
// plain poll from 0 says so). Then no other device's copy is there to be
// recognised, and reading every file a second time after the catch-up
// would only cost time. A row another device puts meanwhile is applied by
// the catch-up that follows, as ever; a copy of a message SIP delivered to
// both may then be journaled twice, which changes nothing.
func (e *Engine) firstBacklog(ctx context.Context) bool {
	if e.hasIndexedFiles() || e.afterReset {
		return false
	}
	if _, inFlight, err := e.db.InFlight(e.opts.Account); err != nil || inFlight {
		return false
	}
	if c, err := e.db.Cursor(e.opts.Account); err != nil || c != 0 {
		return false
	}
	page, err := e.opts.Remote.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: e.device})
	if err != nil || len(page.Entries) > 0 {
		return false // the usual order: index, catch up, decide
	}
	e.needCheck = false // nothing in flight
	return true
}

// pump keeps one put in flight while the start-up index of a first
// backlog queues it, so the server stores a batch while the next is read
// and sealed; the index waits while the outbox holds the batch in flight
// and a full one behind it. It stops pushing on a failure, which backs
// pushing off as ever: the index then queues the rest.
func (e *Engine) pump() {
	ctx := e.pumping
	acct := e.opts.Account
	for ctx.Err() == nil {
		st, err := e.db.Stats(acct)
		if err != nil {
			return
		}
		if e.putting != nil {
			if st.OutboxDepth < 2*e.opts.BatchCount {
				select {
				case r := <-e.putting.done:
					e.finishPush(ctx, r)
					continue
				default:
					return // room for more: read on
				}
			}
			e.finishPush(ctx, <-e.putting.done) // the next batch is ready: wait for this one
			continue
		}
		if st.OutboxDepth < e.opts.BatchCount || e.needCheck || e.opts.Now().Before(e.pushRetry.until) {
			return
		}
		if e.pushStep(ctx); e.putting == nil {
			return
		}
	}
}
