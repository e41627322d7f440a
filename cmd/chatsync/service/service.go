// Package service installs chatsync as a service of the operating system's
// service manager (systemd, launchd, the Windows service control manager)
// through kardianos/service, with chatsync's own unit files.
//
// kardianos' built-in systemd unit restarts a crashed daemon only after
// 120 s and names multi-user.target, which a user's systemd manager does not
// have, so a user unit would never start at login (kardianos/service #375,
// #415). This package renders its own systemd units and launchd plist and
// hands them to kardianos as SystemdScript and LaunchdConfig; the rendered
// text holds no template actions, so kardianos writes it as it is.
package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"

	ks "github.com/kardianos/service"
)

// Name is the service's name: the systemd unit chatsync.service, the
// Windows service chatsync, and on macOS the launchd label (reverse DNS, as
// launchd wants; the plist in packaging/launchd has the same label).
func Name() string {
	if runtime.GOOS == "darwin" {
		return LaunchdLabel
	}
	return "chatsync"
}

// LaunchdLabel is the launchd job label on macOS.
const LaunchdLabel = "com.github.chatsync.chatsync"

const (
	displayName = "chatsync"
	description = "chatsync: keeps a SIP account's chat history identical on all your devices, end-to-end encrypted"
	docURL      = "https://github.com/chatsync/chatsync"
)

// Supported says whether chatsync can install its service with the
// service manager kardianos found (platform, as ks.ChosenSystem names it)
// on goos. On Linux that is systemd only: kardianos' SysV, OpenRC and
// Upstart scripts are its own, without chatsync's restart and hardening,
// a SysV install leaves /etc/rc?.d links behind on uninstall, and there is
// no user service without systemd's user manager. The error says what to
// do instead.
func Supported(goos, platform string, user bool, configPath string) error {
	if goos != "linux" || platform == "linux-systemd" {
		return nil
	}
	what := "a system service"
	if user {
		what = "a user service (systemctl --user)"
	}
	return fmt.Errorf("this system does not run systemd (it has %s), and `chatsync service` manages %s with systemd only; nothing was changed: start `chatsync run --config %s` from your init system yourself, or in the foreground",
		initName(platform), what, configPath)
}

func initName(platform string) string {
	switch platform {
	case "unix-systemv":
		return "SysV init"
	case "linux-openrc":
		return "OpenRC"
	case "linux-upstart":
		return "Upstart"
	case "linux-procd":
		return "procd"
	case "linux-rcs":
		return "rcS"
	}
	return platform
}

// SysVScript is where kardianos writes the SysV init script of chatsync
// under root ("/" on a real system).
func SysVScript(root string) string {
	return filepath.Join(root, "etc", "init.d", Name())
}

var rcLink = regexp.MustCompile(`^[SK][0-9][0-9]` + regexp.QuoteMeta(Name()) + `$`)

