package service

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func abs(t *testing.T, p string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		return `C:\` + strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", `\`)
	}
	return p
}

func userOptions(t *testing.T) Options {
	return Options{User: true, Executable: abs(t, "/home/alice/bin/chatsync"), ConfigPath: abs(t, "/home/alice/.config/chatsync/config.toml"), Home: abs(t, "/home/alice")}
}

// lines returns the unit's lines as a set, for assertions on whole lines.
func lines(s string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		m[l] = true
	}
	return m
}

func TestUserUnitStartsAtLoginAndRestartsWithinSeconds(t *testing.T) {
	o := userOptions(t)
	unit, err := SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	l := lines(unit)
	for _, want := range []string{
		"[Unit]", "[Service]", "[Install]",
		"WantedBy=default.target",
		"Restart=on-failure",
		"RestartSec=5s",
		"StartLimitIntervalSec=60",
		`ExecStart="` + o.Executable + `" "run" "--config" "` + o.ConfigPath + `"`,
		"ExecReload=/bin/kill -HUP $MAINPID",
		"NoNewPrivileges=true",
	} {
		if !l[want] {
			t.Errorf("the user unit lacks the line %q:\n%s", want, unit)
		}
	}
	for _, bad := range []string{"multi-user.target", "RestartSec=120", "User=", "StateDirectory=", "{{"} {
		if strings.Contains(unit, bad) {
			t.Errorf("the user unit holds %q:\n%s", bad, unit)
		}
	}
	if path, err := exec.LookPath("systemd-analyze"); err == nil {
		verify(t, path, unit, o.Executable)
	}
	// StartLimit* belong in [Unit] (systemd ignores them in [Service]).
	if strings.Index(unit, "StartLimitIntervalSec") > strings.Index(unit, "[Service]") {
		t.Errorf("StartLimitIntervalSec is not in [Unit]:\n%s", unit)
	}
}

func TestSystemUnitRunsAsTheGivenUserWithStateAndRuntimeDirectories(t *testing.T) {
	o := Options{Executable: "/usr/local/bin/chatsync", ConfigPath: "/etc/chatsync/config.toml", RunAs: "chatsync"}
	unit, err := SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	l := lines(unit)
	for _, want := range []string{
		"WantedBy=multi-user.target", "User=chatsync", "Restart=on-failure", "RestartSec=5s",
		"RuntimeDirectory=chatsync", "StateDirectory=chatsync",
		`ExecStart="/usr/local/bin/chatsync" "run" "--config" "/etc/chatsync/config.toml"`,
	} {
		if !l[want] {
			t.Errorf("the system unit lacks the line %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "default.target") {
		t.Errorf("the system unit names default.target:\n%s", unit)
	}
	// It passes systemd's own checks where systemd is installed.
	if path, err := exec.LookPath("systemd-analyze"); err == nil {
		verify(t, path, unit, o.Executable)
	}
}

func TestExecStartQuotesSpacesPercentAndDollar(t *testing.T) {
	got := systemdCommand([]string{"/opt/my apps/chatsync", "run", "--config", `/home/a/100% "$HOME".toml`})
	want := `"/opt/my apps/chatsync" "run" "--config" "/home/a/100%% \"$$HOME\".toml"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestLaunchAgentHasLogPathsAndTheConfig(t *testing.T) {
	o := userOptions(t)
	o.ConfigPath = abs(t, "/Users/alice/Library/Application Support/chatsync/a&b.toml")
	plist, err := LaunchdPlist(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<string>" + LaunchdLabel + "</string>",
		"<string>run</string>", "<string>--config</string>",
		"<string>" + strings.ReplaceAll(o.ConfigPath, "&", "&amp;") + "</string>",
		"<key>StandardErrorPath</key>\n\t<string>" + filepath.Join(o.Home, "Library", "Logs", "chatsync.log") + "</string>",
		"<key>StandardOutPath</key>",
		"<key>RunAtLoad</key>\n\t<true/>",
		"<key>SuccessfulExit</key>\n\t\t<false/>",
	} {
		if !strings.Contains(plist, want) {
			t.Errorf("the plist lacks %q:\n%s", want, plist)
		}
	}
	if strings.Contains(plist, "UserName") {
		t.Errorf("a LaunchAgent names a UserName:\n%s", plist)
	}
}

func TestConfigHandsOurTemplatesToKardianos(t *testing.T) {
	o := userOptions(t)
	c, err := Config(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != Name() || strings.Join(c.Arguments, " ") != "run --config "+o.ConfigPath || c.Executable != o.Executable {
		t.Errorf("config = %+v", c)
	}
	unit, _ := SystemdUnit(o)
	if c.Option["SystemdScript"] != unit || c.Option["UserService"] != true {
		t.Errorf("options = %v", c.Option)
	}
	if c.Option["OnFailure"] != "restart" {
		t.Errorf("Windows recovery: OnFailure = %v, want restart", c.Option["OnFailure"])
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for name, o := range map[string]Options{
		"relative config":     {Executable: abs(t, "/bin/chatsync"), ConfigPath: "config.toml"},
		"relative executable": {Executable: "chatsync", ConfigPath: abs(t, "/etc/c.toml")},
		"template braces":     {Executable: abs(t, "/bin/chatsync"), ConfigPath: abs(t, "/etc/{{x}}.toml")},
		"newline":             {Executable: abs(t, "/bin/chatsync"), ConfigPath: abs(t, "/etc/a\n.toml")},
		"run-as for a user":   {User: true, RunAs: "bob", Executable: abs(t, "/bin/chatsync"), ConfigPath: abs(t, "/etc/c.toml")},
	} {
		if _, err := Config(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
