package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// shipsYAML declares the test ships s1, s2, s3.
func shipsYAML(ships []*dockertest.Ship) string {
	var b strings.Builder
	b.WriteString("ships:\n")
	for i, s := range ships {
		fmt.Fprintf(&b, "  s%d: {ip: %s, socket_path: %s, timeout: 20}\n", i+1, s.IP, s.Socket)
	}
	return b.String()
}

// webApp is an environment with a db and a web service requiring it, over
// three ships. Replace placeholders to vary it.
const webApp = `__maestro: {schema: 2}
name: it
%SHIPS%
services:
  db:
    image: maestro-test/busybox:1
    env: {DB_MODE: primary}
    ports: {http: "8080:18080"}
    lifecycle:
      running: [{type: http, port: http, path: /index.html, max_wait: 20}]
    instances:
      db-1:
        ship: s1
        stop_timeout: 1
        container_volumes: /data
        command: [sh, -c, "mkdir -p /www && echo db > /www/index.html && exec httpd -f -p 8080 -h /www"]
  web:
    image: maestro-test/busybox:1
    requires: [db]
    env: {GREETING: hello}
    ports: {http: "8080:%WEBPORT%"}
    lifecycle:
      running: [{type: http, port: http, path: %WEBPATH%, max_wait: %WAIT%}]
    instances:
      web-1: {ship: s2, stop_timeout: 1, command: [httpd, -f, -p, "8080", -h, /www]}
      web-2: {ship: s3, stop_timeout: 1, command: [httpd, -f, -p, "8080", -h, /www]}
`

type fixture struct {
	t     *testing.T
	ships []*dockertest.Ship
	pool  *docker.Pool
	vars  map[string]string
	text  string
}

func newFixture(t *testing.T) *fixture {
	ships := dockertest.Shared(t, 3)
	pool := docker.NewPool()
	t.Cleanup(func() { pool.Close() })
	return &fixture{t: t, ships: ships, pool: pool, text: webApp, vars: map[string]string{
		"%SHIPS%": shipsYAML(ships), "%WEBPORT%": "18081", "%WEBPATH%": "/index.html", "%WAIT%": "20",
	}}
}

func (f *fixture) load() []*manifest.Environment {
	f.t.Helper()
	text := f.text
	for k, v := range f.vars {
		text = strings.ReplaceAll(text, k, v)
	}
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "it/manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		f.t.Fatalf("manifest: %v", err)
	}
	return repo.Environments
}

// plan observes the ships and plans.
func (f *fixture) plan(prune bool) (*plan.Plan, []*manifest.Environment) {
	f.t.Helper()
	envs := f.load()
	state := f.pool.Observe(context.Background(), envs)
	for addr, h := range state.Hosts {
		if h.Err != nil {
			f.t.Fatalf("observe %s: %v", addr, h.Err)
		}
	}
	p := diff.Compute(envs, state, diff.Options{Prune: prune, Revision: "rev1"})
	if err := p.Validate(); err != nil {
		f.t.Fatalf("invalid plan: %v", err)
	}
	return p, envs
}

// apply plans and applies, returning the plan and the result.
func (f *fixture) apply(prune bool) (*plan.Plan, *apply.Result, []string) {
	f.t.Helper()
	p, envs := f.plan(prune)
	drv := docker.NewDriver(f.pool, envs, "rev1", nil)
	drv.CheckInterval = 200 * time.Millisecond
	var order []string
	res := apply.Run(context.Background(), p, drv, apply.Options{Progress: func(e apply.Event) {
		if e.State == "starting" {
			order = append(order, e.Step.Instance)
		}
	}})
	return p, res, order
}

// inspect returns docker inspect of a container on a ship.
type inspected struct {
	ID     string
	Name   string
	State  struct{ Running bool }
	Config struct {
		Env    []string
		Labels map[string]string
	}
}

