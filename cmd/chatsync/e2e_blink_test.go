package main_test

// Issue #12's end-to-end proof, with the real binaries: three daemons of
// one account on one chatsync-server — one on a Blink Qt database
// (store_format blink-qt), one on a Blink Cocoa database (blink-cocoa),
// one on a directory (json) — while writers that behave like the clients
// keep writing into both databases, each of which also holds another
// account's rows.
//
// Sizes: CHATSYNC_BLINK_SECONDS (default 20) of writing, at
// CHATSYNC_BLINK_RATE (default 8) operations per second per client writer
// (the JSON device gets half of it).

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/blinktest"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
	"github.com/chatsync/chatsync/store/msgdir"
)

const blinkOther = "carol@example.com" // the other account in both databases

var blinkRemotes = []string{"bob@example.com", "dave@example.org", "erin@example.net"}

// wireView is a message's common wire fields (MAPPING.md), the ones every
// store format keeps: what the three stores must agree on.
type wireView struct {
	MsgID, Remote, Direction, Body, ContentType, Time, Status string
}

func (v wireView) String() string {
	return fmt.Sprintf("{%s %s %s %q %s %s %s}", v.MsgID, v.Remote, v.Direction, v.Body, v.ContentType, v.Time, v.Status)
}

// qtStatus is MAPPING.md's vocabulary: Blink Qt state → wire status.
var qtStatus = map[string]string{
	"pending": "queued", "accepted": "sent", "delivered": "delivered", "displayed": "displayed",
	"failed": "failed", "failed-local": "failed_local", "deleted": "deleted",
}

// cocoaContentType is MAPPING.md's reading of Blink Cocoa's chat content
// types.
func cocoaContentType(ct string) string {
	switch ct {
	case "text":
		return "text/plain"
	case "html":
		return "text/html"
	}
	return ct
}

// openRead opens a client database for the test's own reads, with the
// clients' 5 s wait.
func openRead(t *testing.T, path string) *sql.DB {
	t.Helper()
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// readViews reads this account's live messages from a client database,
// straight from the columns (not through chatsync's reading code), mapped
// to the wire as MAPPING.md says. A Blink Qt row in state 'deleted' is a
// deleted message.
func readViews(db *sql.DB, d blinkdb.Dialect) (map[string]wireView, error) {
	q := `SELECT message_id, remote_uri, direction, content, content_type, CAST(timestamp AS TEXT), state
		FROM messages WHERE account_id = ?`
	if d == blinkdb.BlinkCocoa {
		q = `SELECT msgid, remote_uri, direction, body, content_type, CAST(time AS TEXT), status
			FROM chat_messages WHERE local_uri = ?`
	}
	rows, err := db.Query(q, e2eAccount)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]wireView{}
	for rows.Next() {
		var c [7]sql.NullString
		if err := rows.Scan(&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]); err != nil {
			return nil, err
		}
		s := func(i int) string {
			if !c[i].Valid {
				return "<NULL>"
			}
			return c[i].String
		}
		v := wireView{s(0), s(1), s(2), s(3), s(4), s(5), s(6)}
		if d == blinkdb.BlinkQt {
			if v.Status == "deleted" {
				continue
			}
			if w, ok := qtStatus[v.Status]; ok {
				v.Status = w
			}
		} else {
			v.ContentType = cocoaContentType(v.ContentType)
		}
		if old, dup := out[v.MsgID]; dup {
			return nil, fmt.Errorf("msgid %s is on two rows of the account: %v and %v", v.MsgID, old, v)
		}
		out[v.MsgID] = v
	}
	return out, rows.Err()
}

// jsonViews reads the JSON device's messages.
func jsonViews(d *e2eDevice) map[string]wireView {
	content, _ := d.messages()
	out := map[string]wireView{}
	for id, c := range content {
		out[id] = viewOf(json.RawMessage(c))
	}
	return out
}

