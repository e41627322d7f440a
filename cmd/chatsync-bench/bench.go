//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/account"
	"github.com/chatsync/chatsync/sync/apitype"
)

// config is what the command line sets.
type config struct {
	Sizes    []int         // backlog sizes, pushed and pulled
	Rounds   int           // rounds per size, each a floor then the daemon
	Latency  int           // watch-to-push samples
	D2D      int           // device-to-device samples
	Idle     time.Duration // idle window measured
	Settle   time.Duration // wait after the restart before the idle window
	PprofDir string        // where CPU and heap profiles of the daemon go ("" for none)
	BinDir   string        // prebuilt chatsync and chatsync-server ("" to build them)
	Keep     bool          // keep the work directory
	Verbose  bool
	Log      io.Writer // progress
}

type bench struct {
	cfg     config
	tmp     string
	bins    struct{ chatsync, server string }
	keyFile string
	keyring *seal.Keyring
	cleanup []func()
	trash   []string // directories to remove while nothing is measured
	start   time.Time
	rep     *report
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// run runs every scenario and returns the report.
func run(ctx context.Context, cfg config) (rep *report, err error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	b := &bench{cfg: cfg, start: time.Now(), rep: &report{}}
	b.tmp, err = os.MkdirTemp("", "chatsync-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
		if cfg.Keep || err != nil && cfg.Verbose {
			b.logf("work directory kept: %s", b.tmp)
		} else {
			os.RemoveAll(b.tmp)
		}
	}()
	if cfg.PprofDir != "" {
		if err := os.MkdirAll(cfg.PprofDir, 0o755); err != nil {
			return nil, err
		}
	}
	b.rep.Rounds, b.rep.Profiled = cfg.Rounds, cfg.PprofDir != ""
	b.rep.Machine = fmt.Sprintf("%d CPUs (%s), %s %s/%s", runtime.NumCPU(), machine(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	b.rep.LoadBefore = loadavg()
	if err := b.build(); err != nil {
		return nil, err
	}
	b.keyFile = filepath.Join(b.tmp, "alice.key")
	if _, err := seal.GenerateKeyFile(b.keyFile); err != nil {
		return nil, err
	}
	if b.keyring, err = seal.LoadKeyring(b.keyFile); err != nil {
		return nil, err
	}
	sizes := slices.Clone(cfg.Sizes)
	slices.Sort(sizes)
	var last *kept
	for i, n := range sizes {
		if last, err = b.backlog(ctx, n, i == len(sizes)-1); err != nil {
			return nil, err
		}
	}
	if err := b.scenarios(ctx, last); err != nil {
		return nil, err
	}
	b.rep.LoadAfter = loadavg()
	b.rep.Took = time.Since(b.start)
	return b.rep, nil
}

// build compiles the two binaries into the work directory.
func (b *bench) build() error {
	if b.cfg.BinDir != "" {
		b.bins.chatsync = filepath.Join(b.cfg.BinDir, "chatsync")
		b.bins.server = filepath.Join(b.cfg.BinDir, "chatsync-server")
		return nil
	}
	dir := filepath.Join(b.tmp, "bin")
	b.bins.chatsync = filepath.Join(dir, "chatsync")
	b.bins.server = filepath.Join(dir, "chatsync-server")
	args := []string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}
	if b.cfg.PprofDir != "" {
		args = append(args, "-tags", "benchpprof")
	}
	args = append(args, "github.com/chatsync/chatsync/cmd/chatsync", "github.com/chatsync/chatsync/cmd/chatsync-server")
	b.logf("go %s", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = b.cfg.Log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the binaries (run chatsync-bench inside the chatsync module, e.g. `make bench`, or give -bin DIR): %w", err)
	}
	return nil
}

// message is one message file of a generated backlog.
type message struct {
	rel   string // path below the store, where a receiving device writes it too
	msgid string
	data  []byte // the file
}

var words = strings.Fields(`the a meeting tomorrow at noon is fine see you there sounds good did you get
the files I sent yesterday call me when you land thanks ok let's do it later can't talk now on my way
running five minutes late great news about the project here is the address lunch`)

// genMessages makes n chat messages of a realistic size (about 330 bytes
// as a file, 50-200 characters of body) over 40 conversations.
func genMessages(prefix string, n int, seed uint64) []message {
	r := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	out := make([]message, n)
	for i := range out {
		var body strings.Builder
		for body.Len() < 50+r.IntN(150) {
			if body.Len() > 0 {
				body.WriteByte(' ')
			}
			body.WriteString(words[r.IntN(len(words))])
		}
		peer := fmt.Sprintf("peer%02d@example.com", r.IntN(40))
		dir := "outgoing"
		if r.IntN(2) == 0 {
			dir = "incoming"
		}
		id := fmt.Sprintf("%s-%07d@bench.chatsync", prefix, i)
		obj := map[string]any{
			"msgid": id, "remote_uri": "sip:" + peer, "local_uri": "sip:" + benchAccount,
			"direction": dir, "content_type": "text/plain", "state": "delivered",
			"timestamp": base.Add(time.Duration(i) * 17 * time.Second).Format(time.RFC3339),
			"body":      body.String(),
		}
		data, _ := json.MarshalIndent(obj, "", "  ")
		m, _ := msgdir.Parse(data, 1<<20)
		out[i] = message{rel: filepath.ToSlash(msgdir.IncomingPath(m)), msgid: id, data: data}
	}
	return out
}

// sealAll seals the messages as the daemon would, for the floor.
func (b *bench) sealAll(msgs []message, device string) ([]string, int, error) {
	envs := make([]string, len(msgs))
	total := 0
	for i, m := range msgs {
		pm, err := msgdir.Parse(m.data, 1<<20)
		if err != nil {
			return nil, 0, err
		}
		envs[i], err = b.keyring.Seal(seal.Entry{Op: seal.OpPut, MsgID: pm.MsgID, Account: benchAccount,
			Device: device, Time: time.Now(), Message: pm.Canonical})
		if err != nil {
			return nil, 0, err
		}
		total += len(envs[i])
	}
	return envs, total, nil
}

func newClient(srv *server, addr string) (*account.Client, error) {
	return account.New(account.Config{Address: addr, Password: benchPassword, SettingsURL: srv.url, Timeout: 2 * time.Minute})
}

// writeBacklog writes the message files into a store, as a history that
// exists before chatsync is installed.
func writeBacklog(store string, msgs []message) error {
	made := map[string]bool{}
	for _, m := range msgs {
		p := filepath.Join(store, filepath.FromSlash(m.rel))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			made[d] = true
		}
		if err := os.WriteFile(p, m.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// countFiles counts the message files of a store.
func countFiles(store string) int {
	n := 0
	filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !msgdir.Ignored(d.Name()) {
			n++
		}
		return nil
	})
	return n
}

// live writes one new message into a device's store, as a chat client
// would, and returns its path.
func live(d *device, i int) (string, error) {
	id := fmt.Sprintf("live-%s-%05d@bench.chatsync", d.name, i)
	obj := map[string]any{
		"msgid": id, "remote_uri": "sip:bob@example.com", "local_uri": "sip:" + benchAccount,
		"direction": "outgoing", "content_type": "text/plain", "state": "delivered",
		"timestamp": time.Now().UTC().Format(time.RFC3339), "body": "are you there? " + strings.Repeat("x", 60),
	}
	data, _ := json.MarshalIndent(obj, "", "  ")
	m, _ := msgdir.Parse(data, 1<<20)
	rel := msgdir.IncomingPath(m)
	return rel, msgdir.WriteAtomic(d.store, rel, data)
}

// waitEvent returns the time the first event of kind arrived.
func waitEvent(ch <-chan apitype.Event, kind string, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return time.Time{}, fmt.Errorf("the event stream ended")
			}
			if ev.Kind == kind {
				return ev.Time, nil
			}
		case <-t.C:
			return time.Time{}, fmt.Errorf("no %s event within %s", kind, timeout)
		}
	}
}

func drain(ch <-chan apitype.Event) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}
