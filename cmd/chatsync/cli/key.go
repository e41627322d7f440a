package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/crypto/seal"
)

func newKeyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "Make, derive, move and compare the keys that encrypt the journal",
		Long: `Every device of an account needs the same key: only devices that hold it can
read the journal. Make a random key on the first device and move it to the
others with export and import, or derive it on every device from the same
passphrase. A key file may hold several keys: the newest encrypts, all decrypt.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usagef("key needs a subcommand: generate, passphrase, export, import or fingerprint")
		},
	}
	var out string
	gen := &cobra.Command{
		Use:     "generate",
		Short:   "Make a new random key file (mode 0600)",
		Example: "  chatsync key generate --out ~/.config/chatsync/alice.key",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(out)
			if err != nil {
				return err
			}
			k, err := seal.GenerateKeyFile(path)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists: chatsync never overwrites a key; choose another --out", path)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s (fingerprint %s)\nmove it to your other devices with `chatsync key export` and `chatsync key import`\n", path, k.Fingerprint())
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "the key file to create (default: the account's key_file)")

	var ppOut string
	pass := &cobra.Command{
		Use:   "passphrase",
		Short: "Derive the key from a passphrase (the same passphrase gives the same key on every device)",
		Long: `passphrase reads a passphrase from the terminal (twice, not echoed) or from
standard input, and derives the key with Argon2id, salted with the account
address: every device that types the same passphrase for the same account gets
the same key, so nothing has to be copied between them.`,
		Example: "  chatsync key passphrase --out ~/.config/chatsync/alice.key --account alice@example.com\n  echo 'correct horse battery staple' | chatsync key passphrase --out alice.key --account alice@example.com",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			addr, err := g.accountAddress()
			if err != nil {
				return err
			}
			path, err := g.keyPath(ppOut)
			if err != nil {
				return err
			}
			phrase, err := g.readSecret("passphrase: ", true)
			if err != nil {
				return err
			}
			if len(phrase) < 12 {
				return usagef("the passphrase is too short: use at least 12 characters (several words are easiest)")
			}
			k := seal.DeriveKey(phrase, addr)
			if err := seal.CreateKeyFile(path, k); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%s already exists: chatsync never overwrites a key; choose another --out", path)
				}
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s (fingerprint %s)\n", path, k.Fingerprint())
			return nil
		},
	}
	pass.Flags().StringVar(&ppOut, "out", "", "the key file to create (default: the account's key_file)")

	var exFile string
	export := &cobra.Command{
		Use:   "export",
		Short: "Print the newest key as one line of text, to import on another device",
		Example: `  chatsync key export
  chatsync key export --key-file ~/.config/chatsync/alice.key`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(exFile)
			if err != nil {
				return err
			}
			kr, err := seal.LoadKeyring(path)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stderr, "this line is the key: anyone who has it can read your messages; paste it only into `chatsync key import` on your own device")
			_, err = fmt.Fprintln(g.stdout, seal.Export(kr.Current()))
			return err
		},
	}
	export.Flags().StringVar(&exFile, "key-file", "", "the key file (default: the account's key_file)")

	var imOut string
	imp := &cobra.Command{
		Use:   "import [LINE]",
		Short: "Add a key exported on another device to a key file",
		Long: `import reads a line made by ` + "`chatsync key export`" + ` (from the argument or standard
input) and adds the key to the key file, creating it with mode 0600 if needed.
A typo in the line is caught by its checksum.`,
		Example: "  chatsync key import --out ~/.config/chatsync/alice.key\n  chatsync key import chatsync-key:v1:... --out alice.key",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("import takes at most one argument, the exported line")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(imOut)
			if err != nil {
				return err
			}
			var line string
			if len(args) == 1 {
				line = args[0]
			} else {
				b, err := g.readSecret("exported key: ", false)
				if err != nil {
					return err
				}
				line = string(b)
			}
			k, err := seal.Import(line)
			if err != nil {
				return fmt.Errorf("%w: copy the whole line printed by `chatsync key export` again", err)
			}
			if err := seal.AddKey(path, k); err != nil {
				if errors.Is(err, seal.ErrKeyExists) {
					fmt.Fprintf(g.stdout, "%s already holds this key (fingerprint %s)\n", path, k.Fingerprint())
					return nil
				}
				return err
			}
			fmt.Fprintf(g.stdout, "added the key with fingerprint %s to %s\n", k.Fingerprint(), path)
			return nil
		},
	}
	imp.Flags().StringVar(&imOut, "out", "", "the key file to add the key to (default: the account's key_file)")

	fp := &cobra.Command{
		Use:     "fingerprint [FILE...]",
		Short:   "Show the short id of each key, to compare devices",
		Example: "  chatsync key fingerprint\n  chatsync key fingerprint ~/.config/chatsync/alice.key",
		RunE: func(c *cobra.Command, args []string) error {
			files := args
			if len(files) == 0 {
				cfg, err := g.loadConfig()
				if err != nil {
					return err
				}
				for _, a := range cfg.Accounts {
					if g.account == "" || strings.EqualFold(a.Address, g.account) {
						files = append(files, a.KeyFile)
					}
				}
			}
			for _, f := range files {
				kr, err := seal.LoadKeyring(f)
				if err != nil {
					return err
				}
				fps := kr.Fingerprints()
				for i, p := range fps {
					role := "decrypts"
					if i == len(fps)-1 {
						role = "encrypts and decrypts"
					}
					fmt.Fprintf(g.stdout, "%s  %s  (%s)\n", p, f, role)
				}
			}
			return nil
		},
	}
	c.AddCommand(gen, pass, export, imp, fp)
	return c
}

// keyPath is the key file a key command works on: the flag, or the
// key_file of the account in the config.
func (g *globals) keyPath(flag string) (string, error) {
	if flag != "" {
		return config.ExpandPath(flag)
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return "", usagef("give the key file with --out/--key-file (no usable config: %v)", err)
	}
	a, err := g.pickAccount(cfg)
	if err != nil {
		return "", err
	}
	return a.KeyFile, nil
}

// accountAddress is --account, or the one account of the config.
func (g *globals) accountAddress() (string, error) {
	if g.account != "" {
		return g.account, nil
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return "", usagef("give the account with --account (no usable config: %v)", err)
	}
	a, err := g.pickAccount(cfg)
	if err != nil {
		return "", err
	}
	return a.Address, nil
}

// pickAccount finds the account named by --account, or the only one.
func (g *globals) pickAccount(cfg *config.Config) (config.Account, error) {
	if g.account == "" {
		if len(cfg.Accounts) == 1 {
			return cfg.Accounts[0], nil
		}
		return config.Account{}, usagef("the config has %d accounts: say which with --account", len(cfg.Accounts))
	}
	for _, a := range cfg.Accounts {
		if strings.EqualFold(a.Address, g.account) {
			return a, nil
		}
	}
	return config.Account{}, usagef("no account %s in %s", g.account, cfg.Path)
}

// readSecret reads a line from the terminal without echo (asking twice when
// confirm is set), or from standard input when it is not a terminal.
func (g *globals) readSecret(prompt string, confirm bool) ([]byte, error) {
	if f, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(g.stderr, prompt)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return nil, err
		}
		if confirm {
			fmt.Fprint(g.stderr, "again: ")
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(g.stderr)
			if err != nil {
				return nil, err
			}
			if string(a) != string(b) {
				return nil, errors.New("the two entries differ: run the command again")
			}
		}
		return a, nil
	}
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	if err != nil && line == "" {
		return nil, usagef("nothing to read on standard input")
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}
