package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const stateAcct = "alice@example.com"

// realState writes a real state file through the store's own methods, big
// enough to span many pages (a few hundred index entries and versions),
// and returns its dir and the device id it was given.
func realState(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []FileRecord
	for i := range 600 {
		recs = append(recs, FileRecord{Path: fmt.Sprintf("c/m%04d.json", i), MsgID: fmt.Sprintf("m%04d", i), Hash: fmt.Sprintf("%064x", i), Size: int64(100 + i)})
	}
	if err := db.PutFiles(stateAcct, recs...); err != nil {
		t.Fatal(err)
	}
	id := db.DeviceID()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, id
}

// stateFiles counts the file index entries of the state in dir, or fails.
func stateFiles(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	for rec, err := range db.Files(stateAcct) {
		if err != nil {
			t.Fatalf("reading the file index: %v", err)
		}
		if want := fmt.Sprintf("m%04d", n); rec.MsgID != want {
			t.Fatalf("file index entry %d is %+v, want msgid %s", n, rec, want)
		}
		n++
	}
	return n
}

// wantDamaged checks that err is the clear error about the file at path.
func wantDamaged(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open = %v, want an error that wraps ErrDamaged", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"state file " + path + " is damaged (",
		"Move it aside and start again (mv " + path + " " + path + ".damaged)",
		"the device re-reads the journal and pushes again only what the journal lacks",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "goroutine ") {
		t.Errorf("error carries a stack: %q", msg)
	}
}

func TestTruncatedStateFileIsAClearErrorNotAPanic(t *testing.T) {
	dir, _ := realState(t)
	path := filepath.Join(dir, FileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hwm := usedSize(t, path)
	// Cut inside the meta pages, after them, in the middle of the data,
	// and one page short of the end of what the file uses.
	for _, size := range []int64{100, 4096, 8192, 3 * 4096, hwm / 2, hwm - 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if err := os.WriteFile(path, good[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir, Options{})
			if err == nil {
				db.Close()
				t.Fatalf("Open of the file cut to %d of %d bytes succeeded", size, len(good))
			}
			wantDamaged(t, err, path)
			if fi, err := os.Stat(path); err != nil || fi.Size() != size {
				t.Errorf("Open changed the damaged file: %v, %v", fi, err)
			}
		})
	}
	// The refused opens let go of the file: the intact one opens again.
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("the intact file after refused opens: %v", err)
	}
	defer db.Close()
	if n := stateFiles(t, db); n != 600 {
		t.Errorf("%d index entries, want 600", n)
	}
}

// usedSize is the size of the pages the state file uses (its high water
// mark), which is less than the file's size.
func usedSize(t *testing.T, path string) int64 {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var size int64
	bdb.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

func TestZeroedPagesInTheStateFileAreAClearErrorNotAPanic(t *testing.T) {
	dir, id := realState(t)
	path := filepath.Join(dir, FileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := int(usedSize(t, path) / page)
	if pages < 10 {
		t.Fatalf("the state uses %d pages; the test wants more", pages)
	}
	// Zero each page in turn (a disk or file system that lost a block).
	// Open either refuses the file with the clear error, or the page was
	// one bbolt no longer uses and every entry reads back as written.
	damaged := 0
	for p := 2; p < pages; p++ {
		bad := append([]byte(nil), good...)
		clear(bad[p*page : (p+1)*page])
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(dir, Options{})
		if err != nil {
			wantDamaged(t, err, path)
			damaged++
			continue
		}
		if n := stateFiles(t, db); n != 600 || db.DeviceID() != id {
			t.Errorf("page %d zeroed: Open accepted the file, but it holds %d entries (want 600) and device %s (want %s)", p, n, db.DeviceID(), id)
		}
		db.Close()
	}
	if damaged < (pages-2)/2 {
		t.Errorf("only %d of %d zeroed pages were found damaged", damaged, pages-2)
	}
	// Zeroed from the third page on, and overwritten with text.
	for name, bad := range map[string][]byte{
		"zeroed after the meta pages": append(append([]byte(nil), good[:2*page]...), make([]byte, len(good)-2*page)...),
		"garbage":                     []byte(strings.Repeat("this is not a state file\n", 1000)),
	} {
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{})
		if err == nil {
			t.Fatalf("%s: Open succeeded", name)
		}
		wantDamaged(t, err, path)
	}
}

func TestEmptyStateFileIsRefusedNotReinitialised(t *testing.T) {
	dir, _ := realState(t)
	path := filepath.Join(dir, FileName)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err == nil {
		t.Fatalf("Open of an empty state file succeeded with device %s", db.DeviceID())
	}
	wantDamaged(t, err, path)
	if !strings.Contains(err.Error(), "it is empty (0 bytes)") {
		t.Errorf("error %q does not say the file is empty", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("the empty file was written: %v, %v", fi, err)
	}
}

func TestSymlinkedStateFileIsRefused(t *testing.T) {
	dir, _ := realState(t)
	elsewhere := filepath.Join(t.TempDir(), "real.db")
	if err := os.Rename(filepath.Join(dir, FileName), elsewhere); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(elsewhere)
	if err := os.Symlink(elsewhere, filepath.Join(dir, FileName)); err != nil {
		t.Skipf("cannot make a symbolic link here: %v", err)
	}
	db, err := Open(dir, Options{})
	if err == nil {
		db.Close()
		t.Fatal("Open followed a symbolic link")
	}
	if !errors.Is(err, ErrNotPrivate) {
		t.Errorf("Open = %v, want ErrNotPrivate", err)
	}
	want := "state file " + filepath.Join(dir, FileName) + " is a symbolic link (to " + elsewhere + "), which chatsync does not follow"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if after, _ := os.ReadFile(elsewhere); string(after) != string(before) {
		t.Error("the link's target was changed")
	}
	// Not a regular file either.
	dir2 := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(filepath.Join(dir2, FileName), 0o700)
	if _, err := Open(dir2, Options{}); !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "state file "+filepath.Join(dir2, FileName)+" is not a regular file but a directory: move it away and start again") {
		t.Errorf("Open with a directory as the state file = %v", err)
	}
}

func TestStateDirThatOthersCanWriteIsRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits do not say who may write on Windows")
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o722, 0o1777} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			os.Mkdir(dir, 0o700)
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir, Options{RequirePrivate: true})
			if err == nil {
				db.Close()
				t.Fatal("Open accepted the dir")
			}
			want := fmt.Sprintf("state dir %s can be written by other users (mode %04o), who could replace the state file: run `chmod go-w %s` and start again", dir, mode&0o777, dir)
			if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), want) {
				t.Errorf("Open = %v, want ErrNotPrivate saying %q", err, want)
			}
			if _, err := os.Lstat(filepath.Join(dir, FileName)); err == nil {
				t.Error("a state file was made in the refused dir")
			}
			// The chmod it gives is enough.
			if err := os.Chmod(dir, mode&^0o022); err != nil {
				t.Fatal(err)
			}
			db, err = Open(dir, Options{RequirePrivate: true})
			if err != nil {
				t.Fatalf("after chmod go-w: %v", err)
			}
			db.Close()
		})
	}
	// Without RequirePrivate (tests on scratch mounts), it is not checked.
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	os.Chmod(dir, 0o777)
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open without RequirePrivate: %v", err)
	}
	db.Close()
}

