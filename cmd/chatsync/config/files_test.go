package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// accountWith writes a config for one account whose password and key
// files are pw and key, and returns its path.
func accountWith(t *testing.T, h, pw, key string) string {
	t.Helper()
	path := filepath.Join(h, "config.toml")
	write(t, path, `[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password_file = "`+pw+`"
store = "~/store"
key_file = "`+key+`"
`, 0o600)
	return path
}

func onlyError(t *testing.T, err error) Problem {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Errors()) != 1 {
		t.Fatalf("err = %v, want exactly one error", err)
	}
	return cerr.Errors()[0]
}

func TestUnreadablePasswordFileIsAnErrorWithKeyAndLine(t *testing.T) {
	h := home(t)
	write(t, filepath.Join(h, "k"), "key", 0o600)
	// A directory cannot be read as a file, whoever runs the test.
	if err := os.Mkdir(filepath.Join(h, "pwdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(accountWith(t, h, "~/pwdir", "~/k"))
	p := onlyError(t, err)
	if p.Line != 4 || p.Key != "account[1].password_file" || !strings.Contains(p.Message, "cannot read "+filepath.Join(h, "pwdir")) {
		t.Errorf("problem = %v", p)
	}
}

func TestUnreadableKeyFileIsAnErrorWithKeyAndLine(t *testing.T) {
	h := home(t)
	write(t, filepath.Join(h, "pw"), "secret\n", 0o600)
	if err := os.Mkdir(filepath.Join(h, "keydir"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(accountWith(t, h, "~/pw", "~/keydir"))
	p := onlyError(t, err)
	if p.Line != 6 || p.Key != "account[1].key_file" || !strings.Contains(p.Message, "cannot read "+filepath.Join(h, "keydir")) {
		t.Errorf("problem = %v", p)
	}
}

func TestFilesWithoutReadPermissionAreErrors(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs unix modes and a user that is not root (root reads mode 0000)")
	}
	h := home(t)
	write(t, filepath.Join(h, "pw"), "secret\n", 0o000)
	write(t, filepath.Join(h, "k"), "key", 0o000)
	_, _, err := Load(accountWith(t, h, "~/pw", "~/k"))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v", err)
	}
	got := map[string]int{}
	for _, p := range cerr.Errors() {
		got[p.Key] = p.Line
	}
	if got["account[1].password_file"] != 4 || got["account[1].key_file"] != 6 {
		t.Errorf("errors = %v, want password_file on line 4 and key_file on line 6", cerr.Errors())
	}
}

func TestPasswordFileReadableByGroupIsAnError(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix modes")
	}
	h := home(t)
	write(t, filepath.Join(h, "pw"), "secret\n", 0o640)
	write(t, filepath.Join(h, "k"), "key", 0o600)
	_, _, err := Load(accountWith(t, h, "~/pw", "~/k"))
	p := onlyError(t, err)
	if p.Line != 4 || p.Key != "account[1].password_file" || !strings.Contains(p.Message, "mode 0640") {
		t.Errorf("problem = %v", p)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Error("the error shows the password")
	}
}

func TestSystemAndUserDefaultsPerPlatform(t *testing.T) {
	h := home(t)
	user, _ := Parse(filepath.Join(h, "config.toml"), []byte(""))
	sys, _ := Parse(DefaultSystemConfigPath(), []byte(""))
	if !IsSystemConfig(DefaultSystemConfigPath()) || IsSystemConfig(filepath.Join(h, "config.toml")) {
		t.Fatalf("IsSystemConfig: system path %s not recognised, or user path taken for it", DefaultSystemConfigPath())
	}
	var wantUser, wantSys, wantSysSock string
	switch runtime.GOOS {
	case "linux":
		wantUser, wantSys, wantSysSock = filepath.Join(h, ".local", "state", "chatsync"), "/var/lib/chatsync", "/run/chatsync/chatsync.sock"
		if user.Daemon.Socket != filepath.Join(h, "run", "chatsync.sock") {
			t.Errorf("user socket = %s, want $XDG_RUNTIME_DIR/chatsync.sock", user.Daemon.Socket)
		}
	case "darwin":
		wantUser, wantSys = filepath.Join(h, "Library", "Application Support", "chatsync"), "/Library/Application Support/chatsync"
		wantSysSock = filepath.Join(wantSys, "chatsync.sock")
	default:
		t.Skipf("no expectations for %s", runtime.GOOS)
	}
	if user.Daemon.StateDir != wantUser {
		t.Errorf("user state_dir = %s, want %s", user.Daemon.StateDir, wantUser)
	}
	if sys.Daemon.StateDir != wantSys || sys.Daemon.Socket != wantSysSock {
		t.Errorf("system daemon = %+v, want state_dir %s and socket %s", sys.Daemon, wantSys, wantSysSock)
	}
}
