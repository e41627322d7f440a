package cli

import (
	"bufio"
	"encoding/json"
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
			return usagef("key needs a subcommand: generate, passphrase, export, import, rotate or fingerprint")
		},
	}
	// Every key command names its key file with --key-file (default: the
	// account's key_file); generate, passphrase and import also take it as
	// --out, the name they had first.
	var keyFile string
	c.PersistentFlags().StringVar(&keyFile, "key-file", "", "the key file (default: the account's key_file)")
	var out string
	gen := &cobra.Command{
		Use:     "generate",
		Short:   "Make a new random key file (mode 0600)",
		Example: "  chatsync key generate --key-file ~/.config/chatsync/alice.key",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(keyFile, out)
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
	gen.Flags().StringVar(&out, "out", "", "the key file to create: the same as --key-file")

	var ppOut string
	pass := &cobra.Command{
		Use:   "passphrase",
		Short: "Derive the key from a passphrase (the same passphrase gives the same key on every device)",
		Long: `passphrase reads a passphrase from the terminal (twice, not echoed) or from
standard input, and derives the key with Argon2id, salted with the account
address: every device that types the same passphrase for the same account gets
the same key, so nothing has to be copied between them.`,
		Example: "  chatsync key passphrase --key-file ~/.config/chatsync/alice.key --account alice@example.com\n  echo 'correct horse battery staple' | chatsync key passphrase --key-file alice.key --account alice@example.com",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			addr, err := g.accountAddress()
			if err != nil {
				return err
			}
			path, err := g.keyPath(keyFile, ppOut)
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
	pass.Flags().StringVar(&ppOut, "out", "", "the key file to create: the same as --key-file")

	export := &cobra.Command{
		Use:   "export",
		Short: "Print the keys as one line of text, to import on another device",
		Example: `  chatsync key export
  chatsync key export --key-file ~/.config/chatsync/alice.key`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(keyFile, "")
			if err != nil {
				return err
			}
			kr, err := seal.LoadKeyring(path)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stderr, "this line is the key: anyone who has it can read your messages; paste it only into `chatsync key import` on your own device")
			// Every key, so a device set up after a rotation reads the
			// history sealed before it too.
			_, err = fmt.Fprintln(g.stdout, seal.ExportKeys(kr.Keys()))
			return err
		},
	}

	var imOut string
	imp := &cobra.Command{
		Use:   "import [LINE]",
		Short: "Add a key exported on another device to a key file",
		Long: `import reads a line made by ` + "`chatsync key export`" + ` or ` + "`chatsync key rotate`" + ` and adds
the key to the key file, creating it with mode 0600 if needed. On a terminal
it asks for the line and does not show it as it is pasted; from a pipe or a
file it reads the first line of standard input. A line given as the argument
works too, but then the shell's history keeps the key. A typo in the line is
caught by its checksum.`,
		Example: "  chatsync key import                          # paste the line at the prompt\n  chatsync key import --key-file ~/.config/chatsync/alice.key < key.txt",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("import takes at most one argument, the exported line")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(keyFile, imOut)
			if err != nil {
				return err
			}
			var line string
			if len(args) == 1 {
				line = args[0]
				if g.stdinIsTerminal() {
					fmt.Fprintln(g.stderr, "note: a key on the command line stays in your shell's history; next time run `chatsync key import` and paste the line at its prompt")
				}
			} else {
				b, err := g.readSecret("exported key: ", false)
				if err != nil {
					return err
				}
				line = string(b)
			}
			keys, err := seal.ImportKeys(line)
			if err != nil {
				return fmt.Errorf("%w: copy the whole line printed by `chatsync key export` again", err)
			}
			n, err := seal.AddKeys(path, keys)
			if err != nil {
				return err
			}
			newest := keys[len(keys)-1].Fingerprint()
			if n == 0 {
				fmt.Fprintf(g.stdout, "%s already holds these keys (the newest: fingerprint %s)\n", path, newest)
				return nil
			}
			fmt.Fprintf(g.stdout, "added %d key(s) to %s; the newest, fingerprint %s, encrypts\n", n, path, newest)
			return nil
		},
	}
	imp.Flags().StringVar(&imOut, "out", "", "the key file to add the key to: the same as --key-file")

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new newest key to the key file, keep the old ones, and print it for the other devices",
		Long: `rotate adds a new random key to the key file. From then on it encrypts what
this device sends; the older keys stay in the file and still decrypt everything
sealed with them, so nothing is uploaded again. A daemon running here picks the
new key up within seconds.

rotate prints the new key as one line: run ` + "`chatsync key import`" + ` on each other
device of the account and paste it there. Until a device has it, that device
keeps what it cannot decrypt yet and applies it once the key is imported.`,
		Example: "  chatsync key rotate\n  chatsync key rotate --key-file ~/.config/chatsync/alice.key",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			path, err := g.keyPath(keyFile, "")
			if err != nil {
				return err
			}
			old, err := seal.LoadKeyring(path) // the file must be there, private and valid
			if err != nil {
				return err
			}
			k, err := seal.AppendKey(path)
			if err != nil {
				return err
			}
			kr, err := seal.LoadKeyring(path)
			if err != nil {
				return err
			}
			if kr.Current() != k || kr.Len() != old.Len()+1 {
				return fmt.Errorf("%s changed while the key was added: run `chatsync key fingerprint --key-file %s` and check it", path, path)
			}
			w := g.stdout
			fmt.Fprintf(w, "added a new key (fingerprint %s) to %s: it encrypts from now on; the %d older key(s) still decrypt\n", k.Fingerprint(), path, old.Len())
			fmt.Fprintln(w, "on each other device of the account, run `chatsync key import` and paste this line:")
			fmt.Fprintln(g.stderr, "the next line is the key: anyone who has it can read your messages; paste it only into `chatsync key import` on your own devices")
			_, err = fmt.Fprintln(w, seal.ExportKeys(kr.Keys()))
			return err
		},
	}

	var fpJSON bool
	fp := &cobra.Command{
		Use:   "fingerprint [FILE...]",
		Short: "Show the short id of each key, to compare devices",
		Long: `fingerprint prints the fingerprint of every key of the key file (--key-file,
the files given, or the key_file of each account of the config), oldest first;
the last one encrypts. Devices that hold the same keys show the same lines.`,
		Example: "  chatsync key fingerprint\n  chatsync key fingerprint --key-file ~/.config/chatsync/alice.key --json",
		RunE: func(c *cobra.Command, args []string) error {
			var files []fingerprintFile
			for _, f := range args {
				files = append(files, fingerprintFile{Path: f})
			}
			switch {
			case keyFile != "":
				p, err := config.ExpandPath(keyFile)
				if err != nil {
					return usagef("--key-file %s: %v", keyFile, err)
				}
				files = append(files, fingerprintFile{Path: p})
			case len(files) == 0:
				cfg, err := g.loadConfig()
				if err != nil {
					return err
				}
				for _, a := range cfg.Accounts {
					if g.account == "" || strings.EqualFold(a.Address, g.account) {
						files = append(files, fingerprintFile{Path: a.KeyFile, Account: a.Address})
					}
				}
				if len(files) == 0 {
					return usagef("no account %s in %s", g.account, cfg.Path)
				}
			}
			for i := range files {
				kr, err := seal.LoadKeyring(files[i].Path)
				if err != nil {
					return err
				}
				keys := kr.Keys()
				for j, k := range keys {
					files[i].Keys = append(files[i].Keys, fingerprintKey{Fingerprint: k.Fingerprint(), KeyID: k.ID(), Encrypts: j == len(keys)-1})
					clear(keys[j][:])
				}
			}
			if fpJSON {
				return json.NewEncoder(g.stdout).Encode(fingerprintResult{KeyFiles: files})
			}
			for _, f := range files {
				for _, k := range f.Keys {
					role := "decrypts"
					if k.Encrypts {
						role = "encrypts and decrypts"
					}
					fmt.Fprintf(g.stdout, "%s  %s  (%s)\n", k.Fingerprint, f.Path, role)
				}
			}
			return nil
		},
	}
	fp.Flags().BoolVar(&fpJSON, "json", false, "print JSON")
	c.AddCommand(gen, pass, export, imp, rotate, fp)
	return c
}

