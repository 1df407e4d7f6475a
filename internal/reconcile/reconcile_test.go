package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// recorder is a Target that records the order of what the engine does.
type recorder struct {
	calls  []string
	holder *lock.Holder // held by someone else
}

func (r *recorder) Observe(context.Context, []*manifest.Environment) *live.State {
	r.calls = append(r.calls, "observe")
	return &live.State{Hosts: map[string]*live.Host{"tcp://10.0.0.1:2375": {Address: "tcp://10.0.0.1:2375"}}}
}

func (r *recorder) Driver([]*manifest.Environment, string) apply.Target { return r }

func (r *recorder) Apply(_ context.Context, st plan.Step, _ func(string)) error {
	r.calls = append(r.calls, "apply "+st.Instance)
	return nil
}

func (r *recorder) Mutexes(_ []*manifest.Environment, places []Place, _ lock.Holder) []lock.Mutex {
	var out []lock.Mutex
	for _, p := range places {
		out = append(out, &recMutex{r: r, p: p})
	}
	return out
}

type recMutex struct {
	r *recorder
	p Place
}

func (m *recMutex) Where() string { return m.p.Host }

func (m *recMutex) TryLock(context.Context) (lock.Held, error) {
	if m.r.holder != nil {
		return nil, &lock.LockedError{Info: lock.Info{Key: m.p.Key, Where: m.p.Host, Holder: *m.r.holder}}
	}
	m.r.calls = append(m.r.calls, "lock "+m.p.Key.Env+" "+m.p.Host)
	return m, nil
}

func (m *recMutex) Renew(context.Context) error { return nil }

func (m *recMutex) Unlock(context.Context) error {
	m.r.calls = append(m.r.calls, "unlock "+m.p.Key.Env)
	return nil
}

func envs(t *testing.T) []*manifest.Environment {
	t.Helper()
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(`name: shop
ships: {s1: {ip: 10.0.0.1}}
services:
  web: {image: web:1, instances: {web-1: {ship: s1}}}
`)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	return repo.Environments
}

func TestApplyLocksBeforeObserving(t *testing.T) {
	r := &recorder{}
	req := Request{Owner: owner.New("o"), Envs: envs(t), Revision: "r1"}
	res, err := Apply(context.Background(), r, req)
	if err != nil {
		t.Fatal(err)
	}
	want := "lock shop tcp://10.0.0.1:2375,observe,apply web-1,observe,unlock shop"
	if got := strings.Join(r.calls, ","); got != want {
		t.Errorf("calls:\n got %s\nwant %s", got, want)
	}
	if res.Plan.Owner != "o" || res.Plan.Summary().Create != 1 {
		t.Errorf("plan:\n%s", res.Plan)
	}
}

func TestApplyLockedDoesNothing(t *testing.T) {
	r := &recorder{holder: &lock.Holder{Host: "ci", PID: 1, Run: "x"}}
	_, err := Apply(context.Background(), r, Request{Owner: owner.New("o"), Envs: envs(t)})
	var le *lock.LockedError
	if !errors.As(err, &le) || le.Info.Holder.Host != "ci" {
		t.Fatalf("err = %v, want a LockedError", err)
	}
	if len(r.calls) != 0 {
		t.Errorf("a locked run did %v", r.calls)
	}
}

func TestApplyReviewStops(t *testing.T) {
	r := &recorder{}
	stop := errors.New("refused")
	_, err := Apply(context.Background(), r, Request{Owner: owner.New("o"), Envs: envs(t), Review: func(*plan.Plan) error { return stop }})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v", err)
	}
	for _, c := range r.calls {
		if strings.HasPrefix(c, "apply") {
			t.Errorf("applied after the review refused: %v", r.calls)
		}
	}
	if r.calls[len(r.calls)-1] != "unlock shop" {
		t.Errorf("the lock was not released: %v", r.calls)
	}
}

// TestApplyPlanFirst: with PlanFirst, a run that finds nothing to change
// observes once and takes no lock; one that finds something locks, then
// observes and plans again before applying.
func TestApplyPlanFirst(t *testing.T) {
	r := &recorder{}
	nothing := func(*manifest.Environment, *manifest.Instance) bool { return false }
	res, err := Apply(context.Background(), r, Request{Owner: owner.New("o"), Envs: envs(t), PlanFirst: true, Select: nothing})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.calls, ","); got != "observe" {
		t.Errorf("a run with nothing to do: %s, want observe alone", got)
	}
	if res.Plan == nil || len(res.Plan.Mutating()) != 0 || res.Before == nil {
		t.Errorf("result of a run with nothing to do: %+v", res)
	}

	r = &recorder{}
	if _, err := Apply(context.Background(), r, Request{Owner: owner.New("o"), Envs: envs(t), PlanFirst: true}); err != nil {
		t.Fatal(err)
	}
	want := "observe,lock shop tcp://10.0.0.1:2375,observe,apply web-1,observe,unlock shop"
	if got := strings.Join(r.calls, ","); got != want {
		t.Errorf("a run with a change:\n got %s\nwant %s", got, want)
	}
}

// cachedRecorder is a recorder that can observe from a cache, which
// answers nil (it cannot tell) when cannotTell is set.
type cachedRecorder struct {
	*recorder
	cannotTell bool
}

func (c cachedRecorder) ObserveCached(ctx context.Context, envs []*manifest.Environment) *live.State {
	c.calls = append(c.calls, "cached")
	if c.cannotTell {
		return nil
	}
	return c.recorder.Observe(ctx, envs)
}

// TestApplyPlanFirstFromTheCache: PlanFirst plans from the Target's
// cache; when the cache cannot tell, the run observes in full under its
// locks.
func TestApplyPlanFirstFromTheCache(t *testing.T) {
	nothing := func(*manifest.Environment, *manifest.Instance) bool { return false }
	r := cachedRecorder{recorder: &recorder{}}
	if _, err := Apply(context.Background(), r, Request{Owner: owner.New("o"), Envs: envs(t), PlanFirst: true, Select: nothing}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.calls, ","); got != "cached,observe" {
		t.Errorf("a run with nothing to do read %s, want its cache alone", got)
	}
	r = cachedRecorder{recorder: &recorder{}, cannotTell: true}
	if _, err := Apply(context.Background(), r, Request{Owner: owner.New("o"), Envs: envs(t), PlanFirst: true, Select: nothing}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(r.calls, ","), "cached,lock shop tcp://10.0.0.1:2375,observe,unlock shop"; got != want {
		t.Errorf("a run whose cache cannot tell:\n got %s\nwant %s", got, want)
	}
}
