// Package blinktest is a writer that behaves like a Blink client on its own
// history database, for tests of chatsync using that database while the
// client runs (SPEC §6b). It is importable by any package's tests.
//
// The writer opens the file as the clients do (../../../../shared/CLIENTS.md):
// Python's sqlite3 under SQLObject becomes database/sql with
// modernc.org/sqlite on one connection of its own, autocommit (every
// statement its own transaction), the rollback journal as the file has it
// (journal_mode is never touched), and a 5 s busy timeout. It writes every
// column of a row as the client's own code fills it, and changes and
// deletes rows the way the client's code does:
//
//   - Blink Qt (`messages`): add_from_session inserts a row, update() sets
//     state on every row of the msgid (never leaving 'displayed', ignoring
//     'received' for outgoing rows), the user's delete is a soft delete
//     (state 'deleted'), and remove_message destroys the msgid's rows.
//   - Blink Cocoa (`chat_messages`): add_message inserts a row with uuid and
//     journal_id empty (since 2021 it no longer journals its own rows),
//     update_message_status changes status through selectBy(msgid).getOne()
//     (two rows with one msgid make it raise, and the client swallows it:
//     the update is lost, which Lost counts), and delete_message deletes the
//     msgid in every account and then VACUUMs the file.
//
// A statement that fails because the file stays locked past the 5 s wait is
// not retried: the client drops the message or the change it was saving.
// Locked counts those failures, which is what a client-friendly chatsync
// must never cause.
package blinktest

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatsync/chatsync/store/blinkdb"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// TimeLayout is how both clients store a time: naive UTC text, to the
// microsecond (SQLObject's DateTimeCol).
const TimeLayout = "2006-01-02 15:04:05.000000"

// BusyTimeout is the clients' lock wait (Python's sqlite3 default).
const BusyTimeout = 5 * time.Second

// ErrLocked is returned (wrapped) when a statement failed because another
// connection held the file past the busy timeout.
var ErrLocked = errors.New("blinktest: database is locked")

// ErrLost is returned (wrapped) by a Blink Cocoa status change that the
// client would lose: its getOne() finds more than one row for the msgid.
var ErrLost = errors.New("blinktest: the client's update was lost (msgid not unique)")

// Message is what the client saves. Fields left empty get what the client
// writes in that case.
type Message struct {
	// MsgID: Blink Qt uses a uuid4 (the BlinkMessage default); Blink Cocoa
	// the sha1 of the body and the timestamp for chat, the message id for
	// SMS.
	MsgID string
	// Remote is the other party, user@domain.
	Remote string
	// RemoteName is the other party's display name ('' for none).
	RemoteName string
	// Direction is "incoming" or "outgoing".
	Direction string
	Body      string
	// ContentType is in the client's vocabulary: a MIME type for Blink Qt
	// (default text/plain) and for Cocoa SMS; "text" or "html" for Cocoa
	// chat (default text).
	ContentType string
	// MediaType is Blink Cocoa's "chat" (the default) or "sms".
	MediaType string
	// Time is when the message was sent; stored in UTC. Zero: now.
	Time time.Time
	// Status is the client's own word (Qt state, Cocoa status). Empty:
	// Qt 'pending' for outgoing (SQLObject's default) and 'delivered' for
	// incoming; Cocoa 'delivered' (what add_to_history saves at the end).
	Status string
}

// Op is one change the writer made, as kept in its log.
type Op struct {
	Kind   string // "add", "status", "soft-delete", "delete"
	MsgID  string
	Status string // the new status, for "add" and "status"
	At     time.Time
}

// Writer writes into one database as one client would, for one account.
// Its methods may be called from several goroutines.
type Writer struct {
	path     string
	dialect  blinkdb.Dialect
	account  string
	name     string // the account's display name
	instance string // Blink Cocoa's instance id, for its Call-IDs
	db       *sql.DB

	locked, lost atomic.Int64

	mu   sync.Mutex
	msgs map[string]*Message // this writer's messages, as it last wrote them
	gone map[string]bool     // deleted (or soft-deleted) by this writer
	ops  []Op
	rng  *mrand.Rand
	seq  int
}

// Open opens the database at path (which must exist) as the client of
// dialect d would, writing for account (user@domain) whose display name is
// name.
func Open(path string, d blinkdb.Dialect, account, name string) (*Writer, error) {
	if d != blinkdb.BlinkQt && d != blinkdb.BlinkCocoa {
		return nil, fmt.Errorf("blinktest: unknown dialect %q", d)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	q := url.Values{}
	q.Set("mode", "rw")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	// One connection: the client's db thread.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("blinktest: open %s: %w", path, err)
	}
	seed := randUint64()
	return &Writer{
		path: path, dialect: d, account: account, name: name,
		instance: uuid4(), db: db,
		msgs: map[string]*Message{}, gone: map[string]bool{},
		rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}, nil
}

