package msgdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNothingLeavesTheStoreWhileALinkIsSwappedIn swaps a directory of the
// store with a symbolic link to a directory outside it, atomically with
// renameat2(RENAME_EXCHANGE) and in a tight loop, while Apply, WriteAtomic
// and Remove write and delete hundreds of messages in that directory.
// Whatever the interleaving, nothing may be written, renamed or removed
// outside the store, and no temporary file may be left anywhere.
func TestNothingLeavesTheStoreWhileALinkIsSwappedIn(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	conv, swap := filepath.Join(root, "conv"), filepath.Join(root, "swap")
	if err := os.Mkdir(conv, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, swap); err != nil {
		t.Fatal(err)
	}
	stopSwapping := swapInALoop(t, conv, swap)

	written := map[string]string{} // name → content, of every write that succeeded
	removed := map[string]bool{}
	var refusedOps, okOps int
	check := func(what string, err error) bool {
		switch {
		case err == nil:
			okOps++
			return true
		case errors.Is(err, ErrUnsafePath):
			refusedOps++
		default:
			t.Errorf("%s: %v, want nil or ErrUnsafePath", what, err)
		}
		return false
	}
	const rounds, perRound = 12, 100
	for round := range rounds {
		ops := make([]Op, 0, perRound+10)
		for i := range perRound {
			name := fmt.Sprintf("m%02d-%03d.json", round, i)
			data := fmt.Sprintf(`{"msgid":"%s","body":"secret plaintext %d"}`+"\n", name, i)
			ops = append(ops, Op{Rel: "conv/" + name, Data: []byte(data)})
		}
		if round > 0 { // delete some messages of the round before
			for i := range 10 {
				ops = append(ops, Op{Rel: fmt.Sprintf("conv/m%02d-%03d.json", round-1, i), Remove: true})
			}
		}
		for i, r := range Apply(root, ops) {
			name := strings.TrimPrefix(ops[i].Rel, "conv/")
			if check("Apply "+ops[i].Rel, r.Err) {
				if ops[i].Remove {
					removed[name] = true
				} else {
					written[name] = string(ops[i].Data)
				}
			}
		}
		name := fmt.Sprintf("w%02d.json", round)
		data := fmt.Sprintf(`{"msgid":"%s","body":"secret"}`, name)
		if check("WriteAtomic", WriteAtomic(root, "conv/"+name, []byte(data))) {
			written[name] = data
		}
		if round > 0 {
			name := fmt.Sprintf("w%02d.json", round-1)
			if check("Remove", Remove(root, "conv/"+name)) {
				removed[name] = true
			}
		}
	}
	swaps := stopSwapping()
	t.Logf("%d swaps; %d ops done, %d refused with ErrUnsafePath", swaps, okOps, refusedOps)

	var escaped []string
	filepath.WalkDir(outside, func(p string, d fs.DirEntry, err error) error {
		if p != outside {
			escaped = append(escaped, p)
		}
		return nil
	})
	if len(escaped) > 0 {
		t.Errorf("%d files written outside the store, e.g. %v", len(escaped), escaped[:min(5, len(escaped))])
	}
	var temps []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			temps = append(temps, p)
		}
		return nil
	})
	if len(temps) > 0 {
		t.Errorf("temporary files left in the store: %v", temps)
	}

	// Every write that succeeded is in the store's real directory (named
	// conv or swap, depending on where the swapping stopped), every
	// removal that succeeded took its file away, and nothing else is there.
	real := conv
	if fi, err := os.Lstat(conv); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		real = swap
	}
	for name, want := range written {
		got, err := os.ReadFile(filepath.Join(real, name))
		switch {
		case removed[name]:
			if err == nil {
				t.Errorf("%s was removed, but is still there", name)
			}
		case err != nil || string(got) != want:
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestReadsNeverLeaveTheStoreWhileALinkIsSwappedIn swaps a directory of the
// store with a symbolic link to a directory outside it, as the test above
// does, while ReadFile, Lstat and WalkDir read the store through one handle
// on it (and ReadFile and Lstat through Dirs, with its kept handles),
// thousands of times. The outside directory holds files of the same
// names (and one more) with other content: whatever the interleaving, no
// read may return it, no Lstat may describe it, and no walk may list it.
// Path-based reads of the same files, made alongside, show that the swap
// does lead them outside.
func TestReadsNeverLeaveTheStoreWhileALinkIsSwappedIn(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	conv, swap := filepath.Join(root, "conv"), filepath.Join(root, "swap")
	if err := os.Mkdir(conv, 0o700); err != nil {
		t.Fatal(err)
	}
	const files = 20
	inside := map[uint64]bool{} // inode numbers of the store's files
	for i := range files {
		name := fmt.Sprintf("m%02d.json", i)
		if err := os.WriteFile(filepath.Join(conv, name), []byte(`{"msgid":"`+name+`","body":"inside"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, name), []byte(`{"msgid":"`+name+`","body":"OUTSIDE secret"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Lstat(filepath.Join(conv, name))
		inside[fi.Sys().(*syscall.Stat_t).Ino] = true
	}
	os.WriteFile(filepath.Join(outside, "only-outside.json"), []byte(`{"msgid":"x","body":"OUTSIDE secret"}`), 0o600)
	if err := os.Symlink(outside, swap); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	stopSwapping := swapInALoop(t, conv, swap)

	dirs := NewDirs(r) // kept handles, looked at again at every use
	defer dirs.Close()
	var reads, stats, listed, refusedOps, pathLeaks int
	other := func(what string, err error) {
		switch {
		case errors.Is(err, ErrUnsafePath):
			refusedOps++
		case errors.Is(err, fs.ErrNotExist): // the directory was the link's name at that moment
		default:
			t.Errorf("%s: %v, want nil, ErrUnsafePath or ErrNotExist", what, err)
		}
	}
	for round := range 300 {
		for _, dir := range []string{"conv", "swap"} {
			rel := fmt.Sprintf("%s/m%02d.json", dir, round%files)
			for i, readFile := range []func(string, int64) ([]byte, error){
				func(rel string, max int64) ([]byte, error) { return ReadFile(r, rel, max) }, dirs.ReadFile,
			} {
				if data, err := readFile(rel, 1<<20); err == nil {
					reads++
					if strings.Contains(string(data), "OUTSIDE") {
						t.Fatalf("ReadFile #%d (%s) read the file outside the store: %s", i, rel, data)
					}
				} else {
					other("ReadFile "+rel, err)
				}
			}
			for i, lstat := range []func(string) (fs.FileInfo, error){
				func(rel string) (fs.FileInfo, error) { return Lstat(r, rel) }, dirs.Lstat,
			} {
				if fi, err := lstat(rel); err == nil {
					stats++
					if !inside[fi.Sys().(*syscall.Stat_t).Ino] {
						t.Fatalf("Lstat #%d (%s) described a file outside the store", i, rel)
					}
				} else {
					other("Lstat "+rel, err)
				}
			}
			if data, err := os.ReadFile(filepath.Join(root, rel)); err == nil && strings.Contains(string(data), "OUTSIDE") {
				pathLeaks++
			}
		}
		if round%10 != 0 {
			continue
		}
		for _, dir := range []string{"", "conv", "swap"} {
			WalkDir(r, dir, func(rel string, d fs.DirEntry, err error) error {
				if err != nil {
					other("WalkDir "+rel, err)
					return nil
				}
				if d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
					return nil
				}
				listed++
				if strings.HasSuffix(rel, "only-outside.json") {
					t.Fatalf("WalkDir(%q) listed %s, which is outside the store", dir, rel)
				}
				if fi, err := d.Info(); err == nil && !inside[fi.Sys().(*syscall.Stat_t).Ino] {
					t.Fatalf("WalkDir(%q) described %s outside the store", dir, rel)
				}
				return nil
			})
		}
	}
	swaps := stopSwapping()
	t.Logf("%d swaps; %d reads, %d stats and %d files listed, all inside; %d refused with ErrUnsafePath; %d path-based reads led outside",
		swaps, reads, stats, listed, refusedOps, pathLeaks)
	if reads == 0 || stats == 0 || listed == 0 {
		t.Errorf("nothing was read (%d), described (%d) or listed (%d): the test proves nothing", reads, stats, listed)
	}
	if pathLeaks == 0 {
		t.Errorf("no path-based read was led outside: the swap had no effect and the test proves nothing")
	}
}

// swapInALoop exchanges the directory conv and the link swap with
// renameat2(RENAME_EXCHANGE) until the function it returns is called; that
// function returns how many swaps were made. The test is skipped where the
// call is not supported.
func swapInALoop(t *testing.T, conv, swap string) (stop func() int64) {
	t.Helper()
	exchange := func() error {
		return unix.Renameat2(unix.AT_FDCWD, conv, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE)
	}
	if err := exchange(); err != nil {
		t.Skipf("renameat2(RENAME_EXCHANGE) is not supported here: %v", err)
	}
	if err := exchange(); err != nil {
		t.Fatal(err)
	}
	var stopped atomic.Bool
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stopped.Load() {
			if err := exchange(); err != nil {
				t.Errorf("exchange: %v", err)
				return
			}
			swaps.Add(1)
		}
	}()
	stop = func() int64 {
		stopped.Store(true)
		wg.Wait()
		return swaps.Load()
	}
	t.Cleanup(func() { stop() }) // also when the test fails half way
	return stop
}
