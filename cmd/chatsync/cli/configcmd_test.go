package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatsync/chatsync/crypto/seal"
)

// onlineConfig writes a valid config for testAccount with the password
// pw and settingsURL, and returns its path.
func onlineConfig(t *testing.T, settingsURL, pw string) string {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "alice.password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "alice.key")
	if _, err := seal.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf("[daemon]\nstate_dir = %s\n\n[[account]]\naddress = %s\nsettings_url = %s\npassword_file = %s\nstore = %s\nkey_file = %s\n",
		tomlString(filepath.Join(dir, "state")), tomlString(testAccount), tomlString(settingsURL), tomlString(pwFile), tomlString(store), tomlString(key))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkOnlineLines runs config check --online and returns its exit code
// and the account's line.
func checkOnlineLine(t *testing.T, cfg string) (int, string) {
	t.Helper()
	code, out, errOut := chatsync(t, "config", "check", "--online", "--config", cfg)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, testAccount+": ") {
			return code, l
		}
	}
	t.Fatalf("no line for %s (exit %d):\n%s%s", testAccount, code, out, errOut)
	return 0, ""
}

func TestConfigCheckOnlineSaysA404SettingsURLIsWrong(t *testing.T) {
	url := strings.TrimSuffix(startServer(t, false), "/settings.phtml") + "/wrong.phtml"
	cfg := onlineConfig(t, url, "pw-alice")
	code, line := checkOnlineLine(t, cfg)
	if code != ExitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	want := testAccount + ": " + url + " answered 404 Not Found: the settings URL is wrong (it usually ends in /settings.phtml); fix settings_url in " + cfg +
		", then run `chatsync config check --online --config " + cfg + "`"
	if line != want {
		t.Errorf("config check said\n%s\nwant\n%s", line, want)
	}
	_, _, errOut := chatsync(t, "config", "check", "--online", "--config", cfg)
	if want := "chatsync: 1 of 1 account(s) failed the online check (what to do is said above)"; soleLine(t, errOut) != want {
		t.Errorf("stderr\n%s\nwant\n%s", errOut, want)
	}
}

func TestInitWithA404SettingsURLSaysTheURLIsWrong(t *testing.T) {
	url := strings.TrimSuffix(startServer(t, false), "/settings.phtml") + "/settings.php"
	_, cfg := initHome(t)
	code, out, errOut := chatsyncPiped(t, "pw-alice\n", "init", "--config", cfg, "--address", testAccount,
		"--settings-url", url, "--password-stdin", "--first-device", "--store", filepath.Join(t.TempDir(), "store"))
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	if line := soleLine(t, errOut); !strings.Contains(line, url+" answered 404 Not Found: the settings URL is wrong") {
		t.Errorf("init said %q", line)
	}
}

func TestConfigCheckOnlineSaysTheServerRefusedThePassword(t *testing.T) {
	cfg := onlineConfig(t, startServer(t, false), "wrong")
	code, line := checkOnlineLine(t, cfg)
	if code != ExitFailure || !strings.Contains(line, " refused the password: put the right password into password_file "+filepath.Join(filepath.Dir(cfg), "alice.password")+", then run `chatsync config check --online --config "+cfg+"`") {
		t.Errorf("exit %d, line %q", code, line)
	}
}

func TestConfigCheckOnlineNamesTheHostItCannotReach(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close() // nothing listens there now
	url := "http://" + host + "/settings.phtml"
	cfg := onlineConfig(t, url, "pw-alice")
	code, line := checkOnlineLine(t, cfg)
	want := testAccount + ": cannot reach " + host + " (connection refused): check the network and the host name and port of settings_url in " + cfg +
		", then run `chatsync config check --online --config " + cfg + "`"
	if code != ExitFailure || line != want {
		t.Errorf("exit %d, said\n%s\nwant\n%s", code, line, want)
	}
	if strings.Contains(line, "realm=") || strings.Contains(line, "action=") {
		t.Errorf("the line shows the request's query: %s", line)
	}
}

func TestConfigCheckOnlineSaysAServerThatIsNotHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			c.Close()
		}
	}()
	host := ln.Addr().String()
	cfg := onlineConfig(t, "http://"+host+"/settings.phtml", "pw-alice")
	code, line := checkOnlineLine(t, cfg)
	if code != ExitFailure || !strings.HasPrefix(line, testAccount+": "+host+" does not answer as an HTTP(S) server (") ||
		!strings.HasSuffix(line, "): check the scheme (http or https) and the port of settings_url in "+cfg+", then run `chatsync config check --online --config "+cfg+"`") {
		t.Errorf("exit %d, said %q", code, line)
	}
}

