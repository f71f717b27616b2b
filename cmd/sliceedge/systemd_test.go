package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// notifySocket is a systemd notify socket: a unixgram socket collecting
// the messages a service sends it.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// messages returns the messages received so far.
func (n *notifySocket) messages() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// index is the position of the first message holding state at or after
// from, or -1.
func index(msgs []string, state string, from int) int {
	for i := max(from, 0); i < len(msgs); i++ {
		for _, line := range strings.Split(msgs[i], "\n") {
			if line == state {
				return i
			}
		}
	}
	return -1
}

// TestServeSystemdNotify: under a Type=notify unit, serve says READY=1
// once it serves, pings WATCHDOG=1 at half WATCHDOG_USEC, says
// RELOADING=1 then READY=1 around a SIGHUP reload, and STOPPING=1 when
// SIGTERM begins the drain, after which /readyz answers 503.
func TestServeSystemdNotify(t *testing.T) {
	o := origintest.NewTest(t)
	o.SetMode(origintest.Mode{Bandwidth: 1 << 20}) // a download in flight holds the drain open
	ns := newNotifySocket(t)
	listen, admin := freeAddr(t), freeAddr(t)
	s := startServeEnv(t, fmt.Sprintf("listen: %s\nadmin: {listen: %s, token: notify-test-admin-token-1234}\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n",
		listen, admin, t.TempDir(), o.URL()),
		[]string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=200000"}, "--shutdown-timeout", "3s")

	origintest.WaitFor(t, "READY=1 and two watchdog pings", func() bool {
		m := ns.messages()
		r := index(m, "READY=1", 0)
		return r >= 0 && index(m, "WATCHDOG=1", index(m, "WATCHDOG=1", r)+1) > r
	})
	m := ns.messages()
	if r := index(m, "READY=1", 0); index(m, "STATUS=serving on "+listen, r) != r {
		t.Fatalf("READY=1 came without STATUS naming the listener: %q", m)
	}

	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "RELOADING=1 then READY=1", func() bool {
		m := ns.messages()
		r := index(m, "RELOADING=1", 0)
		return r >= 0 && index(m, "READY=1", r) > r
	})

	// A slow download keeps the drain open while /readyz is asked.
	go func() {
		if resp, err := http.Get("http://" + listen + "/slow/8MiB.bin"); err == nil {
			resp.Body.Close()
		}
	}()
	origintest.WaitFor(t, "the download to start", func() bool { return o.PathBodyBytes("/slow/8MiB.bin") > 0 })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "STOPPING=1", func() bool { return index(ns.messages(), "STOPPING=1", 0) >= 0 })
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatalf("/readyz while draining: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d, want 503", resp.StatusCode)
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after SIGTERM")
	}
}

// TestSystemdUnitVerifies: systemd-analyze verify accepts the shipped
// unit (with ExecStart pointing at a binary that exists here).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: install Debian's systemd package (apt-get install systemd); .ci/run does")
	}
	bin := buildBinary(t)
	unit, err := os.ReadFile("../../scripts/sliceedge.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify\n", "WatchdogSec=", "NotifyAccess="} {
		if !strings.Contains(string(unit), want) {
			t.Fatalf("the unit has no %q", want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sliceedge.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/sliceedge", bin)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "sliceedge.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUpgradeKeepsSystemdWatchdog: after a SIGUSR2 upgrade under a
// Type=notify unit with a watchdog for the old process (WATCHDOG_PID),
// the new process says MAINPID= and READY=1 and takes over the watchdog
// pings: systemd killed the new process 30 s after an upgrade before it
// did (found by a trial under systemd).
func TestUpgradeKeepsSystemdWatchdog(t *testing.T) {
	o := origintest.NewTest(t)
	ns := newNotifySocket(t)
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: %s\nstore: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n",
		freeAddr(t), t.TempDir(), o.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &origintest.LogBuffer{}
	// The shell's pid is the edge's after exec: systemd's WATCHDOG_PID.
	cmd := exec.Command("sh", "-c", `WATCHDOG_PID=$$ exec "$0" serve --config "$1" --log-format json`, bin, cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=200000")
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	parent := cmd.Process.Pid
	go cmd.Wait()
	child := 0
	t.Cleanup(func() {
		syscall.Kill(parent, syscall.SIGKILL)
		if child != 0 {
			syscall.Kill(child, syscall.SIGKILL)
		}
	})
	origintest.WaitFor(t, "READY=1", func() bool { return index(ns.messages(), "READY=1", 0) >= 0 })
	if err := syscall.Kill(parent, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "MAINPID= of the new process", func() bool {
		for _, m := range ns.messages() {
			for _, l := range strings.Split(m, "\n") {
				if p, ok := strings.CutPrefix(l, "MAINPID="); ok {
					child, _ = strconv.Atoi(p)
				}
			}
		}
		return child != 0
	})
	if child == parent {
		t.Fatalf("MAINPID=%d is the old process", child)
	}
	origintest.WaitFor(t, "the old process to exit", func() bool { return processGone(parent) })
	pings := func() int {
		n := 0
		for _, m := range ns.messages() {
			n += strings.Count(m, "WATCHDOG=1")
		}
		return n
	}
	before := pings()
	origintest.WaitFor(t, "watchdog pings from the new process", func() bool { return pings() >= before+3 })
	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	origintest.WaitFor(t, "the new process to stop", func() bool { return processGone(child) })
	if !strings.Contains(logs.String(), `"upgrade":true`) {
		t.Errorf("no serving line of the new process:\n%s", logs.String())
	}
}
