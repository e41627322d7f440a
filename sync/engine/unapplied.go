package engine

import (
	"fmt"
	"maps"
	"slices"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
)

// retryUnapplied tries again the rows kept because they could not be
// applied for a reason that may be gone now (a key imported since, a
// symbolic link moved away, chatsync upgraded). It runs at start, after a
// rescan and on `chatsync sync`; a key reload restarts the engine. A row
// that is now superseded by a later version, or fails for good, is
// dropped; one that still cannot be applied stays.
func (e *Engine) retryUnapplied() error {
	acct := e.opts.Account
	rows, err := e.db.UnappliedRows(acct)
	if err != nil || len(rows) == 0 {
		return err
	}
	pg := &pagePlan{files: map[string]*store.FileRecord{}}
	entries := make([]account.JournalEntry, len(rows))
	for i, u := range rows {
		entries[i] = account.JournalEntry{ID: u.JournalID, UUID: u.UUID, Timestamp: u.Timestamp, Data: u.Data}
	}
	if err := e.planPage(pg, entries); err != nil {
		return err
	}
	applied, failed, werr := e.writePage(pg)
	for _, pl := range failed {
		// Not written (a full disk): it stays kept.
		pg.keep = append(pg.keep, store.Unapplied{JournalID: pl.row.ID, Reason: "could not be written: " + werr.Error(),
			UUID: pl.row.UUID, Timestamp: pl.row.Timestamp, Data: pl.row.Data})
	}
	if err := e.db.RetriedUnapplied(acct, applied, pg.keep); err != nil {
		return err
	}
	if err := e.db.NotePeers(acct, pg.pagePeers()); err != nil {
		return err
	}
	if len(applied) > 0 {
		e.log.Info("applied journal entries kept from before", "applied", len(applied), "still_waiting", len(pg.keep))
		e.update(func(s *Status) { s.Received += int64(len(applied)) })
		e.emit(Event{Kind: "received", Count: len(applied)})
	}
	e.publishUnapplied()
	return nil
}

// retryKept tries the kept rows again, if there are any and the start-up
// catch-up is done.
func (e *Engine) retryKept() {
	e.mu.Lock()
	n := e.status.Unapplied
	e.mu.Unlock()
	if n == 0 || !e.started {
		return
	}
	if err := e.retryUnapplied(); err != nil {
		e.log.Error("cannot try the kept journal entries again", "err", err)
	}
}

// publishUnapplied shows the kept rows in the status: how many, why, and
// which keys are missing.
func (e *Engine) publishUnapplied() {
	rows, err := e.db.UnappliedRows(e.opts.Account)
	if err != nil {
		return
	}
	reasons := map[string]int{}
	keys := map[string]bool{}
	for _, u := range rows {
		reasons[u.Reason]++
		if u.KeyID != "" {
			keys[u.KeyID] = true
		}
	}
	var hint string
	if len(keys) > 0 {
		hint = fmt.Sprintf("entries sealed under key(s) %v, which this device does not have: on the device that wrote them run `chatsync key export`, "+
			"then here `chatsync key import` with the line it prints; do not generate a new key here, it cannot read them", slices.Sorted(maps.Keys(keys)))
	}
	e.update(func(s *Status) {
		s.Unapplied, s.UnappliedReasons, s.MissingKeys, s.UnappliedHint = len(rows), reasons, slices.Sorted(maps.Keys(keys)), hint
	})
}
