package accountserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const ts0 = "2026-11-25 19:58:37"

// rowJSON is how get_journal_entries shows one of alice's rows written at
// ts0 from 127.0.0.1.
func rowJSON(id int, uuid, data string) string {
	return fmt.Sprintf(`{"id":"%d","source":"default","timestamp":"%s","account":"alice@example.com","uuid":"%s","ip_address":"127.0.0.1","data":"%s"}`, id, ts0, uuid, data)
}

func getBody(rows ...string) string {
	return `{"success":true,"error_message":null,"results":[` + strings.Join(rows, ",") + `],"rows":` + strconv.Itoa(len(rows)) + `}`
}

// ids extracts the "id" values of a get reply, in order.
func ids(t testing.TB, body string) []int {
	t.Helper()
	var out []int
	for _, part := range strings.Split(body, `{"id":"`)[1:] {
		n, err := strconv.Atoi(part[:strings.IndexByte(part, '"')])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func wantIDs(t testing.TB, r reply, want []int) {
	t.Helper()
	got := ids(t, r.body)
	if r.status != 200 || fmt.Sprint(got) != fmt.Sprint(want) || !strings.HasSuffix(r.body, `"rows":`+strconv.Itoa(len(want))+"}") {
		t.Errorf("got %d ids %v (%.200s), want %v", r.status, got, r.body, want)
	}
}

// TestJournalRecorded replays PROTOCOL §11.1 in strict mode and compares
// bytes where the table gives them.
func TestJournalRecorded(t *testing.T) { eachBackend(t, tJournalRecorded) }

func tJournalRecorded(t *testing.T, newEnv envMaker) {
	e := newEnv(t, func(o *Options) { o.StrictCompat = true })
	put := func(uuid, data string) reply {
		kv := []string{"form:uuid", uuid, "form:data", data}
		if uuid == "" {
			kv = kv[2:]
		}
		if data == "" {
			kv = kv[:len(kv)-2]
		}
		return e.alice("put_journal_entries", kv...)
	}
	wantBody(t, put("A", `[{"id":"m1","data":"hello/world"},{"id":2,"data":"café \"q\" <b>"},{"id":"m/3","data":"x\\y"}]`), 200,
		`{"results":[{"id":"m1","journal_id":"1","source":"default"},{"id":2,"journal_id":"2","source":"default"},{"id":"m\/3","journal_id":"3","source":"default"}],"success":true}`)
	wantBody(t, put("B", `[{"id":"b1","data":"one"},{"id":"b2","data":"two"}]`), 200,
		`{"results":[{"id":"b1","journal_id":"4","source":"default"},{"id":"b2","journal_id":"5","source":"default"}],"success":true}`)
	wantBody(t, put("B", `{"k1":{"id":"k1","data":"K1"},"k2":{"id":"k2","data":"K2"}}`), 200,
		`{"results":[{"id":"k1","journal_id":"6","source":"default"},{"id":"k2","journal_id":"7","source":"default"}],"success":true}`)
	wantBody(t, put("A", `[{"id":"n1"},{"id":"n2","data":"N2"}]`), 200,
		`{"results":[{"id":"n2","journal_id":"8","source":"default"}],"success":true}`)
	wantBody(t, put("", `[{"data":"x"}]`), 200, `{"results":[],"success":false,"error_message":"Missing uuid"}`)
	wantBody(t, put("A", ""), 200, `{"results":[],"success":false,"error_message":"Missing data"}`)
	for _, bad := range []string{`[{"data":`, `[]`, `0`, `""`, `null`, `false`} {
		wantBody(t, put("A", bad), 200, `{"results":[],"success":false,"error_message":"Json decode error"}`)
	}
	wantBody(t, put("A", `{}`), 200, `{"results":[],"success":true}`)

	// Reads at this point of the recording (8 rows).
	wantIDs(t, e.alice("get_journal_entries", "after_id", "2"), seq(3, 8))
	wantBody(t, e.alice("get_journal_entries", "limit", "10"), 200, `{"success":true,"error_message":null,"results":[],"rows":0}`)
	wantIDs(t, e.alice("get_journal_entries", "limit", "6000"), seq(1, 8))

	wantBody(t, put("A", `[{"data":12.50},{"data":true},{"id":{"x":1},"data":"idobj"}]`), 200,
		`{"results":[{"id":null,"journal_id":"9","source":"default"},{"id":null,"journal_id":"10","source":"default"},{"id":{"x":1},"journal_id":"11","source":"default"}],"success":true}`)
	wantBody(t, put("A", `["abc",{"id":"s2","data":"after string"}]`), 200,
		`{"results":[{"id":"s2","journal_id":"12","source":"default"}],"success":true}`)
	r := put("A", `[{"id":"o1","data":"first"},{"id":"o2","data":{"a":1}}]`)
	if r.status != 500 || r.body != "" {
		t.Errorf("object data: got %d %q, want 500 and no body", r.status, r.body)
	}

	wantBody(t, e.alice("get_journal_entries", "except_uuid", "A"), 200,
		getBody(rowJSON(4, "B", "one"), rowJSON(5, "B", "two"), rowJSON(6, "B", "K1"), rowJSON(7, "B", "K2")))
	wantBody(t, e.alice("get_journal_entries", "after_id", "8"), 200,
		getBody(rowJSON(9, "A", "12.5"), rowJSON(10, "A", "1"), rowJSON(11, "A", "idobj"), rowJSON(12, "A", "after string"), rowJSON(13, "A", "first")))
	wantIDs(t, e.alice("get_journal_entries", "after_timestamp", "2000-01-01 00:00:00", "after_id", "9"), seq(10, 13))
	r = e.alice("get_journal_entries", "summary", "1", "after_id", "10")
	wantIDs(t, r, seq(11, 13))
	if strings.Contains(r.body, "summary") {
		t.Errorf("summary key in %s", r.body)
	}
	wantBody(t, e.alice("get_journal_entries", "after_id", "0", "except_uuid", "A", "limit", "0"), 200,
		getBody(rowJSON(4, "B", "one"), rowJSON(5, "B", "two"), rowJSON(6, "B", "K1"), rowJSON(7, "B", "K2")))
	wantBody(t, e.alice("get_journal_entries", "after_id", "1", "form:data", "x", "except_uuid", "B"), 200,
		getBody(rowJSON(2, "A", `caf\u00e9 \"q\" <b>`), rowJSON(3, "A", `x\\y`), rowJSON(8, "A", "N2"),
			rowJSON(9, "A", "12.5"), rowJSON(10, "A", "1"), rowJSON(11, "A", "idobj"), rowJSON(12, "A", "after string"), rowJSON(13, "A", "first")))

	// Deletes never work on the real server.
	wantBody(t, e.alice("delete_journal_entries", "form:data", "[1]"), 200, `{"error_message":"database error"}`)
	wantBody(t, e.alice("delete_journal_entries", "form:journal_id", "1"), 200, `{"error_message":"database error"}`)
	wantBody(t, e.alice("delete_journal_entries"), 200, `{"success":false,"error_message":"Missing data"}`)
	wantBody(t, e.alice("delete_journal_entries", "form:data", "[]"), 200, `{"success":false,"error_message":"No journal entries provided"}`)
	wantBody(t, e.alice("delete_journal_entries", "form:data", "nope"), 200, `{"success":false,"error_message":"No journal entries provided"}`)

	got, err := e.srv.Entries("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 13 || got[0].Data != "hello/world" || got[8].Data != "12.5" || got[9].Data != "1" || got[12].Data != "first" {
		t.Errorf("stored rows: %+v", got)
	}
	if got[0].IPAddress != "127.0.0.1" || got[0].Timestamp != ts0 || got[0].UUID != "A" {
		t.Errorf("row 1: %+v", got[0])
	}
	// Other accounts see nothing of alice's journal.
	wantBody(t, e.as(e.client("bob", "bobpw"), "example.com", "get_journal_entries"), 200, getBody())
}

func TestJournalDefaultMode(t *testing.T) { eachBackend(t, tJournalDefaultMode) }

func tJournalDefaultMode(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	for i := range 20 {
		uuid := "urn:uuid:dev-a"
		if i%2 == 1 {
			uuid = "urn:uuid:dev-b"
		}
		e.alice("put_journal_entries", "form:uuid", uuid, "form:data", fmt.Sprintf(`[{"id":%d,"data":"d%d"}]`, i, i))
		e.clock.Add(time.Second)
	}
	wantIDs(t, e.alice("get_journal_entries", "limit", "3"), seq(1, 3))
	wantIDs(t, e.alice("get_journal_entries", "limit", "3", "after_id", "17"), seq(18, 20))
	wantIDs(t, e.alice("get_journal_entries", "limit", "abc"), seq(1, 20))
	wantIDs(t, e.alice("get_journal_entries", "after_id", "-7"), seq(1, 20))
	wantIDs(t, e.alice("get_journal_entries", "except_uuid", "URN:UUID:DEV-A", "after_id", "14"), []int{16, 18, 20})
	// Row i+1 was written at ts0 + i s.
	wantIDs(t, e.alice("get_journal_entries", "after_timestamp", "2026-11-25 19:58:50"), seq(15, 20))
	wantIDs(t, e.alice("get_journal_entries", "after_timestamp", "0"), seq(1, 20))

	wantBody(t, e.alice("delete_journal_entries", "form:data", `[1,"2",3]`), 200, `{"success":true}`)
	wantBody(t, e.alice("delete_journal_entries", "journal_id", "4"), 200, `{"success":true}`)
	// bob cannot delete alice's rows.
	wantBody(t, e.as(e.client("bob", "bobpw"), "example.com", "delete_journal_entries", "form:data", "[5]"), 200, `{"success":true}`)
	wantIDs(t, e.alice("get_journal_entries"), seq(5, 20))
	wantBody(t, e.alice("delete_journal_entries", "form:data", "[]"), 200, `{"success":false,"error_message":"No journal entries provided"}`)

	// A step back of the clock does not reorder the journal.
	e.clock.Add(-time.Hour)
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "x", "form:data", `[{"id":1,"data":"late"}]`), 200,
		`{"results":[{"id":1,"journal_id":"21","source":"default"}],"success":true}`)
	if e.opts.JournalMySQL != nil {
		// MySQL pages are in id order whatever the timestamps; the row
		// keeps the time it was given, as with CDRTool's NOW().
		wantIDs(t, e.alice("get_journal_entries", "after_id", "20"), []int{21})
		return
	}
	rows, _ := e.srv.Entries("alice@example.com")
	if last := rows[len(rows)-1]; last.Timestamp != "2026-11-25 19:58:56" {
		t.Errorf("timestamp after clock step back: %q", last.Timestamp)
	}
}

