package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// An account's device id is the installation's (DeviceID) until the engine
// finds rows under that id that this device never pushed: another device
// uses the same id (a copied state dir, a cloned machine, a restored
// backup), and the server's except_uuid hides each one's rows from the
// other. The account then takes a new id of its own (NewAccountDevice).

var (
	keyAccountDevice = []byte("device_id")
	keyClone         = []byte("clone")
	keyOwnCheck      = []byte("own_check")
	keyFormerIDs     = []byte("former_ids")
)

// Clone records that an account took a new device id because another
// device used its old one.
type Clone struct {
	At       time.Time `json:"at"`
	FormerID string    `json:"former_id"`
	Rows     int       `json:"rows"` // rows found under the old id that this device had not written
}

// AccountDevice returns the device id acct writes under: its own if it took
// one, else the installation's.
func (db *DB) AccountDevice(acct string) (string, error) {
	id := db.deviceID
	err := db.view(func(tx *bolt.Tx) error {
		if a := readAccount(tx, acct); a.exists() {
			if v := a.state.Get(keyAccountDevice); len(v) > 0 {
				id = string(v)
			}
		}
		return nil
	})
	return id, err
}

// NewAccountDevice gives acct a new device id, records c, and moves the
// cursor back to rewind (never forward), so that the rows the other device
// wrote under the old id are read; rows this device holds already are
// recognised by their journal ids and change nothing. It returns the new id.
func (db *DB) NewAccountDevice(acct string, c Clone, rewind int64) (string, error) {
	id, err := newUUID()
	if err != nil {
		return "", err
	}
	id = "urn:uuid:" + id
	err = db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		if err := a.state.Put(keyAccountDevice, []byte(id)); err != nil {
			return err
		}
		if err := putJSON(a.state, keyClone, c); err != nil {
			return err
		}
		var former []string
		if _, err := getJSON(a.state, keyFormerIDs, &former); err != nil {
			return err
		}
		if err := putJSON(a.state, keyFormerIDs, append(former, c.FormerID)); err != nil {
			return err
		}
		if rewind < getI64(a.state, keyCursor) {
			return putI64(a.state, keyCursor, max(rewind, 0))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("take a new device id: %w", err)
	}
	return id, nil
}

// LastClone returns the record of the last NewAccountDevice, if any.
func (db *DB) LastClone(acct string) (Clone, bool, error) {
	var c Clone
	ok, err := db.stateJSON(acct, keyClone, &c)
	return c, ok, err
}

// FormerDevices returns the ids acct wrote under before NewAccountDevice
// gave it its current one: rows under them may be this device's own.
func (db *DB) FormerDevices(acct string) ([]string, error) {
	var ids []string
	_, err := db.stateJSON(acct, keyFormerIDs, &ids)
	return ids, err
}

// OwnCheck returns the journal id up to which the rows under this
// account's device id have been checked for ones it did not write; ok is
// false until SetOwnCheck was first called (and after ResetAccount).
func (db *DB) OwnCheck(acct string) (id int64, ok bool, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		if a := readAccount(tx, acct); a.exists() {
			ok = a.state.Get(keyOwnCheck) != nil
			id = getI64(a.state, keyOwnCheck)
		}
		return nil
	})
	return id, ok, err
}

// SetOwnCheck records how far the rows under this device's id were checked.
func (db *DB) SetOwnCheck(acct string, id int64) error {
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		return putI64(a.state, keyOwnCheck, id)
	})
}

// Pushed reports which of ids are journal rows that this device stored
// (put, or recognised as its own after a reset).
func (db *DB) Pushed(acct string, ids []int64) (map[int64]bool, error) {
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = false
	}
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		missing := len(want)
		mark := func(id int64) {
			if found, ok := want[id]; ok && !found {
				want[id] = true
				missing--
			}
		}
		if err := a.sent.ForEach(func(_, v []byte) error {
			if len(v) == 8 {
				mark(int64(binary.BigEndian.Uint64(v)))
			}
			return nil
		}); err != nil || missing == 0 {
			return err
		}
		// Own rows recognised after a reset are only in the versions.
		return a.versions.ForEach(func(_, v []byte) error {
			var rec versionRecord
			if decodeRec(v, &rec) == nil && rec.Own {
				mark(rec.JournalID)
			}
			return nil
		})
	})
	return want, err
}
