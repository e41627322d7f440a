package blinkdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file maps a row to the wire message and back. MAPPING.md has the
// same rules as a table; keep the two in step.

// rec is one row as the client stores it: column → text. A NULL column is
// absent from the map (the clients never write NULL, but a migration or
// another writer might).
type rec map[string]string

// ErrUnstorable is a message the client's table cannot hold as it is: it
// is not written, and trying again cannot help. Its kinds are
// ErrIncomplete and a field that is not text (an object or a list).
var ErrUnstorable = errors.New("blinkdb: the message cannot be stored in the client's table")

// ErrIncomplete means an incoming message lacks what the client needs to
// show a row (a direction, a time); it is not written.
var ErrIncomplete = fmt.Errorf("%w: it lacks a field the client needs", ErrUnstorable)

// JournalIDMark is what Blink Cocoa's journal_id holds for a row chatsync
// inserted. It must be non-empty: Blink Cocoa journals a row whose
// journal_id is empty. It must not be a server row id either: when its user
// deletes a conversation, Blink Cocoa sends delete_journal_entries with the
// journal_id of every deleted row, and a real id would let it delete
// chatsync's own journal entry (SPEC §6b). A word that starts with a letter
// matches no numeric id, even where the server casts text to a number.
const JournalIDMark = "chatsync"

// clientTimeLayout is how both clients store a time: SQLObject's naive UTC
// text with microseconds. Blink Qt cannot load a row whose timestamp has any
// other shape (CLIENTS.md).
const clientTimeLayout = "2006-01-02 15:04:05.000000"

// clientTime turns a wire time into the client's layout, in UTC. It
// accepts the client's layout, the same without fraction (the journal
// payload's "time"), and RFC 3339 with or without an offset; a time without
// an offset is taken as UTC, as both clients store it.
func clientTime(s string) (string, error) {
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999",
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format(clientTimeLayout), nil
		}
	}
	return "", fmt.Errorf("%w: time %q is not a date and time", ErrIncomplete, s)
}

// isoTimestamp writes a client time as Python's isoformat() of an aware UTC
// datetime, which is what Blink Cocoa's cpim_timestamp holds.
func isoTimestamp(ts string) string {
	t, err := time.Parse(clientTimeLayout, ts)
	if err != nil {
		return ts
	}
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05-07:00")
	}
	return t.Format("2006-01-02T15:04:05.000000-07:00")
}

// Status vocabularies. The wire uses Blink Cocoa's (it is the journal
// payload's, PROTOCOL.md §6.1); Blink Qt's differ in four words. A word
// neither knows passes unchanged.
func qtStateToWire(s string) string {
	switch s {
	case "pending":
		return "queued"
	case "accepted":
		return "sent"
	case "failed-local":
		return "failed_local"
	}
	return s
}

func qtStateFromWire(s string) string {
	switch s {
	case "queued":
		return "pending"
	case "sent", "deferred":
		return "accepted"
	case "failed_local":
		return "failed-local"
	}
	return s
}

func cocoaStatusFromWire(s string) string {
	switch s {
	case "pending":
		return "queued"
	case "accepted":
		return "sent"
	case "failed-local":
		return "failed_local"
	}
	return s
}

// notRetried keeps this device's client from sending a message that
// another device failed to send: both clients resend their outgoing rows in
// failed-local / failed_local on their own (Qt's _retry_failed_messages,
// Cocoa's failed_local conversations), so such a row arrives as failed.
func notRetried(direction, status string) string {
	if direction == "outgoing" && (status == "failed-local" || status == "failed_local") {
		return "failed"
	}
	return status
}

// Content types. The wire carries a MIME type, as Blink Qt, Blink Cocoa's
// SMS rows and the JSON store do. Blink Cocoa's other rows (chat, and the
// call and transfer notes) say "text" or "html" instead.
func cocoaTypeToWire(ct string) string {
	switch ct {
	case "text":
		return "text/plain"
	case "html":
		return "text/html"
	}
	return ct
}

func cocoaTypeFromWire(mediaType, ct string) string {
	if mediaType == "sms" {
		return ct
	}
	switch ct {
	case "text/plain":
		return "text"
	case "text/html":
		return "html"
	}
	return ct
}

