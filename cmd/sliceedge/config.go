package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/sliceedge/sliceedge/config"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with configuration files",
		Subcommands: []*cli.Command{{
			Name:  "defaults",
			Usage: "print the embedded configuration serve uses without --config (a start for your own)",
			Action: func(c *cli.Context) error {
				_, err := c.App.Writer.Write(config.DefaultYAML())
				return err
			},
		}, {
			Name:      "check",
			Usage:     "validate a configuration file and report every error with its line",
			ArgsUsage: "FILE",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("config check: give exactly one FILE (try: sliceedge config check testdata/config/edge.yaml)", 2)
				}
				cfg, err := config.Load(c.Args().First())
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				for _, w := range cfg.Warnings {
					fmt.Fprintf(c.App.ErrWriter, "warning: %v\n", w)
				}
				fmt.Fprintf(c.App.Writer, "%s: ok (listen %s, store %s, %d origins, %d rules, %d warnings)\n",
					cfg.Source, cfg.Listen, cfg.Store.Dir, len(cfg.Origins), len(cfg.Rules), len(cfg.Warnings))
				return nil
			},
		}},
	}
}
