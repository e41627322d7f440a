package accountserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The bbolt file (<data>/chatsync-server.db) has this layout:
//
//	meta/
//	  version   "1"
//	  last_ts   newest journal timestamp handed out ("YYYY-MM-DD HH:MM:SS")
//	journal/    its bucket sequence is the global journal id (auto_increment)
//	  <account>/            one bucket per account
//	    <id: 8 bytes BE>    encoded row (see encodeRow)
//	state/
//	  <account>/            changes made by write actions; they win over the seed
//	    aliases     JSON []string
//	    forwarding  JSON map[string]string
//	    temporary   JSON TemporaryRule
//	    privacy     "0" or "1"
var (
	bucketMeta    = []byte("meta")
	bucketJournal = []byte("journal")
	bucketState   = []byte("state")

	keyVersion = []byte("version")
	keyLastTS  = []byte("last_ts")
)

const schemaVersion = "1"

func initDB(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil && string(v) != schemaVersion {
			return fmt.Errorf("database schema version %q, this server knows %q", v, schemaVersion)
		}
		if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketJournal); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketState)
		return err
	})
}

// Entry is one stored journal row, as get_journal_entries returns it.
type Entry struct {
	ID        uint64
	Timestamp string // "YYYY-MM-DD HH:MM:SS", UTC
	Account   string
	UUID      string
	IPAddress string
	Data      string
}

func idKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// encodeRow stores timestamp, uuid, ip and data, each length-prefixed
// (uvarint) except data, which runs to the end.
func encodeRow(ts, uuid, ip, data string) []byte {
	b := make([]byte, 0, len(ts)+len(uuid)+len(ip)+len(data)+8)
	for _, s := range []string{ts, uuid, ip} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, data...)
}

var errCorruptRow = errors.New("corrupt journal row")

// decodeRowHead returns timestamp, uuid, ip and the offset of data, without
// copying data (callers that skip the row avoid the allocation).
func decodeRowHead(b []byte) (ts, uuid, ip string, rest []byte, err error) {
	var parts [3]string
	for i := range parts {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", "", "", nil, errCorruptRow
		}
		parts[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return parts[0], parts[1], parts[2], b, nil
}

// journalQuery is a get_journal_entries request after parsing.
type journalQuery struct {
	account        string
	exceptUUID     string // "" means no filter
	afterID        int64
	afterTimestamp string // "" means no filter
	limit          int
	// shuffle gives same-second rows no defined order (see
	// Options.ShuffleSameSecond).
	shuffle bool
}

// journalStore keeps the journal: the bbolt file (boltJournal, the
// default) or CDRTool's client_journal table in MySQL/MariaDB
// (mysqlJournal). The account state of the write actions (aliases,
// forwarding, temporary rule, privacy) stays in the bbolt file with either
// store: it is per server, not shared between server processes.
type journalStore interface {
	// query returns a get_journal_entries page, in id order.
	query(q journalQuery) ([]Entry, error)
	// put stores the rows of one put_journal_entries request for account
	// and returns their ids, in order.
	put(account, uuid, ip string, data []string) ([]uint64, error)
	// delete removes the account's rows with these ids; others are
	// ignored.
	delete(account string, ids []int64) error
	// entries returns every row of account, in id order (for tests).
	entries(account string) ([]Entry, error)
	// pollInterval is how often a held get re-reads the journal to see
	// rows put through other server processes; 0 means only this
	// process writes (the in-process put signal is enough).
	pollInterval() time.Duration
	// close releases what the store holds (not the bbolt file, which the
	// Server closes).
	close() error
}

// boltJournal is the journal in the bbolt file, in the journal bucket.
type boltJournal struct {
	db      *bolt.DB
	now     func() time.Time
	shuffle func(n int, swap func(i, j int))
}

func (j *boltJournal) pollInterval() time.Duration { return 0 }
func (j *boltJournal) close() error                { return nil }

// query walks the account's rows from after_id+1 in id order. Rows
// get non-decreasing timestamps (see putRows), so id order is the
// timestamp order of the real ORDER BY timestamp, and a page never needs
// more than limit rows in memory (with q.shuffle, plus the ids of the
// rest of its last second).
func (s *boltJournal) query(q journalQuery) ([]Entry, error) {
	out := []Entry{}
	if q.limit <= 0 {
		return out, nil
	}
	start := uint64(1)
	if q.afterID >= 0 {
		start = uint64(q.afterID) + 1
	}
	if start == 0 { // overflow of MaxInt64+1 cannot happen, but be safe
		return out, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal).Bucket([]byte(q.account))
		if b == nil {
			return nil
		}
		// match decodes a row (all but its data) and reports whether the
		// filters keep it.
		match := func(k, v []byte) (e Entry, data []byte, ok bool, err error) {
			ts, uuid, ip, data, err := decodeRowHead(v)
			if err != nil {
				return Entry{}, nil, false, fmt.Errorf("row %x: %w", k, err)
			}
			e = Entry{ID: binary.BigEndian.Uint64(k), Timestamp: ts, Account: q.account, UUID: uuid, IPAddress: ip}
			ok = (q.exceptUUID == "" || !strings.EqualFold(uuid, q.exceptUUID)) &&
				(q.afterTimestamp == "" || ts > q.afterTimestamp)
			return e, data, ok, nil
		}
		c := b.Cursor()
		k, v := c.Seek(idKey(start))
		for ; k != nil && len(out) < q.limit; k, v = c.Next() {
			e, data, ok, err := match(k, v)
			if err != nil {
				return err
			}
			if ok {
				e.Data = string(data)
				out = append(out, e)
			}
		}
		if !q.shuffle {
			return nil
		}
		if len(out) == q.limit {
			// The page is cut at its cap: k is the first row not taken.
			// The rest of the last second competes with the rows of that
			// second already taken for their places.
			var rest []uint64
			last := out[len(out)-1].Timestamp
			for ; k != nil; k, v = c.Next() {
				e, _, ok, err := match(k, v)
				if err != nil {
					return err
				}
				if e.Timestamp > last {
					break // timestamps never decrease in id order
				}
				if ok {
					rest = append(rest, e.ID)
				}
			}
			if len(rest) > 0 {
				if err := s.drawLastSecond(b, out, rest, match); err != nil {
					return err
				}
			}
		}
		for i := 0; i < len(out); {
			j := i + 1
			for j < len(out) && out[j].Timestamp == out[i].Timestamp {
				j++
			}
			sec := out[i:j]
			s.shuffle(len(sec), func(a, b int) { sec[a], sec[b] = sec[b], sec[a] })
			i = j
		}
		return nil
	})
	return out, err
}

