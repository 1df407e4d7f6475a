package diff

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

const clusterManifest = `name: shop
clusters:
  prod: {namespace: shop}
services:
  web:
    image: shop/web:1.4
    cluster: prod
    replicas: 2
    env: {LOG: %s}
`

func loadCluster(t *testing.T, logLevel string) *manifest.Environment {
	t.Helper()
	text := strings.Replace(clusterManifest, "%s", logLevel, 1)
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(text)}}, manifest.Options{Strict: true})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	return repo.Environments[0]
}

// deployedWorkload is the workload the kube driver leaves for a cluster service.
func deployedWorkload(env *manifest.Environment, svc string, serving, ready bool) live.Workload {
	w := env.Service(svc).Workload
	summary, _ := json.Marshal(w.Spec().Summary())
	return live.Workload{Kind: "Deployment", Name: svc + "-" + w.SpecHash[:8], Ready: ready, Serving: serving, Replicas: w.Replicas,
		Labels:      map[string]string{label.Env: env.Name, label.Service: svc, label.SpecHash: w.SpecHash},
		Annotations: map[string]string{label.Spec: string(summary)}}
}

func clusterState(addr string, ws ...live.Workload) *live.State {
	return &live.State{Clusters: map[string]*live.Cluster{addr: {Address: addr, Workloads: ws}}}
}

func TestComputeWorkloads(t *testing.T) {
	env := loadCluster(t, "info")
	addr := env.Clusters["prod"].Address()
	changed := loadCluster(t, "debug")
	for _, tc := range []struct {
		name   string
		env    *manifest.Environment
		state  *live.State
		opts   Options
		action plan.Action
		cause  string
	}{
		{"absent", env, clusterState(addr), Options{}, plan.Create, "not found"},
		{"in sync", env, clusterState(addr, deployedWorkload(env, "web", true, true)), Options{}, plan.Unchanged, ""},
		{"env changed", changed, clusterState(addr, deployedWorkload(env, "web", true, true)), Options{}, plan.Replace, "env LOG changed"},
		{"rollout not finished", env, clusterState(addr, deployedWorkload(env, "web", false, false)), Options{}, plan.Replace, "not finished"},
		{"leftover of an interrupted apply", changed, clusterState(addr, deployedWorkload(env, "web", false, true), deployedWorkload(changed, "web", true, true)), Options{}, plan.Replace, "leftover deployment"},
		{"cluster unreachable", env, &live.State{Clusters: map[string]*live.Cluster{addr: {Address: addr, Err: errString("refused")}}}, Options{}, plan.Unknown, "cluster unreachable: refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute([]*manifest.Environment{tc.env}, tc.state, tc.opts)
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(p.Steps) != 1 || p.Steps[0].Action != tc.action || !strings.Contains(strings.Join(p.Steps[0].Causes, ";"), tc.cause) {
				t.Fatalf("plan:\n%s", p)
			}
		})
	}
}

func TestPruneUnknownEnvironmentOnCluster(t *testing.T) {
	env := loadCluster(t, "info")
	addr := env.Clusters["prod"].Address()
	gone := deployedWorkload(env, "web", true, true)
	gone.Labels[label.Env] = "legacy"
	gone.Labels[label.Owner] = "o1"
	foreign := deployedWorkload(env, "web", true, true)
	foreign.Name = "api-1"
	foreign.Labels[label.Service] = "api"
	foreign.Labels[label.Env] = "teamb"
	foreign.Labels[label.Owner] = "o2"
	state := clusterState(addr, deployedWorkload(env, "web", true, true), gone, foreign)
	state.Clusters[addr].Inventories = []live.Inventory{
		{Env: "legacy", Owner: "o1", Services: []string{"web"}},
		{Env: "teamb", Owner: "o2", Services: []string{"api"}},
		{Env: env.Name, Owner: "o1", Services: []string{"web"}},
	}
	if p := Compute([]*manifest.Environment{env}, state, Options{Owner: "o1", Prune: true}); p.Summary().Remove != 0 {
		t.Fatalf("without PruneEnvs:\n%s", p)
	}
	p := Compute([]*manifest.Environment{env}, state, Options{Owner: "o1", Prune: true, PruneEnvs: true})
	if s := p.Summary(); s.Remove != 1 || s.Unchanged != 1 {
		t.Fatalf("with PruneEnvs:\n%s", p)
	}
	if st := p.Mutating()[0]; st.Env != "legacy" || st.Host != addr || st.Service != "web" {
		t.Errorf("removal %+v", st)
	}
	// Pruning goes by the owner's inventories only, never by the
	// workloads found in the namespace.
	state.Clusters[addr].Inventories = nil
	if p := Compute([]*manifest.Environment{env}, state, Options{Owner: "o1", Prune: true, PruneEnvs: true}); p.Summary().Remove != 0 {
		t.Fatalf("without an inventory:\n%s", p)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestScaleInPlace: replicas are not part of a workload's spec hash; a
// Deployment whose number of pods differs from the manifest's (changed in
// the manifest, or by kubectl scale) is scaled in place, and a review
// plan says so instead of a replacement.
func TestScaleInPlace(t *testing.T) {
	env := loadCluster(t, "info")
	three := loadCluster(t, "info")
	three.Service("web").Workload.Replicas = 3
	if env.Service("web").Workload.SpecHash != three.Service("web").Workload.Spec().Placed().Hash() {
		t.Fatalf("replicas changed the spec hash")
	}
	addr := env.Clusters["prod"].Address()
	live := deployedWorkload(env, "web", true, true)
	p := Compute([]*manifest.Environment{three}, clusterState(addr, live), Options{})
	if len(p.Steps) != 1 || p.Steps[0].Action != plan.Scale || p.Steps[0].Replicas != 3 || p.Steps[0].Container != live.Name ||
		p.Steps[0].Causes[0] != "scale web 2 → 3" {
		t.Fatalf("plan: %+v", p.Steps)
	}
	live.Replicas = 5 // kubectl scale
	if p := Compute([]*manifest.Environment{env}, clusterState(addr, live), Options{}); p.Steps[0].Action != plan.Scale || p.Steps[0].Causes[0] != "scale web 5 → 2" {
		t.Errorf("after kubectl scale: %+v", p.Steps)
	}
	r := Revisions([]*manifest.Environment{env}, []*manifest.Environment{three}, nil)
	if len(r.Steps) != 1 || r.Steps[0].Action != plan.Scale || r.Steps[0].Changes[0].Replaces {
		t.Errorf("review: %+v", r.Steps)
	}
}
