//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chatsync/chatsync/store"
	"github.com/chatsync/chatsync/sync/apitype"
	"github.com/chatsync/chatsync/sync/localclient"
)

const (
	benchAccount  = "alice@example.com"
	floorAccount  = "floor@example.com"
	benchPassword = "correct horse battery"
)

// server is a chatsync-server process.
type server struct {
	url  string
	cmd  *exec.Cmd
	done chan error
}

// startServer starts a chatsync-server of its own in the work directory;
// strict starts it with --strict-compat, as the real CDRTool server
// behaves (no long poll, its page limits).
func (b *bench) startServer(name string, strict bool) (*server, error) {
	dir := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	accounts := filepath.Join(dir, "accounts.toml")
	var sb strings.Builder
	for _, a := range []string{benchAccount, floorAccount} {
		fmt.Fprintf(&sb, "[[account]]\naddress = %q\npassword = %q\n\n", a, benchPassword)
	}
	if err := os.WriteFile(accounts, []byte(sb.String()), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.bins.server, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"),
		"--accounts", accounts, "--log-level", "warn")
	if strict {
		cmd.Args = append(cmd.Args, "--strict-compat")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	b.cleanup = append(b.cleanup, s.stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() {
		io.Copy(io.Discard, stdout)
		s.done <- cmd.Wait()
		logf.Close()
	}()
	if err != nil {
		return nil, fmt.Errorf("chatsync-server printed no address: %v", err)
	}
	s.url = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// device is one chatsync daemon with its own store, state and config.
type device struct {
	b      *bench
	name   string
	dir    string
	store  string
	config string
	socket string
	pprof  string // host:port of net/http/pprof, with -pprof
	cmd    *exec.Cmd
	exited chan error
	lc     *localclient.Client
	// peakAnon is the highest RssAnon seen by waitFor since start.
	peakAnon int64
}

// newDevice makes a device in the work directory, with a store of its own
// or, if store is not "", that one.
func (b *bench) newDevice(name string, srv *server, store string) (*device, error) {
	dir := filepath.Join(b.tmp, name)
	if store == "" {
		store = filepath.Join(dir, "store")
	}
	d := &device{b: b, name: name, dir: dir, store: store,
		config: filepath.Join(dir, "config.toml"), socket: filepath.Join(dir, "s.sock")}
	for _, dir := range []string{dir, d.store} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(benchPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	// The defaults of config.example.toml, with the idle poll interval
	// written out: 30 s.
	cfg := fmt.Sprintf(`[daemon]
state_dir = %q
socket = %q
log_level = "info"

[[account]]
address = %q
settings_url = %q
password_file = %q
store = %q
key_file = %q
poll_interval = "30s"
`, filepath.Join(dir, "state"), d.socket, benchAccount, srv.url, filepath.Join(dir, "password"), d.store, b.keyFile)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	d.lc = &localclient.Client{Socket: d.socket}
	b.cleanup = append(b.cleanup, func() { d.stop() })
	return d, nil
}

func (d *device) start() error {
	cmd := exec.Command(d.b.bins.chatsync, "run", "--config", d.config)
	cmd.Env = os.Environ()
	if d.b.cfg.PprofDir != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		d.pprof = fmt.Sprintf("127.0.0.1:%d", port)
		cmd.Env = append(cmd.Env, "CHATSYNC_PPROF="+d.pprof)
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	d.cmd, d.exited, d.peakAnon = cmd, make(chan error, 1), 0
	go func() {
		d.exited <- cmd.Wait()
		logf.Close()
	}()
	return nil
}

func (d *device) pid() int { return d.cmd.Process.Pid }

// stateFile is the path of the daemon's state (bbolt) file.
func (d *device) stateFile() string { return filepath.Join(d.dir, "state", store.FileName) }

// stop sends SIGTERM and waits for the daemon to exit.
func (d *device) stop() error {
	if d.cmd == nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-d.exited:
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		err = fmt.Errorf("%s did not exit within 60 s of SIGTERM", d.name)
	}
	d.cmd = nil
	return err
}

func (d *device) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// status returns the account's status, or an error while the daemon is
// not answering yet.
func (d *device) status(ctx context.Context) (apitype.AccountStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := d.lc.Status(ctx)
	if err != nil {
		return apitype.AccountStatus{}, err
	}
	if len(st.Accounts) != 1 {
		return apitype.AccountStatus{}, fmt.Errorf("%d accounts in the status", len(st.Accounts))
	}
	return st.Accounts[0], nil
}

// waitFor polls the status every 20 ms until cond holds, and returns when
// it first did.
func (d *device) waitFor(ctx context.Context, timeout time.Duration, what string, cond func(apitype.AccountStatus) bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last apitype.AccountStatus
	for {
		select {
		case err := <-d.exited:
			d.cmd = nil
			return time.Time{}, fmt.Errorf("%s exited (%v) while waiting for %s; log:\n%s", d.name, err, what, d.logTail())
		default:
		}
		if m, err := readStatus(fmt.Sprintf("/proc/%d/status", d.pid())); err == nil {
			d.peakAnon = max(d.peakAnon, m["RssAnon"]*1024)
		}
		st, err := d.status(ctx)
		if err == nil {
			last = st
			if cond(st) {
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: timed out after %s waiting for %s (last status %+v); log:\n%s", d.name, timeout, what, last, d.logTail())
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// events follows the daemon's event stream; the channel closes when ctx
// ends.
func (d *device) events(ctx context.Context) (<-chan apitype.Event, error) {
	es, err := d.lc.Events(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan apitype.Event, 256)
	go func() {
		defer close(ch)
		defer es.Close()
		for es.Next() {
			ev := es.Event()
			ev.Time = time.Now() // when the harness saw it
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// profileCPU takes back-to-back CPU profiles of the daemon (2 s each) into
// the -pprof directory until the returned stop is called; stop waits for
// the profile in progress. `go tool pprof` merges the files it is given.
func (d *device) profileCPU(name string) (stop func()) {
	if d.b.cfg.PprofDir == "" || d.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			path := filepath.Join(d.b.cfg.PprofDir, fmt.Sprintf("%s-cpu-%03d.pb.gz", name, i))
			if err := fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=2", d.pprof), path); err != nil {
				d.b.logf("pprof %s: %v", name, err)
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// profileHeap saves the daemon's heap profile.
func (d *device) profileHeap(name string) {
	if d.b.cfg.PprofDir == "" || d.pprof == "" {
		return
	}
	path := filepath.Join(d.b.cfg.PprofDir, name+"-heap.pb.gz")
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/heap", d.pprof), path); err != nil {
		d.b.logf("pprof %s: %v", name, err)
	}
}

func fetch(url, path string) error {
	var resp *http.Response
	var err error
	for range 50 { // the daemon may still be starting
		resp, err = http.Get(url)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// newUUID returns a random urn:uuid (version 4).
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
