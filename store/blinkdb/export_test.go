package blinkdb

import "time"

// SetBusyBound shortens how long db retries a locked database, so a test
// can see the bound without waiting ten seconds.
func SetBusyBound(db *DB, d time.Duration) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.busyBound = d
}

// Pragma reads a setting of db's own connection.
func Pragma(db *DB, name string) (string, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	var v string
	err := db.sql.QueryRow("PRAGMA " + name).Scan(&v)
	return v, err
}
