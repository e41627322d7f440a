// Package apitype holds the JSON types of chatsync's control socket
// (the /v1/ routes served by sync/localapi and read by sync/localclient).
//
// It imports nothing but the standard library's time package, so that
// programs talking to the daemon do not link its store, crypto or watcher.
//
// Compatibility: fields are only ever added, never renamed or removed.
package apitype

import "time"

// VersionHeader is the response header that carries the daemon's version.
const VersionHeader = "Chatsync-Version"

// Status is the reply of GET /v1/status.
type Status struct {
	Version  string    `json:"version"`
	DeviceID string    `json:"device_id"`
	Started  time.Time `json:"started"`
	// UptimeSeconds is how long the daemon has been running.
	UptimeSeconds float64         `json:"uptime_seconds"`
	Accounts      []AccountStatus `json:"accounts"`

	// ConfigPath is the config file the daemon runs on, and ConfigLoaded
	// when it last read it successfully.
	ConfigPath   string    `json:"config_path,omitempty"`
	ConfigLoaded time.Time `json:"config_loaded,omitzero"`
	// ConfigError says why the file on disk was refused at its last
	// reload; the daemon keeps running on the previous config until the
	// file is fixed. ConfigProblems lists the mistakes one by one.
	ConfigError    string          `json:"config_error,omitempty"`
	ConfigProblems []ConfigProblem `json:"config_problems,omitempty"`
	// RestartNeeded names settings changed in the file that take effect
	// only when the daemon restarts (daemon.state_dir, daemon.socket).
	RestartNeeded string `json:"restart_needed,omitempty"`
}

// ConfigProblem is one mistake in the config file.
type ConfigProblem struct {
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"` // e.g. "account[2].poll_interval"
	Message string `json:"message"`
	Warning bool   `json:"warning,omitempty"`
}

// States of an account, as AccountStatus.State reports them.
const (
	StateStarting = "starting" // indexing the store and catching up with the journal
	StateIdle     = "idle"     // caught up; waiting for changes or the next poll
	StateBackoff  = "backoff"  // the last network step failed; waiting to retry
	StatePaused   = "paused"   // the message store directory is missing
	StateStopped  = "stopped"
	StateError    = "error" // the account could not start; see StartError
)

