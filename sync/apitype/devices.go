package apitype

import "time"

// Devices is the reply of GET /v1/devices for one account: every chatsync
// device of the account seen in the journal, this one first.
type Devices struct {
	Account string       `json:"account"`
	Devices []SyncDevice `json:"devices"`
	// Refreshed is when this device last asked the others for fresh
	// reports (`chatsync devices --refresh`); zero if it never did.
	Refreshed time.Time `json:"refreshed,omitzero"`
}

// SyncDevice is one chatsync device of an account (not a SIP device
// registration: see Device), as this device knows it
// from the journal: from the rows it wrote and from its last report.
type SyncDevice struct {
	DeviceID string `json:"device_id"`
	// Name is the device_name it reported (the host name by default); ""
	// until it sent a report.
	Name    string `json:"name"`
	Version string `json:"version"`
	// LastSeen is when it last wrote a row or a report, by its clock.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// KeyIDs are the key ids it holds, by its report, or else those it
	// sealed under.
	KeyIDs []string `json:"key_ids"`
	// Behind is how many of this device's versions (messages whose newest
	// version this device wrote) it had not applied when it last said how
	// far it had applied the journal; -1 when it never said (a device of an
	// older chatsync, or one whose rows cannot be opened here).
	Behind int `json:"behind"`
	// BehindSince is when the oldest of those versions was written.
	BehindSince time.Time `json:"behind_since,omitzero"`
	// Unconfirmed of those were written after it last said how far it
	// had applied (AppliedAt): it may well have them by now. A running
	// device says so again within an hour of applying them (its report),
	// or as soon as it is asked (`chatsync devices --refresh`).
	Unconfirmed int  `json:"unconfirmed,omitempty"`
	Self        bool `json:"self"`

	// Applied is the journal id up to which it had applied the journal,
	// and AppliedAt when it said so (its report, or a row it wrote).
	Applied   int64     `json:"applied"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// Reported is when it made its last report; Messages is how many
	// messages its store held then (-1 unknown).
	Reported time.Time `json:"reported,omitzero"`
	Messages int       `json:"messages"`
	// Rows counts the journal rows this device has seen from it.
	Rows int64 `json:"rows"`
	// MissingKeys are key ids it sealed rows under that this device does
	// not hold: those rows wait here until the key is imported.
	MissingKeys []string `json:"missing_keys,omitempty"`
}

// Verify kinds: how the store and the journal differ for one message.
const (
	VerifyMissingHere   = "missing_here"             // the journal holds it, the store does not
	VerifyNeverPushed   = "never_pushed"             // the store holds it, the journal does not
	VerifyDiffers       = "differs"                  // both hold it, with other content
	VerifyUndecryptable = "undecryptable"            // a row this device cannot open
	VerifyDeletedHere   = "deleted_here_alive_there" // deleted here, alive in the journal
)

// VerifyResult is the reply of POST /v1/verify: the store compared with
// the latest version of every message in the journal.
type VerifyResult struct {
	Account               string          `json:"account"`
	InSync                bool            `json:"in_sync"`
	MissingHere           int             `json:"missing_here"`
	NeverPushed           int             `json:"never_pushed"`
	Differs               int             `json:"differs"`
	Undecryptable         int             `json:"undecryptable"`
	DeletedHereAliveThere int             `json:"deleted_here_alive_there"`
	Examples              []VerifyExample `json:"examples"`

	// Rows is how many journal rows were read, Messages how many distinct
	// messages they hold (alive or deleted), Local how many the store
	// holds.
	Rows     int64 `json:"rows"`
	Messages int   `json:"messages"`
	Local    int   `json:"local"`
	// UndecryptableKeys counts the rows that cannot be opened, by key id
	// ("" for rows that are not chatsync entries or do not authenticate).
	UndecryptableKeys map[string]int `json:"undecryptable_keys,omitempty"`
	// Pending counts the messages that differ only because their change
	// is queued here, not yet sent: not a difference.
	Pending int `json:"pending,omitempty"`
	// Repaired counts what --repair fixed: written here (Applied) and
	// queued to be sent (Queued).
	Applied int `json:"applied,omitempty"`
	Queued  int `json:"queued,omitempty"`
	// Hint says what to do about what remains.
	Hint string `json:"hint,omitempty"`
}

// VerifyExample names one message that differs, and how.
type VerifyExample struct {
	MsgID string `json:"msgid"`
	Kind  string `json:"kind"`
	// KeyID is the key id of an undecryptable row.
	KeyID string `json:"key_id,omitempty"`
	// JournalID is the row of the journal's latest version, if any.
	JournalID int64 `json:"journal_id,omitempty"`
}

// VerifyProgress is one line of the progress of a verify (NDJSON on
// POST /v1/verify?progress=1, before the result).
type VerifyProgress struct {
	Phase string `json:"phase"` // "journal", "store", "repair"
	Rows  int64  `json:"rows"`
	Pages int64  `json:"pages"`
	Done  int    `json:"done,omitempty"`
	Total int    `json:"total,omitempty"`
}
