//go:build !(linux && (amd64 || arm64))

package segstore_test

import "os"

func fadviseDontNeed(*os.File) bool { return false }
