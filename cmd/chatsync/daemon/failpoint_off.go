//go:build !failpoints

package daemon

// failpointFromEnv returns nil: failpoints exist only in test builds.
func failpointFromEnv() func(string) error { return nil }
