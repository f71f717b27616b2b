package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal and returns its terminal side (what a
// process's stderr is when it runs in a terminal) and its controlling side.
func openPTY(t *testing.T) (tty, ctl *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty, ctl
}

// The log is for people on a terminal and JSON lines everywhere else,
// unless --log-format says which.
func TestLoggerConsoleOnTerminal(t *testing.T) {
	tty, ctl := openPTY(t)
	log, err := newLogger(tty, "auto", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("k", "v").Msg("hello")
	buf := make([]byte, 4096)
	n, err := ctl.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if line := string(buf[:n]); strings.HasPrefix(line, "{") || !strings.Contains(line, "hello") || !strings.Contains(line, "k=") {
		t.Errorf("auto on a terminal wrote %q, want a console line", line)
	}

	var b bytes.Buffer
	if log, err = newLogger(&b, "auto", "info"); err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hello")
	if !strings.HasPrefix(b.String(), "{") {
		t.Errorf("auto into a pipe or file wrote %q, want JSON", b.String())
	}
	b.Reset()
	if log, err = newLogger(&b, "console", "info"); err != nil {
		t.Fatal(err)
	}
	log.Info().Str("k", "v").Msg("hello")
	if out := b.String(); strings.HasPrefix(out, "{") || !strings.Contains(out, "hello") || !strings.Contains(out, "k=") {
		t.Errorf("--log-format console wrote %q", out)
	}
}
