package accountserver

import (
	"context"
	"database/sql"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/internal/mariadbtest"
)

// cdrtoolEnv loads the CDRTool DDL into a fresh database before the
// server starts, and returns the env and the database as another program
// (CDRTool) sees it.
func cdrtoolEnv(t *testing.T, mod func(*Options)) (*env, *sql.DB) {
	t.Helper()
	d := mariadbtest.New(t)
	db := d.Open(t)
	if _, err := db.Exec(ClientJournalDDL); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.JournalMySQL = d.Config()
		o.Now = nil // the database's NOW(), as CDRTool's
		if mod != nil {
			mod(o)
		}
	})
	return e, db
}

// TestMySQLJournalReadsCDRToolRows inserts rows as CDRTool's PHP code does
// (one plain INSERT with NOW() each, no transaction, no lock) and reads
// them through the HTTP API, with the reply bytes of PROTOCOL §11; rows
// chatsync-server puts next to them are served alike.
func TestMySQLJournalReadsCDRToolRows(t *testing.T) {
	e, db := cdrtoolEnv(t, nil)
	var before string
	if err := db.QueryRow("SHOW CREATE TABLE client_journal").Scan(new(string), &before); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"hello/world", `café "q" <b>`, `x\y`} {
		if _, err := db.Exec("INSERT INTO client_journal (`timestamp`, account, uuid, data, ip_address) VALUES (NOW(), 'alice@example.com', 'A', ?, '192.0.2.7')", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO client_journal (`timestamp`, account, uuid, data, ip_address) VALUES (NOW(), 'bob@example.com', 'B', 'not alice', '192.0.2.8')"); err != nil {
		t.Fatal(err)
	}
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "B", "form:data", `[{"id":"b1","data":"one"}]`), 200,
		`{"results":[{"id":"b1","journal_id":"5","source":"default"}],"success":true}`)
	var ts [5]string
	rows, err := db.Query("SELECT id, CAST(`timestamp` AS CHAR) FROM client_journal ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		var s string
		rows.Scan(&id, &s)
		ts[id-1] = s
	}
	rows.Close()
	if now := time.Now().UTC(); !strings.HasPrefix(ts[4], now.Format("2006-01-02 15")) && !strings.HasPrefix(ts[4], now.Add(-time.Minute).Format("2006-01-02 15")) {
		t.Errorf("chatsync-server's NOW() is not UTC: %s, now %s", ts[4], now)
	}
	row := func(id, ts, uuid, ip, data string) string {
		return `{"id":"` + id + `","source":"default","timestamp":"` + ts + `","account":"alice@example.com","uuid":"` + uuid + `","ip_address":"` + ip + `","data":"` + data + `"}`
	}
	wantBody(t, e.alice("get_journal_entries"), 200, getBody(
		row("1", ts[0], "A", "192.0.2.7", `hello\/world`),
		row("2", ts[1], "A", "192.0.2.7", `caf\u00e9 \"q\" <b>`),
		row("3", ts[2], "A", "192.0.2.7", `x\\y`),
		row("5", ts[4], "B", "127.0.0.1", "one")))
	wantBody(t, e.alice("get_journal_entries", "except_uuid", "a", "after_id", "1"), 200, getBody(row("5", ts[4], "B", "127.0.0.1", "one")))
	var after string
	if err := db.QueryRow("SHOW CREATE TABLE client_journal").Scan(new(string), &after); err != nil {
		t.Fatal(err)
	}
	autoInc := regexp.MustCompile(` AUTO_INCREMENT=[0-9]+`)
	if after, before = autoInc.ReplaceAllString(after, ""), autoInc.ReplaceAllString(before, ""); after != before {
		t.Errorf("the table changed:\n%s\nwas\n%s", after, before)
	}
}

// TestMySQLJournalHorizon holds a CDRTool-style INSERT uncommitted (no
// lock) while chatsync-server puts a row with a higher id: the get is cut
// below the row in flight, and serves both once it commits.
func TestMySQLJournalHorizon(t *testing.T) {
	e, db := cdrtoolEnv(t, nil)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO client_journal (`timestamp`, account, uuid, data, ip_address) VALUES (NOW(), 'alice@example.com', 'A', 'slow', '192.0.2.7')"); err != nil {
		t.Fatal(err)
	}
	wantBody(t, e.alice("put_journal_entries", "form:uuid", "B", "form:data", `[{"id":"b1","data":"fast"},{"id":"b2","data":"fast2"}]`), 200,
		`{"results":[{"id":"b1","journal_id":"2","source":"default"},{"id":"b2","journal_id":"3","source":"default"}],"success":true}`)
	wantIDs(t, e.alice("get_journal_entries"), nil)
	// Rows below the one in flight are served.
	wantIDs(t, e.alice("get_journal_entries", "after_id", "1"), []int{2, 3})
	// A held get sees the row once it commits (the poll).
	go func() {
		time.Sleep(300 * time.Millisecond)
		tx.Commit()
	}()
	start := time.Now()
	wantIDs(t, e.alice("get_journal_entries", "wait", "10"), []int{1, 2, 3})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the held get took %v", d)
	}
}

