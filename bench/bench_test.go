package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sliceedge/sliceedge/bench"
	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/origin/origintest"
	"github.com/sliceedge/sliceedge/segstore"
	"github.com/sliceedge/sliceedge/slicer"
)

// tiny is a configuration that runs a workload in well under a second of
// load: real HTTP over loopback, a real Pebble store.
func tiny(workloads ...string) bench.Config {
	d := 400 * time.Millisecond
	if testing.Short() {
		d = 200 * time.Millisecond
	}
	return bench.Config{
		Workloads:     workloads,
		Duration:      d,
		Connections:   4,
		MaxRequests:   2000,
		Objects:       4,
		ObjectSize:    2 << 20,
		BigObjectSize: 8 << 20,
		Seed:          7,
	}
}

func run(t *testing.T, cfg bench.Config) *bench.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run %v: %v", cfg.Workloads, err)
	}
	if len(rep.Results) != len(cfg.Workloads) {
		t.Fatalf("Run %v: %d results", cfg.Workloads, len(rep.Results))
	}
	for _, res := range rep.Results {
		t.Logf("%s: %+v", res.Workload, res)
	}
	return rep
}

// checkInvariants holds for every workload against a correct edge.
func checkInvariants(t *testing.T, res bench.Result) {
	t.Helper()
	if res.Requests <= 0 || res.DeliveredBytes <= 0 || res.Seconds <= 0 || res.ReqPerSec <= 0 || res.MBPerSec <= 0 {
		t.Errorf("%s: nothing measured: %+v", res.Workload, res)
	}
	if res.WrongBytes != 0 || res.MixedBodies != 0 {
		t.Errorf("%s: %d wrong bytes, %d mixed bodies; want 0", res.Workload, res.WrongBytes, res.MixedBodies)
	}
	if !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.Max) {
		t.Errorf("%s: latency p50 %v p99 %v max %v out of order", res.Workload, res.P50, res.P99, res.Max)
	}
	// Every answer's first byte comes before its last, so each percentile
	// of TTFB is at most the same percentile of latency.
	if !(0 < res.TTFBP50 && res.TTFBP50 <= res.P50 && res.TTFBP99 <= res.P99 && res.TTFBP50 <= res.TTFBP99) {
		t.Errorf("%s: ttfb p50 %v p99 %v against latency p50 %v p99 %v", res.Workload, res.TTFBP50, res.TTFBP99, res.P50, res.P99)
	}
	if res.OriginRequests < 0 || res.OriginBytes < 0 {
		t.Errorf("%s: negative origin figures %d %d", res.Workload, res.OriginRequests, res.OriginBytes)
	}
	if res.Workload != "flap" && res.Errors != 0 {
		t.Errorf("%s: %d errors, first: %s", res.Workload, res.Errors, res.FirstError)
	}
}

func TestHot(t *testing.T) {
	var bar bytes.Buffer
	cfg := tiny("hot")
	cfg.Progress = &bar
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	if res.OriginRequests != 0 || res.OriginBytes != 0 {
		t.Errorf("hot after warm-up: %d origin requests, %d origin bytes; want 0", res.OriginRequests, res.OriginBytes)
	}
	if got, want := res.Extra["warm_origin_bytes"], float64(cfg.Objects)*float64(cfg.ObjectSize); got != want {
		t.Errorf("warm-up cost the origin %v bytes, want %v (each object once)", got, want)
	}
	if res.Extra["warm_passes"] != 2 { // the second pass confirms the first was stored
		t.Errorf("warm_passes %v, want 2", res.Extra["warm_passes"])
	}
	if !strings.Contains(bar.String(), "hot") || !strings.Contains(bar.String(), "req/s") {
		t.Errorf("progress output %q: want the bar and a line for hot", bar.String())
	}
}

