package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Op is what an outbox entry does to a message.
type Op string

// The operations of a journal entry.
const (
	OpPut    Op = "put"
	OpDelete Op = "delete"
)

// Push is what the engine enqueues: one sealed version of one message.
type Push struct {
	MsgID string
	Op    Op
	// Envelope is the sealed journal entry data, sealed once: after a crash
	// the engine recognises its own rows on the server by exact match.
	Envelope string
	// Hash is the content hash of the version (opaque to the store).
	Hash string
	// Time is the time sealed into the envelope and KeyID the key; they
	// become the held version's once the entry is stored.
	Time  time.Time
	KeyID string
	// File, if set, updates the file index in the same transaction, so the
	// index never says a version is handled that is not in the outbox: for
	// OpPut it is the file that holds this version (upserted as by
	// PutFiles); for OpDelete, the removed file (its entry is dropped).
	File *FileRecord
}

// Entry is a durable outbox entry.
type Entry struct {
	Seq       uint64 // position in the outbox; entries are sent in Seq order
	Token     string // opaque random id sent as the row's "id"; never the msgid
	MsgID     string
	Op        Op
	Envelope  string
	Hash      string
	Enqueued  time.Time // when the first still-unsent version of MsgID was enqueued
	Attempts  int       // sends that did not store the entry
	LastError string
	// RetryAt, when set, holds the entry back until then: the server
	// refused this entry itself (journal_id null, or the row its reply
	// died on), so it waits with its own backoff while the entries behind
	// it are sent.
	RetryAt time.Time
}

// wireOverhead is the JSON framing around one row in put_journal_entries'
// data array: {"id":"","data":""} and a comma.
const wireOverhead = len(`{"id":"","data":""},`)

// WireSize is the number of bytes the entry adds to the data field of
// put_journal_entries (before form encoding). NextBatch bounds batches by it.
func (e Entry) WireSize() int { return wireOverhead + len(e.Token) + len(e.Envelope) }

// entryRecord is the stored form of an Entry; the Seq is the key.
type entryRecord struct {
	Token     string    `json:"token"`
	MsgID     string    `json:"msgid"`
	Op        Op        `json:"op"`
	Envelope  string    `json:"envelope"`
	Hash      string    `json:"hash,omitempty"`
	Enqueued  time.Time `json:"enqueued"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"`
	Time      time.Time `json:"time,omitzero"`
	KeyID     string    `json:"key_id,omitempty"`
}

func (r entryRecord) entry(seq uint64) Entry {
	return Entry{Seq: seq, Token: r.Token, MsgID: r.MsgID, Op: r.Op, Envelope: r.Envelope,
		Hash: r.Hash, Enqueued: r.Enqueued, Attempts: r.Attempts, LastError: r.LastError, RetryAt: r.RetryAt}
}

// Batch is a group of outbox entries sent in one put_journal_entries call.
type Batch struct {
	Entries []Entry
	// Watermark is the highest journal id known to this device when the
	// batch was recorded. The server gives the batch's rows higher ids, so a
	// reconciliation reads this device's rows with after_id = Watermark.
	Watermark int64
	Started   time.Time
	// HeldUntil is the earliest RetryAt of the entries NextBatch passed
	// over because they are held back; zero when none is.
	HeldUntil time.Time
}

// inflightRecord is the in-flight marker, stored before the POST.
type inflightRecord struct {
	Seqs      []uint64  `json:"seqs"`
	Tokens    []string  `json:"tokens"`
	Watermark int64     `json:"watermark"`
	Started   time.Time `json:"started"`
}

// Result is the server's answer for one row of a batch, or what a
// reconciliation found for it.
type Result struct {
	Token string
	// JournalID is the id the server gave the row; 0 when it returned null
	// (the row was not stored).
	JournalID int64
	// Err, optional, is kept as the entry's LastError when JournalID is 0.
	Err string
	// RetryAt, optional, holds a not-stored entry back until then (see
	// Entry.RetryAt); zero sends it again with the next batch.
	RetryAt time.Time
}

