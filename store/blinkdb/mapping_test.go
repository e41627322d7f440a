package blinkdb

import "testing"

// Every time shape a device may send becomes the clients' naive UTC text
// with microseconds; anything else is refused, not stored half-right.
func TestClientTimeAcceptsTheWireShapesAndWritesTheClientsLayout(t *testing.T) {
	for in, want := range map[string]string{
		"2026-01-28 10:11:12.123456":       "2026-01-28 10:11:12.123456",
		"2026-01-28 10:11:12":              "2026-01-28 10:11:12.000000",
		"2026-01-28T11:11:12.123456+01:00": "2026-01-28 10:11:12.123456",
		"2026-01-28T10:11:12Z":             "2026-01-28 10:11:12.000000",
		"2026-01-28T10:11:12.5":            "2026-01-28 10:11:12.500000",
	} {
		if got, err := clientTime(in); err != nil || got != want {
			t.Errorf("clientTime(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-01-28"} {
		if _, err := clientTime(bad); err == nil {
			t.Errorf("clientTime(%q) accepted", bad)
		}
	}
	if got := isoTimestamp("2026-01-28 10:11:12.000000"); got != "2026-01-28T10:11:12+00:00" {
		t.Errorf("isoTimestamp without fraction = %q, want Python's isoformat 2026-01-28T10:11:12+00:00", got)
	}
}

func TestParseIdentityReadsTheClientsSpellings(t *testing.T) {
	for in, want := range map[string][2]string{
		"Bob <bob@example.com>":   {"Bob", "bob@example.com"},
		`"Bob B" <sip:bob@x.org>`: {"Bob B", "bob@x.org"},
		"None <bob@example.com>":  {"", "bob@example.com"},
		"bob@example.com":         {"", "bob@example.com"},
		"sip:bob@example.com":     {"", "bob@example.com"},
		"<bob@example.com>":       {"", "bob@example.com"},
	} {
		if name, addr := parseIdentity(in); name != want[0] || addr != want[1] {
			t.Errorf("parseIdentity(%q) = %q, %q; want %q, %q", in, name, addr, want[0], want[1])
		}
	}
}
