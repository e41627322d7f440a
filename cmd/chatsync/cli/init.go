package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/crypto/seal"
	"github.com/chatsync/chatsync/store/blinkdb"
)

func init() { extraCommands = append(extraCommands, newInitCmd) }

type initFlags struct {
	address, settingsURL, passwordFile, store, storeFormat, importKey string
	passwordStdin, firstDevice, force                                 bool
}

func newInitCmd(g *globals) *cobra.Command {
	f := &initFlags{}
	c := &cobra.Command{
		Use:   "init",
		Short: "Set up an account: config, password file, key and store, checked against the server",
		Long: `init sets up one account on this device in one step. It writes the config
(one [[account]] block), the password file and the key file (all mode 0600),
creates the message store, and checks the credentials with one real request to
the server. It then prints the command that starts syncing.

On a terminal it asks for what the flags do not give: the address, the settings
URL, the password (not echoed) and whether this is the first device of the
account (a new key) or not (paste the line ` + "`chatsync key export`" + ` printed on
the other device). When standard input is not a terminal nothing is asked, and
a missing flag is a usage error.

The password and key files go beside the config, named after the address; the
store is ~/Chats/ADDRESS. With --store-format blink-qt or blink-cocoa and no
--store, init looks for the client's database at its usual place and takes the
one that holds the account's messages.

init never overwrites a config (give --force to replace it) nor a key: a key
file that exists is kept. If the server refuses the credentials, init exits 1
and leaves the files: fix what it says and run ` + "`chatsync config check --online`" + `.`,
		Example: `  chatsync init
  chatsync init --address alice@example.com --settings-url https://blink.sipthor.net/settings.phtml --first-device
  printf '%s\n' "$PASSWORD" | chatsync init --address alice@example.com \
      --settings-url https://blink.sipthor.net/settings.phtml --password-stdin --import-key chatsync-key:v1:...
  chatsync init --address alice@example.com --settings-url https://blink.sipthor.net/settings.phtml \
      --password-file ~/.config/chatsync/alice.password --store-format blink-qt --first-device`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return runInit(ctx, g, f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.address, "address", "", "the SIP `ADDRESS` of the account (user@domain)")
	fl.StringVar(&f.settingsURL, "settings-url", "", "the account's settings `URL` (SIP Account API), e.g. https://blink.sipthor.net/settings.phtml")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input (one line)")
	fl.StringVar(&f.passwordFile, "password-file", "", "use the password in `FILE` (mode 0600): the config names this file")
	fl.StringVar(&f.store, "store", "", "the message store: a directory (json) or the client's database `PATH` (default ~/Chats/ADDRESS, or the database found)")
	fl.StringVar(&f.storeFormat, "store-format", config.StoreJSON, "what the store is: `json`, blink-qt or blink-cocoa")
	fl.BoolVar(&f.firstDevice, "first-device", false, "this is the account's first device: make a new key")
	fl.StringVar(&f.importKey, "import-key", "", "use the key of another device: the `LINE` printed by `chatsync key export` there")
	fl.BoolVar(&f.force, "force", false, "replace an existing config (and password file)")
	return c
}

// initRun is one run of init: the flags, and how to ask for what they lack.
type initRun struct {
	g           *globals
	f           *initFlags
	interactive bool
	lines       *bufio.Reader
}

func runInit(ctx context.Context, g *globals, f *initFlags) error {
	r := &initRun{g: g, f: f}
	if fi, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(fi.Fd())) {
		r.interactive = true
		r.lines = bufio.NewReader(g.stdin)
	}
	if f.passwordStdin && f.passwordFile != "" {
		return usagef("give either --password-stdin or --password-file, not both")
	}
	if f.firstDevice && f.importKey != "" {
		return usagef("give either --first-device (a new key) or --import-key (the key of another device), not both")
	}
	switch f.storeFormat {
	case config.StoreJSON, config.StoreBlinkQt, config.StoreBlinkCocoa:
	default:
		return usagef("--store-format %q: give json, blink-qt or blink-cocoa", f.storeFormat)
	}

	// The config first: a run that would be refused asks nothing.
	cfgPath, err := config.ExpandPath(g.configFile())
	if err != nil {
		return usagef("--config: %v", err)
	}
	if _, err := os.Lstat(cfgPath); err == nil && !f.force {
		return fmt.Errorf("%s already exists: init never overwrites a config; give --force to replace it, or check it with `%s`", cfgPath, checkCommand(g, true))
	}
	dir := filepath.Dir(cfgPath)

	addr, err := r.value(f.address, "address", "SIP address (user@domain): ")
	if err != nil {
		return err
	}
	addr = strings.TrimPrefix(strings.TrimSpace(addr), "sip:")
	if user, domain, ok := strings.Cut(addr, "@"); !ok || user == "" || domain == "" || strings.ContainsAny(addr, " \t/:\\") {
		return usagef("--address %q is not a SIP address: write it as user@domain", addr)
	}
	settingsURL, err := r.value(f.settingsURL, "settings-url", "settings URL (e.g. https://blink.sipthor.net/settings.phtml): ")
	if err != nil {
		return err
	}
	settingsURL = strings.TrimSpace(settingsURL)
	if u, err := url.Parse(settingsURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("--settings-url %q is not an http(s) URL: write it as https://HOST/settings.phtml", settingsURL)
	}

	// The password: its file, or the text to write into one.
	pwPath := filepath.Join(dir, addr+".password")
	var password string
	switch {
	case f.passwordFile != "":
		if pwPath, err = config.ExpandPath(f.passwordFile); err != nil {
			return usagef("--password-file: %v", err)
		}
		fi, err := os.Stat(pwPath)
		if err != nil {
			return fmt.Errorf("--password-file %s: %v: write the password into it first (mode 0600), or use --password-stdin", pwPath, unwrapPath(err))
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 && !isWindows() {
			return fmt.Errorf("%s is readable by other users (mode %04o): run `chmod 600 %s` first", pwPath, perm, pwPath)
		}
	case f.passwordStdin:
		b, err := g.readSecret("password for "+addr+": ", false)
		if err != nil {
			return err
		}
		password = string(b)
	case r.interactive:
		b, err := g.readSecret("password for "+addr+" (not shown): ", false)
		if err != nil {
			return err
		}
		password = string(b)
	default:
		return r.missing("password-stdin", "give the password on standard input with --password-stdin, or in a file (mode 0600) with --password-file")
	}
	if f.passwordFile == "" && strings.TrimSpace(password) == "" {
		return usagef("the password is empty: give the account's password")
	}

	// The key: a new one, or the other device's.
	var imported []seal.Key
	switch {
	case f.importKey != "":
		keys, err := seal.ImportKeys(f.importKey)
		if err != nil {
			return fmt.Errorf("--import-key: %w: copy the whole line printed by `chatsync key export` on your other device again", err)
		}
		imported = keys
	case f.firstDevice:
	case r.interactive:
		first, err := r.yesNo("Is this the first device of " + addr + " with chatsync? (no: you will paste the key of the other device) [y/n]: ")
		if err != nil {
			return err
		}
		if !first {
			b, err := g.readSecret("the line printed by `chatsync key export` on the other device (not shown): ", false)
			if err != nil {
				return err
			}
			keys, err := seal.ImportKeys(string(b))
			if err != nil {
				return fmt.Errorf("%w: copy the whole line printed by `chatsync key export` on your other device and run init again", err)
			}
			imported = keys
		}
	default:
		return r.missing("first-device", "give --first-device on the account's first device (a new key), or --import-key LINE with the line `chatsync key export` prints on your other device")
	}

	store, err := r.findStore(ctx, addr)
	if err != nil {
		return err
	}

	// Everything is known: write.
	out := g.stdout
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if f.passwordFile == "" {
		wrote, err := writeSecretFile(pwPath, password+"\n", f.force)
		if err != nil {
			return err
		}
		if wrote {
			fmt.Fprintf(out, "wrote %s (the password, mode 0600)\n", pwPath)
		} else {
			fmt.Fprintf(out, "kept %s (the password, unchanged)\n", pwPath)
		}
	}
	keyPath := filepath.Join(dir, addr+".key")
	fp, note, err := writeKey(keyPath, imported)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s (the key, fingerprint %s)\n", note, keyPath, fp)
	if f.storeFormat == config.StoreJSON {
		fi, err := os.Stat(store)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.MkdirAll(store, 0o700); err != nil {
				return fmt.Errorf("create the store: %w", err)
			}
			fmt.Fprintf(out, "created %s (the message store, a directory of JSON files)\n", store)
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory: give the store directory with --store", store)
		default:
			fmt.Fprintf(out, "kept %s (the message store, already there)\n", store)
		}
	} else {
		fmt.Fprintf(out, "using %s (the message store, %s's database)\n", store, clientName(f.storeFormat))
	}
	if err := writeInitConfig(cfgPath, initConfigText(addr, settingsURL, pwPath, store, f.storeFormat, keyPath), f.force); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (the config, mode 0600)\n", cfgPath)

	// One real request with the credentials.
	cfg, problems, err := config.Load(cfgPath)
	for _, p := range problems {
		fmt.Fprintf(g.stderr, "%s: %s\n", cfgPath, p)
	}
	if err != nil {
		return fmt.Errorf("the config just written does not load (%v): this is a bug, please report it", err)
	}
	res := checkOnline(ctx, g, cfgPath, cfg.Accounts[0])
	if !res.OK {
		return fmt.Errorf("the files are written, but the check failed: %s", res.Message)
	}
	fmt.Fprintf(out, "%s: ok (the server accepted the password)\n", addr)
	cfgFlag := ""
	if g.configPath != "" && cfgPath != config.DefaultPath() {
		cfgFlag = " --config " + shellQuote(cfgPath)
	}
	if imported == nil {
		fmt.Fprintf(out, "on your other devices: run `chatsync key export%s` here, then `chatsync init --import-key LINE ...` there\n", cfgFlag)
	}
	if config.IsSystemConfig(cfgPath) {
		fmt.Fprintf(out, "next: `chatsync run%s` (in the foreground), or `chatsync service install%s` (as a system service)\n", cfgFlag, cfgFlag)
	} else {
		fmt.Fprintf(out, "next: `chatsync run%s` (in the foreground), or `chatsync service install --user%s` (as a service that starts at login)\n", cfgFlag, cfgFlag)
	}
	return nil
}

