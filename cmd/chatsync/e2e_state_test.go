package main_test

// State you can trust, with the real binaries: a damaged state file is a
// clear error of `chatsync run` (no bbolt stack), the command it gives
// starts the device again without pushing what the journal has, and a
// second daemon on one store is refused with a message naming the first.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// idle reports whether d runs, is idle and has nothing to send.
func idle(t *testing.T, d *e2eDevice) bool {
	st, ok := d.status(t)
	return ok && st.State == "idle" && st.OutboxDepth == 0 && st.StartError == ""
}

// runOnce runs `chatsync run` for d and returns its exit code and output,
// failing if it is still running after 20 s.
func runOnce(t *testing.T, d *e2eDevice) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.chatsync, "run", "--config", d.config).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("chatsync run was still running after 20 s on a damaged state; output:\n%s", out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestDamagedStateFileStopsChatsyncRunAndStateRebuildStartsItAgainPushingNothingTheJournalHas(t *testing.T) {
	srv := startServer(t)
	a := newE2EDevice(t, "A", srv, newKeyFile(t))
	a.start()
	for i := range 20 {
		a.write(fmt.Sprintf("bob/m%02d.json", i), e2eMsg(fmt.Sprintf("state-%02d@e2e.test", i), fmt.Sprintf("message %d", i)))
	}
	eventually(t, 60*time.Second, "20 rows and A idle", func() bool { return len(srv.rows(t)) == 20 && idle(t, a) }, a)
	a.stop()

	state := filepath.Join(a.dir, "state", "chatsync.db")
	good, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	zeroed := append(append([]byte(nil), good[:2*page]...), make([]byte, len(good)-2*page)...)
	rebuild := "chatsync state rebuild --config " + a.config
	want := "run `" + rebuild + "`: it keeps the damaged file beside a new state, and the device re-reads the journal and pushes again only what the journal lacks\n"
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"zeroed after the meta pages", zeroed},
		{"truncated to half", good[:len(good)/2]},
	} {
		if err := os.WriteFile(state, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := runOnce(t, a)
		if code != 1 {
			t.Errorf("%s: chatsync run exited %d, want 1; output:\n%s", c.name, code, out)
		}
		if !strings.HasPrefix(out, "chatsync: state file "+state+" is damaged (") || !strings.HasSuffix(out, want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: chatsync run said:\n%s\nwant one line: chatsync: state file %s is damaged (...) ... %s", c.name, out, state, want)
		}
		for _, stack := range []string{"panic", "goroutine ", ".go:"} {
			if strings.Contains(out, stack) {
				t.Errorf("%s: the output has a stack (%q):\n%s", c.name, stack, out)
			}
		}
	}

	// The command as given; then the device starts again and re-pushes
	// nothing: a message written once it is idle is the only new row.
	out, err := exec.Command(bins.chatsync, "state", "rebuild", "--config", a.config).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", rebuild, err, out)
	}
	if !strings.Contains(string(out), "the damaged state file (") || !strings.Contains(string(out), " is kept as "+state+".old-") {
		t.Errorf("%s said:\n%s\nwant it to name the damaged file it kept", rebuild, out)
	}
	kept, _ := filepath.Glob(state + ".old-*")
	if len(kept) != 1 {
		t.Errorf("the damaged file was not kept: %v", kept)
	}
	a.start()
	eventually(t, 60*time.Second, "A idle with the 20 messages", func() bool {
		st, _ := a.status(t)
		return idle(t, a) && st.Cursor >= 20
	}, a)
	a.write("bob/after.json", e2eMsg("after@e2e.test", "after starting again"))
	eventually(t, 30*time.Second, "the new message on the server", func() bool { return len(srv.rows(t)) >= 21 && idle(t, a) }, a)
	if n := len(srv.rows(t)); n != 21 {
		t.Errorf("the server holds %d rows, want 21: starting again pushed what the journal had", n)
	}
	if got, _ := a.messages(); len(got) != 21 {
		t.Errorf("A's store holds %d messages, want 21", len(got))
	}
}

