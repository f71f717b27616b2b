package segstore

// Slice files: where slice bytes live. See the package doc, Data model.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Directories under the store directory, beside Pebble's files.
const (
	slicesDir = "slices" // slices/<hh>/<hash>/<version>-<index>
	tmpDir    = "tmp"    // slices being written; emptied by Open
)

// fileBlock is what one slice file is taken to cost on disk beyond its
// bytes, for the budget: its last block, part used, and its inode and
// directory entry.
const fileBlock = 4 << 10

// sliceFiles is the directory tree of slice files. Writes, renames and
// removals go through fs, so tests can inject disk faults; files are opened
// for sending with the operating system's open(2), since sendfile needs an
// *os.File (see OpenSlice).
type sliceFiles struct {
	fs   vfs.FS
	root string // <dir>/slices
	tmp  string // <dir>/tmp
	seq  atomic.Uint64
	osFS bool // fs is the operating system's (possibly wrapped): files can be sent
}

func newSliceFiles(fsys vfs.FS, dir string) *sliceFiles {
	root := vfs.Root(fsys)
	return &sliceFiles{
		fs:   fsys,
		root: filepath.Join(dir, slicesDir),
		tmp:  filepath.Join(dir, tmpDir),
		osFS: root == vfs.Default,
	}
}

// prepare creates the directories and empties tmp of what a crash left.
func (f *sliceFiles) prepare() error {
	if err := f.fs.RemoveAll(f.tmp); err != nil {
		return fmt.Errorf("empty %s: %w", f.tmp, err)
	}
	for _, d := range []string{f.root, f.tmp} {
		if err := f.fs.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// objectDir is the directory of every slice file of every version of the
// keys hashing to h: a purge removes it whole.
func (f *sliceFiles) objectDir(h uint64) string {
	var b [16]byte
	hex := string(appendHex16(b[:0], h))
	return filepath.Join(f.root, hex[:2], hex)
}

// path is the file of slice i of (h, version).
func (f *sliceFiles) path(h, version uint64, i int64) string {
	return filepath.Join(f.objectDir(h), fileName(version, i))
}

func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

// fileName is the name of slice i of version in its object's directory.
func fileName(version uint64, i int64) string {
	b := make([]byte, 0, 16+1+16)
	b = appendHex16(b, version)
	b = append(b, '-')
	return string(strconv.AppendUint(b, uint64(i), 16))
}

// parseFileName is the inverse of fileName; ok is false for another name.
func parseFileName(name string) (version uint64, i int64, ok bool) {
	if len(name) < 18 || name[16] != '-' {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(name[:16], 16, 64)
	if err != nil {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(name[17:], 16, 63)
	if err != nil {
		return 0, 0, false
	}
	return v, int64(n), true
}

// create creates a new file in tmp for a slice being written, and
// returns its name; install then moves it into place.
func (f *sliceFiles) create() (string, vfs.File, error) {
	name := filepath.Join(f.tmp, strconv.FormatUint(f.seq.Add(1), 10))
	w, err := f.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return "", nil, err
	}
	return name, w, nil
}

// errNotExist is what removing a file that is not there fails with.
var errNotExist = fs.ErrNotExist

// install renames the written file tmp to slice i of (h, version),
// replacing any file there, creating the object's directory if needed
// (first: a rename into a missing directory is not the same failure on
// every filesystem).
func (f *sliceFiles) install(tmp string, h, version uint64, i int64) error {
	dst := f.path(h, version, i)
	err := f.fs.MkdirAll(filepath.Dir(dst), 0o755)
	if err == nil {
		err = f.fs.Rename(tmp, dst)
	}
	if err != nil {
		_ = f.fs.Remove(tmp)
	}
	return err
}

// remove removes the file of slice i of (h, version), if there is one.
func (f *sliceFiles) remove(h, version uint64, i int64) error {
	err := f.fs.Remove(f.path(h, version, i))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// removeObject removes every slice file of the keys hashing to h.
func (f *sliceFiles) removeObject(h uint64) error {
	return f.fs.RemoveAll(f.objectDir(h))
}

// removeOthers removes the slice files of h of versions other than keep.
func (f *sliceFiles) removeOthers(h, keep uint64) error {
	dir := f.objectDir(h)
	names, err := f.fs.List(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, name := range names {
		if v, _, ok := parseFileName(name); ok && v == keep {
			continue
		}
		if err := f.fs.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removeAll moves the whole tree of slice files aside and removes it in
// the background; done is called when it is gone.
func (f *sliceFiles) removeAll(done func(error)) error {
	aside := filepath.Join(f.tmp, "purged-"+strconv.FormatUint(f.seq.Add(1), 10))
	if err := f.fs.Rename(f.root, aside); err != nil {
		return err
	}
	if err := f.fs.MkdirAll(f.root, 0o755); err != nil {
		return err
	}
	go func() { done(f.fs.RemoveAll(aside)) }()
	return nil
}

// open opens the file of slice i of (h, version) for reading.
func (f *sliceFiles) open(h, version uint64, i int64) (vfs.File, error) {
	return f.fs.Open(f.path(h, version, i))
}

// openOS opens it as an *os.File, which the edge can send with sendfile.
func (f *sliceFiles) openOS(h, version uint64, i int64) (*os.File, error) {
	if !f.osFS {
		return nil, errors.New("segstore: slice files are not on the operating system's filesystem; they cannot be sent")
	}
	return os.Open(f.path(h, version, i))
}

// chunkBufs are chunk-sized buffers for verifying files: one per reader,
// whatever the slice size, so memory follows the reads in progress.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// verifyFile reads r, which should hold the sliceLen bytes of the slice of
// key k and entry v, chunk by chunk, and returns why it does not, if it
// does not.
func verifyFile(r io.ReaderAt, size int64, k, v []byte, sliceLen int64) error {
	if size != sliceLen {
		return fmt.Errorf("file of %d bytes, want %d", size, sliceLen)
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	for j := range chunkCount(sliceLen) {
		cs := j << chunkShift
		chunk := (*bp)[:min(chunkSize, sliceLen-cs)]
		if _, err := r.ReadAt(chunk, cs); err != nil {
			return fmt.Errorf("read chunk %d: %w", j, err)
		}
		if err := checkChunks(k, v, sliceLen, j, chunk); err != nil {
			return err
		}
	}
	return nil
}
