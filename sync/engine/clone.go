package engine

// Two devices with one device id (a copied state dir, a cloned machine, a
// restored backup) never see each other's rows: the server's except_uuid
// hides them. Each device therefore looks, with the hourly probe, at the
// rows written under its own id since the last look, without except_uuid;
// a row there that it did not put (not in its record of stored rows, and
// not the exact version it sealed) was written by another device with its
// id. The device then takes a new id of its own and reads the journal
// again from before the first such row, under the new id, so it gets what
// the other wrote; what it holds already is recognised by journal id and
// changes nothing. The other device, seeing this one's rows under the old
// id, does the same, so both end with ids of their own and one history.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
)

// checkClones reads the rows after the own-check mark and heals a shared
// device id. It reports whether it took a new id (a poll is due then).
func (e *Engine) checkClones(ctx context.Context) (bool, error) {
	acct := e.opts.Account
	if !e.caughtUp {
		return false, nil // a reset the probe just found comes first
	}
	if _, inFlight, err := e.db.InFlight(acct); err != nil || inFlight {
		return false, err // its rows are this device's, not yet recorded
	}
	st, err := e.db.Stats(acct)
	if err != nil || st.OutboxDepth > 0 {
		// Queued entries are sealed under the current id: sent under a
		// new one, the other device would take them for its own, posted
		// again. The check waits for the outbox to be sent.
		return false, err
	}
	mark, ok, err := e.db.OwnCheck(acct)
	if err != nil {
		return false, err
	}
	if !ok {
		// The first check starts after what this device has read: rows
		// before it were taken as this device's when they were read. Not
		// after its own newest row: another device under its id may have
		// written since the cursor, and its polls never showed those rows.
		cursor, err := e.db.Cursor(acct)
		if err != nil {
			return false, err
		}
		mark = cursor
		if err := e.db.SetOwnCheck(acct, mark); err != nil {
			return false, err
		}
	}
	page, limit, err := e.getPage(ctx, account.JournalQuery{AfterID: mark})
	if err != nil {
		return false, fmt.Errorf("check for another device with this device's id: %w", err)
	}
	var mine []account.JournalEntry
	var ids []int64
	for _, row := range page.Entries {
		if row.ID > mark && strings.EqualFold(row.UUID, e.device) {
			mine = append(mine, row)
			ids = append(ids, row.ID)
		}
	}
	next := max(nextAfter(page, mark, e.pages.complete(len(page.Entries), limit)), mark)
	if len(mine) == 0 {
		return false, e.db.SetOwnCheck(acct, next)
	}
	pushed, err := e.db.Pushed(acct, ids)
	if err != nil {
		return false, err
	}
	// A row this device sent twice (a lost reply, not found within the
	// reconciliation grace) holds the same data as the copy it stored.
	sentData := map[string]bool{}
	for _, row := range mine {
		if pushed[row.ID] {
			sentData[row.Data] = true
		}
	}
	var foreign []account.JournalEntry
	for _, row := range mine {
		if !pushed[row.ID] && !sentData[row.Data] && !e.sealedHere(row) {
			foreign = append(foreign, row)
		}
	}
	if len(foreign) == 0 {
		return false, e.db.SetOwnCheck(acct, next)
	}
	return true, e.takeNewDevice(foreign, next)
}

// sealedHere reports whether row is the version this device holds of its
// message, as this device sealed it (a row stored while this device did
// not learn its id, such as one found again after a reset).
func (e *Engine) sealedHere(row account.JournalEntry) bool {
	en, err := e.opts.Keyring.Open(row.Data, e.opts.Account)
	if err != nil {
		return false
	}
	if en.Op == seal.OpReport {
		// A report of ours whose journal id was not recorded (its reply
		// was lost): its time is one this device recorded.
		last, _, err := e.db.SentReport(e.opts.Account)
		return err == nil && slices.ContainsFunc(last.Times, en.Time.Equal)
	}
	held, ok, err := e.db.Version(e.opts.Account, en.MsgID)
	return err == nil && ok && held.Own && held.Time.Equal(en.Time)
}

// takeNewDevice gives the account a new device id after another device
// was found writing under this one's (foreign: its rows), and rewinds the
// cursor to read what that device wrote.
func (e *Engine) takeNewDevice(foreign []account.JournalEntry, checked int64) error {
	acct := e.opts.Account
	old := e.device
	c := store.Clone{At: e.opts.Now(), FormerID: old, Rows: len(foreign)}
	// The journal is read again from the start: rows the other device wrote
	// before this check first looked were hidden as well; what is held
	// already is recognised by journal id.
	id, err := e.db.NewAccountDevice(acct, c, 0)
	if err != nil {
		return err
	}
	if err := e.db.SetOwnCheck(acct, checked); err != nil {
		return err
	}
	e.device = id
	e.formerIDs = append(e.formerIDs, old)
	e.update(func(s *Status) { s.DeviceID, s.Clone = id, cloneNotice(c) })
	e.log.Warn("another device writes under this device's id (a copied state dir, a cloned machine or a restored backup); this device takes a new id and reads what the other wrote",
		"former_device", old, "device", id, "rows", len(foreign))
	return nil
}

// ownDevice reports whether id is this account's device id, or one it
// wrote under before.
func (e *Engine) ownDevice(id string) bool {
	if strings.EqualFold(id, e.device) {
		return true
	}
	for _, f := range e.formerIDs {
		if strings.EqualFold(id, f) {
			return true
		}
	}
	return false
}

// cloneNotice is what status says about a device id taken after a clone.
func cloneNotice(c store.Clone) string {
	return fmt.Sprintf("another device wrote %d row(s) under this device's former id %s (a copied state dir, a cloned machine or a restored backup); on %s this device took a new id of its own and read what the other wrote",
		c.Rows, c.FormerID, c.At.UTC().Format("2006-01-02 15:04 UTC"))
}
