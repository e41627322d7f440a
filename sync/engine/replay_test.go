package engine

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/account"
)

// An old version of a message posted again (the exact envelope, under
// another writer id) is skipped and counted on every device, also on the
// device that wrote it: it does not revert the newer version.
func TestReplayedOldVersionDoesNotRevertAnyDevice(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.start()
	b.start()
	a.write("c/m.json", msg("m", "c@example.com", "version 1"))
	waitFor(t, 20*time.Second, "v1 on B", func() bool { return b.messages()["m"] == a.messages()["m"] && len(b.messages()) == 1 })
	v1 := srv.rows()[0].Data
	a.write("c/m.json", msg("m", "c@example.com", "version 2"))
	want := canonical(t, msg("m", "c@example.com", "version 2"))
	waitFor(t, 20*time.Second, "v2 on B", func() bool { return b.messages()["m"] == want })

	attacker := "urn:uuid:00000000-0000-4000-8000-00000000dead"
	if _, err := srv.client(t).PutJournalEntries(t.Context(), attacker, []account.PutEntry{{ID: "r", Data: v1}}); err != nil {
		t.Fatal(err)
	}
	const reason = "replayed (an old version posted again, or this device's own entry under another id)"
	waitFor(t, 20*time.Second, "both devices to skip the replay", func() bool {
		return a.status().Skipped[reason] == 1 && b.status().Skipped[reason] == 1
	})
	since := time.Now()
	waitFor(t, 20*time.Second, "A and B idle", func() bool { return a.idle(since) && b.idle(since) })
	if got := a.messages()["m"]; got != want {
		t.Errorf("A holds %s after the replay, want version 2", got)
	}
	if got := b.messages()["m"]; got != want {
		t.Errorf("B holds %s after the replay, want version 2", got)
	}
}

// A device whose clock stepped back still seals its next edit of a
// message later than its previous one, so the other devices take it and
// do not mistake it for a replay.
func TestEditAfterTheClockSteppedBackStillReachesTheOtherDevice(t *testing.T) {
	_, _, a, b := twoDevices(t)
	var back atomic.Int64 // how far A's clock is behind
	a.tweak = func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }
	}
	a.start()
	b.start()
	a.write("c/m.json", msg("m", "c@example.com", "before the step"))
	waitFor(t, 20*time.Second, "v1 on B", func() bool { return len(b.messages()) == 1 })
	back.Store(int64(time.Hour))
	a.write("c/m.json", msg("m", "c@example.com", "after the step"))
	want := canonical(t, msg("m", "c@example.com", "after the step"))
	waitFor(t, 20*time.Second, "the edit on B", func() bool { return b.messages()["m"] == want })
	if n := len(b.status().Skipped); n != 0 {
		t.Errorf("B skipped entries: %v", b.status().Skipped)
	}
}
