package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/sync/account"
)

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration file",
		Args:  noArgs,
		RunE:  func(c *cobra.Command, args []string) error { return usagef("config needs a subcommand: check") },
	}
	var online, asJSON bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the config and print every problem with its line",
		Long: `check reads the config as the daemon would, without contacting any server,
and prints every problem with its line. Files the config names that do not
exist yet (a key or password file still to be made) are warnings; everything
else is an error and makes check exit 1.

With --online it also makes one real request per account (get_identity) with
the account's credentials, and says for each account "ok" or what failed and
what to do: a wrong password, a settings URL that is wrong (404) or that is
not the SIP Account API, a server that does not speak HTTP, or a network that
does not reach it. Any failure makes check exit 1.

--json prints the problems (and the online results) as one JSON object:
{"config", "ok", "accounts", "problems": [{"line", "key", "message",
"warning"}], "online": [{"account", "ok", "kind", "message"}]}.`,
		Example: "  chatsync config check\n  chatsync config check --online\n  chatsync config check --config ./config.toml --json",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return configCheck(c.Context(), g, online, asJSON)
		},
	}
	check.Flags().BoolVar(&online, "online", false, "also make one real request per account with its credentials")
	check.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(check)
	return c
}

// checkReport is what `config check --json` prints. Its field names are
// stable: fields may be added, never renamed.
type checkReport struct {
	Config   string         `json:"config"`
	OK       bool           `json:"ok"`
	Accounts int            `json:"accounts"`
	Problems []checkProblem `json:"problems"`
	// Online is present with --online, one result per account; it is
	// empty when the config has errors (nothing is sent then).
	Online []onlineResult `json:"online,omitempty"`
}

type checkProblem struct {
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Warning bool   `json:"warning"`
}

// onlineResult is the outcome of one real request for one account.
type onlineResult struct {
	Account string `json:"account"`
	OK      bool   `json:"ok"`
	// Kind classifies a failure: auth, domain, settings_url, not_api,
	// not_http, tls, network, server, rate_limited, rejected or config.
	Kind string `json:"kind,omitempty"`
	// Message says what failed and what to do, in one line.
	Message string `json:"message,omitempty"`
}

func configCheck(ctx context.Context, g *globals, online, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	path := g.configFile()
	cfg, problems, err := config.Load(path)
	var cerr *config.Error
	if err != nil && !errors.As(err, &cerr) {
		// The file could not be read at all: Load's error says which.
		if asJSON {
			json.NewEncoder(g.stdout).Encode(checkReport{Config: path, Problems: []checkProblem{{Message: err.Error()}}})
		}
		return err
	}
	rep := checkReport{Config: path, Problems: []checkProblem{}}
	if cfg != nil && cerr == nil {
		rep.Config = cfg.Path
		rep.Accounts = len(cfg.Accounts)
	}
	for _, p := range problems {
		rep.Problems = append(rep.Problems, checkProblem{Line: p.Line, Key: p.Key, Message: p.Message, Warning: p.Warning})
		if !asJSON {
			fmt.Fprintf(g.stdout, "%s: %s\n", path, p)
		}
	}
	failed := 0
	if online && cerr == nil {
		for _, a := range cfg.Accounts {
			r := checkOnline(ctx, g, cfg.Path, a)
			rep.Online = append(rep.Online, r)
			if !r.OK {
				failed++
			}
			if !asJSON {
				if r.OK {
					fmt.Fprintf(g.stdout, "%s: ok (the server accepted the password)\n", a.Address)
				} else {
					fmt.Fprintln(g.stdout, r.Message)
				}
			}
		}
	}
	rep.OK = cerr == nil && failed == 0
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	switch {
	case cerr != nil:
		more := ""
		if online {
			more = " (nothing was sent to any server)"
		}
		return fmt.Errorf("%d error(s) in %s%s: fix them and run `%s` again", len(cerr.Errors()), path, more, checkCommand(g, online))
	case failed > 0:
		return fmt.Errorf("%d of %d account(s) failed the online check (what to do is said above)", failed, len(cfg.Accounts))
	}
	if !asJSON {
		fmt.Fprintf(g.stdout, "%s: ok (%d account(s), %d warning(s))\n", cfg.Path, len(cfg.Accounts), len(problems))
	}
	return nil
}

