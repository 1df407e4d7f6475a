package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

func newRender(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "render [PATH]",
		Short: "Print the resolved desired state",
		Long: `render prints the desired state after templating, defaults, env injection
and parsing: what each container will get, with its spec hash.
-o json and -o yaml print the state; -o template prints each manifest's
text after Jinja2 rendering, before YAML parsing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "template" {
				return renderTemplates(cmd, g, args)
			}
			repo, err := g.load(cmd, args)
			if err != nil {
				return err
			}
			if report(cmd.ErrOrStderr(), repo) > 0 {
				return exitCode(1)
			}
			out := cmd.OutOrStdout()
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(repo); err != nil {
				return err
			}
			data := buf.Bytes()
			switch output {
			case "json":
				_, err := out.Write(data)
				return err
			case "yaml":
				var doc yaml.Node
				if err := yaml.Unmarshal(data, &doc); err != nil {
					return err
				}
				blockStyle(&doc)
				enc := yaml.NewEncoder(out)
				enc.SetIndent(2)
				if err := enc.Encode(&doc); err != nil {
					return err
				}
				return enc.Close()
			default:
				return fmt.Errorf("unknown output format %q (yaml, json or template)", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml, json or template")
	return cmd
}

// blockStyle turns the flow style that JSON input gives into YAML's block
// style, keeping key order.
func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = 0
	}
	if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle && n.Tag == "!!str" {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// renderTemplates prints each manifest after Jinja2 rendering.
func renderTemplates(cmd *cobra.Command, g *globals, args []string) error {
	in, err := g.input(cmd, args)
	if err != nil {
		return err
	}
	failed := false
	for _, src := range in.sources {
		name := src.Display
		if name == "" {
			name = in.opts.Prefix + src.Name
		}
		out, err := manifest.RenderTemplate(in.fsys, src, in.opts.Environ)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", name, err)
			failed = true
			continue
		}
		if len(in.sources) > 1 {
			fmt.Fprintf(cmd.OutOrStdout(), "# %s\n", name)
		}
		cmd.OutOrStdout().Write(out)
	}
	if failed {
		return exitCode(1)
	}
	return nil
}