func TestStream(t *testing.T) {
	cfg := tiny("stream")
	cfg.Connections = 32
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	// Every object whole, cold: 32 connections over 4 objects share the
	// fills, so the origin sends each object once.
	if res.Requests < int64(cfg.Objects) {
		t.Errorf("stream: %d downloads, want at least one per object (%d)", res.Requests, cfg.Objects)
	}
	if got := res.Extra["origin_bytes_per_object_byte"]; got != 1 || res.OriginBytes != int64(cfg.Objects)*cfg.ObjectSize {
		t.Errorf("stream: origin sent %d bytes (%v per object byte), want each object once", res.OriginBytes, got)
	}
	if res.DeliveredBytes != res.Requests*cfg.ObjectSize {
		t.Errorf("stream: %d bytes delivered by %d downloads of %d", res.DeliveredBytes, res.Requests, cfg.ObjectSize)
	}
}

func TestSeek(t *testing.T) {
	cfg := tiny("seek")
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	// Every range is cold and within two slices: one origin request each,
	// at most two slices of bytes.
	if res.OriginRequests != res.Requests {
		t.Errorf("%d origin requests for %d cold ranges, want one each", res.OriginRequests, res.Requests)
	}
	if res.OriginBytes > res.Requests*(2<<20) || res.OriginBytes < res.DeliveredBytes {
		t.Errorf("origin bytes %d for %d requests delivering %d bytes", res.OriginBytes, res.Requests, res.DeliveredBytes)
	}
	if res.TTFBP50 < 20*time.Millisecond {
		t.Errorf("ttfb p50 %v is below the origin's latency 20ms: the ranges were not cold", res.TTFBP50)
	}
	if res.Extra["origin_latency_ms"] != 20 || res.Extra["ttfb_p50_over_origin_latency"] < 1 {
		t.Errorf("extra %v", res.Extra)
	}
}

func TestMixed(t *testing.T) {
	res := run(t, tiny("mixed")).Results[0]
	checkInvariants(t, res)
	requested := res.Extra["requested_bytes"]
	// Cold: every byte asked for came from the origin at least once.
	if requested <= 0 || float64(res.OriginBytes) < requested || res.Extra["origin_bytes_per_requested_byte"] < 1 {
		t.Errorf("origin bytes %d for %v requested bytes (ratio %v)", res.OriginBytes, requested, res.Extra["origin_bytes_per_requested_byte"])
	}
	// Never more than every object once, each rounded to whole slices.
	if all := int64(4 * 2 << 20); res.OriginBytes > all {
		t.Errorf("origin bytes %d, more than all the objects (%d)", res.OriginBytes, all)
	}
	if _, ok := res.Extra["origin_bytes_per_delivered_byte"]; !ok {
		t.Errorf("extra %v: no origin_bytes_per_delivered_byte", res.Extra)
	}
}

func TestCollapse(t *testing.T) {
	cfg := tiny("collapse")
	cfg.Connections = 8
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	for _, k := range []string{"origin_bytes_per_object_byte", "origin_bytes_per_range_byte"} {
		if res.Extra[k] != 1 {
			t.Errorf("%s = %v, want exactly 1: every byte fetched once for %d clients", k, res.Extra[k], cfg.Connections)
		}
	}
	rounds := int64(res.Extra["rounds"])
	if rounds < 1 || res.Requests != rounds*2*int64(cfg.Connections) {
		t.Errorf("%d rounds, %d requests; want 2×%d requests a round", rounds, res.Requests, cfg.Connections)
	}
	if want := rounds * (cfg.ObjectSize + 1<<20); res.OriginBytes != want {
		t.Errorf("origin bytes %d, want %d", res.OriginBytes, want)
	}
	if res.Extra["object_wall_seconds"] <= 0 || res.Extra["range_wall_seconds"] <= 0 {
		t.Errorf("wall times missing: %v", res.Extra)
	}
}

func TestSequential(t *testing.T) {
	cfg := tiny("sequential")
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	if res.OriginBytes != 0 {
		t.Errorf("sequential after warm-up: %d origin bytes, want 0", res.OriginBytes)
	}
	if res.DeliveredBytes != res.Requests*cfg.BigObjectSize {
		t.Errorf("%d bytes delivered in %d downloads of %d", res.DeliveredBytes, res.Requests, cfg.BigObjectSize)
	}
}

