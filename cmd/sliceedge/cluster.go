package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/sliceedge/sliceedge/cluster"
)

// clusterCommand is `sliceedge cluster status`: a POP's members as one
// node sees them.
func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "show a POP's members as a running node sees them",
		Subcommands: []*cli.Command{{
			Name:  "status",
			Usage: "list the members, their state, peer address and share of the slice groups",
			Flags: append(adminFlags(), &cli.BoolFlag{Name: "json", Usage: "print the raw JSON", EnvVars: envVar("CLUSTER_JSON")}),
			Action: func(c *cli.Context) error {
				a, err := newAdminClient(c)
				if err != nil {
					return cli.Exit("cluster status: "+err.Error(), 1)
				}
				var st cluster.Status
				if err := a.call(c.Context, http.MethodGet, "/cluster", nil, &st); err != nil {
					return cli.Exit("cluster status: "+err.Error(), 1)
				}
				w := c.App.Writer
				if c.Bool("json") {
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				fmt.Fprintf(w, "node %s sees %d %s (groups of %d slices)\n", st.Node, len(st.Members), plural(len(st.Members), "member"), st.GroupSlices)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tPEER\tSHARE")
				for _, m := range st.Members {
					name := m.Name
					if m.Self {
						name += " (this node)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\n", name, m.State, m.Peer, 100*st.Share[m.Name])
				}
				return tw.Flush()
			},
		}},
	}
}
