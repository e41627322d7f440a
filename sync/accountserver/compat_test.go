package accountserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests in this file cover the options that reproduce the real
// server's behaviour under load and faults (PROTOCOL §12).

// putN stores n rows for alice in one batch with uuid, data "<prefix><i>".
func (e *env) putN(uuid, prefix string, n int) {
	e.t.Helper()
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"data":"%s%d"}`, i, prefix, i)
	}
	b.WriteByte(']')
	r := e.alice("put_journal_entries", "form:uuid", uuid, "form:data", b.String())
	if r.status != 200 || !strings.HasSuffix(r.body, `"success":true}`) || strings.Count(r.body, `"journal_id":"`) != n {
		e.t.Fatalf("put %d rows: %d %.200s", n, r.status, r.body)
	}
}

type pageRow struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	UUID      string `json:"uuid"`
}

// page decodes a get reply, wanting HTTP 200 and a consistent "rows".
func page(t testing.TB, r reply) []pageRow {
	t.Helper()
	var p struct {
		Success bool      `json:"success"`
		Results []pageRow `json:"results"`
		Rows    int       `json:"rows"`
	}
	if r.status != 200 {
		t.Fatalf("get: HTTP %d %.200q", r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &p); err != nil || !p.Success || p.Rows != len(p.Results) {
		t.Fatalf("get: %v %.200s", err, r.body)
	}
	return p.Results
}

func TestPageBytesLimit(t *testing.T) { eachBackend(t, tPageBytesLimit) }

func tPageBytesLimit(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	e.putN("A", strings.Repeat("x", 1000), 10)
	full := e.alice("get_journal_entries")
	part := e.alice("get_journal_entries", "after_id", "6")
	if len(page(t, full)) != 10 || len(page(t, part)) != 4 {
		t.Fatal("unexpected pages without a limit")
	}
	size := int64(len(full.body))

	// A limit of exactly the page's size serves it.
	e.opts.PageBytesLimit = size
	e.restart()
	wantBody(t, e.alice("get_journal_entries"), 200, full.body)

	// One byte less: the whole page fails like PHP out of memory, while
	// a smaller page is still served.
	e.opts.PageBytesLimit = size - 1
	e.restart()
	r := e.alice("get_journal_entries")
	if r.status != 500 || r.body != "" {
		t.Errorf("page of %d bytes over a limit of %d: got %d %.100q, want 500 and an empty body", size, size-1, r.status, r.body)
	}
	wantBody(t, e.alice("get_journal_entries", "after_id", "6"), 200, part.body)
	// An empty page is always small enough.
	wantBody(t, e.alice("get_journal_entries", "after_id", "10"), 200, getBody())
}

func TestPageRows(t *testing.T) { eachBackend(t, tPageRows) }

func tPageRows(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.PageRows = 300 })
	e.putN("A", "r", 1000)
	wantIDs(t, e.alice("get_journal_entries"), seq(1, 300))
	wantIDs(t, e.alice("get_journal_entries", "after_id", "300"), seq(301, 600))
	wantIDs(t, e.alice("get_journal_entries", "after_id", "900"), seq(901, 1000))
	// A limit is honoured up to the cap.
	wantIDs(t, e.alice("get_journal_entries", "limit", "100"), seq(1, 100))
	wantIDs(t, e.alice("get_journal_entries", "limit", "299", "after_id", "1"), seq(2, 300))
	wantIDs(t, e.alice("get_journal_entries", "limit", "6000"), seq(1, 300))

	// Strict: the limit bug still gives no rows, no limit gives the cap.
	e.opts.StrictCompat = true
	e.restart()
	wantIDs(t, e.alice("get_journal_entries"), seq(1, 300))
	wantBody(t, e.alice("get_journal_entries", "limit", "100"), 200, getBody())
	wantIDs(t, e.alice("get_journal_entries", "limit", "6000"), seq(1, 300))
}