// Close closes the writer's connection.
func (w *Writer) Close() error { return w.db.Close() }

// Locked is how many statements failed because the file stayed locked past
// the 5 s wait: each is a message or a change the client dropped.
func (w *Writer) Locked() int64 { return w.locked.Load() }

// Lost is how many Blink Cocoa status changes the client would have lost
// because the msgid was on more than one row.
func (w *Writer) Lost() int64 { return w.lost.Load() }

// Messages returns the writer's messages that it has not deleted, as it
// last wrote them, by msgid.
func (w *Writer) Messages() map[string]Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]Message, len(w.msgs))
	for id, m := range w.msgs {
		out[id] = *m
	}
	return out
}

// Deleted returns the msgids of the writer's messages that it deleted (a
// soft delete included).
func (w *Writer) Deleted() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]bool, len(w.gone))
	for id := range w.gone {
		out[id] = true
	}
	return out
}

// Ops returns the log of the changes that succeeded, in order.
func (w *Writer) Ops() []Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Op(nil), w.ops...)
}

func (w *Writer) record(op Op) {
	op.At = time.Now()
	w.ops = append(w.ops, op)
}

// isBusy reports whether err is SQLite's "database is locked" (or a
// shared-cache lock): the wait ran out.
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return err != nil && strings.Contains(err.Error(), "database is locked")
}

// check turns a statement's error into the writer's: a lock failure is
// counted and wrapped in ErrLocked.
func (w *Writer) check(err error, what string) error {
	if err == nil {
		return nil
	}
	if isBusy(err) {
		w.locked.Add(1)
		return fmt.Errorf("%w: %s: %v", ErrLocked, what, err)
	}
	return fmt.Errorf("blinktest: %s: %w", what, err)
}

