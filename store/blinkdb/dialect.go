package blinkdb

import "fmt"

// Dialect names a client's database format. Its values are the
// store_format names of the config (SPEC §6b).
type Dialect string

const (
	// BlinkQt is Blink Qt's message_history.db, table `messages`.
	BlinkQt Dialect = "blink-qt"
	// BlinkCocoa is Blink Cocoa's history.sqlite, table `chat_messages`.
	BlinkCocoa Dialect = "blink-cocoa"
)

// table holds the facts about one dialect's table that the SQL needs.
type table struct {
	name string // the message table
	// versionTable and version are where the client records the version of
	// its table (a row table_name = name, as SQLObject's TableVersion classes
	// of both clients keep it) and the one version this package knows.
	versionTable string
	version      int
	// The columns of the table's unique index, which is the key of a row:
	// (msgid, account, remote).
	msgid, account, remote string
	// columns are every column but id, in the table's order. The row hash
	// covers all of them, so a change to any column is seen.
	columns []string
	// block is the wire key for the columns that have no common field.
	block string
}

var qtTable = &table{
	name:         "messages",
	versionTable: "table_versions",
	version:      4,
	msgid:        "message_id",
	account:      "account_id",
	remote:       "remote_uri",
	columns: []string{
		"message_id", "account_id", "remote_uri", "display_name", "uri",
		"timestamp", "direction", "content", "content_type", "state",
		"encryption_type", "decrypted", "decryption_error", "disposition",
	},
	block: "blink_qt",
}

var cocoaTable = &table{
	name:         "chat_messages",
	versionTable: "versions",
	version:      8,
	msgid:        "msgid",
	account:      "local_uri",
	remote:       "remote_uri",
	columns: []string{
		"msgid", "direction", "time", "date", "sip_callid", "sip_fromtag",
		"sip_totag", "local_uri", "remote_uri", "cpim_from", "cpim_to",
		"cpim_timestamp", "body", "content_type", "private", "status",
		"media_type", "uuid", "journal_id", "encryption",
	},
	block: "blink_cocoa",
}

func (d Dialect) table() (*table, error) {
	switch d {
	case BlinkQt:
		return qtTable, nil
	case BlinkCocoa:
		return cocoaTable, nil
	}
	return nil, fmt.Errorf("blinkdb: unknown dialect %q (want %q or %q)", string(d), BlinkQt, BlinkCocoa)
}
