package engine

// Bad input of every kind (issue #6, RELIABILITY.md §7): broken message
// files, odd file types, huge directories, a store that disappears, hostile
// or broken server replies, a full disk. Each must be reported in Status,
// must not stop the engine, and must not hold back anything valid.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/internal/syncbuf"
	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/faultproxy"
)

// rejectedFor returns the reason A's status gives for path, or "".
func rejectedFor(s Status, path string) string {
	for _, r := range s.Rejected {
		if r.Path == path {
			return r.Reason
		}
	}
	return ""
}

// oneRowPerMessage fails the test for every message the journal holds more
// (or fewer) than one row of; why, if set, says what a second row means.
func oneRowPerMessage(t *testing.T, srv *server, kr *seal.Keyring, why string) {
	t.Helper()
	if why != "" {
		why = " (" + why + ")"
	}
	for id, n := range serverMsgIDs(t, srv, kr) {
		if n != 1 {
			t.Errorf("the journal holds %d rows of %s, want 1%s", n, id, why)
		}
	}
}

// serverMsgIDs opens every journal row and counts the rows per msgid.
func serverMsgIDs(t *testing.T, srv *server, kr *seal.Keyring) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range srv.rows() {
		en, err := kr.Open(r.Data, testAccount)
		if errors.Is(err, seal.ErrUnknownKey) {
			continue // a device under another key wrote it
		}
		if err != nil {
			t.Fatalf("row %d does not open: %v", r.ID, err)
		}
		out[en.MsgID]++
	}
	return out
}

