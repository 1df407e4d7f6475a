package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// verbCLIEnv makes the test binary act as maestro-sync: the verb tests run
// the CLI as a subprocess, built with the same flags (-race) as the tests.
const verbCLIEnv = "MAESTRO_SYNC_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(verbCLIEnv) == "1" {
		main()
		os.Exit(0)
	}
	dockertest.Main(m)
}

// verbsManifest: db and cache (omit: true, but required by web) come
// before web; tool is omitted and required by nobody. Every container logs
// "hello from <name>" and stops at once on SIGTERM.
const verbsManifest = `__maestro: {schema: 2}
name: verbs
ships:
  s1: {ip: %IP1%, socket_path: %SOCK1%, timeout: 20}
  s2: {ip: %IP2%, socket_path: %SOCK2%, timeout: 20}
%REGISTRIES%
services:
  db:
    image: %DBIMAGE%
    env: {MODE: one}
    ports: {http: "8080:18080"}
    lifecycle:
      running: [{type: tcp, port: http, max_wait: 10}]
    instances:
      db-1:
        ship: s1
        stop_timeout: 1
        command: [sh, -c, 'trap "exit 0" TERM; mkdir -p /www; echo db > /www/index.html; httpd -p 8080 -h /www; echo "hello from $CONTAINER_NAME"; sleep 3600 & wait']
  cache:
    image: maestro-test/busybox:1
    omit: true
    instances:
      cache-1: {ship: s2, stop_timeout: 1, command: [sh, -c, '%CMD%']}
  web:
    image: maestro-test/busybox:1
    requires: [db, cache]
    instances:
      web-1: {ship: s1, stop_timeout: 1, command: [sh, -c, '%CMD%']}
      web-2: {ship: s2, stop_timeout: 1, command: [sh, -c, '%CMD%']}
  tool:
    image: maestro-test/busybox:1
    omit: true
    instances:
      tool-1: {ship: s2, stop_timeout: 1, command: [sh, -c, '%CMD%']}
`

const verbsCmd = `trap "exit 0" TERM; echo "hello from $CONTAINER_NAME"; sleep 3600 & wait`

type verbFixture struct {
	t     *testing.T
	ships []*dockertest.Ship
	dir   string
	vars  map[string]string
}

func newVerbFixture(t *testing.T) *verbFixture {
	ships := dockertest.Shared(t, 2)
	f := &verbFixture{t: t, ships: ships, dir: t.TempDir(), vars: map[string]string{
		"%IP1%": ships[0].IP, "%SOCK1%": ships[0].Socket, "%IP2%": ships[1].IP, "%SOCK2%": ships[1].Socket,
		"%CMD%": verbsCmd, "%DBIMAGE%": dockertest.Busybox1, "%REGISTRIES%": "",
	}}
	f.write()
	return f
}

// write writes manifest.yml from verbsManifest and the vars.
func (f *verbFixture) write() {
	f.t.Helper()
	text := verbsManifest
	for k, v := range f.vars {
		text = strings.ReplaceAll(text, k, v)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "manifest.yml"), []byte(text), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// verbResult is what a CLI run printed.
type verbResult struct {
	args        []string
	out, stderr string
	code        int
}

func (r verbResult) String() string {
	return fmt.Sprintf("maestro-sync %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.out, r.stderr)
}

// tableRow is one row of a verb's table.
type tableRow struct{ instance, container, status string }

// rows parses the rows of the table printed, in order, by the positions of
// the columns in its header (the columns are as wide as their longest
// value).
func (r verbResult) rows() []tableRow {
	var out []tableRow
	inst, svc, cont, stat := -1, -1, -1, -1
	for _, l := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(l, "  #  INSTANCE") {
			inst, svc = strings.Index(l, "INSTANCE"), strings.Index(l, "SERVICE")
			cont, stat = strings.Index(l, "CONTAINER"), strings.Index(l, "STATUS")
			continue
		}
		if inst < 0 || len(l) < 5 || l[3] != '.' {
			continue
		}
		field := func(from, to int) string {
			if from >= len(l) {
				return ""
			}
			if to < 0 || to > len(l) {
				to = len(l)
			}
			return strings.TrimSpace(l[from:to])
		}
		out = append(out, tableRow{field(inst, svc), field(cont, stat), field(stat, -1)})
	}
	return out
}

// row returns the container and status fields of the last line printed
// for instance.
func (r verbResult) row(instance string) (container, status string) {
	rows := r.rows()
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].instance == instance {
			return rows[i].container, rows[i].status
		}
	}
	return "", ""
}

// status returns the last status of instance.
func (r verbResult) status(instance string) string { _, s := r.row(instance); return s }

// order returns the instances in the order their last line with status
// want was printed.
func (r verbResult) order(want string) []string {
	var out []string
	for _, row := range r.rows() {
		if row.status == want {
			out = append(out, row.instance)
		}
	}
	return out
}

// run runs maestro-sync in the fixture's directory.
func (f *verbFixture) run(args ...string) verbResult {
	f.t.Helper()
	return runVerb(f.t, f.dir, nil, args...)
}

// mustRun runs maestro-sync and fails the test unless it exits with code.
func (f *verbFixture) mustRun(code int, args ...string) verbResult {
	f.t.Helper()
	r := f.run(args...)
	if r.code != code {
		f.t.Fatalf("want exit %d, got %s", code, r)
	}
	return r
}

