package docker_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// opsApp: app requires db; both on ship s1.
const opsApp = `__maestro: {schema: 2}
name: ops
ships:
  s1: {ip: %IP%, socket_path: %SOCK%, timeout: 20}
services:
  db:
    image: %IMAGE%
    ports: {http: "8080:18090", dns: "53/udp:18053/udp"}
    lifecycle:
      pre-stop: [{type: exec, command: "sh -c 'echo pre-stop >> %MARK%'"}]
      stopped: [{type: exec, command: "sh -c 'echo stopped >> %MARK%'"}]
    instances:
      db-1: {ship: s1, stop_timeout: 1}
  app:
    image: maestro-test/busybox:1
    requires: [db]
    instances:
      app-1: {ship: s1, stop_timeout: 1}
      app-2: {ship: s1, stop_timeout: 1}
`

func loadOps(t *testing.T, vars map[string]string) *manifest.Environment {
	t.Helper()
	text := opsApp
	for k, v := range vars {
		text = strings.ReplaceAll(text, k, v)
	}
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "ops/manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return repo.Environments[0]
}

func ref(env *manifest.Environment, name string) docker.Ref {
	return docker.Ref{Env: env, In: env.Instance(name)}
}

// runOwned starts a container for an instance by hand, with the owner
// labels the driver would set.
func runOwned(t *testing.T, s *dockertest.Ship, env *manifest.Environment, name string, cmd ...string) string {
	t.Helper()
	in := env.Instance(name)
	args := []string{"run", "-d", "--name", name,
		"--label", label.Env + "=" + env.Name, "--label", label.Instance + "=" + name,
		"--label", label.Service + "=" + in.Service, "--label", label.SpecHash + "=" + in.SpecHash,
		"-p", "18090:8080", in.Image}
	return s.Docker(t, append(args, cmd...)...)
}

const serve = `trap "exit 0" TERM; mkdir -p /w; httpd -p 8080 -h /w; echo "line one"; echo "line two" >&2; sleep 3600 & wait`