func (p Push) validate() error {
	switch {
	case p.MsgID == "":
		return errors.New("enqueue: empty msgid")
	case p.Op != OpPut && p.Op != OpDelete:
		return fmt.Errorf("enqueue %s: bad op %q", p.MsgID, p.Op)
	case p.Envelope == "":
		return fmt.Errorf("enqueue %s: empty envelope", p.MsgID)
	case p.File != nil && p.File.MsgID != p.MsgID:
		return fmt.Errorf("enqueue %s: file %q has msgid %q", p.MsgID, p.File.Path, p.File.MsgID)
	case p.File != nil:
		return p.File.validate()
	}
	return nil
}

// Enqueue durably adds one version to acct's outbox; see EnqueueMany.
func (db *DB) Enqueue(acct string, p Push) (Entry, error) {
	es, err := db.EnqueueMany(acct, []Push{p})
	if err != nil {
		return Entry{}, err
	}
	return es[0], nil
}

// EnqueueMany durably adds versions to acct's outbox in one transaction (one
// fsync for a whole backlog), in order, and returns the stored entries.
//
// Coalescing: if msgid already has a queued entry that is not in flight,
// that entry is replaced in place: it keeps its Seq (its position) and its
// Enqueued time, and gets the new op, envelope and hash, a new token and
// zero attempts. Keeping the position means a message that is edited again
// and again is not pushed back behind newer messages (no starvation), and
// "age of oldest unsent entry" keeps measuring how long that message has
// waited. Order only matters between versions of the same msgid, and there
// is only ever one queued version. If the existing entry is in flight (its
// old envelope may already be on the server), the new version is appended
// at the end instead, so it lands after the in-flight one in the journal.
func (db *DB) EnqueueMany(acct string, ps []Push) ([]Entry, error) {
	for _, p := range ps {
		if err := p.validate(); err != nil {
			return nil, err
		}
	}
	// Tokens are drawn outside the transaction.
	tokens := make([]string, len(ps))
	for i := range tokens {
		t, err := newToken()
		if err != nil {
			return nil, err
		}
		tokens[i] = t
	}
	now := db.now()
	out := make([]Entry, len(ps))
	err := db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		inflight, err := inflightSeqs(a)
		if err != nil {
			return err
		}
		added := uint64(0)
		for i, p := range ps {
			rec := entryRecord{Token: tokens[i], MsgID: p.MsgID, Op: p.Op, Envelope: p.Envelope, Hash: p.Hash, Enqueued: now, Time: p.Time, KeyID: p.KeyID}
			var seq uint64
			if old, ok := pendingSeq(a, p.MsgID); ok && !inflight[old] {
				var prev entryRecord
				found, err := getRec(a.outbox, u64(old), &prev)
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("pending %s points to missing outbox entry %d", p.MsgID, old)
				}
				seq, rec.Enqueued = old, prev.Enqueued
			} else {
				if seq, err = a.outbox.NextSequence(); err != nil {
					return err
				}
				if err := a.pending.Put([]byte(p.MsgID), u64(seq)); err != nil {
					return err
				}
				added++
			}
			if err := putRec(a.outbox, u64(seq), rec); err != nil {
				return err
			}
			if p.File != nil {
				if p.Op == OpPut {
					err = indexFile(a, *p.File, false)
				} else {
					err = unindexMsgID(a, p.MsgID, p.File.Path)
				}
				if err != nil {
					return err
				}
			}
			out[i] = rec.entry(seq)
		}
		return putU64(a.state, keyOutboxLen, getU64(a.state, keyOutboxLen)+added)
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	return out, nil
}

