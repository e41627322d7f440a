package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/blinkdb/blinktest"
	"github.com/chatsync/chatsync/store/blinkdb/testschema"
	"github.com/chatsync/chatsync/store/msgdir"
	"github.com/chatsync/chatsync/sync/accountserver"
	"github.com/chatsync/chatsync/sync/engine"
)

const demoAccount = "demo@example.com"

// demoAdvice is what to do when a step of the demo does not finish: look
// at what it left (with --keep: it is there already), or give a slow or
// busy machine longer.
func demoAdvice(keep string) string {
	if keep != "" {
		return "the stores, configs and state are in " + keep + " (the warnings above say what failed); on a slow or busy machine give it longer with --timeout 5m"
	}
	return "give it longer with --timeout 5m, or run `chatsync demo --keep DIR` to look at the stores and configs afterwards"
}

func newDemoCmd(g *globals) *cobra.Command {
	var keep, format string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show chatsync at work: two devices of one account, through a local server",
		Long: `demo starts chatsync-server on a loopback port with a throw-away account and two
chatsync daemons (device A and device B of that account), each with its own
message store, state and config in a temporary directory. It writes messages
into A's store and waits until they appear in B's, edits one and deletes one on
B and waits for A to follow, and prints what the server holds: ciphertext only.

With --format blink-qt (or blink-cocoa) device A's store is a Blink Qt (or
Blink Cocoa) history database, made with the client's own schema, and the
demo plays the client: it saves the messages into A's database as the
client does, and B's edit and delete arrive there as rows the client loads.

With --keep DIR everything stays in DIR and keeps running until Ctrl-C, so you
can write your own messages into the stores and watch them move.`,
		Example: "  chatsync demo\n  chatsync demo --format blink-qt\n  chatsync demo --keep ./demo",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch format {
			case config.StoreJSON, config.StoreBlinkQt, config.StoreBlinkCocoa:
			default:
				return usagef("--format %q: give json, blink-qt or blink-cocoa", format)
			}
			return runDemo(ctx, g, keep, format, timeout)
		},
	}
	c.Flags().StringVar(&format, "format", config.StoreJSON, "device A's store: `json`, blink-qt or blink-cocoa")
	c.Flags().StringVar(&keep, "keep", "", "keep everything in `DIR` and keep running until Ctrl-C")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up if a step takes longer than this")
	return c
}

type demoDevice struct {
	name   string
	dir    string
	store  string
	format string
	config string
	d      *daemon.Daemon
	done   chan error
}

