package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
)

// poll reads the next page of other devices' entries after the cursor and
// applies it. more reports that the page may have been cut by the server,
// so more may be waiting; the journal is read when a page is not.
func (e *Engine) poll(ctx context.Context) (more bool, err error) {
	q, err := e.pollQuery()
	if err != nil {
		return false, err
	}
	// LastPoll is when the poll started, so "polled after T" means it saw
	// everything the server held at T.
	now := e.opts.Now()
	page, limit, err := e.getPage(ctx, q)
	if err != nil {
		e.update(func(s *Status) { s.pollFailed(now, err) })
		return false, fmt.Errorf("poll the journal: %w", err)
	}
	return e.applyPage(ctx, q, page, limit, now)
}

// pollQuery is the query of the next poll: other devices' rows after the
// cursor.
func (e *Engine) pollQuery() (account.JournalQuery, error) {
	cursor, err := e.db.Cursor(e.opts.Account)
	if err != nil {
		return account.JournalQuery{}, err
	}
	e.cursor = cursor
	q := account.JournalQuery{ExceptUUID: e.device, AfterID: cursor}
	if !e.caughtUp && e.afterReset {
		// After a reset, this device's own rows that the journal still
		// holds are read too, so that only what it lost is pushed again.
		q.ExceptUUID = ""
	}
	return q, nil
}

// applyPage applies a page read with q (asked for with limit) in a poll
// that started at now.
func (e *Engine) applyPage(ctx context.Context, q account.JournalQuery, page *account.JournalPage, limit int, now time.Time) (more bool, err error) {
	acct := e.opts.Account
	cursor := q.AfterID
	complete := e.pages.complete(len(page.Entries), limit)
	next := nextAfter(page, cursor, complete)
	entries := make([]account.JournalEntry, 0, len(page.Entries))
	var own []account.JournalEntry
	for _, row := range page.Entries {
		switch {
		case row.ID <= cursor:
		case !strings.EqualFold(row.UUID, e.device):
			entries = append(entries, row)
		case q.ExceptUUID == "":
			own = append(own, row) // our own rows are never applied again, only recognised
		}
	}
	if len(entries) == 0 && len(own) == 0 && len(page.Entries) > 0 && next <= cursor {
		// The same rows again: the server ignores after_id (the historical
		// Mongo backend did). Polling again at once would loop.
		e.update(func(s *Status) { s.pollFailed(now, errIgnoresAfterID) })
		return false, errIgnoresAfterID
	}
	if len(entries) > 0 && !e.readingOn && (e.pages.limit >= 0 || !e.started) {
		// New rows after a complete read: the newest row seen before them
		// must still be there, or the journal was restored from a backup
		// and these rows may have taken the ids of lost ones, ids this
		// device has read past. Where the server does not honour limit
		// (the real one), the check would read the new rows twice: it is
		// made at start only (a device that was off while the server was
		// restored), and the hourly probe does the rest.
		if e.journalLostNewest(ctx) {
			return true, nil // start over: catch up with the new journal
		}
	}
	e.readingOn = !complete
	if e.cutSecond.rows > 0 && slices.ContainsFunc(page.Entries, e.cutSecond.missed) {
		// The page before this one was cut within one second, and this
		// one holds a row of that second it did not, with a lower id: the
		// server does not page by id. Said at warn once a run, not at
		// every page of a catch-up.
		level := slog.LevelWarn
		if e.prog.warnedCut {
			level = slog.LevelDebug
		}
		e.prog.warnedCut = true
		e.log.Log(ctx, level, "a page of the journal was cut within one second; entries of that second are missed if the server does not order them by id",
			"second", e.cutSecond.at, "rows", e.cutSecond.rows)
	}
	e.cutSecond.rows = 0
	// A server that holds polls is chatsync-server, which pages in id
	// order: nothing of a second is lost at a page's edge.
	if !complete && page.Waited == 0 && len(page.Entries) > 1 && minTimestamp(page) == maxTimestamp(page) {
		e.cutSecond.at, e.cutSecond.rows, e.cutSecond.maxID = maxTimestamp(page), len(page.Entries), page.MaxID()
		e.cutSecond.ids = map[int64]bool{}
		for _, r := range page.Entries {
			e.cutSecond.ids[r.ID] = true
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID < entries[j].ID })

	if len(entries) > 0 && e.store.Stale() {
		e.scan("", e.decides()) // what the client changed a moment ago wins
	}
	// Decide every row first, then write all the files of the page in one
	// batch (a few syncs instead of two per file), then commit.
	pg := &pagePlan{files: map[string]*store.FileRecord{}}
	if err := e.planPage(pg, entries); err != nil {
		return false, err
	}
	for _, row := range own {
		e.recogniseOwn(pg, row)
	}
	applied, failed, writeErr := e.writePage(pg)
	if len(failed) > 0 {
		// Nothing is lost: the cursor stops before the first row not
		// written, and it is applied again once writing works (disk full,
		// a permission fixed, the client's lock gone).
		next = min(next, failed[0].a.JournalID-1)
	}
	e.seenMax = max(e.seenMax, page.MaxID())
	received := len(applied)
	next = max(next, cursor)
	if err := e.failpoint("before-apply-commit"); err != nil {
		return false, err
	}
	rec := store.Page{Cursor: next, Applied: applied, Keep: pg.keep, Peers: pg.pagePeers()}
	if writeErr == nil && len(entries) > 0 {
		// The newest row read is the one the next poll with new rows
		// checks first, and the anchor at the next probe, once the probe
		// has found the current one, and this one, still there.
		rec.Newest = new(e.anchorOf(&entries[len(entries)-1]))
	}
	if len(applied) > 0 || next != cursor || rec.Newest != nil || len(rec.Peers) > 0 { // an empty poll writes nothing
		if err := e.db.ApplyPage(acct, rec); err != nil {
			return false, fmt.Errorf("record applied entries: %w", err)
		}
		e.cursor = next
	}
	if len(pg.keep) > 0 {
		e.publishUnapplied()
	}
	e.update(func(s *Status) {
		if writeErr != nil {
			s.pollFailed(now, writeErr)
		} else {
			s.pollWorked(now)
		}
		s.Received += int64(received)
	})
	e.pageRead(now, len(page.Entries), received)
	if received > 0 {
		e.lastActive = now
		e.emit(Event{Kind: "received", Count: received})
	}
	if writeErr != nil {
		return false, writeErr
	}
	return !complete, nil
}

