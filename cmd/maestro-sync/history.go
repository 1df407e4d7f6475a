package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/maestro-sync/maestro-sync/internal/history"
)

func newHistory() *cobra.Command {
	var (
		srv    serverFlags
		output string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "history [ENV]",
		Short: "Show the runs of a running daemon, newest first",
		Long: `history asks a running daemon (maestro-sync run, at --server) for its runs:
each reconcile of an environment that changed something, failed, or
changed the environment's state, with its trigger, revision and commit,
steps, duration and errors. The daemon keeps them in its --data-dir across
restarts.

-o text prints one line per run, -o wide adds the steps and errors, -o json
prints the runs as the API gives them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if len(args) == 1 {
				q.Set("env", args[0])
			}
			var body struct {
				Runs []history.Run `json:"runs"`
			}
			if err := srv.get(cmd, "/api/v1/history?"+q.Encode(), &body); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(body)
			case "text", "wide":
				return printHistory(out, body.Runs, output == "wide")
			}
			return fmt.Errorf("-o %q: text, wide or json", output)
		},
	}
	srv.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, wide or json")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many runs to show (at most 500)")
	return cmd
}

// printHistory prints runs as a table, with their steps and errors when
// wide.
func printHistory(w io.Writer, runs []history.Run, wide bool) error {
	if len(runs) == 0 {
		_, err := fmt.Fprintln(w, "no runs recorded")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tENV\tSTARTED\tDURATION\tTRIGGER\tREVISION\tRESULT\tSTEPS\tCOMMIT")
	for _, r := range runs {
		commit := r.Subject
		if r.Author != "" {
			commit += " (" + r.Author + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Env, r.Started.Local().Format("2006-01-02 15:04:05"),
			r.Duration().Round(100*time.Millisecond), r.Trigger, r.Revision[:min(12, len(r.Revision))], r.Result, len(r.Steps), commit)
		if !wide {
			continue
		}
		for _, st := range r.Steps {
			line := fmt.Sprintf("  %s %s on %s: %s (%s)", st.Action, st.Instance, st.Ship, st.Result, st.Duration.Round(100*time.Millisecond))
			if st.Cause != "" {
				line += "; " + st.Cause
			}
			if st.Error != "" {
				line += "; " + st.Error
			}
			fmt.Fprintln(tw, line)
		}
		for _, e := range r.Errors {
			fmt.Fprintln(tw, "  error: "+e)
		}
	}
	return tw.Flush()
}