// Encryption. The wire carries Blink Cocoa's words; Blink Qt records which
// encryption a message had (encryption_type, a Python list repr) and
// whether it was decrypted. Only OpenPGP has a counterpart: decrypted is
// Cocoa's "verified", not (yet) decrypted its "pgp_encrypted". TLS and OTR
// transport notes have none; they travel in "blink_qt".
func qtEncryptionToWire(encryptionType, decrypted string) string {
	if !strings.Contains(encryptionType, "OpenPGP") {
		return ""
	}
	if decrypted == "1" {
		return "verified"
	}
	return "pgp_encrypted"
}

func qtEncryptionFromWire(enc string) (encryptionType, decrypted string) {
	switch enc {
	case "verified":
		return "['OpenPGP']", "1"
	case "pgp_encrypted":
		return "['OpenPGP']", "0"
	}
	return "", "0"
}

// identity formats a CPIM identity as Blink Cocoa's server-history path
// does: "Name <user@domain>", or the bare address without a name.
func identity(name, addr string) string {
	if name == "" {
		return addr
	}
	return name + " <" + addr + ">"
}

// parseIdentity splits "Name <sip:user@domain>", `"Name" <user@domain>` or
// "user@domain" into a display name and an address without scheme. Blink
// Cocoa writes "None <…>" for a missing name (a Python None formatted);
// that is no name.
func parseIdentity(s string) (name, addr string) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		name = strings.Trim(strings.TrimSpace(s[:i]), `"`)
		addr = s[i+1 : len(s)-1]
	} else {
		addr = s
	}
	if name == "None" {
		name = ""
	}
	return name, stripScheme(addr)
}

func stripScheme(addr string) string {
	for _, p := range []string{"sip:", "sips:"} {
		if strings.HasPrefix(addr, p) {
			return addr[len(p):]
		}
	}
	return addr
}

// qtBlock are Blink Qt's columns with no common field, always sent under
// "blink_qt" so a second Blink Qt device rebuilds the row exactly. state
// joins them only when the status mapping would not give it back.
var qtBlock = []string{"display_name", "uri", "encryption_type", "decrypted", "decryption_error", "disposition"}

// cocoaBlock are Blink Cocoa's columns with no common field. content_type
// joins them only when the content-type mapping would not give it back.
// uuid and journal_id are not sent at all: they say which device journaled
// the row and under which id, which is only true on this device.
var cocoaBlock = []string{"sip_fromtag", "sip_totag"}

// toWire maps a row to the wire message, and reports whether the row is a
// Blink Qt soft delete (state 'deleted': the client hides it and told the
// server to remove it).
func toWire(t *table, r rec) (map[string]any, bool) {
	w := map[string]any{}
	set := func(field, col string) {
		if v, ok := r[col]; ok {
			w[field] = v
		}
	}
	block := map[string]any{}
	setBlock := func(cols ...string) {
		for _, c := range cols {
			if v, ok := r[c]; ok {
				block[c] = v
			}
		}
	}
	deleted := false
	switch t {
	case qtTable:
		set("msgid", "message_id")
		set("local_uri", "account_id")
		set("remote_uri", "remote_uri")
		set("direction", "direction")
		set("body", "content")
		set("content_type", "content_type")
		if ts, ok := r["timestamp"]; ok {
			w["time"] = ts
			if len(ts) >= 10 {
				w["date"] = ts[:10]
			}
		}
		if st, ok := r["state"]; ok {
			w["status"] = qtStateToWire(st)
			if qtStateFromWire(qtStateToWire(st)) != st {
				block["state"] = st
			}
			deleted = st == "deleted"
		}
		addr := stripScheme(r["uri"])
		if addr == "" {
			addr = sender(r["direction"], r["account_id"], r["remote_uri"])
		}
		w["cpim_from"] = identity(r["display_name"], addr)
		w["encryption"] = qtEncryptionToWire(r["encryption_type"], r["decrypted"])
		setBlock(qtBlock...)
	case cocoaTable:
		for _, c := range []string{"msgid", "direction", "time", "date", "local_uri", "remote_uri",
			"cpim_from", "cpim_to", "cpim_timestamp", "body", "private", "status", "media_type", "encryption"} {
			set(c, c)
		}
		set("call_id", "sip_callid")
		if ct, ok := r["content_type"]; ok {
			w["content_type"] = cocoaTypeToWire(ct)
			if cocoaTypeFromWire(r["media_type"], cocoaTypeToWire(ct)) != ct {
				block["content_type"] = ct
			}
		}
		setBlock(cocoaBlock...)
	}
	w[t.block] = block
	return w, deleted
}

