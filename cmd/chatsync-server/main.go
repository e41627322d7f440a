// Command chatsync-server serves the SIP Account API (settings.phtml) with
// digest authentication and a bbolt-backed chat journal, for tests, the
// demo and people who run their own SIP service.
//
// Usage:
//
//	chatsync-server --listen 127.0.0.1:8080 --data DIR --accounts accounts.toml
//	                [--journal mysql://USER@HOST:PORT/DB [--accounts-table [--accounts-reload 10s]]]
//	                [--tls-cert F --tls-key F] [--strict-compat] [--max-body BYTES]
//	                [--page-bytes-limit N] [--page-rows N]
//	                [--shuffle-same-second [--shuffle-seed N]] [--ignore-after-id]
//	                [--max-row-bytes N [--halt-on-error]]
//
// The last five reproduce the real server's page behaviour under load and
// faults (PROTOCOL.md §12; see the accountserver package documentation):
// --page-bytes-limit answers HTTP 500 with an empty body for a page over
// N bytes (sizes take k, M, G for powers of 1000 and Ki, Mi, Gi for powers
// of 1024), --page-rows caps the rows per page (default 5000),
// --shuffle-same-second returns same-second rows in no defined order,
// --ignore-after-id ignores after_id like the old Mongo backend, and
// --max-row-bytes stores no put element with data over N bytes
// ("journal_id":null, or with --halt-on-error the MySQL error text and
// nothing from that element on). --strict-compat also sets
// --page-bytes-limit 20M and --shuffle-same-second unless they are given.
//
// get_journal_entries also takes wait=SECONDS (up to 60), our long-poll
// extension: an empty page is held until a row the query returns is put,
// and the reply carries X-Chatsync-Wait. --strict-compat ignores it, like
// the real server. A shutdown answers held requests at once.
//
// The first line of standard output is "listening on URL", where URL is
// the settings URL clients use. Logs go to standard error.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chatsync/chatsync/sync/accountserver"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var ue usageError
		fmt.Fprintln(os.Stderr, "chatsync-server:", err)
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad command line; it exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// serverConfig is the parsed command line.
type serverConfig struct {
	listen, accountsPath, tlsCert, tlsKey string
	logLevel                              slog.Level
	// opts are the server options, all but Accounts and Logger.
	opts accountserver.Options
}

