package blinkdb

import "time"

// SetBusyBound shortens how long db retries a locked database, so a test
// can see the bound without waiting ten seconds.
func SetBusyBound(db *DB, d time.Duration) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.busyBound = d
}