// drawLastSecond replaces the rows of out's last second by as many rows
// drawn at random from them and rest (the ids of that second's other
// matching rows), reading the rows drawn from rest from b.
func (s *boltJournal) drawLastSecond(b *bolt.Bucket, out []Entry, rest []uint64, match func(k, v []byte) (Entry, []byte, bool, error)) error {
	first := len(out) - 1
	for first > 0 && out[first-1].Timestamp == out[len(out)-1].Timestamp {
		first--
	}
	tail := out[first:]
	have := make(map[uint64]Entry, len(tail))
	pool := make([]uint64, 0, len(tail)+len(rest))
	for _, e := range tail {
		have[e.ID] = e
		pool = append(pool, e.ID)
	}
	pool = append(pool, rest...)
	s.shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	for i, id := range pool[:len(tail)] {
		if e, ok := have[id]; ok {
			tail[i] = e
			continue
		}
		k := idKey(id)
		e, data, ok, err := match(k, b.Get(k))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("row %x: no longer matches", k)
		}
		e.Data = string(data)
		tail[i] = e
	}
	return nil
}

// shuffle permutes n elements with swap, using the server's seeded
// source.
func (s *Server) shuffle(n int, swap func(i, j int)) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	s.rng.Shuffle(n, swap)
}

// put inserts rows for one account in one transaction (one fsync) and
// returns their ids. Ids come from one global sequence, like MySQL's
// auto_increment. The timestamp is now, but never earlier than the newest
// timestamp already handed out, so timestamps are non-decreasing in id
// order even if the clock steps back.
func (s *boltJournal) put(account, uuid, ip string, data []string) ([]uint64, error) {
	ids := make([]uint64, 0, len(data))
	if len(data) == 0 {
		return ids, nil
	}
	now := s.now().UTC().Format(timeLayout)
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		ts := now
		if last := string(meta.Get(keyLastTS)); last > ts {
			ts = last
		}
		if err := meta.Put(keyLastTS, []byte(ts)); err != nil {
			return err
		}
		root := tx.Bucket(bucketJournal)
		b, err := root.CreateBucketIfNotExists([]byte(account))
		if err != nil {
			return err
		}
		for _, d := range data {
			id, err := root.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(idKey(id), encodeRow(ts, uuid, ip, d)); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// delete removes the account's rows with the given ids; ids of other
// accounts and unknown ids are ignored.
func (s *boltJournal) delete(account string, ids []int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal).Bucket([]byte(account))
		if b == nil {
			return nil
		}
		for _, id := range ids {
			if id <= 0 {
				continue
			}
			if err := b.Delete(idKey(uint64(id))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Entries returns every journal row stored for account, in id order. It is
// meant for tests that assert on what the server holds.
func (s *Server) Entries(account string) ([]Entry, error) {
	return s.journal.entries(account)
}

func (s *boltJournal) entries(account string) ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal).Bucket([]byte(strings.ToLower(account)))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			ts, uuid, ip, data, err := decodeRowHead(v)
			if err != nil {
				return err
			}
			out = append(out, Entry{binary.BigEndian.Uint64(k), ts, strings.ToLower(account), uuid, ip, string(data)})
			return nil
		})
	})
	return out, err
}