func TestSecondChatsyncRunOnTheSameStoreIsRefusedNamingTheFirst(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key)
	b := newE2EDevice(t, "B", srv, key)
	// B: its own state dir and socket, A's message store.
	cfg, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.config, []byte(strings.Replace(string(cfg), fmt.Sprintf("store = %q", b.store), fmt.Sprintf("store = %q", a.store), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.write("bob/m1.json", e2eMsg("m1@e2e.test", "written once"))
	eventually(t, 30*time.Second, "A to push", func() bool { return len(srv.rows(t)) == 1 && idle(t, a) }, a)
	b.start()
	host, _ := os.Hostname()
	want := fmt.Sprintf("message store %s is in use by another chatsync (pid %d on %s, state dir %s, account %s, since ",
		a.store, a.cmd.Process.Pid, host, filepath.Join(a.dir, "state"), e2eAccount)
	eventually(t, 20*time.Second, "B to refuse A's store", func() bool {
		st, ok := b.status(t)
		return ok && strings.Contains(st.StartError, want)
	}, b)
	a.write("bob/m2.json", e2eMsg("m2@e2e.test", "also written once"))
	eventually(t, 30*time.Second, "A to push the second message", func() bool { return len(srv.rows(t)) >= 2 && idle(t, a) }, a)
	time.Sleep(2 * time.Second) // B polls every second: time to push, if it did
	if n := len(srv.rows(t)); n != 2 {
		t.Errorf("the server holds %d rows, want 2: both daemons pushed", n)
	}
	// `chatsync status` says it too.
	out, _ := exec.Command(bins.chatsync, "--config", b.config, "status").CombinedOutput()
	if !strings.Contains(string(out), "alice@example.com  error\n  cannot start: "+want) {
		t.Errorf("chatsync status of B:\n%s\nwant it to say %q", out, want)
	}
}

// A device's whole directory (state and store) copied to another machine,
// as a cloned VM or a restored backup would: two daemons write under one
// device id. They notice, one or both take a new id, every device ends
// with every message, the journal holds each once, and `chatsync status`
// says what happened.
func TestCopiedDeviceIsNoticedTakesANewIDAndConverges(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key)
	b := newE2EDevice(t, "B", srv, key)
	probe := "CHATSYNC_PROBE_INTERVAL=1s"
	a.start(probe)
	b.start(probe)
	for i := range 3 {
		a.write(fmt.Sprintf("bob/m%d.json", i), e2eMsg(fmt.Sprintf("clone-%d@e2e.test", i), "before the copy"))
	}
	eventually(t, 60*time.Second, "B to hold A's 3 messages", func() bool { got, _ := b.messages(); return len(got) == 3 && idle(t, a) }, a, b)
	a.stop()

	copied := newE2EDevice(t, "copy of A", srv, key)
	for _, dir := range []string{"state", "store"} {
		os.RemoveAll(filepath.Join(copied.dir, dir))
		if err := os.CopyFS(filepath.Join(copied.dir, dir), os.DirFS(filepath.Join(a.dir, dir))); err != nil {
			t.Fatal(err)
		}
	}
	a.start(probe)
	copied.start(probe)
	a.write("bob/from-a.json", e2eMsg("from-a@e2e.test", "written on A after the copy"))
	copied.write("bob/from-copy.json", e2eMsg("from-copy@e2e.test", "written on the copy"))

	all := func(d *e2eDevice) bool { got, _ := d.messages(); return len(got) == 5 }
	eventually(t, 90*time.Second, "every device to hold all 5 messages", func() bool {
		return all(a) && all(b) && all(copied) && idle(t, a) && idle(t, b) && idle(t, copied)
	}, a, copied)
	want, _ := b.messages()
	for _, d := range []*e2eDevice{a, copied} {
		if got, _ := d.messages(); !sameMaps(got, want) {
			t.Errorf("%s holds %d messages that differ from B's", d.name, len(got))
		}
	}
	if n := len(srv.rows(t)); n != 5 {
		t.Errorf("the journal holds %d rows, want 5: one per message", n)
	}
	sa, _ := a.status(t)
	sc, _ := copied.status(t)
	if sa.Clone == "" && sc.Clone == "" {
		t.Fatalf("neither A nor its copy says that it took a new device id")
	}
	d, st := a, sa
	if st.Clone == "" {
		d, st = copied, sc
	}
	out, _ := exec.Command(bins.chatsync, "status", "--config", d.config).CombinedOutput()
	if !strings.Contains(string(out), "device id:  "+st.DeviceID+": another device wrote ") {
		t.Errorf("chatsync status of %s says:\n%s\nwant a line naming its new device id %s and why", d.name, out, st.DeviceID)
	}
}

