// Command mangen writes chatsync's man pages and shell completions from its
// cobra command tree, for the .deb and .rpm (packaging/package.sh runs it):
//
//	go run . -version 1.2.3 -out DIR
//
// writes DIR/man1/chatsync*.1 (one page per command, as cobra/doc makes
// them) and DIR/completions/chatsync.bash, _chatsync (zsh) and
// chatsync.fish, the scripts `chatsync completion bash|zsh|fish` prints.
//
// It is a module of its own so that cobra/doc's markdown-to-roff dependency
// is not one of chatsync's.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/chatsync/chatsync/cmd/chatsync/cli"
)

func main() {
	version := flag.String("version", "", "the version the pages name")
	out := flag.String("out", "", "the directory to write man1/ and completions/ into")
	flag.Parse()
	if *version == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mangen -version V -out DIR")
		os.Exit(2)
	}
	if err := write(*version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}

func write(version, out string) error {
	// The defaults the help shows must not be the build machine's home.
	os.Setenv("XDG_CONFIG_HOME", "~/.config")
	os.Setenv("XDG_RUNTIME_DIR", "$XDG_RUNTIME_DIR")
	os.Setenv("HOME", "~")

	root := cli.CommandTree(version)
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true

	man := filepath.Join(out, "man1")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	header := &doc.GenManHeader{
		Section: "1",
		Source:  "chatsync " + version,
		Manual:  "chatsync manual",
	}
	// The date of the commit (SOURCE_DATE_EPOCH), so a rebuild gives the
	// same pages; cobra/doc reads it when Date is unset.
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		now := time.Now()
		header.Date = &now
	}
	// chatsync-key-generate.1, the names the pages' SEE ALSO use.
	if err := doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{Header: header, Path: man, CommandSeparator: "-"}); err != nil {
		return err
	}

	comp := filepath.Join(out, "completions")
	if err := os.MkdirAll(comp, 0o755); err != nil {
		return err
	}
	for name, gen := range map[string]func(*cobra.Command, *os.File) error{
		"chatsync.bash": func(c *cobra.Command, f *os.File) error { return c.GenBashCompletionV2(f, true) },
		"_chatsync":     func(c *cobra.Command, f *os.File) error { return c.GenZshCompletion(f) },
		"chatsync.fish": func(c *cobra.Command, f *os.File) error { return c.GenFishCompletion(f, true) },
	} {
		f, err := os.Create(filepath.Join(comp, name))
		if err != nil {
			return err
		}
		err = gen(root, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