func TestBrokenMessageFilesAreReportedAndEverythingValidStillSyncs(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.tweak = func(o *Options) { o.MaxMessageBytes = 4096 }
	outside := filepath.Join(t.TempDir(), "secret.json")
	os.WriteFile(outside, []byte(`{"msgid":"outside","body":"must never leave this machine"}`), 0o600)

	// Half of the bad files are there at start (the start-up scan), half
	// arrive while the engine runs (the watcher).
	bad := func(phase string) map[string]string { // path → expected reason fragment
		dir := "x-bad-" + phase // walked after c/, so the copy in dup.json is the second file of its msgid
		os.MkdirAll(filepath.Join(a.store, dir), 0o700)
		a.writeRaw(dir+"/notjson.json", `{"msgid": "x", "body": `)
		a.writeRaw(dir+"/nomsgid.json", `{"body":"who am I"}`)
		a.writeRaw(dir+"/array.json", `[1,2,3]`)
		a.writeRaw(dir+"/huge.json", `{"msgid":"huge-`+phase+`","body":"`+strings.Repeat("x", 8192)+`"}`)
		a.writeRaw(dir+"/binary.json", string(bytes.Repeat([]byte{0, 0xff, 0xfe, 0x80, 7}, 100)))
		a.writeRaw(dir+"/empty.json", "")
		if err := os.Symlink(outside, filepath.Join(a.store, dir, "link.json")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(a.store, dir, "fifo.json"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.write(dir+"/dup.json", msg("good-"+phase+"-1", "c@example.com", "a copy under another name"))
		return map[string]string{
			dir + "/notjson.json": "not a single JSON object",
			dir + "/nomsgid.json": `no "msgid"`,
			dir + "/array.json":   "not a single JSON object",
			dir + "/huge.json":    "larger than max_message_bytes",
			dir + "/binary.json":  "not a single JSON object",
			dir + "/empty.json":   "not a single JSON object",
			dir + "/link.json":    "symbolic link",
			dir + "/fifo.json":    "not a regular file",
			dir + "/dup.json":     "repeats the msgid of",
		}
	}
	good := map[string]string{}
	writeGood := func(phase string) {
		for i := range 3 {
			id := fmt.Sprintf("good-%s-%d", phase, i)
			m := msg(id, "c@example.com", "valid "+id)
			a.write(fmt.Sprintf("c/%s.json", id), m)
			good[id] = canonical(t, m)
		}
	}
	writeGood("start")
	wantReasons := bad("start")
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "the valid start-up messages on B", func() bool { return len(b.messages()) == 3 })
	writeGood("run")
	for k, v := range bad("run") {
		wantReasons[k] = v
	}
	// Valid messages written after the FIFO and the rest still arrive.
	writeGood("late")
	waitFor(t, 20*time.Second, "every valid message on B", func() bool {
		if !equalMaps(b.messages(), good) {
			return false
		}
		return true
	})
	waitFor(t, 20*time.Second, "every bad file reported", func() bool {
		s := a.status()
		for p := range wantReasons {
			if rejectedFor(s, p) == "" {
				return false
			}
		}
		return true
	})
	s := a.status()
	for p, frag := range wantReasons {
		if got := rejectedFor(s, p); !strings.Contains(got, frag) {
			t.Errorf("%s rejected with %q, want a reason containing %q", p, got, frag)
		}
	}
	if s.State != StateIdle {
		t.Errorf("A is %s (%s), want idle: bad files are not a failure of the engine", s.State, s.Error)
	}
	ids := serverMsgIDs(t, srv, kr)
	if ids["outside"] != 0 || ids["huge-start"] != 0 || ids["huge-run"] != 0 {
		t.Errorf("the server got a message it must not: %v", ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("the server holds %s %d times", id, n)
		}
	}

	// Fixing a file fixes its report: the original of a duplicated msgid
	// is deleted, so the copy becomes the message.
	os.Remove(filepath.Join(a.store, "c", "good-run-1.json"))
	waitFor(t, 20*time.Second, "the copy to take the duplicate's place", func() bool {
		return rejectedFor(a.status(), "x-bad-run/dup.json") == "" && strings.Contains(b.messages()["good-run-1"], "a copy under another name")
	})
}

func TestUnreadableFileIsReportedAndOthersSync(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: a file of mode 000 is still readable, so there is nothing to report")
	}
	_, _, a, b := twoDevices(t)
	a.write("c/locked.json", msg("locked", "c@example.com", "x"))
	os.Chmod(filepath.Join(a.store, "c", "locked.json"), 0)
	a.write("c/ok.json", msg("ok", "c@example.com", "x"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "ok on B and locked reported", func() bool {
		return len(b.messages()) == 1 && strings.Contains(rejectedFor(a.status(), "c/locked.json"), "cannot read")
	})
}

func TestManyFilesInOneDirectoryAndADeepTreeAllReachTheServer(t *testing.T) {
	n := 10000 // about 25 s with -race on 2 cores; CHATSYNC_BIG_DIR=100000 for the full size
	if v, err := strconv.Atoi(os.Getenv("CHATSYNC_BIG_DIR")); err == nil && v > 0 {
		n = v
	}
	if testing.Short() {
		n = 2000
	}
	srv := newServer(t)
	kr := newKeyring(t)
	a := newDevice(t, "A", srv, kr)
	dir := filepath.Join(a.store, "big")
	os.MkdirAll(dir, 0o700)
	start := time.Now()
	for i := range n {
		data := fmt.Sprintf(`{"msgid":"big-%06d","remote_uri":"c@example.com","body":"%d"}`, i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%06d.json", i)), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	deep := "deep"
	for i := range 64 {
		deep += fmt.Sprintf("/d%02d", i)
	}
	a.write(deep+"/bottom.json", msg("bottom", "c@example.com", "64 directories down"))
	t.Logf("wrote %d files in one directory in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	a.start()
	waitFor(t, 10*time.Minute, fmt.Sprintf("%d rows", n+1), func() bool {
		s := a.status()
		return s.Pushed == int64(n+1) && s.OutboxDepth == 0
	})
	t.Logf("pushed %d files from one directory and one 64 deep in %s", n+1, time.Since(start).Round(time.Millisecond))
	if got := len(srv.rows()); got != n+1 {
		t.Errorf("server holds %d rows, want %d", got, n+1)
	}
	if r := a.status().Rejected; len(r) != 0 {
		t.Errorf("rejected: %v", r)
	}
}

func TestStoreDirectoryRemovedPausesAndComingBackDeletesNothing(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	for i := range 5 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "kept"))
	}
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "5 messages on B", func() bool { return len(b.messages()) == 5 })
	want := b.messages()

	// The store goes away (an unmounted disk): A pauses and says why.
	moved := a.store + ".away"
	if err := os.Rename(a.store, moved); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "A paused with a message about the store", func() bool {
		s := a.status()
		return s.State == StatePaused && strings.Contains(s.Error, "is missing")
	})
	rows := len(srv.rows())
	// It comes back (remounted) with one new message.
	if err := os.Rename(moved, a.store); err != nil {
		t.Fatal(err)
	}
	a.write("c/new.json", msg("new", "c@example.com", "written after the store came back"))
	waitFor(t, 20*time.Second, "the new message on B and A idle again", func() bool {
		return len(b.messages()) == 6 && a.status().State == StateIdle
	})
	if got := len(srv.rows()); got != rows+1 {
		t.Errorf("server holds %d rows, want %d: the store coming back must push only the new message", got, rows+1)
	}
	got := b.messages()
	for id, c := range want {
		if got[id] != c {
			t.Errorf("B lost or changed %s while A's store was away", id)
		}
	}
}

