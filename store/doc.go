// Package store keeps the whole state of a chatsync daemon in one bbolt file,
// chatsync.db, in the state directory: the device id and, per account, the
// journal cursor, the durable outbox with its in-flight batch, the versions
// this device holds and the index of the message files.
//
// Only one process may open the file (bbolt takes an exclusive lock); a
// second daemon on the same state directory fails in Options.Timeout with
// ErrLocked. The CLI never opens the file; it asks the daemon.
//
// # Schema (version 2)
//
//	v1                                   root; a layout change is a migration (migrate.go)
//	├── meta
//	│   ├── schema_version : uint64      2
//	│   └── device_id      : string      "urn:uuid:<random v4>", made at the first Open
//	└── accounts
//	    └── <account address>            one bucket per account, fully independent
//	        ├── state
//	        │   ├── cursor     : int64   highest journal id applied (ApplyRemote)
//	        │   ├── highwater  : int64   highest journal id known (cursor, own rows); batch watermark
//	        │   ├── outbox_len : uint64  number of outbox entries
//	        │   └── inflight   : JSON    {seqs, tokens, watermark, started}; absent when none
//	        ├── outbox
//	        │   └── <seq uint64> : record {token, msgid, op, envelope, hash, enqueued, attempts, last_error, retry_at, time, key_id}
//	        ├── pending                  msgid → newest outbox entry of that msgid
//	        │   └── <msgid> : uint64     seq
//	        ├── sent                     token → journal id of the stored row
//	        │   └── <token> : int64
//	        ├── versions                 the version of each message this device holds
//	        │   └── <msgid> : record     {journal_id, hash, deleted, own, device, time, key_id}
//	        ├── files                    file index
//	        │   └── <path> : record      {msgid, hash, size, mtime}
//	        ├── filemsg                  reverse file index
//	        │   └── <msgid> : string     path
//	        ├── unapplied                rows kept to be applied later (unapplied.go)
//	        └── peers                    the other chatsync devices of the account (peers.go)
//	            └── <device id> : JSON   {rows, last_row, last_seen, sealed_keys, applied, applied_at, report, reported}
//
// Integers (keys and values) are 8 bytes big-endian, so outbox keys sort in
// enqueue order; seqs come from the outbox bucket's NextSequence. The
// records there is one of per message (outbox, versions, files) are binary
// (record.go: a 0x01 byte, then the fields in the order above; schema 1
// wrote them as JSON, which is still read); the other values are JSON
// objects, times RFC 3339. Paths are relative to the account's message
// store and slash-separated.
//
// # Sending exactly once
//
// put_journal_entries is not idempotent, so the engine follows this protocol:
//
//  1. Enqueue/EnqueueMany store the sealed envelope before anything is sent.
//  2. NextBatch records the batch as in flight (with the watermark) before
//     the POST.
//  3. On a reply, CompleteBatch stores the journal ids, the held versions
//     and removes the stored entries, in one transaction. On a failure that
//     certainly stored nothing, FailBatch. On an ambiguous failure, nothing:
//     the batch stays in flight.
//  4. A batch in flight at start-up (InFlight), or after an ambiguous
//     failure, is reconciled: the engine reads this device's rows above the
//     watermark, matches envelopes exactly, and calls CompleteBatch with the
//     matches; unmatched entries stay queued and are sent again.
//
// # Transactions
//
// Each method is one bbolt transaction; none nests another, none does
// network or file I/O inside, and everything returned is copied out of the
// transaction. The walks (Files, Unpushed) read in pages and yield between
// transactions.
package store
