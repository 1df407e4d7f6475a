package docker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
)

// healthApp is one service whose image has a Docker HEALTHCHECK (test -f
// /tmp/ok every second, unhealthy after two failures); %OK% decides
// whether the container ever becomes healthy.
const healthApp = `__maestro: {schema: 2}
name: hc
%SHIPS%
services:
  app:
    image: maestro-test/healthcheck:1
    env: {GEN: "%GEN%"}
    instances:
      app-1: {ship: s1, stop_timeout: 1, command: [sh, -c, '%OK% exec sleep 3600']}
`

// TestHealthcheckGatesTheReplacement: a container's own HEALTHCHECK counts
// as a running check. A healthy one is deployed and its health shows; a
// replacement that turns unhealthy fails the step with the check's output,
// and the old container keeps running.
func TestHealthcheckGatesTheReplacement(t *testing.T) {
	f := newFixture(t)
	s := f.ships[0]
	s.RemoveAll(t)
	t.Cleanup(func() { s.RemoveAll(t) })
	// An image with a HEALTHCHECK, made on the ship from busybox.
	s.Docker(t, "rm", "-f", "hc-base")
	s.Docker(t, "create", "--name", "hc-base", "maestro-test/busybox:1", "true")
	s.Docker(t, "commit", "--change", "HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD test -f /tmp/ok || (echo no /tmp/ok; exit 1)",
		"hc-base", "maestro-test/healthcheck:1")
	s.Docker(t, "rm", "-f", "hc-base")

	f.text = healthApp
	f.vars["%GEN%"] = "1"
	f.vars["%OK%"] = "touch /tmp/ok &&"
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply of a healthy container: %v", res.Err())
	}
	envs := f.load()
	obs, err := f.pool.Inspect(context.Background(), docker.Ref{Env: envs[0], In: envs[0].Instance("app-1")})
	if err != nil || obs.Container == nil || obs.Container.Health != "healthy" {
		t.Fatalf("app-1 after apply: %+v, %v; want healthy", obs.Container, err)
	}
	old := obs.Container.ID

	f.vars["%GEN%"] = "2"
	f.vars["%OK%"] = ""
	_, res, _ := f.apply(false)
	err = res.Err()
	if err == nil || !strings.Contains(err.Error(), "HEALTHCHECK reports it unhealthy") || !strings.Contains(err.Error(), "no /tmp/ok") {
		t.Fatalf("apply of an unhealthy replacement: %v", err)
	}
	obs, err = f.pool.Inspect(context.Background(), docker.Ref{Env: envs[0], In: envs[0].Instance("app-1")})
	if err != nil || obs.Container == nil || obs.Container.ID != old || !obs.Container.Running {
		t.Errorf("app-1 after the failed replacement: %+v, %v; want %s still running", obs.Container, err, old)
	}
	if names := s.Docker(t, "ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(names) != "app-1" {
		t.Errorf("containers after the failed replacement:\n%s", names)
	}
}