func TestOpsInspectStopRemove(t *testing.T) {
	ships := dockertest.Shared(t, 1)
	mark := filepath.Join(t.TempDir(), "mark")
	env := loadOps(t, map[string]string{"%IP%": ships[0].IP, "%SOCK%": ships[0].Socket, "%IMAGE%": dockertest.Busybox1, "%MARK%": mark})
	pool := docker.NewPool()
	t.Cleanup(func() { pool.Close() })
	ctx := context.Background()
	db := ref(env, "db-1")

	obs, err := pool.Inspect(ctx, db)
	if err != nil || obs.Container != nil || obs.Foreign != nil {
		t.Fatalf("inspect with no container: %+v, %v", obs, err)
	}
	id := runOwned(t, ships[0], env, "db-1", "sh", "-c", serve)
	// A foreign container holds app-1's name.
	foreign := ships[0].Docker(t, "run", "-d", "--name", "app-1", dockertest.Busybox1, "sleep", "3600")

	obs, err = pool.Inspect(ctx, db)
	if err != nil || obs.Container == nil {
		t.Fatalf("inspect db-1: %+v, %v", obs, err)
	}
	c := obs.Container
	if c.ID != id || !c.Running || c.State != "running" || c.StartedAt.IsZero() || !c.FinishedAt.IsZero() ||
		c.SpecHash() != db.In.SpecHash || c.Image != dockertest.Busybox1 || !strings.HasPrefix(c.ImageID, "sha256:") {
		t.Errorf("db-1: %+v", c)
	}
	if !cmp.Equal(c.Ports, map[string]string{"http": "18090", "dns": "18053"}) {
		t.Errorf("ports %v", c.Ports)
	}
	if img, err := pool.ImageID(ctx, db); err != nil || img != c.ImageID {
		t.Errorf("image ID %q, %v; container runs %s", img, err, c.ImageID)
	}
	waitUp := time.Now().Add(10 * time.Second)
	for !docker.PortUp(ctx, ships[0].IP, "18090", "tcp") {
		if time.Now().After(waitUp) {
			t.Fatalf("port 18090 of db-1 is not up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if docker.PortUp(ctx, ships[0].IP, "18053", "udp") || docker.PortUp(ctx, ships[0].IP, "18091", "tcp") {
		t.Errorf("a udp port or a closed port is up")
	}

	app := ref(env, "app-1")
	obs, err = pool.Inspect(ctx, app)
	if err != nil || obs.Container != nil || obs.Foreign == nil || obs.Foreign.ID != foreign {
		t.Errorf("inspect of a foreign app-1: %+v, %v", obs, err)
	}

	// Logs: stdout and stderr apart, -n.
	var out, errOut bytes.Buffer
	waitFor(t, func() bool {
		out.Reset()
		errOut.Reset()
		return pool.Logs(ctx, db, docker.LogOptions{}, &out, &errOut) == nil && out.String() == "line one\n" && errOut.String() == "line two\n"
	})
	out.Reset()
	errOut.Reset()
	if err := pool.Logs(ctx, db, docker.LogOptions{Tail: "1"}, &out, &errOut); err != nil || out.Len()+errOut.Len() != len("line one\n") {
		t.Errorf("logs -n 1: %q %q %v", out.String(), errOut.String(), err)
	}
	if err := pool.Logs(ctx, app, docker.LogOptions{}, &out, &errOut); !errors.Is(err, docker.ErrNotRunning) || err.Error() != "app-1 is not running!" {
		t.Errorf("logs of a foreign app-1: %v", err)
	}

	// Stop runs pre-stop, stops within stop_timeout, runs stopped.
	var states []string
	start := time.Now()
	if err := pool.Stop(ctx, db, c, func(s string) { states = append(states, s) }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %s", d)
	}
	if want := []string{"checking pre-stop", "stopping service", "checking stopped"}; !cmp.Equal(states, want) {
		t.Errorf("stop states %v, want %v", states, want)
	}
	// exec checks run where maestro-sync runs.
	if b, err := os.ReadFile(mark); err != nil || !cmp.Equal(strings.Fields(string(b)), []string{"pre-stop", "stopped"}) {
		t.Errorf("lifecycle checks wrote %q, %v", b, err)
	}
	obs, _ = pool.Inspect(ctx, db)
	if obs.Container == nil || obs.Container.ID != id || obs.Container.Running || obs.Container.FinishedAt.IsZero() {
		t.Fatalf("after stop: %+v", obs.Container)
	}
	// Logs of a stopped container still print.
	out.Reset()
	if err := pool.Logs(ctx, db, docker.LogOptions{Follow: true}, &out, &out); err != nil || !strings.Contains(out.String(), "line one") {
		t.Errorf("logs of a stopped db-1: %q %v", out.String(), err)
	}

	if err := pool.Remove(ctx, db, obs.Container); err != nil {
		t.Fatal(err)
	}
	if obs, _ := pool.Inspect(ctx, db); obs.Container != nil {
		t.Errorf("db-1 is still there")
	}
	if c := inspect(t, ships[0], "app-1"); c.ID != foreign || !c.State.Running {
		t.Errorf("foreign app-1 changed: %+v", c)
	}
}

func TestOpsLogsFollowAcrossRestarts(t *testing.T) {
	ships := dockertest.Shared(t, 1)
	env := loadOps(t, map[string]string{"%IP%": ships[0].IP, "%SOCK%": ships[0].Socket, "%IMAGE%": dockertest.Busybox1, "%MARK%": "/dev/null"})
	pool := docker.NewPool()
	t.Cleanup(func() { pool.Close() })
	db := ref(env, "db-1")
	runOwned(t, ships[0], env, "db-1", "sh", "-c", `trap "exit 0" TERM; echo started; sleep 3600 & wait`)
	ctx, cancel := context.WithCancel(context.Background())
	var out dockertest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		// No polling: only Docker's start event can wake the follower.
		done <- pool.Logs(ctx, db, docker.LogOptions{Follow: true, Poll: time.Hour}, &out, &out)
	}()
	waitFor(t, func() bool { return strings.Count(out.String(), "started") == 1 })
	ships[0].Docker(t, "stop", "-t", "1", "db-1")
	time.Sleep(time.Second) // the follower now waits for a start
	ships[0].Docker(t, "start", "db-1")
	waitFor(t, func() bool { return strings.Count(out.String(), "started") == 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logs -F: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs -F did not end when cancelled")
	}
	if n := strings.Count(out.String(), "started"); n != 2 {
		t.Errorf("followed %d start lines, want 2:\n%s", n, out.String())
	}
}

func TestOpsPullAndHostDown(t *testing.T) {
	ships := dockertest.Shared(t, 1)
	env := loadOps(t, map[string]string{"%IP%": ships[0].IP, "%SOCK%": ships[0].Socket, "%IMAGE%": "maestro-test/busybox:404", "%MARK%": "/dev/null"})
	pool := docker.NewPool()
	t.Cleanup(func() { pool.Close() })
	drv := docker.NewDriver(pool, []*manifest.Environment{env}, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var states []string
	err := drv.Pull(ctx, ref(env, "db-1"), func(s string) { states = append(states, s) })
	if err == nil || !strings.Contains(err.Error(), "pull maestro-test/busybox:404") || !strings.Contains(err.Error(), "ship s1") {
		t.Errorf("pull of an image no registry has: %v", err)
	}
	if !cmp.Equal(states, []string{"pulling image maestro-test/busybox:404"}) {
		t.Errorf("pull states %v", states)
	}
	if id, err := pool.ImageID(ctx, ref(env, "db-1")); id != "" || err != nil {
		t.Errorf("image ID of a missing image: %q %v", id, err)
	}

	down := loadOps(t, map[string]string{"%IP%": "127.0.0.1", "%SOCK%": filepath.Join(t.TempDir(), "none.sock"), "%IMAGE%": dockertest.Busybox1, "%MARK%": "/dev/null"})
	_, err = pool.Inspect(ctx, ref(down, "db-1"))
	if !docker.IsHostDown(err) || !strings.Contains(err.Error(), "ship s1") {
		t.Errorf("inspect on a ship that is down: %v", err)
	}
	if err := docker.NewDriver(pool, []*manifest.Environment{down}, "", nil).Pull(ctx, ref(down, "db-1"), func(string) {}); !docker.IsHostDown(err) && !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("pull on a ship that is down: %v", err)
	}
}

func TestWaits(t *testing.T) {
	env := loadOps(t, map[string]string{"%IP%": "10.0.0.1", "%SOCK%": "/x.sock", "%IMAGE%": "busybox", "%MARK%": "/dev/null"})
	refs := []docker.Ref{ref(env, "db-1"), ref(env, "app-1"), ref(env, "app-2")}
	if got, want := docker.Waits(refs, false), [][]int{nil, {0}, {0}}; !cmp.Equal(got, want) {
		t.Errorf("forward waits %v, want %v", got, want)
	}
	if got, want := docker.Waits(refs, true), [][]int{{1, 2}, nil, nil}; !cmp.Equal(got, want) {
		t.Errorf("reverse waits %v, want %v", got, want)
	}
	// Instances of another environment never wait for each other.
	other := loadOps(t, map[string]string{"%IP%": "10.0.0.1", "%SOCK%": "/x.sock", "%IMAGE%": "busybox", "%MARK%": "/dev/null"})
	if got := docker.Waits([]docker.Ref{ref(other, "db-1"), ref(env, "app-1")}, false); !cmp.Equal(got, [][]int{nil, nil}) {
		t.Errorf("waits across environments: %v", got)
	}
}

func TestPlay(t *testing.T) {
	ctx := context.Background()
	t.Run("order", func(t *testing.T) {
		var mu sync.Mutex
		var order []int
		errs := docker.Play(ctx, [][]int{{1}, nil, {0, 1}}, 0, func(_ context.Context, i int) error {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			return nil
		})
		if !cmp.Equal(order, []int{1, 0, 2}) || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
			t.Errorf("order %v errs %v", order, errs)
		}
	})
	t.Run("abort", func(t *testing.T) {
		boom := errors.New("boom")
		var ran atomic.Int32
		errs := docker.Play(ctx, [][]int{nil, {0}, {1}, nil}, 0, func(_ context.Context, i int) error {
			ran.Add(1)
			if i == 0 {
				return boom
			}
			return nil
		})
		if errs[0] != boom || !errors.Is(errs[1], docker.ErrAborted) || !errors.Is(errs[2], docker.ErrAborted) || errs[3] != nil || ran.Load() != 2 {
			t.Errorf("errs %v, ran %d", errs, ran.Load())
		}
	})
	t.Run("limit", func(t *testing.T) {
		var cur, peak atomic.Int32
		docker.Play(ctx, make([][]int, 8), 2, func(context.Context, int) error {
			n := cur.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			cur.Add(-1)
			return nil
		})
		if peak.Load() != 2 {
			t.Errorf("peak concurrency %d, want 2", peak.Load())
		}
	})
	t.Run("limit 1 runs in list order", func(t *testing.T) {
		for range 20 {
			var order []int // written by one task at a time
			docker.Play(ctx, [][]int{nil, nil, {4}, nil, nil}, 1, func(_ context.Context, i int) error {
				order = append(order, i)
				return nil
			})
			if !cmp.Equal(order, []int{0, 1, 3, 4, 2}) {
				t.Fatalf("order %v", order)
			}
		}
	})
	t.Run("circular", func(t *testing.T) {
		errs := docker.Play(ctx, [][]int{{1}, {0}, nil}, 0, func(context.Context, int) error { return nil })
		if !errors.Is(errs[0], docker.ErrAborted) || !errors.Is(errs[1], docker.ErrAborted) || errs[2] != nil {
			t.Errorf("errs %v", errs)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		errs := docker.Play(ctx, [][]int{nil, {0}}, 0, func(_ context.Context, i int) error {
			cancel()
			return nil
		})
		if errs[0] != nil || !errors.Is(errs[1], docker.ErrAborted) || !errors.Is(errs[1], context.Canceled) {
			t.Errorf("errs %v", errs)
		}
	})
}

func TestStartSteps(t *testing.T) {
	state := &live.State{Hosts: map[string]*live.Host{"h": {Containers: []live.Container{
		{ID: "running", State: "running"}, {ID: "exited", State: "exited"},
	}}}}
	p := &plan.Plan{Revision: "r", Steps: []plan.Step{
		{ID: "leftover", Action: plan.Remove, Container: "tmp"},
		{ID: "db", Action: plan.Replace, Instance: "db", Container: "exited", After: []string{"leftover"}},
		{ID: "cache", Action: plan.Replace, Instance: "cache", Container: "running"},
		{ID: "web", Action: plan.Create, Instance: "web", After: []string{"cache", "db"}},
		{ID: "ok", Action: plan.Unchanged, Container: "running"},
		{ID: "gone", Action: plan.Remove, Container: "x"},
	}}
	got := docker.StartSteps(p, state, false)
	want := &plan.Plan{Revision: "r", Steps: []plan.Step{
		{ID: "db", Action: plan.Replace, Instance: "db", Container: "exited"},
		{ID: "web", Action: plan.Create, Instance: "web", After: []string{"db"}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("start steps (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
	if got := docker.StartSteps(p, state, true); got.Steps[1].After != nil {
		t.Errorf("ignoreDeps kept %v", got.Steps[1].After)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
