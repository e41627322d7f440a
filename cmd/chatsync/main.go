// Command chatsync is the chatsync daemon and its command-line interface.
//
// The replication engine, the control socket and the service commands arrive
// with their issues; until then this binary only knows `version` and says
// plainly which commands are not built yet.
package main

import (
	"fmt"
	"os"
	"runtime"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: chatsync COMMAND [ARGS]\n\ncommands: run, demo, status, sync, account, key, service, config, version")
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Printf("chatsync %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return 0
	case "run", "demo", "status", "sync", "account", "key", "service", "config":
		fmt.Fprintf(os.Stderr, "chatsync %s: not yet: this command arrives with the replication engine; chatsync-server already works (see README)\n", args[0])
		return 1
	default:
		fmt.Fprintf(os.Stderr, "chatsync: unknown command %q: run `chatsync` for the list of commands\n", args[0])
		return 2
	}
}
