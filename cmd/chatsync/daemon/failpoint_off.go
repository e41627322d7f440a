//go:build !failpoints

package daemon

import "github.com/chatsync/chatsync/sync/engine"

// failpointFromEnv returns nil: failpoints exist only in test builds.
func failpointFromEnv() func(string) error { return nil }

// tuneFromEnv does nothing: the engine's timings are fixed outside tests.
func tuneFromEnv(*engine.Options) {}
