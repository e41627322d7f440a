// Package config reads chatsync's TOML configuration file strictly.
//
// Every mistake is reported with the key and the line it is on, and all of
// them at once, so `chatsync config check` can list everything that is wrong
// in one run. The file is first decoded into plain TOML values and then
// checked key by key against the schema below, rather than decoded straight
// into structs: a struct decoder stops at the first wrong type and cannot say
// on which line an unknown key is.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/chatsync/chatsync/sync/engine"
)

// Defaults for the optional account keys.
const (
	DefaultPollInterval    = 30 * time.Second
	DefaultMaxMessageBytes = engine.DefaultMaxMessageBytes // what the real server can carry
	MinPollInterval        = time.Second
	MaxMaxMessageBytes     = engine.MaxIncomingBytes // what every device takes from another
)

// Config is a validated configuration.
type Config struct {
	// Path is the absolute path of the file it was read from.
	Path     string
	Daemon   Daemon
	Accounts []Account
}

// Daemon holds the [daemon] table.
type Daemon struct {
	StateDir    string
	Socket      string
	SocketGroup string // optional group that may also use the socket (mode 0660)
	LogLevel    slog.Level
	// MetricsListen is the loopback host:port on which the daemon serves
	// Prometheus metrics at /metrics; "" serves none. Only a loopback
	// address is accepted: the counters and timestamps say when the user
	// chats, which must not leave the machine unless the user puts a
	// reverse proxy (with its own authentication) in front.
	MetricsListen string
}

// Account holds one [[account]] block. Secrets are read from their files
// when the config is loaded, so a reload picks up a changed password.
type Account struct {
	Address         string
	SettingsURL     string
	Password        string
	PasswordFile    string
	WebPassword     string
	WebPasswordFile string
	Store           string
	// StoreFormat is what Store names (SPEC §6b): StoreJSON (a directory of
	// JSON files, the default), StoreBlinkQt or StoreBlinkCocoa (the
	// client's history database).
	StoreFormat      string
	KeyFile          string
	CAFile           string
	PollInterval     time.Duration
	ReplicateDeletes bool
	MaxMessageBytes  int64
	// DeviceName is what this device calls itself in its reports to the
	// account's other devices (`chatsync devices`): device_name, or the
	// host name.
	DeviceName string
	// Line is where the block starts, for messages about the account.
	Line int
}

// Problem is one mistake in the file.
type Problem struct {
	Line    int    // 0 when the problem is not tied to a line
	Key     string // dotted key, e.g. "account[2].poll_interval"
	Message string
	// Warning marks problems that do not stop the daemon, such as a key
	// file that does not exist yet.
	Warning bool
}

func (p Problem) String() string {
	kind := "error"
	if p.Warning {
		kind = "warning"
	}
	loc := ""
	if p.Line > 0 {
		loc = fmt.Sprintf("line %d: ", p.Line)
	}
	if p.Key != "" {
		return fmt.Sprintf("%s%s: %s: %s", loc, kind, p.Key, p.Message)
	}
	return fmt.Sprintf("%s%s: %s", loc, kind, p.Message)
}

// Error is returned by Load when the file has at least one problem that is
// not a warning. It lists every problem.
type Error struct {
	Path     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s has %d problem(s)", e.Path, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Errors returns the problems that are not warnings.
func (e *Error) Errors() []Problem {
	var out []Problem
	for _, p := range e.Problems {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// DefaultPath is where chatsync looks for its config when --config is not
// given: $XDG_CONFIG_HOME/chatsync/config.toml (or the OS's user config
// directory), and /etc/chatsync/config.toml for root on Linux when that file
// exists, which is what the packaged system service uses.
func DefaultPath() string {
	if runtime.GOOS == "linux" && os.Geteuid() == 0 {
		if _, err := os.Stat(SystemConfigPath); err == nil {
			return SystemConfigPath
		}
	}
	if dir := os.Getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "chatsync", "config.toml")
	}
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "chatsync", "config.toml")
	}
	return "config.toml"
}

// SystemConfigPath is the config file of the system service.
const SystemConfigPath = "/etc/chatsync/config.toml"

