package msgdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// applyClaimed writes msgs (msgid → body) in one page the way the engine
// does: the planned file of each is IncomingPath, claimed through one
// Names, then one Apply. It returns msgid → the file it was given.
func applyClaimed(t *testing.T, root string, order []string, remote string) map[string]string {
	t.Helper()
	var names Names
	files := map[string]string{}
	var ops []Op
	for _, id := range order {
		data := `{"msgid":` + quote(id) + `,"remote_uri":"` + remote + `","body":"body of ` + strings.ReplaceAll(id, `"`, "") + `"}`
		m, err := Parse([]byte(data), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		rel := filepath.ToSlash(IncomingPath(m))
		rel = names.Claim(root, rel, id)
		files[id] = rel
		ops = append(ops, Op{Rel: rel, Data: m.Canonical})
	}
	for i, r := range Apply(root, ops) {
		if r.Err != nil {
			t.Fatalf("op %d (%s): %v", i, ops[i].Rel, r.Err)
		}
	}
	return files
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// storeMessages reads every message file below root: msgid → file.
func storeMessages(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || Ignored(d.Name()) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		m, err := Parse(data, 1<<20)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if !strings.Contains(string(data), "body of "+strings.ReplaceAll(m.MsgID, `"`, "")) {
			t.Errorf("%s holds the wrong body: %s", p, data)
		}
		rel, _ := filepath.Rel(root, p)
		if other, dup := out[m.MsgID]; dup {
			t.Errorf("msgid %q is in %s and in %s", m.MsgID, other, rel)
		}
		out[m.MsgID] = filepath.ToSlash(rel)
		return nil
	})
	return out
}

func TestTwoMessagesWhoseNamesCollideInOnePageBothSurvive(t *testing.T) {
	root := t.TempDir()
	// "a/b" is not a safe file name, so it is named by its hash; a second
	// msgid is spelled exactly as that hash.
	hashed := IncomingPath(Message{MsgID: "a/b", RemoteURI: "bob@example.com"})
	twin := strings.TrimSuffix(filepath.Base(hashed), ".json")
	if IncomingPath(Message{MsgID: twin, RemoteURI: "bob@example.com"}) != hashed {
		t.Fatalf("the test's msgids do not collide")
	}
	files := applyClaimed(t, root, []string{"a/b", twin}, "bob@example.com")
	if files["a/b"] == files[twin] {
		t.Fatalf("both messages were given %s", files[twin])
	}
	if files["a/b"] != filepath.ToSlash(hashed) {
		t.Errorf("the first message moved to %s, want %s", files["a/b"], hashed)
	}
	got := storeMessages(t, root)
	if len(got) != 2 || got["a/b"] != files["a/b"] || got[twin] != files[twin] {
		t.Errorf("store holds %v, want both messages, in %v", got, files)
	}
}

func TestMsgidsThatDifferOnlyInCaseBothSurviveWhereTheFileSystemFoldsCase(t *testing.T) {
	root := t.TempDir()
	// Simulate a case-folding file system (APFS, NTFS) if this one is not.
	foldCase.Store(root, true)
	defer foldCase.Delete(root)
	files := applyClaimed(t, root, []string{"Hello", "hello", "HELLO"}, "bob@example.com")
	for _, a := range []string{"Hello", "hello", "HELLO"} {
		for _, b := range []string{"Hello", "hello", "HELLO"} {
			if a != b && strings.EqualFold(files[a], files[b]) {
				t.Errorf("%s and %s were given %s and %s: one file where case folds", a, b, files[a], files[b])
			}
		}
	}
	if files["Hello"] != "bob@example.com/Hello.json" {
		t.Errorf("the first message moved to %s", files["Hello"])
	}
	if got := storeMessages(t, root); len(got) != 3 {
		t.Errorf("store holds %v, want 3 messages", got)
	}
}

func TestNamesDoNotRenameWhereTheFileSystemKeepsCase(t *testing.T) {
	root := t.TempDir()
	foldCase.Store(root, false)
	defer foldCase.Delete(root)
	files := applyClaimed(t, root, []string{"Hello", "hello"}, "bob@example.com")
	if files["Hello"] != "bob@example.com/Hello.json" || files["hello"] != "bob@example.com/hello.json" {
		t.Errorf("files = %v, want each msgid's own name", files)
	}
}

func TestClaimIsStableAndAvoidsAMadeUpNameThatIsTaken(t *testing.T) {
	root := t.TempDir()
	var n Names
	if got := n.Claim(root, "c/m.json", "one"); got != "c/m.json" {
		t.Fatalf("first claim = %s", got)
	}
	alt := "c/m-" + HashBytes([]byte("two"))[:8] + ".json"
	// The name made up for "two" is held on disk by a third message.
	if err := WriteAtomic(root, alt, []byte(`{"msgid":"three"}`)); err != nil {
		t.Fatal(err)
	}
	got := n.Claim(root, "c/m.json", "two")
	if got == "c/m.json" || got == alt {
		t.Fatalf("second claim = %s, want a name of its own", got)
	}
	if again := n.Claim(root, "c/m.json", "two"); again != got {
		t.Errorf("a later version of two went to %s, not %s", again, got)
	}
	if again := n.Claim(root, got, "two"); again != got {
		t.Errorf("claiming its own name again gave %s", again)
	}
	if again := n.Claim(root, "c/m.json", "one"); again != "c/m.json" {
		t.Errorf("a later version of one went to %s", again)
	}
	// A made-up name that holds the same message already is reused.
	var m Names
	m.Claim(root, "d/m.json", "one")
	own := "d/m-" + HashBytes([]byte("two"))[:8] + ".json"
	if err := WriteAtomic(root, own, []byte(`{"msgid":"two"}`)); err != nil {
		t.Fatal(err)
	}
	if got := m.Claim(root, "d/m.json", "two"); got != own {
		t.Errorf("claim = %s, want its existing file %s", got, own)
	}
}

func TestCaseProbeAgreesWithTheFileSystemAndLeavesNothing(t *testing.T) {
	root := t.TempDir()
	folds, err := probeCase(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(root, "X"))
	if want := err == nil; folds != want {
		t.Errorf("probe says folds=%v, the file system says %v", folds, want)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("probe left files behind: %v", entries)
	}
	if foldsCase(root) != folds {
		t.Error("foldsCase disagrees with the probe")
	}
}
