package segstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/sliceedge/sliceedge/segstore"
)

const mib = 1 << 20

func BenchmarkReadSlice(b *testing.B) {
	for _, flushed := range []bool{false, true} {
		b.Run(fmt.Sprintf("flushed=%v", flushed), func(b *testing.B) {
			s, _ := newStore(b)
			m := newMeta("example.com/bench/read", 32*mib, mib)
			if err := s.PutMeta(m); err != nil {
				b.Fatal(err)
			}
			writeAll(b, s, m)
			if flushed { // entries in an sstable rather than the memtable
				if err := s.DB().Flush(); err != nil {
					b.Fatal(err)
				}
			}
			dst := make([]byte, mib)
			b.SetBytes(mib)
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				got, err := s.ReadSlice(m, i%32, dst)
				if err != nil || len(got) != mib {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkOpenSlice opens 1 MiB slices for sending, as the edge does on a
// hit, once each was verified (here: written by this process): one open(2)
// and an index lookup, whatever the slice's size.
func BenchmarkOpenSlice(b *testing.B) {
	s, _ := newStore(b)
	m := newMeta("example.com/bench/open", 32*mib, mib)
	if err := s.PutMeta(m); err != nil {
		b.Fatal(err)
	}
	writeAll(b, s, m)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		f, err := s.OpenSlice(m, i%32)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		i++
	}
}

// BenchmarkReadSliceRange reads ranges of 64 KiB, 256 KiB and 1 MiB out of
// 1 MiB slices with ReadSliceRange, and the whole slice with ReadSlice,
// from files in the page cache, their entries in the memtable or in an
// sstable. Ranges start at unaligned offsets, as a client's do, so a range
// of k chunks overlaps k+1 of them (bar the whole slice), each read and
// verified whole. MB/s counts the bytes returned.
func BenchmarkReadSliceRange(b *testing.B) {
	for _, flushed := range []bool{false, true} {
		s, _ := newStore(b)
		m := newMeta("example.com/bench/range", 32*mib, mib)
		if err := s.PutMeta(m); err != nil {
			b.Fatal(err)
		}
		writeAll(b, s, m)
		if flushed {
			if err := s.DB().Flush(); err != nil {
				b.Fatal(err)
			}
		}
		dst := make([]byte, mib)
		for _, n := range []int64{64 << 10, 256 << 10, mib} {
			b.Run(fmt.Sprintf("flushed=%v/range=%dKiB", flushed, n>>10), func(b *testing.B) {
				b.SetBytes(n)
				b.ReportAllocs()
				var i int64
				for b.Loop() {
					off := (i * (300<<10 + 7)) % (mib - n + 1)
					got, err := s.ReadSliceRange(m, i%32, off, n, dst)
					if err != nil || int64(len(got)) != n {
						b.Fatal(err)
					}
					i++
				}
			})
		}
		b.Run(fmt.Sprintf("flushed=%v/ReadSlice", flushed), func(b *testing.B) {
			b.SetBytes(mib)
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				got, err := s.ReadSlice(m, i%32, dst)
				if err != nil || len(got) != mib {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkWriteSlice(b *testing.B) {
	s, _ := newStore(b)
	m := newMeta("example.com/bench/write", 1<<40, mib)
	if err := s.PutMeta(m); err != nil {
		b.Fatal(err)
	}
	data := payload(&segstore.Meta{Size: mib, SliceSize: mib, Version: 1}, 0)
	b.SetBytes(mib)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		if err := s.WriteSlice(m, i, data); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkHas(b *testing.B) {
	s, _ := newStore(b)
	m := newMeta("example.com/bench/has/some/longish/path/video.mp4?token=abc", 64*kib, kib)
	if err := s.PutMeta(m); err != nil {
		b.Fatal(err)
	}
	writeAll(b, s, m)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var i int64
		for pb.Next() {
			if !s.Has(m, i%64) {
				b.Fatal("missing")
			}
			i++
		}
	})
}

// BenchmarkFill2GiB writes 2 GiB of 1 MiB slices, then reports write
// amplification (bytes written to any file, slice files and Pebble's,
// through Options.FS / payload bytes put) and the read throughput of
// ReadSlice, from the page cache and (Linux) from disk. Two workloads:
//
//	fills16: 16 objects of 128 slices filled side by side (slice 0 of each,
//	         then slice 1, ...), as concurrent sequential viewers would;
//	random:  512 objects of 4 slices, written in random order.
//
// Run with:
//
//	go test ./segstore/ -run '^$' -bench Fill2GiB -benchtime 1x -v
func BenchmarkFill2GiB(b *testing.B) {
	for _, w := range []struct {
		name               string
		objects, slicesPer int
		shuffle            bool
	}{
		{"fills16", 16, 128, false},
		{"random", 512, 4, true},
	} {
		b.Run(w.name, func(b *testing.B) {
			for b.Loop() {
				measureFill(b, w.objects, w.slicesPer, w.shuffle)
			}
		})
	}
}

func measureFill(b *testing.B, objects, slicesPer int, shuffle bool) {
	dir := b.TempDir()
	var written atomic.Int64
	opts := segstore.Options{Dir: dir, FS: countingFS{FS: vfs.Default, written: &written}}
	s, err := segstore.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ms := make([]*segstore.Meta, objects)
	for o := range ms {
		ms[o] = newMeta(fmt.Sprintf("example.com/fill/%d.mp4", o), int64(slicesPer)*mib, mib)
		if err := s.PutMeta(ms[o]); err != nil {
			b.Fatal(err)
		}
	}
	type ref struct {
		o int
		i int64
	}
	order := make([]ref, 0, objects*slicesPer)
	for i := range int64(slicesPer) {
		for o := range ms {
			order = append(order, ref{o, i})
		}
	}
	data := make([]byte, mib)
	r := rand.New(rand.NewPCG(1, 2))
	for j := 0; j < len(data); j += 8 {
		binary.LittleEndian.PutUint64(data[j:], r.Uint64())
	}

	if shuffle {
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	}
	start := time.Now()
	for _, x := range order {
		binary.LittleEndian.PutUint64(data, uint64(x.o)<<32|uint64(x.i)) // every slice differs
		if err := s.WriteSlice(ms[x.o], x.i, data); err != nil {
			b.Fatal(err)
		}
	}
	put := int64(objects*slicesPer) * mib
	writeTime := time.Since(start)
	if err := s.DB().Flush(); err != nil {
		b.Fatal(err)
	}
	settle(b, s.DB())
	settleTime := time.Since(start)

	met := s.DB().Metrics()
	b.Logf("put %d MiB in %v (%.0f MB/s), %v until compactions settled",
		put>>20, writeTime.Round(time.Millisecond), float64(put)/writeTime.Seconds()/1e6, settleTime.Round(time.Millisecond))
	b.Logf("  bytes written to all files (counting vfs) %d MiB = write amp %.2f; disk now %d MiB",
		written.Load()>>20, float64(written.Load())/float64(put), met.DiskSpaceUsage()>>20)
	b.Logf("  compaction debt left %d MiB; LSM:\n%s", met.Compact.EstimatedDebt>>20, met)
	b.ReportMetric(float64(written.Load())/float64(put), "fs-writeamp")
	b.ReportMetric(float64(met.Compact.EstimatedDebt)/float64(put), "debt/put")

	// Upper bound: compact everything to the bottom level, as a long-running
	// store eventually would.
	before := written.Load()
	if err := s.DB().Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	b.Logf("  after a manual full compaction: +%d MiB written, total write amp %.2f; disk %d MiB",
		(written.Load()-before)>>20, float64(written.Load())/float64(put), s.DB().Metrics().DiskSpaceUsage()>>20)
	b.ReportMetric(float64(written.Load())/float64(put), "compacted-writeamp")
	b.ReportMetric(float64(put)/writeTime.Seconds()/1e6, "write-MB/s")

	read := func(what string, workers int) {
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, mib)
				for j := next.Add(1) - 1; j < int64(len(order)); j = next.Add(1) - 1 {
					x := order[j]
					if _, err := s.ReadSlice(ms[x.o], x.i, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		d := time.Since(start)
		b.Logf("  ReadSlice %s, random order, %d goroutines: %.0f MB/s",
			what, workers, float64(put)/d.Seconds()/1e6)
		b.ReportMetric(float64(put)/d.Seconds()/1e6, fmt.Sprintf("read-%s-%d-MB/s", what, workers))
	}
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		if dropPageCache(b, dir) {
			read("cold", workers)
		}
		read("hot", workers)
	}
}

// settle waits until Pebble has run no compaction for two seconds.
func settle(b *testing.B, db *pebble.DB) {
	deadline := time.Now().Add(2 * time.Minute)
	quiet, last := 0, int64(-1)
	for quiet < 20 && time.Now().Before(deadline) {
		m := db.Metrics()
		if n := m.Compact.Count; m.Compact.NumInProgress == 0 && n == last {
			quiet++
		} else {
			quiet, last = 0, n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dropPageCache asks the kernel to drop the store's files, Pebble's and
// the slice files under slices/, from the page cache, so the next reads
// come from disk. It reports whether it could.
func dropPageCache(b *testing.B, dir string) bool {
	ok := true
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil // removed meanwhile
		}
		defer f.Close()
		if !fadviseDontNeed(f) {
			ok = false
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return ok
}

// countingFS counts the bytes written to any file: Pebble's and the slice
// files.
type countingFS struct {
	vfs.FS
	written *atomic.Int64
}

func (fs countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, err)
}

func (fs countingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(f, err)
}

func (fs countingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(f, err)
}

func (fs countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return countingFile{File: f, written: fs.written}, nil
}

type countingFile struct {
	vfs.File
	written *atomic.Int64
}

func (f countingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.written.Add(int64(n))
	return n, err
}

func (f countingFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.written.Add(int64(n))
	return n, err
}

// BenchmarkReadSliceRandom reads 1 MiB slices in random order from a set of
// 512 MiB, hot in the page cache, verifying every chunk.
func BenchmarkReadSliceRandom(b *testing.B) {
	s, m := randomStore(b)
	r := rand.New(rand.NewPCG(1, 1))
	dst := make([]byte, mib)
	b.SetBytes(mib)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ReadSlice(m, r.Int64N(512), dst); err != nil {
			b.Fatal(err)
		}
	}
}

// randomStore is a store holding a 512 MiB object of 1 MiB slices, their
// entries flushed to an sstable.
func randomStore(b *testing.B) (*segstore.Store, *segstore.Meta) {
	s, _ := newStore(b)
	m := newMeta("example.com/bench/random", 512*mib, mib)
	if err := s.PutMeta(m); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, mib)
	for i := range m.SliceCount() {
		binary.LittleEndian.PutUint64(data, uint64(i))
		if err := s.WriteSlice(m, i, data); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.DB().Flush(); err != nil {
		b.Fatal(err)
	}
	return s, m
}

// BenchmarkReadSliceRangeRandom is BenchmarkReadSliceRandom reading 256 KiB
// ranges with ReadSliceRange: each reads and verifies the 5 chunks the
// range overlaps, not the whole slice. MB/s counts the bytes returned.
func BenchmarkReadSliceRangeRandom(b *testing.B) {
	s, m := randomStore(b)
	r := rand.New(rand.NewPCG(1, 1))
	dst := make([]byte, mib)
	const n = 256 << 10
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ReadSliceRange(m, r.Int64N(512), r.Int64N(mib-n+1), n, dst); err != nil {
			b.Fatal(err)
		}
	}
}
