package engine

import (
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/watch"
)

// handleChange looks again at what the watcher reported.
func (e *Engine) handleChange(c watch.Change) {
	if !e.rootPresent() {
		return
	}
	// A change in the store may have removed what kept an entry from being
	// applied (a symbolic link in the way).
	defer e.retryKept()
	if c.Rescan {
		e.log.Debug("rescanning the message store", "reason", c.Reason)
		e.scan("", e.decides())
		return
	}
	// Locations that hold something first, then the ones that are gone: a
	// file that was renamed is then seen at its new name before its old
	// one is missed, so a move is not taken for a delete.
	done := map[string]bool{}
	var missing []string
	for _, p := range c.Paths {
		loc := filepath.ToSlash(p)
		if done[loc] {
			continue
		}
		done[loc] = true
		old, err := e.indexedAt(loc)
		if err != nil {
			continue
		}
		s := e.store.Look(place{loc: loc}, old, false)
		if s.kind == seenGone {
			missing = append(missing, loc)
			continue
		}
		e.handleSeen(loc, s, old, e.decides())
	}
	e.flush()
	for _, loc := range missing {
		e.gone(loc)
	}
	e.flush()
}

// handlePlace looks at one location of the store and acts on what is
// there: a message, something gone, a directory (scanned), something
// refused or still being written. force reads it even when the index says
// it is unchanged.
func (e *Engine) handlePlace(p place, decide, force bool) {
	old, err := e.indexedAt(p.loc)
	if err != nil {
		return
	}
	e.handleSeen(p.loc, e.store.Look(p, old, force), old, decide)
}