// pendingSeq returns the seq of the newest outbox entry for msgid.
func pendingSeq(a *account, msgid string) (uint64, bool) {
	if a.pending == nil {
		return 0, false
	}
	v := a.pending.Get([]byte(msgid))
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func readInFlight(a *account) (*inflightRecord, error) {
	var r inflightRecord
	ok, err := getJSON(a.state, keyInFlight, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

func inflightSeqs(a *account) (map[uint64]bool, error) {
	r, err := readInFlight(a)
	if r == nil || err != nil {
		return nil, err
	}
	m := make(map[uint64]bool, len(r.Seqs))
	for _, s := range r.Seqs {
		m[s] = true
	}
	return m, nil
}

// Pending returns the newest outbox entry for msgid, queued or in flight.
// The poller uses it to leave alone a message with a local version that has
// not been pushed yet.
func (db *DB) Pending(acct, msgid string) (Entry, bool, error) {
	var e Entry
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		seq, found := pendingSeq(a, msgid)
		if !found {
			return nil
		}
		var rec entryRecord
		var err error
		if ok, err = getRec(a.outbox, u64(seq), &rec); err != nil {
			return err
		}
		e = rec.entry(seq)
		return nil
	})
	return e, ok, err
}

// NextBatch takes the oldest outbox entries, in order, at most maxCount of
// them and at most maxBytes of WireSize in total (but always at least one,
// so an entry larger than maxBytes is still sent, alone), passing over the
// entries held back until a later time (Entry.RetryAt), and durably records
// them as in flight before returning, with the watermark and start time.
// The engine must call it BEFORE the POST and then exactly one of
// CompleteBatch or FailBatch. An empty Batch means the outbox is empty and
// nothing was recorded. While a batch is in flight NextBatch fails with
// ErrBatchInFlight. Cost: O(batch).
func (db *DB) NextBatch(acct string, maxCount, maxBytes int) (Batch, error) {
	if maxCount < 1 || maxBytes < 1 {
		return Batch{}, fmt.Errorf("next batch: bad bounds count=%d bytes=%d", maxCount, maxBytes)
	}
	var b Batch
	err := db.update(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		if r, err := readInFlight(a); err != nil || r != nil {
			if err == nil {
				err = ErrBatchInFlight
			}
			return err
		}
		size := 0
		now := db.now()
		c := a.outbox.Cursor()
		for k, v := c.First(); k != nil && len(b.Entries) < maxCount; k, v = c.Next() {
			rec, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if now.Before(rec.RetryAt) {
				if b.HeldUntil.IsZero() || rec.RetryAt.Before(b.HeldUntil) {
					b.HeldUntil = rec.RetryAt
				}
				continue
			}
			e := rec.entry(binary.BigEndian.Uint64(k))
			if len(b.Entries) > 0 && size+e.WireSize() > maxBytes {
				break
			}
			size += e.WireSize()
			b.Entries = append(b.Entries, e)
		}
		if len(b.Entries) == 0 {
			return nil
		}
		b.Watermark = getI64(a.state, keyHighwater)
		b.Started = db.now()
		r := inflightRecord{Watermark: b.Watermark, Started: b.Started}
		for _, e := range b.Entries {
			r.Seqs = append(r.Seqs, e.Seq)
			r.Tokens = append(r.Tokens, e.Token)
		}
		return putJSON(a.state, keyInFlight, r)
	})
	if err != nil {
		return Batch{}, fmt.Errorf("next batch: %w", err)
	}
	return b, nil
}

func decodeEntry(v []byte) (entryRecord, error) {
	var rec entryRecord
	if err := decodeRec(v, &rec); err != nil {
		return rec, fmt.Errorf("decode outbox entry: %w", err)
	}
	return rec, nil
}

// InFlight returns the batch that is in flight, if any. At start-up a batch
// found here was sent (or maybe sent) by a daemon that died before it knew
// the outcome: the engine must reconcile it (read its own rows above
// Watermark back from the server, match them by exact Envelope) and call
// CompleteBatch with what it matched; it must never send it again blindly.
//
// Reconcile only once the server can no longer be inserting the batch: after
// a client-side timeout the server may still be working through the rows,
// and a row that is not visible yet would be sent twice. Wait out the
// server's request time limit (or the batch's Started plus a margin) first.
func (db *DB) InFlight(acct string) (*Batch, bool, error) {
	var b *Batch
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		r, err := readInFlight(a)
		if r == nil || err != nil {
			return err
		}
		b = &Batch{Watermark: r.Watermark, Started: r.Started}
		for _, seq := range r.Seqs {
			rec, err := inFlightEntry(a, seq)
			if err != nil {
				return err
			}
			b.Entries = append(b.Entries, rec.entry(seq))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("in flight: %w", err)
	}
	return b, b != nil, nil
}

