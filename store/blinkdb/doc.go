// Package blinkdb uses a Blink chat client's own history database as an
// account's message store (SPEC §6b): Blink Qt's `messages` table (table
// version 4, in message_history.db) and Blink Cocoa's `chat_messages` table
// (table version 8, in history.sqlite). One package serves both, as two
// dialects of one idea; ../../shared/CLIENTS.md has the facts about the
// tables this package relies on.
//
// The database belongs to the client, which keeps running while chatsync
// uses it. Everything here follows from that:
//
//   - Only rows whose account column (Qt account_id, Cocoa local_uri) is this
//     account's address are read or written; the clients keep every account
//     in one file.
//   - The schema and the journal mode are never changed (the clients use the
//     rollback journal; switching the file to WAL would change their
//     database). The table version is checked at Open, and a version this
//     package was not written for is refused, naming it.
//   - Locks are held briefly. Both clients wait 5 s for a lock and then drop
//     the message they were saving, so a long read is enough to lose one:
//     Snapshot reads in small pages, each its own implicit transaction, and
//     Put and Delete are one short BEGIN IMMEDIATE transaction each.
//     SQLITE_BUSY is retried with backoff, within a bound.
//   - Rows are written as the client writes them: every column filled (there
//     are no SQL defaults), in the client's own value formats.
//
// There is no change feed and no row version in these tables, and the
// clients update rows in place (state, status, body, in bulk and across
// accounts), so changes are found by comparing whole rows: Snapshot returns
// every row of the account keyed by the table's unique key, with a hash of
// the whole row.
//
// The message on the wire is one JSON object for every store format, with
// the field names of SPEC §6; columns with no common field travel under
// "blink_qt" or "blink_cocoa". MAPPING.md beside this file has the column ↔
// field table and the reasons for each choice.
//
// The database is opened with modernc.org/sqlite, a pure Go SQLite, so
// chatsync keeps building with CGO_ENABLED=0 for Linux, macOS and Windows.
package blinkdb
