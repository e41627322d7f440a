package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/watch"
)

// dbStore is a chat client's history database (SPEC §6b): this account's
// rows of Blink Qt's or Blink Cocoa's message table, with the rules of
// store/blinkdb (the client's formats, short locks, a merge into a row the
// client has already).
//
// The tables have no change column and the clients update rows in place,
// so a change is found by comparing whole rows: every scan reads a
// snapshot of the account's rows and the engine compares each with its
// index. A location is a row's unique key within the account,
// "remote_uri/msgid". A Blink Qt soft delete (state 'deleted') is a
// deleted message: its row is not reported.
type dbStore struct {
	opts    *Options
	log     *slog.Logger
	known   func() bool
	dialect blinkdb.Dialect

	db *blinkdb.DB // nil until it opens
	// rows is the last snapshot, by location, kept up to date with what
	// chatsync writes; parsed caches each row's message by the row's hash.
	rows   map[string]blinkdb.Row
	parsed map[string]parsedRow
	// problem is why the last scan could not be used, shown as the pause
	// until a scan works again.
	problem string
	checked time.Time // when the problem was last looked at
	// scanned is what the files looked like when the snapshot was taken.
	scanned watch.DatabaseSig
}

// Stale reports whether the database changed since the snapshot.
func (s *dbStore) Stale() bool { return watch.Sig(s.opts.Store) != s.scanned }

type parsedRow struct {
	rowHash string
	msg     msgdir.Message
	err     error
}

func dbLoc(k blinkdb.Key) string { return k.RemoteURI + "/" + k.MsgID }

func (s *dbStore) Watch(ctx context.Context, ready func(), out chan<- watch.Change) error {
	return watch.File(ctx, watch.FileOptions{Path: s.opts.Store, RescanInterval: s.opts.RescanInterval, Ready: ready}, out)
}

func (s *dbStore) Unusable() string {
	if _, err := os.Stat(s.opts.Store); err != nil {
		s.Close()
		return s.explain(blinkdb.ErrNoDatabase)
	}
	if s.db == nil {
		db, err := blinkdb.Open(s.opts.Store, s.dialect, s.opts.Account)
		if err != nil {
			return s.explain(err)
		}
		s.db = db
	}
	if s.problem != "" && time.Since(s.checked) >= dbRecheck {
		// Paused on what a scan found: look again now and then.
		s.checked = time.Now()
		rows, err := s.db.Snapshot(context.Background())
		switch {
		case err != nil:
			s.problem = s.explain(err)
		case liveRows(rows) > 0 || !s.known():
			s.problem = ""
		}
	}
	return s.problem
}

// dbRecheck is how often a database the account is paused on is looked at
// again.
const dbRecheck = 5 * time.Second

func liveRows(rows map[blinkdb.Key]blinkdb.Row) int {
	n := 0
	for _, r := range rows {
		if !r.Deleted {
			n++
		}
	}
	return n
}

// explain turns an error of the database into the reason the account is
// paused: what is wrong and what to do.
func (s *dbStore) explain(err error) string {
	path := s.opts.Store
	switch {
	case errors.Is(err, blinkdb.ErrNoDatabase):
		return fmt.Sprintf("the %s history database %s is missing: start the chat client once, or correct store in the config; nothing is deleted meanwhile", s.dialect, path)
	case errors.Is(err, blinkdb.ErrNoTable):
		return fmt.Sprintf("%s has no message table of %s: check store and store_format in the config (`chatsync store find` lists the client databases); nothing is deleted meanwhile", path, s.dialect)
	case errors.Is(err, blinkdb.ErrUnknownVersion), errors.Is(err, blinkdb.ErrSchema):
		return fmt.Sprintf("%s: %v; chatsync leaves this database alone until it knows the table: upgrade chatsync", path, err)
	case errors.Is(err, blinkdb.ErrBusy):
		return fmt.Sprintf("%s stayed locked by another program: it is tried again", path)
	}
	return fmt.Sprintf("cannot use %s: %v", path, err)
}