// fingerprintResult is the output of key fingerprint --json.
type fingerprintResult struct {
	KeyFiles []fingerprintFile `json:"key_files"`
}

type fingerprintFile struct {
	Path string `json:"path"`
	// Account is the account whose key_file this is, when it comes from
	// the config.
	Account string           `json:"account,omitempty"`
	Keys    []fingerprintKey `json:"keys"`
}

// fingerprintKey is one key, oldest first. KeyID is the id that names the
// key in journal entries (and in `chatsync devices`).
type fingerprintKey struct {
	Fingerprint string `json:"fingerprint"`
	KeyID       string `json:"key_id"`
	Encrypts    bool   `json:"encrypts"`
}

// keyPath is the key file a key command works on: --key-file (or its
// other name --out, given as alias), or the key_file of the account in the
// config.
func (g *globals) keyPath(keyFile, alias string) (string, error) {
	flag := keyFile
	if alias != "" {
		if keyFile != "" && keyFile != alias {
			return "", usagef("--key-file %s and --out %s name two files: give one of them", keyFile, alias)
		}
		flag = alias
	}
	if flag != "" {
		return config.ExpandPath(flag)
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return "", usagef("give the key file with --key-file (no usable config: %v)", err)
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

// stdinIsTerminal reports whether standard input is a terminal.
func (g *globals) stdinIsTerminal() bool {
	f, ok := g.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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
