package engine

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
)

// deviceOf returns the entry for the device with id in d's view of the
// account's devices.
func deviceOf(t *testing.T, d *device, id string) (apitype.SyncDevice, bool) {
	t.Helper()
	ds, err := d.eng.Devices()
	if err != nil {
		t.Fatalf("%s: Devices: %v", d.name, err)
	}
	for _, x := range ds.Devices {
		if x.DeviceID == id {
			return x, true
		}
	}
	return apitype.SyncDevice{}, false
}

func describeDevices(t *testing.T, d *device) func() string {
	return func() string {
		ds, err := d.eng.Devices()
		return fmt.Sprintf("%s sees %+v (%v)", d.name, ds.Devices, err)
	}
}

// refreshed asks d for fresh reports and waits until each of others has
// answered with one made after the ask.
func refreshed(t *testing.T, d *device, others ...*device) {
	t.Helper()
	asked := time.Now()
	d.eng.RefreshDevices()
	for _, o := range others {
		id := o.db.DeviceID()
		waitFor(t, 20*time.Second, d.name+" to get a fresh report of "+o.name, func() bool {
			x, ok := deviceOf(t, d, id)
			return ok && x.Reported.After(asked)
		}, describeDevices(t, d))
	}
}

// Three devices; C stops while A writes 3 messages and B 2. A then sees C
// behind by A's 3, B sees it behind by B's 2, and once C has started again
// and caught up, a refresh shows it up to date on both. Names, versions
// and key ids are what C reported.
func TestDevicesShowAStoppedDeviceBehindByTheVersionsItLacks(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	c := newDevice(t, "C", srv, kr)
	for _, d := range []*device{a, b, c} {
		d.tweak = func(o *Options) { o.DeviceName, o.Version = "dev-"+d.name, "9.9.9" }
		d.write("x/"+d.name+".json", msg("start-"+d.name, "x@example.com", "hello from "+d.name))
		d.start()
	}
	all := func(n int) func() bool {
		return func() bool {
			return len(withoutBarrier(a.messages())) == n && len(withoutBarrier(b.messages())) == n && len(withoutBarrier(c.messages())) == n
		}
	}
	waitFor(t, 20*time.Second, "3 messages on every device", all(3))
	refreshed(t, a, b, c)
	refreshed(t, b, a, c)
	cid := c.db.DeviceID()
	got, _ := deviceOf(t, a, cid)
	if got.Behind != 0 || got.Name != "dev-C" || got.Version != "9.9.9" || got.Self || got.Messages != 3 {
		t.Errorf("A sees C as %+v, want dev-C 9.9.9 with 3 messages, up to date", got)
	}
	if len(got.KeyIDs) != 1 || got.KeyIDs[0] != kr.Current().ID() {
		t.Errorf("A sees C's key ids %v, want [%s]", got.KeyIDs, kr.Current().ID())
	}

	c.stop()
	for i := range 3 {
		a.write(fmt.Sprintf("x/a%d.json", i), msg(fmt.Sprintf("a%d", i), "x@example.com", "from A while C is off"))
	}
	for i := range 2 {
		b.write(fmt.Sprintf("x/b%d.json", i), msg(fmt.Sprintf("b%d", i), "x@example.com", "from B while C is off"))
	}
	waitFor(t, 20*time.Second, "8 messages on A and B", func() bool {
		return len(a.messages()) == 8 && len(b.messages()) == 8 && a.status().OutboxDepth == 0 && b.status().OutboxDepth == 0
	})
	waitFor(t, 20*time.Second, "A to see C 3 behind", func() bool {
		x, ok := deviceOf(t, a, cid)
		return ok && x.Behind == 3
	}, describeDevices(t, a))
	waitFor(t, 20*time.Second, "B to see C 2 behind", func() bool {
		x, ok := deviceOf(t, b, cid)
		return ok && x.Behind == 2
	}, describeDevices(t, b))
	if x, _ := deviceOf(t, a, cid); x.BehindSince.IsZero() || time.Since(x.BehindSince) > time.Minute {
		t.Errorf("A says C is behind since %v, want the time of A's first message C lacks", x.BehindSince)
	}

	c.start()
	waitFor(t, 20*time.Second, "8 messages on C", func() bool { return len(c.messages()) == 8 })
	refreshed(t, a, c)
	refreshed(t, b, c)
	for _, d := range []*device{a, b} {
		if x, _ := deviceOf(t, d, cid); x.Behind != 0 || x.Messages != 8 {
			t.Errorf("%s sees C, started again and caught up, as %+v; want up to date with 8 messages", d.name, x)
		}
	}
	ds, err := a.eng.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Devices) != 3 || !ds.Devices[0].Self || ds.Devices[0].DeviceID != a.db.DeviceID() || ds.Devices[0].Name != "dev-A" {
		t.Errorf("A's devices = %+v, want A itself first, then B and C", ds.Devices)
	}
}