func runDemo(ctx context.Context, g *globals, keep, format string, timeout time.Duration) (err error) {
	out := g.stdout
	dir := keep
	if dir == "" {
		dir, err = os.MkdirTemp("", "chatsync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return err
	} else if err := resetKeptDemo(dir, out); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if keep != "" {
		if err := writePrivate(filepath.Join(dir, demoMarker), "a chatsync demo: `chatsync demo --keep` starts it afresh\n"); err != nil {
			return err
		}
	}

	advice := demoAdvice(keep)
	if keep != "" {
		advice = demoAdvice(dir)
	}

	// The server, with a throw-away account.
	password := randomHex(12)
	srv, err := accountserver.New(accountserver.Options{
		DataDir:  filepath.Join(dir, "server"),
		Accounts: []accountserver.Account{{Address: demoAccount, Password: password}},
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go httpSrv.Serve(ln)
	defer httpSrv.Close()
	settingsURL := "http://" + ln.Addr().String() + accountserver.Path
	if err := writePrivate(filepath.Join(dir, "accounts.toml"), fmt.Sprintf("[[account]]\naddress = %q\npassword = %q\n", demoAccount, password)); err != nil {
		return err
	}

	// One key for the account, shared by both devices.
	keyFile := filepath.Join(dir, "demo.key")
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		if _, err := seal.GenerateKeyFile(keyFile); err != nil {
			return err
		}
	}
	kr, err := seal.LoadKeyring(keyFile)
	if err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(dir, "demo.password"), password+"\n"); err != nil {
		return err
	}

	fmt.Fprintf(out, "chatsync demo: two devices of one account, through a local chatsync-server\n\n")
	fmt.Fprintf(out, "  server    %s  (account %s)\n", settingsURL, demoAccount)
	devices := []*demoDevice{{name: "A", format: format}, {name: "B", format: config.StoreJSON}}
	logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, dev := range devices {
		if err := dev.setup(dir, settingsURL, keyFile); err != nil {
			return err
		}
		cfg, _, err := config.Load(dev.config)
		if err != nil {
			return err
		}
		dev.d, err = daemon.New(daemon.Options{
			Config: cfg, Logger: logger.With("device", dev.name), Version: g.version,
			Tune: func(o *engine.Options) {
				o.ActivePollInterval = 250 * time.Millisecond
				o.Debounce = 50 * time.Millisecond
			},
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  device %s  store %s (%s)\n            device id %s\n", dev.name, dev.store, dev.format, dev.d.DeviceID())
	}
	fmt.Fprintf(out, "  key       %s (fingerprint %s)\n\n", keyFile, kr.Current().Fingerprint())

	runCtx, cancel := context.WithCancel(context.Background())
	for _, dev := range devices {
		dev.done = make(chan error, 1)
		go func(dev *demoDevice) { dev.done <- dev.d.Run(runCtx) }(dev)
	}
	defer func() {
		cancel()
		for _, dev := range devices {
			if derr := <-dev.done; derr != nil && err == nil {
				err = derr
			}
		}
	}()
	a, b := devices[0], devices[1]

	// 1. Messages written on A appear on B.
	conversation := []struct{ remote, dir, body, direction string }{
		{"bob@example.com", "bob", "Hi Bob, are we still on for Friday?", "outgoing"},
		{"bob@example.com", "bob", "Yes! 7pm at the usual place.", "incoming"},
		{"bob@example.com", "bob", "Great, I'll bring the tickets.", "outgoing"},
		{"carol@example.org", "carol", "Carol, the draft is in your inbox.", "outgoing"},
		{"carol@example.org", "carol", "Thanks, I'll read it tonight.", "incoming"},
	}
	want := map[string]map[string]any{}
	start := time.Now()
	var client *blinktest.Writer // the Blink client, played by the demo
	if a.format != config.StoreJSON {
		if client, err = blinktest.Open(a.store, blinkdb.Dialect(a.format), demoAccount, "Demo"); err != nil {
			return err
		}
		defer client.Close()
		fmt.Fprintf(out, "1. %s (played by the demo) saves %d messages in A's database, as it does\n", clientName(a.format), len(conversation))
	} else {
		fmt.Fprintf(out, "1. A writes %d messages into its store\n", len(conversation))
	}
	for i, m := range conversation {
		id := fmt.Sprintf("%s-%d@demo", time.Now().Format("20060102T150405"), i+1)
		obj := map[string]any{
			"msgid": id, "time": time.Now().UTC().Format("2006-01-02 15:04:05"), "date": time.Now().UTC().Format("2006-01-02"),
			"media_type": "chat", "direction": m.direction, "local_uri": demoAccount, "remote_uri": m.remote,
			"cpim_from": demoAccount, "cpim_to": m.remote, "body": m.body, "content_type": "text/plain",
			"private": "0", "status": "delivered", "call_id": "", "encryption": "",
		}
		if m.direction == "incoming" {
			obj["cpim_from"], obj["cpim_to"] = m.remote, demoAccount
		}
		if client != nil {
			saved, err := client.Add(ctx, blinktest.Message{MsgID: id, Remote: m.remote, Direction: m.direction, Body: m.body, Status: "delivered"})
			if err != nil {
				return err
			}
			obj = map[string]any{"msgid": saved.MsgID, "remote_uri": m.remote, "direction": m.direction, "body": m.body}
		} else if err := writeMessage(a.store, filepath.Join(m.dir, id+".json"), obj); err != nil {
			return err
		}
		want[id] = obj
		fmt.Fprintf(out, "   %-18s %s\n", m.remote, m.body)
	}
	if err := waitUntil(ctx, timeout, advice, "the messages to reach B", func() bool { return a.holds(b.store, want) }); err != nil {
		return err
	}
	fmt.Fprintf(out, "   -> all %d are in B's store, identical, after %s\n\n", len(want), time.Since(start).Round(10*time.Millisecond))

	// 2. An edit and a delete on B reach A.
	ids := sortedIDs(want)
	editID, delID := ids[0], ids[len(ids)-1]
	bFiles := messageFiles(b.store)
	edited, err := readMessage(filepath.Join(b.store, bFiles[editID]))
	if err != nil {
		return err
	}
	edited["body"] = edited["body"].(string) + " (edited on B)"
	fmt.Fprintf(out, "2. B edits one message and deletes another\n   edit:   %q\n   delete: %q\n", edited["body"], want[delID]["body"])
	start = time.Now()
	if err := writeMessage(b.store, bFiles[editID], edited); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(b.store, bFiles[delID])); err != nil {
		return err
	}
	if client != nil {
		want[editID]["body"] = edited["body"]
	} else {
		want[editID] = edited
	}
	delete(want, delID)
	if err := waitUntil(ctx, timeout, advice, "A to follow B", func() bool { return a.has(want) }); err != nil {
		return err
	}
	fmt.Fprintf(out, "   -> A follows: edited and deleted, after %s\n\n", time.Since(start).Round(10*time.Millisecond))

	// 3. What the server holds.
	if err := waitUntil(ctx, timeout, advice, "both devices to finish", func() bool {
		for _, dev := range devices {
			for _, s := range dev.d.Status() {
				if s.OutboxDepth > 0 {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return err
	}
	rows, err := srv.Entries(demoAccount)
	if err != nil {
		return err
	}
	names := map[string]string{a.d.DeviceID(): "A", b.d.DeviceID(): "B"}
	// With the key the rows say what they are: versions of messages, and
	// the reports each device writes about itself (`chatsync devices`).
	versions, reports := 0, 0
	for _, r := range rows {
		if e, err := kr.Open(r.Data, demoAccount); err == nil && e.Op == seal.OpReport {
			reports++
		} else {
			versions++
		}
	}
	fmt.Fprintf(out, "3. The journal on the server: %d rows (%d message versions, %d device reports), what it stores is all it knows\n", len(rows), versions, reports)
	fmt.Fprintf(out, "   %-4s %-7s %-20s %s\n", "id", "device", "timestamp", "data")
	leaks := 0
	for _, r := range rows {
		data := r.Data
		if len(data) > 52 {
			data = data[:52] + fmt.Sprintf("... (%d bytes)", len(r.Data))
		}
		fmt.Fprintf(out, "   %-4d %-7s %-20s %s\n", r.ID, names[r.UUID], r.Timestamp, data)
		for _, m := range conversation {
			for _, secret := range []string{m.body, m.remote, "@demo", demoAccount} {
				if strings.Contains(r.Data, secret) {
					leaks++
				}
			}
		}
	}
	if leaks > 0 {
		return fmt.Errorf("%d journal rows contain plaintext: this is a bug, please report it", leaks)
	}
	fmt.Fprintf(out, "   -> no row contains a message body, a message id or an address: only ciphertext\n\n")

	fmt.Fprintf(out, "Done: A and B hold the same %d messages.\n", len(want))
	if keep == "" {
		return nil
	}
	fmt.Fprintf(out, `
Everything is in %s and keeps running until Ctrl-C:
  - write a message into A's store (a JSON file with a "msgid"):
      echo '{"msgid":"hello-1","remote_uri":"bob@example.com","body":"hello"}' > %s/hello.json
    and watch it appear under %s
  - the configs are %s and %s
  - the server's accounts file is %s (run it yourself with chatsync-server --accounts ... --data %s)
`, dir, a.store, b.store, a.config, b.config, filepath.Join(dir, "accounts.toml"), filepath.Join(dir, "server"))
	<-ctx.Done()
	return nil
}

// demoMarker marks a directory that holds a demo made with --keep.
const demoMarker = ".chatsync-demo"

// demoEntries are what a demo writes into its directory.
var demoEntries = []string{"server", "a", "b", "accounts.toml", "demo.key", "demo.password", demoMarker}

// resetKeptDemo empties dir of an earlier demo so that `demo --keep DIR`
// runs again on the same DIR: the earlier stores, state and journal would
// otherwise hold messages the new run does not expect. It refuses a
// directory that holds something else, and one whose demo still runs.
func resetKeptDemo(dir string, out io.Writer) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(entries) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	isDemo := fileExists(filepath.Join(dir, demoMarker)) ||
		fileExists(filepath.Join(dir, "accounts.toml")) && fileExists(filepath.Join(dir, "demo.password")) && fileExists(filepath.Join(dir, "a", "config.toml"))
	if !isDemo {
		return usagef("--keep %s: the directory is not empty and holds no earlier demo: give a new or empty directory", dir)
	}
	for _, dev := range []string{"a", "b"} {
		sock := filepath.Join(dir, dev, "chatsync.sock")
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("a demo still runs in %s (its device %s answers on %s): stop it with Ctrl-C first, or give another directory", dir, strings.ToUpper(dev), sock)
		}
	}
	for _, name := range demoEntries {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("start the demo in %s afresh: %w", dir, err)
		}
	}
	fmt.Fprintf(out, "%s held an earlier demo: starting afresh\n\n", dir)
	return nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func (dev *demoDevice) setup(dir, settingsURL, keyFile string) error {
	dev.dir = filepath.Join(dir, strings.ToLower(dev.name))
	dev.store = filepath.Join(dev.dir, "store")
	dev.config = filepath.Join(dev.dir, "config.toml")
	if err := os.MkdirAll(dev.dir, 0o700); err != nil {
		return err
	}
	switch dev.format {
	case config.StoreBlinkQt, config.StoreBlinkCocoa:
		// The client's database, as the client creates it.
		dev.store = filepath.Join(dev.dir, map[string]string{config.StoreBlinkQt: "message_history.db", config.StoreBlinkCocoa: "history.sqlite"}[dev.format])
		if _, err := os.Stat(dev.store); errors.Is(err, os.ErrNotExist) {
			if err := testschema.CreateForTest(dev.store, blinkdb.Dialect(dev.format)); err != nil {
				return err
			}
		}
	default:
		if err := os.MkdirAll(dev.store, 0o700); err != nil {
			return err
		}
	}
	text := fmt.Sprintf(`# chatsync demo, device %s
[daemon]
state_dir = %q
socket    = %q
log_level = "warn"

[[account]]
address       = %q
settings_url  = %q
password_file = %q
store         = %q
store_format  = %q
key_file      = %q
poll_interval = "2s"
device_name   = "demo device %s"
`, dev.name, filepath.Join(dev.dir, "state"), filepath.Join(dev.dir, "chatsync.sock"), demoAccount, settingsURL,
		filepath.Join(dir, "demo.password"), dev.store, dev.format, keyFile, dev.name)
	return writePrivate(dev.config, text)
}

func writePrivate(path, text string) error {
	return os.WriteFile(path, []byte(text), 0o600)
}

// holds reports whether the JSON store at dir holds exactly the messages
// of want, as this device wrote them: the whole message for a JSON store,
// the fields given for a database (the file then has every field the
// client's row gives).
func (dev *demoDevice) holds(dir string, want map[string]map[string]any) bool {
	if dev.format == config.StoreJSON {
		return sameMessages(dir, want)
	}
	got := map[string]map[string]any{}
	for id, rel := range messageFiles(dir) {
		if m, err := readMessage(filepath.Join(dir, rel)); err == nil {
			got[id] = m
		}
	}
	return sameFields(got, want)
}

// has reports whether this device's store holds exactly want.
func (dev *demoDevice) has(want map[string]map[string]any) bool {
	if dev.format == config.StoreJSON {
		return sameMessages(dev.store, want)
	}
	db, err := blinkdb.Open(dev.store, blinkdb.Dialect(dev.format), demoAccount)
	if err != nil {
		return false
	}
	defer db.Close()
	rows, err := db.Snapshot(context.Background())
	if err != nil {
		return false
	}
	got := map[string]map[string]any{}
	for k, r := range rows {
		var m map[string]any
		if !r.Deleted && json.Unmarshal(r.Message, &m) == nil {
			got[k.MsgID] = m
		}
	}
	return sameFields(got, want)
}

// sameFields reports whether got holds the messages of want, each with
// want's fields.
func sameFields(got, want map[string]map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			return false
		}
		for k, v := range w {
			if g[k] != v {
				return false
			}
		}
	}
	return true
}

func readMessage(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

func writeMessage(storeDir, rel string, obj map[string]any) error {
	data, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	return msgdir.WriteAtomic(storeDir, rel, append(data, '\n'))
}

// messageFiles maps msgid → path (relative) of every message in a store.
func messageFiles(storeDir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(storeDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || msgdir.Ignored(d.Name()) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if m, err := msgdir.Parse(data, 1<<20); err == nil {
			rel, _ := filepath.Rel(storeDir, p)
			out[m.MsgID] = rel
		}
		return nil
	})
	return out
}

// sameMessages reports whether storeDir holds exactly the messages of want,
// with the same content.
func sameMessages(storeDir string, want map[string]map[string]any) bool {
	files := messageFiles(storeDir)
	if len(files) != len(want) {
		return false
	}
	for id, obj := range want {
		rel, ok := files[id]
		if !ok {
			return false
		}
		got, err := os.ReadFile(filepath.Join(storeDir, rel))
		if err != nil {
			return false
		}
		a, err1 := msgdir.Parse(got, 1<<20)
		wantData, _ := json.Marshal(obj)
		b, err2 := msgdir.Parse(wantData, 1<<20)
		if err1 != nil || err2 != nil || a.Hash != b.Hash {
			return false
		}
	}
	return true
}

func waitUntil(ctx context.Context, timeout time.Duration, advice, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for %s after %s: %s", what, timeout, advice)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-tick.C:
		}
	}
	return nil
}

func sortedIDs(m map[string]map[string]any) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