// indexedAt is what the file index holds at loc (nil: nothing).
func (e *Engine) indexedAt(loc string) (*store.FileRecord, error) {
	rec, ok, err := e.db.File(e.opts.Account, loc)
	if err != nil {
		e.log.Error("cannot read the file index", "err", err)
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	return &rec, nil
}

// handleSeen acts on what the store found at loc; old is what the index
// holds there.
func (e *Engine) handleSeen(loc string, s seen, old *store.FileRecord, decide bool) {
	switch s.kind {
	case seenGone:
		e.gone(loc)
	case seenDir:
		e.scan(loc, decide)
	case seenRefused:
		e.reject(loc, s.reason)
	case seenLater:
		e.recheck[loc] = s.at
	case seenMessage:
		e.found(loc, s, old, decide)
	}
}

// gone handles a location that no longer holds anything: the message it
// held, or every indexed message below it if it was a directory.
func (e *Engine) gone(loc string) {
	e.unreject(loc)
	// A location that was refused for repeating this one's msgid may now
	// hold the message's only copy: look at it first.
	for p, reason := range e.rejected {
		if strings.HasPrefix(reason, duplicateReason(loc)) {
			e.handlePlace(place{loc: p}, e.decides(), false)
		}
	}
	if rec, ok, err := e.db.File(e.opts.Account, loc); err == nil && ok {
		e.vanished(rec)
		return
	}
	var under []store.FileRecord
	for rec, err := range e.db.FilesUnder(e.opts.Account, loc) {
		if err != nil {
			e.log.Error("cannot read the file index", "err", err)
			return
		}
		under = append(under, rec)
	}
	for _, rec := range under {
		e.unreject(rec.Path)
		e.vanished(rec)
	}
}

// scan looks at every location of the store below dir ("" for all of
// it), and then at every indexed location below dir that was not found.
// With decide false (the start-up index) it only records what it finds;
// what to push is decided after the catch-up poll. It reports whether the
// store could be read: if not, nothing is taken for gone.
//
// The store lists its locations in byte order, the order of the file
// index, so the two are merged: the index is read a page at a time beside
// the walk, not once per file. An index entry the walk passes by without
// finding is gone only if it is still not there when the walk is done (a
// location listed out of order is looked up by itself).
func (e *Engine) scan(dir string, decide bool) bool {
	if dir == "" {
		e.lastScan = e.opts.Now()
	}
	acct := e.opts.Account
	prefix := ""
	files := e.db.Files(acct)
	if dir != "" {
		prefix = dir + "/"
		files = e.db.FilesUnder(acct, dir)
	}
	ix := newIndexMerge(files)
	defer ix.stop()
	rejectedSeen := map[string]bool{} // refused locations found again
	var unreadable []string           // directories that could not be read
	err := e.store.Scan(dir, func(p place) {
		old, err := ix.at(p.loc, e.indexedAt)
		if err != nil {
			return
		}
		e.handleSeen(p.loc, e.store.Look(p, old, false), old, decide)
		if _, refused := e.rejected[p.loc]; refused {
			rejectedSeen[p.loc] = true
		}
		switch n := len(e.batch.files) + len(e.batch.pushes); {
		case e.pumping != nil && n >= e.opts.BatchCount:
			e.flush() // a batch's worth, put while the next is read
			e.pump()
		case n >= flushEvery:
			e.flush() // one huge transaction is slower than many mid-sized ones
		}
	}, func(loc, reason string, isDir bool) {
		// Never take what cannot be read for deleted.
		e.reject(loc, reason)
		rejectedSeen[loc] = true
		if isDir {
			unreadable = append(unreadable, loc+"/")
		}
	})
	if err != nil {
		e.log.Warn("cannot scan the message store", "store", e.store.Describe(dir), "err", err)
		return false
	}
	e.flush()
	passed, err := ix.rest()
	if err != nil {
		e.log.Error("cannot read the file index", "err", err)
		return false
	}
	for _, rec := range passed {
		if underAny(rec.Path, unreadable) || rejectedSeen[rec.Path] {
			continue
		}
		// Written since the walk passed it (or by the walk itself, to an
		// index page read after): only what is not there now is gone.
		cur, err := e.indexedAt(rec.Path)
		if err != nil || cur == nil || e.store.Look(place{loc: rec.Path}, cur, false).kind != seenGone {
			continue
		}
		if decide {
			e.vanished(*cur)
			continue
		}
		// Before the catch-up the index entry stays: decideAll sees the
		// message missing and queues the delete then, so a crash in
		// between loses nothing.
		e.goneAtStart[rec.Path] = true
	}
	for loc := range e.rejected {
		if strings.HasPrefix(loc, prefix) && !rejectedSeen[loc] {
			e.unreject(loc)
		}
	}
	if dir == "" {
		now := e.opts.Now()
		e.update(func(s *Status) { s.LastScan = now })
	}
	return true
}

// indexMerge walks the file index in path order beside a walk of the
// store in the same order.
type indexMerge struct {
	next   func() (store.FileRecord, error, bool)
	stop   func()
	head   *store.FileRecord // the first entry not passed yet; nil at the end
	err    error
	last   string // the last location asked for
	passed []store.FileRecord
}

func newIndexMerge(files iter.Seq2[store.FileRecord, error]) *indexMerge {
	m := &indexMerge{}
	m.next, m.stop = iter.Pull2(files)
	m.advance()
	return m
}

func (m *indexMerge) advance() {
	rec, err, ok := m.next()
	switch {
	case !ok:
		m.head = nil
	case err != nil:
		m.head, m.err = nil, err
	default:
		m.head = &rec
	}
}

// at returns the index entry of loc (nil: none), passing by the entries
// before it. A location out of order is looked up with lookup.
func (m *indexMerge) at(loc string, lookup func(string) (*store.FileRecord, error)) (*store.FileRecord, error) {
	if m.err != nil {
		return nil, m.err
	}
	if loc <= m.last && m.last != "" {
		return lookup(loc)
	}
	m.last = loc
	for m.head != nil && m.head.Path < loc {
		m.passed = append(m.passed, *m.head)
		m.advance()
	}
	if m.err != nil {
		return nil, m.err
	}
	if m.head != nil && m.head.Path == loc {
		rec := *m.head
		m.advance()
		return &rec, nil
	}
	return nil, nil
}

// rest passes by what is left of the index and returns every entry passed
// by without being asked for.
func (m *indexMerge) rest() ([]store.FileRecord, error) {
	for m.head != nil {
		m.passed = append(m.passed, *m.head)
		m.advance()
	}
	return m.passed, m.err
}

// found indexes the message the store holds at loc and, when decide is
// set, queues it if it is not the version this device holds. Every
// message needs its own msgid: a second location with the same one is
// refused while the first exists.
func (e *Engine) found(loc string, s seen, old *store.FileRecord, decide bool) {
	acct := e.opts.Account
	msg := s.msg
	if other, ok := e.batch.msgids[msg.MsgID]; ok && other != loc {
		e.reject(loc, duplicateReason(other)+": every message needs its own msgid")
		return
	}
	if other, ok, err := e.db.FileByMsgID(acct, msg.MsgID); err == nil && ok && other.Path != loc {
		if e.store.Look(place{loc: other.Path}, &other, false).kind != seenGone {
			e.reject(loc, duplicateReason(other.Path)+": every message needs its own msgid")
			return
		}
		// The message moved to another location: forget the old one.
		if err := e.db.DeleteFiles(acct, other.Path); err != nil {
			e.log.Error("cannot update the file index", "err", err)
			return
		}
	}
	e.unreject(loc)
	rec := store.FileRecord{Path: loc, MsgID: msg.MsgID, Hash: msg.Hash, Size: s.size, MTime: s.mtime}
	isNew := old == nil || old.MsgID != msg.MsgID
	if !decide {
		e.index(rec)
		if isNew {
			e.newAtStart[loc] = true
		}
		return
	}
	e.decide(rec, msg.Canonical, isNew, nil)
	if old != nil && old.MsgID != msg.MsgID {
		// The location now holds another message: the one it held is gone.
		e.flush()
		e.vanished(store.FileRecord{MsgID: old.MsgID})
	}
}

func duplicateReason(of string) string { return "repeats the msgid of " + of }

// underAny reports whether p is below one of the directory prefixes.
func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// decide queues the file's content unless this device already holds that
// version, or the journal says the message was deleted and this file is a
// late copy of it.
func (e *Engine) decide(rec store.FileRecord, canonical []byte, isNew bool, known *store.Known) {
	if known == nil {
		k, err := e.db.Known(e.opts.Account, []string{rec.MsgID})
		if err != nil {
			e.log.Error("cannot read what this device holds", "err", err)
			return
		}
		known = new(k[rec.MsgID])
	}
	pend, hasPending := known.PendingEntry, known.Pending
	held, hasHeld := known.Version, known.HasVersion
	switch {
	case hasPending && pend.Op == store.OpPut && pend.Hash == rec.Hash,
		!hasPending && hasHeld && !held.Deleted && held.Hash == rec.Hash:
		// Already queued, or already the version in the journal (for
		// instance the file chatsync itself just wrote): index only,
		// unless rec is the index's own unchanged entry (decideRecords).
		if canonical != nil {
			e.index(rec)
		}
		return
	case !hasPending && hasHeld && held.Deleted && (isNew || !e.opts.ReplicateDeletes):
		if !e.opts.ReplicateDeletes {
			e.index(rec) // this device keeps what others delete
			return
		}
		// Another device deleted this message before this copy turned
		// up (SIP forks messages to every device): the delete wins.
		if err := e.store.Remove(rec.Path); err != nil {
			e.reject(rec.Path, fmt.Sprintf("deleted on another device, but cannot remove it here: %v", err))
			return
		}
		e.log.Info("removed a late copy of a message deleted on another device", "path", rec.Path)
		return
	}
	if canonical == nil {
		msg, err := e.store.Read(rec.Path)
		if err != nil || msg.Hash != rec.Hash {
			return // changed again; its own event follows
		}
		canonical = msg.Canonical
	}
	e.queuePut(rec, canonical, held, hasHeld)
}

// queuePut seals the file's content as a new version of its message and
// queues it, with the file's index entry.
func (e *Engine) queuePut(rec store.FileRecord, canonical []byte, held store.Version, hasHeld bool) {
	at := e.sealTime(held, hasHeld)
	env, err := e.opts.Keyring.Seal(seal.Entry{
		Op: seal.OpPut, MsgID: rec.MsgID, Account: e.opts.Account, Device: e.device,
		Time: at, Message: canonical, Applied: e.cursor,
	})
	if err != nil {
		e.reject(rec.Path, fmt.Sprintf("cannot encrypt: %v", err))
		return
	}
	r := rec
	e.enqueue(store.Push{MsgID: rec.MsgID, Op: store.OpPut, Envelope: env, Hash: rec.Hash, Time: at, KeyID: envelopeKeyID(env), File: &r})
}

// sealTime is the time to seal a new version of a message with: now, but
// always later than this device's previous version of it, so that the
// other devices, which take an older version from the same device for a
// replay, never refuse a real edit made after the clock stepped back.
func (e *Engine) sealTime(held store.Version, hasHeld bool) time.Time {
	now := e.opts.Now()
	if hasHeld && held.Own && !now.After(held.Time) {
		return held.Time.Add(time.Microsecond)
	}
	return now
}

// vanished handles an indexed file that is gone: its message is deleted on
// the other devices if it ever reached them (or is on its way).
func (e *Engine) vanished(rec store.FileRecord) {
	acct := e.opts.Account
	if !e.rootPresent() {
		return // a missing store is not a deletion of everything in it
	}
	e.flush() // the decisions below read what the batch would change
	if other, ok, err := e.db.FileByMsgID(acct, rec.MsgID); err != nil || ok && other.Path != rec.Path {
		// The message lives on in another file (it was moved).
		if err == nil && rec.Path != "" {
			err = e.db.DeleteFiles(acct, rec.Path)
		}
		if err != nil {
			e.log.Error("cannot update the file index", "err", err)
		}
		return
	}
	held, hasHeld, err := e.db.Version(acct, rec.MsgID)
	if err != nil {
		return
	}
	_, hasPending, err := e.db.Pending(acct, rec.MsgID)
	if err != nil {
		return
	}
	if !e.opts.ReplicateDeletes || (!hasPending && (!hasHeld || held.Deleted)) {
		if rec.Path == "" {
			return
		}
		if err := e.db.DeleteFiles(acct, rec.Path); err != nil {
			e.log.Error("cannot update the file index", "err", err)
		}
		return
	}
	e.queueDelete(rec, held, hasHeld)
}

// queueDelete seals a delete of rec's message and queues it, with the
// removal of rec's index entry if it has a path.
func (e *Engine) queueDelete(rec store.FileRecord, held store.Version, hasHeld bool) {
	at := e.sealTime(held, hasHeld)
	env, err := e.opts.Keyring.Seal(seal.Entry{
		Op: seal.OpDelete, MsgID: rec.MsgID, Account: e.opts.Account, Device: e.device, Time: at, Applied: e.cursor,
	})
	if err != nil {
		e.log.Error("cannot encrypt a delete", "err", err)
		return
	}
	p := store.Push{MsgID: rec.MsgID, Op: store.OpDelete, Envelope: env, Time: at, KeyID: envelopeKeyID(env)}
	if rec.Path != "" {
		r := rec
		p.File = &r // the index entry goes in the same transaction
	}
	e.enqueue(p)
	e.flush()
}

// decideAll runs once, after the catch-up poll at start: every indexed
// file whose content is not the held version is queued, and every indexed
// file that is gone is deleted. It makes the start-up safe against a crash
// at any point: whatever was indexed but not queued is found here again.
func (e *Engine) decideAll() {
	after := ""
	for {
		recs, err := e.db.FilesAfter(e.opts.Account, after, 1000)
		if err != nil {
			e.log.Error("cannot read the file index", "err", err)
			return
		}
		e.decideRecords(recs)
		if len(recs) < 1000 {
			return
		}
		after = recs[len(recs)-1].Path
	}
}

func (e *Engine) decideRecords(recs []store.FileRecord) {
	defer e.flush()
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.MsgID
	}
	known, err := e.db.Known(e.opts.Account, ids) // one read for the chunk
	if err != nil {
		e.log.Error("cannot read what this device holds", "err", err)
		return
	}
	for _, rec := range recs {
		k := known[rec.MsgID]
		if k.HasVersion && !k.Version.Deleted && k.Version.Hash == rec.Hash && !k.Pending &&
			!e.goneAtStart[rec.Path] && !e.watchFailed.Load() {
			// The version held is what the index says the file holds, and
			// the start-up index found it so: a message the catch-up
			// wrote or recognised, or one unchanged since the last run. A
			// change since is the watcher's to report.
			continue
		}
		s := e.store.Look(place{loc: rec.Path}, &rec, false)
		switch s.kind {
		case seenGone:
			e.vanished(rec)
		case seenUnchanged:
			e.decide(rec, nil, e.newAtStart[rec.Path], &k)
		case seenRefused:
			if !s.unsafe {
				e.reject(rec.Path, s.reason)
			}
			// Behind a link, it is neither read nor taken for gone: a row
			// of another device for it is kept until the link goes.
		default: // changed since it was indexed
			e.handleSeen(rec.Path, s, &rec, true)
		}
	}
}

