package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secretRows returns the journal rows whose message holds "SECRET".
func secretRows(t *testing.T, srv *server, d *device) []string {
	t.Helper()
	var out []string
	for _, r := range srv.rows() {
		en, err := d.kr.Open(r.Data, testAccount)
		if err != nil {
			t.Fatalf("row %d does not open: %v", r.ID, err)
		}
		if strings.Contains(string(en.Message), "SECRET") {
			out = append(out, string(en.Message))
		}
	}
	return out
}

// A directory of A's store, holding a message A has pushed, is replaced
// while A is stopped by a symbolic link to a directory outside the store
// that holds a file of the same name with other content, and so is
// another, whose message B edits meanwhile. Neither the start-up look at
// the indexed files nor the poll that finds the file of the message B
// edited may read those files: their content never reaches the outbox, the journal or B,
// and B's edit of the message whose file on A is behind a link is kept on
// A for later, not written through the link.
func TestAMessageReachedThroughALinkedDirectoryIsNeverReadOrPushed(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.write("c/m1.json", msg("m1", "c@example.com", "one"))
	a.write("d/m2.json", msg("m2", "d@example.com", "two"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 and m2 on B", func() bool { return len(b.messages()) == 2 })
	barrier(t, a, b)

	outC, outD := t.TempDir(), t.TempDir()
	secret := map[string]string{
		filepath.Join(outC, "m1.json"): `{"msgid":"m1","remote_uri":"sip:c@example.com","body":"SECRET outside the store, a longer file than m1"}`,
		filepath.Join(outC, "m3.json"): `{"msgid":"m3","remote_uri":"sip:c@example.com","body":"SECRET outside the store, never indexed"}`,
		filepath.Join(outD, "m2.json"): `{"msgid":"m2","remote_uri":"sip:d@example.com","body":"SECRET outside the store, a longer file than m2"}`,
	}
	for p, data := range secret {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(dir, out string) {
		t.Helper()
		if err := os.Rename(filepath.Join(a.store, dir), filepath.Join(t.TempDir(), dir)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(out, filepath.Join(a.store, dir)); err != nil {
			t.Fatal(err)
		}
	}

	// Both links are swapped in while A is stopped, and B edits m2
	// meanwhile: at start, A's look at its indexed files and its catch-up
	// poll find m2's file behind a link. (Swapped in while A runs, the
	// watcher takes the files as moved out of the store, which they are,
	// and their deletes go out: a race with the edit.)
	a.stop()
	link("c", outC)
	link("d", outD)
	b.write(fileOf(t, b, "m2"), msg("m2", "d@example.com", "two, edited on B"))
	waitFor(t, 20*time.Second, "B's edit on the server", func() bool { return b.status().OutboxDepth == 0 && len(srv.rows()) == 4 }, func() string {
		return fmt.Sprintf("%d rows on the server, want m1, m2, the barrier and the edit", len(srv.rows()))
	})
	a.start()
	waitFor(t, 20*time.Second, "A to keep B's edit for later", func() bool {
		st := a.status()
		return st.Unapplied == 1 && st.UnappliedReasons["its file would pass through a symbolic link in the store: move the link away"] == 1
	}, func() string {
		return fmt.Sprintf("%+v", a.status())
	})
	barrier(t, a, b)

	if rows := secretRows(t, srv, a); len(rows) > 0 {
		t.Errorf("the journal holds %d messages read outside A's store: %q", len(rows), rows)
	}
	for id, m := range b.messages() {
		if strings.Contains(m, "SECRET") {
			t.Errorf("B holds %s with content read outside A's store: %s", id, m)
		}
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if p, ok, err := a.db.Pending(testAccount, id); err != nil || ok {
			t.Errorf("A's outbox holds %s (%v, %v): %+v", id, ok, err, p)
		}
	}
	if got := b.messages()["m2"]; !strings.Contains(got, "edited on B") {
		t.Errorf("B's m2 = %s, want its own edit", got)
	}
	for p, want := range secret {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s outside the store = %q, %v; want it untouched", p, got, err)
		}
	}
	for _, out := range []string{outC, outD} {
		if entries, _ := os.ReadDir(out); len(entries) != map[string]int{outC: 2, outD: 1}[out] {
			t.Errorf("%d files in %s, outside the store: chatsync wrote through the link", len(entries), out)
		}
	}
}

// A remote edit keeps the permission bits of the file it replaces: B's
// message file, which its user made readable by others (0644), is still
// 0644 after an edit made on A arrives; a message new to B gets 0600.
func TestARemoteEditKeepsTheFileMode(t *testing.T) {
	_, _, a, b := twoDevices(t)
	b.write("c/m1.json", msg("m1", "c@example.com", "written on B"))
	p := filepath.Join(b.store, "c", "m1.json")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "m1 on A", func() bool { _, ok := a.messages()["m1"]; return ok })
	edited := msg("m1", "c@example.com", "edited on A")
	a.write(fileOf(t, a, "m1"), edited)
	a.write("c/m2.json", msg("m2", "c@example.com", "new"))
	want := canonical(t, edited)
	waitFor(t, 20*time.Second, "A's edit and m2 on B", func() bool {
		got := b.messages()
		return got["m1"] == want && got["m2"] != ""
	})
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o644 {
		t.Errorf("B's m1.json has mode %o after A's edit, want 644 as its user set it", m)
	}
	var m2 string
	for _, f := range b.files() {
		if f != "c/m1.json" {
			m2 = f
		}
	}
	if fi, err := os.Stat(filepath.Join(b.store, filepath.FromSlash(m2))); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("B's new %s: %v, %v; want mode 600", m2, fi.Mode().Perm(), err)
	}
}