// AccountStatus is the replication state of one account.
type AccountStatus struct {
	Account string `json:"account"`
	State   string `json:"state"`
	// Error is the current problem, if any, in words that say what to do.
	Error string `json:"error,omitempty"`
	// StartError says why the account could not start, if it could not.
	StartError string `json:"start_error,omitempty"`
	// Started is when the account's replication (last) started: at the
	// daemon's start, or when a config reload added or changed it.
	Started time.Time `json:"started,omitzero"`

	Cursor       int64     `json:"cursor"`
	OutboxDepth  int       `json:"outbox_depth"`
	OldestUnsent time.Time `json:"oldest_unsent,omitzero"`

	LastPush      time.Time `json:"last_push,omitzero"`
	LastPushError string    `json:"last_push_error,omitempty"`
	LastPoll      time.Time `json:"last_poll,omitzero"`
	LastPollError string    `json:"last_poll_error,omitempty"`
	// LastScan is when the last full look at the store ended (the
	// start-up index, `chatsync sync`, the hourly safety rescan).
	LastScan time.Time `json:"last_scan,omitzero"`
	// Listening is set while the server holds a poll for this account
	// (chatsync-server's long poll): what other devices write arrives as
	// they write it, and LastPoll is when the held poll started.
	Listening bool `json:"listening,omitempty"`
	// BackoffUntil is when the next attempt is made after Failures
	// failures in a row: the earlier of sending's and receiving's, which
	// back off independently (PushBackoffUntil, PollBackoffUntil).
	BackoffUntil     time.Time `json:"backoff_until,omitzero"`
	Failures         int       `json:"failures,omitempty"`
	PushBackoffUntil time.Time `json:"push_backoff_until,omitzero"`
	PushFailures     int       `json:"push_failures,omitempty"`
	PollBackoffUntil time.Time `json:"poll_backoff_until,omitzero"`
	PollFailures     int       `json:"poll_failures,omitempty"`
	// Held lists the messages the server refused; each is tried again
	// with its own backoff and holds back nothing else.
	Held []Held `json:"held,omitempty"`
	// Unapplied counts journal entries kept because they cannot be applied
	// yet for a reason that can go away (by reason in UnappliedReasons;
	// MissingKeys names the key ids this device lacks; UnappliedHint says
	// what to do). They are tried again at start, after a rescan and on
	// a sync.
	Unapplied        int            `json:"unapplied,omitempty"`
	UnappliedReasons map[string]int `json:"unapplied_reasons,omitempty"`
	MissingKeys      []string       `json:"missing_keys,omitempty"`
	UnappliedHint    string         `json:"unapplied_hint,omitempty"`

	// Pushed and Received count journal entries since the daemon started.
	Pushed   int64 `json:"pushed"`
	Received int64 `json:"received"`
	// Skipped counts journal entries that could not be applied, by reason.
	Skipped map[string]int `json:"skipped,omitempty"`
	// Rejected lists the message files that are not replicated, with why.
	Rejected []Rejected `json:"rejected,omitempty"`
	// Waiting counts files given a moment to be completed by their writer.
	Waiting int `json:"waiting,omitempty"`
	// LocalError is set while local changes cannot be recorded in the
	// daemon's state (a full or read-only disk); they are retried.
	LocalError string `json:"local_error,omitempty"`
	// ResetAt is when the server's journal was last seen going backwards.
	ResetAt time.Time `json:"reset_at,omitzero"`
	// DeviceID is the id the account writes under when it is not the
	// installation's: Clone says why (another device used the same id).
	DeviceID string `json:"device_id,omitempty"`
	Clone    string `json:"clone,omitempty"`

	// LastPollErrorKind and LastPushErrorKind classify LastPollError and
	// LastPushError as Error.Kind does ("auth", "server", "malformed",
	// "transport", "rejected", "rate-limited"); empty when the failure
	// was not the server's answer (a local disk, say) or there is none.
	LastPollErrorKind string `json:"last_poll_error_kind,omitempty"`
	LastPushErrorKind string `json:"last_push_error_kind,omitempty"`
	// NeedsFix is set while sending or receiving fails in a way that
	// waiting will not fix: the server refused the credentials, the
	// settings_url is not the API (HTTP 404, a redirect, an HTML page).
	// It is the error, which says what to change.
	NeedsFix string `json:"needs_fix,omitempty"`
	// FailingSince is when sending or receiving began to fail without a
	// success since; zero while both work.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// CatchUp is the progress of the last catch-up with the journal (at
	// start, and after the journal went backwards); Done is set once it
	// read the journal to its end.
	CatchUp *CatchUp `json:"catch_up,omitempty"`

	// LastGoodPoll is when the journal was last read without an error.
	LastGoodPoll time.Time `json:"last_good_poll,omitzero"`
	// PollIntervalSeconds is the account's idle poll interval.
	PollIntervalSeconds float64 `json:"poll_interval_seconds,omitempty"`
	// Stalled says, in words that say what to do, why the account counts
	// as stalled (Problem, `chatsync status` exit 3): the last good poll
	// is older than 5 poll intervals, the oldest unsent entry older than
	// StallAfter, or another device has not applied this device's
	// messages for more than LagAfter. "" while none holds.
	Stalled string `json:"stalled,omitempty"`
	// Lagging is the other device furthest behind, if any is.
	Lagging *Lag `json:"lagging,omitempty"`
	// BytesSent and BytesReceived count the bytes of the requests sent to
	// the server and of its replies, since the daemon started.
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
}

// Lag is another device that has not applied some of this device's
// messages: Behind of them, the oldest written at Since.
type Lag struct {
	DeviceID string    `json:"device_id"`
	Name     string    `json:"name,omitempty"`
	Behind   int       `json:"behind"`
	Since    time.Time `json:"since"`
}

// LagAfter is how long another device may stay behind this one before
// the account counts as stalled.
const LagAfter = 24 * time.Hour

// CatchUp is the progress of reading the journal to its end.
type CatchUp struct {
	Since time.Time `json:"since"`
	// Pages and Rows count the journal pages and rows read; Written the
	// messages written to (or deleted from) the store.
	Pages   int64     `json:"pages"`
	Rows    int64     `json:"rows"`
	Written int64     `json:"written"`
	Done    time.Time `json:"done,omitzero"`
}

// RowsPerSecond is the rate of the catch-up: up to now while it goes on.
func (c CatchUp) RowsPerSecond(now time.Time) float64 {
	end := now
	if !c.Done.IsZero() {
		end = c.Done
	}
	d := end.Sub(c.Since).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(c.Rows) / d
}

// Catching reports whether a catch-up is under way.
func (s AccountStatus) Catching() bool { return s.CatchUp != nil && s.CatchUp.Done.IsZero() }

// StallAfter is how long sending or receiving may keep failing before
// the account counts as stalled (Problem, `chatsync status` exit 3).
const StallAfter = 10 * time.Minute