// Add saves a new message as the client does when it sends or receives
// one, and returns it as written (MsgID and the defaults filled in).
func (w *Writer) Add(ctx context.Context, m Message) (Message, error) {
	if m.Remote == "" || (m.Direction != "incoming" && m.Direction != "outgoing") {
		return Message{}, fmt.Errorf("blinktest: a message needs Remote and Direction incoming or outgoing")
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	// SQLObject stores microseconds; keep what is stored.
	m.Time = m.Time.Truncate(time.Microsecond)
	var cols []string
	var vals []any
	if w.dialect == blinkdb.BlinkQt {
		cols, vals = w.qtRow(&m)
	} else {
		cols, vals = w.cocoaRow(&m)
	}
	q := `INSERT INTO ` + w.table() + ` (` + strings.Join(cols, ", ") + `) VALUES (?` +
		strings.Repeat(", ?", len(cols)-1) + `)`
	_, err := w.db.ExecContext(ctx, q, vals...)
	if err := w.check(err, "add "+m.MsgID); err != nil {
		return Message{}, err
	}
	w.mu.Lock()
	mm := m
	w.msgs[m.MsgID] = &mm
	delete(w.gone, m.MsgID)
	w.record(Op{Kind: "add", MsgID: m.MsgID, Status: m.Status})
	w.mu.Unlock()
	return m, nil
}

// qtRow is add_from_session's row (CLIENTS.md, Blink Qt).
func (w *Writer) qtRow(m *Message) ([]string, []any) {
	if m.MsgID == "" {
		m.MsgID = uuid4()
	}
	if m.ContentType == "" {
		m.ContentType = "text/plain"
	}
	if m.Status == "" {
		m.Status = "pending"
		if m.Direction == "incoming" {
			m.Status = "delivered"
		}
	}
	// display_name: outgoing the account's name, incoming the contact's;
	// uri: the sender's URI.
	name, uri := w.name, "sip:"+w.account
	if m.Direction == "incoming" {
		name, uri = m.RemoteName, "sip:"+m.Remote
	}
	return []string{
			"message_id", "account_id", "remote_uri", "display_name", "uri", "timestamp",
			"direction", "content", "content_type", "state", "encryption_type", "decrypted",
			"decryption_error", "disposition",
		}, []any{
			m.MsgID, w.account, m.Remote, name, uri, m.Time.UTC().Format(TimeLayout),
			m.Direction, m.Body, m.ContentType, m.Status, "", "0",
			"", "['positive-delivery', 'display']",
		}
}

// cocoaRow is ChatHistory.add_message's row (CLIENTS.md, Blink Cocoa).
func (w *Writer) cocoaRow(m *Message) ([]string, []any) {
	if m.MediaType == "" {
		m.MediaType = "chat"
	}
	if m.ContentType == "" {
		m.ContentType = "text"
		if m.MediaType == "sms" {
			m.ContentType = "text/plain"
		}
	}
	if m.Status == "" {
		m.Status = "delivered"
	}
	// The sender's clock, in its zone: cpim_timestamp is str(ISOTimestamp),
	// time the same instant in UTC.
	local := m.Time.In(time.FixedZone("", 3600))
	cpimTS := pyISO(local)
	if m.MsgID == "" {
		if m.MediaType == "chat" {
			sum := sha1.Sum([]byte(m.Body + pyStr(local)))
			m.MsgID = hex.EncodeToString(sum[:])
		} else {
			m.MsgID = uuid4()
		}
	}
	self := identity(w.name, w.account)
	other := identity(m.RemoteName, m.Remote)
	from, to := self, other
	if m.Direction == "incoming" {
		from, to = other, self
	}
	utc := m.Time.UTC()
	return []string{
			"msgid", "direction", "time", "date", "sip_callid", "sip_fromtag", "sip_totag",
			"local_uri", "remote_uri", "cpim_from", "cpim_to", "cpim_timestamp", "body",
			"content_type", "private", "status", "media_type", "uuid", "journal_id", "encryption",
		}, []any{
			m.MsgID, m.Direction, utc.Format(TimeLayout), utc.Format("2006-01-02"), w.callID(m.Remote), "", "",
			w.account, m.Remote, from, to, cpimTS, m.Body,
			m.ContentType, "0", m.Status, m.MediaType, "", "", "",
		}
}

// identity is Blink Cocoa's "%s <%s@%s>": "None <…>" with no name.
func identity(name, addr string) string {
	if name == "" {
		name = "None"
	}
	return name + " <" + addr + ">"
}

// callID is the chat session's Call-ID: one session per remote.
func (w *Writer) callID(remote string) string {
	sum := sha1.Sum([]byte(w.instance + remote))
	return hex.EncodeToString(sum[:8]) + "@192.0.2.10"
}

// pyISO is Python's isoformat() of an aware datetime (no fraction when
// the microseconds are 0).
func pyISO(t time.Time) string { return pyFormat(t, "T") }

// pyStr is Python's str() of an aware datetime.
func pyStr(t time.Time) string { return pyFormat(t, " ") }

func pyFormat(t time.Time, sep string) string {
	frac := ".000000"
	if t.Nanosecond()/1000 == 0 {
		frac = ""
	}
	return t.Format("2006-01-02" + sep + "15:04:05" + frac + "-07:00")
}

// SetStatus changes a message's status in place, as the client does when
// the message is sent, delivered or displayed: Blink Qt's update() on
// every row of the msgid (any account), Blink Cocoa's
// update_message_status through getOne(). Other devices' messages may be
// changed too, as the client would.
func (w *Writer) SetStatus(ctx context.Context, msgid, status string) error {
	if w.dialect == blinkdb.BlinkQt {
		return w.qtUpdate(ctx, msgid, status, false)
	}
	rows, err := w.ids(ctx, `SELECT id FROM chat_messages WHERE msgid = ?`, msgid)
	if err != nil {
		return err
	}
	switch {
	case len(rows) == 0:
		return fmt.Errorf("blinktest: no row with msgid %s", msgid)
	case len(rows) > 1:
		w.lost.Add(1)
		return fmt.Errorf("%w: %s is on %d rows", ErrLost, msgid, len(rows))
	}
	_, err = w.db.ExecContext(ctx, `UPDATE chat_messages SET status = ? WHERE id = ?`, status, rows[0])
	if err := w.check(err, "status of "+msgid); err != nil {
		return err
	}
	w.noteStatus(msgid, status)
	return nil
}

// SetState is SetStatus under Blink Qt's name for the column.
func (w *Writer) SetState(ctx context.Context, msgid, state string) error {
	return w.SetStatus(ctx, msgid, state)
}

func (w *Writer) noteStatus(msgid, status string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m, ok := w.msgs[msgid]; ok {
		m.Status = status
	}
	w.record(Op{Kind: "status", MsgID: msgid, Status: status})
}

// qtUpdate is Blink Qt's MessageHistory.update: each row of the msgid, in
// any account, one UPDATE by id per row that changes. It never leaves
// 'displayed' except for the user's delete.
func (w *Writer) qtUpdate(ctx context.Context, msgid, state string, softDelete bool) error {
	type row struct {
		id               int64
		direction, state string
	}
	rs, err := w.db.QueryContext(ctx, `SELECT id, direction, state FROM messages WHERE message_id = ?`, msgid)
	if err := w.check(err, "read "+msgid); err != nil {
		return err
	}
	var rows []row
	for rs.Next() {
		var r row
		var dir, st sql.NullString
		if err := rs.Scan(&r.id, &dir, &st); err != nil {
			rs.Close()
			return w.check(err, "read "+msgid)
		}
		r.direction, r.state = dir.String, st.String
		rows = append(rows, r)
	}
	err = rs.Err()
	rs.Close()
	if err := w.check(err, "read "+msgid); err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("blinktest: no row with message_id %s", msgid)
	}
	for _, r := range rows {
		if !softDelete && ((r.direction == "outgoing" && state == "received") || r.state == "displayed" || r.state == state) {
			continue
		}
		_, err := w.db.ExecContext(ctx, `UPDATE messages SET state = ? WHERE id = ?`, state, r.id)
		if err := w.check(err, "state of "+msgid); err != nil {
			return err
		}
	}
	if softDelete {
		w.noteGone(msgid, "soft-delete")
	} else {
		w.noteStatus(msgid, state)
	}
	return nil
}

