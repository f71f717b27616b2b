package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDist: make dist in a clone whose HEAD carries a tag packs a tarball
// named and stamped with the tag, with its checksum, the binary, the
// systemd files, the sample config, shell completion that bash runs, and
// a man page generated from the commands.
func TestDist(t *testing.T) {
	for _, tool := range []string{"git", "make", "tar", "sha256sum", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing", tool)
		}
	}
	sh := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v in %s: %v\n%s", args, dir, err, out)
		}
		return string(out)
	}
	clone := filepath.Join(t.TempDir(), "src")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The working tree's files (committed or not, but not ignored) in a
	// new repository whose one commit is tagged.
	if err := os.MkdirAll(clone, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(root, "bash", "-c", `git -c safe.directory='*' ls-files -z -co --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf - | tar -C "$0" -xf -`, clone)
	sh(clone, "git", "init", "-q")
	sh(clone, "git", "add", "-A")
	sh(clone, "git", "commit", "-qm", "dist test")
	sh(clone, "git", "tag", "v0.9.0-test")
	out := filepath.Join(t.TempDir(), "out")
	sh(clone, "make", "dist", "DISTDIR="+out)

	const name = "sliceedge-v0.9.0-test-linux-amd64"
	if sums := sh(out, "sha256sum", "-c", "SHA256SUMS"); !strings.Contains(sums, name+".tar.gz: OK") {
		t.Fatalf("SHA256SUMS: %s", sums)
	}
	x := t.TempDir()
	sh(x, "tar", "xzf", filepath.Join(out, name+".tar.gz"))
	d := filepath.Join(x, name)
	for _, f := range []string{"sliceedge", "systemd/sliceedge.service", "systemd/sliceedge.sysusers", "edge.yaml", "README.md", "docs/deploying.md",
		"completion/sliceedge.bash", "completion/_sliceedge", "completion/sliceedge.fish", "man/sliceedge.1"} {
		if st, err := os.Stat(filepath.Join(d, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if v := sh(d, "./sliceedge", "version"); !strings.HasPrefix(v, "sliceedge v0.9.0-test (commit ") {
		t.Errorf("version: %q, want the tag", v)
	}
	man, _ := os.ReadFile(filepath.Join(d, "man/sliceedge.1"))
	for _, want := range []string{".TH sliceedge 1", "warm", "purge", "SLICEEDGE_"} {
		if !strings.Contains(string(man), want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
	// The bash completion, sourced by bash, completes commands and flags
	// by asking the binary.
	got := sh(d, "bash", "-c", `PATH=$PWD:$PATH; source completion/sliceedge.bash
COMP_WORDS=(sliceedge pu); COMP_CWORD=1; _sliceedge_complete; echo "${COMPREPLY[@]}"
COMP_WORDS=(sliceedge warm --he); COMP_CWORD=2; _sliceedge_complete; echo "${COMPREPLY[@]}"`)
	if got != "purge\n--head --help\n" {
		t.Errorf("bash completion: %q", got)
	}
}