// parseFlags parses the command line. It returns nil and no error when
// it has done what was asked (--help, --version).
func parseFlags(args []string, stdout, stderr io.Writer) (*serverConfig, error) {
	fs := flag.NewFlagSet("chatsync-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to listen on (port 0 picks a free port)")
	dataDir := fs.String("data", "", "`directory` for the journal database and nonce key (created if missing)")
	accountsPath := fs.String("accounts", "", "accounts.toml `file` listing the served accounts (the default source of accounts)")
	accountsTable := fs.Bool("accounts-table", false, "serve the accounts of the table chatsync_accounts in the --journal mysql://... database instead of --accounts\n"+
		"(created if missing, never altered; re-read every --accounts-reload and on SIGHUP; a bad row is logged and skipped)")
	accountsReload := fs.Duration("accounts-reload", accountserver.DefaultAccountsReload, "with --accounts-table: re-read the table every `interval`")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file` (PEM); serve https with --tls-key")
	tlsKey := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	strict := fs.Bool("strict-compat", false, "reproduce the real server's bugs (limit, delete_journal_entries, get_monthly_usage)\nand, unless their flags are given, its page limits: --page-bytes-limit 20M --shuffle-same-second")
	maxBody := fs.Int64("max-body", accountserver.DefaultMaxBody, "largest accepted request body in `bytes`")
	var pageBytes, maxRow byteSize
	fs.Var(&pageBytes, "page-bytes-limit", "answer HTTP 500 with an empty body when a get_journal_entries reply would be over `N` bytes,\n"+
		"like the real server out of PHP memory (k, M, G: 1000, 1000², 1000³; Ki, Mi, Gi: 1024, 1024², 1024³;\n"+
		"0: no limit; --strict-compat: 20M)")
	pageRows := fs.Int("page-rows", accountserver.DefaultPageRows, "cap a get_journal_entries page at `N` rows (the real server's cap is 5000);\nan honoured limit parameter gives min(limit, N)")
	shuffle := fs.Bool("shuffle-same-second", false, "return the rows of one second in no defined order, and a page cut inside a second\n"+
		"with an arbitrary subset of that second's rows, as real MariaDB does (on with --strict-compat)")
	shuffleSeed := fs.Uint64("shuffle-seed", 0, "seed `N` of --shuffle-same-second's random order, for reproducible runs (0: from the clock)")
	ignoreAfterID := fs.Bool("ignore-after-id", false, "ignore after_id like the historical Mongo backend: every page starts at the account's first row")
	fs.Var(&maxRow, "max-row-bytes", "do not store a put element whose data is over `N` bytes and answer \"journal_id\":null for it,\n"+
		"like MariaDB's max_allowed_packet (suffixes as for --page-bytes-limit; 0: no limit)")
	haltOnError := fs.Bool("halt-on-error", false, "with --max-row-bytes: stop the put at that element instead (the rows before it are stored)\n"+
		"and reply with the MySQL error text, like PHP with Halt_On_Error=yes")
	journal := fs.String("journal", "bbolt", "where the journal is kept: bbolt (the file in --data) or `mysql://USER@HOST:PORT/DB[?tls=true|skip-verify|preferred]`,\n"+
		"CDRTool's client_journal table (created if missing, never altered); the password comes from\n"+
		"--journal-password-file or $CHATSYNC_JOURNAL_PASSWORD, never from the command line")
	journalPasswordFile := fs.String("journal-password-file", "", "`file` holding the MySQL password of --journal (trailing newline ignored)")
	journalTLSCA := fs.String("journal-tls-ca", "", "verify the MySQL server of --journal against the CA certificates in this PEM `file` (sets ?tls=custom)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chatsync-server --listen ADDR --data DIR (--accounts FILE | --accounts-table) [--tls-cert F --tls-key F] [--strict-compat] [--max-body BYTES]\n"+
			"                       [--page-bytes-limit N] [--page-rows N] [--shuffle-same-second [--shuffle-seed N]]\n"+
			"                       [--ignore-after-id] [--max-row-bytes N [--halt-on-error]]\n"+
			"                       [--journal mysql://USER@HOST:PORT/DB [--journal-password-file F] [--journal-tls-ca F]]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, usageError{err.Error()}
	}
	if *showVersion {
		_, err := fmt.Fprintf(stdout, "chatsync-server %s\n", version)
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q; all options are flags (see --help)", fs.Arg(0))}
	}
	if *dataDir == "" {
		return nil, usageError{"--data is required: give a directory for the journal database, e.g. --data ./server-data"}
	}
	switch {
	case *accountsTable && *accountsPath != "":
		return nil, usageError{"--accounts and --accounts-table exclude each other: the accounts come from the file or from the table"}
	case *accountsTable && !strings.HasPrefix(*journal, "mysql://"):
		return nil, usageError{"--accounts-table reads chatsync_accounts in the journal's database: it needs --journal mysql://USER@HOST:PORT/DB"}
	case *accountsPath == "" && !*accountsTable:
		return nil, usageError{"--accounts is required: give an accounts.toml with at least one [[account]] (address, password), or --accounts-table"}
	}
	if *accountsReload <= 0 {
		return nil, usageError{fmt.Sprintf("--accounts-reload %v: want a positive interval, e.g. 10s", *accountsReload)}
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return nil, usageError{"--tls-cert and --tls-key go together: give both, or neither for plain http"}
	}
	if *maxBody <= 0 {
		return nil, usageError{"--max-body must be a positive number of bytes"}
	}
	if *pageRows <= 0 {
		return nil, usageError{fmt.Sprintf("--page-rows %d: want a positive number of rows (the real server's is 5000)", *pageRows)}
	}
	if maxRow.n > math.MaxInt {
		return nil, usageError{fmt.Sprintf("--max-row-bytes %d: too large", maxRow.n)}
	}
	if *haltOnError && maxRow.n == 0 {
		return nil, usageError{"--halt-on-error needs --max-row-bytes N: it says what happens to a put element over N bytes"}
	}
	cfg := &serverConfig{listen: *listen, accountsPath: *accountsPath, tlsCert: *tlsCert, tlsKey: *tlsKey}
	if err := cfg.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: use debug, info, warn or error", *logLevel)}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	cfg.opts = accountserver.Options{
		DataDir:           *dataDir,
		StrictCompat:      *strict,
		MaxBody:           *maxBody,
		PageBytesLimit:    pageBytes.n,
		PageRows:          *pageRows,
		ShuffleSameSecond: *shuffle,
		ShuffleSeed:       *shuffleSeed,
		IgnoreAfterID:     *ignoreAfterID,
		MaxRowBytes:       int(maxRow.n),
		HaltOnError:       *haltOnError,
		AccountsTable:     *accountsTable,
	}
	if *accountsTable {
		cfg.opts.AccountsReload = *accountsReload
	}
	switch {
	case *journal == "bbolt":
		if *journalPasswordFile != "" || *journalTLSCA != "" {
			return nil, usageError{"--journal-password-file and --journal-tls-ca go with --journal mysql://..."}
		}
	case strings.HasPrefix(*journal, "mysql://"):
		password, ok := os.LookupEnv("CHATSYNC_JOURNAL_PASSWORD")
		if *journalPasswordFile != "" {
			b, err := os.ReadFile(*journalPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("--journal-password-file: %w", err)
			}
			password, ok = strings.TrimRight(string(b), "\r\n"), true
		}
		if !ok {
			return nil, usageError{"--journal mysql://... needs a password: --journal-password-file FILE or CHATSYNC_JOURNAL_PASSWORD"}
		}
		if *journalTLSCA != "" {
			pem, err := os.ReadFile(*journalTLSCA)
			if err != nil {
				return nil, fmt.Errorf("--journal-tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, usageError{fmt.Sprintf("--journal-tls-ca %s: no PEM certificate in it", *journalTLSCA)}
			}
			if err := mysql.RegisterTLSConfig("custom", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
				return nil, err
			}
		}
		c, err := accountserver.ParseJournalURL(*journal, password)
		if err != nil {
			return nil, usageError{"--journal: " + err.Error()}
		}
		if *journalTLSCA != "" {
			if c.TLSConfig != "" && c.TLSConfig != "custom" {
				return nil, usageError{fmt.Sprintf("--journal-tls-ca goes with ?tls=custom (or no tls parameter), not tls=%s", c.TLSConfig)}
			}
			c.TLSConfig = "custom"
		}
		cfg.opts.JournalMySQL = c
		journalTestSwitches(&cfg.opts)
	default:
		return nil, usageError{fmt.Sprintf("--journal %q: want bbolt or mysql://USER@HOST:PORT/DB", *journal)}
	}
	if *strict {
		if !given["page-bytes-limit"] {
			cfg.opts.PageBytesLimit = accountserver.StrictPageBytesLimit
		}
		if !given["shuffle-same-second"] {
			cfg.opts.ShuffleSameSecond = true
		}
	}
	return cfg, nil
}

