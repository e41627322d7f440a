// Command chatsync is the chatsync daemon and its command-line interface.
// See `chatsync --help` and the README.
package main

import (
	"os"

	"github.com/chatsync/chatsync/cmd/chatsync/cli"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(cli.Run(os.Args[1:], version))
}