// coldfill fetches one fresh object whole, once: every byte from the
// origin exactly once, and the fill time is the one request's.
func TestColdFill(t *testing.T) {
	cfg := tiny("coldfill")
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	if res.Requests != 1 || res.DeliveredBytes != cfg.BigObjectSize {
		t.Errorf("%d requests, %d bytes delivered; want one whole object of %d", res.Requests, res.DeliveredBytes, cfg.BigObjectSize)
	}
	if res.OriginBytes != cfg.BigObjectSize || res.Extra["origin_bytes_per_object_byte"] != 1 {
		t.Errorf("origin sent %d bytes (%.3f per object byte) for a cold object of %d; want it once", res.OriginBytes, res.Extra["origin_bytes_per_object_byte"], cfg.BigObjectSize)
	}
	fill := res.Extra["fill_seconds"]
	if fill <= 0 || (time.Duration(fill*float64(time.Second))-res.P50).Abs() > time.Microsecond {
		t.Errorf("fill_seconds %v, want the one request's latency %v", fill, res.P50)
	}
	// The phase holds that one request and little else, so its MB/s is the
	// object over the fill time, a little less for the phase's own start.
	if want := float64(cfg.BigObjectSize) / 1e6 / fill; fill > 0 && (res.MBPerSec > want*1.0001 || res.MBPerSec < 0.8*want || res.Seconds < fill) {
		t.Errorf("%.1f MB/s over %.4fs, want about %.1f: the object over the fill time %.4fs", res.MBPerSec, res.Seconds, want, fill)
	}
}

func TestFlap(t *testing.T) {
	cfg := tiny("flap")
	cfg.ObjectSize = 256 << 10 // many requests, so many versions, even under -race
	res := run(t, cfg).Results[0]
	if res.Requests <= 0 {
		t.Fatalf("no requests: %+v", res)
	}
	if res.MixedBodies != 0 || res.WrongBytes != 0 {
		t.Errorf("flap: %d mixed bodies, %d wrong bytes; want 0", res.MixedBodies, res.WrongBytes)
	}
	if res.Errors != 0 {
		t.Errorf("flap: %d errors other than cut and 5xx, first: %s", res.Errors, res.FirstError)
	}
	clean, cut, s5xx := int64(res.Extra["clean"]), int64(res.Extra["cut"]), int64(res.Extra["status_5xx"])
	if clean+cut+s5xx+res.Errors != res.Requests || clean == 0 {
		t.Errorf("clean %d + cut %d + 5xx %d + errors %d != requests %d", clean, cut, s5xx, res.Errors, res.Requests)
	}
	if res.Extra["origin_flaps"] < 1 {
		t.Errorf("the origin never changed an object: %v", res.Extra)
	}
}

// TestPOP runs pop on a POP of three nodes with a fixed number of
// requests: a deterministic cold mix. Every body is verified; the origin
// sends each slice touched once for the POP and once for the node alone;
// the nodes fetched from each other, and what they served their clients
// is what the clients received.
func TestPOP(t *testing.T) {
	cfg := tiny("pop")
	cfg.Duration, cfg.MaxRequests = time.Minute, 60 // the count ends the phase
	res := run(t, cfg).Results[0]
	checkInvariants(t, res)
	x := res.Extra
	if res.Requests != 60 || x["nodes"] != 3 {
		t.Errorf("%d requests to %v nodes, want 60 to 3", res.Requests, x["nodes"])
	}
	if x["origin_bytes_per_unique_byte"] != 1 || float64(res.OriginBytes) != x["unique_bytes"] || res.OriginBytes == 0 {
		t.Errorf("the POP's origin sent %d bytes for %v unique bytes (%v); want each slice touched once", res.OriginBytes, x["unique_bytes"], x["origin_bytes_per_unique_byte"])
	}
	if x["one_node_origin_bytes_per_unique_byte"] != 1 || x["one_node_errors"] != 0 || x["one_node_mb_per_second"] <= 0 || x["mb_per_second_pop_over_one_node"] <= 0 {
		t.Errorf("the same requests to one node: %v", x)
	}
	if x["peer_bytes"] <= 0 || x["peer_requests"] <= 0 || x["peer_requests_failed"] != 0 {
		t.Errorf("peer bytes %v in %v requests (%v failed): want bytes crossing between nodes, and no failure", x["peer_bytes"], x["peer_requests"], x["peer_requests_failed"])
	}
	// Every cold object crossed at most to each other node, once.
	if x["peer_bytes"] > 2*x["unique_bytes"] {
		t.Errorf("peer bytes %v for %v unique: more than each slice to each of the 2 other nodes", x["peer_bytes"], x["unique_bytes"])
	}
	if x["served_bytes"] != float64(res.DeliveredBytes) {
		t.Errorf("the nodes' metrics say they served their clients %v bytes; the clients received %d", x["served_bytes"], res.DeliveredBytes)
	}
	if x["cold_errors"] != 0 || x["cold_ttfb_owner_p50_ms"] <= 0 || x["cold_ttfb_non_owner_p50_ms"] <= 0 {
		t.Errorf("cold requests: %v", x)
	}
}