// Each device reports once after its first catch-up; a restart with
// nothing changed adds no report; a refresh adds the ask and one answer
// per other device, and nothing more; reports never become messages.
func TestReportsCostOneRowEachAtFirstAndOnePerDeviceForARefresh(t *testing.T) {
	srv, _, a, b := twoDevices(t)
	a.write("x/m1.json", msg("m1", "x@example.com", "one"))
	b.write("x/m2.json", msg("m2", "x@example.com", "two"))
	a.start()
	b.start()
	waitFor(t, 20*time.Second, "both messages on both devices", func() bool { return len(a.messages()) == 2 && len(b.messages()) == 2 })
	waitFor(t, 20*time.Second, "a report of each device", func() bool { return len(srv.reports()) == 2 })
	barrier(t, a, b)
	barrier(t, b, a)

	a.stop()
	a.start()
	since := time.Now()
	waitFor(t, 20*time.Second, "A idle after its restart", func() bool { return a.idle(since) })
	barrier(t, a, b) // a turn of both loops at least
	if n := len(srv.reports()); n != 2 {
		t.Errorf("%d reports after a restart that changed nothing, want the first 2", n)
	}

	a.eng.RefreshDevices()
	waitFor(t, 20*time.Second, "A's ask and B's answer", func() bool { return len(srv.reports()) == 4 })
	barrier(t, a, b)
	barrier(t, b, a)
	reps := srv.reports()
	if len(reps) != 4 {
		t.Fatalf("%d reports after one refresh, want 4", len(reps))
	}
	asks := 0
	for _, r := range reps {
		if containsAsk(r.Message) {
			asks++
		}
	}
	if asks != 1 {
		t.Errorf("%d reports ask for fresh ones, want A's 1", asks)
	}
	for _, d := range []*device{a, b} {
		if got := withoutBarrier(d.messages()); len(got) != 2 {
			t.Errorf("%s holds %d messages, want m1 and m2: %v", d.name, len(got), got)
		}
	}
}

func containsAsk(body []byte) bool {
	var r report
	return json.Unmarshal(body, &r) == nil && r.Ask
}

// A device that seals under a key this device lacks is listed with that
// key id as missing, and how far behind it is is unknown.
func TestDevicesShowADeviceSealingUnderAKeyThisOneLacks(t *testing.T) {
	srv, _, a, _ := twoDevices(t)
	x := newDevice(t, "X", srv, newKeyring(t))
	x.write("x/m1.json", msg("m1", "x@example.com", "sealed under another key"))
	x.start()
	waitFor(t, 20*time.Second, "X's row", func() bool { return len(srv.allRows()) >= 1 && x.status().OutboxDepth == 0 })
	a.start()
	xid := x.db.DeviceID()
	waitFor(t, 20*time.Second, "A to list X", func() bool { _, ok := deviceOf(t, a, xid); return ok }, describeDevices(t, a))
	got, _ := deviceOf(t, a, xid)
	if len(got.MissingKeys) != 1 || got.MissingKeys[0] != x.kr.Current().ID() || got.Behind != -1 || got.Rows < 1 {
		t.Errorf("A sees X as %+v, want missing key %s, behind -1, its rows counted", got, x.kr.Current().ID())
	}
}
