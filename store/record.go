package store

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The records there is one of per message — the file index, the versions
// and the outbox — are stored in a small binary form (schema 2): a JSON
// record costs three times the bytes and most of the CPU of a rescan.
// Records of schema 1 were JSON and are still read (a JSON record starts
// with '{'), so a migration that is cut short loses nothing.
//
// A binary record is the byte recBinary followed by its fields in a fixed
// order: integers as varints, strings as a length and the bytes, times as
// seconds and nanoseconds (or one zero byte for the zero time), and a
// content hash "sha256:<64 hex digits>" as its 32 bytes.
const recBinary = 0x01

// binaryRecord is a value with a binary form; record is a pointer to one,
// which is decoded into. Their JSON form is the old one.
type binaryRecord interface{ appendBinary(b []byte) []byte }

type record interface {
	binaryRecord
	readBinary(r *recReader)
}

func encodeRec(rec binaryRecord) []byte { return rec.appendBinary([]byte{recBinary}) }

func putRec(b *bolt.Bucket, key []byte, rec binaryRecord) error { return b.Put(key, encodeRec(rec)) }

// getRec decodes the value under key into rec and reports whether it
// exists. The decoded strings are copies: rec never aliases the
// transaction's memory.
func getRec(b *bolt.Bucket, key []byte, rec record) (bool, error) {
	if b == nil {
		return false, nil
	}
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := decodeRec(data, rec); err != nil {
		return true, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

func decodeRec(data []byte, rec record) error {
	switch {
	case len(data) > 0 && data[0] == recBinary:
		r := recReader{b: data[1:]}
		rec.readBinary(&r)
		if r.err == nil && len(r.b) > 0 {
			r.err = fmt.Errorf("%d bytes after the record", len(r.b))
		}
		return r.err
	case len(data) > 0 && data[0] == '{':
		return json.Unmarshal(data, rec)
	}
	return errors.New("neither a binary nor a JSON record")
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInt(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

const hashPrefix = "sha256:"

// appendHash stores a sha256 content hash as its 32 bytes, anything else
// as a string.
func appendHash(b []byte, h string) []byte {
	if len(h) == len(hashPrefix)+64 && strings.HasPrefix(h, hashPrefix) {
		var raw [32]byte
		if _, err := hex.Decode(raw[:], []byte(h[len(hashPrefix):])); err == nil && hex.EncodeToString(raw[:]) == h[len(hashPrefix):] {
			b = append(b, 1)
			return append(b, raw[:]...)
		}
	}
	b = append(b, 0)
	return appendStr(b, h)
}

// recReader reads the fields of a binary record; the first error sticks
// and the reads after it return zero values.
type recReader struct {
	b   []byte
	err error
}

func (r *recReader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated record")
	}
	r.b = nil
}

func (r *recReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *recReader) bytes(n uint64) []byte {
	if r.err != nil || uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *recReader) str() string { return string(r.bytes(r.uvarint())) }

func (r *recReader) bool() bool { return r.byte() != 0 }

func (r *recReader) time() time.Time {
	if r.byte() == 0 {
		return time.Time{}
	}
	sec := r.int()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *recReader) hash() string {
	if r.byte() == 1 {
		return hashPrefix + hex.EncodeToString(r.bytes(32))
	}
	return r.str()
}

func (r fileRecord) appendBinary(b []byte) []byte {
	b = appendStr(b, r.MsgID)
	b = appendHash(b, r.Hash)
	b = appendInt(b, r.Size)
	return appendTime(b, r.MTime)
}

func (r *fileRecord) readBinary(rd *recReader) {
	r.MsgID, r.Hash, r.Size, r.MTime = rd.str(), rd.hash(), rd.int(), rd.time()
}

func (r versionRecord) appendBinary(b []byte) []byte {
	b = appendInt(b, r.JournalID)
	b = appendHash(b, r.Hash)
	b = appendBool(b, r.Deleted)
	b = appendBool(b, r.Own)
	b = appendStr(b, r.Device)
	b = appendTime(b, r.Time)
	return appendStr(b, r.KeyID)
}

func (r *versionRecord) readBinary(rd *recReader) {
	r.JournalID, r.Hash, r.Deleted, r.Own = rd.int(), rd.hash(), rd.bool(), rd.bool()
	r.Device, r.Time, r.KeyID = rd.str(), rd.time(), rd.str()
}

func (r entryRecord) appendBinary(b []byte) []byte {
	b = appendStr(b, r.Token)
	b = appendStr(b, r.MsgID)
	b = appendStr(b, string(r.Op))
	b = appendStr(b, r.Envelope)
	b = appendHash(b, r.Hash)
	b = appendTime(b, r.Enqueued)
	b = appendInt(b, int64(r.Attempts))
	b = appendStr(b, r.LastError)
	b = appendTime(b, r.RetryAt)
	b = appendTime(b, r.Time)
	return appendStr(b, r.KeyID)
}

func (r *entryRecord) readBinary(rd *recReader) {
	r.Token, r.MsgID, r.Op, r.Envelope, r.Hash = rd.str(), rd.str(), Op(rd.str()), rd.str(), rd.hash()
	r.Enqueued, r.Attempts, r.LastError = rd.time(), int(rd.int()), rd.str()
	r.RetryAt, r.Time, r.KeyID = rd.time(), rd.time(), rd.str()
}

// migrateV2 rewrites the JSON records of every account's file index,
// versions and outbox in their binary form.
func migrateV2(tx *bolt.Tx) error {
	accounts := tx.Bucket(bucketV1).Bucket(bucketAccounts)
	return accounts.ForEachBucket(func(name []byte) error {
		a := accounts.Bucket(name)
		for _, bk := range []struct {
			name []byte
			rec  func() record
		}{
			{bucketFiles, func() record { return &fileRecord{} }},
			{bucketVersions, func() record { return &versionRecord{} }},
			{bucketOutbox, func() record { return &entryRecord{} }},
		} {
			b := a.Bucket(bk.name)
			if b == nil {
				continue
			}
			var keys, vals [][]byte
			err := b.ForEach(func(k, v []byte) error {
				if len(v) == 0 || v[0] != '{' {
					return nil
				}
				rec := bk.rec()
				if err := json.Unmarshal(v, rec); err != nil {
					return fmt.Errorf("%s %q: %w", bk.name, k, err)
				}
				keys = append(keys, append([]byte(nil), k...))
				vals = append(vals, encodeRec(rec))
				return nil
			})
			if err != nil {
				return err
			}
			for i, k := range keys {
				if err := b.Put(k, vals[i]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