func (w *Writer) noteGone(msgid, kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.msgs, msgid)
	w.gone[msgid] = true
	w.record(Op{Kind: kind, MsgID: msgid})
}

// SoftDelete is Blink Qt's delete by its user: the row stays, with state
// 'deleted' (update(id, 'deleted')). Blink Cocoa has no soft delete.
func (w *Writer) SoftDelete(ctx context.Context, msgid string) error {
	if w.dialect != blinkdb.BlinkQt {
		return fmt.Errorf("blinktest: %s has no soft delete", w.dialect)
	}
	return w.qtUpdate(ctx, msgid, "deleted", true)
}

// Delete removes the msgid's rows in every account, as the clients do:
// Blink Qt's remove_message (a delete from another device) destroys each
// row by id; Blink Cocoa's delete_message deletes them and then VACUUMs
// the file.
func (w *Writer) Delete(ctx context.Context, msgid string) error {
	if w.dialect == blinkdb.BlinkQt {
		ids, err := w.ids(ctx, `SELECT id FROM messages WHERE message_id = ?`, msgid)
		if err != nil {
			return err
		}
		for _, id := range ids {
			_, err := w.db.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id)
			if err := w.check(err, "delete "+msgid); err != nil {
				return err
			}
		}
	} else {
		_, err := w.db.ExecContext(ctx, `DELETE FROM chat_messages WHERE msgid = ?`, msgid)
		if err := w.check(err, "delete "+msgid); err != nil {
			return err
		}
		// The deleted rows are gone whether or not the VACUUM works.
		w.noteGone(msgid, "delete")
		_, err = w.db.ExecContext(ctx, `VACUUM`)
		return w.check(err, "vacuum after deleting "+msgid)
	}
	w.noteGone(msgid, "delete")
	return nil
}

func (w *Writer) ids(ctx context.Context, q string, args ...any) ([]int64, error) {
	rs, err := w.db.QueryContext(ctx, q, args...)
	if err := w.check(err, "read"); err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []int64
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			return nil, w.check(err, "read")
		}
		out = append(out, id)
	}
	return out, w.check(rs.Err(), "read")
}

func (w *Writer) table() string {
	if w.dialect == blinkdb.BlinkQt {
		return "messages"
	}
	return "chat_messages"
}

// RunOptions says what Run does.
type RunOptions struct {
	// Rate is operations per second (default 10).
	Rate float64
	// Remotes are the parties to talk with (default bob@example.com).
	Remotes []string
	// Ops stops Run after this many operations tried (0: until ctx ends).
	Ops int
}

// Stats counts what Run did.
type Stats struct {
	Tried, Added, StatusChanges, SoftDeletes, Deletes int
	// Failed counts the operations that returned an error (lock failures
	// among them; see Locked).
	Failed int
	// Errors holds the first few errors, for the report.
	Errors []string
}

