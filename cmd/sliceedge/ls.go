package main

// sliceedge ls: the objects a running edge stores under a URL prefix.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sliceedge/sliceedge/edge"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the objects a running edge stores, under a URL prefix",
		Description: "Examples:\n   sliceedge ls --prefix http://edge.example.com/video/\n" +
			"   sliceedge ls --prefix edge.example.com/dl/ --limit 20\n" +
			"Each line: size, slices stored of the object's, fresh or stale, when it was stored, its tags, its cache key.",
		Flags: append(adminFlags(),
			&cli.StringFlag{Name: "prefix", Usage: "list objects whose URL starts with `URL-PREFIX` (with its host; default: all)", EnvVars: envVar("LS_PREFIX")},
			&cli.IntFlag{Name: "limit", Value: 1000, Usage: "list at most `N` objects (0: all)", EnvVars: envVar("LS_LIMIT")},
			&cli.BoolFlag{Name: "json", Usage: "print JSON lines, one object each", EnvVars: envVar("LS_JSON")},
		),
		Action: func(c *cli.Context) error {
			a, err := newAdminClient(c)
			if err != nil {
				return cli.Exit("ls: "+err.Error(), 1)
			}
			limit := c.Int("limit")
			if limit < 0 {
				return cli.Exit("ls: --limit below 0", 2)
			}
			w := c.App.Writer
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			enc := json.NewEncoder(w)
			if !c.Bool("json") {
				fmt.Fprintln(tw, "SIZE\tSTORED\tFRESH\tSTORED AT\tTAGS\tKEY")
			}
			n, after := 0, ""
			for {
				page := 1000
				if limit > 0 {
					page = min(page, limit-n)
				}
				q := url.Values{"limit": {strconv.Itoa(page)}}
				if p := c.String("prefix"); p != "" {
					q.Set("prefix", p)
				}
				if after != "" {
					q.Set("after", after)
				}
				var l edge.Listing
				if err := a.call(c.Context, http.MethodGet, "/ls", q, &l); err != nil {
					return cli.Exit("ls: "+err.Error(), 1)
				}
				for _, o := range l.Objects {
					if c.Bool("json") {
						if err := enc.Encode(o); err != nil {
							return err
						}
						continue
					}
					fresh := "stale"
					if o.Fresh {
						fresh = "fresh"
					}
					fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\n", ibytes(o.Size), o.Stored, o.Slices, fresh,
						o.StoredAt.UTC().Format(time.DateTime), tagList(o), o.Key)
				}
				n += len(l.Objects)
				if l.Next == "" || limit > 0 && n >= limit {
					break
				}
				after = l.Next
			}
			if c.Bool("json") {
				return nil
			}
			return tw.Flush()
		},
	}
}

// tagList is an object's tags as ls shows them, with how many more there
// are past those the admin API lists.
func tagList(o edge.ListedObject) string {
	t := strings.Join(o.Tags, ",")
	if o.MoreTags > 0 {
		t += fmt.Sprintf(",+%d more", o.MoreTags)
	}
	return t
}
