package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/sync/localclient"
)

// notRunningMessage is what every command that needs the daemon says when
// the socket is there but nothing answers on it: then, and only then, it
// is known that the daemon is not running.
const notRunningMessage = "chatsync is not running: start it with `chatsync run` or `chatsync service start`"

// socketPath is --socket, $CHATSYNC_SOCKET, or daemon.socket of the config.
func (g *globals) socketPath() (string, error) {
	path, _, _, err := g.socketPathFrom()
	return path, err
}

// socketPathFrom is socketPath, where the path comes from and the state
// directory of the config (where a daemon without $XDG_RUNTIME_DIR puts
// its socket), for the message when there is no socket there.
func (g *globals) socketPathFrom() (path, from, stateDir string, err error) {
	if g.socket != "" {
		return g.socket, "from --socket", "", nil
	}
	if s := os.Getenv("CHATSYNC_SOCKET"); s != "" {
		return s, "from $CHATSYNC_SOCKET", "", nil
	}
	cfg, err := g.loadConfig()
	if err != nil {
		if sock := socketDespiteErrors(g.configFile()); sock != "" {
			return sock, "daemon.socket of " + g.configFile(), "", nil // the mistakes are elsewhere; the daemon will say what they are
		}
		return "", "", "", fmt.Errorf("find the control socket: %v (or pass --socket)", err)
	}
	from = "daemon.socket of " + cfg.Path
	if cfg.Daemon.Socket == config.DefaultSocket(config.IsSystemConfig(cfg.Path), cfg.Daemon.StateDir) {
		from = "the default: " + cfg.Path + " sets no daemon.socket"
	}
	return cfg.Daemon.Socket, from, cfg.Daemon.StateDir, nil
}

