package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A migration moves the state from schema version-1 to version. Migrations
// run in order inside the single write transaction of Open, so a crash or an
// error leaves the file at the old schema.
type migration struct {
	version uint64
	name    string
	migrate func(tx *bolt.Tx) error
}

// migrations lists every schema change, oldest first; the last version is the
// schema this code writes. Never edit a released entry: append a new one and
// update the tree in doc.go.
var migrations = []migration{
	{version: 1, name: "create the v1 layout", migrate: migrateV1},
	{version: 2, name: "binary file, version and outbox records", migrate: migrateV2},
}

func migrateV1(tx *bolt.Tx) error {
	v1, err := tx.CreateBucketIfNotExists(bucketV1)
	if err != nil {
		return err
	}
	if _, err := v1.CreateBucketIfNotExists(bucketMeta); err != nil {
		return err
	}
	_, err = v1.CreateBucketIfNotExists(bucketAccounts)
	return err
}

// schemaVersion returns the schema version stored in the file; 0 for a new
// file.
func schemaVersion(tx *bolt.Tx) (uint64, error) {
	v1 := tx.Bucket(bucketV1)
	if v1 == nil {
		return 0, nil
	}
	meta := v1.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchemaVersion)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("schema version: bad length %d", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// migrate brings the file to the last version of list, refusing a file
// whose schema is newer than list knows.
func migrate(tx *bolt.Tx, list []migration) error {
	have, err := schemaVersion(tx)
	if err != nil {
		return err
	}
	want := list[len(list)-1].version
	if have > want {
		return fmt.Errorf("%w: the file has schema version %d, this chatsync knows up to %d; upgrade chatsync or move the file aside", ErrSchemaTooNew, have, want)
	}
	if have == want {
		return nil
	}
	for _, m := range list {
		if m.version <= have {
			continue
		}
		if err := m.migrate(tx); err != nil {
			return fmt.Errorf("migrate to schema %d (%s): %w", m.version, m.name, err)
		}
	}
	return putU64(tx.Bucket(bucketV1).Bucket(bucketMeta), keySchemaVersion, want)
}