// sender and receiver are the addresses a row's direction implies.
func sender(direction, account, remote string) string {
	if direction == "outgoing" {
		return account
	}
	return remote
}

func receiver(direction, account, remote string) string {
	if direction == "outgoing" {
		return remote
	}
	return account
}

// incoming is a wire message being written over an existing row (old) or
// as a new one.
type incoming struct {
	obj   map[string]any
	prev  map[string]any // toWire(old), nil for a new row
	block map[string]any
	err   error
}

func newIncoming(t *table, obj map[string]any, old rec) *incoming {
	in := &incoming{obj: obj}
	if old != nil {
		in.prev, _ = toWire(t, old)
	}
	in.block, _ = obj[t.block].(map[string]any)
	return in
}

// text turns a JSON value into the text a column holds. Strings are kept;
// a JSON device may write numbers or booleans, which get their plain text
// (booleans as the clients' '1'/'0' flags). null is no value.
func text(v any) (string, bool, error) {
	switch v := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case json.Number:
		return v.String(), true, nil
	case bool:
		if v {
			return "1", true, nil
		}
		return "0", true, nil
	}
	return "", false, fmt.Errorf("%w: a field is a %T, not text", ErrUnstorable, v)
}

func (in *incoming) str(field string) (string, bool) {
	v, ok, err := text(in.obj[field])
	if err != nil && in.err == nil {
		in.err = fmt.Errorf("%q: %w", field, err)
	}
	return v, ok
}

// changed returns a common field's value when the message has it and it
// differs from what the existing row already says. A column is rewritten
// only then, so a mapping that loses detail (the status words, Qt's
// encryption notes) never erases the detail of a row whose meaning did not
// change.
func (in *incoming) changed(field string) (string, bool) {
	v, ok := in.str(field)
	if !ok {
		return "", false
	}
	if pv, had := in.prev[field].(string); had && pv == v {
		return "", false
	}
	return v, true
}

func (in *incoming) fromBlock(col string) (string, bool) {
	v, ok, err := text(in.block[col])
	if err != nil && in.err == nil {
		in.err = fmt.Errorf("%q: %w", col, err)
	}
	return v, ok
}

