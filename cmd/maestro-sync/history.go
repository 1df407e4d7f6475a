package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/maestro-sync/maestro-sync/internal/history"
)

// serverFlags reach a running daemon's API.
type serverFlags struct {
	server    string
	tokenFile string
}

func (s *serverFlags) register(cmd *cobra.Command) {
	server := os.Getenv("MAESTRO_SYNC_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&s.server, "server", server, "address of the daemon's API (maestro-sync run --listen; env MAESTRO_SYNC_SERVER)")
	cmd.Flags().StringVar(&s.tokenFile, "token-file", os.Getenv("MAESTRO_SYNC_TOKEN_FILE"), "file holding the daemon's API or read token (env MAESTRO_SYNC_TOKEN_FILE)")
}

// maxAPIResponse bounds what the CLI reads of a daemon's answer.
const maxAPIResponse = 32 << 20

// get reads a JSON answer of the daemon's API into v.
func (s *serverFlags) get(cmd *cobra.Command, path string, v any) error {
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, strings.TrimRight(s.server, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if s.tokenFile != "" {
		token, err := readSecret(s.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the daemon at %s does not answer (is maestro-sync run listening there?): %w", s.server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return fmt.Errorf("%s: %w", s.server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s: %s", s.server, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s%s: %w", s.server, path, err)
	}
	return nil
}

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
