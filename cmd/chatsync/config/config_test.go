package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// home points HOME and the XDG variables at a temporary directory so the
// defaults and ~ do not depend on the machine.
func home(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	return dir
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestExampleConfigIsValidAndComplete(t *testing.T) {
	h := home(t)
	cfg, problems, err := Load(filepath.Join("..", "..", "..", "config.example.toml"))
	if err != nil {
		t.Fatalf("config.example.toml is invalid: %v", err)
	}
	// The password and key files do not exist here: warnings, not errors.
	if len(problems) != 2 || !problems[0].Warning || !problems[1].Warning {
		t.Errorf("problems = %v, want two warnings for the files still to be made", problems)
	}
	if cfg.Daemon.StateDir != filepath.Join(h, ".local", "state", "chatsync") || cfg.Daemon.LogLevel != slog.LevelInfo {
		t.Errorf("daemon = %+v", cfg.Daemon)
	}
	if len(cfg.Accounts) != 1 {
		t.Fatalf("accounts = %d, want 1", len(cfg.Accounts))
	}
	a := cfg.Accounts[0]
	if a.Address != "alice@example.com" || a.SettingsURL != "https://blink.sipthor.net/settings.phtml" ||
		a.Store != filepath.Join(h, "Chats", "alice@example.com") || a.KeyFile != filepath.Join(h, ".config", "chatsync", "alice.key") ||
		a.PollInterval != 30*time.Second || !a.ReplicateDeletes || a.MaxMessageBytes != DefaultMaxMessageBytes {
		t.Errorf("account = %+v", a)
	}
	if host, _ := os.Hostname(); a.DeviceName != host || cfg.Daemon.MetricsListen != "" {
		t.Errorf("device_name = %q (host name %q), metrics_listen = %q: want the host name and no metrics", a.DeviceName, host, cfg.Daemon.MetricsListen)
	}
	// Every key the parser knows appears in the example, set or commented.
	data, _ := os.ReadFile(filepath.Join("..", "..", "..", "config.example.toml"))
	for _, k := range append(append([]string{}, accountKeys...), daemonKeys...) {
		if !strings.Contains(string(data), k+" =") {
			t.Errorf("config.example.toml does not document %s", k)
		}
	}
}

func TestEveryMistakeIsReportedWithKeyAndLine(t *testing.T) {
	home(t)
	text := `[daemon]
log_level = "loud"
colour = "blue"

[[account]]
address = "alice"
settings_url = "ftp://x"
password = "pw"
store = "/tmp/s1"
key_file = "/tmp/k"
poll_interval = "often"
replicate_deletes = "yes"
max_message_bytes = 12

[[account]]
settings_url = "https://example.com/settings.phtml"
password = "pw"
store = "/tmp/s2"
key_file = "/tmp/k2"
pol_interval = "30s"
`
	_, problems := Parse("/home/u/.config/chatsync/config.toml", []byte(text))
	want := map[string]int{
		"daemon.log_level":             2,
		"daemon.colour":                3,
		"account[1].address":           6,
		"account[1].settings_url":      7,
		"account[1].poll_interval":     11,
		"account[1].replicate_deletes": 12,
		"account[1].max_message_bytes": 13,
		"account[2].address":           15,
		"account[2].pol_interval":      20,
	}
	got := map[string]int{}
	for _, p := range problems {
		if !p.Warning {
			got[p.Key] = p.Line
		}
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("%s reported at line %d, want line %d (all: %v)", k, got[k], line, problems)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d: %v", len(got), len(want), problems)
	}
}

func TestSyntaxErrorNamesItsLine(t *testing.T) {
	_, problems := Parse("/x/config.toml", []byte("[daemon]\nlog_level = \"info\"\nstate_dir = \n"))
	if len(problems) != 1 || problems[0].Line != 3 || !strings.Contains(problems[0].Message, "TOML syntax") {
		t.Errorf("problems = %v, want one syntax error on line 3", problems)
	}
}

func TestPasswordFileReadableByOthersIsRefusedWithTheFix(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix modes")
	}
	h := home(t)
	pw := filepath.Join(h, "pw")
	write(t, pw, "secret\n", 0o644)
	write(t, filepath.Join(h, "k"), "key", 0o600)
	cfgPath := filepath.Join(h, "config.toml")
	write(t, cfgPath, `[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password_file = "~/pw"
store = "~/store"
key_file = "~/k"
`, 0o644)
	_, _, err := Load(cfgPath)
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Errors()) != 1 {
		t.Fatalf("err = %v, want one error", err)
	}
	p := cerr.Errors()[0]
	if p.Line != 4 || p.Key != "account[1].password_file" || !strings.Contains(p.Message, "chmod 600 "+pw) {
		t.Errorf("problem = %v", p)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Error("the error message shows the password")
	}
	os.Chmod(pw, 0o600)
	cfg, _, err := Load(cfgPath)
	if err != nil || cfg.Accounts[0].Password != "secret" {
		t.Fatalf("after chmod: err = %v", err)
	}
}

