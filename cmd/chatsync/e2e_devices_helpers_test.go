package main_test

// Helpers of the device, verify, metrics and stall tests
// (e2e_devices_test.go): the CLI run against a daemon, the socket's routes
// that localclient has no method for, the journal's rows opened with the
// account key, and Prometheus scrapes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/localclient"
)

// cliRun is what one chatsync command printed and its exit status.
type cliRun struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliRun) String() string {
	return fmt.Sprintf("`chatsync %s` exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs a chatsync command against d's config (and so its socket),
// failing the test if it has not ended after two minutes.
func (d *e2eDevice) run(args ...string) cliRun {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.chatsync, append(append([]string(nil), args...), "--config", d.config)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		d.t.Fatalf("%s: still running after 2 minutes\n%s", d.name, r)
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("%s: chatsync %s: %v", d.name, strings.Join(args, " "), err)
	}
	return r
}

// devices runs `chatsync devices --json` (with extra flags, such as
// --refresh) on d and decodes its table.
func (d *e2eDevice) devices(extra ...string) (apitype.Devices, cliRun) {
	d.t.Helper()
	r := d.run(append([]string{"devices", "--json"}, extra...)...)
	var devs apitype.Devices
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &devs) != nil {
		d.t.Fatalf("%s: %s", d.name, r)
	}
	return devs, r
}

func first[A, B any](a A, _ B) A { return a }

// verify runs `chatsync verify --json` (--repair too if repair) on d.
func (d *e2eDevice) verify(repair bool) (apitype.VerifyResult, cliRun) {
	d.t.Helper()
	args := []string{"verify", "--json"}
	if repair {
		args = append(args, "--repair")
	}
	r := d.run(args...)
	var v apitype.VerifyResult
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		d.t.Fatalf("%s: the output is not a verify result (%v)\n%s", d.name, err, r)
	}
	return v, r
}

// differences is v's counts, for messages.
func differences(v apitype.VerifyResult) string {
	return fmt.Sprintf("in_sync %v, missing_here %d, never_pushed %d, differs %d, undecryptable %d, deleted_here_alive_there %d, examples %+v, pending %d, hint %q",
		v.InSync, v.MissingHere, v.NeverPushed, v.Differs, v.Undecryptable, v.DeletedHereAliveThere, v.Examples, v.Pending, v.Hint)
}

// entry is the device id's line of the table.
func entry(devs apitype.Devices, id string) (apitype.SyncDevice, bool) {
	for _, d := range devs.Devices {
		if strings.EqualFold(d.DeviceID, id) {
			return d, true
		}
	}
	return apitype.SyncDevice{}, false
}

// socketGet makes a GET request of path on d's control socket.
func (d *e2eDevice) socketGet(path string) (int, []byte) {
	d.t.Helper()
	sock := filepath.Join(d.dir, "s.sock")
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	return httpGet(d.t, hc, "http://chatsync.sock"+path)
}

func httpGet(t *testing.T, hc *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// setDaemonOption adds a line to the [daemon] table of d's config.
func (d *e2eDevice) setDaemonOption(line string) {
	d.t.Helper()
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		d.t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("[daemon]\n")) {
		d.t.Fatalf("no [daemon] table in %s", d.config)
	}
	cfg = bytes.Replace(cfg, []byte("[daemon]\n"), []byte("[daemon]\n"+line+"\n"), 1)
	if err := os.WriteFile(d.config, cfg, 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// freeLoopbackAddr returns a loopback host:port that nothing listens on
// (it did a moment ago, for the kernel to pick it).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// openedRow is one journal row as the account key opens it.
type openedRow struct {
	id    int64
	uuid  string
	entry seal.Entry
	err   error
}

// openedRows reads every row of the journal from the server and opens it
// with the keys of keyFile.
func openedRows(t *testing.T, srv *e2eServer, keyFile string) []openedRow {
	t.Helper()
	kr, err := seal.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []openedRow
	for _, r := range srv.allRows(t) {
		e, err := kr.Open(r.Data, e2eAccount)
		out = append(out, openedRow{id: r.ID, uuid: r.UUID, entry: e, err: err})
	}
	return out
}

// reports counts the report rows of the journal by writing device (the
// row's uuid, lower case), with their total.
func reports(t *testing.T, srv *e2eServer, keyFile string) (map[string]int, int) {
	t.Helper()
	by, n := map[string]int{}, 0
	for _, r := range openedRows(t, srv, keyFile) {
		if r.err != nil {
			t.Fatalf("journal row %d does not open with the account key: %v", r.id, r.err)
		}
		if r.entry.Op == seal.OpReport {
			if !strings.EqualFold(r.entry.Device, r.uuid) {
				t.Errorf("report row %d is posted by %s but says it is from %s", r.id, r.uuid, r.entry.Device)
			}
			by[strings.ToLower(r.uuid)]++
			n++
		}
	}
	return by, n
}

// messageRows counts the journal rows that are messages (put or delete),
// not reports.
func messageRows(t *testing.T, srv *e2eServer, keyFile string) int {
	t.Helper()
	n := 0
	for _, r := range openedRows(t, srv, keyFile) {
		if r.err == nil && (r.entry.Op == seal.OpPut || r.entry.Op == seal.OpDelete) {
			n++
		}
	}
	return n
}

// keyIDs is the key ids of keyFile, as `chatsync key fingerprint --json`
// prints them for d's account.
func (d *e2eDevice) keyIDs() []string {
	d.t.Helper()
	r := d.run("key", "fingerprint", "--json")
	var fp struct {
		KeyFiles []struct {
			Keys []struct {
				KeyID string `json:"key_id"`
			} `json:"keys"`
		} `json:"key_files"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &fp) != nil || len(fp.KeyFiles) != 1 {
		d.t.Fatalf("%s: %s", d.name, r)
	}
	var ids []string
	for _, k := range fp.KeyFiles[0].Keys {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// version is what `chatsync version --json` says.
func (d *e2eDevice) version() string {
	d.t.Helper()
	r := d.run("version", "--json")
	var v struct {
		Version string `json:"version"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Version == "" {
		d.t.Fatalf("%s", r)
	}
	return v.Version
}

// scrape parses a Prometheus text exposition.
func scrape(t *testing.T, what string, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s is not the Prometheus text format: %v\n%s", what, err, body)
	}
	return fams
}

// sample is the value of the sample of name whose labels include labels.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// labelOf is the value of m's label name.
func labelOf(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// events follows d's event stream until the test ends, and passes on
// every event.
func (d *e2eDevice) events() <-chan apitype.Event {
	d.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d.t.Cleanup(cancel)
	c := &localclient.Client{Socket: filepath.Join(d.dir, "s.sock")}
	s, err := c.Events(ctx)
	if err != nil {
		d.t.Fatalf("%s: events: %v", d.name, err)
	}
	out := make(chan apitype.Event, 1024)
	go func() {
		defer s.Close()
		for s.Next() {
			select {
			case out <- s.Event():
			default: // nobody reads that fast: the test has what it needs
			}
		}
	}()
	return out
}

// waitEvent waits until an event of kind arrives on ch, and returns it.
func waitEvent(t *testing.T, ch <-chan apitype.Event, kind string, timeout time.Duration, logs ...*e2eDevice) apitype.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			for _, d := range logs {
				t.Logf("log of %s:\n%s", d.name, logTail(d, 60))
			}
			t.Fatalf("no %q event within %s", kind, timeout)
		}
	}
}