// newEdge starts a sliceedge edge in front of originURL, as an external
// target would be.
func newEdge(t *testing.T, originURL string) *httptest.Server {
	t.Helper()
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, `
listen: 127.0.0.1:0
store: {dir: unused, max_bytes: 64GiB}
origins: {default: {url: %s}}
rules: [{match: /, origin: default, slice_size: 1MiB}]
`, originURL))
	if err != nil {
		t.Fatal(err)
	}
	st, err := segstore.Open(segstore.Options{Dir: t.TempDir(), MaxBytes: cfg.Store.MaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&edge.Server{Config: cfg, Store: st, Log: zerolog.Nop()})
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return srv
}

// TestExternalTarget drives an edge that Run did not start, reading the
// origin's counters and setting its modes through /.origin/.
func TestExternalTarget(t *testing.T) {
	o := origintest.NewTest(t)
	e := newEdge(t, o.URL())
	cfg := tiny("collapse", "seek", "flap")
	cfg.ObjectSize = 256 << 10 // many flap requests, so many versions, even under -race
	cfg.Target, cfg.Origin = e.URL+"/", o.URL()
	rep := run(t, cfg)
	if rep.Target != e.URL || rep.Origin != o.URL() {
		t.Errorf("report names target %q origin %q", rep.Target, rep.Origin)
	}
	var originBytes int64
	for _, res := range rep.Results {
		if res.Workload != "flap" {
			checkInvariants(t, res)
		}
		if res.MixedBodies != 0 || res.WrongBytes != 0 {
			t.Errorf("%s: %d mixed, %d wrong", res.Workload, res.MixedBodies, res.WrongBytes)
		}
		originBytes += res.OriginBytes
	}
	if c := rep.Results[0]; c.Extra["origin_bytes_per_object_byte"] != 1 {
		t.Errorf("collapse through the control endpoints: %v", c.Extra)
	}
	if s := rep.Results[1]; s.TTFBP50 < 20*time.Millisecond {
		t.Errorf("seek ttfb p50 %v: the origin mode set through /.origin/mode did not apply", s.TTFBP50)
	}
	if f := rep.Results[2]; f.Extra["origin_flaps"] < 1 {
		t.Errorf("flap: FlapEvery set through /.origin/mode did not apply: %v", f.Extra)
	}
	if o.BodyBytes() < originBytes {
		t.Errorf("origin counted %d bytes, the report %d", o.BodyBytes(), originBytes)
	}
}

