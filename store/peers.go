package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Peer is what this device knows of another chatsync device of the
// account, from the journal: the rows it wrote and its last report.
type Peer struct {
	Device   string    `json:"-"`
	Rows     int64     `json:"rows"`      // rows read from it
	LastRow  int64     `json:"last_row"`  // the newest of them
	LastSeen time.Time `json:"last_seen"` // the newest time it wrote, by its clock
	// SealedKeys are the key ids its rows were sealed under.
	SealedKeys []string `json:"sealed_keys,omitempty"`
	// Applied is the journal id up to which it said it had applied the
	// journal (in a report or a row), at AppliedAt.
	Applied   int64     `json:"applied,omitempty"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// Report is its newest report, as it sealed it, made at Reported.
	Report   json.RawMessage `json:"report,omitempty"`
	Reported time.Time       `json:"reported,omitzero"`
}

// merge takes what a newer page said of the same device into p.
func (p *Peer) merge(o Peer) {
	p.Rows += o.Rows
	p.LastRow = max(p.LastRow, o.LastRow)
	if o.LastSeen.After(p.LastSeen) {
		p.LastSeen = o.LastSeen
	}
	for _, k := range o.SealedKeys {
		if !slices.Contains(p.SealedKeys, k) {
			p.SealedKeys = append(p.SealedKeys, k)
		}
	}
	slices.Sort(p.SealedKeys)
	// What it applied only grows while the journal does (ResetAccount
	// forgets the peers): the newest statement wins.
	if o.AppliedAt.After(p.AppliedAt) {
		p.Applied, p.AppliedAt = o.Applied, o.AppliedAt
	}
	if o.Report != nil && o.Reported.After(p.Reported) {
		p.Report, p.Reported = o.Report, o.Reported
	}
}

// notePeers merges what a page said of other devices into the account.
func notePeers(a *account, peers []Peer) error {
	for _, o := range peers {
		key := []byte(o.Device)
		var p Peer
		if _, err := getJSON(a.peers, key, &p); err != nil {
			return fmt.Errorf("device %s: %w", o.Device, err)
		}
		p.merge(o)
		if err := putJSON(a.peers, key, &p); err != nil {
			return err
		}
	}
	return nil
}

// NotePeers records what rows read outside a page (kept rows applied
// later) said of other devices.
func (db *DB) NotePeers(acct string, peers []Peer) error {
	if len(peers) == 0 {
		return nil
	}
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		return notePeers(a, peers)
	})
}

// Peers returns every other device of the account seen in the journal,
// by device id.
func (db *DB) Peers(acct string) ([]Peer, error) {
	var out []Peer
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if a.peers == nil {
			return nil
		}
		return a.peers.ForEach(func(k, v []byte) error {
			var p Peer
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("device %s: %w", k, err)
			}
			p.Device = string(k)
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// ForgetPeer removes a device from the account's peers (a device id this
// device now writes under: a clone that was healed).
func (db *DB) ForgetPeer(acct, device string) error {
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		return a.peers.Delete([]byte(device))
	})
}

// Lag is how many of this device's versions another device had not
// applied: those after its applied journal id, or sealed under a key it
// does not hold; Since is when the oldest of them was written.
// Unconfirmed of them were written after it said so: it may have them by
// now.
type Lag struct {
	Behind      int
	Since       time.Time
	Unconfirmed int
}

// LagOf is what OwnLag is asked about one device: the journal id it said
// it had applied, when, and, if it said, the key ids it holds.
type LagOf struct {
	Applied int64
	Said    time.Time
	KeyIDs  []string // nil: not said
}

// OwnLag counts, for each of of, this device's versions (the messages
// whose newest version this device wrote) that device has not applied,
// in one pass over the versions.
func (db *DB) OwnLag(acct string, of []LagOf) ([]Lag, error) {
	out := make([]Lag, len(of))
	err := db.view(func(tx *bolt.Tx) error {
		a := readAccount(tx, acct)
		if !a.exists() {
			return nil
		}
		return a.versions.ForEach(func(_, v []byte) error {
			var rec versionRecord
			if err := decodeRec(v, &rec); err != nil {
				return err
			}
			if !rec.Own || rec.JournalID == 0 {
				return nil // another's, or not on the server (yet)
			}
			for i, o := range of {
				if rec.JournalID > o.Applied || o.KeyIDs != nil && rec.KeyID != "" && !slices.Contains(o.KeyIDs, rec.KeyID) {
					out[i].Behind++
					if out[i].Since.IsZero() || rec.Time.Before(out[i].Since) {
						out[i].Since = rec.Time
					}
					if rec.Time.After(o.Said) {
						out[i].Unconfirmed++
					}
				}
			}
			return nil
		})
	})
	return out, err
}

// SentReport is what this device said in its last report.
type SentReport struct {
	At      time.Time       `json:"at"`
	Report  json.RawMessage `json:"report"`
	Applied int64           `json:"applied"`
	// Times are the times of its recent reports (newest last), by which
	// it knows its own report rows from a clone's.
	Times []time.Time `json:"times,omitempty"`
	// Asked is when it last asked the others for reports.
	Asked time.Time `json:"asked,omitzero"`
}

var keySentReport = []byte("sent_report")

// maxReportTimes bounds SentReport.Times.
const maxReportTimes = 32

// SentReport returns this device's last report, if it made one.
func (db *DB) SentReport(acct string) (SentReport, bool, error) {
	var r SentReport
	ok, err := db.stateJSON(acct, keySentReport, &r)
	return r, ok, err
}

// RecordReport records a report before it is sent, so that its row is
// known as this device's own (a reply that is lost leaves a row of ours
// the journal holds).
func (db *DB) RecordReport(acct string, r SentReport) error {
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		var old SentReport
		if _, err := getJSON(a.state, keySentReport, &old); err != nil {
			return err
		}
		r.Times = append(old.Times, r.At)
		if n := len(r.Times); n > maxReportTimes {
			r.Times = r.Times[n-maxReportTimes:]
		}
		if r.Asked.IsZero() {
			r.Asked = old.Asked
		}
		return putJSON(a.state, keySentReport, &r)
	})
}

// ReportStored records the journal id of a report row this device put, as
// one of the rows it stored (Pushed).
func (db *DB) ReportStored(acct string, at time.Time, journalID int64) error {
	return db.update(func(tx *bolt.Tx) error {
		a, err := writeAccount(tx, acct)
		if err != nil {
			return err
		}
		if err := raiseI64(a.state, keyHighwater, journalID); err != nil {
			return err
		}
		return putI64(a.sent, []byte("report "+at.UTC().Format(time.RFC3339Nano)), journalID)
	})
}

// MessageCount returns how many message files the index holds.
func (db *DB) MessageCount(acct string) (int, error) {
	n := 0
	err := db.view(func(tx *bolt.Tx) error {
		if a := readAccount(tx, acct); a.exists() {
			n = a.filemsg.Stats().KeyN
		}
		return nil
	})
	return n, err
}