// checkCommand is the `config check` command line to run again, with
// --config when the config is not the default one.
func checkCommand(g *globals, online bool) string {
	s := "chatsync config check"
	if online {
		s += " --online"
	}
	if g.configPath != "" && g.configPath != config.DefaultPath() {
		s += " --config " + shellQuote(g.configPath)
	}
	return s
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_~", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// onlineTimeout bounds the one request of an online check.
var onlineTimeout = 20 * time.Second

// checkOnline makes one real, read-only request (get_identity) for the
// account with its credentials, and words the outcome.
func checkOnline(ctx context.Context, g *globals, cfgPath string, a config.Account) onlineResult {
	res := onlineResult{Account: a.Address}
	rerun := checkCommand(g, true)
	if a.Password == "" && a.WebPassword == "" {
		res.Kind = "config"
		res.Message = fmt.Sprintf("%s: no password: write it into %s (mode 0600), then run `%s`", a.Address, a.PasswordFile, rerun)
		return res
	}
	client, err := account.New(account.Config{
		Address: a.Address, SettingsURL: a.SettingsURL, Password: a.Password, WebPassword: a.WebPassword,
		CAFile: a.CAFile, Timeout: onlineTimeout, UserAgent: "chatsync/" + g.version,
	})
	if err != nil {
		res.Kind = "config"
		res.Message = fmt.Sprintf("%s: %v: fix %s, then run `%s`", a.Address, err, cfgPath, rerun)
		return res
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, onlineTimeout+5*time.Second)
	defer cancel()
	_, err = client.Identity(ctx)
	if err == nil {
		res.OK = true
		return res
	}
	res.Kind, res.Message = describeOnlineError(a, cfgPath, rerun, err)
	return res
}

// describeOnlineError says in one line what a failed request means for
// the account and what to do about it.
func describeOnlineError(a config.Account, cfgPath, rerun string, err error) (kind, msg string) {
	u, _ := url.Parse(a.SettingsURL)
	host := a.SettingsURL
	if u != nil && u.Host != "" {
		host = u.Host
	}
	then := fmt.Sprintf(", then run `%s`", rerun)
	var e *account.Error
	if !errors.As(err, &e) {
		return "network", fmt.Sprintf("%s: %v: check the network%s", a.Address, err, then)
	}
	switch e.Kind {
	case account.KindAuth:
		if strings.Contains(e.Message, "does not serve domain") {
			return "domain", fmt.Sprintf("%s: the server at %s does not serve this account's domain: check the address and settings_url in %s%s", a.Address, host, cfgPath, then)
		}
		if e.StatusCode == 401 && strings.Contains(e.Message, "without a digest challenge") {
			return "not_api", fmt.Sprintf("%s: %s answered 401 without a digest challenge: it is not the SIP Account API; check settings_url in %s%s", a.Address, a.SettingsURL, cfgPath, then)
		}
		where := "password_file " + a.PasswordFile
		switch {
		case a.WebPassword != "" && a.WebPasswordFile != "":
			where = "web_password_file " + a.WebPasswordFile + " (it is used instead of the password when set)"
		case a.WebPassword != "":
			where = "web_password in " + cfgPath
		case a.PasswordFile == "":
			where = "password in " + cfgPath
		}
		return "auth", fmt.Sprintf("%s: the server at %s refused the password: put the right password into %s%s", a.Address, host, where, then)
	case account.KindServer:
		switch c := e.StatusCode; {
		case c == 404:
			return "settings_url", fmt.Sprintf("%s: %s answered 404 Not Found: the settings URL is wrong (it usually ends in /settings.phtml); fix settings_url in %s%s", a.Address, a.SettingsURL, cfgPath, then)
		case c >= 300 && c < 400:
			return "settings_url", fmt.Sprintf("%s: %s (in %s)%s", a.Address, e.Message, cfgPath, then)
		case c >= 400 && c < 500:
			return "settings_url", fmt.Sprintf("%s: %s answered HTTP %d: the settings URL is probably wrong; fix settings_url in %s%s", a.Address, a.SettingsURL, c, cfgPath, then)
		}
		return "server", fmt.Sprintf("%s: the server at %s failed (%s): try again later, and tell its administrator if it lasts", a.Address, host, e.Message)
	case account.KindMalformed:
		return "not_api", fmt.Sprintf("%s: %s is not the SIP Account API (%s): check settings_url in %s%s", a.Address, a.SettingsURL, strings.TrimSuffix(e.Message, ": check settings_url"), cfgPath, then)
	case account.KindRateLimited:
		return "rate_limited", fmt.Sprintf("%s: the server at %s asks to slow down (HTTP 429): try again in a few minutes", a.Address, host)
	case account.KindRejected:
		return "rejected", fmt.Sprintf("%s: %s%s", a.Address, e.Message, then)
	case account.KindTransport:
		cause := transportCause(e)
		if untrusted(e) {
			return "tls", fmt.Sprintf("%s: the TLS certificate of %s is not trusted (%s): check the host name of settings_url, or set ca_file in %s if the server has its own CA%s", a.Address, host, cause, cfgPath, then)
		}
		if notHTTP(e) {
			return "not_http", fmt.Sprintf("%s: %s does not answer as an HTTP(S) server (%s): check the scheme (http or https) and the port of settings_url in %s%s", a.Address, host, cause, cfgPath, then)
		}
		return "network", fmt.Sprintf("%s: cannot reach %s (%s): check the network and the host name and port of settings_url in %s%s", a.Address, host, cause, cfgPath, then)
	}
	return "server", fmt.Sprintf("%s: %v%s", a.Address, e, then)
}

// transportCause is the reason a request did not complete, without the
// request's URL (it holds the query).
func transportCause(e *account.Error) string {
	var dns *net.DNSError
	var ue *url.Error
	switch {
	case errors.As(e, &dns):
		if dns.IsNotFound {
			return "no such host"
		}
		return "DNS: " + dns.Err
	case errors.Is(e, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(e, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", onlineTimeout)
	case strings.Contains(e.Error(), "readLoopPeekFailLocked") || strings.Contains(e.Error(), "malformed HTTP"):
		// Go's words for a reply that is not HTTP.
		return "its reply is not HTTP"
	case errors.As(e, &ue):
		return ue.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Message
}

// untrusted reports whether the server's TLS certificate was refused.
func untrusted(e *account.Error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(e, &cv) || errors.As(e, &ua) || errors.As(e, &he) || errors.As(e, &ci)
}

// notHTTP reports whether the far end took the connection but did not
// answer as HTTP(S).
func notHTTP(e *account.Error) bool {
	var rh tls.RecordHeaderError
	if errors.As(e, &rh) {
		return true
	}
	var op *net.OpError
	if errors.As(e, &op) && op.Op == "dial" {
		return false
	}
	s := e.Error()
	for _, sign := range []string{"malformed HTTP", "server gave HTTP response to HTTPS client", "first record does not look like a TLS handshake",
		"readLoopPeekFailLocked", "EOF", "connection reset by peer"} {
		if strings.Contains(s, sign) {
			return true
		}
	}
	return false
}
