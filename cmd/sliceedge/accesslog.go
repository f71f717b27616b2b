package main

// The access log's own file, reopened on SIGUSR1 so that logrotate can
// move it away (the nginx way: rename, then signal).

import (
	"fmt"
	"os"
	"sync"

	"github.com/rs/zerolog"
	"github.com/sliceedge/sliceedge/config"
)

// reopenFile is an append-only log file that Reopen swaps for a new one at
// the same path. Writes are whole lines (zerolog writes one event per
// call), so a line never straddles two files.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openReopenFile(path string) (*reopenFile, error) {
	r := &reopenFile{path: path}
	if err := r.Reopen(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// Reopen opens the path again (creating it) and closes the file written
// until now. When the path cannot be opened, the old file stays in use.
func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("access log: open %s: %w", r.path, err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// accessLogger is the logger of the access log for a, and the file behind
// it when there is one: nil (with the other log lines) when a is the zero
// value, a disabled logger when it is off, JSON lines into the file
// otherwise.
func accessLogger(a config.AccessLog) (*zerolog.Logger, *reopenFile, error) {
	switch {
	case a.Off:
		l := zerolog.Nop()
		return &l, nil, nil
	case a.Path == "":
		return nil, nil, nil
	}
	f, err := openReopenFile(a.Path)
	if err != nil {
		return nil, nil, err
	}
	l := zerolog.New(f).With().Timestamp().Logger()
	return &l, f, nil
}
