package edge

// Metric metadata: the library (VictoriaMetrics/metrics, with
// ExposeMetadata) writes a TYPE line and an empty HELP line before each
// family; help fills the HELP lines in, so that every family says what it
// counts (`promtool check metrics` finds nothing to report). A family
// missing from help is a test failure (TestMetricsLint), not a silent gap.

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	vm "github.com/VictoriaMetrics/metrics"
)

var exposeOnce sync.Once

// help is each metric family's HELP text.
var help = map[string]string{
	"sliceedge_build_info":                      "Build of the running sliceedge: version, commit and Go version as labels; always 1.",
	"sliceedge_requests_total":                  "Client requests answered, by status, cache outcome (X-Cache) and rule (the rule's match).",
	"sliceedge_response_bytes_total":            "Body bytes sent to clients from the cache path (every answer but pass-throughs).",
	"sliceedge_pass_bytes_total":                "Body bytes sent to clients by pass-throughs (requests the edge does not cache).",
	"sliceedge_slices_total":                    "Slices (or parts of them) sent to clients, by result: hit (from the store) or miss (from an origin fill).",
	"sliceedge_origin_requests_total":           "Requests sent to origins, by kind: discover, revalidate, fill, pass.",
	"sliceedge_origin_bytes_total":              "Body bytes read from origins by slice fills.",
	"sliceedge_origin_errors_total":             "Origin fetches that failed, by kind (timeout, connect, status_5xx, validator_mismatch, bad_content_range, bad_answer, headers_too_large, range_refused, truncated, other).",
	"sliceedge_origin_no_range_total":           "Origin answers of 200 (the whole object) to a request with Range.",
	"sliceedge_origin_failovers_total":          "Origin fetches sent to another member of the origin's pool after one failed before its answer.",
	"sliceedge_origin_member_up":                "1 while the origin pool member takes requests, 0 while a health check has it out of the pool.",
	"sliceedge_origin_member_requests_total":    "Fetches answered by an origin pool member, by result: ok, failed (no answer, a gateway error, a body cut short), status (another status, relayed).",
	"sliceedge_origin_member_response_seconds":  "Seconds from sending a fetch to an origin pool member to its answer's headers.",
	"sliceedge_origin_health_checks_total":      "Active health checks of origin pool members, by result: ok or failed.",
	"sliceedge_fills_dropped_total":             "Origin fetches cancelled because every client reading them had gone (abandoned_fills: drop).",
	"sliceedge_fills_in_flight":                 "Slice fills from origins (or peers) in flight now.",
	"sliceedge_collapsed_total":                 "Slice claims that joined a fetch already in flight instead of fetching again.",
	"sliceedge_lookups_collapsed_total":         "Requests that waited for another request's discovery or revalidation of the same object.",
	"sliceedge_revalidations_total":             "Conditional requests for stale objects, by outcome: not_modified, changed, error, contradicted, uncacheable.",
	"sliceedge_limit_trips_total":               "Requests a limit turned away or passed through, by limit.",
	"sliceedge_responses_cut_total":             "Answers that ended before their last byte after their status line was sent, by reason: origin, origin_changed, unproven, client, shutdown.",
	"sliceedge_stale_served_total":              "Stale objects served, by reason: while_revalidate, if_error.",
	"sliceedge_flap_restarts_total":             "Requests restarted on a new version because the origin changed before their first byte.",
	"sliceedge_flap_aborts_total":               "Answers cut short (or 502) because the origin changed after their first byte.",
	"sliceedge_unproven_refetches_total":        "Objects without validator fetched again as a new version because a slice a request needed was missing.",
	"sliceedge_store_errors_total":              "Store reads and writes the edge saw fail (it served from the origin instead).",
	"sliceedge_store_bytes":                     "Bytes of slices stored.",
	"sliceedge_store_budget_bytes":              "The store's byte budget (store.max_bytes).",
	"sliceedge_store_disk_bytes":                "Bytes the store takes on disk: slice files and index.",
	"sliceedge_store_objects":                   "Objects (metas) in the store.",
	"sliceedge_store_slices":                    "Slices in the store.",
	"sliceedge_store_evictions_total":           "Slices evicted to keep the store within its budget.",
	"sliceedge_store_evicted_bytes_total":       "Bytes of slices evicted to keep the store within its budget.",
	"sliceedge_store_write_errors_total":        "Slice and meta writes the store failed.",
	"sliceedge_store_verified_total":            "Slice reads whose checksums were verified.",
	"sliceedge_store_scrubbed_bytes_total":      "Bytes of stored slices the scrubber read back and verified.",
	"sliceedge_store_corrupt_total":             "Stored slices found damaged (checksum mismatch) and dropped.",
	"sliceedge_ttfb_seconds":                    "Seconds from a request to its first body byte.",
	"sliceedge_request_duration_seconds":        "Seconds from a request to the end of its answer.",
	"sliceedge_peer_refused_total":              "Requests on the peer listener without the POP's token (403).",
	"sliceedge_peer_requests_total":             "Fetches sent to another node of the POP, by peer and result: ok, status, version_changed, failed, body_failed.",
	"sliceedge_peer_bytes_total":                "Body bytes read from another node of the POP, by peer.",
	"sliceedge_cluster_members":                 "Live members of the POP, this node included.",
	"sliceedge_cluster_ownership_changes_total": "Changes of the POP's membership that moved slice groups to other owners.",
	"sliceedge_cluster_purges_received_total":   "Purges received from other nodes of the POP.",
	"sliceedge_cluster_purges_applied_total":    "Purges from other nodes of the POP applied here.",
	"sliceedge_connections":                     "Client connections open now, by listener (edge, admin, peer).",
	"sliceedge_connections_total":               "Client connections accepted, by listener (edge, admin, peer).",
	"sliceedge_admin_auth_failures_total":       "Admin API requests refused for a missing or wrong token.",
}

