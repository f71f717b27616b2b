package segstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrOverCapacity: Options.MaxBytes is more than the filesystem holding the
// store can give it. The store still works, but the disk fills before the
// budget does, and from then on writes are refused (ErrWriteFailed) instead
// of making room by eviction.
var ErrOverCapacity = errors.New("the store's budget (store.max_bytes) is more than its filesystem can hold")

// Capacity is what the filesystem holding a store directory can give it.
type Capacity struct {
	Free int64 // bytes free on the filesystem, as df says (statfs f_bavail)
	Used int64 // bytes of the files in the store directory now
}

// CheckCapacity returns how much the filesystem holding dir can give a
// store there: what is free, plus what the store already uses. If maxBytes
// is more than that, the error wraps ErrOverCapacity and names both figures
// and what to do. Any other error says why it could not tell. dir need not
// exist yet: then the nearest directory above it that exists is measured.
func CheckCapacity(dir string, maxBytes int64) (Capacity, error) {
	var c Capacity
	at := dir
	for {
		if _, err := os.Stat(at); err == nil {
			break
		}
		up := filepath.Dir(at)
		if up == at {
			return c, fmt.Errorf("segstore: capacity of %s: no directory above it exists", dir)
		}
		at = up
	}
	du, err := vfs.Default.GetDiskUsage(at) // statfs(2)
	if err != nil {
		return c, fmt.Errorf("segstore: capacity of %s: statfs %s: %w", dir, at, err)
	}
	// What df calls available: root may also write the blocks reserved for
	// it, but a budget that counts on them leaves nothing for the rest of
	// the system.
	c.Free = int64(du.AvailBytes)
	if at == dir {
		err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				c.Used += fi.Size()
			}
			return nil
		})
		if err != nil {
			return c, fmt.Errorf("segstore: capacity of %s: %w", dir, err)
		}
	}
	if maxBytes > c.Free+c.Used {
		return c, fmt.Errorf("%w: store.max_bytes is %d bytes, but the filesystem holding %s has %d bytes free and the store uses %d: "+
			"lower store.max_bytes to at most %d (leave some room for the rest of the system), or give the store a larger disk",
			ErrOverCapacity, maxBytes, dir, c.Free, c.Used, c.Free+c.Used)
	}
	return c, nil
}