// Load reads and validates the file at path. It returns the config and
// every problem found; err is a *Error when any problem is not a warning,
// and then the config must not be used.
func Load(path string) (*Config, []Problem, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("config file %s does not exist: create it from config.example.toml, or pass --config", abs)
		}
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, problems := Parse(abs, data)
	if inlineSecrets(cfg) {
		if msg := privateFile(abs); msg != "" {
			problems = append(problems, Problem{Key: "password", Message: "the config holds a password, so " + msg})
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	for _, p := range problems {
		if !p.Warning {
			return nil, problems, &Error{Path: abs, Problems: problems}
		}
	}
	return cfg, problems, nil
}

func inlineSecrets(cfg *Config) bool {
	if cfg == nil {
		return false
	}
	for _, a := range cfg.Accounts {
		if a.PasswordFile == "" && a.Password != "" || a.WebPasswordFile == "" && a.WebPassword != "" {
			return true
		}
	}
	return false
}

// Parse validates data as the content of the config file at path (used for
// relative paths and messages). It reads the secret files the config names.
func Parse(path string, data []byte) (*Config, []Problem) {
	p := &parser{lines: newLineIndex(string(data)), system: IsSystemConfig(path)}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, []Problem{{Line: perr.Position.Line, Message: "TOML syntax: " + perr.Message}}
		}
		return nil, []Problem{{Message: "TOML syntax: " + err.Error()}}
	}
	cfg := &Config{Path: path}
	cfg.Daemon = p.daemon(raw)
	cfg.Accounts = p.accounts(raw)
	for k := range raw {
		if k != "daemon" && k != "account" {
			p.errorf(p.lines.key("", k, 0), k, "unknown key (known top-level keys: [daemon], [[account]])")
		}
	}
	p.crossChecks(cfg)
	return cfg, p.problems
}

type parser struct {
	lines    *lineIndex
	problems []Problem
	system   bool
}

func (p *parser) errorf(line int, key, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(line int, key, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: line, Key: key, Message: fmt.Sprintf(format, args...), Warning: true})
}

// table checks a TOML table against its known keys and reports unknown ones.
type table struct {
	p      *parser
	vals   map[string]any
	header string // "daemon" or "account"
	index  int    // which [[account]], 0-based
	name   string // for messages: "daemon" or "account[2]"
}

func (t *table) line(key string) int { return t.p.lines.key(t.header, key, t.index) }

// errorf reports a problem with key, at its line.
func (t *table) errorf(key, format string, args ...any) {
	t.p.errorf(t.line(key), t.name+"."+key, format, args...)
}

func (t *table) unknown(known ...string) {
	for k := range t.vals {
		found := false
		for _, kk := range known {
			found = found || k == kk
		}
		if !found {
			t.errorf(k, "unknown key (known keys: %s)", strings.Join(known, ", "))
		}
	}
}

// value returns key's value as a T. ok is false when key is absent or,
// reported as an error, when it holds something other than what (a T).
func value[T any](t *table, key, what string) (x T, ok bool) {
	v, ok := t.vals[key]
	if !ok {
		return x, false
	}
	x, ok = v.(T)
	if !ok {
		t.errorf(key, "must be %s, not %s", what, tomlType(v))
	}
	return x, ok
}

func (t *table) str(key string) (string, bool) { return value[string](t, key, "a string") }

func (t *table) path(key string) (string, bool) {
	s, ok := t.str(key)
	if !ok || s == "" {
		if ok {
			t.errorf(key, "must not be empty")
		}
		return "", false
	}
	expanded, err := ExpandPath(s)
	if err != nil {
		t.errorf(key, "%v", err)
		return "", false
	}
	return expanded, true
}

func (t *table) duration(key string, def, min time.Duration) time.Duration {
	s, ok := t.str(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.errorf(key, "%q is not a duration: write it like \"30s\", \"2m\" or \"1h\"", s)
		return def
	}
	if d < min {
		t.errorf(key, "%s is too short: the minimum is %s", d, min)
		return def
	}
	return d
}

func (t *table) boolean(key string, def bool) bool {
	b, ok := value[bool](t, key, "true or false")
	if !ok {
		return def
	}
	return b
}