func TestStateDirOfAnotherUserIsRefusedAlsoThroughASymlink(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		t.Skip("giving a dir to another user needs root (and unix)")
	}
	other := filepath.Join(t.TempDir(), "other")
	os.Mkdir(other, 0o700)
	if err := os.Chown(other, 4321, 4321); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "state")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{other, link} {
		_, err := Open(dir, Options{RequirePrivate: true})
		if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), "belongs to uid 4321, not to ") {
			t.Errorf("Open(%s) = %v, want ErrNotPrivate saying it belongs to uid 4321", dir, err)
		}
	}
	if _, err := Open(link, Options{RequirePrivate: true}); err == nil || !strings.Contains(err.Error(), "(a symbolic link to "+other+")") {
		t.Errorf("the refusal of the link does not say where it leads: %v", err)
	}
	// A link to a private dir of this user is fine.
	mine := filepath.Join(t.TempDir(), "mine")
	os.Mkdir(mine, 0o700)
	link2 := filepath.Join(t.TempDir(), "state")
	os.Symlink(mine, link2)
	db, err := Open(link2, Options{RequirePrivate: true})
	if err != nil {
		t.Fatalf("a link to this user's own private dir: %v", err)
	}
	db.Close()
}

func TestKnowsAccountAfterAddAccountOrAnyWrite(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, acct := range []string{"alice@example.com", "bob@example.com"} {
		if known, err := db.KnowsAccount(acct); err != nil || known {
			t.Errorf("KnowsAccount(%s) on a new state = %v, %v", acct, known, err)
		}
	}
	if err := db.AddAccount("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutFiles("bob@example.com", FileRecord{Path: "p.json", MsgID: "m", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	for _, acct := range []string{"alice@example.com", "bob@example.com"} {
		if known, err := db.KnowsAccount(acct); err != nil || !known {
			t.Errorf("KnowsAccount(%s) = %v, %v, want true", acct, known, err)
		}
	}
	if st, err := db.Stats("alice@example.com"); err != nil || st != (Stats{}) {
		t.Errorf("an added account's stats = %+v, %v, want zero", st, err)
	}
}

func TestAnAccountWithoutABucketOfTheLayoutGetsItAtOpen(t *testing.T) {
	dir, id := realState(t)
	path := filepath.Join(dir, FileName)
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A state written before a bucket was added to the layout.
	if err := bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketV1).Bucket(bucketAccounts).Bucket([]byte(stateAcct)).DeleteBucket(bucketVersions)
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.bolt.View(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketV1).Bucket(bucketAccounts).Bucket([]byte(stateAcct))
		for _, name := range accountBuckets {
			if ab.Bucket(name) == nil {
				t.Errorf("after Open the account has no %s bucket", name)
			}
		}
		return nil
	})
	if db.DeviceID() != id || stateFiles(t, db) != 600 {
		t.Error("the state changed")
	}
	if _, ok, err := db.Version(stateAcct, "m0001"); ok || err != nil {
		t.Errorf("Version on the new bucket = %v, %v", ok, err)
	}
}

func TestStateWhoseSchemaBucketsAreGoneIsDamaged(t *testing.T) {
	dir, _ := realState(t)
	path := filepath.Join(dir, FileName)
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketV1).DeleteBucket(bucketAccounts) }); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	_, err = Open(dir, Options{})
	wantDamaged(t, err, path)
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/chatsync/chatsync.db":                     "/var/lib/chatsync/chatsync.db",
		"/Library/Application Support/chatsync/chatsync.db": "'/Library/Application Support/chatsync/chatsync.db'",
		"/tmp/it's": `'/tmp/it'\''s'`,
		"":          "''",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