func TestConfigCheckOnlineSaysAnHTMLPageIsNotTheAPI(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				c.Read(buf)
				body := "<!DOCTYPE html><html><body>Welcome</body></html>"
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
				c.Close()
			}()
		}
	}()
	url := "http://" + ln.Addr().String() + "/"
	cfg := onlineConfig(t, url, "pw-alice")
	code, line := checkOnlineLine(t, cfg)
	if code != ExitFailure || !strings.HasPrefix(line, testAccount+": "+url+" is not the SIP Account API (") {
		t.Errorf("exit %d, said %q", code, line)
	}
}

func TestConfigCheckJSONDecodes(t *testing.T) {
	good := onlineConfig(t, startServer(t, false), "pw-alice")
	bad := onlineConfig(t, strings.TrimSuffix(startServer(t, false), "/settings.phtml")+"/nope", "pw-alice")
	broken := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(broken, []byte("[[account]]\naddress = \"alice\"\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type report struct {
		Config   string `json:"config"`
		OK       bool   `json:"ok"`
		Accounts int    `json:"accounts"`
		Problems []struct {
			Line    int    `json:"line"`
			Key     string `json:"key"`
			Message string `json:"message"`
			Warning bool   `json:"warning"`
		} `json:"problems"`
		Online []struct {
			Account string `json:"account"`
			OK      bool   `json:"ok"`
			Kind    string `json:"kind"`
			Message string `json:"message"`
		} `json:"online"`
	}
	decode := func(t *testing.T, out string) report {
		t.Helper()
		var r report
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decode: %v\n%s", err, out)
		}
		return r
	}

	t.Run("ok", func(t *testing.T) {
		code, out, errOut := chatsync(t, "config", "check", "--online", "--json", "--config", good)
		r := decode(t, out)
		if code != ExitOK || errOut != "" || !r.OK || r.Config != good || r.Accounts != 1 || len(r.Problems) != 0 ||
			len(r.Online) != 1 || r.Online[0].Account != testAccount || !r.Online[0].OK || r.Online[0].Kind != "" {
			t.Errorf("exit %d, %+v\n%s", code, r, errOut)
		}
	})
	t.Run("offline", func(t *testing.T) {
		code, out, _ := chatsync(t, "config", "check", "--json", "--config", good)
		if r := decode(t, out); code != ExitOK || !r.OK || r.Online != nil {
			t.Errorf("exit %d, %+v", code, r)
		}
	})
	t.Run("404", func(t *testing.T) {
		code, out, errOut := chatsync(t, "config", "check", "--online", "--json", "--config", bad)
		r := decode(t, out)
		if code != ExitFailure || r.OK || len(r.Online) != 1 || r.Online[0].OK || r.Online[0].Kind != "settings_url" ||
			!strings.Contains(r.Online[0].Message, "answered 404 Not Found: the settings URL is wrong") {
			t.Errorf("exit %d, %+v", code, r)
		}
		if !strings.HasPrefix(soleLine(t, errOut), "chatsync: 1 of 1 account(s) failed the online check") {
			t.Errorf("stderr %q", errOut)
		}
	})
	t.Run("errors", func(t *testing.T) {
		code, out, errOut := chatsync(t, "config", "check", "--online", "--json", "--config", broken)
		r := decode(t, out)
		if code != ExitFailure || r.OK || len(r.Problems) == 0 || r.Online != nil {
			t.Errorf("exit %d, %+v", code, r)
		}
		var unknown bool
		for _, p := range r.Problems {
			if p.Key == "account[1].bogus" && p.Line == 3 && !p.Warning {
				unknown = true
			}
		}
		if !unknown {
			t.Errorf("no problem for account[1].bogus on line 3: %+v", r.Problems)
		}
		if line := soleLine(t, errOut); !strings.Contains(line, "error(s) in "+broken+" (nothing was sent to any server): fix them and run `chatsync config check --online --config "+broken+"` again") {
			t.Errorf("stderr %q", line)
		}
	})
}

func TestConfigCheckOnlineSaysTheCertificateIsNotTrusted(t *testing.T) {
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(hs.Close)
	host := strings.TrimPrefix(hs.URL, "https://")
	cfg := onlineConfig(t, hs.URL+"/settings.phtml", "pw-alice")
	code, line := checkOnlineLine(t, cfg)
	if code != ExitFailure || !strings.HasPrefix(line, testAccount+": the TLS certificate of "+host+" is not trusted (") ||
		!strings.HasSuffix(line, "): check the host name of settings_url, or set ca_file in "+cfg+" if the server has its own CA, then run `chatsync config check --online --config "+cfg+"`") {
		t.Errorf("exit %d, said %q", code, line)
	}
}
