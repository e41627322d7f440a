// Package accountserver is chatsync-server: our own implementation of the
// SIP Account API that AG Projects' cdrtool serves as settings.phtml
// (see PROTOCOL.md). It exists so the daemon can be tested, demonstrated
// and self-hosted against a server that behaves like the real one.
//
// # What it reproduces
//
//   - HTTP Digest authentication exactly as the real page does it:
//     realm from the realm parameter, a stateless nonce
//     base64(T ":" md5hex(T ":" key)) valid for 300 s, the 200 replies for
//     malformed headers and unknown domains, 401 with an empty body
//     otherwise, and the three ways of choosing HA1 (web password, stored
//     ha1, clear-text password).
//   - Every action of the seed with PROTOCOL.md's reply shapes, including
//     the stray "Key K changed V" text of set_call_forwarding and the HTML
//     header printed before "invalid action" for action names without an
//     API marker.
//   - JSON written like PHP's json_encode: "\/", \uXXXX for non-ASCII,
//     journal ids as strings.
//   - get_voicemail's Options as the structure the real server returns
//     (PROTOCOL §12): a JSON object with the keys of the voicemail options
//     table in accounts.toml (options = { delete = false }), and
//     {"delete":false} when the table is absent.
//   - The client_journal table: one global increasing id, second-resolution
//     UTC timestamps, ORDER BY timestamp with a 5000 row cap, put that is
//     not idempotent.
//
// # Where it differs by default
//
// The real server is broken in three places (PROTOCOL §8). By default this
// server does what was intended; Options.StrictCompat (--strict-compat)
// reproduces the real behaviour:
//
//	limit 0<limit<5000      default: honoured      strict: no rows (LIMIT 0)
//	delete_journal_entries  default: deletes       strict: {"error_message":"database error"}
//	get_monthly_usage       default: calls, price  strict: HTTP 500, empty body
//
// # Reproducing the real server under load and faults
//
// These options (and chatsync-server flags) reproduce what the real
// server was measured to do under load and faults (PROTOCOL §12), so the
// daemon can be tested against it. Each works on its own; StrictCompat
// does not set them, but chatsync-server --strict-compat turns on the
// first two unless their flags are given.
//
//	PageBytesLimit     --page-bytes-limit N  a get_journal_entries reply over N bytes is
//	                                         HTTP 500 with an empty body (PHP out of memory:
//	                                         it needs ~5x the rows' bytes, so the stock
//	                                         memory_limit=128M fails at about 20 MB of rows;
//	                                         --strict-compat: 20,000,000)
//	ShuffleSameSecond  --shuffle-same-second same-second rows in random order; a page cut
//	                                         inside a second holds a random subset of that
//	                                         second (it may lack lower ids and hold higher
//	                                         ones); earlier seconds are complete
//	                                         (ShuffleSeed / --shuffle-seed makes it
//	                                         reproducible; --strict-compat turns it on)
//	PageRows           --page-rows N         rows per page (default 5000); an honoured limit
//	                                         gives min(limit, N)
//	IgnoreAfterID      --ignore-after-id     after_id is ignored, like the historical Mongo
//	                                         backend: pages start at the first row
//	MaxRowBytes        --max-row-bytes N     a put element with data over N bytes is not
//	                                         stored, its result has "journal_id":null
//	                                         (MariaDB max_allowed_packet)
//	HaltOnError        --halt-on-error       with MaxRowBytes: the put stops at that element
//	                                         like PHP with Halt_On_Error=yes; rows before it
//	                                         are stored, it and the rest are not, and the reply
//	                                         is HTTP 200 with the text
//	                                         "MySQL error: 1153 (Got a packet bigger than
//	                                         'max_allowed_packet' bytes)\nSession halted.\n"
//
// # Long poll ("instant sync"), an extension
//
// get_journal_entries takes an optional wait=SECONDS (whole seconds, cut
// to MaxWait, 60; 0, negative or not an integer means no wait, never an
// error). When the page is empty the request is held until a put stores
// a row the same query returns (same account, id > after_id, a uuid other
// than except_uuid, ...), the wait passes, the client goes away or
// EndWaits is called; then it is answered as a plain get would be at that
// moment. A page with rows is answered at once. Every reply of a honoured
// wait carries the header "X-Chatsync-Wait: N" (WaitHeader), N the seconds
// allowed, so a client can tell a server that long-polls from one that
// ignores the parameter, as the real server does. StrictCompat ignores the
// parameter and sends no header. Authentication comes first: a 401 is
// never held. Puts wake waits through a per-account channel closed on
// each put, so a held request costs a goroutine and no polling.
//
// Journal timestamps never go backwards: a row gets the clock's time, or
// the newest timestamp already stored if the clock stepped back. So id
// order is timestamp order, and a page is a bbolt cursor scan from
// after_id+1 that never holds more than one page in memory.
//
// # Storage
//
// The data directory holds nonce.key (the digest nonce secret, 0600, kept
// so nonces survive a restart) and chatsync-server.db, a bbolt file whose
// layout is documented in store.go. Read actions answer from the
// accounts.toml seed; write actions (add_alias, set_call_forwarding,
// set_dnd_on/off, set_privacy_on/off) store the fields they change in the
// database, and stored fields win over the seed.
package accountserver
