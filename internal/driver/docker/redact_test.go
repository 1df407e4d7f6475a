package docker_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// A failed container's last log lines reach the error (and so the status
// API): the instance's env values are hidden in them.
func TestFailedContainerLogsHideSecrets(t *testing.T) {
	s := dockertest.Shared(t, 1)[0]
	text := `name: redact
ships:
  s1: {ip: ` + s.IP + `, socket_path: ` + s.Socket + `, timeout: 20}
services:
  app:
    image: maestro-test/busybox:1
    env: {API_TOKEN: "tok-9f8e7d6c5b4a", GREETING: hello}
    ports: {http: "8080:18141"}
    lifecycle:
      running: [{type: http, port: http, path: /, max_wait: 2}]
    instances:
      redact-app-1: {ship: s1, stop_timeout: 1, command: [sh, -c, 'echo "starting with token $API_TOKEN"; sleep 30']}
`
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	pool := docker.NewPool()
	defer pool.Close()
	ctx := context.Background()
	p := diff.Compute(repo.Environments, pool.Observe(ctx, repo.Environments), diff.Options{})
	res := apply.Run(ctx, p, docker.NewDriver(pool, repo.Environments, "", nil), apply.Options{})
	err := res.Err()
	if err == nil {
		t.Fatal("a container that fails its check was deployed")
	}
	msg := err.Error()
	if !strings.Contains(msg, "starting with token ***") {
		t.Errorf("the log lines are missing or not redacted: %s", msg)
	}
	if strings.Contains(msg, "tok-9f8e7d6c5b4a") {
		t.Errorf("the error shows the token: %s", msg)
	}
}