func runVerb(t *testing.T, dir string, ctx context.Context, args ...string) verbResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), verbCLIEnv+"=1", "COLUMNS=120", "DOCKER_CONFIG="+filepath.Join(dir, ".docker"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	r := verbResult{args: args, out: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("maestro-sync %v: %v", args, err)
	}
	if testing.Verbose() {
		t.Log(r)
	}
	if strings.Contains(r.stderr, "DATA RACE") {
		t.Errorf("data race in the CLI:\n%s", r)
	}
	return r
}

// container describes a container on a ship: "" ID when there is none.
type shipContainer struct {
	ID      string
	Running bool
}

func (f *verbFixture) container(ship int, name string) shipContainer {
	f.t.Helper()
	out := f.ships[ship].Docker(f.t, "ps", "-a", "--no-trunc", "--filter", "name=^/"+name+"$", "--format", "{{.ID}} {{.State}}")
	if out == "" {
		return shipContainer{}
	}
	id, state, _ := strings.Cut(out, " ")
	return shipContainer{ID: id, Running: state == "running"}
}

// where tells which ship (index) each instance of verbsManifest is on.
var where = map[string]int{"db-1": 0, "web-1": 0, "cache-1": 1, "web-2": 1, "tool-1": 1}

func (f *verbFixture) ids(names ...string) map[string]shipContainer {
	out := map[string]shipContainer{}
	for _, n := range names {
		out[n] = f.container(where[n], n)
	}
	return out
}

func TestVerbsStartStatusStopRestart(t *testing.T) {
	f := newVerbFixture(t)
	r := f.mustRun(0, "--revision", "r1", "start")
	for _, in := range []string{"db-1", "cache-1", "web-1", "web-2"} {
		if st := r.status(in); st != "started" {
			t.Errorf("start: %s is %q, want started\n%s", in, st, r)
		}
	}
	if r.status("tool-1") != "" {
		t.Errorf("start without things must leave the omitted tool alone:\n%s", r)
	}
	// Dependencies start first: db-1 and cache-1 before web-*.
	if got := r.order("started"); len(got) != 4 || slices.Index(got, "db-1") > 1 || slices.Index(got, "cache-1") > 1 {
		t.Errorf("start order %v: db-1 and cache-1 must come first", got)
	}
	up := f.ids("db-1", "cache-1", "web-1", "web-2")
	for n, c := range up {
		if c.ID == "" || !c.Running {
			t.Fatalf("%s: %+v, want running", n, c)
		}
	}

	// status: every service, the omitted ones included.
	r = f.mustRun(0, "status")
	for _, in := range []string{"db-1", "cache-1", "web-1", "web-2"} {
		ctr, st := r.row(in)
		if ctr != "1:"+up[in].ID[:7] || !strings.HasPrefix(st, "running for ") || !strings.HasSuffix(st, ", revision r1") || strings.Contains(st, "outdated") {
			t.Errorf("status %s: %q %q\n%s", in, ctr, st, r)
		}
	}
	if ctr, st := r.row("tool-1"); ctr != "-" || st != "down" {
		t.Errorf("status tool-1: %q %q, want - down", ctr, st)
	}

	// start again leaves running containers alone.
	r = f.mustRun(0, "start")
	if st := r.status("db-1"); !strings.HasPrefix(st, "up for ") {
		t.Errorf("second start: db-1 %q, want up for", st)
	}
	if got := f.ids("db-1", "cache-1", "web-1", "web-2"); !cmp.Equal(got, up) {
		t.Errorf("second start changed containers: %v", cmp.Diff(up, got))
	}

	// stop needs -s for a service; stops but keeps containers.
	r = f.mustRun(1, "stop", "web")
	if !strings.Contains(r.stderr, "web is a service but --expand-services was not specified") {
		t.Errorf("stop web: %s", r)
	}
	r = f.mustRun(0, "stop", "-s", "web")
	for _, in := range []string{"web-1", "web-2"} {
		if st := r.status(in); st != "stopped" {
			t.Errorf("stop: %s %q\n%s", in, st, r)
		}
		if c := f.container(where[in], in); c.ID != up[in].ID || c.Running {
			t.Errorf("stop: %s is %+v, want %s stopped", in, c, up[in].ID)
		}
	}
	if c := f.container(0, "db-1"); !c.Running {
		t.Errorf("stop web stopped db-1")
	}
	r = f.mustRun(0, "status", "web")
	if st := r.status("web-1"); !strings.HasPrefix(st, "down for ") {
		t.Errorf("status after stop: web-1 %q\n%s", st, r)
	}
	if r.status("db-1") != "" {
		t.Errorf("status web shows db-1:\n%s", r)
	}

	// start replaces a stopped container by a new one.
	r = f.mustRun(0, "start", "web-1")
	if c := f.container(0, "web-1"); c.ID == up["web-1"].ID || c.ID == "" || !c.Running {
		t.Errorf("start web-1: %+v, want a new running container\n%s", c, r)
	}
	if c := f.container(1, "web-2"); c.ID != up["web-2"].ID || c.Running {
		t.Errorf("start web-1 touched web-2: %+v", c)
	}

	// restart: a new container; --only-if-changed: nothing when unchanged.
	r = f.mustRun(0, "restart", "db-1")
	db := f.container(0, "db-1")
	if db.ID == up["db-1"].ID || !db.Running || r.status("db-1") != "started" {
		t.Errorf("restart db-1: %+v\n%s", db, r)
	}
	r = f.mustRun(0, "restart", "--only-if-changed", "db-1")
	if c := f.container(0, "db-1"); c.ID != db.ID || r.status("db-1") != "up to date" {
		t.Errorf("restart --only-if-changed of an unchanged db-1: %+v\n%s", c, r)
	}

	// A manifest change: status says outdated, start leaves the running
	// container, restart --only-if-changed replaces it.
	f.vars["MODE: one"] = "MODE: two"
	f.write()
	r = f.mustRun(0, "status", "db")
	if st := r.status("db-1"); !strings.Contains(st, "running for") || !strings.Contains(st, "outdated") {
		t.Errorf("status after a change: db-1 %q\n%s", st, r)
	}
	r = f.mustRun(0, "start", "db-1")
	if c := f.container(0, "db-1"); c.ID != db.ID || !strings.Contains(r.status("db-1"), "outdated") {
		t.Errorf("start of an outdated running db-1: %+v\n%s", c, r)
	}
	r = f.mustRun(0, "restart", "--only-if-changed", "db-1")
	if c := f.container(0, "db-1"); c.ID == db.ID || !c.Running {
		t.Errorf("restart --only-if-changed of a changed db-1: %+v\n%s", c, r)
	}
	if st := f.mustRun(0, "status", "db-1").status("db-1"); strings.Contains(st, "outdated") {
		t.Errorf("still outdated after restart: %q", st)
	}

	// stop -a: dependents first; the omitted cache is not stopped.
	r = f.mustRun(0, "stop", "-a")
	if got := r.order("stopped"); !cmp.Equal(got, []string{"web-1", "db-1"}) {
		t.Errorf("stop -a stopped %v, want web-1 (web-2 is already down) then db-1\n%s", got, r)
	}
	if c := f.container(1, "cache-1"); !c.Running || r.status("cache-1") != "" {
		t.Errorf("stop -a touched the omitted cache-1:\n%s", r)
	}
	if st := r.status("web-2"); st != "down" {
		t.Errorf("stop -a: stopped web-2 shows %q", st)
	}
}

