package daemon

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatsync/chatsync/crypto/seal"
)

// The log at debug level, through a full round of replication (a message
// written on one device, pushed, polled and written on the other, then
// edited and deleted), holds no message body, no msgid, no password and no
// key material.
func TestDebugLogHoldsNoBodiesMsgidsPasswordsOrKeys(t *testing.T) {
	const (
		password = "pw-Zq8vLx3sTt"
		msgid    = "MSGID-7f3a9c1e-secret"
		body     = "BODY-the-quick-brown-fox"
		edited   = "BODY-edited-on-b"
	)
	srv := newTestServer(t, map[string]string{"alice@example.com": password})
	dirA, dirB := shortTempDir(t), shortTempDir(t)
	a := newTestAccount(t, dirA, "alice@example.com", password)
	b := newTestAccount(t, dirB, "alice@example.com", password)
	keyText, err := os.ReadFile(a.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.keyFile, keyText, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{dirA, dirB} {
		acct := a
		if dir == dirB {
			acct = b
		}
		if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(daemonTable(dir, "debug")+acct.block(srv.url, "1s")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	da := startTestDaemon(t, filepath.Join(dirA, "config.toml"))
	db := startTestDaemon(t, filepath.Join(dirB, "config.toml"))

	a.write(t, "carol/m.json", msgid, body)
	received := func(want string) func() bool {
		return func() bool {
			found := false
			filepath.WalkDir(b.store, func(p string, de os.DirEntry, err error) error {
				if err == nil && !de.IsDir() {
					data, _ := os.ReadFile(p)
					found = found || strings.Contains(string(data), want)
				}
				return nil
			})
			return found
		}
	}
	waitUntil(t, 20*time.Second, "the message on device B", received(body), da.log, db.log)
	// B writes the file before it commits the version; wait for the commit,
	// or the edit below could be taken for B's own write.
	waitUntil(t, 20*time.Second, "B to record the message", func() bool { st, _ := db.account(b.addr); return st.Received == 1 }, db.log)
	// Edit the file B wrote, where B wrote it.
	var bPath string
	filepath.WalkDir(b.store, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			bPath = p
		}
		return nil
	})
	rel, err := filepath.Rel(b.store, bPath)
	if err != nil {
		t.Fatal(err)
	}
	b.write(t, rel, msgid, edited)
	waitUntil(t, 20*time.Second, "the edit back on device A", func() bool {
		data, _ := os.ReadFile(filepath.Join(a.store, "carol", "m.json"))
		return strings.Contains(string(data), edited)
	}, da.log, db.log)
	// And a delete on A reaches B.
	if err := os.Remove(filepath.Join(a.store, "carol", "m.json")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the delete on device B", func() bool {
		_, err := os.Stat(bPath)
		return os.IsNotExist(err)
	}, da.log, db.log)
	da.stop()
	db.stop()

	kr, err := seal.LoadKeyring(a.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"body": body, "edited body": edited, "msgid": msgid, "password": password}
	for i, line := range strings.Split(strings.TrimSpace(string(keyText)), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			secrets["key file line "+string(rune('1'+i))] = line
		}
	}
	for i, k := range kr.Keys() {
		n := string(rune('1' + i))
		secrets["key (base64) "+n] = base64.StdEncoding.EncodeToString(k[:])
		secrets["key (base64url) "+n] = base64.RawURLEncoding.EncodeToString(k[:])
		secrets["key (hex) "+n] = hex.EncodeToString(k[:])
		secrets["key (export line) "+n] = seal.Export(k)
	}
	for name, log := range map[string]string{"A": da.log.String(), "B": db.log.String()} {
		if !strings.Contains(log, "level=DEBUG msg=\"account started\"") {
			t.Errorf("device %s logged nothing at debug level; the test proves nothing:\n%s", name, log)
		}
		for what, s := range secrets {
			if strings.Contains(log, s) {
				t.Errorf("device %s's log holds the %s %q:\n%s", name, what, s, log)
			}
		}
	}
}
