package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/apitype"
)

func TestStallWatchSendsOneEventWhenAnAccountStallsAndOneWhenItRecovers(t *testing.T) {
	w := newStallWatch()
	now := time.Now()
	kinds := func(evs []apitype.Event) string {
		var s []string
		for _, ev := range evs {
			s = append(s, ev.Account+" "+ev.Kind+": "+ev.Message)
		}
		return strings.Join(s, "; ")
	}
	steps := []struct {
		accts []apitype.AccountStatus
		want  string
	}{
		{[]apitype.AccountStatus{{Account: "a"}, {Account: "b"}}, ""},
		{[]apitype.AccountStatus{{Account: "a", Stalled: "no good poll for 3m"}, {Account: "b"}}, "a stalled: no good poll for 3m"},
		// Still stalled, in other words: no second event.
		{[]apitype.AccountStatus{{Account: "a", Stalled: "no good poll for 4m"}, {Account: "b"}}, ""},
		{[]apitype.AccountStatus{{Account: "a"}, {Account: "b", Stalled: "laptop is 3 behind"}}, "a recovered: no longer stalled (it was: no good poll for 4m); b stalled: laptop is 3 behind"},
		// An account that cannot start says so in its status: no event,
		// and it is forgotten, as is one removed from the config.
		{[]apitype.AccountStatus{{Account: "b", StartError: "key: missing", Stalled: "x"}}, ""},
		{[]apitype.AccountStatus{{Account: "b"}}, ""},
	}
	for i, s := range steps {
		if got := kinds(w.observe(s.accts, now)); got != s.want {
			t.Errorf("step %d: events %q, want %q", i+1, got, s.want)
		}
	}
	evs := w.observe([]apitype.AccountStatus{{Account: "a", Stalled: "why"}}, now)
	if len(evs) != 1 || !evs[0].Time.Equal(now) || evs[0].Kind != apitype.EventStalled {
		t.Errorf("events = %+v, want one stalled event at the time of the look", evs)
	}
}

// metricsConfig writes a config of one account with metrics_listen set to
// addr (left out when "").
// aliceConfig is where aliceDaemon's config is, to write it again.
type aliceConfig struct {
	dir, path string
	srv       *testServer
}

// aliceDaemon starts a daemon with one account, alice, on a server of its
// own, serving metrics on metricsListen ("" for none).
func aliceDaemon(t *testing.T, metricsListen string) (*runningDaemon, testAccount, aliceConfig) {
	t.Helper()
	srv := newTestServer(t, map[string]string{"alice@example.com": "pw-alice"})
	dir := shortTempDir(t)
	alice := newTestAccount(t, dir, "alice@example.com", "pw-alice")
	cfgPath := filepath.Join(dir, "config.toml")
	metricsConfig(t, cfgPath, dir, alice, srv.url, metricsListen)
	return startTestDaemon(t, cfgPath), alice, aliceConfig{dir, cfgPath, srv}
}

func metricsConfig(t *testing.T, path, dir string, a testAccount, url, addr string) {
	t.Helper()
	head := daemonTable(dir, "info")
	if addr != "" {
		head = strings.Replace(head, "log_level", "metrics_listen = \""+addr+"\"\nlog_level", 1)
	}
	writeByRename(t, path, head+a.block(url, "1s")+"device_name = \"test laptop\"\n")
}

// sent waits until the account has sent n entries or more and holds
// none back. (The server's row count is no measure: the engine also
// writes its reports to the journal.)
func sent(t *testing.T, rd *runningDaemon, addr string, n int64) {
	t.Helper()
	waitUntil(t, 15*time.Second, "the message sent", func() bool {
		a, _ := rd.account(addr)
		return a.Pushed >= n && a.OutboxDepth == 0
	}, rd.log)
}

