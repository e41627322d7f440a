// Package cli is chatsync's command line: the daemon (`run`), the demo, the
// key and config tools, and the commands that talk to a running daemon
// through its control socket.
//
// Conventions (tailscale's and gh's): results on stdout, diagnostics on
// stderr; every command that prints data has --json, whose fields are only
// ever added, never renamed; exit status 0 on success, 1 on failure, 2 for a
// usage mistake; every error is one line that says what to do.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// usageError marks a mistake in how a command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// globals are the flags every command accepts.
type globals struct {
	configPath string
	socket     string
	account    string
	version    string
	stdout     io.Writer
	stderr     io.Writer
	stdin      io.Reader
	// dial, if set, replaces connecting to the control socket (tests).
	dial func(ctx context.Context, path string) (net.Conn, error)
	// json is the --json given where the command has none of its own
	// (before the command: `chatsync --json status` parses it as the
	// command's own).
	json bool
}

// configFile is the config path in effect: --config or the default.
func (g *globals) configFile() string {
	if g.configPath != "" {
		return g.configPath
	}
	return config.DefaultPath()
}

// loadConfig reads the config and turns its problems into one error that
// lists them.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, problems, err := config.Load(g.configFile())
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		fmt.Fprintln(g.stderr, p.String())
	}
	return cfg, nil
}

// Run runs the command line args and returns the process exit status.
func Run(args []string, version string) int {
	return run(args, version, os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, version string, stdin io.Reader, stdout, stderr io.Writer) int {
	return execute(&globals{version: version, stdin: stdin, stdout: stdout, stderr: stderr}, args)
}

// execute runs args with g and returns the exit status.
func execute(g *globals, args []string) int {
	stderr := g.stderr
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(g.stdin)
	root.SetOut(g.stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "chatsync ") && !strings.HasPrefix(msg, "chatsync:") {
		msg = "chatsync: " + msg
	}
	fmt.Fprintln(stderr, msg)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	if ec, ok := errors.AsType[interface {
		error
		ExitCode() int
	}](err); ok {
		return ec.ExitCode() // status: 3 when an account does not run as it should
	}
	return ExitFailure
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "chatsync",
		Short: "Keep a SIP account's chat history identical on all your devices, end-to-end encrypted",
		Long: `chatsync keeps the chat history of a SIP account identical on all of your devices.

It watches a directory of JSON message files, encrypts every new, changed or
deleted message with a key only your devices hold, and exchanges them through
the journal of your SIP account (the SIP Account API, settings.phtml).`,
		Example: `  chatsync demo                      # see it work, on a local server
  chatsync key generate --out ~/.config/chatsync/alice.key
  chatsync config check
  chatsync run                       # the daemon, in the foreground
  chatsync service install --user    # the daemon, as a service`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%v (see `%s --help`)", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "config file (default "+config.DefaultPath()+")")
	pf.StringVar(&g.socket, "socket", "", "control socket of the daemon (default: from the config)")
	pf.StringVar(&g.account, "account", "", "the account to act on, when the config has several")
	// --json may stand before the command too: known here, it is parsed as
	// the command's own --json (which shadows this one) wherever it stands.
	pf.BoolVar(&g.json, "json", false, "print JSON (commands that print data)")
	pf.MarkHidden("json")
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if f := c.Flags().Lookup("json"); f != nil && f == pf.Lookup("json") && f.Changed {
			return usagef("`%s` has no --json: it prints no data (see `%s --help`)", c.CommandPath(), c.CommandPath())
		}
		return nil
	}
	// --version, as `chatsync version` prints it.
	root.Version = g.version
	if root.Version == "" {
		root.Version = "unknown"
	}
	root.SetVersionTemplate(strings.ReplaceAll(versionLine(root.Version), "{{", "{{`{{`}}"))
	for _, add := range []func(*globals) *cobra.Command{
		newRunCmd, newDemoCmd, newKeyCmd, newConfigCmd, newVersionCmd,
	} {
		root.AddCommand(add(g))
	}
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	// Unknown commands and stray arguments are usage errors.
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q: run `chatsync --help` for the list", args[0])
		}
		return nil
	}
	root.RunE = func(c *cobra.Command, args []string) error {
		c.Help()
		return usagef("no command given")
	}
	return root
}

// extraCommands are added by other files of this package (the commands
// that talk to the daemon), so each lives in its own file.
var extraCommands []func(*globals) *cobra.Command

// noArgs is cobra.NoArgs as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q (see `%s --help`)", c.Name(), args, c.CommandPath())
	}
	return nil
}

// exactArgs is cobra.ExactArgs as a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d (see `%s --help`)", c.Name(), n, len(args), c.CommandPath())
		}
		return nil
	}
}
