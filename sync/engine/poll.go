package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
)

// maxIncomingBytes bounds a message that arrives from another device; the
// sender's max_message_bytes may be larger than ours, so this is generous.
const maxIncomingBytes = 16 << 20

// poll reads one page of other devices' entries after the cursor and
// applies it. full reports that the page was cut at the server's limit, so
// more may be waiting.
func (e *Engine) poll(ctx context.Context) (full bool, err error) {
	acct := e.opts.Account
	cursor, err := e.db.Cursor(acct)
	if err != nil {
		return false, err
	}
	// LastPoll is when the poll started, so "polled after T" means it saw
	// everything the server held at T.
	now := e.opts.Now()
	// Ask for a few ids before the cursor as well: an auto_increment id
	// can become visible after a higher one (MySQL assigns ids in insert
	// order, not commit order). Rows already held are skipped below.
	page, err := e.opts.Remote.GetJournalEntries(ctx, account.JournalQuery{ExceptUUID: e.device, AfterID: max(cursor-cursorOverlap, 0)})
	if err != nil {
		e.update(func(s *Status) { s.LastPoll, s.LastPollError = now, err.Error() })
		return false, fmt.Errorf("poll the journal: %w", err)
	}
	full = len(page.Entries) >= account.JournalPageMax
	next := nextAfter(page, cursor)
	if full && next == page.MaxID() && minTimestamp(page) == maxTimestamp(page) {
		e.log.Warn("a whole page of the journal has one timestamp; entries of that second may be missed if the server does not order them by id",
			"second", maxTimestamp(page))
	}
	entries := append([]account.JournalEntry(nil), page.Entries...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID < entries[j].ID })

	// Decide every row first, then write all the files of the page in one
	// batch (a few syncs instead of two per file), then commit.
	pg := &pagePlan{files: map[string]*store.FileRecord{}}
	for _, row := range entries {
		if strings.EqualFold(row.UUID, e.device) {
			continue // our own row: never applied again
		}
		e.plan(pg, row, row.ID > cursor)
	}
	results := msgdir.Apply(e.opts.Store, pg.ops)
	var applied []store.Applied
	var writeErr error
	for _, pl := range pg.rows {
		if pl.op >= 0 {
			r := results[pl.op]
			if errors.Is(r.Err, msgdir.ErrUnsafePath) {
				e.skip(pl.a.JournalID, r.Err)
				continue
			} else if r.Err != nil {
				// Nothing is lost: the cursor stops before this row, and
				// it is applied again once writing works (disk full, a
				// permission fixed).
				next = min(next, pl.a.JournalID-1)
				writeErr = fmt.Errorf("write a message from another device to %s: %w", pg.ops[pl.op].Rel, r.Err)
				break
			}
			if r.Info != nil {
				pl.a.Size, pl.a.MTime = r.Info.Size(), r.Info.ModTime()
			}
		}
		applied = append(applied, pl.a)
	}
	received := len(applied)
	next = max(next, cursor)
	if err := e.failpoint("before-apply-commit"); err != nil {
		return false, err
	}
	if len(applied) > 0 || next != cursor { // an empty poll writes nothing
		if err := e.db.ApplyRemote(acct, next, applied); err != nil {
			return false, fmt.Errorf("record applied entries: %w", err)
		}
	}
	e.update(func(s *Status) {
		s.LastPoll, s.LastPollError = now, ""
		s.Received += int64(received)
	})
	if received > 0 {
		e.lastActive = now
		e.emit(Event{Kind: "received", Count: received})
	}
	if writeErr != nil {
		return false, writeErr
	}
	return full, nil
}

// cursorOverlap is how many ids before the cursor each poll reads again.
const cursorOverlap = 100

