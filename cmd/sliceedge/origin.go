package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sliceedge/sliceedge/origin/origintest"
)

func originCommand() *cli.Command {
	return &cli.Command{
		Name:  "origin",
		Usage: "run a demo origin: synthetic deterministic objects (/video/1GiB.mp4, /dl/64MiB-patch.bin), or a folder with --dir",
		Description: "Any path whose last element starts with a size (12345, 100KiB, 64MiB, 1GiB) is an\n" +
			"object of that size with deterministic bytes, a strong ETag, Last-Modified and\n" +
			"Cache-Control: max-age=3600. With --dir the folder's files are served instead,\n" +
			"with Range support and a strong ETag from size and modification time.\n\n" +
			"Synthetic objects come with a control API under /.origin/ (what `sliceedge bench\n" +
			"--origin` drives): GET /.origin/stats, POST /.origin/reset, GET /.origin/object?path=P,\n" +
			"PUT and DELETE /.origin/mode?path=P (a JSON origintest.Mode; no path: every path).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:9000", Usage: "`HOST:PORT` to serve on", EnvVars: envVar("ORIGIN_LISTEN")},
			&cli.StringFlag{Name: "dir", Usage: "serve this `DIR` instead of synthetic objects", EnvVars: envVar("ORIGIN_DIR")},
			&cli.DurationFlag{Name: "latency", Usage: "add this delay before every answer (synthetic objects)", EnvVars: envVar("ORIGIN_LATENCY")},
			&cli.StringFlag{Name: "cache-control", Value: "max-age=3600", Usage: "Cache-Control sent with every object (\"\" = none)", EnvVars: envVar("ORIGIN_CACHE_CONTROL")},
		},
		Action: func(c *cli.Context) error {
			var h http.Handler
			if dir := c.String("dir"); dir != "" {
				fi, err := os.Stat(dir)
				if err != nil || !fi.IsDir() {
					return cli.Exit(fmt.Sprintf("origin --dir %s: not a readable directory", dir), 1)
				}
				h = dirHandler(dir, c.String("cache-control"))
			} else {
				o := origintest.New()
				cc := c.String("cache-control")
				o.SetMode(origintest.Mode{Latency: c.Duration("latency"), CacheControl: &cc})
				h = o.Handler()
			}
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("origin: listen on %s: %v (choose another with --listen)", c.String("listen"), err), 1)
			}
			fmt.Fprintf(c.App.ErrWriter, "sliceedge demo origin on http://%s\n", ln.Addr())
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
				<-sig
				hs.Close()
			}()
			if err := hs.Serve(ln); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
}

// dirHandler serves files of dir with Range support (http.ServeContent)
// and a strong ETag derived from size and modification time, so the edge
// can slice-cache them.
func dirHandler(dir, cacheControl string) http.Handler {
	root, err := os.OpenRoot(dir)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			http.Error(w, "origin: "+err.Error(), http.StatusInternalServerError)
			return
		}
		name := filepath.FromSlash(r.URL.Path[1:])
		if name == "" {
			name = "."
		}
		f, ferr := root.Open(name)
		if ferr != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, ferr := f.Stat()
		if ferr != nil || fi.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+strconv.FormatInt(fi.Size(), 16)+"-"+strconv.FormatInt(fi.ModTime().UnixNano(), 16)+`"`)
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
	})
}
