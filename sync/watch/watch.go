// Package watch reports changes in a message store directory tree.
//
// fsnotify watches are not recursive, its queue can overflow and a watch can
// fail, so the watcher never claims to be complete: it adds a watch on every
// directory (and on new ones as they appear), debounces bursts of events into
// one Change, and asks for a full rescan whenever events may have been lost
// (overflow, a watch error, the store directory vanishing and coming back)
// and periodically. The consumer treats every reported path as "look at
// this again"; a rescan compares the whole tree with what it knows, which
// makes any missed event harmless.
package watch

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/chatsync/chatsync/store/msgdir"
)

// Change is one debounced report.
type Change struct {
	// Paths are the changed files and directories, relative to the root, in
	// the order they were first seen, each once. A
	// path may name a file that is gone (deleted or renamed away) or a
	// directory whose whole content is new.
	Paths []string
	// Rescan asks the consumer to compare the whole tree with its index,
	// because events may have been lost.
	Rescan bool
	// Reason says why a rescan is asked for, for the log.
	Reason string
}

// Options configure a watcher. The zero durations pick the defaults.
type Options struct {
	// Root is the message store directory.
	Root string
	// Debounce is how long the watcher waits for quiet before it reports a
	// burst of events (default 100 ms). A burst that never goes quiet is
	// still reported after 10 × Debounce. The first event after Debounce
	// of quiet is reported at once, unless a name went away (a move's
	// first half).
	Debounce time.Duration
	// RescanInterval is the period of the safety-net full rescan (default
	// 1 h; negative turns it off).
	RescanInterval time.Duration
	// RootPoll is how often a missing root is looked for (default 1 s).
	RootPoll time.Duration
	// Logger receives watch errors; nil discards them.
	Logger *slog.Logger
	// Ready, if set, is called once the watches on the existing tree are in
	// place. A consumer scans the tree after that, not before: a file
	// written in between is then either found by the scan or reported.
	Ready func()
}

func (o *Options) defaults() {
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.RescanInterval == 0 {
		o.RescanInterval = time.Hour
	}
	if o.RootPoll <= 0 {
		o.RootPoll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run watches opts.Root and sends Changes to out until ctx is done. It
// returns nil when ctx is cancelled, and an error only if no watcher can be
// created at all. A missing root is not an error: it is waited for.
func Run(ctx context.Context, opts Options, out chan<- Change) error {
	opts.defaults()
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return err
	}
	defer fw.Close()
	w := &watcher{opts: opts, fw: fw, pending: map[string]bool{}}
	w.rootPresent = w.addTree(opts.Root)
	if opts.Ready != nil {
		opts.Ready()
	}

	var rescanC <-chan time.Time
	if opts.RescanInterval > 0 {
		t := time.NewTicker(opts.RescanInterval)
		defer t.Stop()
		rescanC = t.C
	}
	rootPoll := time.NewTicker(opts.RootPoll)
	defer rootPoll.Stop()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	var firstPending, lastEvent time.Time

	for {
		var send chan<- Change
		var ready Change
		var rootC <-chan time.Time // only while the root is missing
		if !w.rootPresent {
			rootC = rootPoll.C
		}
		if w.ready() {
			send, ready = out, w.change()
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- ready:
			w.reset()
			firstPending = time.Time{}
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if w.handle(ev) {
				now := time.Now()
				if firstPending.IsZero() && now.Sub(lastEvent) >= opts.Debounce && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
					// The first event after a quiet spell is reported at
					// once: a lone message (a chat client renames it into
					// place) is not kept waiting for a burst that does
					// not come. A file caught half written is looked at
					// again with the rest of the burst, or after the
					// engine's settle time. A name that went away waits
					// for the burst: it may be the first half of a move,
					// whose new name must be reported with it.
					w.due = true
				} else {
					if firstPending.IsZero() {
						firstPending = now
					}
					// Wait for quiet, but never longer than 10 × Debounce
					// after the first event of the burst.
					wait := opts.Debounce
					if limit := firstPending.Add(10 * opts.Debounce).Sub(now); limit < wait {
						wait = max(limit, 0)
					}
					quiet.Reset(wait)
				}
				lastEvent = now
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			reason := "watch error: " + err.Error()
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				reason = "event queue overflow"
			}
			opts.Logger.Warn("file watcher lost events; rescanning the store", "store", opts.Root, "reason", reason)
			w.askRescan(reason)
			w.due = true
		case <-quiet.C:
			w.due = true
		case <-rescanC:
			w.askRescan("periodic rescan")
			w.due = true
		case <-rootC:
			if !w.rootPresent && w.addTree(opts.Root) {
				w.rootPresent = true
				opts.Logger.Info("message store directory is back; rescanning", "store", opts.Root)
				w.askRescan("store directory reappeared")
				w.due = true
			}
		}
	}
}