// TestVerbsKillAndReuse: kill kills (SIGKILL: exit code 137, where a stop
// lets the containers' TERM trap exit 0) and keeps the containers; start
// --reuse starts the same containers again, and one whose manifest changed
// is replaced.
func TestVerbsKillAndReuse(t *testing.T) {
	f := newVerbFixture(t)
	f.mustRun(0, "start", "db-1", "web-1", "web-2")
	up := f.ids("db-1", "web-1", "web-2")
	r := f.mustRun(0, "kill", "-a")
	if got := r.order("killed"); !cmp.Equal(got, []string{"web-1", "web-2", "db-1"}) && !cmp.Equal(got, []string{"web-2", "web-1", "db-1"}) {
		t.Errorf("kill -a killed %v, want the web instances, then db-1\n%s", got, r)
	}
	for n, c := range f.ids("db-1", "web-1", "web-2") {
		if c.ID != up[n].ID || c.Running {
			t.Errorf("kill: %s is %+v, want %s kept, stopped", n, c, up[n].ID)
		}
	}
	for n, ship := range where {
		if _, ok := up[n]; !ok {
			continue
		}
		if code := strings.TrimSpace(f.ships[ship].Docker(t, "inspect", "-f", "{{.State.ExitCode}}", n)); code != "137" {
			t.Errorf("%s exited with %s after kill, want 137 (SIGKILL)", n, code)
		}
	}
	if st := f.mustRun(0, "kill", "web-1").status("web-1"); st != "down" {
		t.Errorf("kill of a stopped web-1: %q, want down", st)
	}

	f.vars["MODE: one"] = "MODE: two" // db's spec changes; web's does not
	f.write()
	r = f.mustRun(0, "start", "--reuse", "db-1", "web-1", "web-2")
	now := f.ids("db-1", "web-1", "web-2")
	for _, n := range []string{"web-1", "web-2"} {
		if now[n].ID != up[n].ID || !now[n].Running || r.status(n) != "started" {
			t.Errorf("start --reuse: %s is %+v (%q), want %s running again", n, now[n], r.status(n), up[n].ID)
		}
	}
	if now["db-1"].ID == up["db-1"].ID || !now["db-1"].Running {
		t.Errorf("start --reuse of db-1 whose spec changed: %+v, want a new container", now["db-1"])
	}
	if r := f.mustRun(1, "start", "--reuse", "-r", "web-1"); !strings.Contains(r.stderr, "none of the others can be") && !strings.Contains(r.stderr, "[refresh-images reuse]") {
		t.Errorf("--reuse with -r: %s", r)
	}
}

func TestVerbsClean(t *testing.T) {
	f := newVerbFixture(t)
	f.mustRun(0, "start", "db-1", "web-1", "web-2")
	f.mustRun(0, "stop", "web-1", "web-2")
	stopped := f.ids("web-1", "web-2")
	r := f.mustRun(0, "clean")
	if ctr, st := r.row("web-1"); st != "removed" || !strings.HasPrefix(stopped["web-1"].ID, ctr) {
		t.Errorf("clean web-1: %q %q\n%s", ctr, st, r)
	}
	for in, want := range map[string]string{"web-2": "removed", "db-1": "skipped", "cache-1": "absent"} {
		if st := r.status(in); st != want {
			t.Errorf("clean %s: %q, want %q\n%s", in, st, want, r)
		}
	}
	if r.status("tool-1") != "" {
		t.Errorf("clean without things must leave omitted services out:\n%s", r)
	}
	if got := f.ids("web-1", "web-2", "db-1"); got["web-1"].ID != "" || got["web-2"].ID != "" || !got["db-1"].Running {
		t.Errorf("after clean: %+v", got)
	}
}

