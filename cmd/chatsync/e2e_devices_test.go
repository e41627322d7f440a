package main_test

// End-to-end tests, with the real binaries, of what a device knows of the
// others and of the journal: `chatsync devices` (the devices' reports and
// how far behind each one is), what the reports cost in journal rows,
// `chatsync verify [--repair]` against the whole journal, the Prometheus
// metrics, and `chatsync status` when the account stalls.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// converged reports whether every device holds the same want messages
// and has nothing left to send.
func converged(t *testing.T, want int, ds ...*e2eDevice) bool {
	var first map[string]string
	for i, d := range ds {
		got, _ := d.messages()
		if len(got) != want || !idle(t, d) {
			return false
		}
		if i == 0 {
			first = got
		} else if !sameMaps(first, got) {
			return false
		}
	}
	return true
}

// checkTable checks what owner's `chatsync devices` says of every device
// but how far behind it is: one line per device, its name, version and key
// ids, owner's own line first and the only one marked self, and a last
// seen time within the test.
func checkTable(t *testing.T, owner *e2eDevice, devs apitype.Devices, ids, names map[*e2eDevice]string, since time.Time) {
	t.Helper()
	if devs.Account != e2eAccount {
		t.Errorf("%s: devices of account %q, want %q", owner.name, devs.Account, e2eAccount)
	}
	if len(devs.Devices) != len(ids) {
		t.Errorf("%s lists %d devices, want %d: %+v", owner.name, len(devs.Devices), len(ids), devs.Devices)
	}
	if len(devs.Devices) > 0 && !strings.EqualFold(devs.Devices[0].DeviceID, ids[owner]) {
		t.Errorf("%s's first line is %s, want its own %s", owner.name, devs.Devices[0].DeviceID, ids[owner])
	}
	version, keys := owner.version(), owner.keyIDs()
	for d, id := range ids {
		e, ok := entry(devs, id)
		if !ok {
			t.Errorf("%s does not list %s (%s): %+v", owner.name, d.name, id, devs.Devices)
			continue
		}
		if e.Name != names[d] {
			t.Errorf("%s names %s %q, want %q", owner.name, d.name, e.Name, names[d])
		}
		if e.Version != version {
			t.Errorf("%s says %s runs version %q, want %q (chatsync version)", owner.name, d.name, e.Version, version)
		}
		if got := slices.Sorted(slices.Values(e.KeyIDs)); !slices.Equal(got, keys) {
			t.Errorf("%s says %s holds keys %v, want %v (chatsync key fingerprint)", owner.name, d.name, e.KeyIDs, keys)
		}
		if e.Self != (d == owner) {
			t.Errorf("%s marks %s self=%v, want %v", owner.name, d.name, e.Self, d == owner)
		}
		if now := time.Now(); e.LastSeen.Before(since.Add(-time.Second)) || e.LastSeen.After(now.Add(5*time.Second)) {
			t.Errorf("%s last saw %s at %v, want between %v and %v", owner.name, d.name, e.LastSeen, since, now)
		}
	}
}

func behind(t *testing.T, owner *e2eDevice, devs apitype.Devices, other *e2eDevice, id string, want int) {
	t.Helper()
	e, ok := entry(devs, id)
	switch {
	case !ok:
		t.Errorf("%s does not list %s (%s): %+v", owner.name, other.name, id, devs.Devices)
	case e.Behind != want:
		t.Errorf("%s says %s is behind by %d of its versions, want %d: %+v", owner.name, other.name, e.Behind, want, e)
	case want > 0 && e.BehindSince.IsZero():
		t.Errorf("%s says %s is behind by %d without saying since when: %+v", owner.name, other.name, e.Behind, e)
	}
}