// CompleteBatch records the outcome of the in-flight batch in ONE
// transaction. For each result with a journal id: the mapping token →
// journal id, the held version of the msgid (journal id, hash, deleted) and
// the removal of the entry from the outbox. Entries of the batch whose
// result has no journal id (null) or that have no result at all (the server
// skipped the row, or a reconciliation did not find it) were not stored:
// they stay queued in place with Attempts+1 and LastError, unless a newer
// version of the same msgid was enqueued meanwhile, which then supersedes
// them and they are dropped. The in-flight marker is cleared.
//
// A held version only moves forward: if the msgid already holds a version
// with a higher journal id (applied from another device), it is kept.
// A result whose token is not in the batch fails the whole call with
// ErrUnknownToken and commits nothing. Cost: O(batch).
func (db *DB) CompleteBatch(acct string, results []Result) error {
	err := db.update(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		r, err := readInFlight(a)
		if err != nil {
			return err
		}
		if r == nil {
			return ErrNoBatchInFlight
		}
		byToken := make(map[string]Result, len(results))
		for _, res := range results {
			byToken[res.Token] = res
		}
		inBatch := make(map[string]bool, len(r.Tokens))
		for _, t := range r.Tokens {
			inBatch[t] = true
		}
		for t := range byToken {
			if !inBatch[t] {
				return fmt.Errorf("%w: %q", ErrUnknownToken, t)
			}
		}
		for i, seq := range r.Seqs {
			res, ok := byToken[r.Tokens[i]]
			if ok && res.JournalID > 0 {
				err = storeEntry(a, seq, res.JournalID)
			} else {
				reason := "server returned no row for this entry"
				if ok {
					reason = "server returned journal_id null"
					if res.Err != "" {
						reason = res.Err
					}
				}
				err = requeue(a, seq, reason, res.RetryAt)
			}
			if err != nil {
				return err
			}
		}
		return a.state.Delete(keyInFlight)
	})
	if err != nil {
		return fmt.Errorf("complete batch: %w", err)
	}
	return nil
}

// inFlightEntry reads the outbox entry seq of the in-flight batch, which
// must be there.
func inFlightEntry(a *account, seq uint64) (entryRecord, error) {
	var rec entryRecord
	ok, err := getRec(a.outbox, u64(seq), &rec)
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, fmt.Errorf("in-flight entry %d is missing from the outbox", seq)
	}
	return rec, nil
}

// storeEntry records that the outbox entry seq is on the server as
// journalID, and removes it from the outbox.
func storeEntry(a *account, seq uint64, journalID int64) error {
	rec, err := inFlightEntry(a, seq)
	if err != nil {
		return err
	}
	if err := putI64(a.sent, []byte(rec.Token), journalID); err != nil {
		return err
	}
	var held versionRecord
	if _, err := getRec(a.versions, []byte(rec.MsgID), &held); err != nil {
		return err
	}
	if journalID > held.JournalID {
		v := versionRecord{JournalID: journalID, Hash: rec.Hash, Deleted: rec.Op == OpDelete, Own: true, Time: rec.Time, KeyID: rec.KeyID}
		if err := putRec(a.versions, []byte(rec.MsgID), v); err != nil {
			return err
		}
	}
	if err := raiseI64(a.state, keyHighwater, journalID); err != nil {
		return err
	}
	if err := raiseCandidate(a, Anchor{ID: journalID, Data: DataHash(rec.Envelope)}); err != nil {
		return err
	}
	return removeEntry(a, seq, rec.MsgID)
}

// removeEntry deletes outbox entry seq and, if it is the newest entry of
// msgid, the pending index entry.
func removeEntry(a *account, seq uint64, msgid string) error {
	if err := a.outbox.Delete(u64(seq)); err != nil {
		return err
	}
	if cur, ok := pendingSeq(a, msgid); ok && cur == seq {
		if err := a.pending.Delete([]byte(msgid)); err != nil {
			return err
		}
	}
	if n := getU64(a.state, keyOutboxLen); n > 0 {
		return putU64(a.state, keyOutboxLen, n-1)
	}
	return nil
}

