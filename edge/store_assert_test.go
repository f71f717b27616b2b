package edge

import "github.com/sliceedge/sliceedge/segstore"

// The stores `sliceedge serve` can wire in have every method the edge and
// its admin API use (the admin API finds adminStore by a type assertion,
// which would otherwise fail only at run time, with 501).
var (
	_ Store      = (*segstore.Store)(nil)
	_ adminStore = (*segstore.Store)(nil)
	_ Store      = (*segstore.Reopening)(nil)
	_ adminStore = (*segstore.Reopening)(nil)
)
