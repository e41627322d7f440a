package seal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix mode bits on Windows")
	}
}

func TestGenerateKeyFileCreates0600In0700Dirs(t *testing.T) {
	skipOnWindows(t)
	path := filepath.Join(t.TempDir(), "a", "b", "key")
	k, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatalf("GenerateKeyFile: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %04o, want 0600", got)
	}
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := di.Mode().Perm(); got != 0o700 {
			t.Errorf("directory %s mode %04o, want 0700", dir, got)
		}
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatalf("LoadKeyring: %v", err)
	}
	if kr.Len() != 1 || kr.Current() != k {
		t.Fatalf("loaded %v, want the generated key %v", kr, k)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the key file (temp file left behind?)", len(entries))
	}
}

func TestKeyFileTextFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	k := testKey(3)
	if err := CreateKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keyLines []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if !strings.HasPrefix(line, "#") {
			keyLines = append(keyLines, line)
		}
	}
	want := "chatsync-key v1 AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
	if len(keyLines) != 1 || keyLines[0] != want {
		t.Fatalf("key lines %q, want [%q]", keyLines, want)
	}
	if !strings.Contains(string(data), "fingerprint "+k.Fingerprint()) {
		t.Errorf("no fingerprint comment in\n%s", data)
	}
}

func TestCreateKeyFileRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	first, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, err = GenerateKeyFile(path)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second GenerateKeyFile: got %v, want fs.ErrExist and a refusal", err)
	}
	if err := CreateKeyFile(path, testKey(9)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateKeyFile over an existing file: got %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("existing key file was changed")
	}
	kr, err := LoadKeyring(path)
	if err != nil || kr.Current() != first {
		t.Fatalf("key file no longer holds the first key: %v", err)
	}
}

func TestLoadKeyringRefusesGroupOrWorldAccess(t *testing.T) {
	skipOnWindows(t)
	dir := filepath.Join(t.TempDir(), "dir with space")
	path := filepath.Join(dir, "key")
	if _, err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyring(path)
		if err == nil {
			t.Fatalf("mode %04o: LoadKeyring succeeded", mode)
		}
		wantCmd := "chmod 600 '" + path + "'"
		if !strings.Contains(err.Error(), wantCmd) {
			t.Errorf("mode %04o: error %q does not contain %q", mode, err, wantCmd)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadKeyringChmodHintUsesAbsolutePath(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := GenerateKeyFile("key"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("key", 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeyring("key")
	abs, _ := filepath.Abs("key")
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+abs) {
		t.Fatalf("got %v, want the chmod command with %s", err, abs)
	}
}

func TestAppendKeyRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	oldK, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	oldKR, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	oldEnv := mustSeal(t, oldKR, testEntry())

	newK, err := AppendKey(path)
	if err != nil {
		t.Fatalf("AppendKey: %v", err)
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatalf("LoadKeyring after AppendKey: %v", err)
	}
	if got := kr.Keys(); len(got) != 2 || got[0] != oldK || got[1] != newK {
		t.Fatalf("keys %v, want [old new]", got)
	}
	env := mustSeal(t, kr, testEntry())
	if !strings.HasPrefix(env, "cs3."+newK.ID()+".") {
		t.Errorf("sealed with %.13s, want the new key %s", env, newK.ID())
	}
	if _, err := kr.Open(oldEnv, testAccount); err != nil {
		t.Errorf("envelope sealed with the old key no longer opens: %v", err)
	}
	if _, err := oldKR.Open(env, testAccount); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old keyring on new envelope: got %v, want ErrUnknownKey", err)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode after AppendKey %04o, want 0600", fi.Mode().Perm())
		}
	}
}

func TestAppendKeyNeedsExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	if _, err := AppendKey(path); err == nil || !strings.Contains(err.Error(), "chatsync key generate") {
		t.Fatalf("got %v, want a hint to generate", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("AppendKey created a file")
	}
}

func TestAddKeyKeepsLinesAndRefusesDuplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	// AddKey creates a missing file.
	if err := AddKey(path, testKey(1)); err != nil {
		t.Fatalf("AddKey on a new file: %v", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# my note\n\n")
	f.Close()
	if err := AddKey(path, testKey(2)); err != nil {
		t.Fatal(err)
	}
	if err := AddKey(path, testKey(1)); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("adding a present key: got %v, want ErrKeyExists", err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "# my note\n") {
		t.Errorf("comment lost:\n%s", data)
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Keys(); len(got) != 2 || got[0] != testKey(1) || got[1] != testKey(2) {
		t.Fatalf("keys %v, want [1 2]", got)
	}
}

func TestAddKeyThroughSymlinkReplacesTarget(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if err := CreateKeyFile(target, testKey(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := AddKey(link, testKey(2)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("link was replaced: %v", err)
	}
	kr, err := LoadKeyring(target)
	if err != nil || kr.Len() != 2 {
		t.Fatalf("target holds %v, %v; want 2 keys", kr, err)
	}
}

func TestLoadKeyringRejectsBadFiles(t *testing.T) {
	good := "chatsync-key v1 AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "holds no key"},
		{"comments only", "# nothing\n\n", "holds no key"},
		{"garbage line", good + "\nhello\n", "line 2"},
		{"future version", "chatsync-key v2 AAAA\n", "unsupported key line version"},
		{"short key", "chatsync-key v1 AAAA\n", "line 1"},
		{"bad base64", "chatsync-key v1 " + strings.Repeat("*", 44) + "\n", "line 1"},
		{"extra field", good + " x\n", "line 1"},
		{"export line pasted", Export(testKey(3)) + "\n", "chatsync key import"},
		{"duplicate key", good + "\n" + good + "\n", "same key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyring(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "AwMDAwMD") || strings.Contains(err.Error(), "****") {
				t.Errorf("error echoes the line: %v", err)
			}
		})
	}
}

func TestLoadKeyringAcceptsCRLFAndIndentation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	content := "# keys\r\n  chatsync-key v1 AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=  \r\n\r\nchatsync-key\tv1\tAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\r\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Keys(); len(got) != 2 || got[0] != testKey(3) || got[1] != testKey(2) {
		t.Fatalf("keys %v, want [3 2]", got)
	}
}

func TestLoadKeyringMissingFileSaysWhatToDo(t *testing.T) {
	_, err := LoadKeyring(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "chatsync key generate") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadKeyringRefusesHugeAndNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(big); err == nil || !strings.Contains(err.Error(), "right file") {
		t.Errorf("huge file: got %v", err)
	}
	if _, err := LoadKeyring(dir); err == nil {
		t.Error("directory accepted as key file")
	}
}
