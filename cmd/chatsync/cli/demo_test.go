package cli

import (
	"strings"
	"testing"
)

// The README's first command works for every store format: device A's
// store (a JSON directory, or a Blink database the demo writes into as the
// client does) and device B's directory end with the same messages, and
// the journal holds ciphertext only.
func TestDemoEndsWithTheSameMessagesOnBothDevicesForEveryFormat(t *testing.T) {
	for _, format := range []string{"json", "blink-qt", "blink-cocoa"} {
		t.Run(format, func(t *testing.T) {
			code, stdout, stderr := chatsync(t, "demo", "--format", format, "--timeout", "30s")
			if code != 0 {
				t.Fatalf("demo --format %s exited %d\nstdout:\n%s\nstderr:\n%s", format, code, stdout, stderr)
			}
			for _, want := range []string{
				"(" + format + ")",
				"-> all 5 are in B's store, identical",
				"-> A follows: edited and deleted",
				"The journal on the server: ",
				" rows (7 message versions, ",
				"Done: A and B hold the same 4 messages.",
			} {
				if !strings.Contains(stdout, want) {
					t.Errorf("demo --format %s: output lacks %q:\n%s", format, want, stdout)
				}
			}
			if strings.Contains(stderr, "level=WARN") || strings.Contains(stderr, "level=ERROR") {
				t.Errorf("demo --format %s logged a warning a new user would take for a problem:\n%s", format, stderr)
			}
		})
	}
}

func TestDemoRefusesAnUnknownFormat(t *testing.T) {
	code, _, stderr := chatsync(t, "demo", "--format", "sqlite")
	if code != 2 || !strings.Contains(stderr, "json, blink-qt or blink-cocoa") {
		t.Errorf("demo --format sqlite: exit %d, stderr %q; want 2 and the formats named", code, stderr)
	}
}