// RemoveSysV removes what "chatsync service install" of an older chatsync
// made on a Linux without systemd, under root: the init script
// /etc/init.d/chatsync and its start and kill links /etc/rc?.d/S50chatsync
// and K02chatsync (which kardianos' uninstall left behind). An init script
// chatsync did not write is left alone, and its links with it. It returns
// the paths removed. stop, when not nil, is called with the script before
// it is removed.
func RemoveSysV(root string, stop func(script string)) ([]string, error) {
	var removed []string
	script := SysVScript(root)
	if data, err := os.ReadFile(script); err == nil {
		if !strings.Contains(string(data), description) {
			return nil, fmt.Errorf("%s was not written by chatsync service install: it is left as it is", script)
		}
		if stop != nil {
			stop(script)
		}
		if err := os.Remove(script); err != nil {
			return nil, err
		}
		removed = append(removed, script)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	target := "/etc/init.d/" + Name()
	dirs, _ := filepath.Glob(filepath.Join(root, "etc", "rc?.d"))
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !rcLink.MatchString(e.Name()) || e.Type()&os.ModeSymlink == 0 {
				continue
			}
			p := filepath.Join(dir, e.Name())
			to, err := os.Readlink(p)
			if err != nil || (to != target && to != "../init.d/"+Name()) {
				continue
			}
			if err := os.Remove(p); err != nil {
				return removed, err
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// Options say what to install.
type Options struct {
	// User installs a per-user service (systemd user unit, LaunchAgent)
	// instead of a system one.
	User bool
	// Executable is the absolute path of the chatsync binary.
	Executable string
	// ConfigPath is the absolute path of the config file the service runs.
	ConfigPath string
	// RunAs is the account a system service runs as (systemd User=,
	// launchd UserName); empty means the service manager's default (root,
	// LocalSystem).
	RunAs string
	// LogDir is where a LaunchAgent writes its output (macOS; default
	// ~/Library/Logs).
	LogDir string
	// Home is the user's home directory (for the LaunchAgent's log paths).
	Home string
}

func (o Options) check() error {
	if !filepath.IsAbs(o.Executable) {
		return fmt.Errorf("the executable path %q is not absolute", o.Executable)
	}
	if !filepath.IsAbs(o.ConfigPath) {
		return fmt.Errorf("the config path %q is not absolute", o.ConfigPath)
	}
	for _, s := range []string{o.Executable, o.ConfigPath, o.RunAs, o.LogDir, o.Home} {
		if strings.Contains(s, "{{") || strings.ContainsAny(s, "\n\r") {
			return fmt.Errorf("%q cannot go into a service file: it holds a newline or {{", s)
		}
	}
	if o.User && o.RunAs != "" {
		return errors.New("--run-as is for system services: a user service runs as its user")
	}
	return nil
}

// Arguments are the arguments the service manager passes to chatsync.
func (o Options) Arguments() []string { return []string{"run", "--config", o.ConfigPath} }

// Config is the kardianos configuration for o.
func Config(o Options) (*ks.Config, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	c := &ks.Config{
		Name:        Name(),
		DisplayName: displayName,
		Description: description,
		Executable:  o.Executable,
		Arguments:   o.Arguments(),
		UserName:    o.RunAs,
		Option: ks.KeyValue{
			"UserService": o.User,
			// Windows: restart after a failure, as Restart=on-failure does.
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "5s",
			"OnFailureResetPeriod":   60,
			"DelayedAutoStart":       true,
			// macOS: start at load and at login, restart when it dies.
			"RunAtLoad": true,
			"KeepAlive": true,
		},
	}
	unit, err := SystemdUnit(o)
	if err != nil {
		return nil, err
	}
	c.Option["SystemdScript"] = unit
	plist, err := LaunchdPlist(o)
	if err != nil {
		return nil, err
	}
	c.Option["LaunchdConfig"] = plist
	return c, nil
}

// SystemdUnit renders the systemd unit for o: a user unit wanted by
// default.target for a user service, else a system unit wanted by
// multi-user.target. Both restart on failure after 5 s.
func SystemdUnit(o Options) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	err := systemdTemplate.Execute(&b, map[string]any{
		"User": o.User, "RunAs": o.RunAs, "Description": description, "Doc": docURL,
		"ExecStart": systemdCommand(append([]string{o.Executable}, o.Arguments()...)),
	})
	return b.String(), err
}

// systemdCommand quotes a command line for ExecStart: each word in double
// quotes, with \ and " escaped, and % and $ doubled so systemd does not
// expand them.
func systemdCommand(words []string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = `"` + r.Replace(w) + `"`
	}
	return strings.Join(quoted, " ")
}

var systemdTemplate = template.Must(template.New("unit").Parse(`# Installed by "chatsync service install{{if .User}} --user{{end}}". Remove it with
# "chatsync service uninstall{{if .User}} --user{{end}}".
[Unit]
Description={{.Description}}
Documentation={{.Doc}}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=simple
ExecStart={{.ExecStart}}
ExecReload=/bin/kill -HUP $MAINPID
{{- if .RunAs}}
User={{.RunAs}}
{{- end}}
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
{{- if not .User}}
RuntimeDirectory=chatsync
RuntimeDirectoryMode=0750
StateDirectory=chatsync
StateDirectoryMode=0700
{{- end}}
UMask=0077

# Hardening that leaves the message store wherever the config puts it.
NoNewPrivileges=true
SystemCallArchitectures=native
MemoryDenyWriteExecute=true
LockPersonality=true
RestrictRealtime=true
{{- if not .User}}
PrivateTmp=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
{{- end}}

[Install]
WantedBy={{if .User}}default.target{{else}}multi-user.target{{end}}
`))

// LaunchdPlist renders the launchd job for o: a LaunchAgent for a user
// service, with its output in LogDir (default ~/Library/Logs), else a
// LaunchDaemon logging to /Library/Logs.
func LaunchdPlist(o Options) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	logDir := o.LogDir
	if logDir == "" {
		if o.User {
			logDir = filepath.Join(o.Home, "Library", "Logs")
		} else {
			logDir = "/Library/Logs"
		}
	}
	var args []string
	for _, a := range append([]string{o.Executable}, o.Arguments()...) {
		args = append(args, xmlEscape(a))
	}
	var b strings.Builder
	err := launchdTemplate.Execute(&b, map[string]any{
		"Label": LaunchdLabel, "Args": args, "RunAs": xmlEscape(o.RunAs), "User": o.User,
		"Stdout": xmlEscape(filepath.Join(logDir, "chatsync.out.log")),
		"Stderr": xmlEscape(filepath.Join(logDir, "chatsync.log")),
	})
	return b.String(), err
}

var xmlEscaper = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&quot;", `'`, "&apos;")

func xmlEscape(s string) string { return xmlEscaper.Replace(s) }

// The values are escaped before they go in: the template is text/template,
// not html/template, to keep the plist exactly as written.
var launchdTemplate = template.Must(template.New("plist").Parse(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{.Label}}</string>
	<key>ProgramArguments</key>
	<array>
{{- range .Args}}
		<string>{{.}}</string>
{{- end}}
	</array>
{{- if .RunAs}}
	<key>UserName</key>
	<string>{{.RunAs}}</string>
{{- end}}
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<key>StandardOutPath</key>
	<string>{{.Stdout}}</string>
	<key>StandardErrorPath</key>
	<string>{{.Stderr}}</string>
</dict>
</plist>
`))
