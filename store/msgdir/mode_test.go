package msgdir

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestAReplacedFileKeepsItsModeAndANewFileIsPrivate(t *testing.T) {
	root := t.TempDir()
	mode := func(rel string) fs.FileMode {
		t.Helper()
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	for _, rel := range []string{"c/atomic.json", "c/apply.json", "c/shared.json"} {
		if err := WriteAtomic(root, rel, []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if m := mode(rel); m != 0o600 {
			t.Errorf("new %s has mode %o, want 600", rel, m)
		}
	}
	os.Chmod(filepath.Join(root, "c", "atomic.json"), 0o644)
	os.Chmod(filepath.Join(root, "c", "apply.json"), 0o640)
	os.Chmod(filepath.Join(root, "c", "shared.json"), 0o664)
	if err := WriteAtomic(root, "c/atomic.json", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	res := Apply(root, []Op{{Rel: "c/apply.json", Data: []byte("v2")}, {Rel: "c/new.json", Data: []byte("v1")}, {Rel: "c/shared.json", Data: []byte("v2")}})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("op %d: %v", i, r.Err)
		}
	}
	for rel, want := range map[string]fs.FileMode{"c/atomic.json": 0o644, "c/apply.json": 0o640, "c/shared.json": 0o664, "c/new.json": 0o600} {
		if m := mode(rel); m != want {
			t.Errorf("%s has mode %o, want %o", rel, m, want)
		}
		if data, _ := os.ReadFile(filepath.Join(root, rel)); string(data) != map[bool]string{true: "v1", false: "v2"}[rel == "c/new.json"] {
			t.Errorf("%s = %q", rel, data)
		}
	}
	if m := res[0].Info.Mode().Perm(); m != 0o640 {
		t.Errorf("Apply's Info says mode %o, want 640", m)
	}
}
