//go:build !race

package edge_test

// raceBuild reports a build with the race detector; see race_test.go.
const raceBuild = false
