package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerfileChecks: scripts/check-dockerfile.sh passes the shipped
// Dockerfile (docker cannot build here: no registry), and names each
// problem of a broken one.
func TestDockerfileChecks(t *testing.T) {
	orig, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	check := func(dockerfile string) (string, error) {
		f := filepath.Join(t.TempDir(), "Dockerfile")
		if err := os.WriteFile(f, []byte(dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "../../scripts/check-dockerfile.sh", f, "../..")
		cmd.Env = append(os.Environ(), "CHECK_DOCKERFILE_STATIC=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(string(orig)); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("the shipped Dockerfile: %v\n%s", err, out)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"USER 65532:65532\n", "", "sets no USER"},
		{"USER 65532:65532\n", "USER root\n", "runs as root"},
		{"FROM golang:1.26.8-bookworm AS build", "FROM golang:1.25-bookworm AS build", "want golang:1.26.8"},
		{"distroless/static-debian12:nonroot", "distroless/static-debian12:latest", "pin a tag other than latest"},
		{"RUN CGO_ENABLED=0 go build", "RUN go build", "CGO_ENABLED=0"},
		{`VOLUME ["/var/lib/sliceedge"]`, `VOLUME ["/data"]`, "no VOLUME for the store directory /var/lib/sliceedge"},
		{"EXPOSE 8080", "EXPOSE 80", "no EXPOSE 8080"},
		{`CMD ["serve", "--config", "/etc/sliceedge/edge.yaml", "--log-format", "json"]`, "CMD sliceedge serve", "CMD is in shell form"},
		{"COPY scripts/container.yaml", "COPY scripts/missing.yaml", "COPY scripts/missing.yaml: no such file"},
	} {
		if !strings.Contains(string(orig), tc.from) {
			t.Fatalf("the Dockerfile has no %q to break", tc.from)
		}
		out, err := check(strings.Replace(string(orig), tc.from, tc.to, 1))
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("with %q: %v, want a problem saying %q:\n%s", tc.to, err, tc.want, out)
		}
	}
}
