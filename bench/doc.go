// Package bench is sliceedge's load generator (`sliceedge bench`): named
// workloads that send real HTTP to an edge, verify every body byte for byte
// against the deterministic origin (origin/origintest), and report what
// each measured.
//
// # Targets
//
// With no [Config.Target], [Run] starts an origintest origin and a sliceedge
// edge (one "/" rule, 1 MiB slices, a Pebble store in a temporary
// directory) on 127.0.0.1 and removes them after. With a Target (sliceedge,
// nginx, Varnish, ...), [Config.Origin] names the origintest origin behind
// it (`sliceedge origin`); bench reads its counters and sets the origin
// modes a workload needs through its /.origin/ control endpoints
// (origintest.Server.ControlHandler). Every run puts its objects under a
// fresh random prefix, /bench/<run id>/<workload>/<size>-<i>.bin, so every
// target starts cold, also when run again.
//
// # Workloads
//
// Each measured phase stops starting requests after [Config.Duration] or
// [Config.MaxRequests], whichever comes first, and is cut off (requests in
// flight cancelled) a while later, so a run always ends by itself.
// Warm-ups are bounded by their size.
//
//   - hot: fetches Objects objects of ObjectSize whole (the warm-up), then
//     random ranges of 64 KiB-1 MiB at random offsets from Connections
//     connections. Origin figures must be 0: everything is served from the
//     store. The warm-up repeats, at most 3 passes, until a pass costs the
//     origin nothing, since a store may refuse writes under a burst of fills.
//   - seek: cold ranges of 64 KiB-1 MiB, each in 2 MiB no other request
//     touches, in the second half of BigObjectSize objects whose origin adds
//     20 ms of latency and paces each response to 50 MiB/s: viewers seeking
//     into videos. TTFB against the origin's latency says whether the first
//     byte waits for more than the origin's first byte.
//   - mixed: a seeded Zipf stream over Objects cold objects: ranges of
//     1 KiB-4 MiB (log-uniform), 5% full GETs, 10% multi-range requests.
//     Origin bytes are compared with the bytes requested (the union of the
//     byte ranges asked for, per object) and the bytes delivered.
//   - collapse: Connections clients at once for one cold object, whole, then
//     for one cold aligned 1 MiB range of another, in rounds until the
//     duration passes. A collapsing cache fetches each byte once: origin
//     bytes per object byte and per range byte are 1.00.
//   - sequential: warms one BigObjectSize object with parallel 8 MiB ranges,
//     then downloads it whole over one connection, again and again: the
//     store's streaming speed.
//   - flap: random ranges of 64 KiB-2 MiB (and 10% full GETs) of a few
//     objects whose origin changes them every 3 requests and sends
//     max-age=0, so the edge keeps revalidating into new versions. A cache
//     may answer cleanly, cut a body when the version changes under it, or
//     answer 5xx; it must never send bytes of two versions in one body.
//   - stream: Objects cold objects of ObjectSize downloaded whole, from
//     Connections connections at once, each going through all of them in
//     its own order. With a thousand connections, watch the target's
//     memory (scripts/memory.sh does); origin bytes per object byte should
//     be 1.00, each object fetched once however many stream it.
//   - coldfill: one fresh BigObjectSize object downloaded whole, once, over
//     one connection: the time a cold fill through the cache takes, request
//     to last byte (fill_seconds; MB/s is the object over it), and origin
//     bytes per object byte (1.00).
//   - pop: starts [Config.Nodes] sliceedge nodes as one POP (package
//     cluster), and one node standing alone, in this process in front of
//     the run's origin: each on sliceedge's default configuration
//     (config/default.yaml) but for its store (a temporary directory) and
//     loopback ports, the POP's nodes with a cluster section (a secret of
//     the run's). A seeded stream over Objects cold objects of ObjectSize
//     (Zipf popularity, ranges of 64 KiB-4 MiB, 20% full GETs), from
//     Connections connections, sends each request to the next node in
//     turn, with one Host, as a balancer would: the measured phase. Origin
//     bytes per unique byte (the slices the requests touched) is 1.00 when
//     the POP fetches each slice once. served_bytes (what the nodes sent
//     their clients) and peer_bytes (what crossed from one node to
//     another; each crossing once) come from the nodes' metrics. The same
//     requests, in the same order, go then to the node alone (of other
//     cold objects): the POP's MB/s over one node's. Last, 16 cold ranges
//     of fresh objects, one at a time, to the node owning the range's
//     group (cluster.Node.Owner), then 16 to another node: time to first
//     byte through the owner and through a node that asks it. pop runs
//     only without a Target.
//
// # Figures
//
// Per workload ([Result]), over the measured phase:
//
//   - requests, req/s, MB/s: answers, over wall time; MB/s counts object
//     bytes delivered (multipart framing excluded) in 10^6 bytes.
//   - p50, p99, max: latency from sending the request to the last body byte;
//     ttfb p50, p99: to the first body byte. Over clean answers only.
//   - origin req, origin bytes: the requests and object body bytes the
//     origin counted (settled: read once they stop moving).
//   - errors: transport failures, statuses other than 200/206, bodies cut
//     short, framing or Content-Range that do not hold what was asked. For
//     flap, cut bodies and 5xx are expected and counted in Extra (clean,
//     cut, status_5xx) instead.
//   - wrong bytes: body bytes that are not the bytes of the version the
//     answer's ETag names; mixed: bodies holding bytes of two or more
//     versions (origintest.WhichVersion). Both count warm-ups too, and both
//     must be 0 whatever the load: [Report.Failed].
//   - Extra: the workload's own figures, named with their unit
//     (_seconds, _bytes, _ms, x_per_y for ratios): warm_* for warm-ups,
//     origin_bytes_per_requested_byte, origin_bytes_per_object_byte,
//     ttfb_p50_over_origin_latency, and so on; for the in-process edge,
//     edge_store_errors counts slice writes its store refused (for pop's
//     nodes, node_store_errors).
package bench