func TestJournalPageCut(t *testing.T) { eachBackend(t, tJournalPageCut) }

func tJournalPageCut(t *testing.T, newEnv envMaker) {
	if testing.Short() {
		t.Skip("writes 5003 rows")
	}
	e := newEnv(t, nil)
	var b strings.Builder
	b.WriteByte('[')
	for i := range 5003 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"data":"row %d"}`, i, i)
	}
	b.WriteByte(']')
	r := e.alice("put_journal_entries", "form:uuid", "A", "form:data", b.String())
	if r.status != 200 || !strings.Contains(r.body, `"journal_id":"5003"`) {
		t.Fatalf("put: %d %.100s", r.status, r.body)
	}
	r = e.alice("get_journal_entries")
	wantIDs(t, r, seq(1, 5000))
	r = e.alice("get_journal_entries", "after_id", "5000")
	wantIDs(t, r, seq(5001, 5003))
}

func TestConcurrentPuts(t *testing.T) { eachBackend(t, tConcurrentPuts) }

func tConcurrentPuts(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	const workers, perWorker = 6, 15
	var wg sync.WaitGroup
	results := make([][]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.client("alice", "secret")
			for i := range perWorker {
				form := url.Values{"uuid": {fmt.Sprintf("w%d", w)}, "data": {fmt.Sprintf(`[{"id":1,"data":"w%d-%d"},{"id":2,"data":"x"}]`, w, i)}}
				req, _ := http.NewRequest("POST", e.url+"?action=put_journal_entries&realm=example.com", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var body strings.Builder
				_, _ = fmt.Fprint(&body, readAll(resp))
				for _, part := range strings.Split(body.String(), `"journal_id":"`)[1:] {
					n, _ := strconv.Atoi(part[:strings.IndexByte(part, '"')])
					results[w] = append(results[w], n)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for w, ids := range results {
		if len(ids) != 2*perWorker {
			t.Fatalf("worker %d got %d ids", w, len(ids))
		}
		for i, id := range ids {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
			if i > 0 && id <= ids[i-1] {
				t.Errorf("worker %d: ids not increasing: %v", w, ids)
			}
		}
	}
	rows, err := e.srv.Entries("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != workers*perWorker*2 || int(rows[len(rows)-1].ID) != len(rows) {
		t.Errorf("stored %d rows, last id %d", len(rows), rows[len(rows)-1].ID)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestPersistence(t *testing.T) { eachBackend(t, tPersistence) }

func tPersistence(t *testing.T, newEnv envMaker) {
	e := newEnv(t, nil)
	e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"id":1,"data":"before"}]`)
	wantBody(t, e.alice("add_alias", "username", " Extra "), 200, `{"success":true,"error_message":"Added alias extra"}`)
	e.alice("set_call_forwarding", "FUNC", "carol")
	e.alice("set_dnd_on", "duration", "30")
	e.alice("set_privacy_on")
	e.restart()
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"id":2,"data":"after"}]`), 200,
		`{"results":[{"id":2,"journal_id":"2","source":"default"}],"success":true}`)
	wantIDs(t, e.alice("get_journal_entries"), seq(1, 2))
	wantBody(t, e.alice("get_aliases"), 200, `["alice.l@example.com","extra@example.com","wonder@example.com"]`)
	wantBody(t, e.alice("get_call_forwarding"), 200, `{"FUNC":"carol@example.com","FNOL":null,"FBUS":"bob@example.com","FNOA":"<voice-mailbox>","FUNV":null}`)
	wantBody(t, e.alice("get_accept_rules"), 200, `{"persistent":{"31":{"start":"09:00","stop":"17:00","groups":["everybody"]}},"temporary":{"groups":["nobody"],"duration":30},"groups":["coworkers"]}`)
	st, err := e.srv.state(e.srv.accts.Load().accounts["alice@example.com"])
	if err != nil || !st.Privacy {
		t.Errorf("privacy not kept: %v %v", st.Privacy, err)
	}
}
