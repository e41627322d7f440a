package metrics

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatsync/chatsync/sync/apitype"
)

// now is the clock of every handler under test.
var now = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

// fakeSource serves a fixed status and device list. A fake is right here:
// what is tested is the exposition of what the daemon reports, not how
// the daemon comes to report it.
type fakeSource struct {
	mu      sync.Mutex
	status  apitype.Status
	devices []apitype.Devices
}

func (f *fakeSource) Status() apitype.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeSource) Devices() []apitype.Devices {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices
}

func (f *fakeSource) set(fn func(*apitype.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.status)
}

// Times of the full source, with sub-second parts so that a conversion
// that loses them shows.
var (
	started      = now.Add(-2*time.Hour + 123456789)
	oldestUnsent = now.Add(-90 * time.Second)
	lastPush     = now.Add(-time.Minute + 250*time.Millisecond)
	lastGoodPoll = now.Add(-30*time.Second + 5*time.Millisecond)
	backoffUntil = now.Add(15 * time.Second)
	phoneSeen    = now.Add(-3*time.Minute + 987654321)
	tabletSeen   = now.Add(-48 * time.Hour)
)

const (
	self   = "urn:uuid:00000000-0000-4000-8000-000000000001"
	phone  = "urn:uuid:00000000-0000-4000-8000-000000000002"
	tablet = "urn:uuid:00000000-0000-4000-8000-000000000003"
)

// fullSource has every field the metrics read set, for alice, and a
// second account, bob, that is idle and has no devices.
func fullSource() *fakeSource {
	return &fakeSource{
		status: apitype.Status{
			Version:     "1.4.0",
			DeviceID:    self,
			Started:     started,
			ConfigError: "line 3: unknown key",
			Accounts: []apitype.AccountStatus{{
				Account:       "alice@example.com",
				State:         apitype.StateBackoff,
				Error:         "server error (HTTP 503)",
				Cursor:        1234,
				OutboxDepth:   3,
				OldestUnsent:  oldestUnsent,
				LastPush:      lastPush,
				LastPoll:      now.Add(-5 * time.Second),
				LastPollError: "server error (HTTP 503)",
				LastGoodPoll:  lastGoodPoll,
				Listening:     true,
				BackoffUntil:  backoffUntil,
				Failures:      2,
				Held:          []apitype.Held{{MsgID: "m1", Attempts: 3, Reason: "too large"}},
				Unapplied:     4,
				Pushed:        17,
				Received:      42,
				Skipped:       map[string]int{"undecryptable": 2, "malformed": 1},
				Rejected:      []apitype.Rejected{{Path: "a.json", Reason: "no msgid"}, {Path: "b.json", Reason: "not JSON"}},
				Stalled:       "no good poll for 5 poll intervals",
				BytesSent:     1000,
				BytesReceived: 5000,
			}, {
				Account:      "bob@example.com",
				State:        apitype.StateIdle,
				Cursor:       7,
				LastGoodPoll: now.Add(-time.Second),
			}},
		},
		devices: []apitype.Devices{{
			Account: "alice@example.com",
			Devices: []apitype.SyncDevice{
				{DeviceID: self, Name: "laptop", Behind: 0, LastSeen: now, Self: true},
				{DeviceID: phone, Name: "phone", Behind: 5, Unconfirmed: 2, LastSeen: phoneSeen},
				{DeviceID: tablet, Name: "tablet", Behind: -1, LastSeen: tabletSeen},
			},
		}, {
			Account: "bob@example.com",
		}},
	}
}

// scrape gets the handler's page over HTTP and parses it with
// Prometheus' own text parser.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the Prometheus text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	return fams
}

// series returns the metrics of the family name whose labels include
// every one of want.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			if labelsOf(m)[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.Label {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// value returns the value of the one series of name with the labels
// want, checking the family's type.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, want map[string]string) float64 {
	t.Helper()
	ms := series(fams, name, want)
	if len(ms) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(ms))
	}
	if got := fams[name].GetType(); got != typ {
		t.Errorf("%s is a %v, want a %v", name, got, typ)
	}
	switch typ {
	case dto.MetricType_COUNTER:
		return ms[0].GetCounter().GetValue()
	default:
		return ms[0].GetGauge().GetValue()
	}
}