func viewOf(msg json.RawMessage) wireView {
	var m map[string]any
	json.Unmarshal(msg, &m)
	s := func(k string) string {
		v, ok := m[k]
		if !ok {
			return "<absent>"
		}
		if str, ok := v.(string); ok {
			return str
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return wireView{s("msgid"), s("remote_uri"), s("direction"), s("body"), s("content_type"), s("time"), s("status")}
}

// expectedQt and expectedCocoa are what the writers believe they left in
// their databases, as the wire says it.
func expectedViews(w *blinktest.Writer, d blinkdb.Dialect) map[string]wireView {
	out := map[string]wireView{}
	for id, m := range w.Messages() {
		v := wireView{id, m.Remote, m.Direction, m.Body, m.ContentType, m.Time.UTC().Format(blinktest.TimeLayout), m.Status}
		if d == blinkdb.BlinkQt {
			v.Status = qtStatus[m.Status]
		} else {
			v.ContentType = cocoaContentType(m.ContentType)
		}
		out[id] = v
	}
	return out
}

// viewDiff describes how got differs from want, in a few lines.
func viewDiff(got, want map[string]wireView, ids *[]string) string {
	var out []string
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range want {
			if !yield(id) {
				return
			}
		}
		for id := range got {
			if _, ok := want[id]; !ok && !yield(id) {
				return
			}
		}
	}) {
		g, gok := got[id]
		w, wok := want[id]
		if !gok || !wok || g != w {
			*ids = append(*ids, id)
		}
		switch {
		case !gok:
			out = append(out, "missing "+w.String())
		case !wok:
			out = append(out, "extra "+g.String())
		case g != w:
			out = append(out, "differs: "+g.String()+", want "+w.String())
		}
	}
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("… and %d more", len(out)-8))
	}
	return strings.Join(out, "\n  ")
}

// jsonWriter plays the user of the JSON device: new message files, status
// edits and deletes, only of its own messages.
type jsonWriter struct {
	d    *e2eDevice
	rng  *mrand.Rand
	mu   sync.Mutex
	msgs map[string]map[string]any
	path map[string]string
	ops  map[string]int // successful changes per msgid
	seq  int
	errs []string
}

func (j *jsonWriter) add() {
	j.seq++
	id := fmt.Sprintf("json-%03d@e2e.test", j.seq)
	m := map[string]any{
		"msgid": id, "local_uri": e2eAccount, "remote_uri": blinkRemotes[j.rng.IntN(len(blinkRemotes))],
		"direction": "outgoing", "status": "sent", "content_type": "text/plain",
		"body": fmt.Sprintf("json message %d, \"quoted\" & <angled>", j.seq),
		"time": time.Now().UTC().Format(blinktest.TimeLayout),
	}
	if j.rng.IntN(2) == 0 {
		m["direction"], m["status"] = "incoming", "delivered"
	}
	j.write(id, fmt.Sprintf("%s/j-%03d.json", m["remote_uri"], j.seq), m)
}

func (j *jsonWriter) write(id, rel string, m map[string]any) {
	data, _ := json.MarshalIndent(m, "", "  ")
	if err := msgdir.WriteAtomic(j.d.store, rel, data); err != nil {
		j.errs = append(j.errs, err.Error())
		return
	}
	j.mu.Lock()
	j.msgs[id], j.path[id] = m, rel
	j.ops[id]++
	j.mu.Unlock()
}

func (j *jsonWriter) step() {
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range j.msgs {
			if !yield(id) {
				return
			}
		}
	})
	r := j.rng.Float64()
	switch {
	case len(ids) < 3 || r < 0.45:
		j.add()
	case r < 0.85:
		id := ids[j.rng.IntN(len(ids))]
		next := map[string]string{"sent": "delivered", "delivered": "displayed"}[j.msgs[id]["status"].(string)]
		if next == "" {
			j.add()
			return
		}
		m := map[string]any{}
		for k, v := range j.msgs[id] {
			m[k] = v
		}
		m["status"] = next
		j.write(id, j.path[id], m)
	default:
		id := ids[j.rng.IntN(len(ids))]
		if err := os.Remove(filepath.Join(j.d.store, j.path[id])); err != nil {
			j.errs = append(j.errs, err.Error())
			return
		}
		j.mu.Lock()
		delete(j.msgs, id)
		j.ops[id]++
		j.mu.Unlock()
	}
}

func (j *jsonWriter) views() map[string]wireView {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]wireView{}
	for id, m := range j.msgs {
		b, _ := json.Marshal(m)
		out[id] = viewOf(b)
	}
	return out
}