// requeue counts a failed attempt for the entry seq, which was definitely
// not stored, holding it back until retryAt (zero: not held); it is dropped
// if a newer version of its msgid is queued.
func requeue(a *account, seq uint64, reason string, retryAt time.Time) error {
	rec, err := inFlightEntry(a, seq)
	if err != nil {
		return err
	}
	if cur, ok := pendingSeq(a, rec.MsgID); ok && cur != seq {
		return removeEntry(a, seq, rec.MsgID)
	}
	rec.Attempts++
	rec.LastError = reason
	rec.RetryAt = retryAt
	return putRec(a.outbox, u64(seq), rec)
}

// FailBatch records that the POST of the in-flight batch DEFINITELY stored
// nothing: every entry stays queued in place with Attempts+1 and LastError
// set to cause, and the marker is cleared.
//
// Only failures where the request cannot have reached the server's insert
// loop are definite: the connection was never established (DNS, refused,
// TLS handshake), the request could not be built or written before any byte
// of the body left, or a complete reply rejected the request as a whole
// before processing (401/403 digest authentication, 400, 413, 429 with
// Retry-After). Everything else is AMBIGUOUS and must not be passed here:
// a timeout or reset after the body was sent, a lost or truncated response,
// a 5xx (the server inserts row by row without a transaction and may have
// died halfway), HTML or unparsable JSON, success:false after the body was
// accepted. For an ambiguous failure the engine leaves the batch in flight
// and reconciles it like a batch found at start-up (see InFlight).
func (db *DB) FailBatch(acct string, cause error) error {
	reason := "send failed"
	if cause != nil {
		reason = cause.Error()
	}
	err := db.update(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		r, err := readInFlight(a)
		if err != nil {
			return err
		}
		if r == nil {
			return ErrNoBatchInFlight
		}
		for _, seq := range r.Seqs {
			if err := requeue(a, seq, reason, time.Time{}); err != nil {
				return err
			}
		}
		return a.state.Delete(keyInFlight)
	})
	if err != nil {
		return fmt.Errorf("fail batch: %w", err)
	}
	return nil
}

// Held returns the outbox entries held back by RetryAt (whether or not
// that time has passed), in outbox order: the entries the server refused.
// It reads the whole outbox (O(outbox)); the engine calls it once at start
// and then follows the batches' results.
func (db *DB) Held(acct string) ([]Entry, error) {
	var out []Entry
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		return a.outbox.ForEach(func(k, v []byte) error {
			rec, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if !rec.RetryAt.IsZero() {
				out = append(out, rec.entry(binary.BigEndian.Uint64(k)))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("held entries: %w", err)
	}
	return out, nil
}

// JournalIDOf returns the journal id the server gave the row sent with
// token, if CompleteBatch recorded one (and no ResetAccount forgot it since).
func (db *DB) JournalIDOf(acct, token string) (int64, bool, error) {
	var id int64
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if a.sent != nil {
			if v := a.sent.Get([]byte(token)); len(v) == 8 {
				id = int64(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	return id, id != 0, err
}

// Stats are the numbers status shows for an account.
type Stats struct {
	Cursor       int64
	Highwater    int64     // highest journal id known: the cursor or this device's own newest row
	OutboxDepth  int       // entries not yet stored on the server, in flight included
	InFlight     int       // entries of the in-flight batch
	OldestUnsent time.Time // Enqueued of the first outbox entry; zero if empty
}

// Stats returns acct's status numbers in O(1).
func (db *DB) Stats(acct string) (Stats, error) {
	var s Stats
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		s.Cursor = getI64(a.state, keyCursor)
		s.Highwater = getI64(a.state, keyHighwater)
		s.OutboxDepth = int(getU64(a.state, keyOutboxLen))
		r, err := readInFlight(a)
		if err != nil {
			return err
		}
		if r != nil {
			s.InFlight = len(r.Seqs)
		}
		if _, v := a.outbox.Cursor().First(); v != nil {
			rec, err := decodeEntry(v)
			if err != nil {
				return err
			}
			s.OldestUnsent = rec.Enqueued
		}
		return nil
	})
	return s, err
}
