package store

// Opening the state file so that it can be trusted: a damaged file is a
// clear error at start rather than a bbolt panic (at start or, worse, in
// the middle of a run), an empty file is not taken for a new one, a
// symbolic link is not followed, and (Options.RequirePrivate) a state dir
// that other users could write is refused.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrDamaged is returned (wrapped in a *DamagedError) by Open when the
	// state file is damaged: truncated, zeroed, overwritten, or empty.
	ErrDamaged = errors.New("state file is damaged")

	// ErrNotPrivate is returned (wrapped) by Open when the state file is a
	// symbolic link or not a regular file, or, with RequirePrivate, when
	// the state dir could be written by other users.
	ErrNotPrivate = errors.New("state is not private")
)

// DamagedError says that the state file at Path cannot be used, and why.
// Open never repairs or replaces it: the device id, the cursor and the
// outbox are in it, and starting over silently would make this a new
// device.
type DamagedError struct {
	Path   string
	Reason string // what is wrong, for the message
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("state file %s is damaged (%s); chatsync does not run on it. Move it aside and start again (%s): the device re-reads the journal and pushes again only what the journal lacks",
		e.Path, e.Reason, MoveAsideCommand(e.Path))
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// MoveAsideCommand is the shell command that moves a damaged state file
// out of the way, keeping it for a later look.
func MoveAsideCommand(path string) string {
	return "mv " + ShellQuote(path) + " " + ShellQuote(path+".damaged")
}

// ShellQuote quotes s for a POSIX shell when it needs it, so that a command
// in a message can be pasted as it is.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:@,%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// refusal is an error that wraps ErrNotPrivate, in its own words.
type refusal struct{ msg string }

func (e *refusal) Error() string        { return e.msg }
func (e *refusal) Is(target error) bool { return target == ErrNotPrivate }

func notPrivate(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// checkStateFile looks at the state file before bbolt opens it, without
// following a symbolic link. It reports whether the file exists.
func checkStateFile(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open state %s: %w", path, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		if target != "" && !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		return true, notPrivate("state file %s is a symbolic link (to %s), which chatsync does not follow: whoever can change the link can swap the state; put the file itself there (mv %s %s)",
			path, target, ShellQuote(target), ShellQuote(path))
	case !fi.Mode().IsRegular():
		return true, notPrivate("state file %s is not a regular file but %s: move it away and start again", path, kind(fi.Mode()))
	case fi.Size() == 0:
		// bbolt would initialise an empty file as a new database, and
		// chatsync would become a new device that has never pushed
		// anything. chatsync leaves no empty state file itself: bbolt
		// writes the first pages right after creating it (a crash in
		// that instant leaves nothing that moving the file aside loses).
		return true, &DamagedError{Path: path, Reason: "it is empty (0 bytes): its content was lost, by a crash of the file system, a full disk or a failed copy"}
	}
	return true, nil
}

// kind names the type of a file that is not a regular one.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}

// openBolt opens the bbolt file at path, verifying it first if it exists.
func openBolt(path string, exists bool, timeout time.Duration) (*bolt.DB, error) {
	if exists {
		if err := verifyFile(path, timeout); err != nil {
			return nil, err
		}
	}
	return guardedOpen(path, &bolt.Options{Timeout: timeout}, func(*bolt.DB, *os.File) string { return "" })
}

// verifyFile reads the whole state file once, so that damage is found at
// start and not when the engine reaches a damaged page in the middle of a
// run. It opens the file read-only (bbolt's shared lock keeps a running
// daemon from writing meanwhile): bbolt then reads only the meta pages, and
// rawCheck looks at the rest of what a read-write open would read before
// bbolt does.
//
// Cost: one read of every page in use; about 50 ms for a state of 100,000
// indexed files (65 MB) from the page cache.
func verifyFile(path string, timeout time.Duration) error {
	_, err := guardedOpen(path, &bolt.Options{Timeout: timeout, ReadOnly: true}, func(bdb *bolt.DB, f *os.File) string {
		if reason := rawCheck(f); reason != "" {
			return reason
		}
		return walk(bdb)
	})
	return err
}