// TestMySQLJournalUnorderedSkips is the horizon test without the horizon:
// the page holds the later row, and a cursor at its id never sees the
// earlier one.
func TestMySQLJournalUnorderedSkips(t *testing.T) {
	e, db := cdrtoolEnv(t, func(o *Options) { o.MySQLNoHorizon = true })
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	tx.Exec("INSERT INTO client_journal (`timestamp`, account, uuid, data, ip_address) VALUES (NOW(), 'alice@example.com', 'A', 'slow', '192.0.2.7')")
	e.alice("put_journal_entries", "form:uuid", "B", "form:data", `[{"id":"b1","data":"fast"}]`)
	wantIDs(t, e.alice("get_journal_entries"), []int{2})
	tx.Commit()
	wantIDs(t, e.alice("get_journal_entries", "after_id", "2"), nil) // row 1 is skipped
}

// TestMySQLJournalExplain checks that the page query reads the account's
// rows through an index (CDRTool's DDL has the primary key on id and
// account_idx on account; InnoDB's secondary index holds the primary key,
// so account_idx is (account, id) and needs no filesort).
func TestMySQLJournalExplain(t *testing.T) {
	e, db := cdrtoolEnv(t, nil)
	for range 3 {
		e.alice("put_journal_entries", "form:uuid", "A", "form:data", `[{"data":"a"},{"data":"b"}]`)
		e.as(e.client("bob", "bobpw"), "example.com", "put_journal_entries", "form:uuid", "B", "form:data", `[{"data":"a"},{"data":"b"}]`)
	}
	db.Exec("ANALYZE TABLE client_journal")
	for _, q := range []journalQuery{
		{account: "alice@example.com", limit: 5000},
		{account: "alice@example.com", exceptUUID: "A", afterID: 3, limit: 100},
	} {
		query, args := q.getQuery(uint64(q.afterID))
		rows, err := db.Query("EXPLAIN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			m := map[string]string{}
			for i, c := range cols {
				m[c] = vals[i].String
			}
			t.Logf("EXPLAIN %s: %v", query, m)
			if m["key"] != "account_idx" && m["key"] != "PRIMARY" {
				t.Errorf("the page query uses no index: %v", m)
			}
			if m["type"] == "ALL" || strings.Contains(m["Extra"], "filesort") {
				t.Errorf("the page query scans the table or sorts: %v", m)
			}
		}
		rows.Close()
	}
}

// BenchmarkJournalPut puts batches of 100 rows of 1 kB through HTTP, from
// 4 clients at once, on each store; rows/s is reported.
func BenchmarkJournalPut(b *testing.B) {
	for _, be := range []struct {
		name string
		env  envMaker
	}{{"bbolt", newEnv}, {"mysql", newMySQLEnv}} {
		b.Run(be.name, func(b *testing.B) {
			e := be.env(b, nil)
			var els []string
			for i := range 100 {
				els = append(els, `{"id":`+strconv.Itoa(i)+`,"data":"`+strings.Repeat("x", 1000)+`"}`)
			}
			data := "[" + strings.Join(els, ",") + "]"
			b.ResetTimer()
			b.SetParallelism(2) // 2 × GOMAXPROCS (2 here) clients
			b.RunParallel(func(pb *testing.PB) {
				c := e.client("alice", "secret")
				for pb.Next() {
					e.as(c, "example.com", "put_journal_entries", "form:uuid", "A", "form:data", data)
				}
			})
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkJournalGet reads pages of 500 rows of 1 kB on each store.
func BenchmarkJournalGet(b *testing.B) {
	for _, be := range []struct {
		name string
		env  envMaker
	}{{"bbolt", newEnv}, {"mysql", newMySQLEnv}} {
		b.Run(be.name, func(b *testing.B) {
			e := be.env(b, nil)
			var els []string
			for i := range 500 {
				els = append(els, `{"id":`+strconv.Itoa(i)+`,"data":"`+strings.Repeat("x", 1000)+`"}`)
			}
			e.alice("put_journal_entries", "form:uuid", "A", "form:data", "["+strings.Join(els, ",")+"]")
			c := e.client("alice", "secret")
			b.ResetTimer()
			for range b.N {
				e.as(c, "example.com", "get_journal_entries", "limit", "500")
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
