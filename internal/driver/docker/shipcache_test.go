package docker_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// TestObserveCachedFollowsEvents: while Follow follows a ship's events,
// ObserveCached reads the ship's last list and makes no request as long
// as no container changes, and a full Observe lists without inspecting
// again what no event changed; a container updated or stopped by hand,
// or one created by someone else, is read at once by a new list; what it
// reads is what a list reads.
func TestObserveCachedFollowsEvents(t *testing.T) {
	s := dockertest.Shared(t, 1)[0]
	socket, requests := s.CountingProxy(t)
	text := fmt.Sprintf(`name: cached
ships: {s1: {ip: %s, socket_path: %s, timeout: 20}}
services:
  app:
    image: maestro-test/busybox:1
    instances:
      cached-app-1: {ship: s1, stop_timeout: 1, command: [sleep, "3600"]}
`, s.IP, socket)
	repo := manifest.LoadSources(nil, []manifest.Source{{Name: "cached/manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	envs := repo.Environments
	ship := envs[0].Ships["s1"]
	pool := docker.NewPool()
	t.Cleanup(func() { pool.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		pool.Follow(ctx, ship, "", func(live.Change) {})
	}()
	t.Cleanup(func() { cancel(); <-followed })
	t.Cleanup(func() { s.Docker(t, "rm", "-f", "cached-app-1", "cached-foreign") })

	containers := func(st *live.State) []live.Container {
		t.Helper()
		h := st.Hosts[ship.Address()]
		if h == nil || h.Err != nil {
			t.Fatalf("observe: %+v", h)
		}
		return h.Containers
	}
	find := func(list []live.Container, name string) *live.Container {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
		return nil
	}
	// quiet waits until ObserveCached reads without a request, then
	// checks that it keeps doing so and agrees with a list.
	quiet := func(step string) []live.Container {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			containers(pool.ObserveCached(ctx, envs))
			before := requests.Load()
			containers(pool.ObserveCached(ctx, envs))
			if requests.Load() == before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: every ObserveCached still makes requests", step)
			}
			time.Sleep(200 * time.Millisecond)
		}
		before := requests.Load()
		var cached []live.Container
		for range 3 {
			cached = containers(pool.ObserveCached(ctx, envs))
		}
		if n := requests.Load() - before; n != 0 {
			t.Errorf("%s: three reads of an unchanged ship made %d requests", step, n)
		}
		listed := containers(docker.NewPool().Observe(ctx, envs))
		if !reflect.DeepEqual(cached, listed) {
			t.Errorf("%s: the cache and a list differ:\ncached %+v\nlisted %+v", step, cached, listed)
		}
		return cached
	}

	drv := docker.NewDriver(pool, envs, "rev1", nil)
	for _, st := range planFor(t, pool, envs).Mutating() {
		if err := drv.Apply(ctx, st, func(string) {}); err != nil {
			t.Fatal(err)
		}
	}
	if c := find(quiet("deployed"), "cached-app-1"); c == nil || c.State != "running" {
		t.Fatalf("deployed: cached-app-1 is %+v", c)
	}
	// A full observation lists again, and inspects only the containers
	// that changed since the last list inspected them: none.
	before := requests.Load()
	containers(pool.Observe(ctx, envs))
	if n := requests.Load() - before; n != 1 {
		t.Errorf("a full observation of an unchanged ship made %d requests, want 1 (the list)", n)
	}
	// docker update changes no label: the update event has the next
	// full observation inspect the container again, and see the drift.
	s.Docker(t, "update", "--memory", "32m", "--memory-swap", "-1", "cached-app-1")
	eventually(t, "the update's drift read", func() bool {
		c := find(containers(pool.Observe(ctx, envs)), "cached-app-1")
		return c != nil && len(c.Drift) > 0 && strings.HasPrefix(c.Drift[0], "memory:")
	})
	quiet("updated")

	s.Docker(t, "stop", "-t", "1", "cached-app-1")
	eventually(t, "the stop read", func() bool {
		c := find(containers(pool.ObserveCached(ctx, envs)), "cached-app-1")
		return c != nil && c.State == "exited"
	})
	quiet("stopped")

	s.Docker(t, "create", "--name", "cached-foreign", "maestro-test/busybox:1", "true")
	eventually(t, "the foreign container read", func() bool {
		return find(containers(pool.ObserveCached(ctx, envs)), "cached-foreign") != nil
	})
	quiet("a foreign container")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// planFor observes envs through pool and plans them.
func planFor(t *testing.T, pool *docker.Pool, envs []*manifest.Environment) *plan.Plan {
	t.Helper()
	p := diff.Compute(envs, pool.Observe(context.Background(), envs), diff.Options{Revision: "rev1"})
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}
