package main

import (
	"bytes"
	"testing"
)

func TestVersionFlagPrintsTheStampedVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "1.2.3-test"
	var out, errb bytes.Buffer
	if err := run([]string{"--version"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "chatsync-server 1.2.3-test\n" {
		t.Errorf("--version printed %q", out.String())
	}
}
