package config

import (
	"os"
	"path/filepath"
	"runtime"
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
	if !within(cfg.Daemon.StateDir, "/var/lib/chatsync") || cfg.Daemon.Socket != DefaultSocket(true, cfg.Daemon.StateDir) {
		t.Errorf("daemon = %+v, want the state under /var/lib/chatsync and the system socket", cfg.Daemon)
	}
	if !within(cfg.Accounts[0].Store, "/var/lib/chatsync") {
		t.Errorf("store = %s: the system unit (ProtectSystem=strict) can write only under /var/lib/chatsync", cfg.Accounts[0].Store)
	}
}