func (t *table) integer(key string, def, min, max int64) int64 {
	n, ok := value[int64](t, key, "an integer")
	if !ok {
		return def
	}
	if n < min || n > max {
		t.errorf(key, "%d is out of range: it must be between %d and %d", n, min, max)
		return def
	}
	return n
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

func (p *parser) daemon(raw map[string]any) Daemon {
	d := Daemon{StateDir: DefaultStateDir(p.system), LogLevel: slog.LevelInfo}
	v, ok := raw["daemon"]
	if !ok {
		d.Socket = DefaultSocket(p.system, d.StateDir)
		return d
	}
	vals, isTable := v.(map[string]any)
	if !isTable {
		p.errorf(p.lines.key("", "daemon", 0), "daemon", "must be a table: write [daemon]")
		d.Socket = DefaultSocket(p.system, d.StateDir)
		return d
	}
	t := &table{p: p, vals: vals, header: "daemon", name: "daemon"}
	t.unknown(daemonKeys...)
	if s, ok := t.path("state_dir"); ok {
		d.StateDir = s
	}
	d.Socket = DefaultSocket(p.system, d.StateDir)
	if s, ok := t.path("socket"); ok {
		d.Socket = s
	}
	if s, ok := t.str("socket_group"); ok {
		d.SocketGroup = s
	}
	if s, ok := t.str("log_level"); ok {
		if err := d.LogLevel.UnmarshalText([]byte(s)); err != nil || !oneOf(strings.ToLower(s), "debug", "info", "warn", "error") {
			p.errorf(t.line("log_level"), "daemon.log_level", "%q is not a log level: use debug, info, warn or error", s)
		}
	}
	if s, ok := t.str("metrics_listen"); ok {
		if msg := checkMetricsListen(s); msg != "" {
			t.errorf("metrics_listen", "%s", msg)
		} else {
			d.MetricsListen = s
		}
	}
	return d
}

var daemonKeys = []string{"state_dir", "socket", "socket_group", "log_level", "metrics_listen"}

// checkMetricsListen returns "" when s is empty or a loopback host:port
// (127.0.0.0/8, ::1 or localhost), and otherwise why it is refused.
func checkMetricsListen(s string) string {
	if s == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port: write it like \"127.0.0.1:9464\" (or leave it empty for no metrics)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q: the port %q is not a number from 0 to 65535", s, port)
	}
	if strings.EqualFold(host, "localhost") {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("%q is not a loopback address: metrics reveal when you chat, so they must stay on this machine: use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT, and a reverse proxy (with authentication) to expose them", s)
}

// maxDeviceName bounds device_name, in characters: it is shown in one
// line of `chatsync devices` on every other device.
const maxDeviceName = 64

// checkDeviceName returns "" when s is a name of 1 to maxDeviceName
// printable characters, and otherwise why it is refused.
func checkDeviceName(s string) string {
	switch n := utf8.RuneCountInString(s); {
	case s == "":
		return "must not be empty: leave it out to use the host name"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case n > maxDeviceName:
		return fmt.Sprintf("is %d characters long: the most is %d", n, maxDeviceName)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("%q holds a character that cannot be printed (%U): use letters, digits, spaces and punctuation", s, r)
		}
	}
	return ""
}

