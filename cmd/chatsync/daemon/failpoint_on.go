//go:build failpoints

package daemon

import (
	"fmt"
	"os"
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