// Run writes at opts.Rate until ctx ends (or opts.Ops operations), mixing
// what a user of the client does: new messages in and out, status
// changes along the client's own sequence, and deletes (Blink Qt's soft
// delete, Blink Cocoa's delete with its VACUUM). It only changes and
// deletes the messages it added, so every later change of a message is
// this writer's. Failed operations are counted, not retried (the client
// does not retry either). Run returns when ctx ends, once the operation
// under way has finished, so the writer's log holds every change made.
func (w *Writer) Run(ctx context.Context, opts RunOptions) Stats {
	if opts.Rate <= 0 {
		opts.Rate = 10
	}
	if len(opts.Remotes) == 0 {
		opts.Remotes = []string{"bob@example.com"}
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / opts.Rate))
	defer tick.Stop()
	var st Stats
	for opts.Ops == 0 || st.Tried < opts.Ops {
		select {
		case <-ctx.Done():
			return st
		case <-tick.C:
		}
		st.Tried++
		kind, msgid, status := w.next(opts.Remotes)
		// The operation itself runs to its end, as the client's does: a
		// statement interrupted by ctx may have committed already, and its
		// result would be lost from the writer's log.
		ctx := context.WithoutCancel(ctx)
		var err error
		switch kind {
		case "add":
			_, err = w.Add(ctx, w.newMessage(opts.Remotes))
			if err == nil {
				st.Added++
			}
		case "status":
			if err = w.SetStatus(ctx, msgid, status); err == nil {
				st.StatusChanges++
			}
		case "delete":
			if w.dialect == blinkdb.BlinkQt {
				if err = w.SoftDelete(ctx, msgid); err == nil {
					st.SoftDeletes++
				}
			} else if err = w.Delete(ctx, msgid); err == nil {
				st.Deletes++
			}
		}
		if err != nil {
			st.Failed++
			if len(st.Errors) < 5 {
				st.Errors = append(st.Errors, err.Error())
			}
		}
	}
	return st
}

// next picks the next operation: mostly new messages while there are few,
// then status changes and some deletes.
func (w *Writer) next(remotes []string) (kind, msgid, status string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var movable []string
	var all []string
	for id, m := range w.msgs {
		all = append(all, id)
		if nextStatus(w.dialect, m) != "" {
			movable = append(movable, id)
		}
	}
	// Map order is not seeded; sort for a pick that depends on rng only.
	slices.Sort(all)
	slices.Sort(movable)
	r := w.rng.Float64()
	switch {
	case len(all) < 5 || r < 0.45:
		return "add", "", ""
	case r < 0.85 && len(movable) > 0:
		id := movable[w.rng.IntN(len(movable))]
		return "status", id, nextStatus(w.dialect, w.msgs[id])
	default:
		return "delete", all[w.rng.IntN(len(all))], ""
	}
}

// nextStatus is the next word of the client's own sequence for m, or ""
// at its end. Blink Qt: pending → accepted → delivered → displayed
// (outgoing), delivered → displayed (incoming). Blink Cocoa saves an
// outgoing message once sent (sent or delivered), then delivered →
// displayed.
func nextStatus(d blinkdb.Dialect, m *Message) string {
	seq := map[string]string{"delivered": "displayed"}
	if m.Direction == "outgoing" {
		if d == blinkdb.BlinkQt {
			seq["pending"], seq["accepted"] = "accepted", "delivered"
		} else {
			seq["sent"] = "delivered"
		}
	}
	return seq[m.Status]
}

// newMessage makes the next message of Run: incoming or outgoing, with the
// content types and (Cocoa) media types the client uses.
func (w *Writer) newMessage(remotes []string) Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	m := Message{
		Remote:    remotes[w.rng.IntN(len(remotes))],
		Direction: "incoming",
		Body:      fmt.Sprintf("%s message %d from %s, it's <fine> & \"quoted\"", w.dialect, w.seq, w.account),
	}
	m.RemoteName = strings.ToUpper(m.Remote[:1]) + m.Remote[1:strings.IndexByte(m.Remote+"@", '@')]
	if w.rng.IntN(2) == 0 {
		m.Direction = "outgoing"
	}
	html := w.rng.IntN(4) == 0
	if w.dialect == blinkdb.BlinkQt {
		if html {
			m.ContentType = "text/html"
		}
		if m.Direction == "outgoing" && w.rng.IntN(4) == 0 {
			m.Status = "accepted"
		}
	} else {
		switch {
		case w.rng.IntN(4) == 0:
			m.MediaType, m.ContentType = "sms", "text/plain"
		case html:
			m.MediaType, m.ContentType = "chat", "html"
		default:
			m.MediaType, m.ContentType = "chat", "text"
		}
		if m.Direction == "outgoing" {
			m.Status = []string{"sent", "delivered", "delivered", "failed"}[w.rng.IntN(4)]
		}
		if m.RemoteName == "" || w.rng.IntN(5) == 0 {
			m.RemoteName = "" // cpim "None <…>"
		}
	}
	return m
}

// uuid4 is Python's str(uuid.uuid4()).
func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randUint64() uint64 {
	var b [8]byte
	rand.Read(b[:])
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}
