package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
	"github.com/maestro-sync/maestro-sync/test/dockersim"
)

// The simulated fleet of the scale benchmarks: fleetShips ships (Docker
// engines simulated by test/dockersim, each request answered after
// fleetLatency), and fleetServices services with one instance on every
// ship: fleetShips × fleetServices = 10,000 containers.
const (
	fleetShips    = 50
	fleetServices = 200
	fleetLatency  = 5 * time.Millisecond
	fleetImage    = "maestro-test/busybox:1"
)

// fleetManifest is the environment "fleet" over the ships; version is
// the value of svc000's env VERSION (a change replaces its instances).
func fleetManifest(ships []*dockersim.Ship, version int) string {
	var b strings.Builder
	b.WriteString("__maestro: {schema: 2}\nname: fleet\nships:\n")
	for i, s := range ships {
		fmt.Fprintf(&b, "  s%02d: {ip: 127.0.0.1, socket_path: %s, timeout: 30}\n", i+1, s.Socket)
	}
	b.WriteString("services:\n")
	for n := range fleetServices {
		fmt.Fprintf(&b, "  svc%03d:\n    image: %s\n    env: {SERVICE_INDEX: \"%d\"", n, fleetImage, n)
		if n == 0 {
			fmt.Fprintf(&b, ", VERSION: \"%d\"", version)
		}
		b.WriteString("}\n    instances:\n")
		for i := range ships {
			fmt.Fprintf(&b, "      svc%03d-s%02d: {ship: s%02d, stop_timeout: 1, command: [sleep, \"3600\"]}\n", n, i+1, i+1)
		}
	}
	return b.String()
}

// fleet is a deployed simulated fleet.
type fleet struct {
	ships []*dockersim.Ship
	hosts *reconcile.Hosts
	owner owner.Owner
	files fstest.MapFS
	// cache loads the manifests as the daemon does: an environment whose
	// files did not change is not loaded again.
	cache manifest.Cache
}

// startFleet starts the ships and deploys the manifest of version 1 on
// them through reconcile.Apply, without latency (setup, not measured),
// then sets every ship's latency to fleetLatency.
func startFleet(b *testing.B) *fleet {
	b.Helper()
	f := &fleet{
		ships: dockersim.Fleet(b, fleetShips, dockersim.Options{Images: []string{fleetImage}}),
		owner: owner.New("fleet-bench"),
	}
	f.files = fstest.MapFS{"manifest.yml": {Data: []byte(fleetManifest(f.ships, 1))}}
	f.hosts = &reconcile.Hosts{Docker: docker.NewPool(), Owner: f.owner}
	b.Cleanup(func() { f.hosts.Docker.Close() })
	start := time.Now()
	envs := f.load(b)
	res, err := reconcile.Apply(b.Context(), f.hosts, f.request(envs))
	if err != nil {
		b.Fatalf("deploy: %v", err)
	}
	if err := res.Apply.Err(); err != nil {
		b.Fatalf("deploy: %v", err)
	}
	if s := res.Plan.Summary(); s.Create != fleetShips*fleetServices {
		b.Fatalf("deploy planned %+v, want %d creates", s, fleetShips*fleetServices)
	}
	for _, s := range f.ships {
		if n := s.Containers(); n != fleetServices {
			b.Fatalf("a ship holds %d containers after the deploy, want %d", n, fleetServices)
		}
		s.SetLatency(fleetLatency)
	}
	b.Logf("deployed %d containers on %d simulated ships in %s", fleetShips*fleetServices, fleetShips, time.Since(start).Round(time.Millisecond))
	return f
}

func (f *fleet) load(b *testing.B) []*manifest.Environment {
	repo, err := f.cache.Load(f.files, manifest.Options{})
	if err != nil {
		b.Fatalf("manifest: %v", err)
	}
	if len(repo.Invalid) > 0 {
		b.Fatalf("invalid manifests: %v", repo.Invalid)
	}
	return repo.Environments
}

// request is a run of the CLI's apply: every lock, then observe.
func (f *fleet) request(envs []*manifest.Environment) reconcile.Request {
	return reconcile.Request{Owner: f.owner, Envs: envs, Revision: "r1", Holder: lock.Self(), Concurrency: 64}
}

// noop checks that a run found nothing to do on any ship.
func noop(b *testing.B, res *reconcile.Result) {
	b.Helper()
	for addr, h := range res.Before.Hosts {
		if h.Err != nil {
			b.Fatalf("observe %s: %v", addr, h.Err)
		}
	}
	if s := res.Plan.Summary(); s.Changes() != 0 || s.Unchanged != fleetShips*fleetServices {
		b.Fatalf("no-op run planned %+v, want 0 changes and %d unchanged", s, fleetShips*fleetServices)
	}
}