// guardedOpen opens the file with bbolt and runs check on it; a reason
// from check closes it again and is a *DamagedError. A panic of bbolt on a
// damaged page, or a memory fault reading a page that the file no longer
// has, becomes a *DamagedError too, and so does a file that bbolt refuses
// as invalid. When check passes, a read-only open is closed again (nil,
// nil) and a read-write one is returned.
func guardedOpen(path string, opts *bolt.Options, check func(*bolt.DB, *os.File) string) (bdb *bolt.DB, err error) {
	var file *os.File // the file bbolt opened, to close it if bbolt panics
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := openNoFollow(name, flag, perm)
		file = f
		return f, err
	}
	// A page beyond the end of a truncated file is a memory fault, which
	// would kill the process; here it panics, and is recovered below.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if bdb != nil {
			bdb.Close()
		} else if file != nil {
			// bbolt panicked inside Open. Its memory map of the file
			// stays, and with it (on unix) the file's lock, until the
			// process exits; rawCheck leaves no known cause of that.
			file.Close()
		}
		bdb, err = nil, &DamagedError{Path: path, Reason: panicReason(r)}
	}()
	bdb, err = bolt.Open(path, 0o600, opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, err
	}
	if err != nil {
		if damagedOpenError(err) {
			return nil, &DamagedError{Path: path, Reason: "bbolt: " + err.Error()}
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if reason := check(bdb, file); reason != "" {
		bdb.Close()
		return nil, &DamagedError{Path: path, Reason: reason}
	}
	if opts.ReadOnly {
		bdb.Close()
		return nil, nil
	}
	return bdb, nil
}

// damagedOpenError reports whether an error of bolt.Open says the file's
// content is wrong (rather than that it cannot be opened or locked).
func damagedOpenError(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || strings.Contains(err.Error(), "file size too small")
}

func panicReason(r any) string {
	s := fmt.Sprint(r)
	var re interface{ Addr() uintptr }
	if e, ok := r.(error); ok && errors.As(e, &re) {
		return "a page cannot be read: " + s
	}
	return "bbolt: " + s
}

// The parts of bbolt's file format (version 2) that rawCheck reads. The
// file is in the machine's byte order.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	boltFreelistFlag = 0x10
	boltNoFreelist   = ^uint64(0)
)

// boltMeta is a meta page: magic u32, version u32, page size u32, flags
// u32, root bucket (page u64, sequence u64), freelist u64, high water mark
// u64, txid u64 and an FNV-64a checksum of what precedes it.
type boltMeta struct {
	pageSize            uint32
	freelist, hwm, txid uint64
	valid               bool
}

func readMeta(f *os.File, off int64) boltMeta {
	var b [boltPageHeader + 64]byte
	if n, _ := f.ReadAt(b[:], off); n < len(b) {
		return boltMeta{}
	}
	m := b[boltPageHeader:]
	ne := binary.NativeEndian
	sum := fnv.New64a()
	sum.Write(m[:56])
	return boltMeta{
		pageSize: ne.Uint32(m[8:]),
		freelist: ne.Uint64(m[32:]),
		hwm:      ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
		valid:    ne.Uint32(m[0:]) == boltMagic && ne.Uint32(m[4:]) == boltVersion && ne.Uint64(m[56:]) == sum.Sum64(),
	}
}