// nextAfter is the after_id for the page that follows page. The real
// server orders a page by a one-second timestamp and cuts it at 5000 rows,
// and rows of the same second come in no defined order. So when a page is
// full, the rows of its last second may be only some of that second's rows:
// the next page starts before that second (it is read again, which is
// harmless: versions already held are skipped). Only when a full page is a
// single second is there no other way forward than its highest id.
func nextAfter(page *account.JournalPage, cursor int64) int64 {
	maxID := max(cursor, page.MaxID())
	if len(page.Entries) < account.JournalPageMax {
		return maxID
	}
	last := maxTimestamp(page)
	next := cursor
	for _, row := range page.Entries {
		if row.Timestamp < last && row.ID > next {
			next = row.ID
		}
	}
	if next == cursor {
		return maxID
	}
	return next
}

func maxTimestamp(page *account.JournalPage) string {
	m := ""
	for _, row := range page.Entries {
		m = max(m, row.Timestamp)
	}
	return m
}

func minTimestamp(page *account.JournalPage) string {
	if len(page.Entries) == 0 {
		return ""
	}
	m := page.Entries[0].Timestamp
	for _, row := range page.Entries {
		m = min(m, row.Timestamp)
	}
	return m
}

// pagePlan is what a page will change: the file operations, in journal
// order, and for each applied row what to record. files overlays the file
// index with the page's own changes (nil: removed), so that a page holding
// several versions of one message applies them in turn.
type pagePlan struct {
	ops   []msgdir.Op
	rows  []plannedRow
	files map[string]*store.FileRecord // msgid → its file after the rows planned so far
}

type plannedRow struct {
	a  store.Applied
	op int // index into ops, or -1
}

func (pg *pagePlan) add(a store.Applied, op *msgdir.Op) {
	idx := -1
	if op != nil {
		pg.ops = append(pg.ops, *op)
		idx = len(pg.ops) - 1
	}
	pg.rows = append(pg.rows, plannedRow{a: a, op: idx})
}

// fileOf is the file that holds msgid, as the page has left it so far.
func (e *Engine) fileOf(pg *pagePlan, msgid string) (store.FileRecord, bool, error) {
	if f, ok := pg.files[msgid]; ok {
		if f == nil {
			return store.FileRecord{}, false, nil
		}
		return *f, true, nil
	}
	return e.db.FileByMsgID(e.opts.Account, msgid)
}

