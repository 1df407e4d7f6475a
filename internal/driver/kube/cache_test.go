package kube_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

// TestObserveReadsTheCache: while Follow runs, ObserveCached reads its
// informers. It then makes no API call, sees at once what the pool's own
// runs wrote (a create, a replacement, a scale, a prune: the next plan is
// empty), sees what others change through the watches, and agrees with a
// fresh list.
func TestObserveReadsTheCache(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	s.worker = true
	s.ingressHost = "cache.example"
	pool := kube.NewPool()
	cl := load(t, s.text())[0].Clusters["kc"]
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		pool.Follow(ctx, cl, "", func(live.Change) {})
	}()
	t.Cleanup(func() { cancel(); <-followed })
	eventually(t, "the watches synced", 30*time.Second, func() bool { return pool.Watching(cl) })

	r := run{pool: pool, prune: true}
	// observe reads the environment of text through the pool's cache,
	// checks that it made no request and that the plan is empty, and
	// compares it with a list made by a pool without watches.
	observe := func(step, text string) *live.Cluster {
		t.Helper()
		envs := load(t, text)
		before := pool.Requests()
		state := &live.State{Clusters: pool.ObserveCached(ctx, envs)}
		if n := pool.Requests() - before; n != 0 {
			t.Errorf("%s: observing through the watches made %d API requests", step, n)
		}
		p := diff.Compute(envs, state, diff.Options{Revision: "rev-1", Prune: true})
		if m := p.Mutating(); len(m) != 0 {
			t.Errorf("%s: the cache is behind the pool's own writes; the next plan would do:\n%s", step, planText(p))
		}
		listed := kube.NewPool().Observe(ctx, envs)[cl.Address()]
		cached := state.Clusters[cl.Address()]
		if cached.Err != nil || listed.Err != nil {
			t.Fatalf("%s: observe: %v / %v", step, cached.Err, listed.Err)
		}
		if !reflect.DeepEqual(cached.Workloads, listed.Workloads) || !reflect.DeepEqual(cached.Inventories, listed.Inventories) {
			t.Errorf("%s: the cache and a list differ:\ncached %+v\n%+v\nlisted %+v\n%+v", step, cached.Workloads, cached.Inventories, listed.Workloads, listed.Inventories)
		}
		return cached
	}
	for _, c := range []struct {
		step   string
		change func()
	}{
		{"create", func() {}},
		{"replace", func() { s.logLevel = "debug" }},
		{"scale", func() { s.replicas = 3 }},
		{"prune", func() { s.worker = false }},
	} {
		c.change()
		if _, res := r.do(t, s.text()); res.Err() != nil {
			t.Fatalf("%s: %v", c.step, res.Err())
		}
		observe(c.step, s.text())
	}

	// Changes made by others reach the cache through the watches.
	web := workload(t, load(t, s.text()), "web")
	name := kube.WorkloadName("web", web.SpecHash)
	cp.Kubectl(t, "-n", s.namespace, "scale", "deployment/"+name, "--replicas", "5")
	if err := cp.Client.CoreV1().ConfigMaps(s.namespace).Delete(context.Background(), kube.ConfigMapName("web", web.SpecHash), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	envs := load(t, s.text())
	eventually(t, "the cache showing the scale and the deleted configmap", 10*time.Second, func() bool {
		before := pool.Requests()
		for _, w := range pool.ObserveCached(ctx, envs)[cl.Address()].Workloads {
			if w.Name == name {
				return pool.Requests() == before && // read from the cache, not listed
					w.Replicas == 5 && slices.Contains(w.Drift, "configmap "+kube.ConfigMapName("web", web.SpecHash)+" deleted")
			}
		}
		return false
	})
}
