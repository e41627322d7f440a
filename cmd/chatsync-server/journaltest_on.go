//go:build journaltest

package main

import (
	"os"
	"strings"

	"github.com/chatsync/chatsync/sync/accountserver"
)

// journalTestSwitches turns off what CHATSYNC_TEST_JOURNAL_OFF names
// ("lock", "horizon"), for the test that shows what they prevent. Only a
// binary built with -tags journaltest reads it.
func journalTestSwitches(o *accountserver.Options) {
	for _, off := range strings.Split(os.Getenv("CHATSYNC_TEST_JOURNAL_OFF"), ",") {
		o.MySQLNoLock = o.MySQLNoLock || off == "lock"
		o.MySQLNoHorizon = o.MySQLNoHorizon || off == "horizon"
	}
}
