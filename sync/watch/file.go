package watch

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// FileOptions configure a watch on one database file.
type FileOptions struct {
	// Path is the database file. Its rollback journal (Path-journal) and
	// write-ahead log (Path-wal) are watched with it: a client's commit
	// changes one of the three.
	Path string
	// Debounce is how long the watcher waits for quiet before it reports
	// (default 250 ms; a burst that never goes quiet is still reported
	// after 4 × Debounce, so a change is seen within a second).
	Debounce time.Duration
	// Poll is how often the three files are looked at even without an
	// event (default 2 s): a watch on a network volume, or one that could
	// not be made, misses events.
	Poll time.Duration
	// RescanInterval is the period of the safety-net full comparison
	// (default 1 h; negative turns it off).
	RescanInterval time.Duration
	// Ready, if set, is called once the file is watched.
	Ready func()
}

// File watches a database file and sends a Change asking for a rescan
// whenever the file, its journal or its log changes, and periodically. A
// database has no paths to report: what changed is found by comparing its
// rows. It watches the file's directory (a client may replace the file,
// which a watch on the file itself would not survive) and reports only
// events of the three names. It returns when ctx is done; a watcher that
// cannot be made leaves the polling to find changes.
func File(ctx context.Context, opts FileOptions, out chan<- Change) error {
	if opts.Debounce <= 0 {
		opts.Debounce = 250 * time.Millisecond
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	if opts.RescanInterval == 0 {
		opts.RescanInterval = time.Hour
	}
	names := map[string]bool{}
	for _, suffix := range []string{"", "-journal", "-wal"} {
		names[filepath.Base(opts.Path)+suffix] = true
	}
	var events <-chan fsnotify.Event
	if fw, err := fsnotify.NewWatcher(); err == nil {
		defer fw.Close()
		if fw.Add(filepath.Dir(opts.Path)) == nil {
			events = fw.Events
		}
	}
	if opts.Ready != nil {
		opts.Ready()
	}
	last := fileSig(opts.Path)
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	var rescanC <-chan time.Time
	if opts.RescanInterval > 0 {
		t := time.NewTicker(opts.RescanInterval)
		defer t.Stop()
		rescanC = t.C
	}
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	var first time.Time
	var pending *Change
	for {
		var send chan<- Change
		var c Change
		if pending != nil && first.IsZero() {
			send, c = out, *pending
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- c:
			pending = nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !names[filepath.Base(ev.Name)] {
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			quiet.Reset(min(opts.Debounce, max(first.Add(4*opts.Debounce).Sub(now), 0)))
		case <-quiet.C:
			first = time.Time{}
			last = fileSig(opts.Path)
			pending = &Change{Rescan: true, Reason: "database changed"}
		case <-poll.C:
			if sig := fileSig(opts.Path); sig != last && first.IsZero() {
				last = sig
				pending = &Change{Rescan: true, Reason: "database changed"}
			}
		case <-rescanC:
			pending = &Change{Rescan: true, Reason: "periodic rescan"}
		}
	}
}

// fileSig is what the database at path, its rollback journal and its
// write-ahead log look like now: their sizes and times. A commit changes it.
func fileSig(path string) [3]fileState {
	var s [3]fileState
	for i, suffix := range []string{"", "-journal", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			s[i] = fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		}
	}
	return s
}

type fileState struct{ size, mtime int64 }