func inspect(t *testing.T, s *dockertest.Ship, name string) inspected {
	t.Helper()
	var out []inspected
	if err := json.Unmarshal([]byte(s.Docker(t, "inspect", name)), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return out[0]
}

func names(t *testing.T, s *dockertest.Ship) []string {
	out := s.Docker(t, "ps", "-a", "--format", "{{.Names}}")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func envOf(c inspected) map[string]string {
	m := map[string]string{}
	for _, kv := range c.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestFirstDeployInjectsEnvInDependencyOrder(t *testing.T) {
	f := newFixture(t)
	p, res, order := f.apply(false)
	if err := res.Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if s := p.Summary(); s.Create != 3 {
		t.Fatalf("plan: %+v", s)
	}
	if len(order) != 3 || order[0] != "db-1" {
		t.Errorf("start order %v: db-1 must start first", order)
	}
	db := inspect(t, f.ships[0], "db-1")
	web := inspect(t, f.ships[1], "web-1")
	if !db.State.Running || !web.State.Running {
		t.Fatalf("not running: db %v web %v", db.State.Running, web.State.Running)
	}
	env := envOf(web)
	want := map[string]string{
		"DB_DB_1_HOST":                 f.ships[0].IP,
		"DB_DB_1_HTTP_PORT":            "18080",
		"DB_INSTANCES":                 "db-1",
		"WEB_INSTANCES":                "web-1,web-2",
		"WEB_WEB_2_HOST":               f.ships[2].IP,
		"WEB_WEB_1_HTTP_PORT":          "18081",
		"WEB_WEB_1_HTTP_INTERNAL_PORT": "8080",
		"CONTAINER_NAME":               "web-1",
		"CONTAINER_HOST_ADDRESS":       f.ships[1].IP,
		"SERVICE_NAME":                 "web",
		"MAESTRO_ENVIRONMENT_NAME":     "it",
		"DOCKER_IMAGE":                 "maestro-test/busybox:1",
		"DOCKER_TAG":                   "1",
		"GREETING":                     "hello",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("web-1 env %s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["DB_DB_1_HTTP_INTERNAL_PORT"]; ok {
		t.Errorf("a dependency's internal port must not be injected")
	}
	for k, v := range map[string]string{label.Env: "it", label.Service: "web", label.Instance: "web-1", label.Revision: "rev1"} {
		if web.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, web.Config.Labels[k], v)
		}
	}
	if got := get(t, "http://"+f.ships[0].IP+":18080/index.html"); strings.TrimSpace(got) != "db" {
		t.Errorf("db answers %q", got)
	}
	// Idempotence: the same repository plans nothing.
	again, _ := f.plan(false)
	if s := again.Summary(); s.Changes() != 0 || s.Unchanged != 3 {
		t.Fatalf("second plan: %+v\n%s", s, again)
	}
}

func TestEnvChangeReplacesOnlyThatInstanceAndKeepsData(t *testing.T) {
	f := newFixture(t)
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatal(res.Err())
	}
	before := map[string]string{}
	for i, name := range []string{"db-1", "web-1", "web-2"} {
		before[name] = inspect(t, f.ships[i], name).ID
	}
	f.ships[0].Docker(t, "exec", "db-1", "sh", "-c", "echo precious > /data/file")
	f.text = strings.Replace(f.text, "DB_MODE: primary", "DB_MODE: replica", 1)
	p, res, _ := f.apply(false)
	if err := res.Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if s := p.Summary(); s.Replace != 1 || s.Unchanged != 2 {
		t.Fatalf("plan %+v:\n%s", s, p)
	}
	if st := p.Mutating()[0]; st.Instance != "db-1" || !strings.Contains(strings.Join(st.Causes, ";"), "env DB_MODE changed") {
		t.Errorf("step %+v", st)
	}
	db := inspect(t, f.ships[0], "db-1")
	if db.ID == before["db-1"] || !db.State.Running {
		t.Errorf("db-1 was not replaced (id %s, running %v)", db.ID, db.State.Running)
	}
	if envOf(db)["DB_MODE"] != "replica" {
		t.Errorf("db-1 env DB_MODE = %q", envOf(db)["DB_MODE"])
	}
	if got := names(t, f.ships[0]); len(got) != 1 {
		t.Errorf("ship 1 holds %v, want only db-1", got)
	}
	if out := f.ships[0].Docker(t, "exec", "db-1", "cat", "/data/file"); out != "precious" {
		t.Errorf("data in /data: %q", out)
	}
	for i, name := range []string{"web-1", "web-2"} {
		if id := inspect(t, f.ships[i+1], name).ID; id != before[name] {
			t.Errorf("%s was touched", name)
		}
	}
}

func TestFailedCheckKeepsOldContainer(t *testing.T) {
	for _, tc := range []struct {
		name, port string
	}{
		{"beside the old one", "18082"}, // a new host port: both can run at once
		{"host port clash", "18081"},    // same host port: the old one is stopped first
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if _, res, _ := f.apply(false); res.Err() != nil {
				t.Fatal(res.Err())
			}
			old := inspect(t, f.ships[1], "web-1").ID
			f.vars["%WEBPORT%"] = tc.port
			f.vars["%WEBPATH%"] = "/missing.html"
			f.vars["%WAIT%"] = "2"
			f.text = strings.Replace(f.text, "GREETING: hello", "GREETING: bye", 1)
			p, res, _ := f.apply(false)
			if s := p.Summary(); s.Replace != 2 {
				t.Fatalf("plan: %+v\n%s", s, p)
			}
			err := res.Err()
			if err == nil || !strings.Contains(err.Error(), "http") || !strings.Contains(err.Error(), "/missing.html") {
				t.Fatalf("error must name the failed http check, got %v", err)
			}
			c := inspect(t, f.ships[1], "web-1")
			if c.ID != old || !c.State.Running {
				t.Errorf("web-1: id %s running %v, want old id %s running", c.ID, c.State.Running, old)
			}
			if got := names(t, f.ships[1]); len(got) != 1 {
				t.Errorf("ship 2 holds %v, want only web-1", got)
			}
			if got := get(t, "http://"+f.ships[1].IP+":18081/index.html"); got == "" {
				t.Errorf("old web-1 does not serve")
			}
		})
	}
}