// errIgnoresAfterID is a page that holds only rows this device has read.
var errIgnoresAfterID = errors.New("the server sent only journal entries this device has already read: it ignores after_id " +
	"(as the old Mongo backend of the SIP Account API did); new entries arrive, with backoff, only while the journal fits in one page: ask the provider to use the MySQL journal")

// pager holds what the engine has learnt of how the server cuts journal
// pages. A server does not say whether a page is the last one, and its cap
// is not always the real server's 5000 rows; a server that honours limit
// can be asked for fewer rows when they are large.
type pager struct {
	// longest is the longest page the server has sent: its cap is at
	// least that, so a shorter page was not cut.
	longest int
	// limit is whether the server honours get_journal_entries' limit:
	// 0 unknown, 1 yes, -1 no (the real server answers 0 < limit < 5000
	// with no rows). It is learnt when the server fails on a page.
	limit int
	// rows is the page size asked for when the server honours limit.
	rows int
}

// complete reports whether a page of n rows, asked for with limit (0:
// none), is certainly the last one, and notes its length.
func (p *pager) complete(n, limit int) bool {
	last := n == 0 || n < p.longest && (limit == 0 || n < limit)
	p.longest = max(p.longest, n)
	return last
}

// fit sizes the next page of a server that honours limit: as many rows as
// make about pageBytes, by the size of the rows just read.
func (p *pager) fit(page *account.JournalPage, pageBytes int) {
	if p.limit <= 0 || len(page.Entries) == 0 {
		return
	}
	size := 0
	for _, row := range page.Entries {
		size += len(row.Data) + rowOverhead
	}
	p.rows = min(max(pageBytes/max(size/len(page.Entries), 1), 1), account.JournalPageMax)
}

// rowOverhead is about what a row costs in a page besides its data: the
// id, timestamp, account, uuid and ip_address with their keys.
const rowOverhead = 200

// getPage reads one page of the journal. When the server fails to build it
// (an HTTP 500 or an empty reply: the real server builds a page whole in
// PHP memory), it asks for fewer rows if the server honours limit, and
// otherwise returns an error that says what is happening and what the
// provider can do. It returns the limit the page was asked with.
func (e *Engine) getPage(ctx context.Context, q account.JournalQuery) (*account.JournalPage, int, error) {
	if e.pages.limit > 0 {
		q.Limit = e.pages.rows
	}
	for {
		page, err := e.opts.Remote.GetJournalEntries(ctx, q)
		if err == nil {
			if q.Limit > 0 && len(page.Entries) > q.Limit {
				e.pages.limit, q.Limit = -1, 0 // it ignores limit after all
			}
			e.pages.fit(page, e.opts.PageBytes)
			return page, q.Limit, nil
		}
		if !pageFailed(err) || ctx.Err() != nil {
			return nil, q.Limit, err
		}
		if e.pages.limit == 0 {
			e.learnLimit(ctx, q) // may not tell yet: asked again next time
		}
		if e.pages.limit <= 0 || q.Limit == 1 {
			return nil, q.Limit, &pageTooLargeError{after: q.AfterID, limit: q.Limit, err: err}
		}
		e.pages.rows = max(min(q.Limit, e.pages.rows)/2, 1)
		if q.Limit == 0 {
			e.pages.rows = account.JournalPageMax / 2
		}
		e.log.Info("the server failed to send a page of the journal; asking for fewer rows", "rows", e.pages.rows)
		q.Limit = e.pages.rows
	}
}

