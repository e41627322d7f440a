package daemon

import (
	"testing"

	"github.com/chatsync/chatsync/cmd/chatsync/config"
	"github.com/chatsync/chatsync/sync/engine"
)

// The config's default max_message_bytes is the engine's, chosen for what
// the real server can carry; the two must not drift apart.
func TestConfigAndEngineAgreeOnTheDefaultMaxMessageBytes(t *testing.T) {
	if config.DefaultMaxMessageBytes != engine.DefaultMaxMessageBytes {
		t.Errorf("config default %d, engine default %d", config.DefaultMaxMessageBytes, engine.DefaultMaxMessageBytes)
	}
}
