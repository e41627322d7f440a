package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"modernc.org/sqlite"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/store/blinkdb"
	"github.com/chatsync/chatsync/store/msgdir"
)

// The store commands work on message stores directly, never through the
// daemon or the server: they are how a user finds the client database to
// configure, takes a copy of an account's history in the one format every
// program can read, and brings an existing history into a new store. They
// only read the account's store (export) or add to it the way the daemon
// itself writes incoming messages (import), so they are safe while the
// daemon runs, which then replicates what was imported like any other new
// message.

func init() { extraCommands = append(extraCommands, newStoreCmd) }

func newStoreCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "store",
		Short: "Find the chat clients' databases, and copy an account's history out of or into its store",
		Long: `store works on message stores directly, on this machine: it never talks to
the server or to the daemon.

  find     lists the Blink history databases on this machine, the accounts in
           each and the config lines that use one as an account's store
  export   copies the account's whole history into a new directory of JSON files
  import   copies the messages of a JSON directory or a Blink database into
           the account's store`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usagef("store needs a subcommand: find, export or import")
		},
	}
	c.AddCommand(newStoreFindCmd(g), newStoreExportCmd(g), newStoreImportCmd(g))
	return c
}

// formatDialect turns a store_format into a blinkdb dialect, or fails with
// a usage error for anything that is not a database format.
func formatDialect(format string) (blinkdb.Dialect, error) {
	switch format {
	case config.StoreBlinkQt:
		return blinkdb.BlinkQt, nil
	case config.StoreBlinkCocoa:
		return blinkdb.BlinkCocoa, nil
	}
	return "", usagef("--format %q is not a client database format: write %s or %s", format, config.StoreBlinkQt, config.StoreBlinkCocoa)
}

// clientName is how a person knows a format.
func clientName(format string) string {
	switch format {
	case config.StoreBlinkQt:
		return "Blink Qt"
	case config.StoreBlinkCocoa:
		return "Blink Cocoa"
	}
	return "JSON directory"
}

// interruptible is the command's context, cancelled on Ctrl-C, so a long
// copy stops between two messages rather than in the middle of a write.
func interruptible(c *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
}

// ---- find ----

// foundDB is one database `store find` looked at.
type foundDB struct {
	Path     string         `json:"path"`
	Format   string         `json:"format"`
	Client   string         `json:"client"`
	Accounts []foundAccount `json:"accounts"`
	// Error says why the database cannot be used (an unknown table
	// version, no message table...); the accounts are then unknown.
	Error string `json:"error,omitempty"`
}

// foundAccount is one account of a database, with the config values that
// make it the account's store.
type foundAccount struct {
	blinkdb.AccountRows
	Config storeConfig `json:"config"`
}

// storeConfig are the values of store and store_format, as the config
// file takes them.
type storeConfig struct {
	Store       string `json:"store"`
	StoreFormat string `json:"store_format"`
}

type findResult struct {
	LookedIn  []string  `json:"looked_in"`
	Databases []foundDB `json:"databases"`
}

