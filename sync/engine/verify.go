package engine

// Verify proves, or disproves, that this device holds the whole history:
// it reads the whole journal (every device's rows, this one's too), keeps
// the latest version of every message, and compares it with what the
// store holds, message by message, by content. The replication itself
// never needs it; it is for the user who wants to know, and for what no
// replication can see by itself: a file edited behind chatsync's back
// with its size and time kept, a journal that lost rows without going
// backwards, a bug.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// maxVerifyExamples bounds the examples a verify result lists.
const maxVerifyExamples = 20

// localMessage is a message the store holds.
type localMessage struct {
	msgid string
	path  string
	hash  string
}

// journalVersion is the latest version of a message in the journal.
type journalVersion struct {
	id      int64
	deleted bool
	hash    string
	device  string
	time    time.Time
	// data is the row, kept only while it differs from the store (what a
	// repair writes here).
	data string
}

// Verify reads the whole journal, keeps the latest version of every
// message, and compares it with the store. With repair, it writes here
// what is missing or older here, queues what the journal lacks, waits for
// the queue to be sent, and verifies again: the result is the second
// verify's, with what was repaired. progress, if not nil, is called as the
// work goes on (from the caller's goroutine).
func (e *Engine) Verify(ctx context.Context, repair bool, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, error) {
	if progress == nil {
		progress = func(apitype.VerifyProgress) {}
	}
	res, plan, err := e.verify(ctx, progress)
	if err != nil || !repair || res.InSync {
		return res, err
	}
	progress(apitype.VerifyProgress{Phase: "repair", Total: len(plan.apply) + len(plan.push) + len(plan.deletes)})
	var applied, queued int
	var rerr error
	if err := e.inLoop(ctx, func() { applied, queued, rerr = e.repair(plan) }); err != nil {
		return res, err
	}
	if rerr != nil {
		return res, rerr
	}
	e.log.Info("verify: repaired the store and the journal", "written_here", applied, "queued", queued)
	if err := e.waitSent(ctx); err != nil {
		return res, err
	}
	again, _, err := e.verify(ctx, progress)
	again.Applied, again.Queued = applied, queued
	return again, err
}

// repairPlan is what a repair does.
type repairPlan struct {
	apply   []journalVersion // written here, as the journal holds them
	push    []localMessage   // files here queued as a new version of their message
	deletes []string         // msgids whose delete here is queued again
}

