package msgdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// linkedStore makes a store holding conv/m.json ("inside") and link, a
// symbolic link to a directory outside the store that holds m.json and
// only.json ("outside"). It returns the store, opened, and its path.
func linkedStore(t *testing.T) (*os.Root, string) {
	t.Helper()
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "conv"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "conv", "m.json"), `{"msgid":"m","body":"inside"}`)
	write(filepath.Join(outside, "m.json"), `{"msgid":"m","body":"outside"}`)
	write(filepath.Join(outside, "only.json"), `{"msgid":"only","body":"outside"}`)
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "conv"), filepath.Join(root, "innerlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("m.json", filepath.Join(root, "conv", "alias.json")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, root
}

func TestReadsThroughALinkedDirectoryAreRefused(t *testing.T) {
	r, _ := linkedStore(t)
	for _, rel := range []string{"link/m.json", "link/only.json", "innerlink/m.json", "conv/alias.json", "../x.json", "/etc/passwd"} {
		if data, err := ReadFile(r, rel, 0); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("ReadFile(%q) = %q, %v; want ErrUnsafePath", rel, data, err)
		}
		if f, err := Open(r, rel); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Open(%q) = %v; want ErrUnsafePath", rel, err)
			if f != nil {
				f.Close()
			}
		}
	}
	for _, rel := range []string{"link/m.json", "innerlink/m.json", "link/only.json"} {
		if fi, err := Lstat(r, rel); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Lstat(%q) = %v, %v; want ErrUnsafePath", rel, fi, err)
		}
	}
	// A link at the path itself is described, as os.Lstat does.
	if fi, err := Lstat(r, "conv/alias.json"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(conv/alias.json) = %v, %v; want the link itself", fi, err)
	}
	if fi, err := Lstat(r, "link"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(link) = %v, %v; want the link itself", fi, err)
	}
	data, err := ReadFile(r, "conv/m.json", 0)
	if err != nil || string(data) != `{"msgid":"m","body":"inside"}` {
		t.Errorf("ReadFile(conv/m.json) = %q, %v", data, err)
	}
	if _, err := ReadFile(r, "conv/none.json", 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := Lstat(r, "none/none.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat in a missing directory: %v, want ErrNotExist", err)
	}
}

func TestReadFileStopsOneBytePastTheLimit(t *testing.T) {
	r, root := linkedStore(t)
	big := `{"msgid":"big","body":"` + strings.Repeat("x", 1000) + `"}`
	os.WriteFile(filepath.Join(root, "conv", "big.json"), []byte(big), 0o600)
	data, err := ReadFile(r, "conv/big.json", 100)
	if err != nil || len(data) != 101 {
		t.Fatalf("ReadFile = %d bytes, %v; want 101", len(data), err)
	}
	if _, err := Parse(data, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse of the cut file: %v, want ErrTooLarge", err)
	}
	if data, err := ReadFile(r, "conv/big.json", 0); err != nil || string(data) != big {
		t.Errorf("ReadFile without a limit = %d bytes, %v", len(data), err)
	}
}