// value is the flag's value, or the answer to prompt on a terminal.
func (r *initRun) value(v, flag, prompt string) (string, error) {
	if v != "" {
		return v, nil
	}
	if !r.interactive {
		return "", r.missing(flag, "give it as a flag")
	}
	for tries := 0; tries < 3; tries++ {
		fmt.Fprint(r.g.stderr, prompt)
		line, err := r.lines.ReadString('\n')
		if s := strings.TrimSpace(line); s != "" {
			return s, nil
		}
		if err != nil {
			break
		}
	}
	return "", usagef("no %s given: give it with --%s", flag, flag)
}

// yesNo asks a yes/no question on the terminal.
func (r *initRun) yesNo(prompt string) (bool, error) {
	for tries := 0; tries < 3; tries++ {
		fmt.Fprint(r.g.stderr, prompt)
		line, err := r.lines.ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		if err != nil {
			break
		}
	}
	return false, usagef("no answer: give --first-device or --import-key LINE")
}

// missing is the usage error for a flag that cannot be asked for.
func (r *initRun) missing(flag, what string) error {
	return usagef("--%s is missing: %s (standard input is not a terminal, so init cannot ask; see `chatsync init --help`)", flag, what)
}

// findStore is the store to configure: --store, ~/Chats/ADDRESS for a
// directory, or the client's database that holds the account.
func (r *initRun) findStore(ctx context.Context, addr string) (string, error) {
	f := r.f
	if f.storeFormat == config.StoreJSON {
		p := f.store
		if p == "" {
			p = filepath.Join("~", "Chats", addr)
		}
		path, err := config.ExpandPath(p)
		if err != nil {
			return "", usagef("--store: %v", err)
		}
		return path, nil
	}
	d := blinkdb.Dialect(f.storeFormat)
	if f.store != "" {
		path, err := config.ExpandPath(f.store)
		if err != nil {
			return "", usagef("--store: %v", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("--store %s: %v: start %s once with this account, or give the database's path (`chatsync store find` lists the databases on this machine)", path, unwrapPath(err), clientName(f.storeFormat))
		}
		if fi.IsDir() {
			return "", usagef("--store %s is a directory: with --store-format %s give the database file (for example ~/.blink/message_history.db)", path, f.storeFormat)
		}
		accts, err := blinkdb.Accounts(ctx, path, d)
		if err != nil {
			return "", fmt.Errorf("--store %s: %v: check --store and --store-format", path, err)
		}
		if !holdsAccount(accts, addr) {
			fmt.Fprintf(r.g.stderr, "note: %s holds no messages of %s yet; they will be synced from the other devices\n", path, addr)
		}
		return path, nil
	}
	var found, looked []string
	for _, l := range blinkdb.Locate() {
		if l.Dialect != d {
			continue
		}
		looked = append(looked, l.Path)
		accts, err := blinkdb.Accounts(ctx, l.Path, d)
		if err != nil {
			fmt.Fprintf(r.g.stderr, "note: skipped %s: %v\n", l.Path, err)
			continue
		}
		if holdsAccount(accts, addr) {
			found = append(found, l.Path)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		where := "no " + clientName(f.storeFormat) + " database was found at its usual place"
		if len(looked) > 0 {
			where = "no " + clientName(f.storeFormat) + " database at its usual place (" + strings.Join(looked, ", ") + ") holds messages of " + addr
		}
		return "", usagef("--store is needed: %s; give the database's path with --store (`chatsync store find` lists the databases on this machine)", where)
	}
	return "", usagef("--store is needed: several databases hold messages of %s (%s): say which with --store", addr, strings.Join(found, ", "))
}

func holdsAccount(accts []blinkdb.AccountRows, addr string) bool {
	for _, a := range accts {
		if seal.SameAccount(a.Account, addr) {
			return true
		}
	}
	return false
}

// writeSecretFile writes text to path with mode 0600. A file that holds
// other text is replaced only with force; it reports whether it wrote.
func writeSecretFile(path, text string, force bool) (bool, error) {
	if old, err := os.ReadFile(path); err == nil {
		if string(old) == text {
			if err := os.Chmod(path, 0o600); err != nil {
				return false, err
			}
			return false, nil
		}
		if !force {
			return false, fmt.Errorf("%s already exists and holds another password: give --force to replace it, or --password-file %s to use it", path, path)
		}
	}
	return true, writeAtomic(path, []byte(text))
}

// writeKey makes the key file: a new key, or the imported ones added. A
// key file that exists is never replaced.
func writeKey(path string, imported []seal.Key) (fingerprint, did string, err error) {
	if imported != nil {
		_, statErr := os.Stat(path)
		n, err := seal.AddKeys(path, imported)
		newest := imported[len(imported)-1].Fingerprint()
		switch {
		case err != nil:
			return "", "", err
		case n == 0:
			return newest, "kept", nil
		case statErr == nil:
			return newest, "added the imported keys to", nil
		}
		return newest, "wrote", nil
	}
	k, err := seal.GenerateKeyFile(path)
	if errors.Is(err, fs.ErrExist) {
		kr, lerr := seal.LoadKeyring(path)
		if lerr != nil {
			return "", "", fmt.Errorf("%s already exists and cannot be read (%v): chatsync never overwrites a key; move it away and run init again", path, lerr)
		}
		return kr.Current().Fingerprint(), "kept", nil
	}
	if err != nil {
		return "", "", err
	}
	return k.Fingerprint(), "wrote", nil
}

// writeInitConfig writes the config with mode 0600: a new file, or with force
// a replacement put in place in one step.
func writeInitConfig(path, text string, force bool) error {
	if force {
		return writeAtomic(path, []byte(text))
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: init never overwrites a config; give --force to replace it", path)
	}
	if err != nil {
		return err
	}
	if _, err := io.WriteString(fh, text); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// writeAtomic replaces path with data (mode 0600) through a temporary
// file in the same directory.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && !isWindows() {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// initConfigText is the config init writes: one [[account]] block.
func initConfigText(addr, settingsURL, pwPath, store, format, keyPath string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# chatsync config, written by `chatsync init` on %s.\n", time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "# Check it with `chatsync config check --online`; every key is described in config.example.toml.\n\n")
	fmt.Fprintf(&b, "[[account]]\n")
	fmt.Fprintf(&b, "address       = %s\n", tomlString(addr))
	fmt.Fprintf(&b, "settings_url  = %s\n", tomlString(settingsURL))
	fmt.Fprintf(&b, "password_file = %s\n", tomlString(pwPath))
	fmt.Fprintf(&b, "store         = %s\n", tomlString(store))
	if format != config.StoreJSON {
		fmt.Fprintf(&b, "store_format  = %s\n", tomlString(format))
	}
	fmt.Fprintf(&b, "key_file      = %s\n", tomlString(keyPath))
	return b.String()
}

// unwrapPath drops the operation and path of an *fs.PathError, which the
// message around it already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isWindows() bool { return filepath.Separator == '\\' }
