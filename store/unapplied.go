package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Unapplied is a journal row this device read but could not apply for a
// reason that can go away: it was sealed under a key this device does not
// have yet, its file would pass through a symbolic link, it is of a newer
// envelope format. It is kept, whatever the cursor does, and tried again
// when the cause may be gone (a key reload, a rescan, a restart, a sync).
type Unapplied struct {
	JournalID int64  `json:"-"`
	Reason    string `json:"reason"`
	// KeyID names the key the row was sealed under, when the reason is a
	// missing key.
	KeyID     string `json:"key_id,omitempty"`
	UUID      string `json:"uuid"`
	Timestamp string `json:"timestamp"`
	Data      string `json:"data"`
}

// putUnapplied records rows in the transaction of a page.
func putUnapplied(a *account, rows []Unapplied) error {
	for _, u := range rows {
		if u.JournalID <= 0 {
			return fmt.Errorf("unapplied row with journal id %d", u.JournalID)
		}
		if err := putJSON(a.unapplied, u64(uint64(u.JournalID)), u); err != nil {
			return err
		}
	}
	return nil
}

// UnappliedRows returns the rows kept for a later try, in journal order.
func (db *DB) UnappliedRows(acct string) ([]Unapplied, error) {
	var out []Unapplied
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if a.unapplied == nil {
			return nil
		}
		return a.unapplied.ForEach(func(k, v []byte) error {
			var u Unapplied
			if _, err := getJSON(a.unapplied, k, &u); err != nil {
				return err
			}
			u.JournalID = int64(binary.BigEndian.Uint64(k))
			out = append(out, u)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("unapplied rows: %w", err)
	}
	return out, nil
}

// RetriedUnapplied records the outcome of trying all the kept rows again,
// in one transaction: the rows applied now (as by ApplyRemote, the cursor
// left alone) and the rows still waiting, which replace the kept ones
// (the rest are superseded or can never be applied).
func (db *DB) RetriedUnapplied(acct string, applied []Applied, waiting []Unapplied) error {
	if err := validApplied(applied); err != nil {
		return err
	}
	err := db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		if err := applyVersions(a, applied); err != nil {
			return err
		}
		c := a.unapplied.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return putUnapplied(a, waiting)
	})
	if err != nil {
		return fmt.Errorf("retried unapplied rows: %w", err)
	}
	return nil
}