// scrape gets http://addr/metrics without keeping the connection.
func scrape(addr string) (int, string, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestMetricsListenServesPrometheusMovesOnReloadAndAFailureIsNotFatal(t *testing.T) {
	rd, alice, cfg := aliceDaemon(t, "127.0.0.1:0")
	dir, cfgPath, srv := cfg.dir, cfg.path, cfg.srv
	waitUntil(t, 10*time.Second, "the metrics listener", func() bool { return rd.d.MetricsAddr() != "" }, rd.log)
	first := rd.d.MetricsAddr()
	if host, _, _ := net.SplitHostPort(first); host != "127.0.0.1" {
		t.Fatalf("metrics on %s, want 127.0.0.1", first)
	}
	alice.write(t, "carol/a1.json", "a1", "hello")
	sent(t, rd, alice.addr, 1)
	code, body, err := scrape(first)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d, %v\n%s", code, err, body)
	}
	for _, want := range []string{`chatsync_outbox_depth{account="alice@example.com"}`, `chatsync_push_entries_total{account="alice@example.com"} `} {
		if !strings.Contains(body, want) {
			t.Errorf("the metrics lack %q:\n%s", want, body)
		}
	}

	// Another address: the listener moves without a restart.
	metricsConfig(t, cfgPath, dir, alice, srv.url, "localhost:0")
	rd.d.Reload()
	waitUntil(t, 10*time.Second, "the listener to move", func() bool { a := rd.d.MetricsAddr(); return a != "" && a != first }, rd.log)
	if _, _, err := scrape(first); err == nil {
		t.Errorf("the old address %s still serves after the move", first)
	}
	if code, _, err := scrape(rd.d.MetricsAddr()); err != nil || code != 200 {
		t.Errorf("GET /metrics on the new address: %d, %v", code, err)
	}
	if st := (backend{rd.d}).Status(); st.RestartNeeded != "" {
		t.Errorf("restart_needed = %q: metrics_listen needs none", st.RestartNeeded)
	}

	// A port in use: logged, in status as a warning, and the account runs on.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	metricsConfig(t, cfgPath, dir, alice, srv.url, busy.Addr().String())
	rd.d.Reload()
	var problem apitype.ConfigProblem
	waitUntil(t, 10*time.Second, "the listen failure in status", func() bool {
		for _, p := range (backend{rd.d}).Status().ConfigProblems {
			if p.Key == "daemon.metrics_listen" {
				problem = p
				return true
			}
		}
		return false
	}, rd.log)
	if !problem.Warning || !strings.Contains(problem.Message, busy.Addr().String()) || !strings.Contains(problem.Message, "address already in use") {
		t.Errorf("problem = %+v, want a warning naming the address and why", problem)
	}
	if !strings.Contains(rd.log.String(), "cannot serve the metrics") {
		t.Errorf("the failure is not logged:\n%s", rd.log.String())
	}
	if st := (backend{rd.d}).Status(); st.ConfigError != "" {
		t.Errorf("config_error = %q: a port in use is no mistake in the file", st.ConfigError)
	}
	before, _ := rd.account(alice.addr)
	alice.write(t, "carol/a2.json", "a2", "still running")
	sent(t, rd, alice.addr, before.Pushed+1)

	// Off: nothing listens, nothing is wrong.
	metricsConfig(t, cfgPath, dir, alice, srv.url, "")
	rd.d.Reload()
	waitUntil(t, 10*time.Second, "the warning to go", func() bool { return len((backend{rd.d}).Status().ConfigProblems) == 0 }, rd.log)
	if a := rd.d.MetricsAddr(); a != "" {
		t.Errorf("metrics served on %s with metrics_listen off", a)
	}
}

// TestDevicesNamesThisDeviceAsConfiguredAndCountsTraffic checks the
// daemon's wiring: device_name and the daemon's version reach the engine
// (this device, first in Devices, says them), and status counts the bytes
// of the account's requests.
func TestDevicesNamesThisDeviceAsConfiguredAndCountsTraffic(t *testing.T) {
	rd, alice, _ := aliceDaemon(t, "")
	alice.write(t, "carol/a1.json", "a1", "hello")
	sent(t, rd, alice.addr, 1)

	all, err := rd.d.Devices("")
	if err != nil || len(all) != 1 {
		t.Fatalf("Devices(\"\") = %+v, %v; want the one account", all, err)
	}
	devs := all[0]
	if devs.Account != alice.addr || len(devs.Devices) == 0 {
		t.Fatalf("devices = %+v", devs)
	}
	self := devs.Devices[0]
	if !self.Self || self.Name != "test laptop" || self.Version != "test" || self.DeviceID != rd.d.DeviceID() {
		t.Errorf("this device = %+v, want self, named \"test laptop\", version \"test\", id %s", self, rd.d.DeviceID())
	}
	if _, err := rd.d.Devices("nobody@example.com"); err == nil || !strings.Contains(err.Error(), "not in the config") {
		t.Errorf("Devices of an unknown account: %v", err)
	}

	a, _ := rd.account(alice.addr)
	if a.BytesSent <= 0 || a.BytesReceived <= 0 {
		t.Errorf("bytes sent %d, received %d after a push and polls: want both counted", a.BytesSent, a.BytesReceived)
	}
}

