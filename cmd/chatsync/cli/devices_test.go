package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
)

// TestDevicesListsThisDeviceFirstAndAnswersARefresh: two real daemons of
// one account. `devices --json` on A is SPEC §8b's object, A first; the
// human form is one line per device; --refresh returns once B has
// reported after it, well before its timeout; with B stopped, --refresh
// waits out its timeout, prints the list and names B on stderr, exit 0.
func TestDevicesListsThisDeviceFirstAndAnswersARefresh(t *testing.T) {
	url, key := startServer(t, false), newKeyFile(t)
	a := startDevice(t, url, key, "pw-alice", map[string]string{
		"bob/m1.json": `{"msgid":"m1","remote_uri":"bob@example.com","body":"hi"}`,
	}, `device_name = "desk"`)
	b := startDevice(t, url, key, "pw-alice", nil, `device_name = "laptop"`)
	waitFor(t, 20*time.Second, "B to receive A's message", func() bool { return b.accountStatus(t).Received == 1 })
	waitFor(t, 20*time.Second, "A to know B", func() bool {
		var devs apitype.Devices
		a.cliJSON(t, &devs, "devices")
		return len(devs.Devices) == 2
	})

	start := time.Now()
	code, out, errs := a.cli(t, "devices", "--refresh", "--json", "--timeout", "30s")
	if code != 0 || time.Since(start) > 20*time.Second {
		t.Fatalf("devices --refresh --json: exit %d after %s\nstderr: %s", code, time.Since(start), errs)
	}
	if strings.Contains(errs, "no fresh report") {
		t.Errorf("B answered, yet stderr says %q", errs)
	}
	var devs apitype.Devices
	if err := json.Unmarshal([]byte(out), &devs); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, out)
	}
	var raw struct {
		Devices []map[string]json.RawMessage `json:"devices"`
	}
	json.Unmarshal([]byte(out), &raw)
	for _, k := range []string{"device_id", "name", "version", "last_seen", "key_ids", "behind", "self"} {
		if len(raw.Devices) == 0 || raw.Devices[len(raw.Devices)-1][k] == nil {
			t.Errorf("devices --json lacks %q:\n%s", k, out)
		}
	}
	if devs.Account != testAccount || len(devs.Devices) != 2 {
		t.Fatalf("devices = %+v, want 2 devices of %s", devs, testAccount)
	}
	self, other := devs.Devices[0], devs.Devices[1]
	if !self.Self || self.DeviceID != a.d.DeviceID() || self.Name != "desk" || self.Version != "test-1" {
		t.Errorf("first device = %+v, want A itself, named desk, version test-1", self)
	}
	if other.Self || other.DeviceID != b.d.DeviceID() || other.Name != "laptop" || other.Behind != 0 || !other.Reported.After(start.Add(-time.Second)) || len(other.KeyIDs) == 0 {
		t.Errorf("second device = %+v, want B, named laptop, up to date, reported after the refresh", other)
	}

	code, out, errs = a.cli(t, "devices")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || errs != "" || len(lines) != 3 || lines[0] != testAccount+": 2 chatsync devices" {
		t.Fatalf("devices: exit %d, stderr %q\n%s", code, errs, out)
	}
	for i, want := range [][]string{
		{"desk", shortID(a.d.DeviceID()), "test-1", "(this device)", "keys "},
		{"laptop", shortID(b.d.DeviceID()), "test-1", "keys ", "up to date"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %d %q lacks %q", i+2, lines[i+1], w)
			}
		}
	}

	// B stops: nobody answers the next refresh.
	b.stop()
	start = time.Now()
	code, out, errs = a.cli(t, "devices", "--refresh", "--timeout", "2s")
	took := time.Since(start)
	if code != 0 || took < 2*time.Second || took > 15*time.Second {
		t.Errorf("devices --refresh with B stopped: exit %d after %s, want 0 after the 2s timeout", code, took)
	}
	if !strings.Contains(out, "laptop") || !strings.Contains(out, "(this device)") {
		t.Errorf("the list is not printed at the timeout:\n%s", out)
	}
	silent := lastLine(errs)
	for _, w := range []string{"no fresh report within 2s from laptop (" + shortID(b.d.DeviceID()) + ")", "next poll", "not running?"} {
		if !strings.Contains(silent, w) {
			t.Errorf("stderr's last line %q lacks %q", silent, w)
		}
	}
}

