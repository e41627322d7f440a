package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	ks "github.com/kardianos/service"
	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/cmd/chatsync/service"
)

func init() {
	extraCommands = append(extraCommands, newServiceCmd)
}

// CommandTree is chatsync's command tree, as `chatsync` builds it, for the
// tools that document it: packaging/mangen writes the packages' man pages
// and shell completions from it. Nothing in it has run.
func CommandTree(version string) *cobra.Command {
	return newRoot(&globals{version: version, stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
}

// servicePlatform is the service manager kardianos would use here
// ("linux-systemd", "unix-systemv", "darwin-launchd", ...); a variable for
// the tests.
var servicePlatform = func() string { return ks.ChosenSystem().String() }

// sysvRoot is where a SysV init script of an older chatsync would be (the
// tests point it at a directory of their own).
var sysvRoot = "/"

type serviceFlags struct {
	user  bool
	runAs string
	json  bool // status --json
}

func newServiceCmd(g *globals) *cobra.Command {
	sf := &serviceFlags{}
	c := &cobra.Command{
		Use:   "service",
		Short: "Install, remove, start and stop chatsync as a system or user service",
		Long: `service installs chatsync in the service manager of this system (systemd,
launchd, Windows services) to run "chatsync run --config FILE" with the absolute
path of the config, restarting it within seconds when it fails. On Linux it
needs systemd: elsewhere it refuses, and uninstall removes the SysV init script
and /etc/rc?.d links an older chatsync installed.

--user installs a per-user service: a systemd user unit (WantedBy=default.target)
or a macOS LaunchAgent. On Linux a user service stops when you log out unless
lingering is on: run "loginctl enable-linger $USER" once. Without --user the
service is a system service (run it with sudo / as administrator).

Installed from a .deb or .rpm? Those ship their own units: use systemctl
(chatsync.service, or chatsync.service --user) and not this command.`,
		Example: `  chatsync service install --user
  chatsync service install --user --config ~/chatsync.toml
  sudo chatsync service install --config /etc/chatsync/config.toml --run-as alice
  chatsync service status --user`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usagef("service needs a subcommand: install, uninstall, start, stop, restart or status")
		},
	}
	c.PersistentFlags().BoolVar(&sf.user, "user", false, "act on the per-user service instead of the system service")
	install := &cobra.Command{
		Use:   "install",
		Short: "Install the service (it runs chatsync run --config <absolute path>)",
		Args:  noArgs,
		RunE:  func(c *cobra.Command, args []string) error { return serviceInstall(g, sf) },
	}
	install.Flags().StringVar(&sf.runAs, "run-as", "", "user a system service runs as (default: root / LocalSystem)")
	c.AddCommand(install)
	for _, action := range []struct{ name, short string }{
		{"uninstall", "Stop and remove the service"},
		{"start", "Start the installed service"},
		{"stop", "Stop the service (it saves its state first)"},
		{"restart", "Restart the service"},
		{"status", "Say whether the service is installed and running"},
	} {
		sub := &cobra.Command{
			Use:   action.name,
			Short: action.short,
			Args:  noArgs,
			RunE:  func(c *cobra.Command, args []string) error { return serviceControl(g, sf, action.name) },
		}
		if action.name == "status" {
			sub.Flags().BoolVar(&sf.json, "json", false, `print {"service", "kind", "state"} as JSON; state is running, stopped, not installed or unknown`)
		}
		c.AddCommand(sub)
	}
	return c
}

// serviceOptions works out what the service runs: this executable with
// the absolute path of the config.
func serviceOptions(g *globals, sf *serviceFlags) (service.Options, error) {
	o := service.Options{User: sf.user, RunAs: sf.runAs}
	path := g.configPath
	if path == "" {
		path = config.DefaultPath()
		if !sf.user {
			path = config.DefaultSystemConfigPath()
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return o, err
	}
	o.ConfigPath = abs
	exe, err := os.Executable()
	if err != nil {
		return o, fmt.Errorf("cannot find the chatsync executable: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	o.Executable = exe
	o.Home, _ = os.UserHomeDir()
	return o, nil
}

func newKardianos(o service.Options, prg ks.Interface) (ks.Service, error) {
	kc, err := service.Config(o)
	if err != nil {
		return nil, err
	}
	return ks.New(prg, kc)
}

func serviceInstall(g *globals, sf *serviceFlags) error {
	o, err := serviceOptions(g, sf)
	if err != nil {
		return err
	}
	if err := service.Supported(runtime.GOOS, servicePlatform(), sf.user, o.ConfigPath); err != nil {
		return err
	}
	// Refuse a config the daemon would refuse, with every problem listed.
	_, problems, err := config.Load(o.ConfigPath)
	for _, p := range problems {
		fmt.Fprintf(g.stderr, "%s: %s\n", o.ConfigPath, p)
	}
	if err != nil {
		return fmt.Errorf("%v\nfix the config first (chatsync config check --config %s), then install again", err, o.ConfigPath)
	}
	if strings.Contains(o.Executable, "go-build") {
		return fmt.Errorf("%s is a temporary binary of `go run`: install chatsync first (go install ./cmd/chatsync, or a package) and run its `service install`", o.Executable)
	}
	s, err := newKardianos(o, noopProgram{})
	if err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		return fmt.Errorf("install the %s: %w%s", kind(sf), err, privilegeHint(sf))
	}
	fmt.Fprintf(g.stdout, "installed the %s %s: it runs %s %s\n", kind(sf), service.Name(), o.Executable, strings.Join(o.Arguments(), " "))
	fmt.Fprintf(g.stdout, "start it with: chatsync service start%s\n", userFlag(sf))
	if sf.user && runtime.GOOS == "linux" {
		fmt.Fprintln(g.stdout, "a user service stops at logout; to keep it running, run once: loginctl enable-linger $USER")
	}
	return nil
}

func serviceControl(g *globals, sf *serviceFlags, action string) error {
	o, err := serviceOptions(g, sf)
	if err != nil {
		return err
	}
	if err := service.Supported(runtime.GOOS, servicePlatform(), sf.user, o.ConfigPath); err != nil {
		if action == "uninstall" && !sf.user {
			// What an older chatsync installed here: its init script and
			// the /etc/rc?.d links to it.
			return uninstallSysV(g)
		}
		return err
	}
	s, err := newKardianos(o, noopProgram{})
	if err != nil {
		return err
	}
	if action == "status" {
		state, line, err := serviceState(sf, s)
		if err != nil {
			return err
		}
		if sf.json {
			if err := printJSON(g.stdout, map[string]string{"service": service.Name(), "kind": kind(sf), "state": state}); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(g.stdout, line)
		}
		if state != "running" {
			return errors.New(state) // exit 1: not running
		}
		return nil
	}
	if action == "uninstall" {
		// kardianos only disables the unit: stop it first, so nothing
		// keeps running from a unit that is gone. Not running is fine.
		_ = s.Stop()
	}
	if err := ks.Control(s, action); err != nil {
		return fmt.Errorf("%s the %s: %w%s", action, kind(sf), unwrapControl(err), privilegeHint(sf))
	}
	fmt.Fprintf(g.stdout, "%s: done (the %s %s)\n", action, kind(sf), service.Name())
	return nil
}

// serviceState says what the service manager reports of s: a state word
// for scripts (running, stopped, not installed, unknown) and a line that
// says what to do.
func serviceState(sf *serviceFlags, s interface{ Status() (ks.Status, error) }) (state, line string, err error) {
	st, err := s.Status()
	switch {
	case errors.Is(err, ks.ErrNotInstalled):
		return "not installed", fmt.Sprintf("the %s %s is not installed (chatsync service install%s)", kind(sf), service.Name(), userFlag(sf)), nil
	case err != nil:
		return "", "", fmt.Errorf("status of the %s: %w", kind(sf), err)
	case st == ks.StatusRunning:
		return "running", fmt.Sprintf("the %s %s is running; `chatsync status` shows what it does", kind(sf), service.Name()), nil
	case st == ks.StatusStopped:
		return "stopped", fmt.Sprintf("the %s %s is installed and stopped (chatsync service start%s)", kind(sf), service.Name(), userFlag(sf)), nil
	}
	return "unknown", fmt.Sprintf("the state of the %s %s is unknown", kind(sf), service.Name()), nil
}

// uninstallSysV removes the SysV init script an older chatsync wrote on a
// Linux without systemd, and its /etc/rc?.d links, after stopping it.
func uninstallSysV(g *globals) error {
	script := service.SysVScript(sysvRoot)
	removed, err := service.RemoveSysV(sysvRoot, func(script string) {
		if sysvRoot == "/" {
			// Stop it first; one that is not running is fine.
			_ = exec.Command(script, "stop").Run()
		}
	})
	for _, p := range removed {
		fmt.Fprintf(g.stdout, "removed %s\n", p)
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("remove the SysV init script: %w%s", err, privilegeHint(&serviceFlags{}))
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintf(g.stdout, "no chatsync system service is installed here (nothing in %s or /etc/rc?.d)\n", script)
		return nil
	}
	fmt.Fprintln(g.stdout, "uninstall: done (the SysV init script and its links)")
	return nil
}

// unwrapControl drops kardianos' "Failed to <action> <name>: " prefix.
func unwrapControl(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

func kind(sf *serviceFlags) string {
	if sf.user {
		return "user service"
	}
	return "system service"
}

func userFlag(sf *serviceFlags) string {
	if sf.user {
		return " --user"
	}
	return ""
}

func privilegeHint(sf *serviceFlags) string {
	if sf.user {
		return ""
	}
	if runtime.GOOS == "windows" {
		return " (run it from an administrator prompt, or use --user)"
	}
	if os.Geteuid() != 0 {
		return " (a system service needs root: run it with sudo, or use --user)"
	}
	return ""
}

// noopProgram is the kardianos program for install and control commands,
// which never run the daemon.
type noopProgram struct{}

func (noopProgram) Start(ks.Service) error { return nil }
func (noopProgram) Stop(ks.Service) error  { return nil }
