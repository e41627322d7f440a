//go:build !journaltest

package main

import "github.com/chatsync/chatsync/sync/accountserver"

// journalTestSwitches does nothing: only a test binary (-tags journaltest)
// can turn off the journal's lock or horizon.
func journalTestSwitches(*accountserver.Options) {}
