package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/apitype"
)

// TestStatusExitCodeForScripts: status exits 0 while the account is idle
// and 3 once it is paused (its store went away), with one line on stderr
// that says so, the details on stdout as usual, and --json still valid.
func TestStatusExitCodeForScripts(t *testing.T) {
	d := startDevice(t, startServer(t, false), newKeyFile(t), "pw-alice", map[string]string{
		"bob/m1.json": `{"msgid":"m1","remote_uri":"bob@example.com","local_uri":"alice@example.com","body":"hi","direction":"outgoing","media_type":"chat","content_type":"text/plain","time":"2026-11-25 10:00:00","status":"sent"}`,
	})
	waitFor(t, 15*time.Second, "the account to be idle with its message sent", func() bool {
		a := d.accountStatus(t)
		return a.State == apitype.StateIdle && a.Pushed == 1
	})
	if code, out, errs := d.cli(t, "status"); code != 0 || errs != "" {
		t.Errorf("status while idle: exit %d, stderr %q\n%s", code, errs, out)
	}

	if err := os.RemoveAll(d.store); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the account to pause", func() bool { return d.accountStatus(t).State == apitype.StatePaused })
	code, out, errs := d.cli(t, "status")
	if code != ExitNotRunning {
		t.Errorf("status while paused: exit %d, want %d\nstderr %q", code, ExitNotRunning, errs)
	}
	if line := strings.TrimRight(errs, "\n"); strings.Contains(line, "\n") || !strings.HasPrefix(line, "chatsync: "+testAccount+": paused: ") {
		t.Errorf("stderr while paused = %q, want one line `chatsync: %s: paused: ...`", errs, testAccount)
	}
	if !strings.Contains(out, testAccount+"  paused") {
		t.Errorf("stdout while paused lacks the account's state:\n%s", out)
	}
	code, out, _ = d.cli(t, "status", "--json")
	var st apitype.Status
	if err := json.Unmarshal([]byte(out), &st); code != ExitNotRunning || err != nil || st.Accounts[0].State != apitype.StatePaused {
		t.Errorf("status --json while paused: exit %d, %v\n%s", code, err, out)
	}
	code, _, errs = d.cli(t, "sync", "--wait", "--timeout", "1m")
	if code != ExitFailure || !strings.Contains(errs, testAccount+": paused: ") {
		t.Errorf("sync --wait while paused: exit %d, stderr %q", code, errs)
	}
}

// TestStatusProblemAndWaitWontHelp checks the judgement that status and
// sync --wait rest on.
func TestStatusProblemAndWaitWontHelp(t *testing.T) {
	now := time.Now()
	req := now.Add(-time.Second)
	for _, c := range []struct {
		name          string
		s             apitype.AccountStatus
		problem, wait bool
	}{
		{"idle", apitype.AccountStatus{State: apitype.StateIdle}, false, false},
		{"catching up", apitype.AccountStatus{State: apitype.StateStarting, CatchUp: &apitype.CatchUp{Since: now, Rows: 10}}, false, false},
		{"retrying since a minute", apitype.AccountStatus{State: apitype.StateBackoff, FailingSince: now.Add(-time.Minute), LastPollError: "x", LastPoll: now}, false, false},
		{"stalled", apitype.AccountStatus{State: apitype.StateBackoff, FailingSince: now.Add(-apitype.StallAfter), LastPollError: "x", LastPoll: now}, true, false},
		{"cannot start", apitype.AccountStatus{State: apitype.StateError, StartError: "key: no such file"}, true, true},
		{"paused", apitype.AccountStatus{State: apitype.StatePaused, Error: "the store is gone"}, true, true},
		{"auth after the request", apitype.AccountStatus{State: apitype.StateBackoff, NeedsFix: "auth", LastPollError: "auth", LastPoll: now}, true, true},
		{"auth before the request", apitype.AccountStatus{State: apitype.StateBackoff, NeedsFix: "auth", LastPollError: "auth", LastPoll: req.Add(-time.Second)}, true, false},
		{"stalled by the engine's judgement", apitype.AccountStatus{State: apitype.StateIdle, Stalled: "no good poll for 3m"}, true, false},
		{"entries under a missing key", apitype.AccountStatus{State: apitype.StateIdle, Unapplied: 4, MissingKeys: []string{"290b1bf8"}, UnappliedHint: "run `chatsync key import`"}, true, false},
	} {
		if got := c.s.Problem(now) != ""; got != c.problem {
			t.Errorf("%s: Problem = %q", c.name, c.s.Problem(now))
		}
		if got := c.s.WaitWontHelp(req) != ""; got != c.wait {
			t.Errorf("%s: WaitWontHelp = %q", c.name, c.s.WaitWontHelp(req))
		}
	}
}