// localClient returns a client of the daemon's control socket.
func (g *globals) localClient() (*localclient.Client, error) {
	path, from, stateDir, err := g.socketPathFrom()
	if err != nil {
		return nil, err
	}
	dial := g.dial
	if dial == nil {
		dial = func(ctx context.Context, path string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	return &localclient.Client{Socket: path, AccountAddress: g.account, Dial: func(ctx context.Context) (net.Conn, error) {
		conn, err := dial(ctx, path)
		if err != nil {
			return nil, &socketError{path: path, from: from, stateDir: stateDir, err: err}
		}
		return conn, nil
	}}, nil
}

// socketError is a failure to connect to the control socket, with where
// its path came from.
type socketError struct {
	path, from, stateDir string
	err                  error
}

func (e *socketError) Error() string { return e.err.Error() }
func (e *socketError) Unwrap() error { return e.err }

// explain says in one line what a failure to connect to the socket means
// and what to do.
func (e *socketError) explain() error {
	switch {
	case errors.Is(e.err, syscall.ECONNREFUSED):
		return fmt.Errorf("chatsync is not running (nothing answers on %s, a socket left by a daemon that stopped): start it with `chatsync run` or `chatsync service start`", e.path)
	case errors.Is(e.err, fs.ErrPermission):
		return errors.New(permissionDenied(e.path))
	case errors.Is(e.err, fs.ErrNotExist):
		return errors.New(noSocket(e.path, e.from, e.stateDir))
	}
	return fmt.Errorf("cannot connect to the control socket %s: %v: is another program using that path? (see daemon.socket in the config, or pass --socket)", e.path, e.err)
}

// permissionDenied says whose the socket (or the directory closed to us)
// is, and how to be let in.
func permissionDenied(path string) string {
	me := "you"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	target, what := path, "the control socket"
	fi, err := os.Stat(path)
	for dir := filepath.Dir(path); err != nil && dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		// The socket cannot even be looked at: a directory on the way is
		// closed to this user. Name the nearest one that can be.
		if fi, err = os.Stat(dir); err == nil {
			target, what = dir, "the directory of the control socket"
		}
	}
	if err != nil {
		return fmt.Sprintf("permission denied on the control socket %s: run chatsync as the user that runs the daemon", path)
	}
	owner, group := fileOwner(fi)
	mode := fi.Mode().Perm()
	asOwner := "sudo -u " + owner + " chatsync ..."
	if owner == "root" {
		asOwner = "sudo chatsync ..."
	}
	if what == "the control socket" && mode&0o060 == 0o060 && group != "" {
		return fmt.Sprintf("permission denied on the control socket %s: it is %s's, open to the group %s (mode %04o): join that group (sudo usermod -aG %s %s, then log in again), or run chatsync as %s",
			path, owner, group, mode, group, me, owner)
	}
	if what != "the control socket" {
		return fmt.Sprintf("permission denied on the control socket %s: %s %s is %s's (mode %04o) and closed to %s: run chatsync as %s (%s), or have that daemon put its socket where you can reach it (daemon.socket) with socket_group = \"chatsync\" in [daemon] of its config, and join that group",
			path, what, target, owner, mode, me, owner, asOwner)
	}
	return fmt.Sprintf("permission denied on the control socket %s: it is %s's (mode %04o, owner only): run chatsync as %s (%s), or set socket_group = \"chatsync\" in [daemon] of the daemon's config, restart it, and join that group (sudo usermod -aG chatsync %s, then log in again)",
		path, owner, mode, owner, asOwner, me)
}

// noSocket says that no socket is at path, where the daemon puts its
// socket, and where one is if there is one elsewhere.
func noSocket(path, from, stateDir string) string {
	runtimeDir := os.Getenv("XDG_RUNTIME_DIR")
	if stateDir == "" {
		stateDir = config.DefaultStateDir(false)
	}
	stateSock := filepath.Join(stateDir, "chatsync.sock")
	userRuntimeSock := filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "chatsync.sock")
	var candidates []string
	if runtime.GOOS == "linux" {
		candidates = append(candidates, "/run/chatsync/chatsync.sock")
		if runtimeDir != "" {
			candidates = append(candidates, filepath.Join(runtimeDir, "chatsync.sock"))
		} else {
			candidates = append(candidates, userRuntimeSock)
		}
	}
	candidates = append(candidates, stateSock)
	for _, c := range candidates {
		if c == path {
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.Mode().Type() == os.ModeSocket {
			why := ""
			switch {
			case c == stateSock && runtimeDir != "":
				why = " ($XDG_RUNTIME_DIR is set here but was not for the daemon)"
			case c == userRuntimeSock && runtimeDir == "":
				why = " ($XDG_RUNTIME_DIR is not set here but was for the daemon)"
			}
			return fmt.Sprintf("no control socket at %s (%s), but there is one at %s%s: pass --socket %s, or set daemon.socket in the config so both sides agree",
				path, from, c, why, c)
		}
	}
	here := "$XDG_RUNTIME_DIR is " + runtimeDir + " here"
	if runtimeDir == "" {
		here = "$XDG_RUNTIME_DIR is not set here, which means " + stateSock
	}
	return fmt.Sprintf("no control socket at %s (%s): start chatsync with `chatsync run` or `chatsync service start`; if it is running, its socket is elsewhere: the daemon listens on daemon.socket of its config, by default $XDG_RUNTIME_DIR/chatsync.sock (%s), so $XDG_RUNTIME_DIR set on one side only puts the two in different places: set daemon.socket in the config, or pass --socket",
		path, from, here)
}

// daemonError turns a control-socket error into one line that says what to
// do.
func daemonError(err error) error {
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*socketError](err); ok {
		return se.explain()
	}
	if nr, ok := errors.AsType[*localclient.NotRunningError](err); ok {
		return (&socketError{path: nr.Socket, from: "", err: nr.Err}).explain()
	}
	if ae, ok := errors.AsType[*localclient.APIError](err); ok {
		switch {
		case ae.StatusCode == http.StatusForbidden:
			return fmt.Errorf("the daemon refused this request: %s", ae.Message)
		case ae.StatusCode == http.StatusBadRequest && strings.Contains(ae.Message, "accounts"):
			return usageError{errors.New(ae.Message)}
		}
		return errors.New(oneLine(ae.Message))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("the daemon did not answer in time: see its log (journalctl --user -u chatsync)")
	}
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ago says how long ago t was, "never" for the zero time.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + shortDuration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return shortDuration(d) + " ago"
}

// shortDuration writes d with its largest unit or two: "45s", "2m",
// "1h5m", "3d4h".
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

// money writes an amount as the server wrote it with two decimals, or as
// it is when it is not a number.
func money(s string) string {
	if s == "" {
		return "-"
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fileOwner names the owner and group of a file ("uid 1001" when there is
// no such user), "" for both where the system does not say (Windows). The
// fields are read by name so that this file builds everywhere.
func fileOwner(fi os.FileInfo) (owner, group string) {
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "its owner", ""
	}
	uid, gid := v.FieldByName("Uid"), v.FieldByName("Gid")
	if !uid.IsValid() || !uid.CanUint() || !gid.IsValid() || !gid.CanUint() {
		return "its owner", ""
	}
	u, g := strconv.FormatUint(uid.Uint(), 10), strconv.FormatUint(gid.Uint(), 10)
	owner, group = "uid "+u, "gid "+g
	if usr, err := user.LookupId(u); err == nil {
		owner = usr.Username
	}
	if grp, err := user.LookupGroupId(g); err == nil {
		group = grp.Name
	}
	return owner, group
}
