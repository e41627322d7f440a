package msgdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParseKeepsEveryFieldAndCanonicalisesFormatting(t *testing.T) {
	a, err := Parse([]byte(`{"msgid":"m1","body":"hi","n":1.50,"remote_uri":"bob@example.com"}`), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte("{\n  \"remote_uri\": \"bob@example.com\",\n  \"n\": 1.50,\n  \"body\": \"hi\",\n  \"msgid\": \"m1\"\n}\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(a.Canonical), `{"body":"hi","msgid":"m1","n":1.50,"remote_uri":"bob@example.com"}`; got != want {
		t.Errorf("canonical = %s, want %s", got, want)
	}
	if a.Hash != b.Hash {
		t.Errorf("same message formatted differently hashed %s and %s", a.Hash, b.Hash)
	}
	if a.MsgID != "m1" || a.RemoteURI != "bob@example.com" {
		t.Errorf("msgid, remote = %q, %q", a.MsgID, a.RemoteURI)
	}
}

func TestParseRejectsEachInvalidFileWithItsReason(t *testing.T) {
	long := strings.Repeat("x", MaxMsgIDBytes+1)
	for _, tc := range []struct {
		name, data string
		max        int64
		want       error
	}{
		{"not json", `{"msgid":`, 100, ErrNotJSON},
		{"array", `[{"msgid":"a"}]`, 100, ErrNotJSON},
		{"null", `null`, 100, ErrNotJSON},
		{"two objects", `{"msgid":"a"}{"msgid":"b"}`, 100, ErrNotJSON},
		{"binary", "\x00\x01\xff", 100, ErrNotJSON},
		{"no msgid", `{"body":"x"}`, 100, ErrNoMsgID},
		{"empty msgid", `{"msgid":""}`, 100, ErrNoMsgID},
		{"numeric msgid", `{"msgid":12}`, 100, ErrNoMsgID},
		{"long msgid", `{"msgid":"` + long + `"}`, 1000, ErrNoMsgID},
		{"too large", `{"msgid":"a","body":"0123456789"}`, 20, ErrTooLarge},
	} {
		_, err := Parse([]byte(tc.data), tc.max)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestIgnoredFollowsTheStoreRules(t *testing.T) {
	for name, want := range map[string]bool{
		"m1.json": false, "a.b.json": false,
		".m1.json": true, ".m1.tmp": true, "m1.tmp": true, "m1.json.part": true,
		"m1.json.swp": true, "m1.json~": true, "m1.txt": true, "m1": true,
	} {
		if got := Ignored(name); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestSafeNameKeepsPlainNamesAndHashesTheRest(t *testing.T) {
	for in, want := range map[string]string{
		"bob@example.com":  "bob@example.com",
		"m-1_2+3.x":        "m-1_2+3.x",
		"элина@example.ru": "элина@example.ru",
		"李@example.cn":     "李@example.cn",
		"ελένη@example.gr": "ελένη@example.gr",
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"", "../etc/passwd", "a/b", `a\b`, ".hidden", "con", "LPT1.txt", "trail.", strings.Repeat("a", 200), "a b",
		"e\u0301", "a\u202eb", "tab\tname", "\u00a0nbsp"} {
		got := SafeName(in)
		if !strings.HasPrefix(got, "h-") || len(got) != 34 {
			t.Errorf("SafeName(%q) = %q, want a hashed name", in, got)
		}
		if SafeName(in) != got {
			t.Errorf("SafeName(%q) is not deterministic", in)
		}
	}
	if SafeName("a/b") == SafeName("a\\b") {
		t.Error("different unsafe names hashed to the same name")
	}
}

// A name with an accent composed is kept where the file system gives
// names back as written, and hashed on macOS, whose HFS+ would give it
// back decomposed: a name written must be the name read.
func TestSafeNameKeepsAComposedAccentWhereItReadsBackTheSame(t *testing.T) {
	got := SafeName("josé@example.com")
	if runtime.GOOS == "darwin" {
		if !strings.HasPrefix(got, "h-") {
			t.Errorf("SafeName(josé) on macOS = %q, want a hashed name", got)
		}
		return
	}
	if got != "josé@example.com" {
		t.Errorf("SafeName(josé) = %q, want it kept", got)
	}
}

func TestIncomingPathUsesConversationAndMsgid(t *testing.T) {
	got := IncomingPath(Message{MsgID: "m1", RemoteURI: "sip:bob@example.com"})
	if want := filepath.Join("bob@example.com", "m1.json"); got != want {
		t.Errorf("IncomingPath = %q, want %q", got, want)
	}
	got = IncomingPath(Message{MsgID: "../../x"})
	if dir := filepath.Dir(got); dir != "unknown" || strings.Contains(got, "..") {
		t.Errorf("IncomingPath of unsafe msgid without remote = %q", got)
	}
}

func TestWriteAtomicCreatesDirectoriesAndReplacesContent(t *testing.T) {
	root := t.TempDir()
	rel := filepath.Join("bob@example.com", "m1.json")
	if err := WriteAtomic(root, rel, []byte(`{"msgid":"m1","v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(root, rel, []byte(`{"msgid":"m1","v":2}`)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil || string(got) != `{"msgid":"m1","v":2}` {
		t.Fatalf("content = %q, %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "bob@example.com"))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary file left behind)", len(entries))
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(filepath.Join(root, rel))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
	}
}

func TestWriteAndRemoveNeverLeaveTheStore(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "victim.json"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"../escape.json", "/abs.json", filepath.Join("link", "x.json")} {
		if err := WriteAtomic(root, rel, []byte("{}")); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteAtomic(%q) err = %v, want ErrUnsafePath", rel, err)
		}
	}
	if err := Remove(root, filepath.Join("link", "victim.json")); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Remove through a link err = %v, want ErrUnsafePath", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim.json")); string(b) != "keep" {
		t.Errorf("file outside the store changed: %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("outside dir has %d entries, want 1", len(entries))
	}
}

func TestRemoveDeletesFileAndToleratesMissing(t *testing.T) {
	root := t.TempDir()
	if err := WriteAtomic(root, "c/m.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := Remove(root, "c/m.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "c", "m.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	if err := Remove(root, "c/m.json"); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"msgid":"m1","body":"hi"}`))
	f.Add([]byte(`{"msgid":"m1","n":1e400}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, 1<<16)
		if err != nil {
			return
		}
		again, err := Parse(m.Canonical, 1<<17)
		if err != nil || again.Hash != m.Hash {
			t.Fatalf("canonical form does not parse to itself: %v", err)
		}
	})
}

func TestApplyPerformsOpsInOrderAndLeavesNoTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	if err := WriteAtomic(root, "a/old.json", []byte("old")); err != nil {
		t.Fatal(err)
	}
	errs := Apply(root, []Op{
		{Rel: "a/m1.json", Data: []byte("v1")},
		{Rel: "a/m1.json", Data: []byte("v2")}, // a later version of the same file wins
		{Rel: "b/m2.json", Data: []byte("x")},
		{Rel: "b/m2.json", Remove: true}, // written, then deleted, in one page
		{Rel: "a/old.json", Remove: true},
		{Rel: "c/d/m3.json", Data: []byte("deep")},
	})
	for i, r := range errs {
		if r.Err != nil {
			t.Errorf("op %d: %v", i, r.Err)
		}
	}
	if errs[0].Info == nil || errs[1].Info.Size() != 2 {
		t.Errorf("written file info = %v, want the stat of what was written", errs[1].Info)
	}
	for rel, want := range map[string]string{"a/m1.json": "v2", "c/d/m3.json": "deep"} {
		if got, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	for _, rel := range []string{"b/m2.json", "a/old.json"} {
		if _, err := os.Stat(filepath.Join(root, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists, want it removed", rel)
		}
	}
	var leftovers []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			leftovers = append(leftovers, p)
		}
		return nil
	})
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestApplyRefusesAPathThroughALinkAndDoesTheRest(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	errs := Apply(root, []Op{{Rel: "link/x.json", Data: []byte("no")}, {Rel: "ok.json", Data: []byte("yes")}})
	if !errors.Is(errs[0].Err, ErrUnsafePath) || errs[1].Err != nil {
		t.Fatalf("errs = %v, want ErrUnsafePath then nil", errs)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the store: %v", entries)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "ok.json")); string(got) != "yes" {
		t.Errorf("ok.json = %q", got)
	}
}

func TestAPathThroughALinkInsideTheStoreIsRefusedToo(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	// os.Root would follow these links, as they stay in the store; the
	// store's rule is that chatsync follows none.
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "real"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "real", "target.json"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"dirlink": "real", "rel-dirlink": "./real/../real", "real/file-link.json": "target.json"} {
		if err := os.Symlink(to, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"dirlink/x.json", "rel-dirlink/x.json", "real/file-link.json"} {
		if err := WriteAtomic(root, rel, []byte("no")); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteAtomic(%q) = %v, want ErrUnsafePath", rel, err)
		}
		if r := Apply(root, []Op{{Rel: rel, Data: []byte("no")}}); !errors.Is(r[0].Err, ErrUnsafePath) {
			t.Errorf("Apply(%q) = %v, want ErrUnsafePath", rel, r[0].Err)
		}
	}
	if err := Remove(root, "dirlink/target.json"); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Remove through a link = %v, want ErrUnsafePath", err)
	}
	if r := Apply(root, []Op{{Rel: "real/file-link.json", Remove: true}}); !errors.Is(r[0].Err, ErrUnsafePath) {
		t.Errorf("Apply removing a link = %v, want ErrUnsafePath", r[0].Err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "real", "target.json")); string(b) != "keep" {
		t.Errorf("target.json = %q, want it untouched", b)
	}
	if _, err := os.Stat(filepath.Join(root, "real", "x.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a write through a link arrived: %v", err)
	}
}

// tempFiles lists the temporary files chatsync left below root.
func tempFiles(root string) []string {
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".chatsync-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestAFailedWriteLeavesNoTemporaryFile(t *testing.T) {
	// The temporary file is written, then its rename fails: the target is
	// a directory that is not empty.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "c", "m.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "c", "m.json", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(root, "c/m.json", []byte("v")); err == nil {
		t.Error("WriteAtomic onto a directory succeeded")
	}
	r := Apply(root, []Op{{Rel: "c/m.json", Data: []byte("v")}, {Rel: "c/ok.json", Data: []byte("ok")}})
	if r[0].Err == nil || r[1].Err != nil {
		t.Errorf("Apply = %v, %v; want an error, then nil", r[0].Err, r[1].Err)
	}
	if left := tempFiles(root); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestAWriteToAReadOnlyDirectoryFailsAndLeavesNothing(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs a directory this user cannot write")
	}
	root := t.TempDir()
	ro := filepath.Join(root, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(ro, 0o700)
	if err := WriteAtomic(root, "ro/m.json", []byte("v")); err == nil {
		t.Error("WriteAtomic into a read-only directory succeeded")
	}
	if r := Apply(root, []Op{{Rel: "ro/m.json", Data: []byte("v")}}); r[0].Err == nil || errors.Is(r[0].Err, ErrUnsafePath) {
		t.Errorf("Apply = %v, want a write error", r[0].Err)
	}
	os.Chmod(ro, 0o700)
	if left := tempFiles(root); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestApplyInPartsWhenAPageTouchesManyDirectories(t *testing.T) {
	root := t.TempDir()
	var ops []Op
	for i := range 3*maxOpenDirs + 5 {
		ops = append(ops, Op{Rel: fmt.Sprintf("c%d/m.json", i%(2*maxOpenDirs+1)), Data: fmt.Appendf(nil, "v%d", i)})
	}
	ops = append(ops, Op{Rel: "c0/m.json", Remove: true})
	for i, r := range Apply(root, ops) {
		if r.Err != nil {
			t.Fatalf("op %d: %v", i, r.Err)
		}
	}
	// The last write to each file wins, and the removal comes after all.
	last := map[string]string{}
	for _, op := range ops[:len(ops)-1] {
		last[op.Rel] = string(op.Data)
	}
	delete(last, "c0/m.json")
	for rel, want := range last {
		if got, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "c0", "m.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("c0/m.json was not removed: %v", err)
	}
	if left := tempFiles(root); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestRemoveOfAFileInAMissingDirectoryIsNotAnError(t *testing.T) {
	root := t.TempDir()
	if err := Remove(root, "nowhere/m.json"); err != nil {
		t.Errorf("Remove = %v", err)
	}
	if r := Apply(root, []Op{{Rel: "nowhere/m.json", Remove: true}}); r[0].Err != nil {
		t.Errorf("Apply = %v", r[0].Err)
	}
	if r := Apply(filepath.Join(root, "missing"), []Op{{Rel: "m.json", Remove: true}}); r[0].Err != nil {
		t.Errorf("Apply on a missing store = %v", r[0].Err)
	}
}
