package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// TestApplySavedPlan applies a reviewed plan only while it still matches
// the manifests and the live state.
func TestApplySavedPlan(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string, ship *dockertest.Ship)
		stale  string // expected refusal reason; "" means the plan applies
	}{
		{"unchanged", func(*testing.T, string, *dockertest.Ship) {}, ""},
		{"manifest edited after the plan", func(t *testing.T, dir string, ship *dockertest.Ship) {
			writeManifest(t, dir, ship, "3", "18090", 0)
		}, "the manifests changed"},
		{"container replaced by hand", func(t *testing.T, dir string, ship *dockertest.Ship) {
			ship.Docker(t, "rm", "-f", "app-1")
		}, "app-1"},
		{"foreign container took a name", func(t *testing.T, dir string, ship *dockertest.Ship) {
			ship.Docker(t, "rm", "-f", "app-1")
			ship.Docker(t, "run", "-d", "--name", "app-1", dockertest.Busybox1, "sleep", "3600")
		}, "conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ship := dockertest.Shared(t, 1)[0]
			dir := t.TempDir()
			writeManifest(t, dir, ship, "1", "18090", 0)
			if out, err := run(t, bin, "apply", dir); err != nil {
				t.Fatalf("first apply: %v\n%s", err, out)
			}
			before := ship.Docker(t, "ps", "-aq", "--no-trunc")
			writeManifest(t, dir, ship, "2", "18090", 0)
			planFile := filepath.Join(t.TempDir(), "plan.json")
			out, err := run(t, bin, "plan", dir, "-o", "json", "--out", planFile)
			if code := exitStatus(err); code != 2 {
				t.Fatalf("plan: exit %d\n%s", code, out)
			}
			if data, _ := os.ReadFile(planFile); !strings.Contains(string(data), `"action": "replace"`) {
				t.Fatalf("saved plan:\n%s", data)
			}
			tc.change(t, dir, ship)
			after := ship.Docker(t, "ps", "-aq", "--no-trunc")
			out, err = run(t, bin, "apply", dir, "--plan", planFile)
			if tc.stale == "" {
				if err != nil {
					t.Fatalf("apply --plan: %v\n%s", err, out)
				}
				env := ship.Docker(t, "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "app-1")
				if !strings.Contains(env, "VERSION=2") {
					t.Errorf("the plan was not applied:\n%s", env)
				}
				return
			}
			if exitStatus(err) != 1 || !strings.Contains(out, "refusing to apply") || !strings.Contains(out, tc.stale) {
				t.Fatalf("apply --plan of a stale plan: exit %d, want 1 naming %q\n%s", exitStatus(err), tc.stale, out)
			}
			if now := ship.Docker(t, "ps", "-aq", "--no-trunc"); now != after {
				t.Errorf("a refused plan changed containers: %q → %q (before the change: %q)", after, now, before)
			}
		})
	}
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		return ee.ExitCode()
	}
	return -1
}