// proxied makes d talk to srv through a fault proxy.
func proxied(t *testing.T, d *device, srv *server, maxReply int64, timeout time.Duration) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(faultproxy.Options{Target: srv.http.URL, Seed: faultproxy.SeedFromEnv(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	d.tweak = func(o *Options) {
		c, err := account.New(account.Config{Address: testAccount, Password: testPassword,
			SettingsURL: p.URL + accountserver.Path, Timeout: timeout, MaxReplyBytes: maxReply})
		if err != nil {
			t.Fatal(err)
		}
		o.Remote = c
	}
	return p
}

func TestHostileAndBrokenRepliesAreReportedAndSyncResumes(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	p := proxied(t, b, srv, 4<<20, 2*time.Second)
	a.start()
	for i := range 5 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "x"))
	}
	waitFor(t, 20*time.Second, "5 rows", func() bool { return len(srv.rows()) == 5 })
	want := a.messages()

	cases := []struct {
		fault faultproxy.Fault
		err   string // in LastPollError
	}{
		{faultproxy.Garbage, ""},
		// 1 GiB of nested objects: the streamed page gives up on the
		// nesting long before the size matters.
		{faultproxy.HugeBody, "not valid JSON"},
		{faultproxy.NonNumericIDs, "numeric id"},
		{faultproxy.HTMLError, ""},
		{faultproxy.SuccessFalse, ""},
		{faultproxy.Stall, ""},
	}
	for _, c := range cases {
		p.Add(faultproxy.Rule{Action: "get_journal_entries", Fault: c.fault, Times: 1})
	}
	b.start()
	seen := map[string]bool{}
	waitFor(t, 60*time.Second, "B to get through every broken reply", func() bool {
		if e := b.status().LastPollError; e != "" {
			seen[e] = true
		}
		return equalMaps(b.messages(), want) && p.Counts()[faultproxy.Stall] == 1
	})
	for _, c := range cases {
		if p.Counts()[c.fault] != 1 {
			t.Errorf("%s injected %d times, want 1", c.fault, p.Counts()[c.fault])
		}
		if c.err == "" {
			continue
		}
		found := false
		for e := range seen {
			found = found || strings.Contains(e, c.err)
		}
		if !found {
			t.Errorf("no poll error mentioning %q was shown for %s; saw %v", c.err, c.fault, seen)
		}
	}
	if n := p.HugeBytesWritten(); n > 64<<20 {
		t.Errorf("B read %d bytes of a 1 GiB reply", n)
	}

	// Replayed rows change nothing.
	p.Add(faultproxy.Rule{Action: "get_journal_entries", Fault: faultproxy.Replay, Times: 3})
	a.write("c/after.json", msg("after", "c@example.com", "after the replays"))
	want = a.messages()
	waitFor(t, 20*time.Second, "the new message on B", func() bool { return equalMaps(b.messages(), want) })
	if got := len(b.files()); got != 6 {
		t.Errorf("B has %d files after replayed rows, want 6", got)
	}
}

