package engine

import (
	"fmt"
	"testing"
	"time"
)

// A server restored from a slightly older backup lost the newest rows of
// the journal. The device that wrote them pushes again only what was lost:
// its rows the journal still holds are recognised, not sent twice.
func TestAfterARestoreOnlyTheLostRowsArePushedAgain(t *testing.T) {
	srv, kr, a, _ := twoDevices(t)
	a.start()
	for i := range 10 {
		a.write(fmt.Sprintf("c/m%d.json", i), msg(fmt.Sprintf("m%d", i), "c@example.com", "before the restore"))
	}
	waitFor(t, 20*time.Second, "10 rows", func() bool { return len(srv.rows()) == 10 })
	since := time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	rows := srv.rows()
	var lost []int64
	for _, r := range rows[7:] {
		lost = append(lost, int64(r.ID))
	}
	if err := srv.client(t).DeleteJournalEntries(t.Context(), lost); err != nil { // the newest 3 rows are gone, as a restore would do
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "A to notice and push the lost rows again", func() bool {
		return !a.status().ResetAt.IsZero() && len(srv.rows()) == 10 && a.status().OutboxDepth == 0
	})
	since = time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	if got := len(srv.rows()); got != 10 {
		t.Errorf("the journal holds %d rows after the restore, want 10 (7 kept, 3 pushed again)", got)
	}
	for id, n := range serverMsgIDs(t, srv, kr) {
		if n != 1 {
			t.Errorf("the journal holds %d rows of %s, want 1", n, id)
		}
	}
}
