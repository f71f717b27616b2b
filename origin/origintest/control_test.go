package origintest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// control sends a control request with an optional JSON body and returns
// the status and the body.
func control(t *testing.T, c *http.Client, s *Server, method, target, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp.StatusCode, b
}

func controlStats(t *testing.T, c *http.Client, s *Server) Stats {
	t.Helper()
	code, body := control(t, c, s, http.MethodGet, "/.origin/stats", "")
	if code != 200 {
		t.Fatalf("GET /.origin/stats: %d %s", code, body)
	}
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /.origin/stats: %v in %s", err, body)
	}
	return st
}

func TestControlStatsAndReset(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	if st := controlStats(t, c, s); st != (Stats{}) {
		t.Fatalf("fresh server: %+v", st)
	}
	get(t, c, s, "/100.bin")
	get(t, c, s, "/100.bin", "Range: bytes=0-9")
	get(t, c, s, "/missing")
	code, body := control(t, c, s, http.MethodGet, "/.origin/stats", "")
	if code != 200 || !strings.Contains(string(body), `"requests":3`) || !strings.Contains(string(body), `"body_bytes":110`) {
		t.Fatalf("stats: %d %s, want requests 3 and body_bytes 110", code, body)
	}
	// Control requests count nowhere, and are not recorded.
	if s.Requests() != 3 || len(s.LastRequests()) != 3 {
		t.Fatalf("after control requests: Requests %d, %d recorded; want 3, 3", s.Requests(), len(s.LastRequests()))
	}
	if code, body := control(t, c, s, http.MethodPost, "/.origin/reset", ""); code != http.StatusNoContent {
		t.Fatalf("reset: %d %s", code, body)
	}
	if st := controlStats(t, c, s); st != (Stats{}) || s.PathRequests("/100.bin") != 0 {
		t.Fatalf("after reset: %+v, path requests %d", st, s.PathRequests("/100.bin"))
	}
}

func TestControlObject(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	code, body := control(t, c, s, http.MethodGet, "/.origin/object?path=/v/2KiB.bin", "")
	var info ObjectInfo
	if code != 200 || json.Unmarshal(body, &info) != nil || info != (ObjectInfo{Size: 2048, Version: 1}) {
		t.Fatalf("object: %d %s, want size 2048 version 1", code, body)
	}
	s.Bump("/v/2KiB.bin")
	if _, body = control(t, c, s, http.MethodGet, "/.origin/object?path=/v/2KiB.bin", ""); !strings.Contains(string(body), `"version":2`) {
		t.Fatalf("after Bump: %s", body)
	}
	for _, target := range []string{"/.origin/object?path=/v/none", "/.origin/object"} {
		if code, _ := control(t, c, s, http.MethodGet, target, ""); code != 404 {
			t.Errorf("GET %s: %d, want 404", target, code)
		}
	}
}

func TestControlMode(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	const name = "/m/1KiB.bin"

	// A path mode: that path is slow, others are not.
	if code, body := control(t, c, s, http.MethodPut, "/.origin/mode?path="+name, `{"Latency":50000000,"FlapEvery":2}`); code != http.StatusNoContent {
		t.Fatalf("PUT path mode: %d %s", code, body)
	}
	began := time.Now()
	get(t, c, s, name)
	if d := time.Since(began); d < 50*time.Millisecond {
		t.Errorf("GET with path mode Latency 50ms took %v", d)
	}
	get(t, c, s, name)
	if _, v, _ := s.Object(name); v != 1 {
		t.Fatalf("version after 2 requests with FlapEvery 2: %d, want 1", v)
	}
	get(t, c, s, name)
	if _, v, _ := s.Object(name); v != 2 {
		t.Fatalf("version after 3 requests with FlapEvery 2: %d, want 2", v)
	}
	began = time.Now()
	get(t, c, s, "/m/other/1KiB.bin")
	if d := time.Since(began); d >= 50*time.Millisecond {
		t.Errorf("another path took %v: the path mode leaked", d)
	}

	// DELETE makes the path use the server's mode again.
	if code, body := control(t, c, s, http.MethodDelete, "/.origin/mode?path="+name, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE path mode: %d %s", code, body)
	}
	began = time.Now()
	get(t, c, s, name)
	if d := time.Since(began); d >= 50*time.Millisecond {
		t.Errorf("after DELETE the path took %v", d)
	}

	// No path: the server's mode.
	if code, body := control(t, c, s, http.MethodPut, "/.origin/mode", `{"Status":503}`); code != http.StatusNoContent {
		t.Fatalf("PUT global mode: %d %s", code, body)
	}
	resp, _ := get(t, c, s, "/x/1KiB.bin")
	wantStatus(t, resp, 503)
	// Control still works whatever the mode.
	if st := controlStats(t, c, s); st.Requests == 0 {
		t.Fatalf("stats under Status 503: %+v", st)
	}
	if code, _ := control(t, c, s, http.MethodPut, "/.origin/mode", `{}`); code != http.StatusNoContent {
		t.Fatalf("PUT empty mode: %d", code)
	}
	resp, _ = get(t, c, s, "/x/1KiB.bin")
	wantStatus(t, resp, 200)
}

func TestControlErrors(t *testing.T) {
	s := NewTest(t)
	c := client(t)
	for _, tc := range []struct {
		method, target, body string
		code                 int
	}{
		{"PUT", "/.origin/mode?path=/a.bin", `{"Latncy":1}`, 400},
		{"PUT", "/.origin/mode?path=/a.bin", `{"LieContentRange":"sometimes"}`, 400},
		{"PUT", "/.origin/mode", `not json`, 400},
		{"PUT", "/.origin/mode", `{"Latency":"20ms"}`, 400},
		{"DELETE", "/.origin/mode", "", 400},
		{"POST", "/.origin/stats", "", 405},
		{"GET", "/.origin/reset", "", 405},
		{"GET", "/.origin/nothing", "", 404},
		{"GET", "/.origin/1KiB.bin", "", 404}, // never an object
	} {
		if code, body := control(t, c, s, tc.method, tc.target, tc.body); code != tc.code {
			t.Errorf("%s %s %q: %d %s, want %d", tc.method, tc.target, tc.body, code, body, tc.code)
		}
	}
	if s.Requests() != 0 {
		t.Errorf("control requests counted: Requests %d", s.Requests())
	}
}
