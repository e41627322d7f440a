//go:build !windows

package msgdir

import "os"

// syncDir makes a rename or removal in the directory d durable.
func syncDir(d *os.Root) error {
	f, err := d.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
