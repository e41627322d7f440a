package store

import bolt "go.etcd.io/bbolt"

// A chat client's database holds no marker chatsync could keep (its schema
// and other tables are the client's), so the state keeps the identity of
// the file the account synced instead: a database recreated or replaced by
// another file while chatsync was away is then not taken for one whose
// messages were deleted.

var keyStoreID = []byte("store_id")

// StoreID returns the identity recorded for the account's store ("" when
// none is).
func (db *DB) StoreID(acct string) (string, error) {
	var id string
	err := db.view(func(tx *bolt.Tx) error {
		if a := readAccount(tx, acct); a.exists() {
			id = string(a.state.Get(keyStoreID))
		}
		return nil
	})
	return id, err
}

// SetStoreID records the identity of the account's store.
func (db *DB) SetStoreID(acct, id string) error {
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		return a.state.Put(keyStoreID, []byte(id))
	})
}
