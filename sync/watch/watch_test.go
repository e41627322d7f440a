package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// start runs a watcher on root and returns its channel; it is stopped, and
// its goroutine waited for, when the test ends.
func start(t *testing.T, opts Options) <-chan Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Change)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	return out
}

// collect reads changes until every path in want was reported or the
// deadline passes, and returns the changes it read.
func collect(t *testing.T, ch <-chan Change, want ...string) []Change {
	t.Helper()
	seen := map[string]bool{}
	var got []Change
	deadline := time.After(10 * time.Second)
	for {
		missing := 0
		for _, w := range want {
			if !seen[w] {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		select {
		case c := <-ch:
			got = append(got, c)
			for _, p := range c.Paths {
				seen[p] = true
			}
		case <-deadline:
			t.Fatalf("paths %v not all reported; got %+v", want, got)
		}
	}
}

func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitWatching makes sure the watch on dir is in place before the test acts:
// it writes a probe file again and again until the watcher reports it, then
// removes it and waits for that to be reported too.
func waitWatching(t *testing.T, ch <-chan Change, dir, root string) {
	t.Helper()
	probe := filepath.Join(dir, "probe.json")
	rel, _ := filepath.Rel(root, probe)
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for reported := false; !reported; {
		writeAtomic(t, probe, "{}")
		select {
		case c := <-ch:
			reported = slices.Contains(c.Paths, rel)
		case <-tick.C:
		case <-deadline:
			t.Fatalf("watch on %s never became active", dir)
		}
	}
	if err := os.Remove(probe); err != nil {
		t.Fatal(err)
	}
	collect(t, ch, rel)
}

func TestNewFileWrittenByRenameIsReportedAndTempFileIsNot(t *testing.T) {
	root := t.TempDir()
	ch := start(t, Options{Root: root})
	waitWatching(t, ch, root, root)
	writeAtomic(t, filepath.Join(root, "m1.json"), `{"msgid":"m1"}`)
	got := collect(t, ch, "m1.json")
	for _, c := range got {
		for _, p := range c.Paths {
			if p != "m1.json" {
				t.Errorf("reported %q, want only m1.json (temp files are ignored)", p)
			}
		}
	}
}

func TestDeletedFileIsReported(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "m1.json")
	writeAtomic(t, path, `{"msgid":"m1"}`)
	ch := start(t, Options{Root: root})
	waitWatching(t, ch, root, root)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	collect(t, ch, "m1.json")
}

func TestNewDirectoryIsReportedAndThenWatched(t *testing.T) {
	root := t.TempDir()
	ch := start(t, Options{Root: root})
	waitWatching(t, ch, root, root)
	conv := filepath.Join(root, "bob@example.com")
	if err := os.Mkdir(conv, 0o700); err != nil {
		t.Fatal(err)
	}
	collect(t, ch, "bob@example.com")
	// The new directory is watched: a file written into it later is
	// reported by its own path.
	waitWatching(t, ch, conv, root)
	writeAtomic(t, filepath.Join(conv, "m2.json"), `{"msgid":"m2"}`)
	collect(t, ch, filepath.Join("bob@example.com", "m2.json"))
}

func TestExistingSubdirectoriesAreWatchedAtStart(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	ch := start(t, Options{Root: root})
	waitWatching(t, ch, deep, root)
	writeAtomic(t, filepath.Join(deep, "m.json"), `{"msgid":"m"}`)
	collect(t, ch, filepath.Join("a", "b", "c", "m.json"))
}

func TestBurstOfWritesIsDebouncedIntoFewChanges(t *testing.T) {
	root := t.TempDir()
	ch := start(t, Options{Root: root, Debounce: 200 * time.Millisecond})
	waitWatching(t, ch, root, root)
	var want []string
	for i := range 50 {
		name := fmt.Sprintf("m%02d.json", i)
		writeAtomic(t, filepath.Join(root, name), fmt.Sprintf(`{"msgid":"m%d"}`, i))
		want = append(want, name)
	}
	got := collect(t, ch, want...)
	// 50 files written back to back: a burst window is at most 2 s, so
	// even on a slow machine the 50 events arrive in a handful of changes.
	if len(got) > 5 {
		t.Errorf("50 writes were reported in %d changes, want at most 5", len(got))
	}
}

func TestPeriodicRescanIsAskedFor(t *testing.T) {
	root := t.TempDir()
	ch := start(t, Options{Root: root, RescanInterval: 20 * time.Millisecond})
	select {
	case c := <-ch:
		if !c.Rescan || c.Reason != "periodic rescan" {
			t.Errorf("change = %+v, want a periodic rescan", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no periodic rescan reported")
	}
}

func TestRemovedAndRecreatedStoreAsksForRescanAndIsWatchedAgain(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	ch := start(t, Options{Root: root, RootPoll: 20 * time.Millisecond, RescanInterval: -1})
	waitWatching(t, ch, root, root)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for rescanned := false; !rescanned; {
		select {
		case c := <-ch:
			rescanned = c.Rescan && c.Reason == "store directory reappeared"
		case <-deadline:
			t.Fatal("no rescan after the store directory came back")
		}
	}
	writeAtomic(t, filepath.Join(root, "m.json"), `{"msgid":"m"}`)
	got := collect(t, ch, "m.json")
	if !slices.ContainsFunc(got, func(c Change) bool { return slices.Contains(c.Paths, "m.json") }) {
		t.Error("file in the recreated store not reported")
	}
}

func TestMissingRootIsWaitedForNotAnError(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "later")
	ch := start(t, Options{Root: root, RootPoll: 20 * time.Millisecond, RescanInterval: -1})
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	// Whether the watcher saw the store missing or not, once it exists
	// files written into it are reported.
	waitWatching(t, ch, root, root)
}

func TestLoneChangeIsReportedWithoutWaitingForTheDebounce(t *testing.T) {
	root := t.TempDir()
	ready := make(chan struct{})
	// A debounce of an hour: only a report of the first event at once can
	// arrive before the deadline.
	ch := start(t, Options{Root: root, Debounce: time.Hour, Ready: func() { close(ready) }})
	<-ready
	writeAtomic(t, filepath.Join(root, "lone.json"), `{"msgid":"lone"}`)
	got := collect(t, ch, "lone.json")
	if len(got) != 1 || !slices.Equal(got[0].Paths, []string{"lone.json"}) {
		t.Errorf("reports %+v, want one with lone.json", got)
	}
}
