package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
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
	return s.do(cmd, http.MethodGet, path, v)
}

// post asks the daemon's API to act, and reads its JSON answer into v.
func (s *serverFlags) post(cmd *cobra.Command, path string, v any) error {
	if s.tokenFile == "" {
		return errors.New("give --token-file: the daemon's API token (maestro-sync run --api-token-file)")
	}
	return s.do(cmd, http.MethodPost, path, v)
}

func (s *serverFlags) do(cmd *cobra.Command, method, path string, v any) error {
	req, err := http.NewRequestWithContext(cmd.Context(), method, strings.TrimRight(s.server, "/")+path, nil)
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

func newPause() *cobra.Command {
	var (
		srv    serverFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "pause ENV",
		Short: "Pause an environment on a running daemon: observed, never changed, until resumed",
		Long: `pause tells a running daemon (at --server, with its API token) to stop
changing the environment: it is still observed, and the status says what
would change (drift, new commits), but nothing is created, replaced or
removed until maestro-sync resume. The pause outlives daemon restarts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var hold struct{ Since time.Time }
			path := "/api/v1/environments/" + url.PathEscape(args[0]) + "/pause"
			if reason != "" {
				path += "?" + url.Values{"reason": {reason}}.Encode()
			}
			if err := srv.post(cmd, path, &hold); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "environment %s: paused since %s; maestro-sync resume %s lifts it\n", args[0], hold.Since.Local().Format(time.DateTime), args[0])
			return nil
		},
	}
	srv.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in the status (at most 200 characters)")
	return cmd
}

func newResume() *cobra.Command {
	var srv serverFlags
	cmd := &cobra.Command{
		Use:   "resume ENV",
		Short: "Resume a paused environment on a running daemon: it deploys its source again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var answer map[string]string
			if err := srv.post(cmd, "/api/v1/environments/"+url.PathEscape(args[0])+"/resume", &answer); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "environment %s: resumed; the daemon deploys it now\n", args[0])
			return nil
		},
	}
	srv.register(cmd)
	return cmd
}