func (e *Engine) reject(rel, reason string) {
	delete(e.recheck, rel)
	if e.rejected[rel] == reason {
		return
	}
	e.rejected[rel] = reason
	e.log.Warn("message file not replicated", "path", rel, "reason", reason)
	e.emit(Event{Kind: "rejected", Path: rel, Message: reason})
	e.publishRejected()
}

func (e *Engine) unreject(rel string) {
	delete(e.recheck, rel)
	if _, ok := e.rejected[rel]; ok {
		delete(e.rejected, rel)
		e.publishRejected()
	}
}

// localBatch collects the state writes of one round of local work, so a
// burst of files costs one transaction (one fsync) rather than one each.
type localBatch struct {
	pushes []store.Push
	files  []store.FileRecord
	msgids map[string]string // msgid → path of every file in the batch
}

// index records a file that needs no push.
func (e *Engine) index(rec store.FileRecord) {
	e.batch.files = append(e.batch.files, rec)
	e.noteBatched(rec.MsgID, rec.Path)
}

// enqueue queues a push (and its file-index entry).
func (e *Engine) enqueue(p store.Push) {
	e.batch.pushes = append(e.batch.pushes, p)
	if p.Op == store.OpPut && p.File != nil {
		e.noteBatched(p.MsgID, p.File.Path)
	}
	e.lastActive = e.opts.Now()
}

