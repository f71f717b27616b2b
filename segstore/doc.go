// Package segstore is the Pebble-backed store of object metadata and slice
// bytes: what sliceedge knows about each cached object, and the aligned,
// fixed-size slices of it that have been fetched so far.
//
// # Data model
//
// Two kinds of record live in one Pebble keyspace:
//
//	"m" + cache key                       → meta   (one per object)
//	"s" + hash(key) + version + index     → slice  (8+8+8 bytes, big-endian)
//
// Meta keys are the cache key itself, so the keys of every object under a
// path prefix are one ordered range: PurgePrefix is a range scan. Slice keys
// start with a 64-bit hash of the cache key (the first 8 bytes of its SHA-256,
// so slice keys have a fixed length however long the URL is, and colliding
// keys cannot be crafted cheaply), then the object's version, then the slice
// index. Consequences:
//
//   - the slices of one version are one contiguous key range, so replacing or
//     purging an object is a single range deletion, however many slices it has;
//   - the version is part of every slice key and is a random 64-bit number
//     minted whenever the origin's validator changes, so bytes of two versions
//     can never be stitched together into one response: a reader asks for
//     (key, version, index) and either gets bytes of that version or nothing.
//
// A meta value is a fixed binary header (format, CRC-32C, version, size,
// slice size: all that Open needs to rebuild its index without parsing) then
// JSON for the rest (validators, headers to replay, freshness). JSON keeps
// the record readable with pebble's tools and lets fields be added without a
// format change; metas are small and read from an in-memory cache, so its
// cost does not matter.
//
// A slice value is a header, then the payload (record.go has the layout).
// The header starts with a format byte. Format 2, which WriteSlice writes,
// holds one CRC-32C (Castagnoli) per 64 KiB chunk of the payload, each over
// the slice's Pebble key, the chunk's index and the chunk's bytes; format 1,
// which stores written by earlier versions hold and which is still read, holds
// one CRC-32C over the key and the whole payload. Covering the key means that
// a value found under the wrong key (a bug, or a bit flip in the key) fails
// the check as surely as a damaged payload. Checksums are verified on every
// read, on Pebble's memory just before the bytes are copied out of it:
// ReadSlice checks every chunk, ReadSliceRange only the chunks its byte range
// overlaps (every byte for a format-1 slice), so that serving 256 KiB of a
// 1 MiB slice copies 256 KiB and checksums at most 320 KiB rather than
// copying and checksumming the whole slice. Damage in a chunk no read has
// touched goes unnoticed until one does. A slice that fails is deleted and
// reported as ErrCorrupt so the caller refetches it.
//
// The key "!format" holds the layout of the directory: "segstore/2" (slice
// values of format 1 or 2), written by Open into a new directory. Open
// refuses any other marker, except "segstore/1" (format 1 only), which it
// rewrites as "segstore/2" before writing anything else: a binary that knows
// only format 1 then refuses the directory rather than drop its slices.
//
// Pebble's Get makes no copy of a value: it returns the memtable's memory or,
// for a value in a blob file, memory of the block cache, where each slice
// value (8 KiB or more: see pebble.go) is a blob block of its own. On a block
// cache miss Pebble reads the whole block from the file and verifies its own
// checksum of it, into a buffer that it then caches if it fits a cache shard.
// So a ReadSliceRange that misses the block cache still reads the whole
// slice; one that hits it touches only the chunks it needs. Iterators fetch
// values through the same code (LazyValue) and would save nothing.
//
// # Consistency
//
// A slice is written only when complete, in one batch together with the
// current meta of its object, and only if that meta still names the slice's
// version: a fill that was in flight while its object was purged or replaced
// gets ErrStale and writes nothing. PutMeta, WriteSlice and Purge of one key
// are serialised by a striped lock; reads (Meta, Has, ReadSlice,
// ReadSliceRange) do not take it, except to load a meta that is not in the
// cache.
//
// The WAL is disabled (see pebble.go): after a crash the store holds the
// batches of some prefix of its history, never part of a batch, so every
// slice it holds is complete and has its meta. Open deletes any slice whose
// meta is missing or names another version, and Purge flushes before it
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
// by scanning keys only; with value separation the slice
// payloads sit in blob files and a key scan never reads them (the value length
// comes from the blob handle kept in the sstable). Decoded metas are cached in
// memory, bounded in number; PutMeta and Purge update the cache.
//
// # Capacity and eviction
//
// Options.MaxBytes is a budget for Pebble's disk usage. Eviction is CLOCK
// (F. J. Corbató, "A Paging Experiment with the Multics System", 1968; the
// "second chance" approximation of LRU) at slice granularity, so the head of
// a video that viewers keep starting stays while the tail few reach goes:
//
//   - Each stored slice has a reference bit, in memory only: ReadSlice and
//     ReadSliceRange set it (one atomic load when already set, no lock, no
//     Pebble write). Has
//     does not, since the edge calls it to plan, not only to serve. The bits
//     start clear at Open, and so does a newly written slice's: a slice
//     written once and never read again is the first to go.
//   - The clock is kept as a FIFO queue of slices in write order with
//     reinsertion, which is CLOCK laid out as a queue: the hand takes the
//     oldest slice; if its bit is set, it clears it and sends the slice to
//     the back (its second chance), else it evicts it. Consecutive slices of
//     one fill share one queue entry. Open rebuilds the queue from the keys.
//   - Write order, rather than going round object by object, matters
//     because of value separation. Eviction deletes keys; the disk comes back
//     only when no key references a blob file any more (it is deleted) or
//     when Pebble rewrites a file whose values are mostly dead. Evicting in
//     write order empties the oldest blob files whole, and leaves in them
//     only the few hot slices that a blob rewrite then copies out cheaply:
//     the age-sorted cleaning of log-structured file systems (Rosenblum and
//     Ousterhout, "The Design and Implementation of a Log-Structured File
//     System", 1992). Evicting object by object spreads dead values over
//     every file, and getting the disk back then means rewriting most of it.
//
// Two goroutines, started by Open and stopped by Close, keep the budget
// (evict.go). The evictor wakes when a write takes the store over the
// high-water mark, and every 100 ms: it samples Pebble's disk usage and,
// when the slices stored plus Pebble's own share (sstables, one memtable of
// headroom) exceed HighWater×MaxBytes (default 95%), runs the hand until
// they are under LowWater×MaxBytes (default 90%), deleting victims in one
// batch per object. The reclaimer makes Pebble give the disk back: it has
// Pebble rewrite blob files at a tight garbage ratio, flushes, and, when the
// disk nears the budget, compacts the slice keys (keys and blob handles
// only, so cheap) so that deleted slices stop pinning their blob files.
// Admission closes the loop: WriteSlice refuses a slice (ErrWriteFailed)
// when the slices stored, or the disk Pebble will use once its memtables are
// flushed (the last sample, plus what was flushed since, plus what awaits a
// flush), would exceed MaxBytes. That only happens when fills outrun
// eviction; the edge then serves from the origin without caching.
//
// Metas are kept when an object's last slice is evicted: a meta is small and
// lets the edge revalidate an object instead of learning it anew. Only when
// metas outnumber one per 64 KiB of budget (at least 4096) does the evictor
// delete the meta of each object it empties. (Metas of objects that never
// had a slice are not on the clock and stay until purged.)
//
// Pebble v2.1.7's DiskSpaceUsage leaves out the blob files already on disk
// at Open (cockroachdb/pebble#5493); the store corrects for it (diskUsage).
//
// # Write failures
//
// A full or failing disk never fails a request: WriteSlice, PutMeta and the
// purges return an error wrapping ErrWriteFailed, which the edge logs before
// serving from the origin; Stats.WriteErrors counts them; reads go on. With
// the WAL disabled, commits do no I/O, and disk errors surface in flushes:
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
// PurgeAll deletes everything with two range deletions. ScanMeta lists metas
// by key prefix in chunks, holding no lock while its callback runs; a soft
// purge is ScanMeta plus PutMeta of each meta with the same Version and
// Lifetime 0, which keeps every slice. Stats reads counters and one Pebble
// metrics call; it never scans.
package segstore
