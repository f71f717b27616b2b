// Package origintest is a controllable HTTP origin for tests, benchmarks
// and the demo (`sliceedge origin`).
//
// # Content
//
// Every object has deterministic bytes that depend only on its name (the URL
// path), its version and the offset, so a test can check any body, or any
// part of one, without keeping a copy. Byte i of (name, version) is byte i%8,
// little-endian, of the 64-bit word
//
//	mix(seed(name, version) + (i/8 + 1) * 0x9E3779B97F4A7C15)
//
// where mix is the splitmix64 finaliser (Steele, Lea, Flood: "Fast splittable
// pseudorandom number generators", OOPSLA 2014) and seed is FNV-1a of the
// name mixed with the version. The same seed, as 16 hex digits, is the
// object's strong ETag. Two versions of a name therefore differ at
// essentially every 8-byte word (a collision has probability 2^-64 per word),
// which is what [WhichVersion] relies on to prove that a body never mixes
// versions. [Fill] generates several GB/s on one core (BenchmarkFill).
//
// # Objects
//
// An object is registered with [Server.Add]; in addition, any path whose
// last element starts with a size ("1GiB.mp4", "64MiB-patch.bin", "100KiB",
// "12345.bin"; see [SyntheticSize]) is an object of that size, so a demo
// origin serves `/video/1GiB.mp4` without configuration. Objects start at
// version 1; [Server.SetVersion] and [Server.Bump] change the version, and
// with it the bytes, ETag and Last-Modified. Bodies are generated in chunks
// as they are written, so a 10 GiB object costs no memory.
//
// # HTTP
//
// GET and HEAD get ETag, Last-Modified (a fixed base time plus one minute per
// version), Content-Type from the extension, Accept-Ranges and Cache-Control
// (max-age=3600 unless a [Mode] says otherwise). A single byte range is
// answered 206, several ranges 200 with the full body, an unsatisfiable range
// 416, an invalid Range header is ignored. If-Match, If-Unmodified-Since,
// If-None-Match, If-Modified-Since and If-Range follow RFC 9110 §13.
//
// # Modes
//
// A [Mode] set for the whole server ([Server.SetMode]) or for one path
// ([Server.SetPathMode]) makes the origin misbehave in one of the ways real
// origins do: ignore ranges, use chunked encoding, change the object every N
// requests (a flapping origin), ignore If-Match, lie in Content-Range, cut the
// connection mid-body, be slow or stall, omit or weaken validators, or answer
// a fixed error status. Modes may be changed while requests are in flight;
// each request uses the mode in force when it arrived.
//
// # Counters
//
// The server counts requests and body bytes, in total and per path, and keeps
// the headers of the last requests ([Server.LastRequests]) so that a test
// can assert exactly what a client sent.
//
// # Control
//
// [Server.Handler] also serves a small JSON control API under /.origin/
// ([Server.ControlHandler]): counters, reset, object versions and modes, so
// that a benchmark in another process can drive the origin it runs against.
package origintest
