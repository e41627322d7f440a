package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// IsSystemConfig reports whether path is the config of a system service
// (as opposed to one user's): a file under /etc or /usr/local/etc, or on
// Windows under %ProgramData%. Its defaults are the system ones.
func IsSystemConfig(path string) bool {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		return pd != "" && Within(strings.ToLower(path), strings.ToLower(pd))
	}
	return strings.HasPrefix(path, "/etc/") || strings.HasPrefix(path, "/usr/local/etc/") || strings.HasPrefix(path, "/private/etc/")
}

// DefaultSystemConfigPath is the config file of a system service:
// /etc/chatsync/config.toml, and %ProgramData%\chatsync\config.toml on
// Windows.
func DefaultSystemConfigPath() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "chatsync", "config.toml")
	}
	return SystemConfigPath
}

func programData() string {
	if pd := os.Getenv("ProgramData"); pd != "" {
		return pd
	}
	return `C:\ProgramData`
}

// canRead opens path for reading, to tell a file the daemon cannot read
// (wrong owner, a directory) from one it can.
func canRead(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// DefaultStateDir is where the bbolt state lives when daemon.state_dir is
// not set. For the system service: /var/lib/chatsync on Linux (systemd's
// StateDirectory=chatsync), /Library/Application Support/chatsync on macOS,
// %ProgramData%\chatsync on Windows. For a user: $XDG_STATE_HOME/chatsync
// (~/.local/state/chatsync) on Linux, ~/Library/Application Support/chatsync
// on macOS, %LocalAppData%\chatsync on Windows.
func DefaultStateDir(system bool) string {
	if system {
		switch runtime.GOOS {
		case "windows":
			return filepath.Join(programData(), "chatsync")
		case "darwin":
			return "/Library/Application Support/chatsync"
		}
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
