package docker_test

import (
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/plan"
)

const driftApp = `__maestro: {schema: 2}
name: dr
%SHIPS%
services:
  app:
    image: maestro-test/busybox:1
    env: {SECRET: hunter2-value}
    limits: {memory: 64m}
    instances:
      app-1: {ship: s1, stop_timeout: 1, restart: on-failure:2, command: [sleep, "3600"]}
`

// TestDriftIsSeenAndRepaired: docker update of a managed container's
// memory and restart policy leaves its labels as they were; the plan
// still replaces it, naming the fields (and no env value), and after the
// apply the container has the manifest's settings again.
func TestDriftIsSeenAndRepaired(t *testing.T) {
	f := newFixture(t)
	s := f.ships[0]
	s.RemoveAll(t)
	t.Cleanup(func() { s.RemoveAll(t) })
	f.text = driftApp
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply: %v", res.Err())
	}
	if p, _ := f.plan(false); p.Summary().Replace != 0 {
		t.Fatalf("a fresh deployment drifts:\n%s", planText(p))
	}
	s.Docker(t, "update", "--memory", "32m", "--memory-swap", "-1", "--restart", "always", "app-1")
	p, _ := f.plan(false)
	var st *plan.Step
	for i := range p.Steps {
		if p.Steps[i].Instance == "app-1" {
			st = &p.Steps[i]
		}
	}
	if st == nil || st.Action != plan.Replace {
		t.Fatalf("plan after docker update:\n%s", planText(p))
	}
	causes := strings.Join(st.Causes, "; ")
	for _, want := range []string{"drift: memory: 32MiB on the ship, 64MiB in the manifest", "drift: restart: always on the ship, on-failure:2 in the manifest"} {
		if !strings.Contains(causes, want) {
			t.Errorf("causes %q lack %q", causes, want)
		}
	}
	if strings.Contains(planText(p), "hunter2") {
		t.Errorf("the plan shows an env value:\n%s", planText(p))
	}
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply after drift: %v", res.Err())
	}
	if got := strings.TrimSpace(s.Docker(t, "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}", "app-1")); got != "67108864 on-failure" {
		t.Errorf("after the repair: %s", got)
	}
	if p, _ := f.plan(false); p.Summary().Replace != 0 {
		t.Errorf("still drifting after the repair:\n%s", planText(p))
	}
}

func planText(p *plan.Plan) string {
	var b strings.Builder
	_ = p.WriteText(&b, plan.TextOptions{})
	return b.String()
}
