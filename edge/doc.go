// Package edge is sliceedge's HTTP handler: a cache of aligned, fixed-size
// slices in front of an origin. The life of a request, in the order of the
// files that handle it:
//
//   - server.go: ServeHTTP takes the request, and the Server holds what
//     requests share (store, fills, origin clients, configuration).
//   - intake.go: the path loses its dot segments, a rule is matched by host
//     and path, and the cache key is built; headers.go is what a request to
//     the origin carries. Requests no rule caches go to pass.go.
//   - serve.go: the Range header is parsed and the object's version looked
//     up; an origin that changes versions before the first byte gets one
//     more try.
//   - lookup.go and discover.go: the version comes from the store when
//     fresh; when stale or unknown, from one origin request per key
//     (freshness.go says how long an answer stays fresh), which also
//     starts filling the slices it carries.
//   - respond.go: preconditions (conditional.go), then the status, the
//     headers and one Cache-Status (status.go); multipart.go frames
//     several ranges.
//   - rangecopy.go: each range goes out slice by slice, from a fill in
//     flight, from the store, or from a fill the request claims.
//   - read.go: stored slices are read (the next one while this one is
//     written) and fills are read as their bytes arrive.
//   - fill.go: claimed slices are fetched from the origin in runs, fed to
//     every reader and stored; abandon.go cancels fills no one reads
//     when a rule says so.
//   - metrics.go: the request becomes an access log line and counters.
//
// admin.go serves the admin API (purgelog.go keeps purges from being
// undone by answers in flight).
package edge
