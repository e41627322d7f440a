package daemon

// Stalled accounts on the event stream. The engine says in its status
// whether an account is stalled (apitype.AccountStatus.Stalled); an event
// is only worth sending when that changes, and nothing else looks at the
// status of an idle daemon, so one goroutine looks once a minute, and so
// does every Status (a `chatsync status`, a metrics scrape), which then
// sees the same change at most once.

import (
	"context"
	"sync"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/engine"
)

// StallCheckInterval is how often the daemon looks for accounts that
// became stalled or recovered when nothing asks for its status.
const StallCheckInterval = time.Minute

// stallWatch remembers which accounts were stalled at the last look.
type stallWatch struct {
	mu      sync.Mutex
	stalled map[string]string // account → its Stalled text, for the stalled ones
}

func newStallWatch() *stallWatch { return &stallWatch{stalled: map[string]string{}} }

// observe compares accts with the last look and returns an EventStalled
// for each account that became stalled and an EventRecovered for each
// that no longer is. An account that can not start, or is gone from the
// config, is forgotten without an event: its status says why already.
func (w *stallWatch) observe(accts []apitype.AccountStatus, now time.Time) []engine.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var evs []engine.Event
	seen := map[string]bool{}
	for _, a := range accts {
		if a.StartError != "" {
			continue
		}
		seen[a.Account] = true
		was, wasStalled := w.stalled[a.Account]
		switch {
		case a.Stalled != "" && !wasStalled:
			evs = append(evs, engine.Event{Time: now, Account: a.Account, Kind: apitype.EventStalled, Message: a.Stalled})
		case a.Stalled == "" && wasStalled:
			evs = append(evs, engine.Event{Time: now, Account: a.Account, Kind: apitype.EventRecovered, Message: "no longer stalled (it was: " + was + ")"})
		}
		if a.Stalled != "" {
			w.stalled[a.Account] = a.Stalled
		} else {
			delete(w.stalled, a.Account)
		}
	}
	for addr := range w.stalled {
		if !seen[addr] {
			delete(w.stalled, addr)
		}
	}
	return evs
}

// watchStalls looks at the status every interval until ctx is done, so
// that a stall is on the event stream (and in the log) even while nobody
// asks for the status.
func (d *Daemon) watchStalls(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.Status()
		}
	}
}

// noticeStalls publishes and logs the changes observe finds in accts.
func (d *Daemon) noticeStalls(accts []AccountStatus) {
	list := make([]apitype.AccountStatus, len(accts))
	for i, a := range accts {
		list[i] = a.AccountStatus
		list[i].StartError = a.StartError
	}
	for _, ev := range d.stalls.observe(list, time.Now()) {
		if ev.Kind == apitype.EventStalled {
			d.log.Warn("account is stalled", "account", ev.Account, "why", ev.Message)
		} else {
			d.log.Info("account is no longer stalled", "account", ev.Account)
		}
		d.events.publish(ev)
	}
}
