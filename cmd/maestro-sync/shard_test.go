package main

import (
	"io"
	"strings"
	"testing"
)

// TestRunShardFlags: bad globs and selectors are refused, naming the flag
// (and the environment variable when it came from one).
func TestRunShardFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--environments", "apps/[eu"}, nil, `--environments: glob "apps/[eu"`},
		{[]string{"--environments", "apps/eu,/abs"}, nil, `--environments: glob "/abs": paths are relative to --path`},
		{[]string{"--environment-selector", "shard in (a"}, nil, `--environment-selector: selector "shard in (a"`},
		{nil, map[string]string{"MAESTRO_SYNC_ENVIRONMENT_SELECTOR": "a b c"}, `--environment-selector: selector "a b c"`},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		root := newRoot()
		root.SetArgs(append([]string{"run", "--dir", t.TempDir(), "--data-dir", ""}, tc.args...))
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: error %v, want one containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}
