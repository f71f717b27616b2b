package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// TestWarm: warm fetches URLs from its arguments and a list through an
// edge, whole or their first bytes, and says what it did; what it warmed
// is stored, a second run finds it so, and a failure is named and fails
// the command.
func TestWarm(t *testing.T) {
	n := startNode(t)
	list := filepath.Join(t.TempDir(), "urls.txt")
	if err := os.WriteFile(list, []byte("# the catalogue\n\n"+n.edge.URL+"/warm/c/3MiB.bin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"warm", "--head", "1MiB", "--file", list, n.edge.URL + "/warm/a/4MiB.bin", n.edge.URL + "/warm/b/2MiB.bin"}
	out, err := run(t, args...)
	if err != nil || !strings.HasPrefix(out, "warmed 3 of 3 objects (0 already stored), 3.0 MiB read in ") {
		t.Fatalf("warm --head: %v\n%s", err, out)
	}
	origintest.WaitFor(t, "fills to settle", func() bool { return n.srv.InFlight() == 0 })
	out, err = run(t, "ls", "--config", n.cfgFile, "--json")
	if err != nil || strings.Count(out, `"stored":1,`) != 3 {
		t.Fatalf("after warm --head 1MiB, want one slice of each stored:\n%s", out)
	}
	out, err = run(t, args...)
	if err != nil || !strings.HasPrefix(out, "warmed 3 of 3 objects (3 already stored), 3.0 MiB read") {
		t.Errorf("warm again: %v\n%s", err, out)
	}
	// Whole objects, one of them through --edge with another host name.
	out, err = run(t, "warm", "-j", "2", "--edge", n.edge.URL, n.edge.URL+"/warm/a/4MiB.bin", "http://edge.test/warm/d/1MiB.bin")
	if err != nil || !strings.HasPrefix(out, "warmed 2 of 2 objects (0 already stored), 5.0 MiB read") {
		t.Errorf("warm whole: %v\n%s", err, out)
	}
	origintest.WaitFor(t, "fills to settle", func() bool { return n.srv.InFlight() == 0 })
	out, _ = run(t, "ls", "--config", n.cfgFile)
	if !strings.Contains(out, "4/4") || !strings.Contains(out, "edge.test/warm/d/1MiB.bin") {
		t.Errorf("after warming whole objects:\n%s", out)
	}

	out, err = run(t, "warm", n.edge.URL+"/warm/nosize.bin", n.edge.URL+"/warm/e/64KiB.bin")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 failed") || !strings.Contains(out, "failed: "+n.edge.URL+"/warm/nosize.bin: 404") {
		t.Errorf("a missing object: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{"warm"}, {"warm", "/relative"}, {"warm", "--head", "8MB", n.edge.URL + "/x/1MiB.bin"}} {
		if _, err := run(t, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
