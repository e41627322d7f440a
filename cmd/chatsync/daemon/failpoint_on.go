//go:build failpoints

package daemon

import (
	"fmt"
	"os"
	"time"

	"github.com/chatsync/chatsync/sync/engine"
)

// failpointFromEnv is compiled only into test builds (-tags failpoints):
// CHATSYNC_FAILPOINT=NAME makes the process die at that point of the
// engine, without any cleanup, as a SIGKILL or a power cut would.
func failpointFromEnv() func(string) error {
	name := os.Getenv("CHATSYNC_FAILPOINT")
	if name == "" {
		return nil
	}
	return func(at string) error {
		if at == name {
			fmt.Fprintf(os.Stderr, "chatsync: failpoint %s reached: exiting now\n", at)
			os.Exit(99)
		}
		return nil
	}
}

// tuneFromEnv is compiled only into test builds: CHATSYNC_PROBE_INTERVAL
// (a Go duration) makes the hourly consistency probe run that often, so a
// test of the real binary need not wait an hour for it.
func tuneFromEnv(o *engine.Options) {
	if d, err := time.ParseDuration(os.Getenv("CHATSYNC_PROBE_INTERVAL")); err == nil && d > 0 {
		o.ProbeInterval = d
	}
}