// learnLimit finds out whether the server honours limit, by asking for
// one row where a row is known to be: the anchor (or this device's newest
// row). The real server sends none (its limit bug). With no known row, one
// row after the cursor tells only a yes.
func (e *Engine) learnLimit(ctx context.Context, q account.JournalQuery) {
	one := q
	one.Limit = 1
	known := false
	if anchor, ok, err := e.db.Anchor(e.opts.Account); err == nil && ok {
		one.AfterID, one.ExceptUUID, known = anchor.ID-1, "", true
		if anchor.Theirs {
			one.ExceptUUID = e.device
		}
	}
	page, err := e.opts.Remote.GetJournalEntries(ctx, one)
	switch {
	case err != nil:
	case len(page.Entries) == 1:
		e.pages.limit, e.pages.rows = 1, account.JournalPageMax
	case len(page.Entries) == 0 && known:
		e.pages.limit = -1
	}
}

// pageFailed reports whether err is the server failing to produce a page
// (HTTP 5xx, an empty reply, a PHP fatal error), not a refusal or a network
// problem.
func pageFailed(err error) bool {
	var ae *account.Error
	// A page PHP cannot build is a 500 or a reply cut short; a 404 or a
	// redirect is a wrong settings_url, and a 503 a server that is busy.
	return errors.As(err, &ae) && ae.Kind == account.KindServer &&
		(ae.StatusCode < 300 || ae.StatusCode >= 500) && ae.StatusCode != http.StatusServiceUnavailable
}

// pageTooLargeError is a page the server cannot send.
type pageTooLargeError struct {
	after int64
	limit int // 1: a single row is too large
	err   error
}

func (p *pageTooLargeError) Error() string {
	if p.limit == 1 {
		return fmt.Sprintf("the server fails (%v) to send even one row of the journal after id %d: that row is larger than the server can send; "+
			"ask the provider to raise the server's memory limit", p.err, p.after)
	}
	return fmt.Sprintf("the server fails (%v) to send the page of the journal after id %d. "+
		"On CDRTool's server this is a page too large for PHP: it builds each page of up to 5000 rows in memory, at about 5 times their size, "+
		"so with Debian's memory_limit of 128M a page of more than about 20 MB fails. Ask the provider to raise PHP's memory_limit "+
		"for settings.phtml (512M serves pages of about 90 MB). This device keeps sending its own messages and tries again with backoff", p.err, p.after)
}

func (p *pageTooLargeError) Unwrap() error { return p.err }

