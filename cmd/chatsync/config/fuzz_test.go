package config

import (
	"strings"
	"testing"
)

// FuzzParseConfig feeds arbitrary text to Parse: it must never panic, must
// return either a config or at least one problem, and every problem must
// say something.
func FuzzParseConfig(f *testing.F) {
	f.Add("[daemon]\nstate_dir = \"/tmp/s\"\nlog_level = \"debug\"\n\n[[account]]\naddress = \"alice@example.com\"\nsettings_url = \"https://blink.sipthor.net/settings.phtml\"\npassword = \"x\"\nstore = \"~/chat\"\nkey_file = \"/nonexistent/alice.key\"\npoll_interval = \"30s\"\n")
	f.Add("[[account]]\naddress = \"a@b\"\npoll_interval = 5\nmax_message_bytes = -1\nreplicate_deletes = \"yes\"\n")
	f.Add("daemon = 3\naccount = \"x\"\n")
	f.Add("[daemon\n")
	f.Add("[[account]]\n[[account]]\naddress = \"sip:bob@example.com\"\nsettings_url = \"ftp://x\"\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, problems := Parse("/nonexistent/chatsync/config.toml", []byte(text))
		if cfg == nil && len(problems) == 0 {
			t.Fatal("no config and no problem")
		}
		for _, p := range problems {
			if strings.TrimSpace(p.Message) == "" {
				t.Fatalf("a problem without a message: %+v", p)
			}
			if p.Line < 0 {
				t.Fatalf("a problem on line %d", p.Line)
			}
		}
	})
}