func TestWalkDirListsTheStoreAndNeverEntersALink(t *testing.T) {
	r, root := linkedStore(t)
	os.MkdirAll(filepath.Join(root, "a", "b"), 0o700)
	os.WriteFile(filepath.Join(root, "a", "b", "x.json"), nil, 0o600)
	os.MkdirAll(filepath.Join(root, ".hidden"), 0o700)
	os.WriteFile(filepath.Join(root, ".hidden", "h.json"), nil, 0o600)
	var got []string
	err := WalkDir(r, "", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if d.IsDir() && rel == ".hidden" {
			return fs.SkipDir
		}
		kind := "f"
		switch {
		case d.IsDir():
			kind = "d"
		case d.Type()&fs.ModeSymlink != 0:
			kind = "l"
		}
		got = append(got, kind+" "+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"d ", "d a", "d a/b", "f a/b/x.json", "d conv", "l conv/alias.json", "f conv/m.json", "l innerlink", "l link"}
	if !slices.Equal(got, want) {
		t.Errorf("walk = %q\nwant   %q", got, want)
	}

	got = nil
	WalkDir(r, "a", func(rel string, d fs.DirEntry, err error) error {
		got = append(got, rel)
		return err
	})
	if want := []string{"a", "a/b", "a/b/x.json"}; !slices.Equal(got, want) {
		t.Errorf("walk of a = %q, want %q", got, want)
	}

	// A walk of a linked directory fails at once, on the directory itself.
	for _, dir := range []string{"link", "innerlink"} {
		var calls []string
		err := WalkDir(r, dir, func(rel string, d fs.DirEntry, err error) error {
			calls = append(calls, rel)
			return err
		})
		if !errors.Is(err, ErrUnsafePath) || !slices.Equal(calls, []string{dir}) {
			t.Errorf("walk of %s: calls %q, err %v; want one call and ErrUnsafePath", dir, calls, err)
		}
	}
}

// BenchmarkReadFile compares a read of one message file by path
// (os.ReadFile, what the engine did), through a handle on the store kept
// open, through Dirs (what the engine does) and through a handle opened
// for each read.
func BenchmarkReadFile(b *testing.B) {
	root := b.TempDir()
	rel := "conv@example.com/m.json"
	data := []byte(`{"msgid":"m","remote_uri":"sip:conv@example.com","body":"a line or two of an ordinary chat"}`)
	if err := WriteAtomic(root, rel, data); err != nil {
		b.Fatal(err)
	}
	b.Run("path", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handle", func(b *testing.B) {
		r, err := os.OpenRoot(root)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		for b.Loop() {
			if _, err := ReadFile(r, rel, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dirs", func(b *testing.B) {
		r, err := os.OpenRoot(root)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		c := NewDirs(r)
		defer c.Close()
		for b.Loop() {
			if _, err := c.ReadFile(rel, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handle-per-read", func(b *testing.B) {
		for b.Loop() {
			r, err := os.OpenRoot(root)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ReadFile(r, rel, 1<<20); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
	})
}

func TestDirsNeverUsesAKeptHandleOfADirectoryReplacedSince(t *testing.T) {
	r, root := linkedStore(t)
	c := NewDirs(r)
	defer c.Close()
	read := func(rel string) (string, error) {
		data, err := c.ReadFile(rel, 0)
		return string(data), err
	}
	if got, err := read("conv/m.json"); err != nil || !strings.Contains(got, "inside") {
		t.Fatalf("first read = %q, %v", got, err)
	}
	// conv, whose handle is kept, is moved away and a link to the outside
	// directory takes its name.
	if err := os.Rename(filepath.Join(root, "conv"), filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "link"), filepath.Join(root, "conv")); err != nil {
		t.Fatal(err)
	}
	if got, err := read("conv/m.json"); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("read through the link that replaced a kept directory = %q, %v; want ErrUnsafePath", got, err)
	}
	if fi, err := c.Lstat("conv/m.json"); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Lstat through the link = %v, %v; want ErrUnsafePath", fi, err)
	}
	// Another real directory takes the name: it is read, not the kept one.
	os.Remove(filepath.Join(root, "conv"))
	os.Mkdir(filepath.Join(root, "conv"), 0o700)
	os.WriteFile(filepath.Join(root, "conv", "m.json"), []byte(`{"msgid":"m","body":"the new conv"}`), 0o600)
	if got, err := read("conv/m.json"); err != nil || !strings.Contains(got, "the new conv") {
		t.Errorf("read after conv was replaced by another directory = %q, %v", got, err)
	}
	// Gone: not found, as with a path.
	os.RemoveAll(filepath.Join(root, "conv"))
	if _, err := read("conv/m.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read of a removed directory's file: %v, want ErrNotExist", err)
	}
	if got, err := read("moved/m.json"); err != nil || !strings.Contains(got, "inside") {
		t.Errorf("read of the moved directory = %q, %v", got, err)
	}
}
