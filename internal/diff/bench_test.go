package diff_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// The generated repository: some environments of benchServices services
// with benchInstances instances each (1,000 instances per environment),
// spread over the same 4 ships (Docker daemons).
const (
	benchServices  = 100
	benchInstances = 10
	benchShips     = 4
	// foreignPerShip containers without maestro-sync labels run on every
	// ship beside ours.
	foreignPerShip = 10
)

// benchManifest returns the text of environment e. rev gives the value of
// the REV variable of a service: changing it changes that service's spec.
func benchManifest(e int, rev func(svc int) int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "__maestro: {schema: 2}\nname: env%d\nships:\n", e)
	for s := range benchShips {
		fmt.Fprintf(&b, "  ship%d: {ip: 10.9.0.%d, docker_port: 2375}\n", s, s+1)
	}
	b.WriteString("services:\n")
	for s := range benchServices {
		fmt.Fprintf(&b, "  svc%d:\n    image: registry.example.com/team/svc%d:1.%d\n", s, s, s%7)
		if s >= 5 {
			fmt.Fprintf(&b, "    requires: [svc%d]\n    wants_info: [svc%d]\n", s%5, s-1)
		}
		fmt.Fprintf(&b, "    env: {LOG_LEVEL: info, REV: \"%d\", JAVA_OPTS: [-Xmx256m, -Dsvc=%d]}\n", rev(s), s)
		b.WriteString("    limits: {memory: 256m, cpu: 512}\n    instances:\n")
		for i := range benchInstances {
			// Host ports are unique across the repository.
			fmt.Fprintf(&b, "      e%d-svc%d-%d: {ship: ship%d, ports: {http: \"8080:%d\"}, volumes: {/srv/e%d/svc%d/%d: /data}, restart: on-failure:3, command: [sleep, \"3600\"]}\n",
				e, s, i, (s+i)%benchShips, 10000+e*1000+s*10+i, e, s, i)
		}
	}
	return b.String()
}

// loadBench loads the generated repository; rev as for benchManifest.
func loadBench(tb testing.TB, envs int, rev func(env, svc int) int) []*manifest.Environment {
	tb.Helper()
	srcs := make([]manifest.Source, envs)
	for e := range envs {
		srcs[e] = manifest.Source{Name: fmt.Sprintf("env%d/manifest.yml", e), Data: []byte(benchManifest(e, func(s int) int { return rev(e, s) }))}
	}
	repo := manifest.LoadSources(fstest.MapFS{}, srcs, manifest.Options{})
	if err := repo.Err(); err != nil {
		tb.Fatalf("load: %v", err)
	}
	if n := len(repo.Environments); n != envs {
		tb.Fatalf("loaded %d environments, want %d", n, envs)
	}
	return repo.Environments
}

// liveLabels returns the labels the Docker driver puts on an instance's
// container (see containerConfig in internal/driver/docker/spec.go).
func liveLabels(env *manifest.Environment, in *manifest.Instance, revision string) map[string]string {
	labels := map[string]string{}
	for k, v := range in.Labels {
		labels[k] = v
	}
	summary, err := json.Marshal(in.Spec().Summary())
	if err != nil {
		panic(err)
	}
	labels[label.Env] = env.Name
	labels[label.Service] = in.Service
	labels[label.Instance] = in.Name
	labels[label.SpecHash] = in.SpecHash
	labels[label.Spec] = string(summary)
	labels[label.Revision] = revision
	return labels
}

func fakeID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// liveState returns what the ships would report once envs are deployed:
// one running container per instance, as Pool.Observe builds it (sorted by
// name), plus a few foreign containers on every ship.
func liveState(envs []*manifest.Environment) *live.State {
	state := &live.State{Hosts: map[string]*live.Host{}}
	created := time.Unix(1_700_000_000, 0)
	host := func(addr string) *live.Host {
		h := state.Hosts[addr]
		if h == nil {
			h = &live.Host{Address: addr}
			state.Hosts[addr] = h
		}
		return h
	}
	for _, env := range envs {
		for _, in := range env.Instances() {
			addr := env.Ships[in.Ship].Address()
			h := host(addr)
			h.Containers = append(h.Containers, live.Container{
				ID: fakeID(addr + "/" + in.Name), Name: in.Name, Image: in.Image, State: "running",
				Created: created, Labels: liveLabels(env, in, "rev0"),
			})
		}
	}
	for addr, h := range state.Hosts {
		for i := range foreignPerShip {
			name := fmt.Sprintf("foreign-%d", i)
			h.Containers = append(h.Containers, live.Container{
				ID: fakeID(addr + "/" + name), Name: name, Image: "busybox:latest", State: "running",
				Created: created, Labels: map[string]string{"com.example.team": "other"},
			})
		}
	}
	for _, h := range state.Hosts {
		sortContainers(h.Containers)
	}
	return state
}

func sortContainers(cs []live.Container) {
	for i := 1; i < len(cs); i++ { // insertion sort is fine: generated once
		for j := i; j > 0 && cs[j].Name < cs[j-1].Name; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

func countInstances(envs []*manifest.Environment) int {
	n := 0
	for _, env := range envs {
		n += len(env.Instances())
	}
	return n
}

// BenchmarkCompute is the pure diff of 10,000 instances (10 environments ×
// 100 services × 10 instances over 4 ships) against 10,000 live containers
// plus 40 foreign ones; the 1,000-instance cases (one environment) show how
// the cost grows with size. "noop": everything is up to date;
// "10pct-changed": every tenth service changed an env value since the
// containers were created, so a tenth of the instances are replaced (with
// their causes computed).
func BenchmarkCompute(b *testing.B) {
	base := func(env, svc int) int { return 1 }
	changed := func(env, svc int) int {
		if svc%10 == 3 {
			return 0
		}
		return 1
	}
	for _, envs := range []int{1, 10} {
		total := envs * benchServices * benchInstances
		cases := []struct {
			name    string
			old     func(env, svc int) int // the manifest the live containers come from
			replace int
		}{
			{"noop", base, 0},
			{"10pct-changed", changed, total / 10},
		}
		var desired []*manifest.Environment // loaded by the first case that runs
		for _, tc := range cases {
			b.Run(fmt.Sprintf("%dinst-%s", total, tc.name), func(b *testing.B) {
				// Setup, before b.Loop starts the timer.
				if desired == nil {
					desired = loadBench(b, envs, base)
				}
				if n := countInstances(desired); n != total {
					b.Fatalf("generated %d instances, want %d", n, total)
				}
				state := liveState(loadBench(b, envs, tc.old))
				b.ReportAllocs()
				var p *plan.Plan
				for b.Loop() {
					p = diff.Compute(desired, state, diff.Options{Revision: "rev1"})
				}
				s := p.Summary()
				if s.Replace != tc.replace || s.Create != 0 || s.Remove != 0 || s.Unchanged != total-tc.replace {
					b.Fatalf("plan summary %+v, want %d replace and %d unchanged", s, tc.replace, total-tc.replace)
				}
				if tc.replace > 0 {
					if st := p.Mutating()[0]; strings.Join(st.Causes, ";") != "env REV changed" {
						b.Fatalf("causes of %s: %q", st.ID, st.Causes)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(total), "ns/instance")
			})
		}
	}
}