// TestVerifyOfARunningAccountIsInSyncOnceItsMessageIsSent runs the engine's
// verify through the daemon: after a push, store and journal agree.
func TestVerifyOfARunningAccountIsInSyncOnceItsMessageIsSent(t *testing.T) {
	rd, alice, _ := aliceDaemon(t, "")
	alice.write(t, "carol/a1.json", "a1", "hello")
	sent(t, rd, alice.addr, 1)
	var phases []string
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := rd.d.Verify(ctx, "", false, func(p apitype.VerifyProgress) { phases = append(phases, p.Phase) })
	if err != nil {
		t.Fatal(err)
	}
	if !res.InSync || res.Account != alice.addr || res.Local != 1 || res.Messages != 1 || res.Examples == nil {
		t.Errorf("verify = %+v, want in sync with 1 message on both sides", res)
	}
	if len(phases) == 0 {
		t.Error("no progress reported")
	}
}

// TestAStalledAccountIsOnTheEventStreamOnceAndSoIsItsRecovery: the server
// fails every request, so after 5 poll intervals without a good poll the
// engine counts the account as stalled. Looking at the status then sends
// one "stalled" event with the engine's words (more looks send no more);
// once the server answers again, one "recovered".
func TestAStalledAccountIsOnTheEventStreamOnceAndSoIsItsRecovery(t *testing.T) {
	srv, err := accountserver.New(accountserver.Options{DataDir: t.TempDir(), StrictCompat: true, // no held polls
		Accounts: []accountserver.Account{{Address: "alice@example.com", Password: "pw-alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { hs.Close(); srv.Close() })
	dir := shortTempDir(t)
	alice := newTestAccount(t, dir, "alice@example.com", "pw-alice")
	cfgPath := filepath.Join(dir, "config.toml")
	metricsConfig(t, cfgPath, dir, alice, hs.URL+accountserver.Path, "")
	rd := startTestDaemon(t, cfgPath)
	events, unsubscribe := rd.d.Subscribe()
	defer unsubscribe()
	waitUntil(t, 15*time.Second, "a good poll", func() bool { a, _ := rd.account(alice.addr); return !a.LastGoodPoll.IsZero() }, rd.log)

	failing.Store(true)
	var stalled AccountStatus
	waitUntil(t, 30*time.Second, "the account to stall", func() bool {
		stalled, _ = rd.account(alice.addr) // each look compares
		return stalled.Stalled != ""
	}, rd.log)
	ev := nextEvent(t, events, apitype.EventStalled)
	if ev.Account != alice.addr || ev.Message == "" || !strings.Contains(ev.Message, "poll") {
		t.Errorf("stalled event = %+v, want alice's, saying why", ev)
	}
	rd.account(alice.addr)
	rd.account(alice.addr)

	failing.Store(false)
	waitUntil(t, 30*time.Second, "the account to recover", func() bool { a, _ := rd.account(alice.addr); return a.Stalled == "" }, rd.log)
	// The events up to the recovery: no second stalled one.
	timeout := time.After(15 * time.Second)
	for recovered := false; !recovered; {
		select {
		case ev := <-events:
			switch ev.Kind {
			case apitype.EventStalled:
				t.Errorf("a second stalled event: %+v", ev)
			case apitype.EventRecovered:
				recovered = true
				if ev.Account != alice.addr {
					t.Errorf("recovered event = %+v, want alice's", ev)
				}
			}
		case <-timeout:
			t.Fatal("no recovered event within 15s")
		}
	}
	if !strings.Contains(rd.log.String(), "account is stalled") {
		t.Errorf("the stall is not logged:\n%s", rd.log.String())
	}
}