func TestDevicesShowsAStoppedDeviceBehindByTheRightCountAndUpToDateAfterItStarts(t *testing.T) {
	since := time.Now()
	srv := startServer(t)
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key, `device_name = "alpha"`)
	b := newE2EDevice(t, "B", srv, key, `device_name = "bravo"`)
	c := newE2EDevice(t, "C", srv, key, `device_name = "charlie"`)
	all := []*e2eDevice{a, b, c}
	names := map[*e2eDevice]string{a: "alpha", b: "bravo", c: "charlie"}
	ids := map[*e2eDevice]string{}
	for _, d := range all {
		d.start()
		d.write("bob/"+d.name+"1.json", e2eMsg("devices-"+d.name+"1@e2e.test", "written on "+d.name))
	}
	for _, d := range all {
		ids[d] = deviceID(t, d)
	}
	eventually(t, 30*time.Second, "every device to hold the 3 messages", func() bool { return converged(t, 3, all...) }, all...)

	// Asked for fresh reports, every device says it has applied A's
	// message: nobody is behind A.
	devs, r := a.devices("--refresh", "--timeout", "30s")
	t.Logf("%s", r.stdout)
	checkTable(t, a, devs, ids, names, since)
	behind(t, a, devs, b, ids[b], 0)
	behind(t, a, devs, c, ids[c], 0)
	devs, _ = b.devices()
	checkTable(t, b, devs, ids, names, since)

	// C stops. A writes 3 messages, then B, having applied them, writes 2:
	// B's rows tell A how far B has applied, C says nothing.
	c.stop()
	for i := 2; i <= 4; i++ {
		a.write(fmt.Sprintf("bob/A%d.json", i), e2eMsg(fmt.Sprintf("devices-A%d@e2e.test", i), "written on A while C is stopped"))
	}
	eventually(t, 30*time.Second, "A and B to hold 6 messages", func() bool { return converged(t, 6, a, b) }, a, b)
	for i := 2; i <= 3; i++ {
		b.write(fmt.Sprintf("bob/B%d.json", i), e2eMsg(fmt.Sprintf("devices-B%d@e2e.test", i), "written on B while C is stopped"))
	}
	eventually(t, 30*time.Second, "A and B to hold 8 messages", func() bool { return converged(t, 8, a, b) }, a, b)

	// A device's files are written before the page's state (its peers
	// with them) commits: the lists are read once they show the page.
	lagOf := func(owner, other *e2eDevice, want int) func() bool {
		return func() bool {
			devs, _ := owner.devices()
			e, ok := entry(devs, ids[other])
			return ok && e.Behind == want
		}
	}
	eventually(t, 30*time.Second, "A to see B's rows after A's", lagOf(a, b, 0), a, b)
	eventually(t, 30*time.Second, "B to see C 2 behind", lagOf(b, c, 2), a, b)
	devs, r = a.devices()
	t.Logf("A, with C stopped:\n%s", r.stdout)
	behind(t, a, devs, c, ids[c], 3) // A's 4 versions but the first
	behind(t, a, devs, b, ids[b], 0)
	devs, r = b.devices()
	t.Logf("B, with C stopped:\n%s", r.stdout)
	behind(t, b, devs, c, ids[c], 2) // B's 3 versions but the first

	// C starts again and catches up; asked again, it says so.
	c.start()
	eventually(t, 30*time.Second, "C to hold the 8 messages", func() bool { return converged(t, 8, a, b, c) }, a, b, c)
	devs, r = a.devices("--refresh", "--timeout", "30s")
	t.Logf("A, after C caught up:\n%s", r.stdout)
	checkTable(t, a, devs, ids, names, since)
	behind(t, a, devs, b, ids[b], 0)
	behind(t, a, devs, c, ids[c], 0)
	if e, _ := entry(devs, ids[c]); e.Messages != 8 {
		t.Errorf("A says C reported %d messages, want 8: %+v", e.Messages, e)
	}
}