// fromWire builds the row to write for a wire message: a merge over old
// when the row exists (a field the message lacks keeps the row's value), or
// a new row with every column filled as the client fills it. device is the
// id of the device that wrote the message to the journal; Blink Cocoa keeps
// it in uuid.
func fromWire(t *table, obj map[string]any, old rec, account, device string) (rec, error) {
	in := newIncoming(t, obj, old)
	insert := old == nil
	r := rec{}
	for k, v := range old {
		r[k] = v
	}
	msgid, _ := in.str("msgid")
	remote, _ := in.str("remote_uri")
	remote = stripScheme(remote) // the clients write user@domain
	if msgid == "" || remote == "" {
		return nil, fmt.Errorf("%w: msgid and remote_uri", ErrIncomplete)
	}
	r[t.msgid], r[t.account], r[t.remote] = msgid, account, remote

	if v, ok := in.changed("direction"); ok {
		r["direction"] = v
	} else if insert {
		return nil, fmt.Errorf("%w: direction", ErrIncomplete)
	}
	dir := r["direction"]

	// The time: the wire's, else the one in cpim_timestamp (which is where
	// Blink Cocoa itself takes it from).
	timeCol := "timestamp"
	if t == cocoaTable {
		timeCol = "time"
	}
	newTime := ""
	if v, ok := in.changed("time"); ok {
		ts, err := clientTime(v)
		if err != nil {
			return nil, err
		}
		newTime = ts
	} else if insert {
		v, ok := in.str("cpim_timestamp")
		if !ok {
			return nil, fmt.Errorf("%w: time", ErrIncomplete)
		}
		ts, err := clientTime(v)
		if err != nil {
			return nil, err
		}
		newTime = ts
	}
	if newTime != "" {
		r[timeCol] = newTime
	}

	// field sets col from a common field, or to def on a new row.
	field := func(name, col, def string) {
		if v, ok := in.changed(name); ok {
			r[col] = v
		} else if insert {
			r[col] = def
		}
	}
	statusFromWire := false

	switch t {
	case qtTable:
		field("body", "content", "")
		field("content_type", "content_type", "text/plain")
		if v, ok := in.changed("status"); ok {
			r["state"], statusFromWire = qtStateFromWire(v), true
		} else if insert {
			r["state"] = map[bool]string{true: "accepted", false: "delivered"}[dir == "outgoing"]
		}
		if v, ok := in.changed("cpim_from"); ok {
			name, addr := parseIdentity(v)
			if addr == "" {
				addr = sender(dir, account, remote)
			}
			r["display_name"], r["uri"] = name, "sip:"+addr
		} else if insert {
			r["display_name"], r["uri"] = "", "sip:"+sender(dir, account, remote)
		}
		if v, ok := in.changed("encryption"); ok {
			r["encryption_type"], r["decrypted"] = qtEncryptionFromWire(v)
		} else if insert {
			r["encryption_type"], r["decrypted"] = "", "0"
		}
		if insert {
			// 'None' is what Blink Qt writes for a message that asked for
			// no receipts; it also keeps this device from sending a second
			// read receipt for a message another device received.
			r["decryption_error"], r["disposition"] = "", "None"
		}
		for _, c := range append(qtBlock, "state") {
			if v, ok := in.fromBlock(c); ok {
				r[c] = v
				if c == "state" {
					statusFromWire = true
				}
			}
		}
		if statusFromWire {
			r["state"] = notRetried(dir, r["state"])
		}

	case cocoaTable:
		if newTime != "" {
			r["date"] = newTime[:10]
		}
		field("cpim_timestamp", "cpim_timestamp", isoTimestamp(r["time"]))
		field("body", "body", "")
		// SMS is what Blink Cocoa calls a SIP MESSAGE, which is how Blink Qt
		// and Sylk send; its rows keep MIME types, as the wire does.
		mediaChanged := false
		if v, ok := in.changed("media_type"); ok {
			r["media_type"], mediaChanged = v, true
		} else if insert {
			r["media_type"], mediaChanged = "sms", true
		}
		ct, hasCT := in.str("content_type")
		_, ctChanged := in.changed("content_type")
		switch {
		case ctChanged || mediaChanged && hasCT:
			r["content_type"] = cocoaTypeFromWire(r["media_type"], ct)
		case insert:
			r["content_type"] = cocoaTypeFromWire(r["media_type"], "text/plain")
		}
		if v, ok := in.changed("private"); ok {
			r["private"] = map[bool]string{true: "1", false: "0"}[v == "1" || v == "true"]
		} else if insert {
			r["private"] = "0"
		}
		if v, ok := in.changed("status"); ok {
			r["status"], statusFromWire = cocoaStatusFromWire(v), true
		} else if insert {
			r["status"] = map[bool]string{true: "sent", false: "delivered"}[dir == "outgoing"]
		}
		if statusFromWire {
			r["status"] = notRetried(dir, r["status"])
		}
		// Bare addresses for a missing identity, as Blink Cocoa's own
		// server-history import writes them.
		field("cpim_from", "cpim_from", sender(dir, account, remote))
		field("cpim_to", "cpim_to", receiver(dir, account, remote))
		field("call_id", "sip_callid", "")
		field("encryption", "encryption", "")
		if insert {
			if device == "" {
				return nil, fmt.Errorf("%w: the writing device (Blink Cocoa's uuid)", ErrIncomplete)
			}
			r["sip_fromtag"], r["sip_totag"] = "", ""
			r["uuid"], r["journal_id"] = device, JournalIDMark
		}
		for _, c := range append(cocoaBlock, "content_type") {
			if v, ok := in.fromBlock(c); ok {
				r[c] = v
			}
		}
	}
	if in.err != nil {
		return nil, in.err
	}
	return r, nil
}
