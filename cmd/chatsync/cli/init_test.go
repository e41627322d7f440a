package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/blinkdb"
)

// chatsyncPiped runs the command line in-process with stdin (not a
// terminal, as in a script).
func chatsyncPiped(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, "test", strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// initHome makes a home directory of its own for the test, so that no
// default path (~/Chats, ~/.blink, $XDG_CONFIG_HOME) reaches the real one,
// and returns a config path for --config that is not the default, in a
// directory that does not exist yet.
func initHome(t *testing.T) (home, cfg string) {
	t.Helper()
	home = t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	return home, filepath.Join(home, "elsewhere", "config.toml")
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// soleLine is the only line of s, failing when there are more.
func soleLine(t *testing.T, s string) string {
	t.Helper()
	s = strings.TrimRight(s, "\n")
	if strings.Contains(s, "\n") {
		t.Fatalf("want one line, got:\n%s", s)
	}
	return s
}

func TestInitWithFlagsWritesPrivateFilesAndAConfigThatPassesTheOnlineCheck(t *testing.T) {
	url := startServer(t, false)
	home, _ := initHome(t)
	// No --config and no --store: the default paths.
	cfg := filepath.Join(home, ".config", "chatsync", "config.toml")
	code, out, errOut := chatsyncPiped(t, "pw-alice\n", "init", "--address", testAccount,
		"--settings-url", url, "--password-stdin", "--first-device")
	if code != ExitOK {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	dir := filepath.Dir(cfg)
	pw := filepath.Join(dir, testAccount+".password")
	key := filepath.Join(dir, testAccount+".key")
	store := filepath.Join(home, "Chats", testAccount)
	for _, want := range []string{
		"wrote " + pw + " (the password, mode 0600)",
		"wrote " + key + " (the key, fingerprint ",
		"created " + store + " (the message store, a directory of JSON files)",
		"wrote " + cfg + " (the config, mode 0600)",
		testAccount + ": ok (the server accepted the password)",
		"on your other devices: run `chatsync key export` here, then `chatsync init --import-key LINE ...` there\n",
		"next: `chatsync run` (in the foreground), or `chatsync service install --user` (as a service that starts at login)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	if errOut != "" {
		t.Errorf("init printed on stderr:\n%s", errOut)
	}
	for path, want := range map[string]os.FileMode{cfg: 0o600, pw: 0o600, key: 0o600, store: 0o700, dir: 0o700} {
		if got := mode(t, path); got != want && runtime.GOOS != "windows" {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	if b, _ := os.ReadFile(pw); string(b) != "pw-alice\n" {
		t.Errorf("password file holds %q", b)
	}

	c, problems, err := config.Load(cfg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("config.Load: %v %v", err, problems)
	}
	a := c.Accounts[0]
	if len(c.Accounts) != 1 || a.Address != testAccount || a.SettingsURL != url || a.PasswordFile != pw || a.Password != "pw-alice" ||
		a.Store != store || a.StoreFormat != config.StoreJSON || a.KeyFile != key {
		t.Errorf("config: %+v", c.Accounts)
	}

	code, out, errOut = chatsync(t, "config", "check", "--online")
	if code != ExitOK {
		t.Fatalf("config check --online: exit %d\n%s%s", code, out, errOut)
	}
	if want := testAccount + ": ok (the server accepted the password)\n" + cfg + ": ok (1 account(s), 0 warning(s))\n"; out != want {
		t.Errorf("config check --online printed\n%s\nwant\n%s", out, want)
	}
}

func TestInitWithAWrongPasswordExits1WithOneLineAndKeepsTheFiles(t *testing.T) {
	url := startServer(t, false)
	_, cfg := initHome(t)
	store := filepath.Join(t.TempDir(), "store")
	code, out, errOut := chatsyncPiped(t, "not-the-password\n", "init", "--config", cfg, "--address", testAccount,
		"--settings-url", url, "--password-stdin", "--first-device", "--store", store)
	if code != ExitFailure {
		t.Fatalf("init: exit %d, want 1\n%s%s", code, out, errOut)
	}
	pw := filepath.Join(filepath.Dir(cfg), testAccount+".password")
	line := soleLine(t, errOut)
	want := "chatsync: the files are written, but the check failed: " + testAccount + ": the server at " + strings.TrimPrefix(strings.TrimSuffix(url, "/settings.phtml"), "http://") +
		" refused the password: put the right password into password_file " + pw + ", then run `chatsync config check --online --config " + cfg + "`"
	if line != want {
		t.Errorf("init said\n%s\nwant\n%s", line, want)
	}
	for _, p := range []string{cfg, pw, filepath.Join(filepath.Dir(cfg), testAccount+".key"), store} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s is not kept: %v", p, err)
		}
	}

	// The fix the line gives works.
	if err := os.WriteFile(pw, []byte("pw-alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := chatsync(t, "config", "check", "--online", "--config", cfg); code != ExitOK || !strings.Contains(out, testAccount+": ok") {
		t.Errorf("config check --online after the fix: exit %d\n%s%s", code, out, errOut)
	}
}

func TestInitImportKeyUsesTheOtherDevicesKey(t *testing.T) {
	url := startServer(t, false)
	_, cfg := initHome(t)
	other := filepath.Join(t.TempDir(), "other.key")
	if code, out, errOut := chatsync(t, "key", "generate", "--out", other); code != ExitOK {
		t.Fatalf("key generate: exit %d\n%s%s", code, out, errOut)
	}
	code, line, errOut := chatsync(t, "key", "export", "--key-file", other)
	if code != ExitOK {
		t.Fatalf("key export: exit %d\n%s", code, errOut)
	}
	line = strings.TrimSpace(line)
	kr, err := seal.LoadKeyring(other)
	if err != nil {
		t.Fatal(err)
	}
	want := kr.Current().Fingerprint()

	code, out, errOut := chatsyncPiped(t, "pw-alice\n", "init", "--config", cfg, "--address", testAccount,
		"--settings-url", url, "--password-stdin", "--import-key", line, "--store", filepath.Join(t.TempDir(), "store"))
	if code != ExitOK {
		t.Fatalf("init --import-key: exit %d\n%s%s", code, out, errOut)
	}
	key := filepath.Join(filepath.Dir(cfg), testAccount+".key")
	if !strings.Contains(out, "wrote "+key+" (the key, fingerprint "+want+")\n") {
		t.Errorf("init does not name the imported key's fingerprint %s:\n%s", want, out)
	}
	if want := "next: `chatsync run --config " + cfg + "` (in the foreground), or `chatsync service install --user --config " + cfg + "` (as a service that starts at login)\n"; !strings.HasSuffix(out, want) {
		t.Errorf("init output does not end with %q:\n%s", want, out)
	}
	if strings.Contains(out, "on your other devices") {
		t.Errorf("init tells a second device to export its key:\n%s", out)
	}
	got, err := seal.LoadKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	if fps := got.Fingerprints(); len(fps) != 1 || fps[0] != want {
		t.Errorf("key file holds %v, want [%s]", fps, want)
	}
	if mode(t, key) != 0o600 && runtime.GOOS != "windows" {
		t.Errorf("key file mode %04o", mode(t, key))
	}
}

func TestInitImportKeyWithATypoExits1BeforeWritingAnything(t *testing.T) {
	_, cfg := initHome(t)
	code, out, errOut := chatsyncPiped(t, "pw\n", "init", "--config", cfg, "--address", testAccount,
		"--settings-url", "http://127.0.0.1:1/settings.phtml", "--password-stdin", "--import-key", "chatsync-key:v1:nonsense")
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	if line := soleLine(t, errOut); !strings.HasPrefix(line, "chatsync: --import-key: ") || !strings.HasSuffix(line, ": copy the whole line printed by `chatsync key export` on your other device again") {
		t.Errorf("init said %q", line)
	}
	if _, err := os.Stat(filepath.Dir(cfg)); !os.IsNotExist(err) {
		t.Errorf("init wrote into %s: %v", filepath.Dir(cfg), err)
	}
}

func TestInitRefusesAnExistingConfigWithoutForce(t *testing.T) {
	url := startServer(t, false)
	_, cfg := initHome(t)
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	const old = "# my own config\n"
	if err := os.WriteFile(cfg, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--config", cfg, "--address", testAccount, "--settings-url", url, "--password-stdin", "--first-device",
		"--store", filepath.Join(t.TempDir(), "store")}
	code, out, errOut := chatsyncPiped(t, "pw-alice\n", args...)
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	want := "chatsync: " + cfg + " already exists: init never overwrites a config; give --force to replace it, or check it with `chatsync config check --online --config " + cfg + "`"
	if line := soleLine(t, errOut); line != want {
		t.Errorf("init said\n%s\nwant\n%s", line, want)
	}
	if b, _ := os.ReadFile(cfg); string(b) != old {
		t.Errorf("the config was changed: %q", b)
	}
	if out != "" {
		t.Errorf("init printed %q", out)
	}

	code, out, errOut = chatsyncPiped(t, "pw-alice\n", append(args, "--force")...)
	if code != ExitOK || !strings.Contains(out, "wrote "+cfg+" (the config, mode 0600)") {
		t.Fatalf("init --force: exit %d\n%s%s", code, out, errOut)
	}
	if _, problems, err := config.Load(cfg); err != nil || len(problems) > 0 {
		t.Errorf("config.Load after --force: %v %v", err, problems)
	}
}

func TestInitWithoutATerminalNamesTheMissingFlagAndExits2(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string
		drop  string // the flag left out
		want  string
	}{
		{"address", "pw\n", "--address", "chatsync: --address is missing: give it as a flag (standard input is not a terminal, so init cannot ask; see `chatsync init --help`)"},
		{"settings-url", "pw\n", "--settings-url", "chatsync: --settings-url is missing: give it as a flag (standard input is not a terminal, so init cannot ask; see `chatsync init --help`)"},
		{"password", "", "--password-stdin", "chatsync: --password-stdin is missing: give the password on standard input with --password-stdin, or in a file (mode 0600) with --password-file (standard input is not a terminal, so init cannot ask; see `chatsync init --help`)"},
		{"key", "pw\n", "--first-device", "chatsync: --first-device is missing: give --first-device on the account's first device (a new key), or --import-key LINE with the line `chatsync key export` prints on your other device (standard input is not a terminal, so init cannot ask; see `chatsync init --help`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg := initHome(t)
			all := map[string]string{"--address": testAccount, "--settings-url": "http://127.0.0.1:1/settings.phtml", "--password-stdin": "", "--first-device": ""}
			args := []string{"init", "--config", cfg}
			for _, f := range []string{"--address", "--settings-url", "--password-stdin", "--first-device"} {
				if f == tc.drop {
					continue
				}
				args = append(args, f)
				if v := all[f]; v != "" {
					args = append(args, v)
				}
			}
			code, out, errOut := chatsyncPiped(t, tc.stdin, args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
			}
			if line := soleLine(t, errOut); line != tc.want {
				t.Errorf("init said\n%s\nwant\n%s", line, tc.want)
			}
			if _, err := os.Stat(filepath.Dir(cfg)); !os.IsNotExist(err) {
				t.Errorf("init wrote into %s: %v", filepath.Dir(cfg), err)
			}
		})
	}
}

func TestInitPasswordFileIsNamedByTheConfig(t *testing.T) {
	url := startServer(t, false)
	_, cfg := initHome(t)
	pw := filepath.Join(t.TempDir(), "alice.password")
	if err := os.WriteFile(pw, []byte("pw-alice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--config", cfg, "--address", testAccount, "--settings-url", url, "--password-file", pw, "--first-device",
		"--store", filepath.Join(t.TempDir(), "store")}
	code, out, errOut := chatsync(t, args...)
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1 for a password file others can read\n%s%s", code, out, errOut)
	}
	if want := "chatsync: " + pw + " is readable by other users (mode 0644): run `chmod 600 " + pw + "` first"; soleLine(t, errOut) != want {
		t.Errorf("init said\n%s\nwant\n%s", errOut, want)
	}
	if err := os.Chmod(pw, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = chatsync(t, args...)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	c, problems, err := config.Load(cfg)
	if err != nil || len(problems) > 0 || c.Accounts[0].PasswordFile != pw {
		t.Errorf("config.Load: %v %v %+v", err, problems, c)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), testAccount+".password")); !os.IsNotExist(err) {
		t.Errorf("init wrote a second password file: %v", err)
	}
}

func TestInitFindsTheBlinkQtDatabaseThatHoldsTheAccount(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Blink Qt's usual place is ~/.blink on Linux only")
	}
	url := startServer(t, false)
	home, cfg := initHome(t)
	args := []string{"init", "--config", cfg, "--address", testAccount, "--settings-url", url, "--password-stdin", "--first-device", "--store-format", "blink-qt"}

	// No database: say so and ask for --store.
	code, out, errOut := chatsyncPiped(t, "pw-alice\n", args...)
	if code != ExitUsage {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
	}
	if want := "chatsync: --store is needed: no Blink Qt database was found at its usual place; give the database's path with --store (`chatsync store find` lists the databases on this machine)"; soleLine(t, errOut) != want {
		t.Errorf("init said\n%s\nwant\n%s", errOut, want)
	}

	db := newBlinkDB(t, filepath.Join(home, ".blink", "message_history.db"), blinkdb.BlinkQt)
	putRows(t, db, blinkdb.BlinkQt, testAccount, msg("m1@x", "hello"))
	code, out, errOut = chatsyncPiped(t, "pw-alice\n", args...)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "using "+db+" (the message store, Blink Qt's database)\n") {
		t.Errorf("init does not name the database:\n%s", out)
	}
	c, problems, err := config.Load(cfg)
	if err != nil || len(problems) > 0 || c.Accounts[0].Store != db || c.Accounts[0].StoreFormat != config.StoreBlinkQt {
		t.Errorf("config.Load: %v %v %+v", err, problems, c)
	}
}