// rawCheck reads, with plain reads rather than through bbolt's memory
// map, what bbolt reads at a read-write open without checking it: that
// the pages in use are all in the file (else: a memory fault), and that
// the freelist page is one (else: a panic). It returns what is wrong, or
// "". It picks the meta page as bbolt does; when it finds none, bbolt's
// open has already said the file is invalid.
func rawCheck(f *os.File) string {
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	m0 := readMeta(f, 0)
	ps := int64(m0.pageSize)
	if !m0.valid {
		ps = 0
		for i := range 15 {
			if m := readMeta(f, 1024<<i); m.valid {
				ps = int64(m.pageSize)
				break
			}
		}
	}
	if ps < 1024 {
		return ""
	}
	m1 := readMeta(f, ps)
	m := m0
	if m1.txid > m0.txid {
		m, m1 = m1, m0
	}
	if !m.valid {
		m = m1
	}
	if !m.valid {
		return ""
	}
	if m.hwm > uint64(fi.Size()/ps) {
		return fmt.Sprintf("truncated: %d bytes, but its pages reach %d", fi.Size(), m.hwm*uint64(ps))
	}
	if m.freelist == boltNoFreelist {
		return ""
	}
	if m.freelist < 2 || m.freelist >= m.hwm {
		return fmt.Sprintf("its freelist page %d is out of bounds", m.freelist)
	}
	var h [boltPageHeader + 8]byte
	if n, _ := f.ReadAt(h[:], int64(m.freelist)*ps); n < len(h) {
		return fmt.Sprintf("its freelist page %d cannot be read", m.freelist)
	}
	ne := binary.NativeEndian
	flags, count, overflow := ne.Uint16(h[8:]), uint64(ne.Uint16(h[10:])), uint64(ne.Uint32(h[12:]))
	if flags&boltFreelistFlag == 0 {
		return fmt.Sprintf("its freelist page %d is not a freelist page (flags %#x)", m.freelist, flags)
	}
	if m.freelist+overflow+1 > m.hwm {
		return fmt.Sprintf("its freelist (page %d and %d more) goes beyond the pages in use", m.freelist, overflow)
	}
	start := int64(boltPageHeader)
	if count == 0xFFFF {
		count, start = ne.Uint64(h[boltPageHeader:]), boltPageHeader+8
	}
	if uint64(start)+count*8 > (overflow+1)*uint64(ps) {
		return fmt.Sprintf("its freelist page %d says %d free pages, more than it holds", m.freelist, count)
	}
	ids := make([]byte, count*8)
	if n, _ := f.ReadAt(ids, int64(m.freelist)*ps+start); n < len(ids) {
		return fmt.Sprintf("its freelist page %d cannot be read", m.freelist)
	}
	for i := 0; i < len(ids); i += 8 {
		if id := ne.Uint64(ids[i:]); id < 2 || id >= m.hwm {
			return fmt.Sprintf("its freelist holds page %d, out of bounds", id)
		}
	}
	return ""
}

// walk touches every key and value of every bucket, then runs bbolt's own
// check; it returns what is wrong, or "". bbolt reads a page without
// checking it, and panics on one that is not what its parent says, or
// faults on one beyond the end of the file: here, in the goroutine of
// guardedOpen, whose recover turns that into a *DamagedError.
func walk(bdb *bolt.DB) string {
	reason := ""
	err := bdb.View(func(tx *bolt.Tx) error {
		var sink byte
		var walkBucket func(b *bolt.Bucket) error
		walkBucket = func(b *bolt.Bucket) error {
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				sink ^= touch(k) ^ touch(v)
				if v == nil {
					if child := b.Bucket(k); child != nil {
						if err := walkBucket(child); err != nil {
							return err
						}
					}
				}
			}
			return nil
		}
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walkBucket(b) }); err != nil {
			return err
		}
		_ = sink
		// Now that every page in use has been read safely, bbolt's own
		// check (in a goroutine of its own): pages freed twice, lost, or
		// keys out of order, which would make a later write panic.
		var problems []string
		for err := range tx.Check() {
			if len(problems) < 3 {
				problems = append(problems, err.Error())
			}
		}
		if len(problems) > 0 {
			reason = "bbolt check: " + strings.Join(problems, "; ")
		}
		return nil
	})
	if err != nil && reason == "" {
		reason = err.Error()
	}
	return reason
}

// touch reads one byte of every 512 of b (and its last), so that every
// page that holds part of it is read.
func touch(b []byte) byte {
	var x byte
	for i := 0; i < len(b); i += 512 {
		x ^= b[i]
	}
	if len(b) > 0 {
		x ^= b[len(b)-1]
	}
	return x
}

// KnowsAccount reports whether the state has a record of acct: AddAccount
// was called for it, or the engine wrote anything for it.
func (db *DB) KnowsAccount(acct string) (bool, error) {
	known := false
	err := db.view(func(tx *bolt.Tx) error {
		known = readAccount(tx, acct).exists()
		return nil
	})
	return known, err
}

// AddAccount records acct in the state (its buckets, empty), so that
// KnowsAccount says yes from then on. The daemon calls it before an
// account's engine first touches its message store.
func (db *DB) AddAccount(acct string) error {
	return db.update(func(tx *bolt.Tx) error {
		_, err := writeAccount(tx, acct)
		return err
	})
}