func newStoreFindCmd(g *globals) *cobra.Command {
	var format string
	var asJSON bool
	c := &cobra.Command{
		Use:   "find [PATH]",
		Short: "List the Blink history databases here, their accounts, and the config lines to use one",
		Long: `find looks for Blink's history databases where the clients keep them
(Blink Qt: ~/.blink/message_history.db on Linux, %APPDATA%\Blink on Windows,
~/Library/Application Support/Blink-Qt on macOS; Blink Cocoa:
~/Library/Application Support/<Blink|Blink Pro|Blink Lite|SIP2SIP>/history/history.sqlite),
or reads the one at PATH, whose format is told by its table unless --format
says it. For each account in each database it prints the message count and
the store and store_format lines of that account's [[account]] block.

The databases are opened read-only: find changes nothing, and is safe while
the client runs. It exits 1 when it finds no database it can read.`,
		Example: "  chatsync store find\n  chatsync store find ~/backup/message_history.db --json",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("find takes at most one PATH, got %d (see `%s --help`)", len(args), c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			home, appData := blinkdb.Roots()
			var res findResult
			if len(args) == 1 {
				path, err := config.ExpandPath(args[0])
				if err != nil {
					return usagef("PATH %s: %v", args[0], err)
				}
				res.LookedIn = []string{path}
				db, err := findAt(ctx, path, format, home)
				if err != nil {
					return err
				}
				res.Databases = []foundDB{db}
			} else {
				if format != "" {
					return usagef("--format is for a PATH: without one, find knows each file's format from its place")
				}
				for _, l := range blinkdb.UsualPlaces(home, appData, runtime.GOOS) {
					res.LookedIn = append(res.LookedIn, l.Path)
				}
				for _, l := range blinkdb.Locate() {
					res.Databases = append(res.Databases, describeDB(ctx, l.Path, string(l.Dialect), l.Client, home))
				}
			}
			if res.Databases == nil {
				res.Databases = []foundDB{}
			}
			usable := slices.ContainsFunc(res.Databases, func(d foundDB) bool { return d.Error == "" })
			if asJSON {
				if err := json.NewEncoder(g.stdout).Encode(res); err != nil {
					return err
				}
			} else {
				printFound(g.stdout, res)
			}
			switch {
			case len(res.Databases) == 0:
				return fmt.Errorf("no Blink history database found (looked in %s): start Blink once, or give the file's path: chatsync store find PATH",
					strings.Join(res.LookedIn, ", "))
			case !usable:
				return fmt.Errorf("no usable Blink history database: see the reasons above")
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "what PATH is, blink-qt or blink-cocoa (default: told by its table)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// findAt describes the database at path, which the user named: there a
// path that is not a database is an error, not a line of the list.
func findAt(ctx context.Context, path, format, home string) (foundDB, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return foundDB{}, fmt.Errorf("%s does not exist: give the path of a Blink history database (message_history.db or history.sqlite)", path)
	case err != nil:
		return foundDB{}, err
	case fi.IsDir():
		return foundDB{}, fmt.Errorf("%s is a directory: find reads Blink's database files; a directory of JSON files is used as it is, with store_format = %q", path, config.StoreJSON)
	}
	if format == "" {
		d, err := blinkdb.Detect(ctx, path)
		if err != nil {
			return foundDB{}, fmt.Errorf("%v: is it a Blink history database? If it is, say which with --format", err)
		}
		format = string(d)
	} else if _, err := formatDialect(format); err != nil {
		return foundDB{}, err
	}
	db := describeDB(ctx, path, format, clientName(format), home)
	return db, nil
}

// describeDB reads the accounts of one database (read-only).
func describeDB(ctx context.Context, path, format, client, home string) foundDB {
	db := foundDB{Path: path, Format: format, Client: client, Accounts: []foundAccount{}}
	accounts, err := blinkdb.Accounts(ctx, path, blinkdb.Dialect(format))
	if err != nil {
		db.Error = err.Error()
		return db
	}
	cfg := storeConfig{Store: configPath(path, home), StoreFormat: format}
	for _, a := range accounts {
		db.Accounts = append(db.Accounts, foundAccount{AccountRows: a, Config: cfg})
	}
	return db
}

// configPath writes path as the config takes it: under the home
// directory as ~/..., which the config expands, so the line reads as the
// documentation's and still works when copied to the same layout elsewhere.
func configPath(path, home string) string {
	if home == "" {
		return path
	}
	rel, err := filepath.Rel(home, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return "~" + string(filepath.Separator) + rel
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func printFound(w io.Writer, res findResult) {
	for i, db := range res.Databases {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %s\n", db.Client, db.Path)
		if db.Error != "" {
			fmt.Fprintf(w, "  cannot be used: %s\n", db.Error)
			continue
		}
		cfg := storeConfig{Store: db.Path, StoreFormat: db.Format}
		if len(db.Accounts) == 0 {
			fmt.Fprintf(w, "  no messages yet; an [[account]] block takes:\n")
		}
		for _, a := range db.Accounts {
			cfg = a.Config
			deleted := ""
			if a.Deleted > 0 {
				deleted = fmt.Sprintf(", and %d the user deleted", a.Deleted)
			}
			fmt.Fprintf(w, "  %s: %d message(s)%s; in its [[account]] block:\n", a.Account, a.Messages, deleted)
			fmt.Fprintf(w, "    store        = %s\n    store_format = %s\n", tomlString(cfg.Store), tomlString(cfg.StoreFormat))
		}
		if len(db.Accounts) == 0 {
			fmt.Fprintf(w, "    store        = %s\n    store_format = %s\n", tomlString(cfg.Store), tomlString(cfg.StoreFormat))
		}
	}
}

// ---- export and import ----

// storeCopy is what an export or an import did. Its JSON is the output of
// --json.
type storeCopy struct {
	Account    string `json:"account"`
	From       string `json:"from"`
	FromFormat string `json:"from_format"`
	To         string `json:"to"`
	ToFormat   string `json:"to_format"`
	// Copied counts the new files or rows written.
	Copied int `json:"copied"`
	// Merged counts the rows of a database store that held the message
	// already and that the import changed (blinkdb.Put merges).
	Merged int `json:"merged"`
	// AlreadyThere counts the messages the store held already, unchanged.
	AlreadyThere int `json:"already_there"`
	// Deleted counts the Blink Qt rows of the source that its user deleted
	// (state 'deleted'): deleted messages are not copied.
	Deleted int            `json:"deleted"`
	Refused []storeRefusal `json:"refused"`
}

// storeRefusal is one file or row that was not copied, and why.
type storeRefusal struct {
	// Source is the file (relative to the JSON directory) or the row
	// (msgid and remote URI) it came from.
	Source string `json:"source"`
	MsgID  string `json:"msgid,omitempty"`
	Reason string `json:"reason"`
}

func (r *storeCopy) refuse(source, msgid, reason string) {
	r.Refused = append(r.Refused, storeRefusal{Source: source, MsgID: msgid, Reason: reason})
}

// eachMessage reads the messages of the store at path in the given format
// and calls fn for each. A JSON directory is read by the store's rules
// (SPEC §6): ignored names are skipped, and files that are not messages,
// and the second file of a msgid, are refused. A database is read through
// blinkdb, only the rows of account, in short pages; Blink Qt's soft
// deletes are counted as deleted and not passed on. With max > 0 a message
// larger than max bytes is refused.
func eachMessage(ctx context.Context, path, format, account string, max int64, res *storeCopy, fn func(src string, m msgdir.Message) error) error {
	if format == config.StoreJSON {
		seen := map[string]string{}
		return walkMessages(ctx, path, max, res.refuse, func(rel string, m msgdir.Message) error {
			if first, dup := seen[m.MsgID]; dup {
				res.refuse(rel, m.MsgID, "repeats the msgid of "+first+" (a store holds one file per msgid)")
				return nil
			}
			seen[m.MsgID] = rel
			return fn(rel, m)
		})
	}
	d, err := formatDialect(format)
	if err != nil {
		return err
	}
	db, err := blinkdb.Open(path, d, account)
	if err != nil {
		return err
	}
	defer db.Close()
	snap, err := db.Snapshot(ctx)
	if err != nil {
		return err
	}
	keys := slices.SortedFunc(func(yield func(blinkdb.Key) bool) {
		for k := range snap {
			if !yield(k) {
				return
			}
		}
	}, func(a, b blinkdb.Key) int {
		if c := strings.Compare(a.MsgID, b.MsgID); c != 0 {
			return c
		}
		return strings.Compare(a.RemoteURI, b.RemoteURI)
	})
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		row := snap[k]
		if row.Deleted {
			res.Deleted++
			continue
		}
		src := fmt.Sprintf("row %q with %s", k.MsgID, k.RemoteURI)
		m, err := msgdir.Parse(row.Message, max)
		if err != nil {
			res.refuse(src, k.MsgID, err.Error())
			continue
		}
		if err := fn(src, m); err != nil {
			return err
		}
	}
	return nil
}

// walkMessages calls fn for every message file of the JSON directory root
// and refuse for every file that should be one and is not.
func walkMessages(ctx context.Context, root string, max int64, refuse func(src, msgid, reason string), fn func(rel string, m msgdir.Message) error) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	return msgdir.WalkDir(r, "", func(rel string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if rel == "" {
				return err
			}
			refuse(rel, "", "cannot be read: "+err.Error())
			return nil
		}
		if d.IsDir() {
			if rel != "" && msgdir.IgnoredDir(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if msgdir.Ignored(d.Name()) {
			return nil
		}
		if !d.Type().IsRegular() {
			refuse(rel, "", "not a regular file (links are not followed)")
			return nil
		}
		data, err := msgdir.ReadFile(r, rel, max)
		if err != nil {
			refuse(rel, "", "cannot be read: "+err.Error())
			return nil
		}
		m, err := msgdir.Parse(data, max)
		if err != nil {
			refuse(rel, "", err.Error())
			return nil
		}
		return fn(rel, m)
	})
}

// dirSink writes messages into a JSON directory store as the daemon
// writes incoming ones: at msgdir.IncomingPath, atomically, mode 0600. A
// msgid the store holds already is left as it is.
type dirSink struct {
	root  string
	have  map[string]string // msgid → its file, in the store or written now
	names msgdir.Names
}

// newDirSink indexes the msgids of the store at root (none when it does
// not exist yet).
func newDirSink(ctx context.Context, root string) (*dirSink, error) {
	s := &dirSink{root: root, have: map[string]string{}}
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	ignore := func(string, string, string) {} // not messages: nothing to compare with
	err := walkMessages(ctx, root, 0, ignore, func(rel string, m msgdir.Message) error {
		if _, ok := s.have[m.MsgID]; !ok {
			s.have[m.MsgID] = rel
		}
		return nil
	})
	return s, err
}

// put writes m unless its msgid is there. It returns what it did:
// "copied", "already" or a reason of refusal; err is a failure that ends
// the copy (the disk, not the message).
func (s *dirSink) put(m msgdir.Message) (string, error) {
	if _, ok := s.have[m.MsgID]; ok {
		return "already", nil
	}
	rel := msgdir.IncomingPath(m)
	if _, err := os.Lstat(filepath.Join(s.root, rel)); err == nil {
		// A file of another msgid (or no message at all) has the name
		// already: never overwrite it. Giving the name to a stand-in owner
		// makes Names choose another name for m, checked against the disk.
		s.names.Claim(s.root, rel, "\x00on disk: "+rel)
	}
	rel = s.names.Claim(s.root, rel, m.MsgID)
	if err := msgdir.WriteAtomic(s.root, rel, m.Canonical); err != nil {
		if errors.Is(err, msgdir.ErrUnsafePath) {
			return "cannot be written: " + err.Error(), nil
		}
		return "", fmt.Errorf("write %s: %w", filepath.Join(s.root, rel), err)
	}
	s.have[m.MsgID] = rel
	return "copied", nil
}

// dbSink writes messages into a client database with blinkdb.Put, which
// merges a message into the row the account has for it already.
type dbSink struct {
	db     *blinkdb.DB
	before map[blinkdb.Key]blinkdb.Row
}

// importDevice is the device id of imported rows: Blink Cocoa keeps it in
// uuid, where it tells the user these rows came from an import.
const importDevice = "import"

func (s *dbSink) put(ctx context.Context, m msgdir.Message) (string, error) {
	k := blinkdb.Key{MsgID: m.MsgID, RemoteURI: m.RemoteURI}
	if old, ok := s.before[k]; ok && old.Deleted {
		// A merge would set the state again and bring back a message the
		// user deleted in this store.
		return "the user deleted this message in this store: not brought back", nil
	}
	row, err := s.db.Put(ctx, m.Canonical, importDevice)
	if err != nil && !databaseFailure(err) {
		return strings.ReplaceAll(err.Error(), "blinkdb: ", ""), nil
	}
	if err != nil {
		return "", err
	}
	old, had := s.before[row.Key]
	s.before[row.Key] = row
	switch {
	case !had:
		return "copied", nil
	case old.Hash == row.Hash:
		return "already", nil
	}
	return "merged", nil
}

// databaseFailure reports whether an error of Put is the database's (it
// is locked, gone, changed, or SQLite failed), which ends the import,
// rather than the message's (a field the client needs is missing or has
// the wrong type), which refuses that one message.
func databaseFailure(err error) bool {
	var se *sqlite.Error
	return errors.Is(err, blinkdb.ErrBusy) || errors.Is(err, blinkdb.ErrNoDatabase) || errors.Is(err, blinkdb.ErrNoTable) ||
		errors.Is(err, blinkdb.ErrUnknownVersion) || errors.Is(err, blinkdb.ErrSchema) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se)
}

// count records one outcome of a sink.
func (r *storeCopy) count(src, msgid, outcome string) {
	switch outcome {
	case "copied":
		r.Copied++
	case "merged":
		r.Merged++
	case "already":
		r.AlreadyThere++
	default:
		r.refuse(src, msgid, outcome)
	}
}

// sameFile reports whether a and b name one file or directory.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

func newStoreExportCmd(g *globals) *cobra.Command {
	format := config.StoreJSON
	var asJSON bool
	c := &cobra.Command{
		Use:   "export --format json DIR",
		Short: "Copy the account's whole history into a new directory of JSON files",
		Long: `export copies every message of the account's store (a JSON directory or the
client's database, as store_format says) into DIR as a JSON directory store:
one file per message, named as chatsync names incoming messages
(<conversation>/<msgid>.json), mode 0600. Messages the user deleted in Blink Qt
(state 'deleted') are not exported. Only this account's rows of a database
are read.

DIR must not exist or be empty, so that nothing is mixed into or overwritten
in another store. export only reads the store, in short reads, so it is safe
while the daemon and the client run. It does not go through the server.`,
		Example: "  chatsync store export --format json ~/chat-backup\n  chatsync store export --format json --account bob@example.org ~/bob-backup --json",
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != config.StoreJSON {
				return usagef("export writes only --format json (a directory of JSON files), not %q", format)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			a, err := g.pickAccount(cfg)
			if err != nil {
				return err
			}
			dir, err := config.ExpandPath(args[0])
			if err != nil {
				return usagef("DIR %s: %v", args[0], err)
			}
			if err := checkExportDir(dir, a); err != nil {
				return err
			}
			ctx, stop := interruptible(c)
			defer stop()
			if err := checkStore(a); err != nil {
				return err
			}
			res := &storeCopy{Account: a.Address, From: a.Store, FromFormat: a.StoreFormat, To: dir, ToFormat: config.StoreJSON, Refused: []storeRefusal{}}
			_, statErr := os.Stat(dir)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("create %s: %v", dir, err)
			}
			sink := &dirSink{root: dir, have: map[string]string{}}
			err = eachMessage(ctx, a.Store, a.StoreFormat, a.Address, 0, res, func(src string, m msgdir.Message) error {
				outcome, err := sink.put(m)
				if err != nil {
					return err
				}
				if outcome == "already" {
					// Two rows of one msgid (with two remote URIs): a JSON
					// store holds one message per msgid.
					outcome = "a message with this msgid is exported already, from " + sink.have[m.MsgID] + " (a JSON store holds one message per msgid)"
				}
				res.count(src, m.MsgID, outcome)
				return nil
			})
			if err != nil && res.Copied == 0 {
				if errors.Is(statErr, fs.ErrNotExist) {
					os.Remove(dir) // made by this run, and still empty
				}
				return storeErr(err, a)
			}
			if err != nil {
				return fmt.Errorf("export of %s stopped after %d message(s): %v; %s holds a partial copy: remove it and run export again", a.Address, res.Copied, storeErr(err, a), dir)
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(res)
			}
			w := g.stdout
			fmt.Fprintf(w, "exported %d message(s) of %s from %s (%s) to %s\n", res.Copied, a.Address, a.Store, a.StoreFormat, dir)
			if res.Deleted > 0 {
				fmt.Fprintf(w, "  %d deleted by the user in %s: not exported\n", res.Deleted, clientName(a.StoreFormat))
			}
			printRefused(w, res.Refused)
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", config.StoreJSON, "the format of DIR: json (the only one)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// checkExportDir refuses a DIR that holds anything, or that is inside the
// account's JSON store (the daemon would take the copies for new messages
// of the account, each a second file of its msgid).
func checkExportDir(dir string, a config.Account) error {
	if !a.IsDatabase() && a.Store != "" && (config.Within(dir, a.Store) || sameFile(dir, a.Store)) {
		return fmt.Errorf("%s is inside the account's store %s: export into a directory outside it", dir, a.Store)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: give a new or empty directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %v", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty (it holds %s): export into a new or empty directory, so that nothing is mixed in or overwritten", dir, entries[0].Name())
	}
	return nil
}

func newStoreImportCmd(g *globals) *cobra.Command {
	var format string
	var asJSON bool
	c := &cobra.Command{
		Use:   "import --format json|blink-qt|blink-cocoa PATH",
		Short: "Copy the messages of a JSON directory or a Blink database into the account's store",
		Long: `import copies the messages at PATH into the account's store. PATH is a
directory of JSON files (--format json) or a Blink history database
(--format blink-qt or blink-cocoa), of which only the rows of the account's
address are read.

Into a JSON store each message becomes a file, named as chatsync names
incoming messages, unless a file with its msgid is there already. Into a
Blink database each message is written as the client writes a row, and merged
into the row the account has for it already (the message's fields win). A
message the user deleted (in Blink Qt, on either side) is not copied.

import does not go through the server: a running daemon sees the new
messages in the store and replicates them to the account's other devices (or
does when it starts). It prints how many were imported, were there already
or were refused, with the reasons.`,
		Example: "  chatsync store import --format blink-qt ~/old-laptop/message_history.db\n  chatsync store import --format json ~/chat-backup --account alice@example.com",
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			switch format {
			case config.StoreJSON, config.StoreBlinkQt, config.StoreBlinkCocoa:
			case "":
				return usagef("say what PATH is with --format %s", strings.Join(config.StoreFormats, "|"))
			default:
				return usagef("--format %q is not a store format: write %s", format, strings.Join(config.StoreFormats, ", "))
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			a, err := g.pickAccount(cfg)
			if err != nil {
				return err
			}
			path, err := config.ExpandPath(args[0])
			if err != nil {
				return usagef("PATH %s: %v", args[0], err)
			}
			if err := checkImportSource(path, format, a); err != nil {
				return err
			}
			ctx, stop := interruptible(c)
			defer stop()
			res := &storeCopy{Account: a.Address, From: path, FromFormat: format, To: a.Store, ToFormat: a.StoreFormat, Refused: []storeRefusal{}}

			var put func(m msgdir.Message) (string, error)
			if a.IsDatabase() {
				db, err := openAccountDB(a)
				if err != nil {
					return err
				}
				defer db.Close()
				before, err := db.Snapshot(ctx)
				if err != nil {
					return storeErr(err, a)
				}
				sink := &dbSink{db: db, before: before}
				put = func(m msgdir.Message) (string, error) { return sink.put(ctx, m) }
			} else {
				sink, err := newDirSink(ctx, a.Store)
				if err != nil {
					return fmt.Errorf("read the store %s: %v", a.Store, err)
				}
				put = sink.put
			}
			err = eachMessage(ctx, path, format, a.Address, a.MaxMessageBytes, res, func(src string, m msgdir.Message) error {
				outcome, err := put(m)
				if err != nil {
					return err
				}
				res.count(src, m.MsgID, outcome)
				return nil
			})
			if err != nil && res.Copied+res.Merged == 0 {
				if errors.Is(err, blinkdb.ErrNoTable) || errors.Is(err, blinkdb.ErrUnknownVersion) || errors.Is(err, blinkdb.ErrSchema) {
					return fmt.Errorf("%v: check --format (`chatsync store find %s` tells a database's format)", err, path)
				}
				return err
			}
			if err != nil {
				return fmt.Errorf("import into %s stopped after %d new message(s): %v; what was imported stays, and running import again skips it", a.Address, res.Copied+res.Merged, err)
			}
			if format != config.StoreJSON && res.Copied+res.Merged+res.AlreadyThere+res.Deleted+len(res.Refused) == 0 {
				if others := otherAccounts(ctx, path, format, a.Address); others != "" {
					return fmt.Errorf("%s has no messages of %s (it has %s): import with --account set to the account of those messages", path, a.Address, others)
				}
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(res)
			}
			w := g.stdout
			fmt.Fprintf(w, "imported %d message(s) into the store of %s, %s (%s), from %s (%s)\n", res.Copied, a.Address, a.Store, a.StoreFormat, path, format)
			fmt.Fprintf(w, "  %d already there\n", res.AlreadyThere)
			if res.Merged > 0 {
				fmt.Fprintf(w, "  %d merged into the row the store had for them\n", res.Merged)
			}
			if res.Deleted > 0 {
				fmt.Fprintf(w, "  %d deleted by the user in %s: not imported\n", res.Deleted, clientName(format))
			}
			printRefused(w, res.Refused)
			if res.Copied+res.Merged > 0 {
				fmt.Fprintln(w, "a running chatsync daemon replicates the imported messages to the account's other devices (or does when it starts)")
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "what PATH is: json (a directory of JSON files), blink-qt or blink-cocoa")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// checkStore fails when the account's store cannot be read, before
// anything is made: a JSON directory must exist, a database must pass
// Open's checks.
func checkStore(a config.Account) error {
	if !a.IsDatabase() {
		fi, err := os.Stat(a.Store)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("the store of %s, %s, does not exist: nothing to export (check store in the config)", a.Address, a.Store)
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("the store of %s, %s, is not a directory: for a Blink database set store_format in the config", a.Address, a.Store)
		}
		return nil
	}
	db, err := openAccountDB(a)
	if err != nil {
		return err
	}
	return db.Close()
}

// openAccountDB opens the account's store, a Blink database, for its
// address; an error says what to do.
func openAccountDB(a config.Account) (*blinkdb.DB, error) {
	d, err := formatDialect(a.StoreFormat)
	if err != nil {
		return nil, err
	}
	db, err := blinkdb.Open(a.Store, d, a.Address)
	if err != nil {
		return nil, storeErr(err, a)
	}
	return db, nil
}

// checkImportSource refuses a PATH that is not what --format says, or
// that is the account's own store.
func checkImportSource(path, format string, a config.Account) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: give the directory or database to import from", path)
	}
	if err != nil {
		return err
	}
	switch {
	case format == config.StoreJSON && !fi.IsDir():
		return fmt.Errorf("%s is a file, not a directory of JSON files: for a Blink database give --format %s or %s", path, config.StoreBlinkQt, config.StoreBlinkCocoa)
	case format != config.StoreJSON && fi.IsDir():
		return fmt.Errorf("%s is a directory, not a %s database: for a directory of JSON files give --format %s", path, clientName(format), config.StoreJSON)
	}
	if sameFile(path, a.Store) {
		return fmt.Errorf("%s is the store of %s already: import from another directory or database", path, a.Address)
	}
	return nil
}

// otherAccounts lists the accounts a database has messages of, for the
// hint of an import that found none of the configured account's.
func otherAccounts(ctx context.Context, path, format, address string) string {
	accounts, err := blinkdb.Accounts(ctx, path, blinkdb.Dialect(format))
	if err != nil {
		return ""
	}
	var names []string
	for _, a := range accounts {
		if !strings.EqualFold(a.Account, address) {
			names = append(names, fmt.Sprintf("%s (%d)", a.Account, a.Messages))
		}
	}
	return strings.Join(names, ", ")
}

// storeErr turns an error opening the account's database store into what
// to do about it.
func storeErr(err error, a config.Account) error {
	switch {
	case errors.Is(err, blinkdb.ErrNoDatabase):
		return fmt.Errorf("the store of %s, %s, does not exist: start %s once with this account, or fix store in the config (`chatsync store find` lists the databases here)", a.Address, a.Store, clientName(a.StoreFormat))
	case errors.Is(err, blinkdb.ErrNoTable), errors.Is(err, blinkdb.ErrUnknownVersion), errors.Is(err, blinkdb.ErrSchema):
		return fmt.Errorf("%v: check store and store_format of %s in the config", err, a.Address)
	}
	return err
}

func printRefused(w io.Writer, refused []storeRefusal) {
	if len(refused) == 0 {
		return
	}
	fmt.Fprintf(w, "  %d refused:\n", len(refused))
	for _, r := range refused {
		fmt.Fprintf(w, "    %s: %s\n", r.Source, r.Reason)
	}
}
