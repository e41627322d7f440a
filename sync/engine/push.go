package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
)

// push sends the oldest outbox entries as one batch.
func (e *Engine) push(ctx context.Context) error {
	acct := e.opts.Account
	batch, err := e.db.NextBatch(acct, e.opts.BatchCount, e.opts.BatchBytes)
	if errors.Is(err, store.ErrBatchInFlight) {
		e.needCheck = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the outbox: %w", err)
	}
	if len(batch.Entries) == 0 {
		return nil
	}
	entries := make([]account.PutEntry, len(batch.Entries))
	for i, en := range batch.Entries {
		entries[i] = account.PutEntry{ID: en.Token, Data: en.Envelope}
	}
	if err := e.failpoint("before-put"); err != nil {
		return err
	}
	results, err := e.opts.Remote.PutJournalEntries(ctx, e.device, entries)
	now := e.opts.Now()
	if err != nil {
		e.update(func(s *Status) { s.LastPush, s.LastPushError = now, err.Error() })
		if definitelyNotStored(err) {
			if ferr := e.db.FailBatch(acct, err); ferr != nil {
				e.needCheck = true
			}
		} else {
			// The server may have stored some or all rows: find out
			// before anything is sent again.
			e.needCheck = true
			e.ambiguousAt = e.opts.Now()
		}
		return fmt.Errorf("push %d entries: %w", len(entries), err)
	}
	if err := e.failpoint("after-put"); err != nil {
		e.needCheck = true
		return err
	}
	res := make([]store.Result, 0, len(results))
	stored := 0
	backwards := false
	for _, r := range results {
		if !r.Stored {
			res = append(res, store.Result{Token: r.ID, Err: "the server did not store this entry (journal_id null)"})
			continue
		}
		if r.JournalID <= batch.Watermark {
			backwards = true
		}
		res = append(res, store.Result{Token: r.ID, JournalID: r.JournalID})
		stored++
	}
	if backwards {
		// Forget the old journal before recording the new ids, so these
		// rows count as being in the new journal and are not queued again.
		if err := e.journalWentBackwards(fmt.Sprintf("the server gave new entries ids at or below %d, an id this device had already seen", batch.Watermark)); err != nil {
			e.needCheck = true
			return err
		}
	}
	if err := e.db.CompleteBatch(acct, res); err != nil {
		e.needCheck = true
		return fmt.Errorf("record pushed entries: %w", err)
	}
	e.lastActive = now
	// Others may be talking too: look soon, but not after every batch of a
	// long backlog (each poll makes the server walk this device's rows).
	e.nextPoll = earlier(e.nextPoll, now.Add(e.opts.ActivePollInterval))
	e.update(func(s *Status) {
		s.LastPush, s.LastPushError = now, ""
		s.Pushed += int64(stored)
	})
	if stored > 0 {
		e.emit(Event{Kind: "pushed", Count: stored})
	}
	if stored == 0 {
		// Sending the same entries again at once would loop: back off.
		return fmt.Errorf("push %d entries: the server stored none of them (journal_id null); they stay queued", len(entries))
	}
	if stored < len(entries) {
		e.log.Warn("the server did not store some entries; they stay queued", "stored", stored, "sent", len(entries))
	}
	return nil
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

// reconcile resolves a batch that is in flight (left by a crash or by a
// reply that was lost): this device's own rows above the batch's watermark
// are read back and matched by their exact envelope. Matched entries are
// recorded as stored; the rest stay queued and are sent again, but only
// once ReconcileGrace has passed since the batch was sent, since a server
// may still be working on a request whose reply never came.
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
		page, err := e.opts.Remote.GetJournalEntries(ctx, account.JournalQuery{AfterID: after})
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
		if len(page.Entries) < account.JournalPageMax {
			break
		}
		after = nextAfter(page, after)
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
		e.netRetryAt = since.Add(e.opts.ReconcileGrace)
		return false, nil
	}
	if err := e.db.CompleteBatch(acct, results); err != nil {
		return false, fmt.Errorf("record the reconciled batch: %w", err)
	}
	e.log.Info("reconciled the batch that was in flight", "already_stored", len(results), "to_resend", len(want))
	e.update(func(s *Status) {
		s.Pushed += int64(len(results))
		s.LastPushError = ""
	})
	return true, nil
}
