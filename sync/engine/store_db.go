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
	// token is the database's change token taken before the snapshot
	// (blinkdb.Changes): while it holds, the view is complete.
	token string
	// changed is set when a write found a row changed since the snapshot.
	changed bool
	// readAt is when the rows were last read.
	readAt time.Time
}

// fullEvery is how often the rows are read again even when the database
// says nothing changed: the safety net, as the directory store's rescan.
func (s *dbStore) fullEvery() time.Duration {
	if s.opts.RescanInterval > 0 {
		return s.opts.RescanInterval
	}
	return time.Hour
}

// Stale reports whether another program changed the database since the
// snapshot (chatsync's own writes, which the view follows, do not count).
func (s *dbStore) Stale() bool {
	if s.changed || s.db == nil {
		return true
	}
	token, err := s.db.Changes(context.Background())
	return err != nil || token != s.token
}

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
		s.snapshot() // paused on what a scan found: look again now and then
	}
	return s.problem
}

// dbRecheck is how often a database the account is paused on is looked at
// again.
const dbRecheck = 5 * time.Second

// snapshot reads the account's rows and, if they can be taken for the
// store, makes them the store's view; if not, problem says why and the
// view stays as it was.
func (s *dbStore) snapshot() error {
	s.checked = time.Now()
	before, err := s.db.Changes(context.Background())
	if err != nil {
		s.problem = s.explain(err)
		return err
	}
	fi, err := os.Stat(s.opts.Store)
	if err != nil {
		s.problem = s.explain(blinkdb.ErrNoDatabase)
		return err
	}
	rows, err := s.db.Snapshot(context.Background())
	if err != nil {
		s.problem = s.explain(err)
		return err
	}
	if why := s.notTheStore(fileID(fi), rows); why != "" {
		s.problem = why
		return errors.New(why)
	}
	s.problem = ""
	s.token, s.changed, s.readAt = before, false, s.checked
	s.rows = make(map[string]blinkdb.Row, len(rows))
	for k, r := range rows {
		s.rows[dbLoc(k)] = r
	}
	for loc := range s.parsed {
		if _, ok := s.rows[loc]; !ok {
			delete(s.parsed, loc) // a row gone
		}
	}
	return nil
}

// notTheStore says why rows, read from the file with identity id, are not
// the store this device synced, or "" when they are. A database the client
// recreated, or another file put in its place, differs from what this
// device knows in every message it lacks: taking that for deletions would
// delete the account's history on every device. The identity of the file
// is kept in the state, so this holds across restarts too.
func (s *dbStore) notTheStore(id string, rows map[blinkdb.Key]blinkdb.Row) string {
	recorded, err := s.opts.DB.StoreID(s.opts.Account)
	if err != nil {
		return fmt.Sprintf("cannot read the state: %v", err)
	}
	known := s.known()
	fix := "If this is the history you want, stop chatsync and run `chatsync state rebuild`: nothing is deleted; the device compares the database with the journal, writes what it lacks and sends only what the journal lacks. Nothing is deleted meanwhile"
	switch {
	case known && recorded != "" && id != "" && id != recorded:
		return fmt.Sprintf("%s is not the database file this device synced (it was recreated or replaced). %s", s.opts.Store, fix)
	case known && liveRows(rows) == 0:
		return fmt.Sprintf("%s holds no message of %s although this device knows messages in it (the file was emptied or replaced). %s", s.opts.Store, s.opts.Account, fix)
	}
	if id != "" && id != recorded {
		if err := s.opts.DB.SetStoreID(s.opts.Account, id); err != nil {
			return fmt.Sprintf("cannot record the database in the state: %v", err)
		}
	}
	return ""
}

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
	if s.rows == nil || s.Stale() || time.Since(s.readAt) >= s.fullEvery() {
		if err := s.snapshot(); err != nil {
			return err
		}
	}
	// else: nothing changed since the snapshot but chatsync's own writes,
	// which the view holds already.
	for _, loc := range slices.Sorted(maps.Keys(s.rows)) {
		if !s.rows[loc].Deleted {
			found(place{loc: loc})
		}
	}
	return nil
}

func (s *dbStore) Look(p place, old *store.FileRecord, force bool) seen {
	if s.rows == nil {
		// Not read yet (the first snapshot failed): nothing is known to
		// be gone.
		return seen{kind: seenLater, at: time.Now().Add(dbRecheck)}
	}
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
	var stop error // the database failed: the ops after it are not tried
	for i, op := range ops {
		if stop != nil {
			out[i].err = stop
			continue
		}
		if op.remove {
			if out[i].err = s.removeRow(op.loc); out[i].err != nil {
				stop = fmt.Errorf("not tried after an earlier write failed: %w", out[i].err)
			}
			continue
		}
		// Written over the row as the last snapshot has it: a change the
		// client made since is never merged away (ErrChanged), it is
		// scanned, and wins, first.
		r, err := s.db.PutOver(ctx, op.data, op.device, s.rows[op.loc].Hash)
		if errors.Is(err, blinkdb.ErrChanged) {
			s.changed = true
		}
		if errors.Is(err, blinkdb.ErrUnstorable) {
			err = fmt.Errorf("%w: %v", errNotForStore, err)
		}
		if err != nil {
			out[i].err = err
			if !errors.Is(err, errNotForStore) {
				stop = fmt.Errorf("not tried after an earlier write failed: %w", err)
			}
			continue
		}
		loc := dbLoc(r.Key)
		if s.rows == nil {
			s.rows = map[string]blinkdb.Row{}
		}
		s.rows[loc] = r
		if old, ok := s.rows[op.from]; ok && op.from != loc {
			// The message moved to another conversation (its remote_uri
			// changed): its row under the old one goes.
			if err := s.db.DeleteRow(ctx, old.Key); err != nil {
				s.log.Warn("cannot remove the row a message moved away from", "row", op.from, "err", err)
			} else {
				delete(s.rows, op.from)
			}
		}
		out[i].loc = loc
		if msg, err := s.message(loc, r); err == nil {
			out[i].hash = msg.Hash
		}
	}
	return out
}

func (s *dbStore) Remove(loc string) error { return s.removeRow(loc) }

// removeRow deletes the row at loc. Only that row: a row of another
// conversation with the same msgid (which the client itself would delete
// too, by msgid) is another message, one this device never replicated.
func (s *dbStore) removeRow(loc string) error {
	r, ok := s.rows[loc]
	if !ok || s.db == nil {
		return nil // not there
	}
	if err := s.db.DeleteRow(context.Background(), r.Key); err != nil {
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
