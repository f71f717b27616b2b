// Package invariants says whether this binary was built with the
// invariants build tag, which turns on extra checks of the store's and the
// fills' internal state that are too costly, or too paranoid, for
// production: a check that fails panics, naming what it found.
//
// Guard each check with Enabled, so that without the tag it compiles away:
//
//	if invariants.Enabled {
//		invariants.Check(pg.count.Load() > 0, "segstore: empty page %d of %q", p, ss.key)
//	}
//
// Run the tests with them (make invariants does, and make test with it):
//
//	go test -tags invariants ./edge/... ./segstore/... ./origin/...
//
// Modelled on cockroachdb/pebble's internal/invariants.
package invariants

import "fmt"

// Check panics, with the message format and args make, unless ok. Call it
// only when Enabled: its arguments are evaluated either way.
func Check(ok bool, format string, args ...any) {
	if !ok {
		panic(fmt.Sprintf("invariant violated: "+format, args...))
	}
}