func (e *Engine) noteBatched(msgid, path string) {
	if e.batch.msgids == nil {
		e.batch.msgids = map[string]string{}
	}
	e.batch.msgids[msgid] = path
}

// flush writes the batch. If the batch as a whole is refused, its entries
// are written one by one, so one bad entry cannot hold back the rest; an
// entry that still cannot be written (a full or read-only state disk) is
// looked at again a little later, and the problem is shown in status.
func (e *Engine) flush() {
	b := e.batch
	e.batch = localBatch{}
	acct := e.opts.Account
	var failure error
	retry := func(path string, err error) {
		failure = err
		if path != "" {
			e.recheck[path] = e.opts.Now().Add(stateRetry)
		}
	}
	if len(b.pushes) > 0 {
		// A new version replaces a held one (and is not held): push now.
		e.pushAt = time.Time{}
		for _, p := range b.pushes {
			delete(e.held, p.MsgID)
		}
		if _, err := e.db.EnqueueMany(acct, b.pushes); err != nil {
			for _, p := range b.pushes {
				if _, err := e.db.Enqueue(acct, p); err != nil {
					path := ""
					if p.File != nil {
						path = p.File.Path
					}
					retry(path, err)
				}
			}
		}
	}
	if len(b.files) > 0 {
		if err := e.db.PutFiles(acct, b.files...); err != nil {
			for _, f := range b.files {
				if err := e.db.PutFiles(acct, f); err != nil {
					retry(f.Path, err)
				}
			}
		}
	}
	if failure != nil {
		msg := fmt.Sprintf("cannot record local changes in the state database (%v): they are retried; check that the disk of daemon.state_dir has room and is writable", failure)
		e.log.Error("cannot record local changes; retrying", "err", failure)
		e.update(func(s *Status) { s.LocalError = msg })
	} else if len(b.pushes)+len(b.files) > 0 {
		e.update(func(s *Status) { s.LocalError = "" })
	}
}

// flushEvery bounds a scan's batch of state writes.
const flushEvery = 1000

// stateRetry is how long a change that could not be recorded waits before
// it is tried again.
const stateRetry = 5 * time.Second
