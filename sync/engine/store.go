package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/watch"
)

// messageStore is an account's message store as the engine uses it. The
// engine decides what is pushed and what arriving version wins; a store
// finds what changed, reads, writes and removes messages, and keeps its own
// rules. There are two: a directory of JSON files (dirStore, with the rules
// of store/msgdir) and a chat client's history database (dbStore, with
// those of store/blinkdb).
//
// A message lives at a location: a path relative to the directory, or the
// key of its row in the database. The engine's file index remembers, per
// location, the message it saw there last (store.FileRecord); a store
// uses that record to tell cheaply whether a location changed.
type messageStore interface {
	// Watch sends what changed until ctx is done; ready is called once
	// changes are watched (the engine scans only then, so nothing written
	// in between is missed by both).
	Watch(ctx context.Context, ready func(), out chan<- watch.Change) error
	// Unusable says why the store cannot be used now ("" when it can):
	// replication pauses meanwhile, and nothing in it is taken for
	// deleted.
	Unusable() string
	// Scan calls found for every location below dir ("" for the whole
	// store) that may hold a message, and unreadable for one it cannot
	// look into (with dir set for a directory: nothing the index holds
	// below it is taken for gone).
	Scan(dir string, found func(p place), unreadable func(loc, reason string, dir bool)) error
	// Look says what is at p now, given what the index holds of it (old,
	// nil for nothing); force reads it even when it looks unchanged.
	Look(p place, old *store.FileRecord, force bool) seen
	// Read returns the message at loc.
	Read(loc string) (msgdir.Message, error)
	// Place says where a message from another device is written: at cur
	// when this device holds it already ("" when not); names are the
	// locations the page being applied has given out.
	Place(msg msgdir.Message, cur string, names *msgdir.Names) (string, error)
	// Apply performs a page's writes and removals in order, one result
	// each.
	Apply(ops []storeOp) []storeResult
	// Remove removes the message at loc (a late copy of a message deleted
	// on another device).
	Remove(loc string) error
	// Stale reports whether the store may have changed since it was last
	// scanned without the watcher having said so yet: the engine then
	// scans before it applies a page, so an arriving version never
	// overwrites a local change it has not seen.
	Stale() bool
	// Describe names the store and a location in it for messages to the
	// user.
	Describe(loc string) string
	Close()
}

// place is a location a scan or the watcher reported, with what the store
// learnt of it on the way (a directory walk's file info), so a scan does
// not look at every file twice.
type place struct {
	loc  string
	info fs.FileInfo
}

// seenKind is what a store found at a location.
type seenKind int

const (
	seenMessage   seenKind = iota // a valid message, in msg
	seenUnchanged                 // what the index holds: not read again
	seenGone                      // nothing there (deleted, renamed away)
	seenDir                       // a directory: scan it
	seenRefused                   // not replicated, for reason
	seenLater                     // being written: look again at at
)

// seen is what a store found at a location.
type seen struct {
	kind seenKind
	msg  msgdir.Message
	// size and mtime are the file's, for the index (zero in a database).
	size   int64
	mtime  time.Time
	reason string
	at     time.Time
	// unsafe marks a location refused because its path passes through a
	// symbolic link: a row from another device for it is kept, not lost.
	unsafe bool
}

// storeOp is one write of a page: msg written at loc (by device, the one
// that journaled it; from is where this device held it until now), or the
// message at loc removed.
type storeOp struct {
	loc    string
	from   string // where the message was before, if elsewhere
	data   []byte
	device string
	remove bool
}

// storeResult is the outcome of one storeOp.
type storeResult struct {
	err error
	// size and mtime describe a written file as chatsync wrote it.
	size  int64
	mtime time.Time
	// hash is the message's hash as the store now holds it, when that is
	// not the hash of what was written (a database row merges the message
	// into what it held, and the client's columns cannot hold every
	// field): recorded, it keeps the next scan from taking chatsync's own
	// write for a local change and sending it back.
	hash string
	// loc is where the message now is, when that is not the op's (a
	// database writes the remote_uri in the client's own form).
	loc string
}

// errNotForStore is a message the store cannot hold by its content (a
// database row needs fields the message lacks): skipped, not retried.
var errNotForStore = errors.New("the message lacks what this store needs")

// newStore makes the store opts name. known reports whether the index
// holds messages of it, so that a store found empty is not taken for one
// whose messages were all deleted.
func newStore(opts *Options, log *slog.Logger, known func() bool) (messageStore, error) {
	switch opts.StoreFormat {
	case "", FormatJSON:
		return &dirStore{opts: opts, log: log, known: known}, nil
	case FormatBlinkQt, FormatBlinkCocoa:
		return &dbStore{opts: opts, log: log, known: known, dialect: blinkdb.Dialect(opts.StoreFormat)}, nil
	}
	return nil, fmt.Errorf("engine: unknown store format %q", opts.StoreFormat)
}

// The store formats of Options.StoreFormat (SPEC §6b).
const (
	FormatJSON       = "json"
	FormatBlinkQt    = "blink-qt"
	FormatBlinkCocoa = "blink-cocoa"
)