func TestInlinePasswordNeedsAPrivateConfigFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix modes")
	}
	h := home(t)
	write(t, filepath.Join(h, "k"), "key", 0o600)
	cfgPath := filepath.Join(h, "config.toml")
	write(t, cfgPath, `[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password = "secret"
store = "~/store"
key_file = "~/k"
`, 0o644)
	if _, _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "chmod 600 "+cfgPath) {
		t.Fatalf("err = %v, want a refusal naming chmod 600", err)
	}
	os.Chmod(cfgPath, 0o600)
	if _, _, err := Load(cfgPath); err != nil {
		t.Fatalf("private config refused: %v", err)
	}
}

func TestUnsetVariableInAPathIsAnErrorNotAnEmptyString(t *testing.T) {
	home(t)
	t.Setenv("CHATSYNC_TEST_UNSET", "")
	_, problems := Parse("/x/config.toml", []byte(`[daemon]
socket = "$CHATSYNC_TEST_UNSET/chatsync.sock"
[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password = "pw"
store = "/tmp/s"
key_file = "/tmp/k"
`))
	var found bool
	for _, p := range problems {
		found = found || p.Key == "daemon.socket" && p.Line == 2 && strings.Contains(p.Message, "$CHATSYNC_TEST_UNSET is not set")
	}
	if !found {
		t.Errorf("problems = %v, want daemon.socket on line 2 naming the variable", problems)
	}
}

func TestOverlappingStoresAndDuplicateAccountsAreRefused(t *testing.T) {
	home(t)
	_, problems := Parse("/x/config.toml", []byte(`[daemon]
state_dir = "/data/chats/.state"
[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password = "pw"
store = "/data/chats"
key_file = "/tmp/k"
[[account]]
address = "Alice@example.com"
settings_url = "https://example.com/settings.phtml"
password = "pw"
store = "/data/chats/alice"
key_file = "/tmp/k"
`))
	var keys []string
	for _, p := range problems {
		if !p.Warning {
			keys = append(keys, p.Key)
		}
	}
	want := []string{"account[1].store", "account[2].address", "account[2].store"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("errors for %v, want %v (%v)", keys, want, problems)
	}
}

func TestDefaultsForASystemConfig(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("system paths are Linux's")
	}
	cfg, _ := Parse("/etc/chatsync/config.toml", []byte(`[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password = "pw"
store = "/srv/chats"
key_file = "/etc/chatsync/alice.key"
`))
	if cfg.Daemon.StateDir != "/var/lib/chatsync" || cfg.Daemon.Socket != "/run/chatsync/chatsync.sock" {
		t.Errorf("daemon = %+v", cfg.Daemon)
	}
}

func TestPasswordFileThatIsADeviceIsRefusedNotRead(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	home(t)
	_, problems := Parse("/x/config.toml", []byte(`[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password_file = "/dev/zero"
store = "/tmp/s"
key_file = "/tmp/k"
`))
	var found bool
	for _, p := range problems {
		found = found || p.Key == "account[1].password_file" && p.Line == 4 && strings.Contains(p.Message, "not a regular file")
	}
	if !found {
		t.Errorf("problems = %v, want password_file on line 4 refused as not a regular file", problems)
	}
}

// minimalAccount is an [[account]] block whose keys take 5 lines, for
// tests that add one key after it (on line 7 when the block starts on
// line 1).
const minimalAccount = `[[account]]
address = "alice@example.com"
settings_url = "https://example.com/settings.phtml"
password = "pw"
store = "/tmp/s"
key_file = "/tmp/k"
`