func TestVerbsDependenciesAndFilters(t *testing.T) {
	f := newVerbFixture(t)
	// -d adds dependencies for start: db-1 and cache-1 (omitted, but
	// required) come with web-1; web-2 does not.
	r := f.mustRun(0, "start", "-d", "web-1")
	if got := r.order("started"); len(got) != 3 || got[2] != "web-1" || !slices.Contains(got, "db-1") || !slices.Contains(got, "cache-1") {
		t.Errorf("start -d web-1 started %v\n%s", got, r)
	}
	if c := f.container(1, "web-2"); c.ID != "" {
		t.Errorf("start -d web-1 created web-2")
	}
	// -d adds dependents for stop: db-1's dependents are web-1 and
	// web-2 (which has no container).
	r = f.mustRun(0, "stop", "-d", "db-1")
	if got := r.order("stopped"); !cmp.Equal(got, []string{"web-1", "db-1"}) || r.status("web-2") != "down" {
		t.Errorf("stop -d db-1: %v\n%s", got, r)
	}
	if c := f.container(1, "cache-1"); !c.Running {
		t.Errorf("stop -d db-1 stopped cache-1")
	}
	// Filters apply with -d and with no things (MaestroNG ignores them
	// then, bug B7).
	r = f.mustRun(0, "status", "-S", "s2")
	if r.status("db-1") != "" || r.status("web-1") != "" || r.status("web-2") == "" || r.status("tool-1") == "" {
		t.Errorf("status -S s2:\n%s", r)
	}
	r = f.mustRun(0, "start", "-d", "-C", "web-*", "web-1")
	if r.status("db-1") != "" || r.status("web-1") != "started" {
		t.Errorf("start -d -C web-* web-1 must not start db-1:\n%s", r)
	}
	if c := f.container(0, "db-1"); c.Running {
		t.Errorf("db-1 was started despite -C")
	}
	// Without -d, only the named instance: db-1 is down, but not waited
	// for outside the play.
	if r := f.mustRun(0, "start", "web-2"); r.status("web-2") != "started" || r.status("db-1") != "" {
		t.Errorf("start web-2:\n%s", r)
	}
	r = f.mustRun(0, "stop", "-a", "-S", "s2")
	if r.status("web-1") != "" || r.status("web-2") != "stopped" || r.status("cache-1") != "" {
		t.Errorf("stop -a -S s2:\n%s", r)
	}
	if c := f.container(0, "web-1"); !c.Running {
		t.Errorf("stop -a -S s2 stopped web-1")
	}
	// -i: no dependencies added, no waiting.
	r = f.mustRun(0, "status", "-i", "-C", "db-*")
	if r.status("db-1") == "" || r.status("web-1") != "" {
		t.Errorf("status -i -C db-*:\n%s", r)
	}
}

func TestVerbsStatusFull(t *testing.T) {
	f := newVerbFixture(t)
	f.mustRun(0, "start", "db-1", "cache-1")
	r := f.mustRun(0, "status", "-F", "-H", "db-1")
	if !strings.Contains(r.out, f.ships[0].IP) || !strings.Contains(r.out, "     image maestro-test/busybox:1 (") {
		t.Errorf("status -F -H: no ship ip or image:\n%s", r)
	}
	if want := fmt.Sprintf("     >> %15s: %9s is up", "http", "18080"); !strings.Contains(r.out, want) {
		t.Errorf("status -F: want %q:\n%s", want, r)
	}
	f.mustRun(0, "stop", "db-1")
	r = f.mustRun(0, "status", "-F", "db-1")
	if !strings.Contains(r.out, "http:     18080 is down") {
		t.Errorf("status -F of a stopped db-1:\n%s", r)
	}
}