// defaultDeviceName is the host name, cut to maxDeviceName characters
// and with anything unprintable dropped; "" when the system does not say
// (the engine then uses its own default).
func defaultDeviceName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	var b strings.Builder
	n := 0
	for _, r := range h {
		if n == maxDeviceName {
			break
		}
		if unicode.IsPrint(r) && r != utf8.RuneError {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

var accountKeys = []string{
	"address", "settings_url", "password", "password_file", "web_password", "web_password_file",
	"store", "store_format", "key_file", "ca_file", "poll_interval", "replicate_deletes", "max_message_bytes",
	"device_name",
}

// The store formats (SPEC §6b).
const (
	StoreJSON       = "json"
	StoreBlinkQt    = "blink-qt"
	StoreBlinkCocoa = "blink-cocoa"
)

// StoreFormats lists the values store_format takes.
var StoreFormats = []string{StoreJSON, StoreBlinkQt, StoreBlinkCocoa}

// IsDatabase reports whether the account's store is a chat client's
// database rather than a directory.
func (a Account) IsDatabase() bool { return a.StoreFormat != "" && a.StoreFormat != StoreJSON }

func (p *parser) accounts(raw map[string]any) []Account {
	v, ok := raw["account"]
	if !ok {
		p.errorf(0, "account", "no [[account]] block: add one with address, settings_url, password_file, store and key_file")
		return nil
	}
	blocks, isArray := v.([]map[string]any)
	if !isArray {
		p.errorf(p.lines.key("", "account", 0), "account", "must be an array of tables: write [[account]] (two brackets)")
		return nil
	}
	var out []Account
	hostName := defaultDeviceName()
	for i, vals := range blocks {
		t := &table{p: p, vals: vals, header: "account", index: i, name: fmt.Sprintf("account[%d]", i+1)}
		line := p.lines.header("account", i)
		t.unknown(accountKeys...)
		a := Account{Line: line, ReplicateDeletes: true}
		required := func(key string) {
			if _, ok := vals[key]; !ok {
				p.errorf(line, t.name+"."+key, "missing: every [[account]] needs %s", key)
			}
		}
		for _, k := range []string{"address", "settings_url", "store", "key_file"} {
			required(k)
		}
		if s, ok := t.str("address"); ok {
			user, domain, found := strings.Cut(s, "@")
			if !found || user == "" || domain == "" || strings.ContainsAny(s, " \t/:") {
				p.errorf(t.line("address"), t.name+".address", "%q is not a SIP address: write it as user@domain", s)
			}
			a.Address = s
		}
		if s, ok := t.str("settings_url"); ok {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				p.errorf(t.line("settings_url"), t.name+".settings_url", "%q is not an http(s) URL, e.g. https://blink.sipthor.net/settings.phtml", s)
			}
			a.SettingsURL = s
		}
		a.Store, _ = t.path("store")
		a.StoreFormat = StoreJSON
		if f, ok := t.str("store_format"); ok {
			if !slices.Contains(StoreFormats, f) {
				p.errorf(t.line("store_format"), t.name+".store_format", "%q is not a store format: write \"json\" (a directory of JSON files), \"blink-qt\" (Blink Qt's message_history.db) or \"blink-cocoa\" (Blink Cocoa's history.sqlite)", f)
			} else {
				a.StoreFormat = f
			}
		}
		if a.IsDatabase() && a.Store != "" {
			if fi, err := os.Stat(a.Store); err == nil && fi.IsDir() {
				p.errorf(t.line("store"), t.name+".store", "%s is a directory, but store_format %q names the client's database file: give its path (for example ~/.blink/message_history.db)", a.Store, a.StoreFormat)
			} else if errors.Is(err, os.ErrNotExist) {
				p.warnf(t.line("store"), t.name+".store", "%s does not exist yet: start the chat client once with this account, or check the path (`chatsync store find` lists the client databases on this machine)", a.Store)
			}
		}
		a.KeyFile, _ = t.path("key_file")
		if a.KeyFile != "" {
			if msg := privateFile(a.KeyFile); msg != "" {
				if errors.Is(statErr(a.KeyFile), os.ErrNotExist) {
					p.warnf(t.line("key_file"), t.name+".key_file", "%s does not exist yet: create it with `chatsync key generate --out %s` (or import the key of your other device)", a.KeyFile, a.KeyFile)
				} else {
					p.errorf(t.line("key_file"), t.name+".key_file", "%s", msg)
				}
			} else if err := canRead(a.KeyFile); err != nil {
				p.errorf(t.line("key_file"), t.name+".key_file", "cannot read %s: %v (the daemon must be able to read it: check its owner)", a.KeyFile, err)
			}
		}
		if s, ok := t.path("ca_file"); ok {
			a.CAFile = s
			if _, err := os.Stat(s); err != nil {
				p.errorf(t.line("ca_file"), t.name+".ca_file", "cannot read %s: %v", s, err)
			}
		}
		a.Password, a.PasswordFile = p.secret(t, "password", "password_file", true)
		a.WebPassword, a.WebPasswordFile = p.secret(t, "web_password", "web_password_file", false)
		a.PollInterval = t.duration("poll_interval", DefaultPollInterval, MinPollInterval)
		a.ReplicateDeletes = t.boolean("replicate_deletes", true)
		a.MaxMessageBytes = t.integer("max_message_bytes", DefaultMaxMessageBytes, 256, MaxMaxMessageBytes)
		a.DeviceName = hostName
		if s, ok := t.str("device_name"); ok {
			if msg := checkDeviceName(s); msg != "" {
				t.errorf("device_name", "%s", msg)
			} else {
				a.DeviceName = s
			}
		}
		out = append(out, a)
	}
	return out
}

// secret reads an inline secret or the file that holds it. Exactly one of
// the two keys may be given; needed says whether one of them must be.
func (p *parser) secret(t *table, inlineKey, fileKey string, needed bool) (value, file string) {
	inline, hasInline := t.str(inlineKey)
	file, hasFile := t.path(fileKey)
	switch {
	case hasInline && hasFile:
		p.errorf(t.line(fileKey), t.name+"."+fileKey, "give either %s or %s, not both", inlineKey, fileKey)
	case hasInline:
		if inline == "" {
			p.errorf(t.line(inlineKey), t.name+"."+inlineKey, "must not be empty")
		}
		return inline, ""
	case hasFile:
		data, err := readSecretFile(file)
		if errors.Is(err, os.ErrNotExist) {
			p.warnf(t.line(fileKey), t.name+"."+fileKey, "%s does not exist yet: write the password into it and run `chmod 600 %s`", file, file)
			return "", file
		}
		if err != nil {
			p.errorf(t.line(fileKey), t.name+"."+fileKey, "cannot read %s: %v", file, err)
			return "", file
		}
		if msg := privateFile(file); msg != "" {
			p.errorf(t.line(fileKey), t.name+"."+fileKey, "%s", msg)
			return "", file
		}
		value = strings.TrimRight(string(data), "\r\n")
		if value == "" {
			p.errorf(t.line(fileKey), t.name+"."+fileKey, "%s is empty: write the password into it", file)
		}
		return value, file
	case needed && !hasInline && !hasFile:
		if _, present := t.vals[inlineKey]; !present {
			if _, present := t.vals[fileKey]; !present {
				p.errorf(p.lines.header(t.header, t.index), t.name+"."+fileKey, "missing: give password_file (or password)")
			}
		}
	}
	return "", ""
}

func statErr(path string) error {
	_, err := os.Stat(path)
	return err
}

// privateFile returns "" when path exists and only its owner can read it,
// and otherwise a message that says what is wrong and what to run.
func privateFile(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", path, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Sprintf("%s is readable by other users (mode %04o): run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	return ""
}

func (p *parser) crossChecks(cfg *Config) {
	seenAddr := map[string]int{}
	for i, a := range cfg.Accounts {
		key := strings.ToLower(a.Address)
		if j, dup := seenAddr[key]; dup && a.Address != "" {
			p.errorf(p.lines.key("account", "address", i), fmt.Sprintf("account[%d].address", i+1), "%s is already configured in account[%d]: each account may appear once", a.Address, j+1)
		}
		seenAddr[key] = i
		for j := range i {
			b := cfg.Accounts[j]
			if a.IsDatabase() && b.IsDatabase() && a.StoreFormat == b.StoreFormat && filepath.Clean(a.Store) == filepath.Clean(b.Store) {
				continue // the clients keep every account in one database
			}
			if a.Store != "" && b.Store != "" && (Within(a.Store, b.Store) || Within(b.Store, a.Store)) {
				p.errorf(p.lines.key("account", "store", i), fmt.Sprintf("account[%d].store", i+1), "%s overlaps the store of account[%d] (%s): each account needs its own directory", a.Store, j+1, b.Store)
			}
		}
		if a.Store != "" && cfg.Daemon.StateDir != "" && (Within(cfg.Daemon.StateDir, a.Store) || Within(a.Store, cfg.Daemon.StateDir)) {
			p.errorf(p.lines.key("account", "store", i), fmt.Sprintf("account[%d].store", i+1), "%s overlaps daemon.state_dir (%s): keep the state outside the message store", a.Store, cfg.Daemon.StateDir)
		}
	}
}

// Within reports whether path is dir or inside it, by their cleaned names.
func Within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ExpandPath expands a leading ~ and $VAR or ${VAR} in a path, and makes
// it absolute. A variable that is not set is an error rather than an empty
// string, so "$XDG_RUNTIME_DIR/chatsync.sock" never becomes "/chatsync.sock".
func ExpandPath(s string) (string, error) {
	if s == "~" || strings.HasPrefix(s, "~/") || strings.HasPrefix(s, `~\`) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot expand ~: %v", err)
		}
		s = home + s[1:]
	}
	var missing []string
	s = os.Expand(s, func(name string) string {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			missing = append(missing, "$"+name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s is not set in the environment: write the path out in full", strings.Join(missing, ", "))
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", err
	}
	return abs, nil
}

// maxSecretFile bounds a password file: it holds one line.
const maxSecretFile = 64 << 10

// readSecretFile reads a password file. Only a regular file of a sane size
// is read: a config naming /dev/zero, a FIFO or a terminal must be an error,
// not a daemon that hangs or fills its memory.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxSecretFile {
		return nil, fmt.Errorf("%s is %d bytes, too large for a password file", path, fi.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxSecretFile))
}
