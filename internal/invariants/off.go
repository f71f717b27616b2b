//go:build !invariants

package invariants

// Enabled is false: the binary was built without -tags invariants, and the
// checks it guards compile away.
const Enabled = false
