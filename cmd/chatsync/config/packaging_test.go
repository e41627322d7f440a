package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The config the packages install as /etc/chatsync/config.toml is valid
// there: only the files still to be made are reported, as warnings, and it
// gets the system service's defaults.
func TestPackagedSystemConfigIsValid(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the packages are for Linux")
	}
	home(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "packaging", "etc", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, problems := Parse(SystemConfigPath, data)
	for _, p := range problems {
		if !p.Warning {
			t.Errorf("packaging/etc/config.toml: %s", p)
		}
	}
	if cfg == nil || len(cfg.Accounts) != 1 {
		t.Fatalf("config = %+v", cfg)
	}
	if !Within(cfg.Daemon.StateDir, "/var/lib/chatsync") || cfg.Daemon.Socket != DefaultSocket(true, cfg.Daemon.StateDir) {
		t.Errorf("daemon = %+v, want the state under /var/lib/chatsync and the system socket", cfg.Daemon)
	}
	if !Within(cfg.Accounts[0].Store, "/var/lib/chatsync") {
		t.Errorf("store = %s: the system unit (ProtectSystem=strict) can write only under /var/lib/chatsync", cfg.Accounts[0].Store)
	}
}

// packaging/version.sh turns `git describe` into the version of the
// packages and of `chatsync version`: a release tag as it is, commits after
// it as build metadata (above the tag, below the next release), and a bare
// commit as 0.0.0+git<commit>, below every release.
func TestPackageVersionFromGitDescribe(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("version.sh is a shell script of the Linux packages")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "packaging", "version.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-4-gabc1234", "1.2.3+git4.abc1234"},
		{"v1.2.3-14-gabc1234-dirty", "1.2.3+git14.abc1234.dirty"},
		{"v1.3.0-rc.1", "1.3.0-rc.1"},
		{"v1.3.0-rc.1-2-gdeadbee", "1.3.0-rc.1+git2.deadbee"},
		{"abc1234", "0.0.0+gitabc1234"},
		{"1234567", "0.0.0+git1234567"},
		{"abc1234-dirty", "0.0.0+gitabc1234.dirty"},
		{"", "0.0.0+unknown"}, // not a git checkout: describe fails
	} {
		// A git that answers describe with the fake output (and fails, as
		// outside a checkout, when there is none).
		bin := t.TempDir()
		fake := "#!/bin/sh\n[ \"$1\" = describe ] || exit 1\n"
		if tc.describe == "" {
			fake += "exit 128\n"
		} else {
			fake += "echo '" + tc.describe + "'\n"
		}
		if err := os.WriteFile(filepath.Join(bin, "git"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("describe %q: %v\n%s", tc.describe, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("describe %q: version %q, want %q", tc.describe, got, tc.want)
		}
	}
}
