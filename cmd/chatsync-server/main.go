// Command chatsync-server serves the SIP Account API (settings.phtml) with
// digest authentication and a bbolt-backed chat journal, for tests, the
// demo and people who run their own SIP service.
//
// Usage:
//
//	chatsync-server --listen 127.0.0.1:8080 --data DIR --accounts accounts.toml
//	                [--tls-cert F --tls-key F] [--strict-compat] [--max-body BYTES]
//
// The first line of standard output is "listening on URL", where URL is
// the settings URL clients use. Logs go to standard error.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

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

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chatsync-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to listen on (port 0 picks a free port)")
	dataDir := fs.String("data", "", "`directory` for the journal database and nonce key (created if missing)")
	accountsPath := fs.String("accounts", "", "accounts.toml `file` listing the served accounts")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file` (PEM); serve https with --tls-key")
	tlsKey := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	strict := fs.Bool("strict-compat", false, "reproduce the real server's bugs (limit, delete_journal_entries, get_monthly_usage)")
	maxBody := fs.Int64("max-body", accountserver.DefaultMaxBody, "largest accepted request body in `bytes`")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chatsync-server --listen ADDR --data DIR --accounts FILE [--tls-cert F --tls-key F] [--strict-compat] [--max-body BYTES]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if *showVersion {
		_, err := fmt.Fprintf(stdout, "chatsync-server %s\n", version)
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q; all options are flags (see --help)", fs.Arg(0))}
	}
	if *dataDir == "" {
		return usageError{"--data is required: give a directory for the journal database, e.g. --data ./server-data"}
	}
	if *accountsPath == "" {
		return usageError{"--accounts is required: give an accounts.toml with at least one [[account]] (address, password)"}
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageError{"--tls-cert and --tls-key go together: give both, or neither for plain http"}
	}
	if *maxBody <= 0 {
		return usageError{"--max-body must be a positive number of bytes"}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level %q: use debug, info, warn or error", *logLevel)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	accounts, err := accountserver.LoadAccounts(*accountsPath)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	srv, err := accountserver.New(accountserver.Options{
		DataDir:      *dataDir,
		Accounts:     accounts,
		StrictCompat: *strict,
		MaxBody:      *maxBody,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is the port in use? try --listen 127.0.0.1:0)", *listen, err)
	}
	scheme := "http"
	var tlsConfig *tls.Config
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("TLS key pair: %w (give PEM files: --tls-cert CERT --tls-key KEY)", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	hs := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "listening on %s://%s%s\n", scheme, ln.Addr(), accountserver.Path)
	log.Info("serving", "addr", ln.Addr().String(), "accounts", len(accounts), "strict_compat", *strict, "data", *dataDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
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
	stop() // a second signal kills the process the default way
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running were cut", "err", err)
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("closing database: %w", err)
	}
	log.Info("stopped")
	return nil
}
