// Command sliceedge is a caching HTTP edge server that stores objects as
// aligned fixed-size slices in Pebble and serves any byte range from them.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Stamped by `make dist` with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "sliceedge:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "sliceedge",
		Usage: "a caching HTTP edge that serves any byte range from aligned slices stored in Pebble",
		Description: "Every flag can also be set with an environment variable: SLICEEDGE_ and the flag's name\nin capitals, - as _ (a command's own flags may add its name, as --help shows),\n" +
			"for example SLICEEDGE_CONFIG=/etc/sliceedge/edge.yaml.",
		Version:              version + " (" + commit + ")",
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			serveCommand(),
			originCommand(),
			configCommand(),
			purgeCommand(),
			inspectCommand(),
			lsCommand(),
			warmCommand(),
			completionCommand(),
			manCommand(),
			statsCommand(),
			clusterCommand(),
			benchCommand(),
			{
				Name:  "version",
				Usage: "print the version and the commit it was built from",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "sliceedge %s (commit %s)\n", version, commit)
					return nil
				},
			},
		},
	}
}

func envVar(name string) []string { return []string{"SLICEEDGE_" + name} }
