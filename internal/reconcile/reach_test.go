package reconcile

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// reachTarget lists a container of a gone environment on the one ship
// that only another shard's environment uses, if it is observed.
type reachTarget struct {
	recorder
	observed [][]string // the ship addresses of each observation
	mu       sync.Mutex
	applied  []string
}

func (r *reachTarget) Driver([]*manifest.Environment, string) apply.Target { return r }

func (r *reachTarget) Apply(_ context.Context, st plan.Step, _ func(string)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, string(st.Action)+" "+st.Instance)
	return nil
}

func (r *reachTarget) Observe(_ context.Context, envs []*manifest.Environment) *live.State {
	var addrs []string
	for _, env := range envs {
		for _, name := range env.ShipNames() {
			addrs = append(addrs, env.Ships[name].Address())
		}
	}
	r.observed = append(r.observed, addrs)
	s := &live.State{Hosts: map[string]*live.Host{}}
	for _, a := range addrs {
		h := &live.Host{Address: a}
		if a == "tcp://10.0.0.2:2375" {
			h.Containers = []live.Container{{ID: "c1", Name: "old-1", State: "running", Labels: map[string]string{
				label.Env: "old", label.Service: "old", label.Instance: "old-1", label.SpecHash: "x",
				label.Owner: owner.New("o").ID, label.File: "old/manifest.yml"}}}
		}
		s.Hosts[a] = h
	}
	return s
}

// TestReachFindsAGoneEnvironment: with Reach, a run observes and locks on
// the ships of environments it does not plan, and prunes there an
// environment gone from the repository.
func TestReachFindsAGoneEnvironment(t *testing.T) {
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "theirs/manifest.yml", Data: []byte(`name: theirs
ships: {s2: {ip: 10.0.0.2}}
services:
  api: {image: api:1, instances: {api-1: {ship: s2}}}
`)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	other := repo.Environments[0]
	reach := ShipsOf([]*manifest.Environment{other, other})
	if len(reach) != 1 || reach[0].Name != "" || len(reach[0].Services) != 0 || len(reach[0].Ships) != 1 {
		t.Fatalf("ShipsOf = %+v, want one nameless environment with the one ship", reach)
	}
	for _, tc := range []struct {
		name  string
		reach []*manifest.Environment
		want  bool
	}{{"without reach", nil, false}, {"with reach", reach, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &reachTarget{}
			res, err := Apply(t.Context(), r, Request{Owner: owner.New("o"), Envs: envs(t), Prune: true, PruneEnvs: true,
				Others: map[string]bool{"theirs": true}, Reach: tc.reach})
			if err != nil {
				t.Fatal(err)
			}
			removed := slices.ContainsFunc(res.Plan.Mutating(), func(st plan.Step) bool { return st.Instance == "old-1" })
			if removed != tc.want || slices.Contains(r.applied, "remove old-1") != tc.want {
				t.Errorf("old-1 removed: planned %v, applied %v; want %v (observed %v)", removed, r.applied, tc.want, r.observed)
			}
			if tc.want && !slices.Contains(r.calls, "lock old tcp://10.0.0.2:2375") {
				t.Errorf("the gone environment was not locked on its ship: %v", r.calls)
			}
		})
	}
}