// byteSize is a flag value: a number of bytes with an optional suffix.
type byteSize struct{ n int64 }

func (b *byteSize) String() string { return strconv.FormatInt(b.n, 10) }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	b.n = n
	return nil
}

// byteSuffixes are the accepted size suffixes, longest first.
var byteSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9},
	{"B", 1},
}

// parseByteSize reads "20000000", "20M" (decimal: 20,000,000), "16Mi"
// (binary: 16,777,216) and the like.
func parseByteSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, x := range byteSuffixes {
		if rest, ok := strings.CutSuffix(num, x.suffix); ok {
			num, mult = strings.TrimSpace(rest), x.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a number of bytes, optionally with k, M, G (powers of 1000) or Ki, Mi, Gi (powers of 1024), e.g. 20M", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stdout, stderr)
	if err != nil || cfg == nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	opts := cfg.opts
	if !opts.AccountsTable {
		accounts, err := accountserver.LoadAccounts(cfg.accountsPath)
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		opts.Accounts = accounts
	}
	opts.Logger = log
	srv, err := accountserver.New(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	// SIGHUP re-reads the accounts table at once (as the reload loop does
	// every --accounts-reload); caught from before the "listening on" line.
	var hup chan os.Signal
	if opts.AccountsTable {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is the port in use? try --listen 127.0.0.1:0)", cfg.listen, err)
	}
	scheme := "http"
	var tlsConfig *tls.Config
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("TLS key pair: %w (give PEM files: --tls-cert CERT --tls-key KEY)", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	// No WriteTimeout: it would cut long polls (get_journal_entries
	// wait=, up to accountserver.MaxWait) and big pages on slow links. A
	// WriteTimeout, if one is ever set, must exceed MaxWait with a margin.
	hs := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "listening on %s://%s%s\n", scheme, ln.Addr(), accountserver.Path)
	log.Info("serving", "addr", ln.Addr().String(), "accounts", len(srv.Accounts()), "accounts_table", opts.AccountsTable, "strict_compat", opts.StrictCompat, "data", opts.DataDir,
		"page_rows", opts.PageRows, "page_bytes_limit", opts.PageBytesLimit, "shuffle_same_second", opts.ShuffleSameSecond,
		"ignore_after_id", opts.IgnoreAfterID, "max_row_bytes", opts.MaxRowBytes, "halt_on_error", opts.HaltOnError)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second signal kills the process the default way
	if hup != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					if err := srv.ReloadAccounts(); err != nil {
						log.Warn("SIGHUP: accounts table not reloaded; serving the accounts read before", "err", err)
					} else {
						log.Info("SIGHUP: accounts table reloaded", "accounts", len(srv.Accounts()))
					}
				}
			}
		}()
	}
	if err := serve(ctx, hs, srv, ln, cfg.tlsCert != "", log); err != nil {
		return err
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("closing database: %w", err)
	}
	log.Info("stopped")
	return nil
}

// shutdownTimeout is how long a shutdown waits for requests to finish.
const shutdownTimeout = 10 * time.Second

// serve runs hs on ln until ctx is done, then shuts hs down. Held long
// polls are ended first (srv.EndWaits): Shutdown waits for active
// requests, and a held get_journal_entries would keep it up to
// accountserver.MaxWait, past shutdownTimeout, and then be cut.
func serve(ctx context.Context, hs *http.Server, srv *accountserver.Server, ln net.Listener, useTLS bool, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "held_long_polls", srv.Waiting())
	srv.EndWaits()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running were cut", "err", err)
	}
	return nil
}
