// Package metrics serves the daemon's state in the Prometheus text format,
// for GET /v1/metrics on the control socket and daemon.metrics_listen.
//
// Every value is read from the daemon's status and device list at the
// moment of the scrape (a custom prometheus.Collector of const metrics),
// so the metrics can never disagree with `chatsync status` and the
// daemon keeps no second set of counters. The counters are the status's
// counts since the daemon started: they reset when it restarts, which
// Prometheus' rate() expects of any counter.
package metrics

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatsync/chatsync/sync/apitype"
)

// Source is what the metrics are read from, at every scrape.
type Source interface {
	// Status is the daemon's status, as GET /v1/status serves it.
	Status() apitype.Status
	// Devices is every account's chatsync devices, as GET /v1/devices
	// serves them.
	Devices() []apitype.Devices
}

// Handler serves src's metrics in the Prometheus text format, with the
// Go runtime's and the process's standard metrics. Each call makes its own
// registry, so the control socket and metrics_listen may each have one.
func Handler(src Source) http.Handler { return newHandler(src, time.Now) }

// newHandler is Handler with the clock that ages are computed from.
func newHandler(src Source, now func() time.Time) http.Handler {
	// A private registry: the global one would mix in whatever any
	// imported package registers there, and could be registered only once.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src, now),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A metric that fails to collect must not blank the whole page:
		// serve the rest, and count the failure in
		// promhttp_metric_handler_errors_total.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
}

// The label names.
const (
	lAccount = "account"
	lReason  = "reason"
	lState   = "state"
	lDevice  = "device"
	lName    = "name"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("chatsync_"+name, help, labels, nil)
}

var (
	dInfo = desc("info", "Always 1: the daemon's version and device id as labels.",
		"version", "device_id")
	dStart       = desc("start_timestamp_seconds", "When the daemon started, in seconds since the epoch.")
	dConfigError = desc("config_error",
		"1 while the config file on disk was refused at its last reload (the daemon runs on the previous one).")

	dState = desc("account_state",
		"1 for the account's current state (starting, idle, backoff, paused, stopped, error), 0 for the others.",
		lAccount, lState)
	dProblem = desc("problem",
		"1 while the account does not run as it should (`chatsync status` exits 3): cannot start, paused, needs a fix, failing for 10 minutes, stalled or missing a key.",
		lAccount)
	dStalled = desc("stalled",
		"1 while the account is stalled: no good poll for 5 poll intervals, an entry unsent for too long, or another device behind for over a day.",
		lAccount)
	dOutboxDepth = desc("outbox_depth", "Journal entries waiting to be sent.", lAccount)
	dOutboxAge   = desc("outbox_oldest_age_seconds",
		"Age of the oldest entry waiting to be sent; 0 when none waits.", lAccount)
	dHeld = desc("held_entries",
		"Entries the server refused, each retried with its own backoff.", lAccount)
	dPushed = desc("push_entries_total",
		"Journal entries sent since the daemon started.", lAccount)
	dReceived = desc("poll_rows_total",
		"Journal rows from other devices applied to the store since the daemon started.", lAccount)
	dSkipped = desc("skipped_rows_total",
		"Journal rows that could not be applied, by reason, since the daemon started.", lAccount, lReason)
	dUnapplied = desc("unapplied_rows",
		"Journal rows kept to be applied later, for a reason that can go away (a missing key, say).", lAccount)
	dRejected = desc("rejected_files",
		"Message files in the store that are not replicated (invalid JSON, no msgid, too large, duplicate msgid).", lAccount)
	dLastPush = desc("last_push_success_timestamp_seconds",
		"When entries were last sent without an error, in seconds since the epoch; 0 when not seen yet.", lAccount)
	dLastPoll = desc("last_poll_success_timestamp_seconds",
		"When the journal was last read without an error, in seconds since the epoch; 0 when never.", lAccount)
	dBackoff = desc("backoff_until_timestamp_seconds",
		"When the next attempt is made after failures; 0 when not backing off.", lAccount)
	dFailures = desc("failures", "Consecutive failed attempts to send or receive.", lAccount)
	dSent     = desc("sent_bytes_total",
		"Bytes of the requests sent to the server (URLs and bodies) since the daemon started.", lAccount)
	dRecv = desc("received_bytes_total",
		"Bytes of the server's replies read since the daemon started.", lAccount)
	dCursor    = desc("cursor", "The journal id this device has read the journal up to.", lAccount)
	dListening = desc("listening",
		"1 while the server holds a poll for the account, so other devices' writes arrive as they are made.", lAccount)

	dBehind = desc("device_behind",
		"Versions of this device's messages another device had not applied when it last said; absent when it never said.",
		lAccount, lDevice, lName)
	dUnconfirmed = desc("device_unconfirmed",
		"Of chatsync_device_behind, the versions written after the device last said how far it had applied: it may have them by now.",
		lAccount, lDevice, lName)
	dLastSeen = desc("device_last_seen_timestamp_seconds",
		"When another device last wrote a row or a report, by its clock, in seconds since the epoch.",
		lAccount, lDevice, lName)
)

// states are the account states every account has a chatsync_account_state
// series for, so that an alert on one state sees 0, not nothing, while the
// account is in another.
var states = []string{
	apitype.StateStarting, apitype.StateIdle, apitype.StateBackoff,
	apitype.StatePaused, apitype.StateStopped, apitype.StateError,
}

