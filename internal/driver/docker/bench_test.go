package docker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// The environment of BenchmarkNoopPlan: benchServices services of one
// instance per ship, so benchServices × benchShips instances in all.
const (
	benchShips    = 4
	benchServices = 50
)

// benchManifest declares benchServices long-running services, each with
// one instance on every ship; services from svc005 on require one of the
// first five, so that env injection and ordering have work to do.
func benchManifest(ships []*dockertest.Ship) string {
	var b strings.Builder
	b.WriteString("__maestro: {schema: 2}\nname: bench\nships:\n")
	for i, s := range ships {
		// A generous timeout: 4 dockerds share this machine with the
		// benchmark.
		fmt.Fprintf(&b, "  s%d: {ip: %s, socket_path: %s, timeout: 30}\n", i+1, s.IP, s.Socket)
	}
	b.WriteString("services:\n")
	for n := range benchServices {
		fmt.Fprintf(&b, "  svc%03d:\n    image: %s\n    env: {SERVICE_INDEX: \"%d\"}\n", n, dockertest.Busybox1, n)
		if n >= 5 {
			fmt.Fprintf(&b, "    requires: [svc%03d]\n", n%5)
		}
		b.WriteString("    instances:\n")
		for i := range ships {
			fmt.Fprintf(&b, "      svc%03d-%d: {ship: s%d, stop_timeout: 1, command: [sleep, \"3600\"]}\n", n, i+1, i+1)
		}
	}
	return b.String()
}

// BenchmarkNoopPlan measures what `maestro-sync plan` does on an unchanged
// repository: observe 4 real ships holding 200 containers of ours
// (Pool.Observe: one list call per ship, concurrently) and diff.Compute,
// which must plan zero mutating steps. The 200 instances are deployed once
// through the real pipeline (apply.Run with the Docker driver), outside the
// timer. Sub-benchmarks time observe+compute (the plan), and each half.
func BenchmarkNoopPlan(b *testing.B) {
	ships := dockertest.Shared(b, benchShips)
	text := benchManifest(ships)
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "bench/manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		b.Fatalf("manifest: %v", err)
	}
	envs := repo.Environments
	want := benchServices * benchShips
	if n := len(envs[0].Instances()); n != want {
		b.Fatalf("manifest has %d instances, want %d", n, want)
	}
	pool := docker.NewPool()
	b.Cleanup(func() { pool.Close() })
	ctx := context.Background()

	observe := func(b *testing.B) *live.State {
		state := pool.Observe(ctx, envs)
		for addr, h := range state.Hosts {
			if h.Err != nil {
				b.Fatalf("observe %s: %v", addr, h.Err)
			}
		}
		return state
	}
	compute := func(b *testing.B, state *live.State) *plan.Plan {
		return diff.Compute(envs, state, diff.Options{Revision: "bench"})
	}
	noop := func(b *testing.B, p *plan.Plan) {
		if s := p.Summary(); s.Changes() != 0 || s.Unchanged != want {
			b.Fatalf("no-op plan: %+v, want 0 changes and %d unchanged\n%s", s, want, p)
		}
	}

	// Setup, outside the timer: deploy every instance.
	start := time.Now()
	first := compute(b, observe(b))
	if s := first.Summary(); s.Create != want {
		b.Fatalf("first plan: %+v, want %d creates (are the ships clean?)", s, want)
	}
	drv := docker.NewDriver(pool, envs, "bench", nil)
	res := apply.Run(ctx, first, drv, apply.Options{Concurrency: 16})
	if err := res.Err(); err != nil {
		b.Fatalf("deploy: %v", err)
	}
	deploy := time.Since(start)
	b.Logf("deployed %d instances on %d ships in %s (apply -c 16)", want, benchShips, deploy.Round(time.Millisecond))
	state := observe(b)
	total := 0
	for _, h := range state.Hosts {
		total += len(h.Containers)
	}
	if total != want {
		b.Fatalf("ships hold %d containers, want %d", total, want)
	}
	noop(b, compute(b, state))

	b.Run(fmt.Sprintf("observe+compute-%dctr-%dships", want, benchShips), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			noop(b, compute(b, observe(b)))
		}
		b.ReportMetric(deploy.Seconds(), "setup-deploy-s")
	})
	b.Run(fmt.Sprintf("observe-%dctr-%dships", want, benchShips), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			observe(b)
		}
	})
	b.Run(fmt.Sprintf("compute-%dinst", want), func(b *testing.B) {
		b.ReportAllocs()
		var p *plan.Plan
		for b.Loop() {
			p = compute(b, state)
		}
		noop(b, p)
	})
}
