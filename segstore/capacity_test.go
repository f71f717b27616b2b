package segstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/segstore"
)

// CheckCapacity against the real filesystem of a temp dir: a budget of
// 1 EiB is more than any disk here holds, and the warning names the budget,
// the free space and the store's use; 64 MiB fits a disk with room; the
// files already in the directory's tree count as the store's; a directory
// not made yet is measured by its parent.
func TestCheckCapacity(t *testing.T) {
	dir := t.TempDir()
	// A slice file, two directories down: the store's files are counted
	// wherever they are in its tree.
	file := filepath.Join(dir, "slices", "ab", "ab00000000000001", "0000000000000001-0")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, make([]byte, mib), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := segstore.CheckCapacity(dir, 1<<60)
	if !errors.Is(err, segstore.ErrOverCapacity) {
		t.Fatalf("CheckCapacity(1 EiB) = %+v, %v; want ErrOverCapacity", c, err)
	}
	t.Logf("1 EiB: %v", err)
	if c.Free <= 0 || c.Used != mib {
		t.Errorf("CheckCapacity = %+v, want some room free and the 1 MiB file used", c)
	}
	for _, n := range []int64{1 << 60, c.Free, c.Used} {
		if !strings.Contains(err.Error(), strconv.FormatInt(n, 10)) {
			t.Errorf("the warning does not name %d: %v", n, err)
		}
	}
	if c.Free < 64*mib {
		t.Fatalf("%d bytes free where the test runs: cannot check that 64 MiB fits", c.Free)
	}
	if c, err := segstore.CheckCapacity(dir, 64*mib); err != nil {
		t.Errorf("CheckCapacity(64 MiB) = %+v, %v; want no warning", c, err)
	}
	if c, err := segstore.CheckCapacity(filepath.Join(dir, "not", "yet"), 64*mib); err != nil || c.Used != 0 || c.Free <= 0 {
		t.Errorf("CheckCapacity of a directory not made yet = %+v, %v; want its parent's room and nothing used", c, err)
	}
}