// helpFor is the HELP text of family name: its own, or for the Go
// runtime's and the process's, where the text says.
func helpFor(name string) string {
	if h, ok := help[name]; ok {
		return h
	}
	switch {
	case strings.HasPrefix(name, "go_"):
		return "Go runtime metric " + name + " (see the runtime/metrics and runtime.MemStats documentation)."
	case strings.HasPrefix(name, "process_"):
		return "Process metric " + name + " from /proc (CPU seconds, memory, I/O, pressure stalls)."
	}
	return ""
}

// renamed are families of the library's Go runtime metrics whose names
// break Prometheus's conventions (promtool: counters end in _total, only
// histograms and summaries in _count), under names that keep them.
var renamed = map[string]string{
	"go_cgo_calls_count": "go_cgo_calls_total",
	"go_gc_forced_count": "go_gc_forced_total",
	"go_cpu_count":       "go_cpus",
}

// writeWithHelp writes what write writes, with the HELP lines filled in,
// the families of renamed renamed, and the library's process counters
// (process_io_*_total, exposed as gauges) typed as the counters they are.
func writeWithHelp(w io.Writer, write func(io.Writer)) {
	var buf bytes.Buffer
	write(&buf)
	bw := bufio.NewWriter(w)
	for line := range strings.SplitSeq(buf.String(), "\n") {
		if line == "" {
			continue
		}
		if comment, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.Fields(comment)
			if len(f) >= 2 {
				if to, ok := renamed[f[1]]; ok {
					f[1] = to
				}
				switch {
				case f[0] == "HELP" && len(f) == 2:
					if h := helpFor(f[1]); h != "" {
						f = append(f, h)
					}
				case f[0] == "TYPE" && len(f) == 3 && f[2] == "gauge" && strings.HasSuffix(f[1], "_total"):
					f[2] = "counter"
				}
				line = "# " + strings.Join(f, " ")
			}
		} else if i := strings.IndexAny(line, "{ "); i > 0 {
			if to, ok := renamed[line[:i]]; ok {
				line = to + line[i:]
			}
		}
		bw.WriteString(line)
		bw.WriteByte('\n')
	}
	bw.Flush()
}

// scrapeCounters are counters whose value is read at scrape time from
// where it is kept (the store's figures, the fill registry): vm.Counter
// values set before each write, so that they are exposed as counters.
type scrapeCounter struct {
	c   *vm.Counter
	get func() uint64
}

// TrackConns returns an http.Server.ConnState hook that counts the
// connections of the named listener: sliceedge_connections{listener} open
// now, and sliceedge_connections_total{listener} accepted.
func (s *Server) TrackConns(listener string) func(net.Conn, http.ConnState) {
	m := s.metrics()
	l := strconv.Quote(listener)
	open := m.set.GetOrCreateGauge(`sliceedge_connections{listener=`+l+`}`, nil)
	total := m.set.GetOrCreateCounter(`sliceedge_connections_total{listener=` + l + `}`)
	return func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Inc()
			total.Inc()
		case http.StateHijacked, http.StateClosed:
			open.Dec()
		}
	}
}