// verify compares the store and the journal once.
func (e *Engine) verify(ctx context.Context, progress func(apitype.VerifyProgress)) (apitype.VerifyResult, repairPlan, error) {
	acct := e.opts.Account
	res := apitype.VerifyResult{Account: acct, UndecryptableKeys: map[string]int{}}
	var local map[string]localMessage
	if err := e.inLoop(ctx, func() { local = e.localMessages() }); err != nil {
		return res, repairPlan{}, err
	}
	progress(apitype.VerifyProgress{Phase: "store", Done: len(local), Total: len(local)})
	res.Local = len(local)

	latest := map[string]*journalVersion{}
	undecryptable, reports := map[int64]bool{}, map[int64]bool{}
	var undecryptableEx []apitype.VerifyExample
	var pg pager
	after, pages := int64(0), int64(0)
	for {
		page, err := e.opts.Remote.GetJournalEntries(ctx, account.JournalQuery{AfterID: after})
		if err != nil {
			return res, repairPlan{}, fmt.Errorf("read the journal after id %d: %w", after, err)
		}
		for _, row := range page.Entries {
			en, err := e.opts.Keyring.Open(row.Data, acct)
			if err != nil {
				if !undecryptable[row.ID] {
					undecryptable[row.ID] = true
					res.Rows++
					res.UndecryptableKeys[envelopeKeyID(row.Data)]++
					if len(undecryptableEx) < maxVerifyExamples {
						undecryptableEx = append(undecryptableEx, apitype.VerifyExample{Kind: apitype.VerifyUndecryptable, KeyID: envelopeKeyID(row.Data), JournalID: row.ID})
					}
				}
				continue
			}
			if en.Op == seal.OpReport {
				if !reports[row.ID] {
					reports[row.ID] = true
					res.Rows++
				}
				continue
			}
			cur := latest[en.MsgID]
			switch {
			case cur != nil && cur.id == row.ID:
				continue // read again at a page's edge
			case cur != nil && cur.id > row.ID:
				res.Rows++
				continue
			case cur != nil && strings.EqualFold(cur.device, en.Device) && en.Time.Before(cur.time):
				res.Rows++
				continue // an old version posted again, as the replication takes it
			}
			res.Rows++
			v := &journalVersion{id: row.ID, deleted: en.Op == seal.OpDelete, device: en.Device, time: en.Time}
			if !v.deleted {
				msg, err := msgdir.Parse(en.Message, MaxIncomingBytes)
				if err != nil || msg.MsgID != en.MsgID {
					continue // skipped by the replication too
				}
				v.hash = msg.Hash
			}
			if l, ok := local[en.MsgID]; v.deleted == ok || ok && l.hash != v.hash {
				v.data = row.Data
			}
			latest[en.MsgID] = v
		}
		pages++
		complete := pg.complete(len(page.Entries), 0)
		next := nextAfter(page, after, complete)
		progress(apitype.VerifyProgress{Phase: "journal", Rows: res.Rows, Pages: pages})
		if complete || next <= after {
			break
		}
		after = next
	}
	res.Undecryptable = len(undecryptable)
	res.Messages = len(latest)

	var plan repairPlan
	var examples []apitype.VerifyExample
	add := func(kind, msgid string, id int64) {
		examples = append(examples, apitype.VerifyExample{MsgID: msgid, Kind: kind, JournalID: id})
	}
	ids := make([]string, 0, len(latest)+len(local))
	for id := range latest {
		ids = append(ids, id)
	}
	for id := range local {
		if latest[id] == nil {
			ids = append(ids, id)
		}
	}
	known, err := e.db.Known(acct, ids)
	if err != nil {
		return res, plan, err
	}
	sort.Strings(ids)
	for _, id := range ids {
		j, l := latest[id], local[id]
		_, here := local[id]
		k := known[id]
		switch {
		case j == nil:
			if k.Pending {
				res.Pending++
				continue
			}
			res.NeverPushed++
			add(apitype.VerifyNeverPushed, id, 0)
			plan.push = append(plan.push, l)
		case j.deleted && here:
			if !e.opts.ReplicateDeletes || k.Pending {
				if k.Pending {
					res.Pending++
				}
				continue // this device keeps what others delete, or its copy is on its way
			}
			res.Differs++
			add(apitype.VerifyDiffers, id, j.id)
			if k.HasFile && k.File.Hash != l.hash {
				plan.push = append(plan.push, l) // edited here unseen: see below
			} else {
				plan.apply = append(plan.apply, *j) // a late copy: the delete wins, as in decide
			}
		case j.deleted:
		case !here:
			if k.Pending {
				res.Pending++
				continue
			}
			if k.HasVersion && k.Version.Deleted {
				res.DeletedHereAliveThere++
				add(apitype.VerifyDeletedHere, id, j.id)
				if v := k.Version; v.Own && (v.JournalID == 0 || v.JournalID > j.id) {
					// This device's delete, which the journal lacks (lost
					// by the server, or not sent yet): sent again.
					plan.deletes = append(plan.deletes, id)
				} else {
					plan.apply = append(plan.apply, *j)
				}
				continue
			}
			res.MissingHere++
			add(apitype.VerifyMissingHere, id, j.id)
			plan.apply = append(plan.apply, *j)
		case l.hash != j.hash:
			if k.Pending {
				res.Pending++
				continue
			}
			res.Differs++
			add(apitype.VerifyDiffers, id, j.id)
			if !k.HasFile || k.File.Hash != l.hash {
				// The file is not what this device last recorded of it: an
				// edit the watcher and the rescans missed (its size and
				// time kept). It is the newest version: it is sent.
				plan.push = append(plan.push, l)
			} else {
				plan.apply = append(plan.apply, *j)
			}
		}
	}
	if len(examples) > maxVerifyExamples {
		examples = examples[:maxVerifyExamples]
	}
	res.Examples = append(examples, undecryptableEx[:min(len(undecryptableEx), maxVerifyExamples-len(examples))]...)
	if res.Examples == nil {
		res.Examples = []apitype.VerifyExample{}
	}
	if len(res.UndecryptableKeys) == 0 {
		res.UndecryptableKeys = nil
	}
	res.InSync = res.MissingHere+res.NeverPushed+res.Differs+res.Undecryptable+res.DeletedHereAliveThere == 0
	res.Hint = verifyHint(res)
	return res, plan, nil
}

