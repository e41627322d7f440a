package store

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRecordsRoundTripInTheirBinaryForm(t *testing.T) {
	at := time.Date(2026, 12, 1, 18, 30, 5, 123456789, time.FixedZone("CET", 3600))
	hash := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	recs := []struct{ in, out record }{
		{&fileRecord{MsgID: "m@x", Hash: hash, Size: 1234, MTime: at}, &fileRecord{}},
		{&fileRecord{MsgID: "m@x", Hash: "sha256:ABC", Size: -1}, &fileRecord{}},
		{&versionRecord{JournalID: 1 << 40, Hash: hash, Deleted: true, Own: true, Device: "urn:uuid:d", Time: at, KeyID: "k1"}, &versionRecord{}},
		{&versionRecord{}, &versionRecord{}},
		{&entryRecord{Token: "t", MsgID: "m", Op: OpDelete, Envelope: "csy1:k1:AAAA", Hash: hash, Enqueued: at, Attempts: 3, LastError: "no", RetryAt: at.Add(time.Hour), Time: at, KeyID: "k1"}, &entryRecord{}},
	}
	for _, c := range recs {
		data := encodeRec(c.in)
		if err := decodeRec(data, c.out); err != nil {
			t.Fatalf("decode %T: %v", c.in, err)
		}
		want, _ := json.Marshal(c.in)
		got, _ := json.Marshal(c.out)
		// The times come back in UTC: the same instant.
		if !equalJSONInstants(t, want, got) {
			t.Errorf("%T: %s came back as %s", c.in, want, got)
		}
		if j, _ := json.Marshal(c.in); len(data) >= len(j) {
			t.Errorf("%T: binary %d bytes, JSON %d: not smaller", c.in, len(data), len(j))
		}
		if err := decodeRec(data[:len(data)-1], c.out); err == nil {
			t.Errorf("%T: a truncated record decoded", c.in)
		}
	}
}

// equalJSONInstants compares two JSON objects whose times may differ in
// zone only.
func equalJSONInstants(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil || len(ma) != len(mb) {
		return false
	}
	for k, va := range ma {
		sa, oka := va.(string)
		sb, okb := mb[k].(string)
		if oka && okb {
			ta, ea := time.Parse(time.RFC3339Nano, sa)
			tb, eb := time.Parse(time.RFC3339Nano, sb)
			if ea == nil && eb == nil {
				if !ta.Equal(tb) {
					return false
				}
				continue
			}
		}
		if ja, jb := mustJSON(va), mustJSON(mb[k]); ja != jb {
			return false
		}
	}
	return true
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestStateOfSchema1IsMigratedToBinaryRecordsAndReadsTheSame(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, Options{})
	f := FileRecord{Path: "x/a.json", MsgID: "a", Hash: "sha256:" + "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd", Size: 10, MTime: time.Unix(1700000000, 5).UTC()}
	p := put("a", "1")
	p.File = &f
	must[Entry](t)(db.Enqueue(alice, p))
	noErr(t, db.ApplyRemote(alice, 7, []Applied{{MsgID: "b", JournalID: 7, Hash: "sha256:b", Device: "urn:uuid:o", Time: time.Unix(1700000001, 0).UTC(), Path: "x/b.json", Size: 3}}))
	wantFile, _, _ := db.File(alice, "x/a.json")
	wantVer, _, _ := db.Version(alice, "b")
	wantEntry, _ := must2(t)(db.Pending(alice, "a"))
	if wantFile.MsgID != "a" || wantVer.JournalID != 7 || wantEntry.MsgID != "a" {
		t.Fatalf("setup: file %+v version %+v entry %+v", wantFile, wantVer, wantEntry)
	}
	noErr(t, db.Close())

	// Write every record back in its schema-1 JSON form.
	bdb, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	noErr(t, err)
	noErr(t, bdb.Update(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketV1).Bucket(bucketAccounts).Bucket([]byte(alice))
		for _, bk := range []struct {
			name []byte
			rec  func() record
		}{{bucketFiles, func() record { return &fileRecord{} }}, {bucketVersions, func() record { return &versionRecord{} }}, {bucketOutbox, func() record { return &entryRecord{} }}} {
			b := a.Bucket(bk.name)
			var keys, vals [][]byte
			b.ForEach(func(k, v []byte) error {
				rec := bk.rec()
				if err := decodeRec(v, rec); err != nil {
					t.Fatal(err)
				}
				j, _ := json.Marshal(rec)
				keys, vals = append(keys, append([]byte(nil), k...)), append(vals, j)
				return nil
			})
			if len(keys) == 0 {
				t.Fatalf("no %s records to write back", bk.name)
			}
			for i := range keys {
				if err := b.Put(keys[i], vals[i]); err != nil {
					return err
				}
			}
		}
		return putU64(tx.Bucket(bucketV1).Bucket(bucketMeta), keySchemaVersion, 1)
	}))
	noErr(t, bdb.Close())

	db = mustOpen(t, dir, Options{})
	defer db.Close()
	var schema uint64
	noErr(t, db.bolt.View(func(tx *bolt.Tx) (err error) { schema, err = schemaVersion(tx); return err }))
	if schema != 2 {
		t.Fatalf("schema %d after the migration, want 2", schema)
	}
	gotFile, _, _ := db.File(alice, "x/a.json")
	gotVer, _, _ := db.Version(alice, "b")
	gotEntry, _ := must2(t)(db.Pending(alice, "a"))
	if mustJSON(gotFile) != mustJSON(wantFile) || mustJSON(gotVer) != mustJSON(wantVer) || mustJSON(gotEntry) != mustJSON(wantEntry) {
		t.Errorf("after the migration:\n file %+v\n want %+v\n version %+v\n want %+v\n entry %+v\n want %+v", gotFile, wantFile, gotVer, wantVer, gotEntry, wantEntry)
	}
	noErr(t, db.bolt.View(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketV1).Bucket(bucketAccounts).Bucket([]byte(alice))
		for _, name := range [][]byte{bucketFiles, bucketVersions, bucketOutbox} {
			a.Bucket(name).ForEach(func(k, v []byte) error {
				if v[0] != recBinary {
					t.Errorf("%s %q is still %q", name, k, v)
				}
				return nil
			})
		}
		return nil
	}))
}
