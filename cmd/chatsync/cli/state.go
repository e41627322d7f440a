package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
)

func init() { extraCommands = append(extraCommands, newStateCmd) }

func newStateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Rebuild the daemon's state",
		Args:  noArgs,
	}
	c.AddCommand(newStateRebuildCmd(g))
	return c
}

func newStateRebuildCmd(g *globals) *cobra.Command {
	var force, asJSON bool
	c := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the state from the stores and the journal, re-pushing nothing the journal has",
		Long: `Rebuild replaces the state file (cursor, versions, outbox, file index) with a
new one, keeping the old file beside it as chatsync.db.old-TIME. It is the way
back from a damaged state file, which chatsync refuses to run on.

The new state has a new device id and knows every store of the config. At
its next start, each account reads the whole journal before it pushes
anything: what the store holds with the same content is recorded, what it
lacks is written, and only what the journal lacks is pushed. Where the store
and the journal hold different content for a message, the journal's wins.

Stop chatsync first. A state that is not damaged but still holds changes not
sent yet is refused unless --force is given: those changes would be lost.`,
		Example: "  chatsync state rebuild\n  chatsync state rebuild --config /etc/chatsync/config.toml",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			res, err := daemon.RebuildState(cfg, force, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.stdout).Encode(res)
			}
			w := g.stdout
			fmt.Fprintf(w, "state rebuilt in %s: new device id %s\n", res.StateDir, res.DeviceID)
			if res.KeptAs != "" {
				what := "the old state file"
				if res.Damaged != "" {
					what = "the damaged state file (" + res.Damaged + ")"
				}
				fmt.Fprintf(w, "%s is kept as %s\n", what, res.KeptAs)
			}
			fmt.Fprintf(w, "start chatsync again: each of the %d account(s) reads the whole journal first, then pushes only what the journal lacks\n", len(res.Accounts))
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "rebuild even when the old state holds changes not sent yet (they are lost)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
