package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

// With max_connections: 2 and two client connections open (idle, kept
// alive), a third connection's request is answered only once one of the
// two closes; a later request on an open one is answered meanwhile.
func TestServeMaxConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; covered by the full run")
	}
	o := origintest.NewTest(t)
	listen := freeAddr(t)
	s := startServe(t, fmt.Sprintf("listen: %s\nmax_connections: 2\nstore: {dir: %s, max_bytes: 1GiB}\n"+
		"origins: {default: {url: %q}}\nrules: [{match: /, origin: default}]\n", listen, t.TempDir(), o.URL()))
	if r := withMessage(s.logs.Lines(t), "sliceedge serving"); len(r) != 1 || r[0]["max_connections"] != 2.0 {
		t.Errorf("serving line %v: want max_connections 2", r)
	}

	// get sends a GET on c and returns the status of its answer.
	get := func(c net.Conn, br *bufio.Reader) (int, error) {
		if _, err := fmt.Fprintf(c, "GET /a/64KiB.bin HTTP/1.1\r\nHost: %s\r\n\r\n", listen); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c, bufio.NewReader(c)
	}
	c1, br1 := dial()
	c2, br2 := dial()
	for i, c := range []net.Conn{c1, c2} {
		if code, err := get(c, []*bufio.Reader{br1, br2}[i]); code != 200 || err != nil {
			t.Fatalf("connection %d: %d, %v", i+1, code, err)
		}
	}

	// The kernel completes the third connection (it waits in the accept
	// queue), so its request can be written.
	c3, br3 := dial()
	type answer struct {
		code int
		err  error
	}
	third := make(chan answer, 1)
	go func() {
		code, err := get(c3, br3)
		third <- answer{code, err}
	}()
	if code, err := get(c2, br2); code != 200 || err != nil {
		t.Fatalf("a request on an open connection, after the third connection's: %d, %v", code, err)
	}
	select {
	case a := <-third:
		t.Fatalf("the third connection was answered (%d, %v) while two were open", a.code, a.err)
	default:
	}
	c1.Close()
	if a := <-third; a.code != 200 || a.err != nil {
		t.Errorf("third connection after the first closed: %d, %v; want 200", a.code, a.err)
	}
}