func TestEntriesSealedForAnotherAccountAreSkippedAndCounted(t *testing.T) {
	srv := newServer(t)
	kr := newKeyring(t)
	b := newDevice(t, "B", srv, kr)
	writer := "urn:uuid:00000000-0000-4000-8000-0000000000ee"
	body := []byte(`{"msgid":"stolen","remote_uri":"c@example.com","body":"moved here from another account"}`)
	env, err := kr.Seal(seal.Entry{Op: seal.OpPut, MsgID: "stolen", Account: "mallory@example.com", Device: writer, Time: time.Now(), Message: body})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.client(t).PutJournalEntries(context.Background(), writer, []account.PutEntry{{ID: "1", Data: env}, {ID: "2", Data: "not an envelope at all"}}); err != nil {
		t.Fatal(err)
	}
	b.start()
	waitFor(t, 20*time.Second, "both rows skipped and counted", func() bool {
		s := b.status().Skipped
		return s["belongs to another account"] == 1 && s["not a chatsync entry"] == 1
	})
	if got := b.files(); len(got) != 0 {
		t.Errorf("B wrote %v from entries it must skip", got)
	}
}

// syncBuffer is a log destination written by goroutines while the test reads it.
type syncBuffer = syncbuf.Buffer

// mountTmpfs mounts a tmpfs of size bytes on dir, or skips the test.
func mountTmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	os.MkdirAll(dir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fill fills the file system of dir, returning the filler to remove.
func fill(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, ".filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	return f.Name()
}

func TestFullDiskOnTheReceivingStoreLosesNoMessage(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	mountTmpfs(t, b.store, "1m")
	logs := &syncBuffer{}
	b.tweak = func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) }
	a.start()
	b.start()
	a.write("c/first.json", msg("first", "c@example.com", "before the disk filled"))
	waitFor(t, 20*time.Second, "first on B", func() bool { return len(b.messages()) == 1 })
	filler := fill(t, b.store)
	for i := range 5 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", strings.Repeat("while the disk is full ", 20)))
	}
	waitFor(t, 20*time.Second, "6 rows", func() bool { return len(srv.rows()) == 6 })
	// B polls while its disk is full; it must not get past the rows it
	// could not write.
	waitFor(t, 20*time.Second, "B to fail writing to its full disk", func() bool {
		return strings.Contains(logs.String(), "no space left on device")
	})
	os.Remove(filler)
	want := a.messages()
	waitFor(t, 30*time.Second, "every message on B once the disk has room again", func() bool { return equalMaps(b.messages(), want) })
}

func TestReadOnlyStateDirIsAClearErrorAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	mountTmpfs(t, dir, "1m")
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only (%v: %s)", err, out)
	}
	_, err := store.Open(dir, store.Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("opening the state in a read-only dir: %v, want an error that says the file system is read-only", err)
	}
}

func TestFullDiskUnderTheStateDirIsReportedAndQueuedMessagesGoOutLater(t *testing.T) {
	_, _, a, b := twoDevices(t)
	mountTmpfs(t, a.state, "2m")
	logs := &syncBuffer{}
	a.tweak = func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) }
	a.start()
	b.start()
	a.write("c/first.json", msg("first", "c@example.com", "before the disk filled"))
	waitFor(t, 20*time.Second, "first on B", func() bool { return len(b.messages()) == 1 })
	filler := fill(t, a.state)
	for i := range 200 {
		a.write(fmt.Sprintf("c/m%03d.json", i), msg(fmt.Sprintf("m%03d", i), "c@example.com", strings.Repeat("state disk full ", 50)))
	}
	waitFor(t, 20*time.Second, "A to report the full state disk in its status", func() bool {
		return strings.Contains(a.status().LocalError, "no space left on device")
	})
	os.Remove(filler)
	// Once there is room again, nothing that was written meanwhile is
	// held back.
	want := a.messages()
	waitFor(t, 30*time.Second, "every message on B once the state disk has room", func() bool { return equalMaps(b.messages(), want) })
	waitFor(t, 10*time.Second, "the state error to clear", func() bool { return a.status().LocalError == "" })
}