func TestDeviceReportsCostAtMostTheAllowedRows(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key, `device_name = "alpha"`)
	b := newE2EDevice(t, "B", srv, key, `device_name = "bravo"`)
	c := newE2EDevice(t, "C", srv, key, `device_name = "charlie"`)
	all := []*e2eDevice{a, b, c}
	for _, d := range all {
		d.start()
	}
	ids := map[*e2eDevice]string{}
	for _, d := range all {
		ids[d] = strings.ToLower(deviceID(t, d))
	}
	written := 0
	round := func(what string, from ...*e2eDevice) {
		t.Helper()
		for _, d := range from {
			written++
			d.write(fmt.Sprintf("bob/%s%03d.json", d.name, written), e2eMsg(fmt.Sprintf("budget-%03d@e2e.test", written), what+" on "+d.name))
		}
		eventually(t, 30*time.Second, fmt.Sprintf("every device to hold %d messages (%s)", written, what), func() bool { return converged(t, written, all...) }, all...)
	}
	want := func(when string, n map[*e2eDevice]int) {
		t.Helper()
		by, total := reports(t, srv, key)
		sum := 0
		for d, k := range n {
			sum += k
			if by[ids[d]] != k {
				t.Errorf("%s: %s wrote %d reports, want %d", when, d.name, by[ids[d]], k)
			}
		}
		if total != sum {
			t.Errorf("%s: the journal holds %d reports, want %d (by device: %v)", when, total, sum, by)
		}
	}

	// One report each at the first catch-up, and none for the traffic of
	// the next minutes: a device reports at most once an hour, and its
	// rows say how far it has applied.
	eventually(t, 30*time.Second, "a report from every device", func() bool {
		by, _ := reports(t, srv, key)
		return by[ids[a]] > 0 && by[ids[b]] > 0 && by[ids[c]] > 0
	}, all...)
	want("after the start", map[*e2eDevice]int{a: 1, b: 1, c: 1})
	for range 4 {
		round("traffic", all...)
	}
	want("after 12 messages", map[*e2eDevice]int{a: 1, b: 1, c: 1})

	// A refresh: A's report asking, and one answer from each of the two
	// others, whatever they write after it.
	if r := a.run("devices", "--refresh", "--json", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	want("after A's refresh", map[*e2eDevice]int{a: 2, b: 2, c: 2})
	round("after the refresh", all...)
	round("after the refresh, again", all...)
	want("after the refresh and 6 messages", map[*e2eDevice]int{a: 2, b: 2, c: 2})

	// B restarts with nothing changed: no report.
	b.stop()
	b.start()
	round("after B's restart", a, b)
	want("after B's restart", map[*e2eDevice]int{a: 2, b: 2, c: 2})

	// No report is a message anywhere.
	for _, d := range all {
		got, _ := d.messages()
		if n := countFiles(t, d.store); n != written || len(got) != written {
			t.Errorf("%s's store holds %d files, %d messages, want %d of each", d.name, n, len(got), written)
		}
		for id := range got {
			if !strings.HasPrefix(id, "budget-") {
				t.Errorf("%s's store holds message %q, which no test wrote", d.name, id)
			}
		}
	}
}

// sealedRow puts one journal row, as another device would, sealed with the
// keys of keyFile, and returns its journal id.
func sealedRow(t *testing.T, srv *e2eServer, keyFile, device string, msg map[string]any) int64 {
	t.Helper()
	kr, err := seal.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(msg)
	env, err := kr.Seal(seal.Entry{Op: seal.OpPut, MsgID: msg["msgid"].(string), Account: e2eAccount, Device: device, Time: time.Now(), Message: data})
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.client.PutJournalEntries(context.Background(), device, []account.PutEntry{{ID: "1", Data: env}})
	if err != nil || len(res) != 1 || !res[0].Stored {
		t.Fatalf("put a row as another device: %v %+v", err, res)
	}
	return res[0].JournalID
}

