//go:build linux && (amd64 || arm64)

package segstore_test

import (
	"os"
	"syscall"
)

// fadviseDontNeed drops f's pages from the page cache (POSIX_FADV_DONTNEED).
func fadviseDontNeed(f *os.File) bool {
	const fadvDontNeed = 4
	_, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0)
	return errno == 0
}