// errorsOf returns the problems that are not warnings.
func errorsOf(problems []Problem) []Problem {
	var out []Problem
	for _, p := range problems {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

func TestDeviceNameDefaultsToTheHostNameAndTakesAGivenOne(t *testing.T) {
	home(t)
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name here:", err)
	}
	cfg, problems := Parse("/x/config.toml", []byte(minimalAccount+"[[account]]\naddress = \"bob@example.com\"\nsettings_url = \"https://example.com/settings.phtml\"\npassword = \"pw\"\nstore = \"/tmp/s2\"\nkey_file = \"/tmp/k\"\ndevice_name = \"Bob's phone ☎\"\n"))
	for _, p := range problems {
		if !p.Warning {
			t.Fatalf("problem: %v", p)
		}
	}
	if got := cfg.Accounts[0].DeviceName; got != host {
		t.Errorf("device_name left out = %q, want the host name %q", got, host)
	}
	if got := cfg.Accounts[1].DeviceName; got != "Bob's phone ☎" {
		t.Errorf("device_name = %q, want the one given", got)
	}
}

func TestDeviceNameOfMoreThan64CharactersOrUnprintableIsRefusedWithItsLine(t *testing.T) {
	home(t)
	for _, tc := range []struct {
		name, want string
	}{
		{strings.Repeat("x", 65), "is 65 characters long: the most is 64"},
		{strings.Repeat("é", 65), "is 65 characters long: the most is 64"},
		{"lap\ttop", "cannot be printed"},
		{"", "must not be empty"},
	} {
		text := minimalAccount + "device_name = " + strconv.Quote(tc.name) + "\n"
		_, problems := Parse("/x/config.toml", []byte(text))
		errs := errorsOf(problems)
		if len(errs) != 1 || errs[0].Key != "account[1].device_name" || errs[0].Line != 7 || !strings.Contains(errs[0].Message, tc.want) {
			t.Errorf("device_name %q: problems %v, want one on line 7 saying %q", tc.name, errs, tc.want)
		}
	}
	cfg, problems := Parse("/x/config.toml", []byte(minimalAccount+"device_name = \""+strings.Repeat("é", 64)+"\"\n"))
	if problems = errorsOf(problems); len(problems) != 0 || cfg.Accounts[0].DeviceName != strings.Repeat("é", 64) {
		t.Errorf("a name of 64 characters: problems %v", problems)
	}
}

func TestMetricsListenTakesOnlyALoopbackAddress(t *testing.T) {
	home(t)
	for addr, ok := range map[string]bool{
		"127.0.0.1:9464": true, "127.1.2.3:9464": true, "[::1]:9464": true, "localhost:9464": true, "LocalHost:0": true, "": true,
		"0.0.0.0:9464": false, ":9464": false, "[::]:9464": false, "192.168.1.2:9464": false, "example.com:9464": false,
		"127.0.0.1": false, "127.0.0.1:http": false, "127.0.0.1:70000": false, "[::ffff:10.0.0.1]:9464": false,
	} {
		text := "[daemon]\nlog_level = \"info\"\nmetrics_listen = " + strconv.Quote(addr) + "\n" + minimalAccount
		cfg, problems := Parse("/x/config.toml", []byte(text))
		problems = errorsOf(problems) // the key file does not exist: a warning
		if ok {
			if len(problems) != 0 || cfg.Daemon.MetricsListen != addr {
				t.Errorf("metrics_listen %q: problems %v, metrics_listen %q; want it taken", addr, problems, cfg.Daemon.MetricsListen)
			}
			continue
		}
		if len(problems) != 1 || problems[0].Key != "daemon.metrics_listen" || problems[0].Line != 3 {
			t.Errorf("metrics_listen %q: problems %v, want one on line 3", addr, problems)
			continue
		}
		if strings.Contains(addr, ":94") && !strings.Contains(problems[0].Message, "metrics reveal when you chat, so they must stay on this machine") ||
			strings.Contains(addr, ":94") && !strings.Contains(problems[0].Message, "reverse proxy") {
			t.Errorf("metrics_listen %q: %q does not say why nor what to do instead", addr, problems[0].Message)
		}
	}
}
