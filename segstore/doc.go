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
// A slice value is one format byte, a CRC-32C (Castagnoli) over the slice's
// Pebble key followed by the payload, then the payload. Covering the key means
// that a value found under the wrong key (a bug, or a bit flip in the key)
// fails the check as surely as a damaged payload. The checksum is verified on
// every read, after the bytes have been copied out of Pebble; a slice that
// fails is deleted and reported as ErrCorrupt so the caller refetches it.
//
// # Consistency
//
// A slice is written only when complete, in one batch together with the
// current meta of its object, and only if that meta still names the slice's
// version: a fill that was in flight while its object was purged or replaced
// gets ErrStale and writes nothing. PutMeta, WriteSlice and Purge of one key
// are serialised by a striped lock; reads (Meta, Has, ReadSlice) do not take
// it, except to load a meta that is not in the cache.
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
// Open rebuilds it by scanning keys only; with value separation the slice
// payloads sit in blob files and a key scan never reads them (the value length
// comes from the blob handle kept in the sstable). Decoded metas are cached in
// memory, bounded in number; PutMeta and Purge update the cache.
package segstore
