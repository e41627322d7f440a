package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	ks "github.com/kardianos/service"
	"github.com/spf13/cobra"

	"github.com/chatsync/chatsync/cmd/chatsync/daemon"
)

func newRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the daemon in the foreground (what the service manager runs)",
		Long: `Run replicates every account of the config until it is stopped with
SIGINT or SIGTERM, then finishes the batch in flight, saves its state and exits.
Logs go to stderr, where journald and launchd collect them (the Windows event
log under the service manager). Edits of the config file take effect within
seconds; SIGHUP rereads it at once.`,
		Example: "  chatsync run\n  chatsync run --config /etc/chatsync/config.toml",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if !ks.Interactive() {
				return runUnderServiceManager(g)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			level := new(slog.LevelVar)
			level.Set(cfg.Daemon.LogLevel)
			logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			d, err := daemon.New(daemon.Options{Config: cfg, Logger: logger, LogLevel: level, Version: g.version})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			defer onReloadSignal(d)()
			return d.Run(ctx)
		},
	}
}
