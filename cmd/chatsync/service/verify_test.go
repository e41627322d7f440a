package service

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verify runs systemd-analyze verify on a unit whose ExecStart binary
// exists, and fails on anything it reports about the unit.
func verify(t *testing.T, analyze, unit, executable string) {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "chatsync")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit = strings.ReplaceAll(unit, `"`+executable+`"`, `"`+exe+`"`)
	path := filepath.Join(dir, "chatsync.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "chatsync.service") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