// collector reads the daemon's state at every scrape.
type collector struct {
	src Source
	now func() time.Time

	// lastPush remembers, per account, the last LastPush seen with no
	// LastPushError. The status keeps only the last attempt: without
	// this, one failed push would drop the success timestamp to 0 and
	// `time() - chatsync_last_push_success_timestamp_seconds` would jump
	// to decades.
	mu       sync.Mutex
	lastPush map[string]time.Time
}

func newCollector(src Source, now func() time.Time) *collector {
	return &collector{src: src, now: now, lastPush: map[string]time.Time{}}
}

// Describe sends every descriptor, so the registry checks the metrics
// collected against them.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		dInfo, dStart, dConfigError, dState, dProblem, dStalled, dOutboxDepth, dOutboxAge,
		dHeld, dPushed, dReceived, dSkipped, dUnapplied, dRejected, dLastPush, dLastPoll,
		dBackoff, dFailures, dSent, dRecv, dCursor, dListening, dBehind, dUnconfirmed, dLastSeen,
	} {
		ch <- d
	}
}

// Collect sends the metrics of one status and one device list.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	st := c.src.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labelValues(labels)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labelValues(labels)...)
	}

	gauge(dInfo, 1, st.Version, st.DeviceID)
	gauge(dStart, seconds(st.Started))
	gauge(dConfigError, flag(st.ConfigError != ""))

	// The registry refuses a scrape that repeats a series; the daemon
	// does not repeat an account, but a metrics page is no place to fail
	// on it: the first one wins.
	seen := map[string]bool{}
	for _, a := range st.Accounts {
		if seen[a.Account] {
			continue
		}
		seen[a.Account] = true
		acct := a.Account

		for _, s := range states {
			gauge(dState, flag(a.State == s), acct, s)
		}
		if !slices.Contains(states, a.State) {
			gauge(dState, 1, acct, a.State)
		}
		gauge(dProblem, flag(a.Problem(now) != ""), acct)
		gauge(dStalled, flag(a.Stalled != ""), acct)

		gauge(dOutboxDepth, float64(a.OutboxDepth), acct)
		age := 0.0
		if a.OutboxDepth > 0 && !a.OldestUnsent.IsZero() {
			age = max(now.Sub(a.OldestUnsent).Seconds(), 0)
		}
		gauge(dOutboxAge, age, acct)
		gauge(dHeld, float64(len(a.Held)), acct)

		counter(dPushed, float64(a.Pushed), acct)
		counter(dReceived, float64(a.Received), acct)
		for reason, n := range a.Skipped {
			counter(dSkipped, float64(n), acct, reason)
		}
		gauge(dUnapplied, float64(a.Unapplied), acct)
		gauge(dRejected, float64(len(a.Rejected)), acct)

		gauge(dLastPush, seconds(c.lastGoodPush(a)), acct)
		gauge(dLastPoll, seconds(a.LastGoodPoll), acct)
		gauge(dBackoff, seconds(a.BackoffUntil), acct)
		gauge(dFailures, float64(a.Failures), acct)

		counter(dSent, float64(a.BytesSent), acct)
		counter(dRecv, float64(a.BytesReceived), acct)
		gauge(dCursor, float64(a.Cursor), acct)
		gauge(dListening, flag(a.Listening), acct)
	}

	seen = map[string]bool{}
	for _, ds := range c.src.Devices() {
		if seen[ds.Account] {
			continue
		}
		seen[ds.Account] = true
		ids := map[string]bool{}
		for _, d := range ds.Devices {
			// This device's lag behind itself is always 0 and its last
			// write is now: series that only add noise.
			if d.Self || ids[d.DeviceID] {
				continue
			}
			ids[d.DeviceID] = true
			name := truncate(d.Name, maxNameBytes)
			// An unknown lag (-1: the device never said) is left out,
			// not served as -1, so that max() and sum() over devices
			// stay counts of versions; absent() finds such devices.
			if d.Behind >= 0 {
				gauge(dBehind, float64(d.Behind), ds.Account, d.DeviceID, name)
				gauge(dUnconfirmed, float64(d.Unconfirmed), ds.Account, d.DeviceID, name)
			}
			if !d.LastSeen.IsZero() {
				gauge(dLastSeen, seconds(d.LastSeen), ds.Account, d.DeviceID, name)
			}
		}
	}
}

// lastGoodPush is when a's entries were last sent without an error, as far
// as the scrapes saw: a's LastPush when the push succeeded, else the
// last success an earlier scrape saw (zero if none).
func (c *collector) lastGoodPush(a apitype.AccountStatus) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.LastPushError == "" && a.LastPush.After(c.lastPush[a.Account]) {
		c.lastPush[a.Account] = a.LastPush
	}
	return c.lastPush[a.Account]
}

// maxNameBytes bounds the device name label: the name comes from another
// device's report, and one huge label would bloat every scrape.
const maxNameBytes = 128

// labelValues makes every label value valid UTF-8: MustNewConstMetric
// panics on anything else, and a device name or a reason is not ours to
// trust.
func labelValues(vs []string) []string {
	for i, v := range vs {
		vs[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return vs
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// seconds is t in seconds since the epoch, 0 for the zero time ("never"),
// as Prometheus timestamps are.
func seconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
