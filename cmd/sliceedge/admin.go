package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sliceedge/sliceedge/config"
	"github.com/sliceedge/sliceedge/edge"
	"github.com/sliceedge/sliceedge/segstore"
)

// adminFlags locate a node's admin API.
func adminFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "admin", Usage: "admin API base `URL`, e.g. http://127.0.0.1:8081", EnvVars: envVar("ADMIN")},
		&cli.StringFlag{Name: "token", Usage: "admin bearer `TOKEN`", EnvVars: envVar("TOKEN")},
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "read admin.listen and admin.token from this config `FILE`", EnvVars: envVar("CONFIG")},
	}
}

// adminClient talks to one node's admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

func newAdminClient(c *cli.Context) (*adminClient, error) {
	base, token := c.String("admin"), c.String("token")
	if path := c.String("config"); path != "" && (base == "" || token == "") {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		if cfg.Admin.Listen == "" {
			return nil, fmt.Errorf("%s has no admin.listen: the admin API is off on that node", path)
		}
		if base == "" {
			host, port, _ := net.SplitHostPort(cfg.Admin.Listen)
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			base = "http://" + net.JoinHostPort(host, port)
		}
		if token == "" {
			token = cfg.Admin.Token
		}
	}
	if base == "" {
		return nil, errors.New("no admin API address: pass --admin http://HOST:PORT (or SLICEEDGE_ADMIN), or --config FILE to read admin.listen")
	}
	if token == "" {
		return nil, errors.New("no admin token: pass --token (or SLICEEDGE_TOKEN), or --config FILE to read admin.token")
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &adminClient{base: strings.TrimSuffix(base, "/"), token: token, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// call sends one request and decodes a JSON answer into out.
func (a *adminClient) call(ctx context.Context, method, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", a.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w (is `sliceedge serve` running there with admin.listen set?)", a.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API %s: read answer: %w", a.base, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("the admin API at %s refused the token: check --token / SLICEEDGE_TOKEN against admin.token in the node's config", a.base)
	}
	// 202: accepted but not done yet (a purge the store will write when it
	// can); the answer says so.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin API: %s", e.Error)
		}
		return fmt.Errorf("admin API %s%s: status %d", a.base, path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin API %s%s: unexpected answer: %w", a.base, path, err)
	}
	return nil
}

func purgeCommand() *cli.Command {
	return &cli.Command{
		Name:      "purge",
		Usage:     "purge objects from a running edge: one URL, a URL prefix, a URL glob, a tag, or everything",
		ArgsUsage: "[URL]",
		Description: "Examples:\n   sliceedge purge http://edge.example.com/video/a.mp4\n" +
			"   sliceedge purge --prefix http://edge.example.com/video/\n   sliceedge purge --all --soft\n" +
			"   sliceedge purge --glob 'http://edge.example.com/video/*/master.m3u8'\n   sliceedge purge --tag product-1234\n" +
			"--soft marks objects stale (the next request revalidates them) instead of deleting them.",
		// What to purge is said on the command line only: a variable left
		// set in a shell must never turn one URL's purge into another.
		Flags: append(adminFlags(),
			&cli.StringFlag{Name: "prefix", Usage: "purge every object whose URL starts with `URL-PREFIX` (with its host)"},
			&cli.StringFlag{Name: "glob", Usage: "purge every object whose URL matches `URL-GLOB` (*, ? and [a-z] in the path, within one segment)"},
			&cli.StringFlag{Name: "tag", Usage: "purge every object the origin tagged `TAG` (Surrogate-Key or Cache-Tag)"},
			&cli.BoolFlag{Name: "all", Usage: "purge every object"},
			&cli.BoolFlag{Name: "soft", Usage: "mark stale instead of deleting"},
		),
		Action: func(c *cli.Context) error {
			q := url.Values{}
			n := 0
			if c.NArg() == 1 {
				q.Set("url", c.Args().First())
				n++
			}
			if p := c.String("prefix"); p != "" {
				q.Set("prefix", p)
				n++
			}
			for _, k := range []string{"glob", "tag"} {
				if v := c.String(k); v != "" {
					q.Set(k, v)
					n++
				}
			}
			if c.Bool("all") {
				q.Set("all", "1")
				n++
			}
			if n != 1 || c.NArg() > 1 {
				return cli.Exit("purge: give exactly one of URL, --prefix URL-PREFIX, --glob URL-GLOB, --tag TAG or --all", 2)
			}
			if c.Bool("soft") {
				q.Set("soft", "1")
			}
			a, err := newAdminClient(c)
			if err != nil {
				return cli.Exit("purge: "+err.Error(), 1)
			}
			var res edge.PurgeResult
			if err := a.call(c.Context, http.MethodPost, "/purge", q, &res); err != nil {
				return cli.Exit("purge: "+err.Error(), 1)
			}
			verb := "purged"
			if res.Soft {
				verb = "marked stale"
			}
			fmt.Fprintf(c.App.Writer, "%s %d %s\n", verb, res.Purged, plural(res.Purged, "object"))
			if res.Pending {
				fmt.Fprintf(c.App.Writer, "pending: %s\n", res.Note)
			}
			return nil
		},
	}
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show what a running edge holds of one URL: size, validator, version, freshness, stored slices",
		ArgsUsage: "URL",
		Flags:     adminFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("inspect: give exactly one URL, e.g. http://127.0.0.1:8080/video/1GiB.mp4", 2)
			}
			a, err := newAdminClient(c)
			if err != nil {
				return cli.Exit("inspect: "+err.Error(), 1)
			}
			var in edge.Inspection
			if err := a.call(c.Context, http.MethodGet, "/inspect", url.Values{"url": {c.Args().First()}}, &in); err != nil {
				return cli.Exit("inspect: "+err.Error(), 1)
			}
			w := c.App.Writer
			var validator string
			switch segstore.Class(in.Class) {
			case segstore.ByETag:
				validator = "ETag " + in.ETag + " (class strong-etag: fills carry If-Match)"
			case segstore.ByLastModified:
				validator = "Last-Modified " + in.LastModified + " (class last-modified: fills carry If-Unmodified-Since, and the length must match)"
			default:
				validator = "none (class none: filled only from the answer that created this version; a lost slice refetches the object)"
			}
			fresh := "stale"
			if in.Fresh {
				fresh = "fresh"
			}
			fmt.Fprintf(w, "url         %s\nkey         %s\n", in.URL, in.Key)
			fmt.Fprintf(w, "size        %d bytes (%s)\n", in.Size, config.FormatSize(in.Size))
			fmt.Fprintf(w, "slices      %s each, %d of %d stored\n", config.FormatSize(in.SliceSize), in.Stored, in.Slices)
			fmt.Fprintf(w, "map         %s\n", in.Map)
			fmt.Fprintf(w, "validator   %s\nversion     %s\n", validator, in.Version)
			fmt.Fprintf(w, "freshness   %s: stored %s, lifetime %s, expires in %s\n", fresh, in.StoredAt.Format(time.RFC3339), in.Lifetime, in.ExpiresIn)
			if in.NoRange {
				fmt.Fprintf(w, "origin      ignores Range: fills fetch whole bodies\n")
			}
			for i, o := range in.Owners {
				label := "owners     "
				if i > 0 {
					label = "           "
				}
				self := ""
				if o.Self {
					self = " (this node)"
				}
				fmt.Fprintf(w, "%s slices %d-%d: %s%s\n", label, o.First, o.Last, o.Node, self)
			}
			if in.OwnersCut {
				fmt.Fprintf(w, "            (the object has more groups; the first ones only)\n")
			}
			return nil
		},
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