func (s *dbStore) Scan(dir string, found func(place), unreadable func(loc, reason string, dir bool)) error {
	if s.db == nil {
		return errors.New("the database is not open")
	}
	before := watch.Sig(s.opts.Store)
	rows, err := s.db.Snapshot(context.Background())
	if err != nil {
		s.problem = s.explain(err)
		return err
	}
	s.checked = time.Now()
	if liveRows(rows) == 0 && s.known() {
		// A database the client recreated, or replaced by another, holds
		// none of the rows this device knows: taking that for deletions
		// would delete the account's history on every device.
		s.problem = fmt.Sprintf("%s holds no message of %s although this device knows messages in it: if the client's history was replaced by a new file, run `chatsync state rebuild` to write the account's history into it again from the journal; if you deleted every message on purpose, delete them on another device too. Nothing is deleted meanwhile",
			s.opts.Store, s.opts.Account)
		return errors.New(s.problem)
	}
	s.problem = ""
	s.scanned = before
	s.rows = make(map[string]blinkdb.Row, len(rows))
	for k, r := range rows {
		s.rows[dbLoc(k)] = r
	}
	for _, loc := range slices.Sorted(maps.Keys(s.rows)) {
		if !s.rows[loc].Deleted {
			found(place{loc: loc})
		}
	}
	return nil
}

func (s *dbStore) Look(p place, old *store.FileRecord, force bool) seen {
	r, ok := s.rows[p.loc]
	if !ok || r.Deleted {
		return seen{kind: seenGone}
	}
	msg, err := s.message(p.loc, r)
	switch {
	case err != nil:
		return seen{kind: seenRefused, reason: err.Error()}
	case old != nil && !force && old.Hash == msg.Hash:
		return seen{kind: seenUnchanged}
	}
	return seen{kind: seenMessage, msg: msg}
}

// message is the row's message, parsed once per version of the row.
func (s *dbStore) message(loc string, r blinkdb.Row) (msgdir.Message, error) {
	if s.parsed == nil {
		s.parsed = map[string]parsedRow{}
	}
	if p, ok := s.parsed[loc]; ok && p.rowHash == r.Hash {
		return p.msg, p.err
	}
	msg, err := msgdir.Parse(r.Message, s.opts.MaxMessageBytes)
	s.parsed[loc] = parsedRow{rowHash: r.Hash, msg: msg, err: err}
	return msg, err
}

func (s *dbStore) Read(loc string) (msgdir.Message, error) {
	r, ok := s.rows[loc]
	if !ok || r.Deleted {
		return msgdir.Message{}, os.ErrNotExist
	}
	return s.message(loc, r)
}

func (s *dbStore) Place(msg msgdir.Message, cur string, names *msgdir.Names) (string, error) {
	if msg.RemoteURI == "" {
		return "", fmt.Errorf("%w: no remote_uri, which the client's table needs", errNotForStore)
	}
	return dbLoc(blinkdb.KeyOf(msg.MsgID, msg.RemoteURI)), nil
}

func (s *dbStore) Apply(ops []storeOp) []storeResult {
	out := make([]storeResult, len(ops))
	if s.db == nil {
		for i := range out {
			out[i].err = errors.New("the database is not open")
		}
		return out
	}
	ctx := context.Background()
	for i, op := range ops {
		if op.remove {
			out[i].err = s.db.Delete(ctx, op.msgid)
			if out[i].err == nil {
				delete(s.rows, op.loc)
			}
			continue
		}
		r, err := s.db.Put(ctx, op.data, op.device)
		if errors.Is(err, blinkdb.ErrIncomplete) {
			err = fmt.Errorf("%w: %v", errNotForStore, err)
		}
		if err != nil {
			out[i].err = err
			continue
		}
		loc := dbLoc(r.Key)
		if s.rows == nil {
			s.rows = map[string]blinkdb.Row{}
		}
		s.rows[loc] = r
		out[i].loc = loc
		if msg, err := s.message(loc, r); err == nil {
			out[i].hash = msg.Hash
		}
	}
	return out
}

func (s *dbStore) Remove(loc string) error {
	r, ok := s.rows[loc]
	if !ok || s.db == nil {
		return nil
	}
	if err := s.db.Delete(context.Background(), r.Key.MsgID); err != nil {
		return err
	}
	delete(s.rows, loc)
	return nil
}

func (s *dbStore) Describe(loc string) string {
	if loc == "" {
		return s.opts.Store
	}
	return s.opts.Store + ": " + loc
}

func (s *dbStore) Close() {
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
}