// TestVerbsStatusJSON: status -o json parses and gives each instance's
// state, container, revision and whether it is outdated; -o wide is -F.
func TestVerbsStatusJSON(t *testing.T) {
	f := newVerbFixture(t)
	f.mustRun(0, "start", "--revision", "abc123", "db-1")
	r := f.mustRun(0, "status", "-o", "json", "db-1", "cache-1")
	var got []struct {
		Env, Service, Instance, Ship, State, Container, Image, Revision string
		Outdated                                                        bool
	}
	if err := json.Unmarshal([]byte(r.out), &got); err != nil || len(got) != 2 {
		t.Fatalf("status -o json: %v\n%s", err, r)
	}
	byName := map[string]int{got[0].Instance: 0, got[1].Instance: 1}
	db, cache := got[byName["db-1"]], got[byName["cache-1"]]
	if db.State != "running" || db.Revision != "abc123" || db.Outdated || len(db.Container) != 64 || db.Image != "maestro-test/busybox:1" || db.Service != "db" {
		t.Errorf("db-1: %+v", db)
	}
	if cache.State != "missing" || cache.Container != "" {
		t.Errorf("cache-1: %+v", cache)
	}
	if r := f.mustRun(0, "status", "-o", "wide", "db-1"); !strings.Contains(r.out, "     image maestro-test/busybox:1 (") {
		t.Errorf("status -o wide:\n%s", r)
	}
	if r := f.mustRun(1, "status", "-o", "yaml"); !strings.Contains(r.stderr, "text, wide or json") {
		t.Errorf("status -o yaml: %s", r)
	}

	// In a Git work tree, what start and restart create records the commit
	// checked out, -dirty when the manifests differ from it; status shows it.
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", f.dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "manifests")
	head := git("rev-parse", "HEAD")
	revisionOf := func() string {
		var got []struct{ Instance, Revision string }
		json.Unmarshal([]byte(f.mustRun(0, "status", "-o", "json", "db-1").out), &got)
		return got[0].Revision
	}
	// A work tree is an owner of its own (its path, with no remote).
	f.ships[0].Docker(t, "rm", "-f", "db-1")
	f.mustRun(0, "start", "db-1")
	if rev := revisionOf(); rev != head {
		t.Errorf("after start in a Git work tree: revision %q, want %s", rev, head)
	}
	if r := f.mustRun(0, "status", "db-1"); !strings.Contains(r.out, "revision "+head) {
		t.Errorf("status does not show the revision:\n%s", r)
	}
	os.WriteFile(filepath.Join(f.dir, "manifest.yml"), append(must(os.ReadFile(filepath.Join(f.dir, "manifest.yml"))), []byte("# edited\n")...), 0o644)
	f.mustRun(0, "restart", "db-1")
	if rev := revisionOf(); rev != head+"-dirty" {
		t.Errorf("after restart of edited manifests: revision %q, want %s-dirty", rev, head)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVerbsLogs(t *testing.T) {
	f := newVerbFixture(t)
	f.mustRun(0, "start", "db-1", "cache-1")
	waitLog(t, f.ships[0], "db-1", "hello from db-1")
	r := f.mustRun(0, "logs", "db-1")
	if strings.TrimSpace(r.out) != "hello from db-1" {
		t.Errorf("logs db-1: %s", r)
	}
	// A service with a single instance names it.
	if r := f.mustRun(0, "logs", "-n", "1", "db"); strings.TrimSpace(r.out) != "hello from db-1" {
		t.Errorf("logs db: %s", r)
	}
	if r := f.mustRun(1, "logs", "web"); !strings.Contains(r.stderr, "web is a service with 2 instances") {
		t.Errorf("logs web: %s", r)
	}
	if r := f.mustRun(1, "logs", "web-1"); !strings.Contains(r.stderr, "web-1 is not running!") {
		t.Errorf("logs of an absent web-1: %s", r)
	}
	if r := f.mustRun(1, "logs"); !strings.Contains(r.stderr, "logs needs exactly one instance") {
		t.Errorf("logs without an instance: %s", r)
	}

	// -F follows until interrupted, and across a restart.
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "logs", "-F", "cache-1")
	cmd.Dir = f.dir
	cmd.Env = append(os.Environ(), verbCLIEnv+"=1")
	var out dockertest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the followed line", func() bool { return strings.Contains(out.String(), "hello from cache-1") })
	f.ships[1].Docker(t, "restart", "-t", "1", "cache-1")
	waitFor(t, "the line after the restart", func() bool { return strings.Count(out.String(), "hello from cache-1") >= 2 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logs -F after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("logs -F did not end on SIGINT:\n%s", out.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitLog(t *testing.T, s *dockertest.Ship, name, line string) {
	t.Helper()
	waitFor(t, name+" to log "+line, func() bool {
		out, _ := exec.Command("docker", "--host", s.Host, "logs", name).CombinedOutput()
		return strings.Contains(string(out), line)
	})
}

func TestVerbsForeignContainersAreNeverTouched(t *testing.T) {
	f := newVerbFixture(t)
	// A running foreign web-2 and a stopped foreign web-1: same names as
	// instances, no maestro-sync labels.
	f.ships[1].Docker(t, "run", "-d", "--name", "web-2", dockertest.Busybox1, "sleep", "3600")
	f.ships[0].Docker(t, "create", "--name", "web-1", dockertest.Busybox1, "sleep", "3600")
	foreign := f.ids("web-1", "web-2")
	check := func(after string) {
		t.Helper()
		if got := f.ids("web-1", "web-2"); !cmp.Equal(got, foreign) {
			t.Errorf("after %s the foreign containers changed: %s", after, cmp.Diff(foreign, got))
		}
	}
	r := f.mustRun(1, "start")
	if r.status("db-1") != "started" || r.status("web-1") != "failed!" || !strings.Contains(r.stderr, "exists without maestro-sync labels") {
		t.Errorf("start with foreign containers:\n%s", r)
	}
	check("start")
	r = f.mustRun(0, "status")
	if st := r.status("web-2"); !strings.HasPrefix(st, "down, foreign container "+foreign["web-2"].ID[:7]) {
		t.Errorf("status web-2: %q\n%s", st, r)
	}
	check("status")
	r = f.mustRun(0, "stop", "-s", "web")
	if r.status("web-1") != "down" || r.status("web-2") != "down" {
		t.Errorf("stop -s web:\n%s", r)
	}
	check("stop")
	f.mustRun(1, "restart", "-s", "web")
	check("restart")
	r = f.mustRun(0, "clean", "web")
	if r.status("web-1") != "absent" {
		t.Errorf("clean web:\n%s", r)
	}
	check("clean")
	if r := f.mustRun(1, "logs", "web-2"); !strings.Contains(r.stderr, "web-2 is not running!") {
		t.Errorf("logs of a foreign web-2: %s", r)
	}
	f.run("pull", "web")
	check("pull")
	if c := f.container(0, "db-1"); !c.Running {
		t.Errorf("db-1 is not running")
	}
}

// TestVerbSelectionErrors needs no ship: the errors come first, and
// unreachable ships show as host down.
func TestVerbSelectionErrors(t *testing.T) {
	dir := t.TempDir()
	text := strings.NewReplacer("%IP1%", "127.0.0.1", "%SOCK1%", filepath.Join(dir, "no1.sock"), "%IP2%", "127.0.0.1",
		"%SOCK2%", filepath.Join(dir, "no2.sock"), "%CMD%", verbsCmd, "%DBIMAGE%", dockertest.Busybox1, "%REGISTRIES%", "").Replace(verbsManifest)
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args     []string
		code     int
		stderr   string
		hostDown bool // db-1 shows host down
	}{
		{[]string{"status", "nothere"}, 1, "nothere is neither a service nor an instance", false},
		{[]string{"start", "db-1", "nothere"}, 1, "nothere is neither a service nor an instance", false},
		{[]string{"stop"}, 1, "No services or containers specified for stop, and --all not set.", false},
		{[]string{"restart"}, 1, "No services or containers specified for restart, and --all not set.", false},
		{[]string{"stop", "web"}, 1, "web is a service but --expand-services was not specified", false},
		{[]string{"restart", "-d", "db"}, 1, "db is a service but --expand-services was not specified", false},
		{[]string{"status", "-C", "[x"}, 1, "invalid filter", false},
		{[]string{"logs", "db-1", "web-1"}, 1, "logs needs exactly one instance", false},
		{[]string{"logs", "nothere"}, 1, "nothere is neither a service nor an instance", false},
		{[]string{"status"}, 0, "", true},
		{[]string{"stop", "-a"}, 0, "", true},
		{[]string{"start", "db-1"}, 1, "ship unreachable", true},
		{[]string{"clean", "db-1"}, 1, "db-1", true},
	} {
		r := runVerb(t, dir, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("want exit %d and %q in stderr, got %s", tc.code, tc.stderr, r)
		}
		if tc.hostDown {
			if st := r.status("db-1"); st != "host down" {
				t.Errorf("%v: db-1 is %q, want host down\n%s", tc.args, st, r)
			}
		}
	}
}

// TestVerbsPull pulls from a CNCF Distribution registry started by the
// test (the ships reach 127.0.0.1, an insecure registry by default) that
// wants the credentials of the manifest's registries section.
func TestVerbsPull(t *testing.T) {
	f := newVerbFixture(t)
	reg := dockertest.StartRegistry(t, "bob", "s3cret")
	reg.Push(t, dockertest.Busybox2, "maestro-test/busybox", "2")
	ref := reg.Host + "/maestro-test/busybox:2"
	f.vars["%DBIMAGE%"] = ref
	f.vars["%REGISTRIES%"] = fmt.Sprintf("registries:\n  local: {registry: 'http://%s', username: bob, password: s3cret, email: bob@example.com}", reg.Host)
	f.write()
	if out, err := exec.Command("docker", "--host", f.ships[0].Host, "image", "inspect", ref).CombinedOutput(); err == nil {
		t.Fatalf("ship 1 already has %s: %s", ref, out)
	}
	r := f.mustRun(0, "pull", "db")
	if r.status("db-1") != "done" {
		t.Errorf("pull db:\n%s", r)
	}
	id := f.ships[0].Docker(t, "image", "inspect", "--format", "{{.Id}}", ref)
	want, _ := exec.Command("docker", "--host", dockertest.DefaultHost, "image", "inspect", "--format", "{{.Id}}", dockertest.Busybox2).Output()
	if id != strings.TrimSpace(string(want)) {
		t.Errorf("pulled image %s, want the ID of %s: %s", id, dockertest.Busybox2, want)
	}
	// Pulling an image the ship has is quick.
	start := time.Now()
	f.mustRun(0, "pull", "db-1")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("pull of a present image took %s", d)
	}
	// The pulled image runs.
	if r := f.mustRun(0, "start", "db-1"); r.status("db-1") != "started" {
		t.Errorf("start db-1 from the pulled image:\n%s", r)
	}
	// A tag the registry lacks fails with a message naming the image.
	f.vars["%DBIMAGE%"] = reg.Host + "/maestro-test/busybox:9"
	f.write()
	r = f.mustRun(1, "pull", "db-1")
	if r.status("db-1") != "failed!" || !strings.Contains(r.stderr, "pull "+reg.Host+"/maestro-test/busybox:9") {
		t.Errorf("pull of a missing tag:\n%s", r)
	}
	// Wrong credentials are refused.
	f.vars["%DBIMAGE%"] = ref
	f.vars["%REGISTRIES%"] = strings.Replace(f.vars["%REGISTRIES%"], "s3cret", "wrong", 1)
	f.write()
	denied := reg.AuthFailures()
	if r := f.mustRun(1, "pull", "db-1"); !strings.Contains(r.stderr, "pull "+ref) || !strings.Contains(r.stderr, "unauthorized") {
		t.Errorf("pull with a wrong password:\n%s", r)
	}
	if !reg.Eventually(func() bool { return reg.AuthFailures() > denied }) {
		t.Errorf("the registry did not refuse the wrong password")
	}
}

// TestVerbsPullWithoutRegistry: the ships reach no public registry here,
// so pulling an image named for Docker Hub fails, naming the image.
func TestVerbsPullWithoutRegistry(t *testing.T) {
	f := newVerbFixture(t)
	r := f.mustRun(1, "pull", "-C", "db-*")
	if r.status("db-1") != "failed!" || !strings.Contains(r.stderr, "pull "+dockertest.Busybox1) {
		t.Errorf("pull with no registry:\n%s", r)
	}
}

// TestVerbPick checks the selection rules without ships.
func TestVerbPick(t *testing.T) {
	text := strings.NewReplacer("%IP1%", "10.0.0.1", "%SOCK1%", "/x/1.sock", "%IP2%", "10.0.0.2", "%SOCK2%", "/x/2.sock",
		"%CMD%", "true", "%DBIMAGE%", "busybox:1", "%REGISTRIES%", "").Replace(verbsManifest)
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		kind  verbKind
		flags verbFlags
		want  string // instances in play order, or the error
	}{
		{"status all", kindStatus, verbFlags{}, "cache-1 db-1 tool-1 web-1 web-2"},
		{"start all", kindStart, verbFlags{}, "cache-1 db-1 web-1 web-2"},
		{"start all -i", kindStart, verbFlags{ignoreDeps: true}, "db-1 web-1 web-2"},
		{"start web-1", kindStart, verbFlags{things: []string{"web-1"}}, "web-1"},
		{"start -d web-1", kindStart, verbFlags{things: []string{"web-1"}, withDeps: true}, "cache-1 db-1 web-1"},
		{"start -d web-1 -C", kindStart, verbFlags{things: []string{"web-1"}, withDeps: true, containerFilter: "*-1"}, "cache-1 db-1 web-1"},
		{"start all -S s2", kindStart, verbFlags{shipFilter: "s2"}, "cache-1 web-2"},
		{"start -d web -S s1", kindStart, verbFlags{things: []string{"web"}, withDeps: true, shipFilter: "s1"}, "db-1 web-1"},
		{"start service", kindStart, verbFlags{things: []string{"web", "db-1"}}, "db-1 web-1 web-2"},
		{"stop none", kindStop, verbFlags{}, "No services or containers specified for stop, and --all not set."},
		{"stop service", kindStop, verbFlags{things: []string{"db"}}, "db is a service but --expand-services was not specified"},
		{"stop -s service", kindStop, verbFlags{things: []string{"db"}, expand: true}, "db-1"},
		{"stop -d db-1", kindStop, verbFlags{things: []string{"db-1"}, withDeps: true}, "web-1 web-2 db-1"},
		// Omitted services are left out, also when required (MaestroNG).
		{"stop -a", kindStop, verbFlags{all: true}, "web-1 web-2 db-1"},
		{"stop -a cache", kindStop, verbFlags{all: true, things: []string{"cache"}}, "cache-1"},
		{"stop -a -i", kindStop, verbFlags{all: true, ignoreDeps: true}, "web-1 web-2 db-1"},
		{"stop -a -C", kindStop, verbFlags{all: true, containerFilter: "web-?"}, "web-1 web-2"},
		{"restart -a service", kindRestart, verbFlags{things: []string{"web"}, all: true}, "web-1 web-2"},
		{"unknown", kindStatus, verbFlags{things: []string{"nope"}}, "nope is neither a service nor an instance"},
		{"bad glob", kindStatus, verbFlags{shipFilter: "[s"}, `invalid filter "[s": syntax error in pattern`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refs, err := tc.flags.pick(repo.Environments, tc.kind)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				var names []string
				for _, r := range refs {
					names = append(names, r.In.Name)
				}
				got = strings.Join(names, " ")
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestForTime(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{0, " for 0s"},
		{59 * time.Second, " for 59s"},
		{5*time.Minute + 3*time.Second, " for 5m3s"},
		{time.Hour + 2*time.Minute + 9*time.Second, " for 1h2m"},
		{49*time.Hour + 3*time.Minute, " for 2d1h3m"},
		{-time.Second, ""},
	} {
		if got := forTime(now.Add(-tc.ago), now); got != tc.want {
			t.Errorf("%s ago: %q, want %q", tc.ago, got, tc.want)
		}
	}
	if got := forTime(time.Time{}, now); got != "" {
		t.Errorf("unset time: %q", got)
	}
}

func TestTableLayout(t *testing.T) {
	t.Setenv("COLUMNS", "120")
	var b bytes.Buffer
	env := &manifest.Environment{Name: "e", Ships: map[string]*manifest.Ship{"s1": {Name: "s1", IP: "10.0.0.1"}}}
	refs := []docker.Ref{{Env: env, In: &manifest.Instance{Name: "zk-1", Service: "zk", Ship: "s1"}}, {Env: env, In: &manifest.Instance{Name: "zk-2", Service: "zk", Ship: "s1"}}}
	tb := newTable(&b, refs, kindStop, false)
	tb.set(0, "3.4:abcdef1", "stopped", green)
	// The columns are as wide as their longest value (or header).
	want := "  #  INSTANCE  SERVICE  SHIP  CONTAINER                  STATUS\n" +
		"  2. zk-1      zk       s1    3.4:abcdef1                stopped\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// TestVerbsRollingRestart: -c 1 --step-delay restarts one instance after
// the other, pausing before each but the first.
func TestVerbsRollingRestart(t *testing.T) {
	f := newVerbFixture(t)
	f.mustRun(0, "start", "web")
	before := f.ids("web-1", "web-2")
	start := time.Now()
	r := f.mustRun(0, "restart", "-s", "-c", "1", "--step-delay", "1", "--stop-start-delay", "1", "web")
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("restart took %s, want at least 1s step delay and 2×1s stop-start delay", d)
	}
	after := f.ids("web-1", "web-2")
	for _, in := range []string{"web-1", "web-2"} {
		if after[in].ID == before[in].ID || !after[in].Running || r.status(in) != "started" {
			t.Errorf("%s: %+v before %+v\n%s", in, after[in], before[in], r)
		}
	}
	// One at a time: the second begins once the first has started.
	var events []string
	for _, row := range r.rows() {
		events = append(events, row.instance+" "+row.status)
	}
	first, second := events[0][:5], "web-2"
	if first == "web-2" {
		second = "web-1"
	}
	done := slices.Index(events, first+" started")
	wait := slices.Index(events, second+" waiting 1s before restart...")
	if done < 0 || wait < done || slices.Index(events, first+" waiting 1s before starting...") < 0 {
		t.Errorf("not a rolling restart:\n%s", strings.Join(events, "\n"))
	}
}

// TestVerbsPullWithCredentialHelper: with no credentials in the manifest,
// a pull asks the credential helper the Docker configuration names for
// the registry (credHelpers), a docker-credential-* program on PATH, and
// the registry gets the helper's credentials; a helper that fails is
// named in the error, without its output.
func TestVerbsPullWithCredentialHelper(t *testing.T) {
	f := newVerbFixture(t)
	reg := dockertest.StartRegistry(t, "helper-user", "helper-s3cret")
	reg.Push(t, dockertest.Busybox2, "maestro-test/busybox", "2")
	ref := reg.Host + "/maestro-test/busybox:2"
	f.vars["%DBIMAGE%"] = ref
	f.vars["%REGISTRIES%"] = ""
	f.write()

	bin := t.TempDir()
	asked := filepath.Join(bin, "asked")
	helper := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || exit 1
read server
echo "$server" >> %s
[ -f %s/fail ] && { echo "helper secret-detail boom" >&2; exit 1; }
printf '{"ServerURL":"%%s","Username":"helper-user","Secret":"helper-s3cret"}' "$server"
`, asked, bin)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-mstest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err := os.MkdirAll(filepath.Join(f.dir, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"credHelpers": {%q: "mstest"}}`, reg.Host)
	if err := os.WriteFile(filepath.Join(f.dir, ".docker", "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	pushed := reg.Authorized("helper-user")
	if r := f.mustRun(0, "pull", "db-1"); r.status("db-1") != "done" {
		t.Errorf("pull through the credential helper:\n%s", r)
	}
	if !reg.Eventually(func() bool { return reg.Authorized("helper-user") > pushed }) {
		t.Errorf("the registry served no request with the helper's credentials")
	}
	if got, _ := os.ReadFile(asked); strings.TrimSpace(string(got)) != reg.Host {
		t.Errorf("the helper was asked for %q, want %s", got, reg.Host)
	}
	if id := f.ships[0].Docker(t, "image", "inspect", "--format", "{{.Id}}", ref); id == "" {
		t.Errorf("%s is not on the ship", ref)
	}

	// Without a helper, the auths entry of the configuration.
	f.ships[0].Docker(t, "rmi", ref)
	auths := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, "http://"+reg.Host, base64.StdEncoding.EncodeToString([]byte("helper-user:helper-s3cret")))
	if err := os.WriteFile(filepath.Join(f.dir, ".docker", "config.json"), []byte(auths), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := f.mustRun(0, "pull", "db-1"); r.status("db-1") != "done" {
		t.Errorf("pull with the auths entry:\n%s", r)
	}

	if err := os.WriteFile(filepath.Join(f.dir, ".docker", "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := f.mustRun(1, "pull", "db-1")
	if !strings.Contains(r.stderr, "the Docker credential helper mstest for "+reg.Host+" failed") || strings.Contains(r.stderr+r.out, "secret-detail") {
		t.Errorf("pull with a failing helper:\n%s", r)
	}
}

// TestApplyRefreshImagesFollowsAMovedTag: a tag that moved to another
// image in the registry leaves the spec (and its hash) as it was; apply
// --refresh-images re-resolves it on the ship and replaces the container,
// naming the image; plain apply does not look.
func TestApplyRefreshImagesFollowsAMovedTag(t *testing.T) {
	f := newVerbFixture(t)
	reg := dockertest.StartRegistry(t, "bob", "s3cret")
	reg.Push(t, dockertest.Busybox1, "maestro-test/moving", "stable")
	ref := reg.Host + "/maestro-test/moving:stable"
	f.vars["%DBIMAGE%"] = ref
	f.vars["%REGISTRIES%"] = fmt.Sprintf("registries:\n  local: {registry: 'http://%s', username: bob, password: s3cret}", reg.Host)
	f.write()
	f.mustRun(0, "apply", "db-1")
	imageOf := func() string {
		return strings.TrimSpace(f.ships[0].Docker(t, "inspect", "--format", "{{.Image}}", "db-1"))
	}
	first := imageOf()

	reg.Push(t, dockertest.Busybox2, "maestro-test/moving", "stable")
	if r := f.mustRun(0, "apply", "db-1"); !strings.Contains(r.out, "0 to replace") && strings.Contains(r.out, "replace") {
		t.Errorf("apply without --refresh-images looked at the registry:\n%s", r)
	}
	if imageOf() != first {
		t.Fatalf("apply without --refresh-images replaced db-1")
	}
	r := f.mustRun(0, "apply", "--refresh-images", "db-1")
	want, _ := exec.Command("docker", "--host", dockertest.DefaultHost, "image", "inspect", "--format", "{{.Id}}", dockertest.Busybox2).Output()
	if got := imageOf(); got != strings.TrimSpace(string(want)) {
		t.Errorf("db-1 runs %s after apply --refresh-images, want %s\n%s", got, want, r)
	}
	if !strings.Contains(r.out, "drift: image: "+ref+" is now ") {
		t.Errorf("the plan does not name the moved image:\n%s", r)
	}
}
