package config

import (
	"os"
	"path/filepath"
	"runtime"
)

// DefaultStateDir is where the bbolt state lives when daemon.state_dir is
// not set: /var/lib/chatsync for the system service, else the user's state
// directory ($XDG_STATE_HOME/chatsync, ~/.local/state/chatsync on Linux,
// ~/Library/Application Support/chatsync on macOS, %LocalAppData%\chatsync
// on Windows).
func DefaultStateDir(system bool) string {
	if system && runtime.GOOS != "windows" {
		return "/var/lib/chatsync"
	}
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" && runtime.GOOS != "windows" {
		return filepath.Join(dir, "chatsync")
	}
	home, _ := os.UserHomeDir()
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "chatsync")
	case "windows":
		if dir := os.Getenv("LocalAppData"); dir != "" {
			return filepath.Join(dir, "chatsync")
		}
		return filepath.Join(home, "AppData", "Local", "chatsync")
	}
	return filepath.Join(home, ".local", "state", "chatsync")
}

// DefaultSocket is the control socket path when daemon.socket is not set:
// /run/chatsync/chatsync.sock for the system service (systemd's
// RuntimeDirectory), $XDG_RUNTIME_DIR/chatsync.sock for a user, and the
// state directory where there is no runtime directory (macOS, Windows, a
// Linux session without one).
func DefaultSocket(system bool, stateDir string) string {
	if system && runtime.GOOS == "linux" {
		return "/run/chatsync/chatsync.sock"
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" && runtime.GOOS == "linux" {
		return filepath.Join(dir, "chatsync.sock")
	}
	return filepath.Join(stateDir, "chatsync.sock")
}