// BenchmarkFleetNoop measures a no-op reconcile of 10,000 instances on
// 50 simulated ships that answer each request after 5 ms: loading the
// manifest as the daemon does (through a manifest.Cache, which keeps the
// environment of a file that did not change), then reconcile.Apply with
// the real Docker driver (Hosts).
//
//   - followed/plan-first: the daemon's run (PlanFirst, SkipLocked) while
//     it follows the ships' events: the lists kept since the last run are
//     read, nothing is to do, no lock is taken.
//   - followed/locked: a run that takes the deploy lock on every ship,
//     observes in full (a list per ship; the drift of running instances
//     is inspected again only where an event came), plans and releases:
//     what a daemon's run that changes something costs before it applies.
//   - unfollowed/plan-first: the daemon's run following no events: every
//     ship is listed and every running instance inspected for drift.
//   - load: the cached manifest load alone, part of each of the above;
//     load-uncached: manifest.Load of the environment, what a commit that
//     changes it costs.
func BenchmarkFleetNoop(b *testing.B) {
	f := startFleet(b)
	ctx := b.Context()
	run := func(b *testing.B, planFirst bool) {
		for b.Loop() {
			req := f.request(f.load(b))
			req.PlanFirst, req.SkipLocked = planFirst, planFirst
			res, err := reconcile.Apply(ctx, f.hosts, req)
			if err != nil {
				b.Fatal(err)
			}
			noop(b, res)
		}
	}
	counted := func(b *testing.B, planFirst bool) {
		before := requests(f.ships)
		run(b, planFirst)
		b.ReportMetric(float64(requests(f.ships)-before)/float64(b.N), "requests/op")
	}
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			f.load(b)
		}
	})
	b.Run("load-uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := manifest.Load(f.files, manifest.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unfollowed/plan-first", func(b *testing.B) { counted(b, true) })
	wctx, stop := context.WithCancel(ctx)
	defer func() { stop(); f.hosts.StopWatching() }()
	f.hosts.Watch(wctx, f.load(b), func(live.Change) {})
	time.Sleep(1500 * time.Millisecond) // the streams count as up after a second
	req := f.request(f.load(b))
	if _, err := reconcile.Apply(ctx, f.hosts, req); err != nil { // lists kept from here
		b.Fatal(err)
	}
	b.Run("followed/plan-first", func(b *testing.B) { counted(b, true) })
	b.Run("followed/locked", func(b *testing.B) { counted(b, false) })
}

func requests(ships []*dockersim.Ship) int64 {
	var n int64
	for _, s := range ships {
		n += s.Requests()
	}
	return n
}

// BenchmarkFleetCommitToHealthy measures the daemon's commit → healthy
// on the deployed fleet when one service changes (its 50 instances, one
// per ship, are replaced): from the webhook's trigger of the new revision
// to the environment reported synced at it. The daemon follows the
// ships' events, as `maestro-sync run` does, and is idle when a change
// comes; a first change, not measured, brings it to its steady state.
// Containers start at once in the simulation, so the figure is
// maestro-sync's own.
func BenchmarkFleetCommitToHealthy(b *testing.B) {
	f := startFleet(b)
	src := &fakeSource{}
	version := 1
	src.set("r1", map[string]string{"manifest.yml": fleetManifest(f.ships, version)})
	d := New(Config{
		Source: src, Target: f.hosts, Owner: f.owner, Branch: "main", Concurrency: 64,
		Poll: time.Hour, Resync: time.Hour, BackoffMin: time.Second, BackoffMax: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	b.Cleanup(func() { cancel(); <-done })
	synced := func(rev string) bool {
		e := envState(d, "fleet")
		return e.State == "synced" && e.AppliedRevision == rev && d.Status().LastResult == "success"
	}
	wait := func(b *testing.B, rev string, limit time.Duration) {
		deadline := time.Now().Add(limit)
		for !synced(rev) {
			if time.Now().After(deadline) {
				s := d.Status()
				b.Fatalf("not synced at %s after %s: %s %s, env %+v", rev, limit, s.LastResult, s.LastError, envState(d, "fleet"))
			}
			time.Sleep(time.Millisecond)
		}
	}
	// idle waits until the daemon has no run going, due or pending (a
	// change runs once more after a run its own events came during).
	// It must stay so for 50 ms: a run that ends triggers the next after
	// it has marked itself done.
	idle := func() {
		since := time.Now()
		for time.Since(since) < 50*time.Millisecond {
			d.mu.Lock()
			busy := d.running || d.pending != nil || d.eventTimer != nil
			d.mu.Unlock()
			if busy {
				since = time.Now()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	change := func(b *testing.B) {
		version++
		rev := fmt.Sprintf("r%d", version)
		b.StopTimer()
		src.set(rev, map[string]string{"manifest.yml": fleetManifest(f.ships, version)})
		idle()
		b.StartTimer()
		d.Trigger("webhook", time.Now())
		wait(b, rev, time.Minute)
	}
	wait(b, "r1", time.Minute)
	time.Sleep(1500 * time.Millisecond) // the event streams are up
	// The first run after the streams came up lists every ship and
	// inspects every container once (what a daemon does once after it
	// starts or a ship reconnects); the measure is the steady state.
	change(b)
	for b.Loop() {
		change(b)
	}
	b.StopTimer()
	for _, s := range f.ships {
		if n := s.Containers(); n != fleetServices {
			b.Fatalf("a ship holds %d containers, want %d", n, fleetServices)
		}
	}
}
