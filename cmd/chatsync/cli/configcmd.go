package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration file",
		Args:  noArgs,
		RunE:  func(c *cobra.Command, args []string) error { return usagef("config needs a subcommand: check") },
	}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the config and print every problem with its line",
		Long: `check reads the config as the daemon would, without contacting any server,
and prints every problem with its line. Files the config names that do not
exist yet (a key or password file still to be made) are warnings; everything
else is an error and makes check exit 1.`,
		Example: "  chatsync config check\n  chatsync config check --config ./config.toml",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			path := g.configFile()
			cfg, problems, err := config.Load(path)
			for _, p := range problems {
				fmt.Fprintf(g.stdout, "%s: %s\n", path, p)
			}
			var cerr *config.Error
			if errors.As(err, &cerr) {
				return fmt.Errorf("%d error(s) in %s: fix them and run `chatsync config check` again", len(cerr.Errors()), path)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: ok (%d account(s), %d warning(s))\n", cfg.Path, len(cfg.Accounts), len(problems))
			return nil
		},
	})
	return c
}
