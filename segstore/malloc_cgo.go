//go:build cgo && linux

package segstore

/*
#include <malloc.h>
#include <stdlib.h>

// With cgo, Pebble allocates its block cache and memtables with calloc,
// from whichever thread a goroutine runs on, and glibc gives threads up to
// 8 arenas per core; each keeps the memory freed into it, so the cache's
// churn of 1 MiB blocks leaves free memory scattered over many arenas.
// Under scripts/memory.sh (1,000 connections, default memory_cache) the
// edge peaked at 855, 868 and 1,055 MiB resident with glibc's default and
// at 554 and 624 MiB with 2 arenas, streaming as fast.
//
// glibc fixes the arena limit the first time two threads contend, which
// happens before any Go code runs, so this is a constructor, run when the
// program is loaded. MALLOC_ARENA_MAX in the environment still rules.
// musl has no arenas and no M_ARENA_MAX.
__attribute__((constructor)) static void sliceedge_limit_arenas(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		mallopt(M_ARENA_MAX, 2);
	}
#endif
}
*/
import "C"
