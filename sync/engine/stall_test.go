package engine

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// Each stall rule holds exactly past its bound: no good poll for 5 poll
// intervals (3 minutes while the server holds polls), an entry unsent for
// 10 minutes, another device behind for a day; a paused account is said to
// be paused, not stalled.
func TestStalledHoldsPastEachBoundAndNotBefore(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	iv := 30 * time.Second
	base := apitype.AccountStatus{State: StateIdle, LastGoodPoll: now.Add(-time.Minute)}
	for _, tc := range []struct {
		name string
		mod  func(s *apitype.AccountStatus)
		want string // a word of the reason; "" for none
	}{
		{"running", func(s *apitype.AccountStatus) {}, ""},
		{"poll 2m30s old", func(s *apitype.AccountStatus) { s.LastGoodPoll = now.Add(-150 * time.Second) }, ""},
		{"poll 2m31s old", func(s *apitype.AccountStatus) { s.LastGoodPoll = now.Add(-151 * time.Second) }, "last good poll"},
		{"poll 2m31s old with its error", func(s *apitype.AccountStatus) {
			s.LastGoodPoll, s.LastPollError = now.Add(-151*time.Second), "connection refused"
		}, "connection refused"},
		{"listening, poll 2m31s old", func(s *apitype.AccountStatus) {
			s.LastGoodPoll, s.Listening = now.Add(-151*time.Second), true
		}, ""},
		{"listening, poll 3m1s old", func(s *apitype.AccountStatus) {
			s.LastGoodPoll, s.Listening = now.Add(-181*time.Second), true
		}, "last good poll"},
		{"outbox 10m old", func(s *apitype.AccountStatus) { s.OutboxDepth, s.OldestUnsent = 2, now.Add(-10*time.Minute) }, ""},
		{"outbox 10m1s old", func(s *apitype.AccountStatus) { s.OutboxDepth, s.OldestUnsent = 2, now.Add(-601*time.Second) }, "oldest of 2 entries"},
		{"a device behind for 23h", func(s *apitype.AccountStatus) {
			s.Lagging = &apitype.Lag{DeviceID: "urn:uuid:1a2b3c4d-0000-4000-8000-000000000000", Name: "laptop", Behind: 3, Since: now.Add(-23 * time.Hour)}
		}, ""},
		{"a device behind for 25h", func(s *apitype.AccountStatus) {
			s.Lagging = &apitype.Lag{DeviceID: "urn:uuid:1a2b3c4d-0000-4000-8000-000000000000", Name: "laptop", Behind: 3, Since: now.Add(-25 * time.Hour)}
		}, "laptop (1a2b3c4d) has not applied 3"},
		{"paused, poll old", func(s *apitype.AccountStatus) { s.State, s.LastGoodPoll = StatePaused, now.Add(-time.Hour) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mod(&s)
			got := stalled(s, iv, now)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("stalled = %q, want %q", got, tc.want)
			}
			s.Stalled = got
			if p := s.Problem(now); (got != "") != strings.HasPrefix(p, "stalled: ") && s.State != StatePaused {
				t.Errorf("Problem = %q with stalled %q", p, got)
			}
		})
	}
}

// A device whose server stops answering is stalled once five poll
// intervals pass without a good poll, and runs again when the server
// answers.
func TestAnAccountWhoseServerStopsAnsweringStallsAndRecovers(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	a.start()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(time.Time{}) && !a.status().LastGoodPoll.IsZero() })
	srv.setWrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	srv.backend.Load().EndWaits() // the poll it holds ends; the next fails
	waitFor(t, 20*time.Second, "A stalled", func() bool { return strings.Contains(a.status().Stalled, "last good poll") })
	if p := a.status().Problem(time.Now()); !strings.HasPrefix(p, "stalled: ") {
		t.Errorf("Problem = %q, want stalled", p)
	}
	srv.setWrap(nil)
	waitFor(t, 20*time.Second, "A running again", func() bool { return a.status().Stalled == "" })
}

// A page cut within one second is warned of only on evidence: a later
// page holds a row of that second, which the cut page lacked, with a
// lower id than the cut page's highest. New rows of the same second, or
// the cut page's own rows read again, are no evidence.
func TestACutSecondIsMissedOnlyWhenARowBelowItsHighestIDTurnsUp(t *testing.T) {
	c := cutSecond{at: "2026-12-01 10:00:00", rows: 2, maxID: 7, ids: map[int64]bool{5: true, 7: true}}
	for _, tc := range []struct {
		row  account.JournalEntry
		want bool
	}{
		{account.JournalEntry{ID: 6, Timestamp: c.at}, true},
		{account.JournalEntry{ID: 5, Timestamp: c.at}, false}, // read again
		{account.JournalEntry{ID: 8, Timestamp: c.at}, false}, // written since, in the same second
		{account.JournalEntry{ID: 6, Timestamp: "2026-12-01 10:00:01"}, false},
	} {
		if got := c.missed(tc.row); got != tc.want {
			t.Errorf("missed(id %d at %s) = %v, want %v", tc.row.ID, tc.row.Timestamp, got, tc.want)
		}
	}
}
