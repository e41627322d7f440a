package msgdir

import "os"

// syncDir is a no-op on Windows, where directories cannot be opened for
// syncing and NTFS journals the rename itself.
func syncDir(d *os.Root) error { return nil }
