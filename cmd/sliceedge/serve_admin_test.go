package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/origin/origintest"
)

// The admin listener closes a keep-alive connection left idle for its
// IdleTimeout, so that scrapers and scripts that went away without closing
// theirs hold nothing. serve runs in the test, with the timeout shortened.
func TestAdminIdleTimeout(t *testing.T) {
	// serve sets the collector's GOGC when the environment has none; this
	// process's is not serve's to change.
	t.Setenv("GOGC", "100")
	o := origintest.NewTest(t)
	const token = "tok-0123456789abcdef"
	cfg, err := config.Parse("edge.yaml", []byte(fmt.Sprintf("listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0, token: %s}\n"+
		"store: {dir: %s, max_bytes: 1GiB}\norigins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n", token, t.TempDir(), o.URL())))
	if err != nil {
		t.Fatal(err)
	}
	var logs origintest.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, zerolog.New(&logs), serveOptions{shutdownTimeout: 5 * time.Second, adminIdleTimeout: 200 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	var admin string
	origintest.WaitFor(t, "the edge to listen", func() bool {
		for _, rec := range withMessage(logs.Lines(t), "sliceedge serving") {
			admin, _ = rec["admin"].(string)
		}
		return admin != ""
	})

	conn, err := net.Dial("tcp", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /stats HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer %s\r\n\r\n", token); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("GET /stats: %d, close %v; want 200 on a connection kept alive", resp.StatusCode, resp.Close)
	}
	// Idle now: the server must close it long before this deadline.
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle admin connection: read %d bytes, %v; want EOF (closed by the server after its idle timeout)", n, err)
	}
}