// plan opens one row and, if it is newer than the version held, plans
// bringing the store to it.
func (e *Engine) plan(pg *pagePlan, row account.JournalEntry, fresh bool) {
	acct := e.opts.Account
	en, err := e.opts.Keyring.Open(row.Data, acct)
	if err != nil {
		if fresh { // rows of the overlap were counted the first time
			e.skip(row.ID, err)
		}
		return
	}
	_, inPage := pg.files[en.MsgID]
	var held store.Version
	var hasHeld bool
	if !inPage {
		held, hasHeld, err = e.db.Version(acct, en.MsgID)
		if err != nil || hasHeld && held.JournalID >= row.ID {
			return // a later version is held already
		}
	}
	// A local version that is queued will be put after this row, so it
	// wins: leave the file alone. The same holds for a local change that is
	// not queued yet: one the watcher has not reported, a file still being
	// written or refused, or (during the catch-up at start) an edit or a
	// delete made while chatsync was stopped, which decideAll queues next.
	cur, hasFile, err := e.fileOf(pg, en.MsgID)
	if err != nil {
		return
	}
	if hasFile && !inPage {
		if _, waiting := e.recheck[cur.Path]; waiting {
			return
		}
		if _, refused := e.rejected[cur.Path]; refused {
			return
		}
		fi, err := os.Lstat(e.abs(cur.Path))
		switch {
		case err != nil:
			if !e.started && hasHeld && !held.Deleted {
				return // deleted while stopped
			}
		case fi.Size() != cur.Size || !fi.ModTime().Equal(cur.MTime):
			if !e.started {
				return // changed since the start-up index
			}
			e.handleFile(cur.Path, fi, true, false)
			e.flush()
			cur, hasFile, _ = e.db.FileByMsgID(acct, en.MsgID)
		case !e.started && hasHeld && !held.Deleted && held.Hash != cur.Hash:
			return // edited while stopped: the start-up index has the edit
		}
	}
	if _, pending, err := e.db.Pending(acct, en.MsgID); err != nil || pending {
		return
	}

	switch en.Op {
	case seal.OpDelete:
		a := store.Applied{MsgID: en.MsgID, JournalID: row.ID, Deleted: true}
		if hasFile && e.opts.ReplicateDeletes {
			a.Path = cur.Path
			pg.files[en.MsgID] = nil
			pg.add(a, &msgdir.Op{Rel: cur.Path, Remove: true})
			return
		}
		// No file here, or this device keeps what others delete: the
		// tombstone is recorded, the file (if any) stays.
		a.Keep = hasFile
		pg.add(a, nil)
	case seal.OpPut:
		msg, err := msgdir.Parse(en.Message, maxIncomingBytes)
		if err != nil || msg.MsgID != en.MsgID {
			e.skip(row.ID, fmt.Errorf("%w: the message inside is not valid", seal.ErrBadEntry))
			return
		}
		a := store.Applied{MsgID: en.MsgID, JournalID: row.ID, Hash: msg.Hash}
		if hasFile && cur.Hash == msg.Hash {
			// The same content is here already (SIP delivered it to
			// this device too): no rewrite.
			a.Path, a.Size, a.MTime = cur.Path, cur.Size, cur.MTime
			pg.add(a, nil)
			return
		}
		rel := path.Clean(strings.ReplaceAll(msgdir.IncomingPath(msg), `\`, "/"))
		if hasFile {
			rel = cur.Path
		} else if taken, err := e.takenByAnother(rel, en.MsgID); err == nil && taken {
			rel = strings.TrimSuffix(rel, ".json") + "-" + msg.Hash[:8] + ".json"
		}
		a.Path = rel
		pg.files[en.MsgID] = &store.FileRecord{Path: rel, MsgID: en.MsgID, Hash: msg.Hash}
		pg.add(a, &msgdir.Op{Rel: rel, Data: append(append([]byte(nil), msg.Canonical...), '\n')})
	}
}

// takenByAnother reports whether a file that is not the message msgid
// already exists at rel.
func (e *Engine) takenByAnother(rel, msgid string) (bool, error) {
	data, err := os.ReadFile(e.abs(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	msg, err := msgdir.Parse(data, e.opts.MaxMessageBytes)
	return err != nil || msg.MsgID != msgid, nil
}

// skip counts a row that cannot be applied, by reason.
func (e *Engine) skip(id int64, err error) {
	reason := "invalid entry"
	switch {
	case errors.Is(err, seal.ErrUnknownKey):
		reason = "unknown key (import the key of the device that wrote it)"
	case errors.Is(err, seal.ErrAuth):
		reason = "does not decrypt (wrong key or tampered)"
	case errors.Is(err, seal.ErrForeignAccount):
		reason = "belongs to another account"
	case errors.Is(err, msgdir.ErrUnsafePath):
		reason = "its file would pass through a symbolic link (move the link out of the store)"
	case errors.Is(err, seal.ErrBadFormat):
		reason = "not a chatsync entry"
	}
	e.log.Warn("skipped a journal entry", "journal_id", id, "reason", reason)
	e.update(func(s *Status) { s.Skipped[reason]++ })
}

// probe checks, once per poll interval, that the server still holds a row
// this device has seen (the anchor: the newest row it knows, by id and
// content). A journal that lost it was reset or restored from a backup; its
// ids start again and may already have passed this device's cursor, where
// polling alone would never notice.
func (e *Engine) probe(ctx context.Context) error {
	now := e.opts.Now()
	if now.Sub(e.lastProbe) < e.opts.PollInterval {
		return nil
	}
	acct := e.opts.Account
	st, err := e.db.Stats(acct)
	if err != nil || st.Highwater == 0 {
		return err
	}
	anchor, ok, err := e.db.Anchor(acct)
	if err != nil {
		return err
	}
	// Check the anchor row; but when it lags a whole page or more behind
	// the newest row (after a large backlog), checking it would download a
	// full page at every probe: anchor at the newest row instead.
	id := st.Highwater
	if ok && anchor.ID <= st.Highwater && st.Highwater-anchor.ID < account.JournalPageMax {
		id = anchor.ID
	}
	page, err := e.opts.Remote.GetJournalEntries(ctx, account.JournalQuery{AfterID: id - 1})
	if err != nil {
		return fmt.Errorf("check the journal: %w", err)
	}
	e.lastProbe = now
	byID := make(map[int64]*account.JournalEntry, len(page.Entries))
	for i := range page.Entries {
		byID[page.Entries[i].ID] = &page.Entries[i]
	}
	row := byID[id]
	switch {
	case row == nil:
		return e.journalWentBackwards(fmt.Sprintf("journal entry %d, which this device has seen, is no longer on the server", id))
	case ok && anchor.ID == id && anchor.Sig != rowSig(row):
		return e.journalWentBackwards(fmt.Sprintf("journal entry %d is not the entry this device saw under that id", id))
	}
	// The anchor is fine; move it towards the newest row known: to that
	// row if this page holds it, else as far as this page reaches.
	if !ok || anchor.ID != st.Highwater {
		next := byID[st.Highwater]
		if next == nil {
			for i := range page.Entries {
				if r := &page.Entries[i]; r.ID <= st.Highwater && (next == nil || r.ID > next.ID) {
					next = r
				}
			}
		}
		if next != nil && (!ok || next.ID != anchor.ID) {
			return e.db.SetAnchor(acct, store.Anchor{ID: next.ID, Sig: rowSig(next)})
		}
	}
	return nil
}

// rowSig identifies a journal row by what the server cannot give another
// row by accident: the writer, the time and the data.
func rowSig(row *account.JournalEntry) string {
	return msgdir.HashBytes([]byte(strings.ToLower(row.UUID) + "\x00" + row.Timestamp + "\x00" + row.Data))[:32]
}

// journalWentBackwards handles a server that lost journal entries. The
// account's state forgets the old journal (cursor 0, journal ids dropped);
// then the engine starts over as at start-up: it catches up with the new
// journal first, so versions other devices already put back are taken
// rather than overwritten, and only then queues what the new journal lacks
// (requeueUnpushed). Nothing local is deleted.
func (e *Engine) journalWentBackwards(why string) error {
	msg := "the server's journal went backwards (reset or restored from a backup): " + why + "; catching up and pushing again what it lacks"
	e.log.Error(msg)
	if err := e.db.ResetAccount(e.opts.Account); err != nil {
		return fmt.Errorf("reset the account state: %w", err)
	}
	e.started = false
	e.newAtStart = map[string]bool{}
	now := e.opts.Now()
	e.update(func(s *Status) { s.ResetAt = now })
	e.emit(Event{Kind: "reset", Message: msg})
	return nil
}

// requeueUnpushed queues every held message that the journal does not
// have (after a reset) and that has no queued version. It runs at every
// start, so a crash in the middle of it only delays it: versions of a
// healthy journal all have journal ids, and then it queues nothing.
func (e *Engine) requeueUnpushed() error {
	acct := e.opts.Account
	var batch []store.Push
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := e.db.EnqueueMany(acct, batch)
		batch = batch[:0]
		return err
	}
	for u, err := range e.db.Unpushed(acct) {
		if err != nil {
			return err
		}
		p := store.Push{MsgID: u.MsgID, Op: store.OpDelete, Hash: u.Hash}
		ent := seal.Entry{Op: seal.OpDelete, MsgID: u.MsgID, Account: acct, Device: e.device, Time: e.opts.Now()}
		if !u.Deleted {
			if u.Path == "" {
				continue
			}
			data, err := os.ReadFile(e.abs(u.Path))
			if err != nil {
				continue // gone: the scan takes care of it
			}
			m, err := msgdir.Parse(data, e.opts.MaxMessageBytes)
			if err != nil || m.MsgID != u.MsgID {
				continue
			}
			p.Op, p.Hash = store.OpPut, m.Hash
			ent.Op, ent.Message = seal.OpPut, m.Canonical
		}
		env, err := e.opts.Keyring.Seal(ent)
		if err != nil {
			return err
		}
		p.Envelope = env
		batch = append(batch, p)
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
