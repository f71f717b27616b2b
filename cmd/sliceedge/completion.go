package main

// Shell completion scripts and the man page, generated from the commands
// and flags themselves (urfave/cli), so that they never fall behind.

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks sliceedge itself for the words that may follow
// (urfave/cli's --generate-bash-completion).
const bashCompletion = `# bash completion for sliceedge; install as
# /usr/share/bash-completion/completions/sliceedge
_sliceedge_complete() {
	local cur=${COMP_WORDS[COMP_CWORD]} words
	if [[ $cur == -* ]]; then
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _sliceedge_complete sliceedge
`

// zshCompletion is the same through zsh's bash compatibility.
const zshCompletion = `#compdef sliceedge
# zsh completion for sliceedge; install as _sliceedge in a directory of $fpath
autoload -U +X bashcompinit && bashcompinit
` + bashCompletion

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Examples:\n   source <(sliceedge completion bash)\n" +
			"   sliceedge completion fish > ~/.config/fish/completions/sliceedge.fish",
		Action: func(c *cli.Context) error {
			var script string
			switch c.Args().First() {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("completion fish: %w", err)
				}
				script = s
			default:
				return cli.Exit(fmt.Sprintf("completion: %q: want bash, zsh or fish", c.Args().First()), 2)
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the man page (troff; man -l <(sliceedge man) shows it)",
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man: %w", err)
			}
			_, err = fmt.Fprint(c.App.Writer, strings.TrimLeft(page, "\n"))
			return err
		},
	}
}