// accountState is the mutable part of an account: the seed, overridden by
// whatever write actions stored.
type accountState struct {
	Aliases    []string
	Forwarding map[string]string
	Temporary  TemporaryRule
	Privacy    bool
}

func (s *Server) seedState(a *Account) accountState {
	st := accountState{
		Aliases:    append([]string(nil), a.Aliases...),
		Forwarding: map[string]string{},
		Temporary:  TemporaryRule{Groups: []string{"everybody"}},
		Privacy:    a.Privacy,
	}
	for k, v := range a.Forwarding {
		if v != "" {
			st.Forwarding[k] = v
		}
	}
	if t := a.AcceptRules.Temporary; t != nil {
		st.Temporary = TemporaryRule{Groups: append([]string{}, t.Groups...), Duration: t.Duration}
	}
	return st
}

func loadState(tx *bolt.Tx, st *accountState, account string) error {
	b := tx.Bucket(bucketState).Bucket([]byte(account))
	if b == nil {
		return nil
	}
	// Decode into fresh values: json.Unmarshal merges into a non-nil
	// map, which would resurrect seeded forwardings that were removed.
	var (
		aliases    []string
		forwarding map[string]string
		temporary  TemporaryRule
	)
	for _, f := range []struct {
		key string
		dst any
		set func()
	}{
		{"aliases", &aliases, func() { st.Aliases = aliases }},
		{"forwarding", &forwarding, func() { st.Forwarding = forwarding }},
		{"temporary", &temporary, func() { st.Temporary = temporary }},
	} {
		if v := b.Get([]byte(f.key)); v != nil {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return fmt.Errorf("state %s/%s: %w", account, f.key, err)
			}
			f.set()
		}
	}
	if st.Forwarding == nil {
		st.Forwarding = map[string]string{}
	}
	if v := b.Get([]byte("privacy")); v != nil {
		st.Privacy = bytes.Equal(v, []byte("1"))
	}
	return nil
}

// state returns the account's current mutable data.
func (s *Server) state(a *Account) (accountState, error) {
	st := s.seedState(a)
	err := s.db.View(func(tx *bolt.Tx) error { return loadState(tx, &st, a.Address) })
	return st, err
}

// updateState runs fn on the current state inside one write transaction
// and stores the fields fn changed. fn returning an error aborts.
func (s *Server) updateState(a *Account, fn func(st *accountState) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		st := s.seedState(a)
		if err := loadState(tx, &st, a.Address); err != nil {
			return err
		}
		before := st.fields()
		if err := fn(&st); err != nil {
			return err
		}
		after := st.fields()
		for k, v := range after {
			if bytes.Equal(before[k], v) {
				continue // only changed fields override the seed
			}
			b, err := tx.Bucket(bucketState).CreateBucketIfNotExists([]byte(a.Address))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// fields returns the stored form of each state field, keyed like the
// state bucket.
func (st *accountState) fields() map[string][]byte {
	m := map[string][]byte{"privacy": []byte("0")}
	if st.Privacy {
		m["privacy"] = []byte("1")
	}
	m["aliases"], _ = json.Marshal(st.Aliases)
	m["forwarding"], _ = json.Marshal(st.Forwarding)
	m["temporary"], _ = json.Marshal(st.Temporary)
	return m
}