// dumpRows returns the rows of table matching where, every column through
// quote() (byte-exact and typed), ordered by id.
func dumpRows(t *testing.T, db *sql.DB, table, where string, args ...any) []map[string]string {
	t.Helper()
	rows, err := blinktest.Dump(db, table, where, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// blinkDevice makes a device whose store is a client database.
func blinkDevice(t *testing.T, name string, srv *e2eServer, key, format, db string) *e2eDevice {
	t.Helper()
	d := newE2EDevice(t, name, srv, key, fmt.Sprintf("store_format = %q", format))
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.config, []byte(strings.Replace(string(cfg), fmt.Sprintf("store = %q", d.store), fmt.Sprintf("store = %q", db), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(d.store)
	d.store = db
	return d
}

// cliIdle reports whether `chatsync status --json` says d's account is
// idle with nothing to send, and why not otherwise.
func cliIdle(t *testing.T, d *e2eDevice) (bool, string) {
	st, ok := accountStatus(cliStatus(t, d.config), e2eAccount)
	if !ok {
		return false, d.name + ": no status"
	}
	if st.State != "idle" || st.OutboxDepth != 0 || st.StartError != "" || st.Error != "" {
		return false, fmt.Sprintf("%s: state %s, outbox %d, start error %q, error %q", d.name, st.State, st.OutboxDepth, st.StartError, st.Error)
	}
	return true, ""
}

func logTail(d *e2eDevice, n int) string {
	lines := strings.Split(strings.TrimRight(d.log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// converge waits, until the deadline, for the three stores to hold want
// and the three daemons to be idle. It fails saying what still differs.
// explain, given the msgids that differ, says what happened to them.
func converge(t *testing.T, timeout time.Duration, what string, qtDB, cocoaDB *sql.DB, qt, cocoa, js *e2eDevice,
	want func() map[string]wireView, explain func([]string) string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		w := want()
		qv, err1 := readViews(qtDB, blinkdb.BlinkQt)
		cv, err2 := readViews(cocoaDB, blinkdb.BlinkCocoa)
		jv := jsonViews(js)
		var diffs, ids []string
		for _, d := range []*e2eDevice{qt, cocoa, js} {
			if st, ok := d.status(t); ok && st.StartError != "" {
				diffs = append(diffs, d.name+" cannot start: "+st.StartError)
			}
		}
		if err1 != nil || err2 != nil {
			diffs = append(diffs, fmt.Sprintf("reading the databases: %v, %v", err1, err2))
		}
		for _, c := range []struct {
			name string
			got  map[string]wireView
		}{{"the Blink Qt database", qv}, {"the Blink Cocoa database", cv}, {"the JSON directory", jv}} {
			if !maps2Equal(c.got, w) {
				diffs = append(diffs, fmt.Sprintf("%s (%d messages, want %d):\n  %s", c.name, len(c.got), len(w), viewDiff(c.got, w, &ids)))
			}
		}
		if len(diffs) == 0 {
			for _, d := range []*e2eDevice{qt, cocoa, js} {
				if ok, not := cliIdle(t, d); !ok {
					diffs = append(diffs, not)
				}
			}
			if len(diffs) == 0 {
				return time.Since(start)
			}
		}
		why := strings.Join(diffs, "\n")
		if time.Now().After(deadline) {
			for _, d := range []*e2eDevice{qt, cocoa, js} {
				t.Logf("last lines of %s's log:\n%s", d.name, logTail(d, 40))
			}
			slices.Sort(ids)
			t.Fatalf("timed out after %s waiting for %s; %s\n%s", timeout, what, why, explain(slices.Compact(ids)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func maps2Equal(a, b map[string]wireView) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var (
	clientTimeRe = regexp.MustCompile(`^'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}'$`)
	numberRe     = regexp.MustCompile(`^'?\s*[+-]?\d+(\.\d*)?\s*'?$`)
	listReprRe   = regexp.MustCompile(`^\[('[^']*'(, )?)*\]$`)
)

// unq reverses SQLite's quote() for a text value.
func unq(v string) string {
	if len(v) < 2 || v[0] != '\'' {
		return v
	}
	return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
}

// checkQtRow checks a row chatsync inserted into Blink Qt's table against
// how Blink Qt fills one (CLIENTS.md).
func checkQtRow(r map[string]string) []string {
	var bad []string
	for c, v := range r {
		if c != "id" && !strings.HasPrefix(v, "'") {
			bad = append(bad, fmt.Sprintf("%s = %s, want text", c, v))
		}
	}
	oneOf := func(c string, vals ...string) {
		for _, v := range vals {
			if r[c] == "'"+v+"'" {
				return
			}
		}
		bad = append(bad, fmt.Sprintf("%s = %s, want one of %q", c, r[c], vals))
	}
	if !clientTimeRe.MatchString(r["timestamp"]) {
		bad = append(bad, "timestamp = "+r["timestamp"]+", want YYYY-MM-DD HH:MM:SS.ffffff")
	}
	oneOf("account_id", e2eAccount)
	oneOf("direction", "incoming", "outgoing")
	oneOf("state", "pending", "accepted", "delivered", "displayed", "failed", "failed-local")
	oneOf("decrypted", "0", "1", "2", "3")
	if !strings.Contains(r["content_type"], "/") {
		bad = append(bad, "content_type = "+r["content_type"]+", want a MIME type")
	}
	if r["encryption_type"] != "''" && !listReprRe.MatchString(unq(r["encryption_type"])) {
		bad = append(bad, "encryption_type = "+r["encryption_type"]+", want '' or a Python list repr")
	}
	if r["disposition"] != "'None'" && !listReprRe.MatchString(unq(r["disposition"])) {
		bad = append(bad, "disposition = "+r["disposition"]+", want 'None' or a Python list repr")
	}
	if !strings.HasPrefix(r["uri"], "'sip:") {
		bad = append(bad, "uri = "+r["uri"]+", want sip:…")
	}
	if strings.Contains(r["remote_uri"], ":") {
		bad = append(bad, "remote_uri = "+r["remote_uri"]+", want no scheme")
	}
	return bad
}

// checkCocoaRow checks a row chatsync inserted into Blink Cocoa's table
// against how Blink Cocoa fills one, and SPEC §6b's journal_id and uuid.
func checkCocoaRow(r map[string]string, devices []string) []string {
	var bad []string
	for c, v := range r {
		if c != "id" && !strings.HasPrefix(v, "'") {
			bad = append(bad, fmt.Sprintf("%s = %s, want text", c, v))
		}
	}
	oneOf := func(c string, vals ...string) {
		for _, v := range vals {
			if r[c] == "'"+v+"'" {
				return
			}
		}
		bad = append(bad, fmt.Sprintf("%s = %s, want one of %q", c, r[c], vals))
	}
	if !clientTimeRe.MatchString(r["time"]) {
		bad = append(bad, "time = "+r["time"]+", want YYYY-MM-DD HH:MM:SS.ffffff")
	}
	if len(r["time"]) > 11 && r["date"] != r["time"][:11]+"'" {
		bad = append(bad, "date = "+r["date"]+", want the day of time "+r["time"])
	}
	if ts := strings.Trim(r["cpim_timestamp"], "'"); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$`).MatchString(ts) {
		bad = append(bad, "cpim_timestamp = "+r["cpim_timestamp"]+", want ISO 8601 with an offset")
	}
	oneOf("local_uri", e2eAccount)
	oneOf("direction", "incoming", "outgoing")
	oneOf("private", "0", "1")
	oneOf("status", "queued", "sent", "delivered", "displayed", "failed", "failed_local", "deferred")
	oneOf("media_type", "chat", "sms")
	if r["media_type"] == "'chat'" {
		oneOf("content_type", "text", "html")
	} else if !strings.Contains(r["content_type"], "/") {
		bad = append(bad, "content_type = "+r["content_type"]+" for an SMS row, want a MIME type")
	}
	if r["cpim_from"] == "''" || r["cpim_to"] == "''" {
		bad = append(bad, "cpim_from/cpim_to empty")
	}
	if r["journal_id"] == "''" || numberRe.MatchString(r["journal_id"]) {
		bad = append(bad, "journal_id = "+r["journal_id"]+", want non-empty and not a number")
	}
	if !slices.Contains(devices, strings.ToLower(unq(r["uuid"]))) {
		bad = append(bad, "uuid = "+r["uuid"]+", want the id of the device that wrote the message")
	}
	return bad
}

func TestBlinkQtBlinkCocoaAndJSONDevicesConvergeWhileTheClientsWriteWithNoLockFailureNoEchoAndTheOtherAccountUntouched(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	seconds := envInt("CHATSYNC_BLINK_SECONDS", 20)
	rate := float64(envInt("CHATSYNC_BLINK_RATE", 8))
	ctx := context.Background()

	dbDir := t.TempDir()
	qtPath := filepath.Join(dbDir, "message_history.db")
	cocoaPath := filepath.Join(dbDir, "history.sqlite")
	for p, d := range map[string]blinkdb.Dialect{qtPath: blinkdb.BlinkQt, cocoaPath: blinkdb.BlinkCocoa} {
		if err := testschema.CreateForTest(p, d); err != nil {
			t.Fatal(err)
		}
	}

	// Another account's history in both files, written by the client, and
	// history of this account from before chatsync.
	qtW, err := blinktest.Open(qtPath, blinkdb.BlinkQt, e2eAccount, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	defer qtW.Close()
	cocoaW, err := blinktest.Open(cocoaPath, blinkdb.BlinkCocoa, e2eAccount, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	defer cocoaW.Close()
	otherIDs := map[string]bool{}
	for _, c := range []struct {
		path string
		d    blinkdb.Dialect
	}{{qtPath, blinkdb.BlinkQt}, {cocoaPath, blinkdb.BlinkCocoa}} {
		ow, err := blinktest.Open(c.path, c.d, blinkOther, "Carol")
		if err != nil {
			t.Fatal(err)
		}
		st := ow.Run(ctx, blinktest.RunOptions{Rate: 1000, Ops: 40, Remotes: blinkRemotes})
		for id := range ow.Messages() {
			otherIDs[id] = true
		}
		for id := range ow.Deleted() {
			otherIDs[id] = true
		}
		ow.Close()
		if st.Failed != 0 {
			t.Fatalf("seeding %s's rows: %v", blinkOther, st.Errors)
		}
	}
	for _, w := range []*blinktest.Writer{qtW, cocoaW} {
		if st := w.Run(ctx, blinktest.RunOptions{Rate: 1000, Ops: 30, Remotes: blinkRemotes}); st.Failed != 0 {
			t.Fatalf("seeding the history: %v", st.Errors)
		}
	}
	qtDB, cocoaDB := openRead(t, qtPath), openRead(t, cocoaPath)
	otherQt := dumpRows(t, qtDB, "messages", "account_id != ?", e2eAccount)
	otherCocoa := dumpRows(t, cocoaDB, "chat_messages", "local_uri != ?", e2eAccount)
	if len(otherQt) == 0 || len(otherCocoa) == 0 {
		t.Fatalf("no rows of %s to watch: %d, %d", blinkOther, len(otherQt), len(otherCocoa))
	}

	qt := blinkDevice(t, "Blink Qt", srv, key, "blink-qt", qtPath)
	cocoa := blinkDevice(t, "Blink Cocoa", srv, key, "blink-cocoa", cocoaPath)
	js := newE2EDevice(t, "JSON", srv, key)
	jw := &jsonWriter{d: js, rng: mrand.New(mrand.NewPCG(12, 34)), msgs: map[string]map[string]any{},
		path: map[string]string{}, ops: map[string]int{}}
	for range 10 {
		jw.add()
	}
	want := func() map[string]wireView {
		out := expectedViews(qtW, blinkdb.BlinkQt)
		for id, v := range expectedViews(cocoaW, blinkdb.BlinkCocoa) {
			out[id] = v
		}
		for id, v := range jw.views() {
			out[id] = v
		}
		return out
	}
	kr, err := seal.LoadKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	explain := func(msgids []string) string {
		names := map[string]string{}
		for _, d := range []*e2eDevice{qt, cocoa, js} {
			names[strings.ToLower(deviceID(t, d))] = d.name
		}
		var b strings.Builder
		for _, id := range msgids[:min(len(msgids), 5)] {
			fmt.Fprintf(&b, "%s:\n", id)
			for _, c := range []struct {
				name string
				w    *blinktest.Writer
			}{{"Blink Qt writer", qtW}, {"Blink Cocoa writer", cocoaW}} {
				for _, op := range c.w.Ops() {
					if op.MsgID == id {
						fmt.Fprintf(&b, "  %s %s: %s %s\n", op.At.Format("15:04:05.000"), c.name, op.Kind, op.Status)
					}
				}
			}
			for _, r := range srv.rows(t) {
				if e, err := kr.Open(r.Data, e2eAccount); err == nil && e.MsgID == id {
					fmt.Fprintf(&b, "  journal row %d at %s (device time %s) by %s: %s %s\n", r.ID, r.Timestamp,
						e.Time.Format("15:04:05.000"), names[strings.ToLower(e.Device)], e.Op, viewOf(e.Message).Status)
				}
			}
		}
		return b.String()
	}
	qt.start()
	cocoa.start()
	js.start()
	first := converge(t, 90*time.Second, "the history from before chatsync on all three devices", qtDB, cocoaDB, qt, cocoa, js, want, explain)
	t.Logf("the history from before chatsync (%d messages) converged in %v", len(want()), first.Round(time.Millisecond))

	// The clients keep writing while the daemons sync.
	runCtx, stop := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var qtStats, cocoaStats blinktest.Stats
	wg.Add(3)
	go func() {
		defer wg.Done()
		qtStats = qtW.Run(runCtx, blinktest.RunOptions{Rate: rate, Remotes: blinkRemotes})
	}()
	go func() {
		defer wg.Done()
		cocoaStats = cocoaW.Run(runCtx, blinktest.RunOptions{Rate: rate, Remotes: blinkRemotes})
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / (rate / 2)))
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				jw.step()
			}
		}
	}()
	wg.Wait()
	took := converge(t, 120*time.Second, "every message, change and delete on all three devices", qtDB, cocoaDB, qt, cocoa, js, want, explain)
	final := want()
	t.Logf("Blink Qt writer: %+v, %d lock failures", qtStats, qtW.Locked())
	t.Logf("Blink Cocoa writer: %+v, %d lock failures, %d lost updates", cocoaStats, cocoaW.Locked(), cocoaW.Lost())
	t.Logf("JSON writer: %d changes; %d messages live at the end; converged %v after the writers stopped",
		func() (n int) {
			for _, c := range jw.ops {
				n += c
			}
			return
		}(), len(final), took.Round(time.Millisecond))

	// No client lost a message or a change to a lock.
	if qtW.Locked() != 0 || cocoaW.Locked() != 0 || cocoaW.Lost() != 0 {
		t.Errorf("lock failures: Blink Qt %d, Blink Cocoa %d; Blink Cocoa updates lost %d; want 0 (Qt: %v, Cocoa: %v)",
			qtW.Locked(), cocoaW.Locked(), cocoaW.Lost(), qtStats.Errors, cocoaStats.Errors)
	}
	if qtStats.Failed != 0 || cocoaStats.Failed != 0 || len(jw.errs) != 0 {
		t.Errorf("failed writes: Blink Qt %v, Blink Cocoa %v, JSON %v", qtStats.Errors, cocoaStats.Errors, jw.errs)
	}
	if qtStats.SoftDeletes == 0 || cocoaStats.Deletes == 0 || qtStats.StatusChanges == 0 || cocoaStats.StatusChanges == 0 {
		t.Errorf("the writers did not mix their operations: Qt %+v, Cocoa %+v", qtStats, cocoaStats)
	}

	// The journal: each message's rows come from the one device that
	// changed it (every writer changes only its own messages), each a new
	// version: no device wrote back a version it had received, and none
	// wrote one version twice. The other account's messages are not there.
	ids := map[string]*e2eDevice{}
	for _, d := range []*e2eDevice{qt, cocoa, js} {
		ids[strings.ToLower(deviceID(t, d))] = d
	}
	owner := map[string]*e2eDevice{}
	changes := map[string]int{}
	for _, c := range []struct {
		w *blinktest.Writer
		d *e2eDevice
	}{{qtW, qt}, {cocoaW, cocoa}} {
		for _, op := range c.w.Ops() {
			owner[op.MsgID] = c.d
			changes[op.MsgID]++
		}
	}
	for id, n := range jw.ops {
		owner[id], changes[id] = js, n
	}
	type version struct {
		op   string
		view wireView
		dev  string
		row  int64
	}
	journal := map[string][]version{}
	rows := srv.rows(t)
	for _, r := range rows {
		e, err := kr.Open(r.Data, e2eAccount)
		if err != nil {
			t.Errorf("journal row %d does not open: %v", r.ID, err)
			continue
		}
		v := version{op: string(e.Op), dev: strings.ToLower(e.Device), row: r.ID}
		if e.Op == seal.OpPut {
			v.view = viewOf(e.Message)
			var m map[string]any
			json.Unmarshal(e.Message, &m)
			if m["local_uri"] == blinkOther {
				t.Errorf("journal row %d carries a message of %s: %s", r.ID, blinkOther, e.Message)
			}
		}
		if otherIDs[e.MsgID] || !seal.SameAccount(e.Account, e2eAccount) {
			t.Errorf("journal row %d is the other account's message %s (account %s)", r.ID, e.MsgID, e.Account)
		}
		journal[e.MsgID] = append(journal[e.MsgID], v)
	}
	echoes, foreign, twice, maxPer := 0, 0, 0, 0
	for id, vs := range journal {
		maxPer = max(maxPer, len(vs))
		o := owner[id]
		if o == nil {
			t.Errorf("journal rows for msgid %s, which no writer wrote", id)
			continue
		}
		for i, v := range vs {
			d := ids[v.dev]
			name := v.dev
			if d != nil {
				name = d.name
			}
			if d != o {
				// A version another device wrote, though only o changed
				// the message: it either repeats what it received (an
				// echo) or is its own rendering of it.
				repeats := false
				for _, p := range vs[:i] {
					if p.dev != v.dev && p.op == v.op && p.view == v.view {
						repeats = true
					}
				}
				if repeats {
					echoes++
					t.Errorf("echo: journal row %d for %s by %s repeats a version it received from %s (%s %v)", v.row, id, name, o.name, v.op, v.view)
				} else {
					foreign++
					t.Errorf("journal row %d for %s by %s, which never changed it (the message is %s's): %s %v", v.row, id, name, o.name, v.op, v.view)
				}
			} else if i > 0 && vs[i-1].dev == v.dev && vs[i-1].op == v.op && vs[i-1].view == v.view {
				twice++
				t.Errorf("journal rows %d and %d for %s by %s hold the same version %s %v", vs[i-1].row, v.row, id, name, v.op, v.view)
			}
		}
		if len(vs) > changes[id] {
			t.Errorf("the journal holds %d rows for %s, whose writer changed it %d times", len(vs), id, changes[id])
		}
	}
	t.Logf("journal: %d rows for %d msgids (at most %d for one); %d echoes, %d rows by a device that did not change the message, %d versions written twice",
		len(rows), len(journal), maxPer, echoes, foreign, twice)

	// The other account's rows, in full, are as the client left them.
	for _, c := range []struct {
		name   string
		got    []map[string]string
		before []map[string]string
	}{
		{"Blink Qt", dumpRows(t, qtDB, "messages", "account_id != ?", e2eAccount), otherQt},
		{"Blink Cocoa", dumpRows(t, cocoaDB, "chat_messages", "local_uri != ?", e2eAccount), otherCocoa},
	} {
		if len(c.got) != len(c.before) {
			t.Errorf("%s: %s has %d rows, had %d", c.name, blinkOther, len(c.got), len(c.before))
			continue
		}
		for i := range c.before {
			for col, v := range c.before[i] {
				if c.got[i][col] != v {
					t.Errorf("%s: a row of %s changed: %s was %s, is %s", c.name, blinkOther, col, v, c.got[i][col])
				}
			}
		}
	}

	// Every row chatsync inserted is a row the client could have written.
	devices := slices.Collect(func(yield func(string) bool) {
		for _, d := range []*e2eDevice{qt, js} {
			if !yield(strings.ToLower(deviceID(t, d))) {
				return
			}
		}
	})
	inserted := 0
	for _, c := range []struct {
		name  string
		own   *e2eDevice
		rows  []map[string]string
		idCol string
		check func(map[string]string) []string
	}{
		{"Blink Qt", qt, dumpRows(t, qtDB, "messages", "account_id = ?", e2eAccount), "message_id", checkQtRow},
		{"Blink Cocoa", cocoa, dumpRows(t, cocoaDB, "chat_messages", "local_uri = ?", e2eAccount), "msgid",
			func(r map[string]string) []string { return checkCocoaRow(r, devices) }},
	} {
		n := 0
		for _, r := range c.rows {
			id := strings.Trim(r[c.idCol], "'")
			if owner[id] == c.own {
				continue
			}
			n++
			if bad := c.check(r); len(bad) > 0 {
				t.Errorf("%s row %s that chatsync inserted, unlike the client's:\n  %s", c.name, id, strings.Join(bad, "\n  "))
			}
		}
		if n == 0 {
			t.Errorf("%s: no row that chatsync inserted to check", c.name)
		}
		inserted += n
	}
	t.Logf("%d rows chatsync inserted into the two databases checked column by column", inserted)
}
