package localclient

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps localclient light: programs that only talk to the daemon
// must not link its database, crypto or file watcher (tailscale's deptest).
func TestDeps(t *testing.T) {
	for _, pkg := range []string{".", "../apitype"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 5 {
			t.Fatalf("go list -deps %s gave %d packages, want the standard library at least", pkg, len(deps))
		}
		for _, d := range deps {
			for _, bad := range []string{
				"go.etcd.io/bbolt", "golang.org/x/crypto/nacl", "github.com/fsnotify/fsnotify",
				"github.com/chatsync/chatsync/store", "github.com/chatsync/chatsync/crypto",
				"github.com/chatsync/chatsync/sync/engine",
			} {
				if d == bad || strings.HasPrefix(d, bad+"/") {
					t.Errorf("%s depends on %s; it must not", pkg, d)
				}
			}
			if !strings.Contains(strings.Split(d, "/")[0], ".") || strings.HasPrefix(d, "vendor/") {
				continue // the standard library
			}
			if d != "github.com/chatsync/chatsync/sync/apitype" && d != "github.com/chatsync/chatsync/sync/localclient" {
				t.Errorf("%s depends on %s; only the standard library and sync/apitype are allowed", pkg, d)
			}
		}
	}
}
