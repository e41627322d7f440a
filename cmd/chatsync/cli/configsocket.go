package cli

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
)

// socketDespiteErrors finds the daemon's socket in a config file that has
// mistakes elsewhere than in [daemon], so `chatsync status` still reaches
// a daemon that refused the edit and can say so. "" if it cannot.
func socketDespiteErrors(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return ""
	}
	cfg, problems := config.Parse(abs, data)
	if cfg == nil {
		return ""
	}
	for _, p := range problems {
		if !p.Warning && (p.Key == "" || strings.HasPrefix(p.Key, "daemon")) {
			return ""
		}
	}
	return cfg.Daemon.Socket
}