func TestPruneLeavesForeignContainers(t *testing.T) {
	f := newFixture(t)
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatal(res.Err())
	}
	f.ships[0].Docker(t, "run", "-d", "--name", "foreign", dockertest.Busybox1, "sleep", "3600")
	f.ships[1].Docker(t, "run", "-d", "--name", "intruder", dockertest.Busybox1, "sleep", "3600")
	// web is dropped; a new service wants the name "intruder".
	text := f.text[:strings.Index(f.text, "  web:")] + `  other:
    image: maestro-test/busybox:1
    instances:
      intruder: {ship: s2, command: [sleep, "3600"], stop_timeout: 1}
`
	f.text = text
	orphans, _ := f.plan(false)
	if s := orphans.Summary(); s.Orphan != 2 || s.Remove != 0 || s.Conflict != 1 {
		t.Fatalf("without --prune: %+v\n%s", s, orphans)
	}
	p, res, _ := f.apply(true)
	if s := p.Summary(); s.Remove != 2 || s.Conflict != 1 {
		t.Fatalf("with --prune: %+v\n%s", s, p)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, f.ships[1]); len(got) != 1 || got[0] != "intruder" {
		t.Errorf("ship 2 holds %v, want the foreign intruder only", got)
	}
	if c := inspect(t, f.ships[1], "intruder"); c.Config.Labels[label.Env] != "" || !c.State.Running {
		t.Errorf("foreign container was modified: %+v", c)
	}
	if c := inspect(t, f.ships[0], "foreign"); !c.State.Running {
		t.Errorf("foreign container stopped")
	}
}