// nextAfter is the after_id for the page that follows page, read after
// cursor. The real server orders a page by a one-second timestamp and cuts
// it at its cap, and rows of the same second come in no defined order. So
// when a page may have been cut, the rows of its last second may be only
// some of that second's rows: the next page starts before that second (its
// rows are read again, which is harmless: versions already held are
// skipped). Only when such a page is a single second is there no other way
// forward than its highest id.
func nextAfter(page *account.JournalPage, cursor int64, complete bool) int64 {
	maxID := max(cursor, page.MaxID())
	if complete {
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
	ops   []storeOp
	rows  []plannedRow
	files map[string]*store.FileRecord // msgid → its file after the rows planned so far
	names msgdir.Names                 // the files given out in this page: no two messages share one
	// versions holds, per msgid, the version planned last in this page.
	versions map[string]store.Version
	// known is what the state held of the page's messages when it was
	// read (planPage).
	known map[string]store.Known
	// peers is what the page's rows say of the devices that wrote them,
	// by device id in lower case.
	peers map[string]*store.Peer
	// keep are the rows that could not be applied for a reason that may
	// go away: recorded with the page, tried again later.
	keep []store.Unapplied
	row  account.JournalEntry // the row being planned
}

// writePage writes what a page plans, in one batch, and returns the rows
// applied, in journal order, and those whose write failed (the first
// failure's error with them). Every row written is recorded, also after a
// failure: the cursor stops before the first failed row, and reading the
// rows after it again changes nothing, whereas a message written but not
// recorded would be taken for a local one and sent back. A row whose file
// would pass through a symbolic link is skipped, counted and kept for a
// later try.
func (e *Engine) writePage(pg *pagePlan) (applied []store.Applied, failed []*plannedRow, err error) {
	results := e.store.Apply(pg.ops)
	for i := range pg.rows {
		pl := &pg.rows[i]
		if pl.op >= 0 {
			r := results[pl.op]
			switch {
			case errors.Is(r.err, msgdir.ErrUnsafePath):
				e.skip(pl.a.JournalID, r.err)
				pg.keepIfFixable(pl.row, r.err)
				continue
			case errors.Is(r.err, errNotForStore):
				e.skip(pl.a.JournalID, r.err)
				continue
			case r.err != nil:
				if err == nil {
					err = fmt.Errorf("write a message from another device to %s: %w", e.store.Describe(pg.ops[pl.op].loc), r.err)
				}
				failed = append(failed, pl)
				continue
			}
			pl.a.Size, pl.a.MTime = r.size, r.mtime
			if r.hash != "" {
				pl.a.Hash = r.hash // the message as the store holds it
			}
			if r.loc != "" {
				pl.a.Path = r.loc
			}
		}
		applied = append(applied, pl.a)
	}
	return applied, failed, err
}

// keepIfFixable keeps row for a later try if err is a cause the user can
// remove: a key this device lacks, a newer envelope format, a symbolic
// link in the way.
func (pg *pagePlan) keepIfFixable(row account.JournalEntry, err error) {
	u := store.Unapplied{JournalID: row.ID, UUID: row.UUID, Timestamp: row.Timestamp, Data: row.Data}
	var uk *seal.UnknownKeyError
	switch {
	case errors.As(err, &uk):
		u.Reason, u.KeyID = "sealed under a key this device does not have", uk.KeyID
	case errors.Is(err, seal.ErrUnsupportedVersion):
		u.Reason = "written by a newer chatsync: upgrade this one"
	case errors.Is(err, msgdir.ErrUnsafePath):
		u.Reason = "its file would pass through a symbolic link in the store: move the link away"
	default:
		return
	}
	pg.keep = append(pg.keep, u)
}

type plannedRow struct {
	row account.JournalEntry
	a   store.Applied
	op  int // index into ops, or -1
}

func (pg *pagePlan) add(a store.Applied, op *storeOp) {
	idx := -1
	if op != nil {
		pg.ops = append(pg.ops, *op)
		idx = len(pg.ops) - 1
	}
	pg.rows = append(pg.rows, plannedRow{row: pg.row, a: a, op: idx})
	if pg.versions == nil {
		pg.versions = map[string]store.Version{}
	}
	pg.versions[a.MsgID] = store.Version{MsgID: a.MsgID, JournalID: a.JournalID, Hash: a.Hash, Deleted: a.Deleted, Device: a.Device, Time: a.Time}
}

// fileOf is the file that holds msgid, as the page has left it so far.
func (e *Engine) fileOf(pg *pagePlan, msgid string) (store.FileRecord, bool, error) {
	if f, ok := pg.files[msgid]; ok {
		if f == nil {
			return store.FileRecord{}, false, nil
		}
		return *f, true, nil
	}
	if k, ok := pg.known[msgid]; ok {
		return k.File, k.HasFile, nil
	}
	return e.db.FileByMsgID(e.opts.Account, msgid)
}

// planPage opens the rows of a page and plans each, with what the state
// holds of their messages read in one transaction.
func (e *Engine) planPage(pg *pagePlan, entries []account.JournalEntry) error {
	acct := e.opts.Account
	opened := make([]openedRow, len(entries))
	ids := make([]string, 0, len(entries))
	for i, row := range entries {
		en, err := e.opts.Keyring.Open(row.Data, acct)
		opened[i] = openedRow{row: row, en: en, err: err}
		if err == nil {
			ids = append(ids, en.MsgID)
		}
	}
	known, err := e.db.Known(acct, ids)
	if err != nil {
		return fmt.Errorf("read what this device holds of the page's messages: %w", err)
	}
	pg.known = known
	for _, o := range opened {
		e.plan(pg, o)
	}
	return nil
}

// openedRow is a journal row with its envelope opened (or the error).
type openedRow struct {
	row account.JournalEntry
	en  seal.Entry
	err error
}

// plan takes one opened row and, if it is newer than the version held,
// plans bringing the store to it.
func (e *Engine) plan(pg *pagePlan, o openedRow) {
	row, en, err := o.row, o.en, o.err
	pg.row = row
	acct := e.opts.Account
	if e.notePeer(pg, row, en, err) {
		return // a device report, not a message
	}
	if err != nil {
		e.skip(row.ID, err)
		pg.keepIfFixable(row, err)
		return
	}
	if strings.EqualFold(en.Device, e.device) {
		// This device's own rows carry its id as their uuid and are never
		// polled: this one was posted again by someone else.
		e.skip(row.ID, errReplayed)
		return
	}
	_, inPage := pg.files[en.MsgID]
	var held store.Version
	var hasHeld bool
	k := pg.known[en.MsgID]
	if !inPage {
		held, hasHeld = k.Version, k.HasVersion
		if hasHeld && held.JournalID >= row.ID {
			return // a later version is held already
		}
	}
	if hasHeld && held.Own && held.JournalID == 0 {
		// This device's own version, which the journal lost (a restore)
		// and which is pushed again after the catch-up.
		switch {
		case en.Time.Equal(held.Time) && e.ownDevice(en.Device):
			e.recogniseOwn(pg, row) // it is this row, written under a former id
			return
		case !en.Time.After(held.Time):
			// It is newer than this row: without its journal id, only
			// the writers' times order the two.
			return
		}
	}
	last, ok := pg.versions[en.MsgID] // planned earlier in this page
	if !ok {
		last = held
	}
	if !last.Own && last.Device != "" && strings.EqualFold(last.Device, en.Device) && en.Time.Before(last.Time) {
		// The same device wrote the version held here later than this
		// one: an old envelope posted again. (The same version again,
		// as a restored journal holds it, is taken: it changes nothing
		// but the journal id.)
		e.skip(row.ID, errReplayed)
		return
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
		s := e.store.Look(place{loc: cur.Path}, &cur, false)
		switch {
		case s.kind == seenRefused && s.unsafe:
			// The message's file is behind a link: neither read nor
			// written through it, the row waits for the link to go.
			e.skip(row.ID, msgdir.ErrUnsafePath)
			pg.keepIfFixable(row, msgdir.ErrUnsafePath)
			return
		case s.kind == seenGone:
			if !e.started && hasHeld && !held.Deleted {
				return // deleted while stopped
			}
		case s.kind != seenUnchanged:
			if !e.started {
				return // changed since the start-up index
			}
			e.handleSeen(cur.Path, s, &cur, true)
			e.flush()
			if _, waiting := e.recheck[cur.Path]; waiting {
				return
			}
			if _, refused := e.rejected[cur.Path]; refused {
				return
			}
			// What was read with the page is out of date now.
			cur, hasFile, _ = e.db.FileByMsgID(acct, en.MsgID)
			_, k.Pending, err = e.db.Pending(acct, en.MsgID)
			if err != nil {
				return
			}
			pg.known[en.MsgID] = k
		case !e.started && hasHeld && !held.Deleted && held.Hash != cur.Hash:
			return // edited while stopped: the start-up index has the edit
		}
	}
	if k.Pending {
		return
	}

	switch en.Op {
	case seal.OpDelete:
		a := store.Applied{MsgID: en.MsgID, JournalID: row.ID, Deleted: true, Device: en.Device, Time: en.Time, KeyID: envelopeKeyID(row.Data)}
		if hasFile && e.opts.ReplicateDeletes {
			a.Path = cur.Path
			pg.files[en.MsgID] = nil
			pg.add(a, &storeOp{loc: cur.Path, remove: true})
			return
		}
		// No file here, or this device keeps what others delete: the
		// tombstone is recorded, the file (if any) stays.
		a.Keep = hasFile
		pg.add(a, nil)
	case seal.OpPut:
		msg, err := msgdir.Parse(en.Message, MaxIncomingBytes)
		if err != nil || msg.MsgID != en.MsgID {
			e.skip(row.ID, fmt.Errorf("%w: the message inside is not valid", seal.ErrBadEntry))
			return
		}
		a := store.Applied{MsgID: en.MsgID, JournalID: row.ID, Hash: msg.Hash, Device: en.Device, Time: en.Time, KeyID: envelopeKeyID(row.Data)}
		if hasFile && cur.Hash == msg.Hash {
			// The same content is here already (SIP delivered it to
			// this device too): no rewrite.
			a.Path, a.Size, a.MTime = cur.Path, cur.Size, cur.MTime
			pg.add(a, nil)
			return
		}
		at := ""
		if hasFile {
			at = cur.Path
		}
		loc, err := e.store.Place(msg, at, &pg.names)
		if err != nil {
			e.skip(row.ID, err)
			return
		}
		a.Path = loc
		pg.files[en.MsgID] = &store.FileRecord{Path: loc, MsgID: en.MsgID, Hash: msg.Hash}
		pg.add(a, &storeOp{loc: loc, from: at, data: msg.Canonical, device: en.Device})
	}
}

// recogniseOwn takes, after a reset, a row of this device's that the new
// journal still holds: if it is the version this device holds of that
// message, the version gets the row's id back and is not pushed again.
func (e *Engine) recogniseOwn(pg *pagePlan, row account.JournalEntry) {
	pg.row = row
	acct := e.opts.Account
	en, err := e.opts.Keyring.Open(row.Data, acct)
	if err != nil || !e.ownDevice(en.Device) {
		return
	}
	held, ok, err := e.db.Version(acct, en.MsgID)
	if err != nil || !ok || !held.Own || held.JournalID != 0 || !en.Time.Equal(held.Time) {
		return // an older version of ours, or one the journal has already
	}
	a := store.Applied{MsgID: en.MsgID, JournalID: row.ID, Hash: held.Hash, Deleted: held.Deleted, Own: true, Time: held.Time, KeyID: held.KeyID}
	if !held.Deleted {
		f, ok, err := e.db.FileByMsgID(acct, en.MsgID)
		if err != nil || !ok || f.Hash != held.Hash {
			return // changed here since: that change is pushed
		}
		a.Path, a.Size, a.MTime = f.Path, f.Size, f.MTime
	}
	pg.add(a, nil)
}

// errReplayed is an entry that is an old version posted again.
var errReplayed = errors.New("replayed")

// skip counts and logs a row that cannot be applied, by reason, the first
// time it is read (rows at a page edge are read twice).
func (e *Engine) skip(id int64, err error) {
	if id <= e.seenMax {
		return
	}
	reason := "invalid entry"
	switch {
	case errors.Is(err, seal.ErrUnknownKey):
		reason = "sealed under a key this device does not have (kept, and applied once the key is imported)"
	case errors.Is(err, seal.ErrAuth):
		reason = "does not decrypt (wrong key or tampered)"
	case errors.Is(err, seal.ErrForeignAccount):
		reason = "belongs to another account"
	case errors.Is(err, msgdir.ErrUnsafePath):
		reason = "its file would pass through a symbolic link (move the link out of the store)"
	case errors.Is(err, errNotForStore):
		reason = "cannot be stored in the chat client's database (it lacks remote_uri, direction or time, or a field is not text)"
	case errors.Is(err, seal.ErrBadFormat):
		reason = "not a chatsync entry"
	case errors.Is(err, errReplayed):
		reason = "replayed (an old version posted again, or this device's own entry under another id)"
	}
	e.log.Warn("skipped a journal entry", "journal_id", id, "reason", reason)
	e.update(func(s *Status) { s.Skipped[reason]++ })
}

// probe checks, once after start and then every ProbeInterval, that the
// server still holds a row this device has seen (the anchor), by id and
// content. A journal that lost it was reset or restored from a backup; its
// ids start again and may already have passed this device's cursor, where
// polling alone would never notice. Once the anchor is found, the newest
// row polled since (the candidate) becomes the next anchor; with no row
// from another device, it is this device's own newest row.
//
// It costs about one row: it asks for limit=1, which the real server
// answers with no rows (its limit bug), and then it reads the rows from the
// anchor on (another device's rows only, when the anchor is theirs). That
// is why it runs hourly, not at every poll: with a large newest row, a
// probe at every poll would cost more than all the polls.
func (e *Engine) probe(ctx context.Context) {
	now := e.opts.Now()
	if !e.lastProbe.IsZero() && now.Sub(e.lastProbe) < e.opts.ProbeInterval {
		return
	}
	e.lastProbe = now // whatever the outcome, the next check is an interval away
	if err := e.checkAnchor(ctx); err != nil {
		// A probe that cannot be made says nothing about the journal and
		// does not hold back polling.
		e.log.Info("cannot check that the journal still holds what this device saw; trying again later", "err", err)
	}
	if healed, err := e.checkClones(ctx); err != nil {
		e.log.Info("cannot check the journal for another device with this device's id; trying again later", "err", err)
	} else if healed {
		e.nextPoll = now // read what the other device wrote
	}
}

func (e *Engine) checkAnchor(ctx context.Context) error {
	acct := e.opts.Account
	st, err := e.db.Stats(acct)
	if err != nil || st.Highwater == 0 {
		return err
	}
	anchor, ok, err := e.db.Anchor(acct)
	if err != nil {
		return err
	}
	cand, hasCand, err := e.db.Candidate(acct)
	if err != nil {
		return err
	}
	switch {
	case ok && anchor.ID <= st.Highwater:
	case hasCand && cand.ID <= st.Highwater:
		// No anchor yet (or one from an old journal): the newest row seen
		// is one, with its signature.
		anchor, ok = cand, true
	default:
		anchor, ok = store.Anchor{ID: st.Highwater}, false
	}
	row, why, err := e.lookFor(ctx, anchor, "which this device has seen")
	if err != nil {
		if pageFailed(err) && hasCand {
			// Too much to read since the anchor: check from the newest
			// row next time.
			e.db.SetAnchor(acct, cand)
		}
		return fmt.Errorf("check the journal: %w", err)
	}
	switch {
	case why != "":
		return e.journalWentBackwards(why)
	case row == nil:
		return nil // a cut page, or a server that ignores after_id: it tells nothing
	}
	next := e.anchorOf(row)
	// The newest row this device has seen (polled or put) since: a journal
	// restored from a backup taken after the anchor but before it lost it,
	// even when new rows have taken its id since.
	newest := cand
	if !hasCand {
		newest = store.Anchor{ID: st.Highwater} // a state from before candidates were kept
	}
	if newest.ID > next.ID {
		row, why, err := e.lookFor(ctx, newest, "the newest this device has seen")
		switch {
		case err != nil:
		case why != "":
			return e.journalWentBackwards(why)
		case row != nil:
			next = e.anchorOf(row)
		}
	}
	if !ok || next != anchor {
		return e.db.SetAnchor(acct, next)
	}
	return nil
}

// journalLostNewest checks that the server still holds the newest row this
// device has seen (the candidate) and handles a journal that lost it. A
// read that cannot be made or trusted says nothing: the hourly probe tries
// again. It costs one row where the server honours limit; on the real
// server, whose limit does not work, it reads the new rows once more.
func (e *Engine) journalLostNewest(ctx context.Context) bool {
	cand, ok, err := e.db.Candidate(e.opts.Account)
	if err != nil || !ok {
		return false
	}
	_, why, err := e.lookFor(ctx, cand, "the newest this device has seen")
	if err != nil {
		e.log.Info("cannot check that the journal still holds the newest entry this device has seen; taking the new entries", "err", err)
		return false
	}
	if why == "" {
		return false
	}
	if err := e.journalWentBackwards(why); err != nil {
		e.log.Error("cannot start over with the new journal", "err", err)
		return false
	}
	return true
}

// lookFor reads the row an recorded from the server. why says how the
// journal lost it (it is gone, or another row has its id), naming it by
// what it is to this device; it is empty when the row is there, and also
// when the read cannot tell (row nil then).
func (e *Engine) lookFor(ctx context.Context, an store.Anchor, what string) (row *account.JournalEntry, why string, err error) {
	row, complete, err := e.findRow(ctx, e.exceptFor(an), an.ID)
	e.log.Debug("looked for a journal entry this device has seen", "id", an.ID, "what", what, "found", row != nil, "complete", complete, "err", err)
	switch {
	case err != nil:
		return nil, "", err
	case row == nil && complete:
		why = fmt.Sprintf("journal entry %d, %s, is no longer on the server", an.ID, what)
	case row != nil && !e.matches(an, row):
		why = fmt.Sprintf("journal entry %d, %s, is not the entry it saw under that id", an.ID, what)
	}
	return row, why, nil
}

// exceptFor is the except_uuid that finds an: this device's rows are left
// out when an is another device's.
func (e *Engine) exceptFor(an store.Anchor) string {
	if an.Theirs {
		return e.device
	}
	return ""
}

// matches reports whether row is the row an recorded: by its signature, or,
// for a row this device put (whose timestamp it never learnt), by its writer
// and data.
func (e *Engine) matches(an store.Anchor, row *account.JournalEntry) bool {
	switch {
	case an.Sig != "":
		return an.Sig == rowSig(row)
	case an.Data != "":
		return an.Data == store.DataHash(row.Data)
	}
	return true
}

// anchorOf is the anchor for a row read from the server now.
func (e *Engine) anchorOf(row *account.JournalEntry) store.Anchor {
	return store.Anchor{ID: row.ID, Sig: rowSig(row), Theirs: !strings.EqualFold(row.UUID, e.device)}
}

// findRow looks for the row id in the journal (leaving out the rows of
// except, if set) and returns it, if the server holds it, and whether the
// read can be trusted to hold it if the server does (not cut, and not from
// a server that ignores after_id). It asks for one row first; one row
// proves nothing unless it is that row (rows of one second come in any
// order, and the real server answers limit=1 with no row at all), so it
// then reads all rows from id on, and learns that limit is not honoured
// if the row is there.
func (e *Engine) findRow(ctx context.Context, except string, id int64) (*account.JournalEntry, bool, error) {
	q := account.JournalQuery{AfterID: id - 1, ExceptUUID: except, Limit: 1}
	if e.pages.limit < 0 {
		q.Limit = 0
	}
	row, complete, err := e.readFor(ctx, q, id)
	if err == nil && row == nil && q.Limit == 1 {
		q.Limit = 0
		row, complete, err = e.readFor(ctx, q, id)
		if err == nil && row != nil {
			e.pages.limit = -1 // limit=1 did not bring the row that is there
		}
	}
	return row, complete, err
}

// readFor reads one page with q and returns the row with id, if the page
// holds it, and whether the page can be trusted (see findRow).
func (e *Engine) readFor(ctx context.Context, q account.JournalQuery, id int64) (*account.JournalEntry, bool, error) {
	page, err := e.opts.Remote.GetJournalEntries(ctx, q)
	if err != nil {
		return nil, false, err
	}
	complete := len(page.Entries) == 0 || len(page.Entries) < e.pages.longest && (q.Limit == 0 || len(page.Entries) < q.Limit)
	var row *account.JournalEntry
	for i := range page.Entries {
		switch r := &page.Entries[i]; {
		case r.ID == id:
			row = r
		case r.ID <= q.AfterID:
			complete = false // it ignores after_id
		}
	}
	return row, complete, nil
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
	e.started, e.caughtUp, e.afterReset = false, false, true
	e.newAtStart = map[string]bool{}
	e.seenMax = 0
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
	return e.requeue(e.db.Unpushed(e.opts.Account))
}

// resealUnreadable heals a key mistake: this device's own versions sealed
// under a key that no other device has written with, once this device
// holds a key the others do use (its current key), are sealed again with
// it and pushed, so the other devices can read them. It runs at start
// when the key file holds more than one key (a key was imported).
func (e *Engine) resealUnreadable() error {
	if e.opts.Keyring.Len() < 2 {
		return nil
	}
	acct := e.opts.Account
	current := e.opts.Keyring.Current().ID()
	others := map[string]bool{}
	for v, err := range e.db.Versions(acct, func(v store.Version) bool { return !v.Own && v.KeyID != "" }) {
		if err != nil {
			return err
		}
		others[v.KeyID] = true
	}
	if !others[current] {
		return nil // no other device is known to use the current key
	}
	return e.requeue(e.db.Versions(acct, func(v store.Version) bool {
		return v.Own && v.KeyID != "" && v.KeyID != current && !others[v.KeyID]
	}))
}

// requeue seals again, with the current key, the held versions vs yields
// (from the files of the store for messages, as tombstones for deletes)
// and queues them.
func (e *Engine) requeue(vs iter.Seq2[store.Unpushed, error]) error {
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
	for u, err := range vs {
		if err != nil {
			return err
		}
		at := e.sealTime(u.Version, true)
		p := store.Push{MsgID: u.MsgID, Op: store.OpDelete, Hash: u.Hash, Time: at}
		ent := seal.Entry{Op: seal.OpDelete, MsgID: u.MsgID, Account: acct, Device: e.device, Time: at, Applied: e.cursor}
		if !u.Deleted {
			if u.Path == "" {
				continue
			}
			m, err := e.store.Read(u.Path)
			if err != nil || m.MsgID != u.MsgID { // gone: the scan takes care of it
				continue
			}
			p.Op, p.Hash = store.OpPut, m.Hash
			ent.Op, ent.Message = seal.OpPut, m.Canonical
		}
		env, err := e.opts.Keyring.Seal(ent)
		if err != nil {
			return err
		}
		p.Envelope, p.KeyID = env, envelopeKeyID(env)
		batch = append(batch, p)
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// envelopeKeyID is the key id in an envelope's header ("cs2.<key id>.…"),
// or "" if it has none.
func envelopeKeyID(env string) string {
	_, rest, _ := strings.Cut(env, ".")
	id, _, ok := strings.Cut(rest, ".")
	if !ok || len(id) != 8 {
		return ""
	}
	return id
}

// cutSecond is a page that may have been cut and holds one second only,
// with the ids it held.
type cutSecond struct {
	at    string
	rows  int
	maxID int64
	ids   map[int64]bool
}

// missed reports whether r is a row of the cut second that the cut page
// did not hold though its id is lower than the page's highest: the server
// orders rows of a second in another order than by id, and cut the page
// among them.
func (c *cutSecond) missed(r account.JournalEntry) bool {
	return r.Timestamp == c.at && r.ID < c.maxID && !c.ids[r.ID]
}
