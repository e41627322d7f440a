package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/chatsync/chatsync/sync/localclient"
)

// notRunningMessage is what every command that needs the daemon says when
// nothing answers on the socket.
const notRunningMessage = "chatsync is not running: start it with `chatsync run` or `chatsync service start`"

// errNotRunning is returned when the daemon does not answer.
var errNotRunning = errors.New(notRunningMessage)

// socketPath is --socket, $CHATSYNC_SOCKET, or daemon.socket of the config.
func (g *globals) socketPath() (string, error) {
	if g.socket != "" {
		return g.socket, nil
	}
	if s := os.Getenv("CHATSYNC_SOCKET"); s != "" {
		return s, nil
	}
	cfg, err := g.loadConfig()
	if err != nil {
		if sock := socketDespiteErrors(g.configFile()); sock != "" {
			return sock, nil // the mistakes are elsewhere; the daemon will say what they are
		}
		return "", fmt.Errorf("find the control socket: %v (or pass --socket)", err)
	}
	return cfg.Daemon.Socket, nil
}

// localClient returns a client of the daemon's control socket.
func (g *globals) localClient() (*localclient.Client, error) {
	path, err := g.socketPath()
	if err != nil {
		return nil, err
	}
	return &localclient.Client{Socket: path, AccountAddress: g.account}, nil
}

// daemonError turns a control-socket error into one line that says what to
// do.
func daemonError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*localclient.NotRunningError](err); ok {
		return errNotRunning
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