// The server is restored from a backup taken before the newest rows (the
// data dir copied back while it is stopped), with device B off, and A
// writes a message that takes a lost row's id. Both devices end with the
// same history: A's messages, B's delete (lost by the restore) and the
// new message, and the journal holds each message's newest version.
func TestServerRestoredFromABackupConvergesWithRealBinaries(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key)
	b := newE2EDevice(t, "B", srv, key)
	a.start()
	b.start()
	for i := range 3 {
		a.write(fmt.Sprintf("bob/m%d.json", i), e2eMsg(fmt.Sprintf("restore-%d@e2e.test", i), "before the backup"))
	}
	eventually(t, 60*time.Second, "B to hold A's 3 messages", func() bool { got, _ := b.messages(); return len(got) == 3 && idle(t, a) && idle(t, b) }, a, b)
	backup := filepath.Join(t.TempDir(), "backup")
	srv.restart(t, func(data string) {
		if err := os.CopyFS(backup, os.DirFS(data)); err != nil {
			t.Fatal(err)
		}
	})

	// After the backup: A writes two more, B deletes one of A's.
	a.write("bob/m3.json", e2eMsg("restore-3@e2e.test", "after the backup"))
	a.write("bob/m4.json", e2eMsg("restore-4@e2e.test", "after the backup"))
	_, paths := b.messages()
	if err := os.Remove(filepath.Join(b.store, paths["restore-1@e2e.test"])); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "both to hold the same 4 messages", func() bool {
		ga, _ := a.messages()
		gb, _ := b.messages()
		return len(ga) == 4 && sameMaps(ga, gb) && idle(t, a) && idle(t, b)
	}, a, b)
	b.stop()

	srv.restart(t, func(data string) {
		os.RemoveAll(data)
		if err := os.CopyFS(data, os.DirFS(backup)); err != nil {
			t.Fatal(err)
		}
	})
	if n := len(srv.rows(t)); n != 3 {
		t.Fatalf("the restored journal holds %d rows, want the backup's 3", n)
	}
	a.write("bob/after.json", e2eMsg("after@e2e.test", "after the restore"))
	// A finds out first (its new row took an id it had seen) and puts back
	// what the journal lost, B's delete included, before B returns.
	eventually(t, 60*time.Second, "A to put back what the journal lost", func() bool {
		st, _ := a.status(t)
		return !st.ResetAt.IsZero() && len(srv.rows(t)) >= 7 && idle(t, a)
	}, a)
	b.start()
	want := []string{"after@e2e.test", "restore-0@e2e.test", "restore-2@e2e.test", "restore-3@e2e.test", "restore-4@e2e.test"}
	has := func(d *e2eDevice) bool {
		got, _ := d.messages()
		for _, id := range want {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return len(got) == len(want)
	}
	eventually(t, 90*time.Second, "both to hold the same 5 messages", func() bool {
		return has(a) && has(b) && idle(t, a) && idle(t, b)
	}, a, b)
	ga, _ := a.messages()
	gb, _ := b.messages()
	if !sameMaps(ga, gb) {
		t.Errorf("A and B hold different content after the restore")
	}
	sa, _ := a.status(t)
	sb, _ := b.status(t)
	if sa.ResetAt.IsZero() && sb.ResetAt.IsZero() {
		t.Errorf("neither device says that the journal went backwards")
	}
}

// A second device made its own key by mistake (`key generate` instead of
// `key import`). Its status says which key it lacks, with `key import`
// first, and `sync --wait` fails instead of saying it is caught up. Once
// the right key is imported, as status says, both stores converge: the
// messages each wrote before reach the other.
func TestDeviceWithTheWrongKeyHealsOnceTheRightKeyIsImportedWithRealBinaries(t *testing.T) {
	srv := startServer(t)
	a := newE2EDevice(t, "A", srv, newKeyFile(t))
	bKey := newKeyFile(t) // the mistake
	b := newE2EDevice(t, "B", srv, bKey)
	a.start()
	b.start()
	a.write("bob/a.json", e2eMsg("from-a@e2e.test", "written on A"))
	b.write("bob/b.json", e2eMsg("from-b@e2e.test", "written on B under the wrong key"))
	// Each device writes its message and its first report: B keeps A's
	// two rows for the key it lacks.
	eventually(t, 60*time.Second, "B to keep A's rows for a key it lacks", func() bool {
		st, ok := b.status(t)
		return ok && st.Unapplied == 2 && len(st.MissingKeys) == 1 && len(srv.rows(t)) == 2 && len(srv.allRows(t)) == 4
	}, a, b)
	st, _ := b.status(t)
	if i, j := strings.Index(st.UnappliedHint, "key import"), strings.Index(st.UnappliedHint, "key generate"); i < 0 || j >= 0 && j < i {
		t.Errorf("B's hint does not put `key import` first: %q", st.UnappliedHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bins.chatsync, "sync", "--wait", "--config", b.config).CombinedOutput(); err == nil {
		t.Errorf("chatsync sync --wait on B succeeded with a row it cannot read:\n%s", out)
	}

	line, err := exec.Command(bins.chatsync, "key", "export", "--config", a.config).Output()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bins.chatsync, "key", "import", strings.TrimSpace(string(line)), "--config", b.config).CombinedOutput(); err != nil {
		t.Fatalf("key import: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			sa, _ := a.status(t)
			sb, _ := b.status(t)
			ga, _ := a.messages()
			gb, _ := b.messages()
			t.Logf("A %+v %v\nB %+v %v", sa, ga, sb, gb)
		}
	})
	eventually(t, 90*time.Second, "both stores to hold both messages", func() bool {
		ga, _ := a.messages()
		gb, _ := b.messages()
		st, _ := b.status(t)
		return len(ga) == 2 && sameMaps(ga, gb) && st.Unapplied == 0 && idle(t, a) && idle(t, b)
	}, a, b)
}