type watcher struct {
	opts        Options
	fw          *fsnotify.Watcher
	pending     map[string]bool // the paths of the report being built, for de-duplication
	paths       []string        // the same, in the order they were first seen
	rescan      string          // reason, "" when none asked for
	due         bool            // the debounce (or a rescan request) says: report now
	rootPresent bool
}

func (w *watcher) ready() bool {
	return w.due && (len(w.pending) > 0 || w.rescan != "")
}

// change is the report to send. It hands over w.paths without copying:
// while the consumer is busy, events keep arriving and the report is built
// again for every one of them, so this must not cost more than O(1).
func (w *watcher) change() Change {
	return Change{Paths: w.paths, Rescan: w.rescan != "", Reason: w.rescan}
}

// reset starts a new report after one was sent; the sent Paths slice now
// belongs to the consumer.
func (w *watcher) reset() {
	clear(w.pending)
	w.paths = nil
	w.rescan = ""
	w.due = false
}

func (w *watcher) add(rel string) {
	if !w.pending[rel] {
		w.pending[rel] = true
		w.paths = append(w.paths, rel)
	}
}

func (w *watcher) askRescan(reason string) {
	if w.rescan == "" {
		w.rescan = reason
	}
}

// handle records one event and reports whether it is of interest.
func (w *watcher) handle(ev fsnotify.Event) bool {
	if ev.Name == w.opts.Root {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			// The store itself went away. Whatever comes back is
			// compared in full; until then nothing is reported, so the
			// consumer does not mistake a missing store for deletions.
			w.opts.Logger.Warn("message store directory disappeared; waiting for it to come back", "store", w.opts.Root)
			w.rootPresent = false
		}
		return false
	}
	rel, err := filepath.Rel(w.opts.Root, ev.Name)
	if err != nil || rel == "." || rel == ".." || len(rel) > 2 && rel[:3] == ".."+string(filepath.Separator) {
		return false
	}
	name := filepath.Base(ev.Name)
	if msgdir.IgnoredDir(name) {
		return false // hidden files and directories, our own temporary files among them
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// A new directory may already hold files written before
			// its watch existed: watch it now and let the consumer
			// walk it.
			w.addTree(ev.Name)
			w.add(rel)
			return true
		}
	}
	if msgdir.Ignored(name) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return false
	}
	// Removes and renames of any non-hidden name matter: it may have been a
	// directory full of messages.
	w.add(rel)
	return true
}

// addTree watches dir and every non-hidden directory below it. Symbolic
// links are not followed. It reports whether dir itself is watched.
func (w *watcher) addTree(dir string) bool {
	ok := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && msgdir.IgnoredDir(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.fw.Add(p); err != nil {
			w.opts.Logger.Warn("cannot watch directory; changes in it are found by the periodic rescan", "dir", p, "err", err,
				"hint", "on Linux, raise fs.inotify.max_user_watches if the store has very many directories")
			w.askRescan("watch error")
			return nil
		}
		if p == dir {
			ok = true
		}
		return nil
	})
	return ok
}