// editUnseen changes a message file in place as a hand edit or bit rot
// would, keeping its size and modification time: what the daemon's file
// index compares, so the daemon does not see it.
func editUnseen(t *testing.T, path, old, new string) {
	t.Helper()
	if len(old) != len(new) {
		t.Fatalf("%q and %q differ in length", old, new)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not hold %q", path, old)
	}
	tmp := filepath.Join(filepath.Dir(path), ".edit.tmp") // a name the daemon ignores
	if err := os.WriteFile(tmp, []byte(strings.Replace(string(data), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The differences verify must find are made as they happen: the server
// restored from a backup while device B runs, B idle, so that B does not
// notice (it wrote nothing since) — B then holds 2 messages the journal
// lost (never pushed) and has deleted one the journal holds again (deleted
// here, alive there); another device writes after the restore, its row
// taking an id B has read past (missing here); a row sealed under a key B
// lacks (undecryptable); and B's copy of a message edited by hand, size and
// time kept, which the daemon's index cannot see (differs).
func TestVerifyFindsEachKindOfDifferenceAndRepairFixesIt(t *testing.T) {
	srv := startServer(t)
	key, otherKey := newKeyFile(t), newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key)
	b := newE2EDevice(t, "B", srv, key)
	a.start()
	b.start()
	for i := range 3 {
		a.write(fmt.Sprintf("bob/v%d.json", i), e2eMsg(fmt.Sprintf("verify-%d@e2e.test", i), "written on A before the backup"))
	}
	eventually(t, 30*time.Second, "B to hold A's 3 messages, and both to have reported", func() bool {
		_, n := reports(t, srv, key)
		return converged(t, 3, a, b) && n == 2
	}, a, b)
	v, r := b.verify(false)
	if !v.InSync || r.code != 0 || v.MissingHere+v.NeverPushed+v.Differs+v.Undecryptable+v.DeletedHereAliveThere != 0 || len(v.Examples) != 0 {
		t.Errorf("B, in sync, is not said to be: %s\n%s", differences(v), r)
	}
	if v.Rows != 5 || v.Local != 3 || v.Messages != 3 {
		t.Errorf("verify read %d rows, %d messages, %d local; want 5 rows (3 messages, 2 reports), 3 messages, 3 local", v.Rows, v.Messages, v.Local)
	}

	backup := filepath.Join(t.TempDir(), "backup")
	srv.restart(t, func(data string) {
		if err := os.CopyFS(backup, os.DirFS(data)); err != nil {
			t.Fatal(err)
		}
	})
	for i := 3; i <= 4; i++ {
		a.write(fmt.Sprintf("bob/v%d.json", i), e2eMsg(fmt.Sprintf("verify-%d@e2e.test", i), "written on A after the backup"))
	}
	eventually(t, 30*time.Second, "B to hold A's 5 messages", func() bool { return converged(t, 5, a, b) }, a, b)
	_, paths := b.messages()
	editUnseen(t, filepath.Join(b.store, paths["verify-0@e2e.test"]), "before the backup", "BEFORE THE BACKUP")
	if err := os.Remove(filepath.Join(b.store, paths["verify-1@e2e.test"])); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "B's delete on A", func() bool { return converged(t, 4, a) && idle(t, b) }, a, b)
	if n := messageRows(t, srv, key); n != 6 {
		t.Fatalf("the journal holds %d message rows, want 6 (B's hand edit must not be pushed, its delete must)", n)
	}
	a.stop()
	st, _ := b.status(t)
	cursor := st.Cursor

	srv.restart(t, func(data string) {
		os.RemoveAll(data)
		if err := os.CopyFS(data, os.DirFS(backup)); err != nil {
			t.Fatal(err)
		}
	})
	if n := messageRows(t, srv, key); n != 3 {
		t.Fatalf("the restored journal holds %d message rows, want the backup's 3", n)
	}
	other := "urn:uuid:0d5f1c8e-3b7a-4c2e-9a61-5e4f3d2c1b0a"
	if id := sealedRow(t, srv, otherKey, other, e2eMsg("verify-sealed-elsewhere@e2e.test", "under a key B lacks")); id > cursor {
		t.Fatalf("the row under the other key took id %d; B polls above %d", id, cursor)
	}
	if id := sealedRow(t, srv, key, other, e2eMsg("verify-other@e2e.test", "written by another device after the restore")); id > cursor {
		t.Fatalf("the other device's row took id %d; B polls above %d", id, cursor)
	}
	kr, err := seal.LoadKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	otherID := kr.Current().ID()

	v, r = b.verify(false)
	t.Logf("before the repair: %s", differences(v))
	if v.InSync || r.code != 1 {
		t.Errorf("verify says in_sync %v and exits %d, want false and 1\n%s", v.InSync, r.code, r)
	}
	for _, c := range []struct {
		kind      string
		got, want int
	}{
		{apitype.VerifyMissingHere, v.MissingHere, 1},
		{apitype.VerifyNeverPushed, v.NeverPushed, 2},
		{apitype.VerifyDiffers, v.Differs, 1},
		{apitype.VerifyUndecryptable, v.Undecryptable, 1},
		{apitype.VerifyDeletedHere, v.DeletedHereAliveThere, 1},
	} {
		if c.got != c.want {
			t.Errorf("verify counts %d %s, want %d", c.got, c.kind, c.want)
		}
	}
	kinds := map[string]string{}
	undecryptable := false
	for _, ex := range v.Examples {
		if ex.Kind == apitype.VerifyUndecryptable {
			undecryptable = true
			if ex.KeyID != otherID {
				t.Errorf("the undecryptable example names key %q, want %q", ex.KeyID, otherID)
			}
			continue
		}
		kinds[ex.MsgID] = ex.Kind
	}
	wantKinds := map[string]string{
		"verify-other@e2e.test": apitype.VerifyMissingHere,
		"verify-3@e2e.test":     apitype.VerifyNeverPushed,
		"verify-4@e2e.test":     apitype.VerifyNeverPushed,
		"verify-0@e2e.test":     apitype.VerifyDiffers,
		"verify-1@e2e.test":     apitype.VerifyDeletedHere,
	}
	if !sameMaps(kinds, wantKinds) || !undecryptable {
		t.Errorf("examples %v (undecryptable %v), want %v and an undecryptable one", kinds, undecryptable, wantKinds)
	}
	if v.UndecryptableKeys[otherID] != 1 {
		t.Errorf("undecryptable rows by key %v, want 1 under %s", v.UndecryptableKeys, otherID)
	}
	nreports := 0
	for _, r := range openedRows(t, srv, key) {
		if r.err == nil && r.entry.Op == seal.OpReport {
			nreports++
		}
	}
	if v.Rows != int64(5+nreports) || v.Local != 4 {
		t.Errorf("verify read %d rows and %d local messages, want %d (the backup's 3, the 2 put since, the %d reports) and 4", v.Rows, v.Local, 5+nreports, nreports)
	}

	// The repair fixes all but the row it cannot open.
	v, r = b.verify(true)
	t.Logf("the repair: %s, applied %d, queued %d", differences(v), v.Applied, v.Queued)
	if v.Applied+v.Queued != 5 {
		t.Errorf("the repair wrote %d here and queued %d, want 5 in all\n%s", v.Applied, v.Queued, r)
	}
	eventually(t, 30*time.Second, "the repair to go out and leave only the undecryptable row", func() bool {
		v, r = b.verify(false)
		return idle(t, b) && v.MissingHere+v.NeverPushed+v.Differs+v.DeletedHereAliveThere+v.Pending == 0
	}, b)
	if v.InSync || r.code != 1 || v.Undecryptable != 1 || v.Hint == "" {
		t.Errorf("with a row under a key B lacks: %s, exit %d; want not in sync, exit 1, 1 undecryptable and a hint", differences(v), r.code)
	}

	// The key imported, the row opens: in sync.
	line := b.run("key", "export", "--key-file", otherKey)
	if line.code != 0 {
		t.Fatalf("%s", line)
	}
	for _, d := range []*e2eDevice{b, a} {
		if r := d.run("key", "import", strings.TrimSpace(line.stdout)); r.code != 0 {
			t.Fatalf("%s", r)
		}
	}
	eventually(t, 60*time.Second, "B in sync once the key is imported", func() bool {
		v, r = b.verify(false)
		return v.InSync && r.code == 0
	}, b)
	if v.MissingHere+v.NeverPushed+v.Differs+v.Undecryptable+v.DeletedHereAliveThere != 0 || len(v.Examples) != 0 {
		t.Errorf("B in sync with differences: %s", differences(v))
	}
	// What the repair did: the hand edit, the newest version, was sent;
	// B's lost delete was sent again; what B lacked was written.
	got, _ := b.messages()
	want := []string{"verify-0@e2e.test", "verify-2@e2e.test", "verify-3@e2e.test", "verify-4@e2e.test", "verify-other@e2e.test", "verify-sealed-elsewhere@e2e.test"}
	if ids := slices.Sorted(maps.Keys(got)); !slices.Equal(ids, want) {
		t.Errorf("B holds %v after the repair, want %v", ids, want)
	}
	if !strings.Contains(got["verify-0@e2e.test"], "BEFORE THE BACKUP") {
		t.Errorf("B's hand edit of verify-0 is gone: %s", got["verify-0@e2e.test"])
	}

	// A, back, converges on the same history and is in sync too.
	a.start()
	eventually(t, 60*time.Second, "A and B to hold the same messages", func() bool {
		ga, _ := a.messages()
		gb, _ := b.messages()
		return len(ga) == len(gb) && sameMaps(ga, gb) && idle(t, a) && idle(t, b)
	}, a, b)
	if v, r := a.verify(false); !v.InSync || r.code != 0 {
		t.Errorf("A after the repair: %s\n%s", differences(v), r)
	}
}

func TestMetricsParseAndCountersMoveAsMessagesFlow(t *testing.T) {
	srv := startServer(t)
	key := newKeyFile(t)
	a := newE2EDevice(t, "A", srv, key, `device_name = "alpha"`)
	listen := freeLoopbackAddr(t)
	a.setDaemonOption(fmt.Sprintf("metrics_listen = %q", listen))
	b := newE2EDevice(t, "B", srv, key, `device_name = "bravo"`)
	// B first, so that its first report, on an empty journal, says it
	// has applied nothing; then A.
	b.start()
	idB := deviceID(t, b)
	eventually(t, 30*time.Second, "B's first report", func() bool { _, n := reports(t, srv, key); return n == 1 }, b)
	a.start()
	idA := deviceID(t, a)
	// Each has the other's first report.
	eventually(t, 30*time.Second, "A and B to know each other's reports", func() bool {
		da, _ := a.devices()
		db, _ := b.devices()
		ea, _ := entry(db, idA)
		eb, _ := entry(da, idB)
		return !ea.Reported.IsZero() && !eb.Reported.IsZero() && idle(t, a) && idle(t, b)
	}, a, b)

	acct := map[string]string{"account": e2eAccount}
	hc := &http.Client{Timeout: 30 * time.Second}
	scrapeA := func() map[string]*dto.MetricFamily {
		t.Helper()
		code, body := httpGet(t, hc, "http://"+listen+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET http://%s/metrics: %d %s", listen, code, body)
		}
		return scrape(t, "A's /metrics", body)
	}
	scrapeSocket := func(d *e2eDevice) map[string]*dto.MetricFamily {
		t.Helper()
		code, body := d.socketGet("/v1/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/metrics of %s: %d %s", d.name, code, body)
		}
		return scrape(t, d.name+"'s /v1/metrics", body)
	}
	value := func(fams map[string]*dto.MetricFamily, who, name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := sample(fams, name, labels)
		if !ok {
			t.Fatalf("%s has no %s%v; it has %v", who, name, labels, slices.Sorted(maps.Keys(fams)))
		}
		return v
	}

	// The socket and metrics_listen serve the same metrics, all with the
	// account label.
	overHTTP, overSocket := scrapeA(), scrapeSocket(a)
	if h, s := slices.Sorted(maps.Keys(overHTTP)), slices.Sorted(maps.Keys(overSocket)); !slices.Equal(h, s) {
		t.Errorf("metrics_listen serves %v, the socket %v", h, s)
	}
	for _, name := range []string{"chatsync_outbox_depth", "chatsync_push_entries_total", "chatsync_poll_rows_total",
		"chatsync_last_poll_success_timestamp_seconds", "chatsync_device_behind", "chatsync_sent_bytes_total", "chatsync_received_bytes_total"} {
		f, ok := overHTTP[name]
		if !ok {
			if name != "chatsync_device_behind" { // checked below, with its labels
				t.Errorf("A's metrics lack %s", name)
			}
			continue
		}
		for _, m := range f.GetMetric() {
			if v, _ := labelOf(m, "account"); v != e2eAccount {
				t.Errorf("%s%v has no account=%q label", name, m.GetLabel(), e2eAccount)
			}
		}
	}
	if v := value(overHTTP, "A", "chatsync_outbox_depth", acct); v != 0 {
		t.Errorf("A's outbox depth is %v while idle, want 0", v)
	}
	if v := value(overHTTP, "A", "chatsync_last_poll_success_timestamp_seconds", acct); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("A's last good poll is %v, over a minute ago", time.Unix(int64(v), 0))
	}
	before := scrapeSocket(b)

	for i := range 5 {
		a.write(fmt.Sprintf("bob/m%d.json", i), e2eMsg(fmt.Sprintf("metrics-%d@e2e.test", i), "counted"))
	}
	eventually(t, 30*time.Second, "B to hold A's 5 messages", func() bool { return converged(t, 5, a, b) }, a, b)
	afterA, afterB := scrapeA(), scrapeSocket(b)
	if d := value(afterA, "A", "chatsync_push_entries_total", acct) - value(overHTTP, "A", "chatsync_push_entries_total", acct); d != 5 {
		t.Errorf("A's chatsync_push_entries_total grew by %v for 5 messages, want 5", d)
	}
	if d := value(afterA, "A", "chatsync_sent_bytes_total", acct) - value(overHTTP, "A", "chatsync_sent_bytes_total", acct); d <= 0 {
		t.Errorf("A's chatsync_sent_bytes_total grew by %v while it sent 5 messages", d)
	}
	if d := value(afterB, "B", "chatsync_poll_rows_total", acct) - value(before, "B", "chatsync_poll_rows_total", acct); d != 5 {
		t.Errorf("B's chatsync_poll_rows_total grew by %v for A's 5 messages, want 5", d)
	}
	if d := value(afterB, "B", "chatsync_received_bytes_total", acct) - value(before, "B", "chatsync_received_bytes_total", acct); d <= 0 {
		t.Errorf("B's chatsync_received_bytes_total grew by %v while it received 5 messages", d)
	}

	// B has said nothing since its first report: A counts it 5 behind,
	// until a refresh.
	bravo := map[string]string{"account": e2eAccount, "device": idB, "name": "bravo"}
	if v, ok := sample(afterA, "chatsync_device_behind", bravo); !ok || v != 5 {
		e, _ := entry(first(a.devices()), idB)
		t.Errorf("A's chatsync_device_behind%v is %v (present %v) before a refresh, want 5; A's devices says of B: %+v", bravo, v, ok, e)
	}
	if r := a.run("devices", "--refresh", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if v := value(scrapeA(), "A", "chatsync_device_behind", bravo); v != 0 {
		t.Errorf("A's chatsync_device_behind%v is %v after a refresh, want 0", bravo, v)
	}
	alpha := map[string]string{"account": e2eAccount, "device": idA, "name": "alpha"}
	if v := value(scrapeSocket(b), "B", "chatsync_device_behind", alpha); v != 0 {
		t.Errorf("B's chatsync_device_behind%v is %v, want 0 (B wrote nothing)", alpha, v)
	}
}

func TestStatusSaysStalledWhenPollsStopAndExitCodeIs3(t *testing.T) {
	// --strict-compat: the server answers polls at once, as the real one
	// does, so the daemon polls every poll_interval (1 s).
	srv := startServerArgs(t, "--strict-compat")
	a := newE2EDevice(t, "A", srv, newKeyFile(t))
	a.start()
	a.write("bob/m1.json", e2eMsg("stall-1@e2e.test", "before the server stops"))
	eventually(t, 30*time.Second, "A to push its message", func() bool { return len(srv.rows(t)) >= 1 && idle(t, a) }, a)
	if r := a.run("status"); r.code != 0 {
		t.Fatalf("a running account: %s", r)
	}
	events := a.events()

	srv.stop()
	stoppedAt := time.Now()
	var st apitype.AccountStatus
	eventually(t, 30*time.Second, "status to say A is stalled", func() bool {
		var ok bool
		st, ok = accountStatus(cliStatus(t, a.config), e2eAccount)
		return ok && st.Stalled != ""
	}, a)
	t.Logf("stalled %s after the server stopped: %q", time.Since(stoppedAt).Round(time.Second), st.Stalled)
	if d := time.Since(stoppedAt); d < 3*time.Second {
		t.Errorf("stalled %s after the server stopped, before 5 poll intervals (5 s)", d)
	}
	if time.Since(st.LastGoodPoll) < 5*time.Second {
		t.Errorf("stalled with a good poll at %v, under 5 poll intervals ago", st.LastGoodPoll)
	}
	r := a.run("status")
	if r.code != 3 || !strings.Contains(r.stdout+r.stderr, "stalled") {
		t.Errorf("chatsync status of a stalled account: want exit 3 and \"stalled\"\n%s", r)
	}
	if ev := waitEvent(t, events, apitype.EventStalled, 10*time.Second, a); ev.Account != e2eAccount || ev.Message == "" {
		t.Errorf("stalled event %+v: want the account and why", ev)
	}

	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	srv.start(t, u.Host)
	eventually(t, 60*time.Second, "A to recover", func() bool {
		st, ok := accountStatus(cliStatus(t, a.config), e2eAccount)
		return ok && st.Stalled == "" && a.run("status").code == 0
	}, a)
	waitEvent(t, events, apitype.EventRecovered, 10*time.Second, a)
	a.write("bob/m2.json", e2eMsg("stall-2@e2e.test", "after the server is back"))
	eventually(t, 30*time.Second, "A to push again", func() bool { return len(srv.rows(t)) >= 2 && idle(t, a) }, a)
}
