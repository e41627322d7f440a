//go:build !linux

// Command chatsync-bench measures chatsync end to end. It reads the
// daemons' CPU and memory from /proc, so it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "chatsync-bench: runs on Linux only (it reads CPU and memory figures from /proc)")
	os.Exit(1)
}
