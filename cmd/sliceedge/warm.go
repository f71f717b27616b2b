package main

// sliceedge warm: fetch objects, or their first bytes, through an edge so
// that they are stored before clients ask.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/sliceedge/sliceedge/config"
)

func warmCommand() *cli.Command {
	return &cli.Command{
		Name:      "warm",
		Usage:     "fetch objects, or their first bytes, through an edge so that they are stored before clients ask",
		ArgsUsage: "[URL...]",
		Description: "Examples:\n   sliceedge warm http://edge.example.com/video/a.mp4 http://edge.example.com/video/b.mp4\n" +
			"   sliceedge warm --file urls.txt --head 8MiB      # the first 8 MiB of each: a player's start\n" +
			"   sliceedge warm --file urls.txt --edge http://10.0.0.5:8080   # one node, with the URLs' Host\n" +
			"The list has one URL per line; blank lines and lines starting with # are skipped; --file - reads stdin.\n" +
			"The bodies are read and dropped; the edge stores them as for any client.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the URLs from `LIST` (- for stdin)", EnvVars: envVar("WARM_FILE")},
			&cli.StringFlag{Name: "head", Usage: "fetch only the first `SIZE` bytes of each (e.g. 8MiB; default: whole objects)", EnvVars: envVar("WARM_HEAD")},
			&cli.StringFlag{Name: "edge", Usage: "send the requests to this edge `URL` (http://HOST:PORT), with each URL's host as Host", EnvVars: envVar("WARM_EDGE")},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"j"}, Value: 4, Usage: "objects fetched at once", EnvVars: envVar("WARM_CONCURRENCY")},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "longest time for one object", EnvVars: envVar("WARM_TIMEOUT")},
		},
		Action: func(c *cli.Context) error {
			urls, err := warmList(c)
			if err != nil {
				return cli.Exit("warm: "+err.Error(), 2)
			}
			var head int64
			if h := c.String("head"); h != "" {
				if head, err = config.ParseSize(h); err != nil || head <= 0 {
					return cli.Exit(fmt.Sprintf("warm: --head %q: want a size such as 8MiB", h), 2)
				}
			}
			if c.Int("concurrency") < 1 {
				return cli.Exit("warm: --concurrency below 1", 2)
			}
			var edge *url.URL
			if e := c.String("edge"); e != "" {
				if edge, err = url.Parse(e); err != nil || edge.Scheme != "http" && edge.Scheme != "https" || edge.Host == "" {
					return cli.Exit(fmt.Sprintf("warm: --edge %q: want http://HOST:PORT", e), 2)
				}
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			res := warm(ctx, urls, warmOptions{head: head, edge: edge, concurrency: c.Int("concurrency"), timeout: c.Duration("timeout"), progress: c.App.ErrWriter})
			fmt.Fprintf(c.App.Writer, "warmed %d of %d %s (%d already stored), %s read in %s\n", res.ok.Load(), len(urls), plural(len(urls), "object"),
				res.hits.Load(), ibytes(res.bytes.Load()), res.took.Round(time.Millisecond))
			for _, f := range res.failures {
				fmt.Fprintf(c.App.ErrWriter, "failed: %s\n", f)
			}
			if len(res.failures) > 0 {
				return cli.Exit(fmt.Sprintf("warm: %d of %d failed", len(res.failures), len(urls)), 1)
			}
			return nil
		},
	}
}

// warmList is the URLs of the arguments and of --file, each checked.
func warmList(c *cli.Context) ([]string, error) {
	urls := append([]string(nil), c.Args().Slice()...)
	if f := c.String("file"); f != "" {
		var r io.Reader = os.Stdin
		if f != "-" {
			file, err := os.Open(f)
			if err != nil {
				return nil, fmt.Errorf("--file: %w", err)
			}
			defer file.Close()
			r = file
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				urls = append(urls, l)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--file %s: %w", f, err)
		}
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("no URL (give them as arguments or with --file LIST)")
	}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
			return nil, fmt.Errorf("%q is not an absolute http or https URL", u)
		}
	}
	return urls, nil
}

type warmOptions struct {
	head        int64    // bytes of each object; 0: whole
	edge        *url.URL // where to send the requests; nil: each URL's host
	concurrency int
	timeout     time.Duration
	progress    io.Writer // a bar when it is a terminal
}

type warmResult struct {
	ok, hits, bytes atomic.Int64
	failures        []string
	took            time.Duration
}

// warm fetches each URL through the edge and drops the body.
func warm(ctx context.Context, urls []string, o warmOptions) *warmResult {
	res := &warmResult{}
	began := time.Now()
	var bar *progressbar.ProgressBar
	if f, ok := o.progress.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(len(urls), progressbar.OptionSetWriter(f), progressbar.OptionSetWidth(30),
			progressbar.OptionSetDescription("warming"), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond))
	}
	failures := make(chan string, len(urls))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var g errgroup.Group
	g.SetLimit(o.concurrency)
	for _, u := range urls {
		if ctx.Err() != nil {
			failures <- u + ": interrupted"
			continue
		}
		g.Go(func() error {
			n, hit, err := warmOne(ctx, client, u, o)
			res.bytes.Add(n)
			switch {
			case err != nil:
				failures <- fmt.Sprintf("%s: %v", u, err)
			case hit:
				res.hits.Add(1)
				res.ok.Add(1)
			default:
				res.ok.Add(1)
			}
			if bar != nil {
				bar.Describe("warming " + ibytes(res.bytes.Load()))
				_ = bar.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait()
	close(failures)
	for f := range failures {
		res.failures = append(res.failures, f)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	res.took = time.Since(began)
	return res
}

// warmOne fetches one URL and reads its body, returning the bytes read and
// whether the edge had it all stored (X-Cache: HIT).
func warmOne(ctx context.Context, client *http.Client, u string, o warmOptions) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	target, _ := url.Parse(u)
	host := target.Host
	if o.edge != nil {
		target.Scheme, target.Host = o.edge.Scheme, o.edge.Host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return 0, false, err
	}
	req.Host = host
	req.Header.Set("User-Agent", "sliceedge-warm/"+version)
	if o.head > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", o.head-1))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	switch {
	case err != nil:
		return n, false, fmt.Errorf("after %d bytes: %w", n, err)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent:
		return n, false, fmt.Errorf("%s", resp.Status)
	}
	return n, resp.Header.Get("X-Cache") == "HIT", nil
}