// brokenEdge answers ranges itself, without asking the origin, with a
// corrupted body: "mix" puts version 2 in the second half of a version-1
// body, "flip" changes one byte. Multi-range requests get the whole body.
func brokenEdge(t *testing.T, o *origintest.Server, corrupt string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path
		size, ok := origintest.SyntheticSize(path.Base(name))
		if !ok {
			http.NotFound(w, r)
			return
		}
		o.SetVersion(name, 2) // version 2 exists, as after a flap
		rg, status := slicer.Range{Start: 0, End: size}, http.StatusOK
		if specs, err := slicer.Parse(r.Header.Get("Range")); err == nil && len(specs) == 1 {
			if rs, err := slicer.Resolve(specs, size, slicer.Limits{}); err == nil {
				rg, status = rs[0], http.StatusPartialContent
				w.Header().Set("Content-Range", slicer.ContentRange(rg, size))
			}
		}
		body := origintest.Expected(name, 1, rg.Start, rg.End)
		switch half := int64(len(body) / 2); corrupt {
		case "mix":
			copy(body[half:], origintest.Expected(name, 2, rg.Start+half, rg.End))
		case "flip":
			body[half] ^= 0x5a
		}
		w.Header().Set("ETag", origintest.ETag(name, 1))
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCatchesBrokenEdges proves the verification: an edge that stitches
// versions, or changes a byte, is caught on every answer.
func TestCatchesBrokenEdges(t *testing.T) {
	for _, corrupt := range []string{"mix", "flip"} {
		t.Run(corrupt, func(t *testing.T) {
			o := origintest.NewTest(t)
			cfg := tiny("hot")
			cfg.Target, cfg.Origin = brokenEdge(t, o, corrupt).URL, o.URL()
			rep := run(t, cfg)
			res := rep.Results[0]
			if !rep.Failed() {
				t.Fatalf("report not failed: %+v", res)
			}
			answers := res.Requests + int64(cfg.Objects) // and the warm-up
			switch corrupt {
			case "mix":
				if res.MixedBodies != answers || res.WrongBytes == 0 {
					t.Errorf("%d mixed bodies in %d answers, %d wrong bytes", res.MixedBodies, answers, res.WrongBytes)
				}
			case "flip":
				if res.MixedBodies != 0 || res.WrongBytes != answers {
					t.Errorf("%d wrong bytes in %d answers (one each), %d mixed", res.WrongBytes, answers, res.MixedBodies)
				}
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "FAIL") {
				t.Errorf("table does not say FAIL: %v\n%s", err, table.String())
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  bench.Config
		want string
	}{
		{bench.Config{Target: "http://127.0.0.1:1"}, "target and origin go together"},
		{bench.Config{Origin: "http://127.0.0.1:1"}, "target and origin go together"},
		{bench.Config{Target: "127.0.0.1:1", Origin: "http://127.0.0.1:1"}, "not a base URL"},
		{bench.Config{Workloads: []string{"hot", "warm"}}, `unknown workload "warm"`},
		{bench.Config{ObjectSize: 100}, "object size 100 is below"},
		{bench.Config{BigObjectSize: 1 << 20}, "big object size"},
		{bench.Config{Connections: -1}, "connections -1"},
		{bench.Config{Nodes: 1}, "nodes 1: want 2 to 16"},
		{bench.Config{Target: "http://127.0.0.1:1", Origin: "http://127.0.0.1:1", Workloads: []string{"pop"}}, "run it without target and origin"},
		// Nothing listens on port 1: the control endpoints do not answer.
		{bench.Config{Target: "http://127.0.0.1:1", Origin: "http://127.0.0.1:1"}, "is it `sliceedge origin`"},
	} {
		rep, err := bench.Run(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || rep != nil {
			t.Errorf("Run(%+v): %v, want an error containing %q and no report", tc.cfg, err, tc.want)
		}
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cfg := tiny("hot", "mixed", "flap")
	cfg.Duration = time.Minute
	began := time.Now()
	rep, err := bench.Run(ctx, cfg)
	if err == nil || rep == nil {
		t.Fatalf("Run after cancel: %v, report %v", err, rep)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("Run took %v to stop after its context ended", d)
	}
}

func TestReportOutputs(t *testing.T) {
	rep := run(t, tiny("collapse", "sequential"))
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(table.String(), "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "workload ") || strings.HasPrefix(l, "collapse ") && strings.Contains(l, "  ") || strings.HasPrefix(l, "sequential ") {
			rows = append(rows, l)
		}
	}
	if len(rows) < 3 || len([]rune(rows[0])) != len([]rune(rows[1])) || len([]rune(rows[1])) != len([]rune(rows[2])) {
		t.Errorf("table rows not aligned:\n%s", table.String())
	}
	for _, want := range []string{"origin_bytes_per_object_byte 1.00", "ok: every body verified", "MiB"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 2 || back.Results[0].P99 != rep.Results[0].P99 || back.Results[0].Extra["rounds"] != rep.Results[0].Extra["rounds"] {
		t.Errorf("JSON round trip lost figures: %s", b)
	}
	for _, key := range []string{`"workload":"collapse"`, `"p99_ns":`, `"origin_bytes":`, `"wrong_bytes":0`, `"mixed_bodies":0`, `"machine":`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
}