// verifyHint says what to do about what a verify found.
func verifyHint(r apitype.VerifyResult) string {
	var hints []string
	if r.MissingHere+r.NeverPushed+r.Differs+r.DeletedHereAliveThere > 0 {
		hints = append(hints, "`chatsync verify --repair` writes here what the journal holds and sends what it lacks")
	}
	if r.Undecryptable > 0 {
		var ids []string
		for id := range r.UndecryptableKeys {
			if id == "" {
				id = "(not a chatsync entry)"
			}
			ids = append(ids, id)
		}
		sort.Strings(ids)
		hints = append(hints, fmt.Sprintf("%d rows are sealed under key(s) %s this device does not hold: import them with `chatsync key import` (from `chatsync key export` on the device that has them)", r.Undecryptable, strings.Join(ids, ", ")))
	}
	if r.Pending > 0 {
		hints = append(hints, fmt.Sprintf("%d changes made here are still being sent", r.Pending))
	}
	return strings.Join(hints, "; ")
}

// localMessages reads every message of the store, by content. It runs in
// the Run goroutine, which owns the store.
func (e *Engine) localMessages() map[string]localMessage {
	out := map[string]localMessage{}
	e.store.Scan("", func(p place) {
		s := e.store.Look(p, nil, true)
		if s.kind == seenMessage {
			out[s.msg.MsgID] = localMessage{msgid: s.msg.MsgID, path: p.loc, hash: s.msg.Hash}
		}
	}, func(string, string, bool) {})
	return out
}

// repair carries out plan in the Run goroutine: the journal's versions are
// written as a page is, the files to send are queued as new versions, the
// deletes to send again are queued.
func (e *Engine) repair(plan repairPlan) (applied, queued int, err error) {
	acct := e.opts.Account
	pg := &pagePlan{files: map[string]*store.FileRecord{}}
	for _, j := range plan.apply {
		en, err := e.opts.Keyring.Open(j.data, acct)
		if err != nil {
			continue
		}
		cur, hasFile, err := e.db.FileByMsgID(acct, en.MsgID)
		if err != nil {
			return applied, queued, err
		}
		pg.row = account.JournalEntry{ID: j.id, Data: j.data}
		a := store.Applied{MsgID: en.MsgID, JournalID: j.id, Device: en.Device, Time: en.Time, KeyID: envelopeKeyID(j.data)}
		if j.deleted {
			a.Deleted, a.Path = true, cur.Path
			op := &storeOp{loc: cur.Path, remove: true}
			if !hasFile {
				op = nil
			}
			pg.add(a, op)
			continue
		}
		msg, err := msgdir.Parse(en.Message, MaxIncomingBytes)
		if err != nil {
			continue
		}
		at := ""
		if hasFile {
			at = cur.Path
		}
		loc, err := e.store.Place(msg, at, &pg.names)
		if err != nil {
			e.log.Warn("verify: cannot place a message from the journal", "err", err)
			continue
		}
		a.Hash, a.Path = msg.Hash, loc
		pg.add(a, &storeOp{loc: loc, from: at, data: msg.Canonical, device: en.Device})
	}
	written, failed, werr := e.writePage(pg)
	if len(written) > 0 {
		if err := e.db.ApplyPage(acct, store.Page{Cursor: e.cursor, Applied: written}); err != nil {
			return applied, queued, err
		}
	}
	applied = len(written)
	if len(failed) > 0 {
		return applied, queued, werr
	}
	for _, l := range plan.push {
		msg, err := e.store.Read(l.path)
		if err != nil || msg.MsgID != l.msgid {
			continue // changed since: its own event follows
		}
		held, hasHeld, err := e.db.Version(acct, l.msgid)
		if err != nil {
			return applied, queued, err
		}
		f := store.FileRecord{Path: l.path, MsgID: l.msgid, Hash: msg.Hash}
		if s := e.store.Look(place{loc: l.path}, nil, true); s.kind == seenMessage {
			f.Size, f.MTime = s.size, s.mtime
		}
		e.queuePut(f, msg.Canonical, held, hasHeld)
		queued++
	}
	for _, id := range plan.deletes {
		held, hasHeld, err := e.db.Version(acct, id)
		if err != nil {
			return applied, queued, err
		}
		e.queueDelete(store.FileRecord{MsgID: id}, held, hasHeld)
		queued++
	}
	e.flush()
	e.pushAt = time.Time{}
	return applied, queued, nil
}

// waitSent waits until the outbox holds nothing but what the server
// refused.
func (e *Engine) waitSent(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st := e.Status()
		if st.OutboxDepth <= len(st.Held) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the repaired messages to be sent: %w", ctx.Err())
		case <-e.stopped:
			return errNotRunning
		case <-tick.C:
		}
	}
}
