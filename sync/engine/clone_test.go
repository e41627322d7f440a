package engine

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A device's state dir and store were copied to another machine (a cloned
// VM, a restored backup), so two devices write under one device id and the
// server's except_uuid hides each one's rows from the other. Each notices
// rows under its id that it never wrote, takes a new id, and reads what the
// other wrote: all three devices end with every message, and status says
// what happened.
func TestTwoDevicesWithOneDeviceIDNoticeItAndConverge(t *testing.T) {
	srv, kr, a, b := twoDevices(t)
	a.start()
	b.start()
	for _, id := range []string{"m1", "m2", "m3"} {
		a.write("c/"+id+".json", msg(id, "c@example.com", "before the copy"))
	}
	waitFor(t, 20*time.Second, "B to receive A's 3 messages", func() bool { return len(b.messages()) == 3 })
	since := time.Now()
	waitFor(t, 20*time.Second, "A idle", func() bool { return a.idle(since) })
	a.stop()

	clone := newDevice(t, "A'", srv, kr)
	for _, c := range [][2]string{{a.state, clone.state}, {a.store, clone.store}} {
		os.RemoveAll(c[1])
		if err := os.CopyFS(c[1], os.DirFS(c[0])); err != nil {
			t.Fatal(err)
		}
	}
	a.mayClone, clone.mayClone = true, true
	a.start()
	clone.start()
	if a.status().DeviceID != clone.status().DeviceID {
		t.Fatalf("the copy has device id %s, A %s: the setup did not copy the state", clone.status().DeviceID, a.status().DeviceID)
	}
	a.write("c/from-a.json", msg("from-a", "c@example.com", "written on A after the copy"))
	clone.write("c/from-clone.json", msg("from-clone", "c@example.com", "written on the copy"))

	all := func(d *device) bool { return len(d.messages()) == 5 }
	waitFor(t, 60*time.Second, "all three devices to hold all 5 messages", func() bool {
		return all(a) && all(b) && all(clone)
	}, func() string {
		return "A " + describe(a.messages()) + "; copy " + describe(clone.messages()) + "; B " + describe(b.messages())
	})
	since = time.Now()
	waitFor(t, 20*time.Second, "all idle", func() bool { return a.idle(since) && b.idle(since) && clone.idle(since) })
	want := b.messages()
	for _, d := range []*device{a, clone} {
		if got := d.messages(); !equalMaps(got, want) {
			t.Errorf("%s holds %s, B %s", d.name, describe(got), describe(want))
		}
	}
	sa, sc := a.status(), clone.status()
	if sa.DeviceID == sc.DeviceID {
		t.Errorf("A and its copy still share device id %s", sa.DeviceID)
	}
	if sa.Clone == "" && sc.Clone == "" {
		t.Errorf("neither A nor its copy says in status that it took a new id")
	}
	for _, s := range []Status{sa, sc} {
		if s.Clone != "" && !strings.Contains(s.Clone, "took a new id") {
			t.Errorf("status says %q", s.Clone)
		}
	}
	// The new id is kept: after a restart A writes under it.
	id := sa.DeviceID
	a.stop()
	a.start()
	if got := a.status().DeviceID; got != id {
		t.Errorf("after a restart A uses device id %s, want the one it took, %s", got, id)
	}
}