func acct(a string, more ...string) map[string]string {
	l := map[string]string{"account": a}
	for i := 0; i+1 < len(more); i += 2 {
		l[more[i]] = more[i+1]
	}
	return l
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

const (
	gauge   = dto.MetricType_GAUGE
	counter = dto.MetricType_COUNTER
)

func TestMetricsServeEveryAccountStatusField(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	a := acct("alice@example.com")
	for _, c := range []struct {
		name string
		typ  dto.MetricType
		want float64
	}{
		{"chatsync_outbox_depth", gauge, 3},
		{"chatsync_outbox_oldest_age_seconds", gauge, 90},
		{"chatsync_held_entries", gauge, 1},
		{"chatsync_push_entries_total", counter, 17},
		{"chatsync_poll_rows_total", counter, 42},
		{"chatsync_unapplied_rows", gauge, 4},
		{"chatsync_rejected_files", gauge, 2},
		{"chatsync_last_push_success_timestamp_seconds", gauge, unix(lastPush)},
		{"chatsync_last_poll_success_timestamp_seconds", gauge, unix(lastGoodPoll)},
		{"chatsync_backoff_until_timestamp_seconds", gauge, unix(backoffUntil)},
		{"chatsync_failures", gauge, 2},
		{"chatsync_problem", gauge, 1},
		{"chatsync_stalled", gauge, 1},
		{"chatsync_sent_bytes_total", counter, 1000},
		{"chatsync_received_bytes_total", counter, 5000},
		{"chatsync_cursor", gauge, 1234},
		{"chatsync_listening", gauge, 1},
	} {
		if got := value(t, fams, c.name, c.typ, a); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	for reason, want := range map[string]float64{"undecryptable": 2, "malformed": 1} {
		if got := value(t, fams, "chatsync_skipped_rows_total", counter, acct("alice@example.com", "reason", reason)); got != want {
			t.Errorf("skipped{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if n := len(series(fams, "chatsync_skipped_rows_total", a)); n != 2 {
		t.Errorf("%d skipped series for alice, want 2", n)
	}
}

func TestAccountStateIsOneForTheCurrentStateAndZeroForTheOthers(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	got := map[string]float64{}
	for _, m := range series(fams, "chatsync_account_state", acct("alice@example.com")) {
		got[labelsOf(m)["state"]] = m.GetGauge().GetValue()
	}
	want := map[string]float64{"starting": 0, "idle": 0, "backoff": 1, "paused": 0, "stopped": 0, "error": 0}
	if !maps.Equal(got, want) {
		t.Errorf("alice's states %v, want %v", got, want)
	}

	// A state this package does not know yet still shows, as 1.
	src := fullSource()
	src.set(func(s *apitype.Status) { s.Accounts[1].State = "migrating" })
	fams = scrape(t, newHandler(src, clock))
	if v := value(t, fams, "chatsync_account_state", gauge, acct("bob@example.com", "state", "migrating")); v != 1 {
		t.Errorf("bob's unknown state = %v, want 1", v)
	}
	if v := value(t, fams, "chatsync_account_state", gauge, acct("bob@example.com", "state", "idle")); v != 0 {
		t.Errorf("bob's idle state = %v, want 0", v)
	}
}

func TestDaemonMetricsCarryVersionDeviceIDAndStart(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	if v := value(t, fams, "chatsync_info", gauge, map[string]string{"version": "1.4.0", "device_id": self}); v != 1 {
		t.Errorf("chatsync_info = %v, want 1", v)
	}
	if v := value(t, fams, "chatsync_start_timestamp_seconds", gauge, nil); v != unix(started) {
		t.Errorf("start = %v, want %v", v, unix(started))
	}
	if v := value(t, fams, "chatsync_config_error", gauge, nil); v != 1 {
		t.Errorf("config_error = %v, want 1", v)
	}
}

func TestIdleAccountHasZerosNotMissingSeries(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	b := acct("bob@example.com")
	for name, typ := range map[string]dto.MetricType{
		"chatsync_outbox_depth":                        gauge,
		"chatsync_outbox_oldest_age_seconds":           gauge,
		"chatsync_push_entries_total":                  counter,
		"chatsync_last_push_success_timestamp_seconds": gauge,
		"chatsync_backoff_until_timestamp_seconds":     gauge,
		"chatsync_problem":                             gauge,
		"chatsync_stalled":                             gauge,
		"chatsync_listening":                           gauge,
	} {
		if v := value(t, fams, name, typ, b); v != 0 {
			t.Errorf("bob's %s = %v, want 0", name, v)
		}
	}
	if v := value(t, fams, "chatsync_cursor", gauge, b); v != 7 {
		t.Errorf("bob's cursor = %v, want 7", v)
	}
	if n := len(series(fams, "chatsync_skipped_rows_total", b)); n != 0 {
		t.Errorf("bob has %d skipped series, want none", n)
	}
}

func TestOutboxAgeIsZeroWhenTheOutboxIsEmpty(t *testing.T) {
	src := fullSource()
	// A stale OldestUnsent left behind after the outbox drained.
	src.set(func(s *apitype.Status) { s.Accounts[0].OutboxDepth = 0 })
	fams := scrape(t, newHandler(src, clock))
	if v := value(t, fams, "chatsync_outbox_oldest_age_seconds", gauge, acct("alice@example.com")); v != 0 {
		t.Errorf("age with an empty outbox = %v, want 0", v)
	}
}

func TestDeviceMetricsLeaveOutSelfAndUnknownLag(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	a := "alice@example.com"
	if v := value(t, fams, "chatsync_device_behind", gauge, acct(a, "device", phone, "name", "phone")); v != 5 {
		t.Errorf("phone behind = %v, want 5", v)
	}
	if v := value(t, fams, "chatsync_device_unconfirmed", gauge, acct(a, "device", phone, "name", "phone")); v != 2 {
		t.Errorf("phone unconfirmed = %v, want 2", v)
	}
	if v := value(t, fams, "chatsync_device_last_seen_timestamp_seconds", gauge, acct(a, "device", phone, "name", "phone")); v != unix(phoneSeen) {
		t.Errorf("phone last seen = %v, want %v", v, unix(phoneSeen))
	}
	// The tablet never said how far it applied: no lag series, but its
	// last-seen time.
	if n := len(series(fams, "chatsync_device_behind", acct(a, "device", tablet))); n != 0 {
		t.Errorf("%d behind series for the tablet (lag unknown), want none", n)
	}
	if v := value(t, fams, "chatsync_device_last_seen_timestamp_seconds", gauge, acct(a, "device", tablet, "name", "tablet")); v != unix(tabletSeen) {
		t.Errorf("tablet last seen = %v, want %v", v, unix(tabletSeen))
	}
	for _, name := range []string{"chatsync_device_behind", "chatsync_device_last_seen_timestamp_seconds"} {
		if n := len(series(fams, name, map[string]string{"device": self})); n != 0 {
			t.Errorf("%d %s series for this device, want none", n, name)
		}
	}
}

func TestAccountWithoutDevicesHasNoDeviceMetrics(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	for _, name := range []string{"chatsync_device_behind", "chatsync_device_last_seen_timestamp_seconds"} {
		if n := len(series(fams, name, acct("bob@example.com"))); n != 0 {
			t.Errorf("bob has %d %s series, want none", n, name)
		}
	}

	// Nor does a daemon whose accounts have no other devices serve the
	// families at all.
	src := fullSource()
	src.devices = nil
	fams = scrape(t, newHandler(src, clock))
	for _, name := range []string{"chatsync_device_behind", "chatsync_device_last_seen_timestamp_seconds"} {
		if fams[name] != nil {
			t.Errorf("%s served with no devices: %v", name, fams[name])
		}
	}
}

func TestTwoAccountsGiveTwoLabelSets(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	for _, name := range []string{
		"chatsync_outbox_depth", "chatsync_push_entries_total", "chatsync_poll_rows_total",
		"chatsync_last_poll_success_timestamp_seconds", "chatsync_cursor", "chatsync_problem",
	} {
		var accounts []string
		for _, m := range fams[name].GetMetric() {
			accounts = append(accounts, labelsOf(m)["account"])
		}
		slices.Sort(accounts)
		if want := []string{"alice@example.com", "bob@example.com"}; !slices.Equal(accounts, want) {
			t.Errorf("%s accounts %q, want %q", name, accounts, want)
		}
	}
	if v := value(t, fams, "chatsync_outbox_depth", gauge, acct("bob@example.com")); v != 0 {
		t.Errorf("bob's outbox = %v, want 0 (alice's 3 must not leak)", v)
	}
}

func TestRepeatedAccountOrDeviceDoesNotFailTheScrape(t *testing.T) {
	src := fullSource()
	src.set(func(s *apitype.Status) {
		dup := s.Accounts[0]
		dup.OutboxDepth = 99
		s.Accounts = append(s.Accounts, dup)
	})
	src.devices[0].Devices = append(src.devices[0].Devices, apitype.SyncDevice{DeviceID: phone, Name: "phone", Behind: 77})
	fams := scrape(t, newHandler(src, clock))
	if v := value(t, fams, "chatsync_outbox_depth", gauge, acct("alice@example.com")); v != 3 {
		t.Errorf("outbox = %v, want the first account's 3", v)
	}
	if v := value(t, fams, "chatsync_device_behind", gauge, acct("alice@example.com", "device", phone)); v != 5 {
		t.Errorf("phone behind = %v, want the first entry's 5", v)
	}
	if fams["promhttp_metric_handler_errors_total"].GetMetric() != nil {
		for _, m := range fams["promhttp_metric_handler_errors_total"].Metric {
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("handler errors %v = %v, want 0", labelsOf(m), v)
			}
		}
	}
}

func TestLabelValuesWithQuotesNewlinesAndBadUTF8ReadBack(t *testing.T) {
	const reason = "bad \"quote\"\nsecond line \\ backslash"
	src := fullSource()
	src.set(func(s *apitype.Status) { s.Accounts[0].Skipped = map[string]int{reason: 6} })
	src.devices[0].Devices[1].Name = "Bob's \"phone\"\n\xff"
	fams := scrape(t, newHandler(src, clock))
	if v := value(t, fams, "chatsync_skipped_rows_total", counter, acct("alice@example.com", "reason", reason)); v != 6 {
		t.Errorf("skipped{reason=%q} = %v, want 6", reason, v)
	}
	// Invalid UTF-8 cannot be a label value: it is replaced, and the
	// device still shows.
	if v := value(t, fams, "chatsync_device_behind", gauge, acct("alice@example.com", "device", phone, "name", "Bob's \"phone\"\n\uFFFD")); v != 5 {
		t.Errorf("behind of the oddly named phone = %v, want 5", v)
	}
}

func TestLongDeviceNameIsCutOnARuneBoundary(t *testing.T) {
	src := fullSource()
	src.devices[0].Devices[1].Name = "a" + strings.Repeat("é", 200) // é is 2 bytes: byte 128 is mid-rune
	fams := scrape(t, newHandler(src, clock))
	ms := series(fams, "chatsync_device_behind", acct("alice@example.com", "device", phone))
	if len(ms) != 1 {
		t.Fatalf("%d series for the phone, want 1", len(ms))
	}
	if got, want := labelsOf(ms[0])["name"], "a"+strings.Repeat("é", 63); got != want {
		t.Errorf("name %q (%d bytes), want %q (%d bytes)", got, len(got), want, len(want))
	}
}

func TestLastPushSuccessSurvivesAFailedPush(t *testing.T) {
	src := fullSource()
	h := newHandler(src, clock)
	a := acct("alice@example.com")
	if v := value(t, scrape(t, h), "chatsync_last_push_success_timestamp_seconds", gauge, a); v != unix(lastPush) {
		t.Fatalf("after a good push = %v, want %v", v, unix(lastPush))
	}
	// The next push fails: the status's LastPush is now the failure's.
	src.set(func(s *apitype.Status) {
		s.Accounts[0].LastPush = lastPush.Add(30 * time.Second)
		s.Accounts[0].LastPushError = "server error (HTTP 503)"
	})
	if v := value(t, scrape(t, h), "chatsync_last_push_success_timestamp_seconds", gauge, a); v != unix(lastPush) {
		t.Errorf("after a failed push = %v, want the earlier success %v", v, unix(lastPush))
	}
	// A handler that never saw a success does not know one.
	if v := value(t, scrape(t, newHandler(src, clock)), "chatsync_last_push_success_timestamp_seconds", gauge, a); v != 0 {
		t.Errorf("a new handler after a failed push = %v, want 0", v)
	}
}

func TestHandlerServesGoAndProcessMetrics(t *testing.T) {
	fams := scrape(t, Handler(fullSource()))
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		if len(fams[name].GetMetric()) == 0 {
			t.Errorf("%s missing", name)
		}
	}
	// Handler's real clock: alice's oldest entry is at least 90 s old.
	if v := value(t, fams, "chatsync_outbox_oldest_age_seconds", gauge, acct("alice@example.com")); v < 90 {
		t.Errorf("age on the real clock = %v, want at least 90", v)
	}
}

func TestEveryChatsyncMetricHasHelpAndAnAccountOrIsDaemonWide(t *testing.T) {
	fams := scrape(t, newHandler(fullSource(), clock))
	daemon := map[string]bool{"chatsync_info": true, "chatsync_start_timestamp_seconds": true, "chatsync_config_error": true}
	n := 0
	for name, f := range fams {
		if !strings.HasPrefix(name, "chatsync_") {
			continue
		}
		n++
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		for _, m := range f.Metric {
			if _, ok := labelsOf(m)["account"]; !ok && !daemon[name] {
				t.Errorf("%s%v has no account label", name, labelsOf(m))
			}
		}
	}
	if n != 25 {
		t.Errorf("%d chatsync_ families served, want 25", n)
	}
}