// TestShuffleSameSecond puts 100 rows into one second and 400 into the
// next, and reads with a cap of 300: the page holds the whole first
// second and 200 of the second one, not the lowest 200.
func TestShuffleSameSecond(t *testing.T) {
	const seed = 7
	e := newEnv(t, func(o *Options) { o.PageRows = 300; o.ShuffleSameSecond = true; o.ShuffleSeed = seed })
	e.putN("A", "first-", 100) // ids 1-100 at ts0
	e.clock.Add(time.Second)
	e.putN("A", "second-", 400) // ids 101-500 at ts0+1s
	e.clock.Add(time.Second)
	e.putN("A", "third-", 50) // ids 501-550 at ts0+2s
	ts1 := "2026-11-25 19:58:38"

	r := e.alice("get_journal_entries")
	rows := page(t, r)
	if len(rows) != 300 {
		t.Fatalf("page of %d rows, want the cap of 300", len(rows))
	}
	got := map[int]bool{}
	descents := 0
	prev := 0
	for i, row := range rows {
		var id int
		fmt.Sscan(row.ID, &id)
		got[id] = true
		if i > 0 && row.Timestamp < rows[i-1].Timestamp {
			t.Errorf("row %d (id %d): timestamp %s after %s", i, id, row.Timestamp, rows[i-1].Timestamp)
		}
		if id < prev {
			descents++
		}
		prev = id
		if (id <= 100) != (row.Timestamp == ts0) || id > 100 && row.Timestamp != ts1 {
			t.Errorf("id %d has timestamp %s", id, row.Timestamp)
		}
	}
	for id := 1; id <= 100; id++ {
		if !got[id] {
			t.Errorf("id %d of the earlier second is missing", id)
		}
	}
	var lacking, above []int // of the last second: missing below 300, present above 300
	for id := 101; id <= 500; id++ {
		if id <= 300 && !got[id] {
			lacking = append(lacking, id)
		}
		if id > 300 && got[id] {
			above = append(above, id)
		}
	}
	if len(lacking) == 0 || len(above) == 0 || len(lacking) != len(above) {
		t.Errorf("the cut second holds %d ids above 300 and lacks %d below; want the same positive number", len(above), len(lacking))
	}
	if got[501] {
		t.Error("a row of a later second is in the page")
	}
	if descents == 0 {
		t.Error("the page is in id order")
	}
	t.Logf("cut page: %d ids of the last second missing below 300, %d places where the id goes down", len(lacking), descents)

	// A page that is not cut holds every row, in second order.
	rows = page(t, e.alice("get_journal_entries", "after_id", "400"))
	var ids []int
	for i, row := range rows {
		var id int
		fmt.Sscan(row.ID, &id)
		ids = append(ids, id)
		if i > 0 && row.Timestamp < rows[i-1].Timestamp {
			t.Errorf("uncut page: id %d at %s after %s", id, row.Timestamp, rows[i-1].Timestamp)
		}
	}
	if slices.IsSorted(ids) {
		t.Error("uncut page: same-second rows in id order")
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != fmt.Sprint(seq(401, 550)) {
		t.Errorf("uncut page holds %v", ids)
	}

	// Filters still apply, and the same seed gives the same pages.
	rows = page(t, e.alice("get_journal_entries", "except_uuid", "A"))
	if len(rows) != 0 {
		t.Errorf("except_uuid A: %d rows", len(rows))
	}
	e.restart()
	if again := e.alice("get_journal_entries"); again.body != r.body {
		t.Error("the same seed gave a different page")
	}
}

func TestIgnoreAfterID(t *testing.T) { eachBackend(t, tIgnoreAfterID) }

func tIgnoreAfterID(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.IgnoreAfterID = true; o.PageRows = 4 })
	e.putN("A", "a", 3) // ids 1-3
	e.clock.Add(time.Second)
	e.putN("B", "b", 3) // ids 4-6
	wantIDs(t, e.alice("get_journal_entries"), seq(1, 4))
	wantIDs(t, e.alice("get_journal_entries", "after_id", "4"), seq(1, 4))
	wantIDs(t, e.alice("get_journal_entries", "after_id", "5", "except_uuid", "A"), seq(4, 6))
	wantIDs(t, e.alice("get_journal_entries", "after_id", "6", "after_timestamp", ts0), seq(4, 6))
}

func TestMaxRowBytes(t *testing.T) { eachBackend(t, tMaxRowBytes) }

func tMaxRowBytes(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.MaxRowBytes = 10 })
	batch := `[{"id":"a","data":"short"},{"id":"b","data":"eleven byte"},{"id":"c","data":"ten bytes!"},{"id":"d","data":"` + strings.Repeat("x", 100) + `"}]`
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "A", "form:data", batch), 200,
		`{"results":[{"id":"a","journal_id":"1","source":"default"},{"id":"b","journal_id":null,"source":"default"},{"id":"c","journal_id":"2","source":"default"},{"id":"d","journal_id":null,"source":"default"}],"success":true}`)
	wantBody(t, e.alice("get_journal_entries"), 200, getBody(rowJSON(1, "A", "short"), rowJSON(2, "A", "ten bytes!")))
}

func TestHaltOnError(t *testing.T) { eachBackend(t, tHaltOnError) }

func tHaltOnError(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.MaxRowBytes = 10; o.HaltOnError = true })
	batch := `[{"id":"a","data":"short"},{"id":"b","data":"ten bytes!"},{"id":"c","data":"eleven byte"},{"id":"d","data":"ok"}]`
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "A", "form:data", batch), 200,
		"MySQL error: 1153 (Got a packet bigger than 'max_allowed_packet' bytes)\nSession halted.\n")
	wantBody(t, e.alice("get_journal_entries"), 200, getBody(rowJSON(1, "A", "short"), rowJSON(2, "A", "ten bytes!")))
	// A batch of small rows is stored as usual.
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"id":"e","data":"ok"}]`), 200,
		`{"results":[{"id":"e","journal_id":"3","source":"default"}],"success":true}`)
	// Without MaxRowBytes, HaltOnError changes nothing.
	e.opts.MaxRowBytes = 0
	e.restart()
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"id":"f","data":"eleven byte"}]`), 200,
		`{"results":[{"id":"f","journal_id":"4","source":"default"}],"success":true}`)
}