// TestDevicesHumanLineSaysHowFarBehindEachDeviceIs pins the words of each
// case: up to date; behind as of an older report; newer versions not
// confirmed yet by a device that said how far it was a moment ago; the
// same from a device that did not answer a refresh, or has been quiet for
// longer than its reports allow; unknown; a key this device lacks; a
// device not heard from for days.
func TestDevicesHumanLineSaysHowFarBehindEachDeviceIs(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	silent := apitype.SyncDevice{DeviceID: "urn:uuid:33334444-0000-4000-8000-000000000000", Name: "tablet", Version: "0.3.0", KeyIDs: []string{"290b1bf8"}, Behind: 2, Unconfirmed: 2, LastSeen: now.Add(-30 * time.Second), AppliedAt: now.Add(-30 * time.Second)}
	printSyncDevices(&out, []apitype.Devices{{Account: "alice@example.com", Devices: []apitype.SyncDevice{
		{DeviceID: "urn:uuid:1a2b3c4d-0000-4000-8000-000000000000", Name: "desk", Version: "0.3.0", KeyIDs: []string{"290b1bf8"}, Self: true, LastSeen: now},
		{DeviceID: "urn:uuid:5e6f7a8b-0000-4000-8000-000000000000", Name: "laptop", Version: "0.3.0", KeyIDs: []string{"290b1bf8"}, LastSeen: now.Add(-2 * time.Minute), AppliedAt: now.Add(-2 * time.Minute)},
		{DeviceID: "urn:uuid:9c0d1e2f-0000-4000-8000-000000000000", Name: "phone", Version: "0.3.0", KeyIDs: []string{"290b1bf8", "77aa88bb"}, Behind: 3, LastSeen: now.Add(-40 * time.Minute), AppliedAt: now.Add(-40 * time.Minute)},
		{DeviceID: "urn:uuid:11112222-0000-4000-8000-000000000000", Name: "watch", Version: "0.3.0", KeyIDs: []string{"290b1bf8"}, Behind: 3, Unconfirmed: 3, LastSeen: now.Add(-4 * time.Second), AppliedAt: now.Add(-4 * time.Second)},
		silent,
		{DeviceID: "urn:uuid:55556666-0000-4000-8000-000000000000", Name: "tv", Version: "0.3.0", KeyIDs: []string{"290b1bf8"}, Behind: 1, Unconfirmed: 1, LastSeen: now.Add(-2 * time.Hour), AppliedAt: now.Add(-2 * time.Hour)},
		{DeviceID: "urn:uuid:aabbccdd-0000-4000-8000-000000000000", Version: "", KeyIDs: []string{"11112222"}, Behind: -1, LastSeen: now.Add(-12*24*time.Hour - time.Hour), MissingKeys: []string{"11112222"}},
	}}}, []apitype.SyncDevice{silent}, now)
	want := `alice@example.com: 7 chatsync devices
  desk    1a2b3c4d  0.3.0  (this device)               keys 290b1bf8
  laptop  5e6f7a8b  0.3.0  2m ago                      keys 290b1bf8           up to date
  phone   9c0d1e2f  0.3.0  40m ago                     keys 290b1bf8,77aa88bb  3 behind, as of its report 40m ago
  watch   11112222  0.3.0  4s ago                      keys 290b1bf8           up to date as of 4s ago; 3 newer not confirmed yet
  tablet  33334444  0.3.0  30s ago                     keys 290b1bf8           2 behind, did not answer a refresh: not running?
  tv      55556666  0.3.0  2h ago                      keys 290b1bf8           1 behind, as of its report 2h ago
  -       aabbccdd  -      not heard from for 12 days  keys 11112222           behind: unknown (no report); sealed under a key this device lacks: 11112222
`
	if out.String() != want {
		t.Errorf("devices:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestVerifySaysInSyncAndExits0OrCountsTheDifferencesAndExits1: A's
// message is in the journal and in A's store: in sync, exit 0. B writes
// under a key A does not hold: A cannot open that row, so A is not in
// sync (exit 1, one line on stderr), and a repair cannot change that.
// (B's report is such a row too.) The
// repair shows its progress on stderr, never with --json.
func TestVerifySaysInSyncAndExits0OrCountsTheDifferencesAndExits1(t *testing.T) {
	url := startServer(t, false)
	a := startDevice(t, url, newKeyFile(t), "pw-alice", map[string]string{
		"bob/m1.json": `{"msgid":"m1","remote_uri":"bob@example.com","body":"hi"}`,
	})
	waitFor(t, 15*time.Second, "A's message sent", func() bool { s := a.accountStatus(t); return s.Pushed == 1 && s.OutboxDepth == 0 })
	code, out, errs := a.cli(t, "verify")
	if code != 0 || out != "in sync: 1 message in the journal, 1 here\n" || errs != "" {
		t.Fatalf("verify: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	var res apitype.VerifyResult
	a.cliJSON(t, &res, "verify")
	if !res.InSync || res.Account != testAccount || res.Messages != 1 || res.Local != 1 || res.Examples == nil {
		t.Errorf("verify --json = %+v", res)
	}

	b := startDevice(t, url, newKeyFile(t), "pw-alice", map[string]string{
		"bob/m2.json": `{"msgid":"m2","remote_uri":"bob@example.com","body":"under another key"}`,
	})
	waitFor(t, 15*time.Second, "B's message sent", func() bool { s := b.accountStatus(t); return s.Pushed == 1 && s.OutboxDepth == 0 })
	code, out, errs = a.cli(t, "verify")
	if code != ExitFailure {
		t.Errorf("verify with a row under an unknown key: exit %d, want 1", code)
	}
	for _, w := range []string{"not in sync: ", "  undecryptable:", "examples:", "undecryptable"} {
		if !strings.Contains(out, w) {
			t.Errorf("verify's stdout lacks %q:\n%s", w, out)
		}
	}
	wantOneLine(t, "verify not in sync", errs)
	if !strings.HasPrefix(errs, "chatsync: "+testAccount+": not in sync: ") || !strings.Contains(errs, " undecryptable: ") || !strings.Contains(errs, "chatsync key import") {
		t.Errorf("stderr = %q", errs)
	}

	code, out, errs = a.cli(t, "verify", "--repair")
	if code != ExitFailure || !strings.Contains(errs, "journal: ") || !strings.Contains(errs, "rows read") {
		t.Errorf("verify --repair: exit %d, want 1 with progress on stderr\nstdout: %s\nstderr: %s", code, out, errs)
	}
	code, out, errs = a.cli(t, "verify", "--repair", "--json")
	res = apitype.VerifyResult{}
	if err := json.Unmarshal([]byte(out), &res); code != ExitFailure || err != nil || res.InSync || res.Undecryptable == 0 || strings.Contains(errs, "rows read") {
		t.Errorf("verify --repair --json: exit %d, %v, %+v, stderr %q; want 1, the result, no progress", code, err, res, errs)
	}
	if code, _, errs := a.cli(t, "--account", "nobody@example.com", "verify"); code != ExitFailure || !strings.Contains(errs, "not in the config") {
		t.Errorf("verify of an unknown account: exit %d, stderr %q", code, errs)
	}
}

// TestVerifyHumanResultCountsEachKindAndShowsTenExamples pins the words
// of a result that is not in sync, after a repair.
func TestVerifyHumanResultCountsEachKindAndShowsTenExamples(t *testing.T) {
	r := &apitype.VerifyResult{Account: "alice@example.com", Messages: 1234, Local: 1220, MissingHere: 12, Differs: 2,
		Applied: 3, Queued: 1, Hint: "run `chatsync verify --repair`"}
	for i := range 14 {
		r.Examples = append(r.Examples, apitype.VerifyExample{MsgID: "m" + string(rune('a'+i)), Kind: apitype.VerifyMissingHere})
	}
	var out bytes.Buffer
	printVerify(&out, r)
	got := out.String()
	for _, w := range []string{
		"repaired: 3 written here, 1 queued to be sent\n",
		"not in sync: 1,234 messages in the journal, 1,220 here\n",
		"  missing here:  12\n  differs:       2\n",
		"examples:\n  ma  missing_here\n",
		"  mj  missing_here\nhint: run `chatsync verify --repair`\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("verify output lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "mk") {
		t.Errorf("more than 10 examples:\n%s", got)
	}
	if line := notInSyncLine(r); line != "alice@example.com: not in sync: 12 missing here, 2 differs: run `chatsync verify --repair`" {
		t.Errorf("stderr line = %q", line)
	}
}

// TestStatusShowsStalledLaggingAndTraffic: the lines status adds for an
// account the engine counts as stalled, with the device furthest behind.
func TestStatusShowsStalledLaggingAndTraffic(t *testing.T) {
	now := time.Now()
	st := &apitype.Status{Version: "v", DeviceID: "urn:uuid:x", Accounts: []apitype.AccountStatus{{
		Account: "alice@example.com", State: apitype.StateIdle, BytesSent: 1234567, BytesReceived: 999,
		Stalled: "laptop (1a2b3c4d) has not applied this device's messages for 3 days: is it running?",
		Lagging: &apitype.Lag{DeviceID: "urn:uuid:1a2b3c4d-0000", Name: "laptop", Behind: 12, Since: now.Add(-3*24*time.Hour - time.Minute)},
	}}}
	var out bytes.Buffer
	printStatus(&out, st, now)
	for _, w := range []string{
		"  traffic:    1.2 MB sent, 999 B received since start\n",
		"  stalled:    laptop (1a2b3c4d) has not applied this device's messages for 3 days: is it running?\n",
		"  lagging:    laptop (1a2b3c4d) has not applied 12 of this device's messages since 3 days ago\n",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("status lacks %q:\n%s", w, out.String())
		}
	}
	err := statusProblems(st, now)
	if ec, ok := err.(exitError); !ok || ec.code != ExitNotRunning || !strings.Contains(err.Error(), "alice@example.com: stalled: laptop") {
		t.Errorf("statusProblems = %v, want exit 3 naming the stall", err)
	}
}

// TestRefreshWaitsForTheDevicesThatCanAnswer: only other devices heard
// from in the last 7 days whose reports can be read here are waited for.
func TestRefreshWaitsForTheDevicesThatCanAnswer(t *testing.T) {
	asked := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	devs := []apitype.Devices{{Devices: []apitype.SyncDevice{
		{DeviceID: "self", Self: true, LastSeen: asked},
		{DeviceID: "answered", LastSeen: asked.Add(time.Second), Reported: asked.Add(time.Second)},
		{DeviceID: "silent", LastSeen: asked.Add(-time.Hour), Reported: asked.Add(-time.Hour)},
		{DeviceID: "old-chatsync", LastSeen: asked.Add(-time.Hour)},
		{DeviceID: "gone", LastSeen: asked.Add(-8 * 24 * time.Hour), Reported: asked.Add(-8 * 24 * time.Hour)},
		{DeviceID: "other-key", LastSeen: asked.Add(-time.Hour), MissingKeys: []string{"1c28bd88"}},
	}}}
	var ids []string
	for _, d := range unanswered(devs, asked) {
		ids = append(ids, d.DeviceID)
	}
	if got := strings.Join(ids, " "); got != "silent old-chatsync" {
		t.Errorf("waited for %q, want \"silent old-chatsync\"", got)
	}
}
