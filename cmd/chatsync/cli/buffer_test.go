package cli

import "github.com/chatsync/chatsync/internal/syncbuf"

// lockedBuffer is a log destination written by goroutines while the test reads it.
type lockedBuffer = syncbuf.Buffer