// Problem says, in one line, why the account is not running as it
// should: it cannot start, is paused or stopped, fails in a way waiting
// will not fix (NeedsFix), has failed for StallAfter, is Stalled, or keeps entries it
// cannot open for want of a key (MissingKeys). It is "" for an
// account that runs, catching up or idle, or that is retrying a failure
// that is recent.
func (s AccountStatus) Problem(now time.Time) string {
	switch {
	case s.StartError != "":
		return "cannot start: " + s.StartError
	case s.State == StatePaused:
		return "paused: " + s.Error
	case s.State == StateStopped:
		return "stopped"
	case s.NeedsFix != "":
		return "needs a fix: " + s.NeedsFix
	case !s.FailingSince.IsZero() && now.Sub(s.FailingSince) >= StallAfter:
		return "stalled: failing since " + s.FailingSince.Format(time.RFC3339) + ": " + s.Error
	case s.Stalled != "":
		return "stalled: " + s.Stalled
	case len(s.MissingKeys) > 0:
		// The history here is incomplete until the key is imported.
		return "needs a key: " + s.UnappliedHint
	}
	return ""
}

// WaitWontHelp says, in one line, why waiting for the account to catch up
// with a sync requested at t is pointless: it cannot start, it is paused,
// or a push or poll made after t failed in a way waiting will not fix.
// It is "" otherwise.
func (s AccountStatus) WaitWontHelp(t time.Time) string {
	switch {
	case s.StartError != "":
		return "cannot start: " + s.StartError
	case s.State == StatePaused:
		return "paused: " + s.Error
	case s.NeedsFix == "":
		return ""
	case s.LastPollError != "" && s.LastPoll.After(t), s.LastPushError != "" && s.LastPush.After(t):
		return s.NeedsFix
	}
	return ""
}

// CaughtUp reports whether the account has nothing left to send but the
// messages the server refused (Held), has completed a poll without error
// after t, and is not in the middle of a catch-up (where every page read
// is such a poll).
func (s AccountStatus) CaughtUp(t time.Time) bool {
	return s.StartError == "" && s.OutboxDepth <= len(s.Held) && s.LastPoll.After(t) && s.LastPollError == "" && !s.Catching()
}

// Held is a message the server refused: it is sent again at RetryAt.
type Held struct {
	MsgID    string    `json:"msgid"`
	Attempts int       `json:"attempts"`
	RetryAt  time.Time `json:"retry_at"`
	Reason   string    `json:"reason"`
}

// Rejected is a message file that is not replicated.
type Rejected struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// SyncResult is the reply of POST /v1/sync. With ?wait=1 it comes once
// every account asked for is caught up (see AccountStatus.CaughtUp), and
// Accounts holds their final status.
type SyncResult struct {
	// Requested is when the daemon took the request: an account is caught
	// up when it polled successfully after this time with an empty outbox.
	Requested time.Time       `json:"requested"`
	Accounts  []AccountStatus `json:"accounts,omitempty"`
}

// Event kinds of the GET /v1/events stream.
const (
	EventPushed         = "pushed"          // Count entries went to the journal
	EventReceived       = "received"        // Count entries from other devices were applied
	EventRejected       = "rejected"        // the file Path is not replicated; Message says why
	EventError          = "error"           // a step failed; Message says what
	EventReset          = "reset"           // the server's journal went backwards
	EventConfigReloaded = "config_reloaded" // the daemon took a new config; Message says what changed
	EventConfigError    = "config_error"    // an edit of the config was refused; Message lists the problems
	EventStalled        = "stalled"         // the account became stalled; Message says why (AccountStatus.Stalled)
	EventRecovered      = "recovered"       // a stalled account runs again
)

// Event is one line of the GET /v1/events stream (NDJSON).
type Event struct {
	Time    time.Time `json:"time"`
	Account string    `json:"account,omitempty"`
	Kind    string    `json:"kind"`
	Count   int       `json:"count,omitempty"`
	Path    string    `json:"path,omitempty"`
	Message string    `json:"message,omitempty"`
}

// Error is the body of every reply with a status of 400 or more.
type Error struct {
	Error string `json:"error"`
	// Kind classifies failures of the SIP Account API: "auth", "server",
	// "malformed", "transport", "rejected", "rate-limited".
	Kind string `json:"kind,omitempty"`
}

// Confirmation is the reply of the account API's write actions
// (add_alias, set_call_forwarding, set_dnd_on/off, set_privacy_on/off):
// the server's confirmation text, for display only.
type Confirmation struct {
	Message string `json:"message"`
}
