// Package segstore is the store of object metadata and slice bytes: what
// sliceedge knows about each cached object, and the aligned, fixed-size
// slices of it that have been fetched so far. Pebble is the index; the
// slices' bytes are files, which the edge sends with sendfile(2).
//
// # Data model
//
// Two kinds of record live in one Pebble keyspace:
//
//	"m" + cache key                       → meta   (one per object)
//	"s" + hash(key) + version + index     → slice entry (8+8+8 bytes, big-endian)
//
// and each slice's bytes are a file of their own under the store
// directory:
//
//	slices/<hh>/<hash>/<version>-<index>   (hex; hh: the hash's first byte)
//
// Meta keys are the cache key itself, so the keys of every object under a
// path prefix are one ordered range: PurgePrefix is a range scan. Slice keys
// start with a 64-bit hash of the cache key (the first 8 bytes of its SHA-256,
// so slice keys have a fixed length however long the URL is, and colliding
// keys cannot be crafted cheaply), then the object's version, then the slice
// index. Consequences:
//
//   - the entries of one version are one contiguous key range, and the files
//     of every version of an object one directory, so replacing or purging
//     an object is a range deletion and the removal of a directory, however
//     many slices it has;
//   - the version is part of every slice key and file name, and is a random
//     64-bit number minted whenever the origin's validator changes, so bytes
//     of two versions can never be stitched together into one response: a
//     reader asks for (key, version, index) and either gets bytes of that
//     version or nothing.
//
// A meta value is a fixed binary header (format, CRC-32C, version, size,
// slice size: all that Open needs to rebuild its index without parsing) then
// JSON for the rest (validators, headers to replay, freshness). JSON keeps
// the record readable with pebble's tools and lets fields be added without a
// format change; metas are small and read from an in-memory cache, so its
// cost does not matter.
//
// A slice entry (record.go) holds one CRC-32C (Castagnoli) per 64 KiB chunk
// of the slice, each over the slice key, the chunk's index and the chunk's
// bytes, computed while the slice is written, from the bytes in memory.
// Covering the key means that a file found under the wrong name fails the
// check as surely as damaged bytes.
//
// Why files. A hit used to copy every byte out of Pebble's block cache
// (or read and checksum a whole blob block on a miss) and write it to the
// socket; a file goes from the page cache to the socket with sendfile, no
// byte passing through this process, and the page cache is then the memory
// tier. Why a file per slice rather than slots in large preallocated files
// (Traffic Server's stripes): a slice is written once, whole, by one fill,
// so a file per slice needs no allocator, gives atomic completion (rename)
// and frees its disk at once when unlinked; the cost is an open(2) per slice
// sent (a few microseconds; see BenchmarkServeHit) and one inode per slice
// (a 1 TiB store of 1 MiB slices: a million files, in 256 × objects
// directories). docs/deploying.md says which filesystems suit.
//
// # Integrity
//
// Checksums are verified when the bytes leave the disk, not on every send:
//
//   - OpenSlice, the edge's hit path, verifies a slice's whole file before
//     its first send in a process (a slice this process wrote counts as
//     verified), then only opens it: a file torn by a crash or damaged while
//     the process was down is never sent;
//   - ReadSlice and ReadSliceRange, for tools and tests, verify the chunks
//     they read every time;
//   - the scrubber (scrub.go) reads every file back at Options.ScrubRate
//     (default 8 MiB/s), so that damage done while the process runs is caught
//     within one pass, and removes orphan files (its first pass, at once
//     and unpaced, only removes them, and runs even with the scrubber off).
//
// A slice that fails (damaged, short, missing) is dropped (entry, file,
// index), counted in Stats.Corrupt, and reported as ErrCorrupt so the caller
// refetches it.
//
// The key "!format" holds the layout of the directory: "segstore/3" (slice
// entries and files), written by Open into a new directory. Open refuses any
// other marker, except "segstore/1" and "segstore/2" (slice bytes in Pebble
// values, from earlier versions), whose slices it drops, keeping the metas,
// before writing the new marker: their objects are revalidated, and their
// slices fetched again as clients ask.
//
// # Consistency
//
// A slice is written only when complete: its file is written into tmp/,
// then, under the key's lock, renamed into place and its entry committed in
// one batch together with the current meta of its object, and only if that
// meta still names the slice's version: a fill that was in flight while its
// object was purged or replaced gets ErrStale and writes nothing. PutMeta,
// WriteSlice and Purge of one key are serialised by a striped lock; reads
// (Meta, Has, OpenSlice, ReadSlice, ReadSliceRange) do not take it, except
// to load a meta that is not in the cache. A file being sent when its slice
// is evicted or replaced is sent whole: the open descriptor keeps the old
// file's bytes.
//
// The WAL is disabled (see pebble.go): after a crash the store holds the
// batches of some prefix of its history, never part of a batch, so every
// entry it holds is complete and has its meta. Open empties tmp/ and deletes
// any entry whose meta is missing or names another version; an entry whose
// file was lost or torn fails its first verification; a file whose entry
// was lost is an orphan, which the sweep Open starts removes. Purge flushes before it
// returns so that a crash cannot undo it.
//
// # In-memory index
//
// Has is on the hot path of every request and does no I/O: the store keeps,
// per object, the version it holds slices of and a bitset of their indices.
// The bitset is sparse (pages of 1,024 slices, allocated while one of their
// slices is stored, under a radix directory read with atomic loads: see
// index.go), so memory and work grow with the slices stored, never with
// the size an origin claims, up to 2^63-1 bytes; StoredRuns and
// CountStored cost what is stored, not what is claimed. Open rebuilds it
// by scanning the entries, never the files. The index also holds, per
// slice, whether this process verified its file (see Integrity). Decoded
// metas are cached in memory, bounded in number; PutMeta and Purge update
// the cache.
//
// # Capacity and eviction
//
// Options.MaxBytes is a budget for the disk the store uses: the slice files
// (their bytes, and a 4 KiB block each for the part-used last block, the
// inode and the directory entry) plus Pebble's files. Eviction is CLOCK
// (F. J. Corbató, "A Paging Experiment with the Multics System", 1968; the
// "second chance" approximation of LRU) at slice granularity, so the head of
// a video that viewers keep starting stays while the tail few reach goes:
//
//   - Each stored slice has a reference bit, in memory only: OpenSlice,
//     ReadSlice and ReadSliceRange set it (one atomic load when already set,
//     no lock, no Pebble write). Has
//     does not, since the edge calls it to plan, not only to serve. The bits
//     start clear at Open, and so does a newly written slice's: a slice
//     written once and never read again is the first to go.
//   - The clock is kept as a FIFO queue of slices in write order with
//     reinsertion, which is CLOCK laid out as a queue: the hand takes the
//     oldest slice; if its bit is set, it clears it and sends the slice to
//     the back (its second chance), else it evicts it. Consecutive slices of
//     one fill share one queue entry. Open rebuilds the queue from the keys.
//
// One goroutine, started by Open and stopped by Close, keeps the budget
// (evict.go). The evictor wakes when a write takes the store over the
// high-water mark, and every 100 ms: it samples Pebble's disk usage and,
// when the files plus Pebble's share (its disk usage, plus what awaits a
// flush) exceed HighWater×MaxBytes (default 95%), runs the hand until they
// are under LowWater×MaxBytes (default 90%), deleting victims' entries in
// one batch per object and then their files: the disk comes back at once,
// with nothing to compact. Admission closes the loop: WriteSlice refuses a
// slice (ErrWriteFailed) when it would take the store over MaxBytes. That
// only happens when fills outrun eviction; the edge then serves from the
// origin without caching.
//
// Metas are kept when an object's last slice is evicted: a meta is small and
// lets the edge revalidate an object instead of learning it anew. Only when
// metas outnumber one per 64 KiB of budget (at least 4096) does the evictor
// delete the meta of each object it empties. (Metas of objects that never
// had a slice are not on the clock and stay until purged.)
//
// # Write failures
//
// A full or failing disk never fails a request: WriteSlice, PutMeta and the
// purges return an error wrapping ErrWriteFailed, which the edge logs before
// serving from the origin; Stats.WriteErrors counts them; reads go on. With
// the WAL disabled, commits do no I/O, and Pebble's disk errors surface in
// flushes; a slice file that cannot be written fails its WriteSlice at once
// (and leaves nothing in tmp/):
// from a failed flush until the next good one the store refuses writes
// instead of letting memtables pile up until Pebble blocks every commit, and
// Pebble's retries (backed off by the store) resume writing once the disk
// has room. A failed MANIFEST write is fatal to Pebble: the store then stays
// read-only until the process restarts, without panicking. See health.go.
//
// A purge must hold even then: one the store cannot write (or flush) takes
// effect in memory at once, hiding every key it covers from every read,
// and is retried in the background until it is on disk; the purge returns
// an error wrapping ErrPurgePending, which the admin API answers with 202
// Accepted. A meta stored after the purge is visible again, and the retry
// spares it. See pending.go.
//
// A write stall (Pebble holding commits while flushes catch up) is not a
// failure: a slice write waits up to stallWait (15 s) for it to end, since
// a refused slice costs a second origin fetch, while a meta write or a
// purge, which a client or an operator waits for, gives up after admitWait
// (2 s).
//
// # Admin
//
// PurgeAll deletes everything with two range deletions, and moves the tree
// of slice files aside to be removed in the background. ScanMeta lists metas
// by key prefix in chunks, holding no lock while its callback runs; a soft
// purge is ScanMeta plus PutMeta of each meta with the same Version and
// Lifetime 0, which keeps every slice. Stats reads counters and one Pebble
// metrics call; it never scans.
package segstore
