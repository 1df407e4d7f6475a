package kube

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Observe lists, in every cluster namespace of envs, the Deployments and
// DaemonSets carrying maestro-sync's environment label, concurrently. A
// workload is Ready when its rollout is complete and Serving when the
// Service named after its service, owned by the same environment, selects
// its spec hash. A cluster that cannot be observed is recorded with its
// error; the others are still observed. The result is keyed by cluster
// address (live.State.Clusters).
func (p *Pool) Observe(ctx context.Context, envs []*manifest.Environment) map[string]*live.Cluster {
	clusters := map[string]*manifest.Cluster{}
	for _, env := range envs {
		for _, cl := range env.Clusters {
			if _, ok := clusters[cl.Address()]; !ok {
				clusters[cl.Address()] = cl
			}
		}
	}
	out := make(map[string]*live.Cluster, len(clusters))
	var g errgroup.Group
	g.SetLimit(16)
	for addr, cl := range clusters {
		lc := &live.Cluster{Address: addr}
		out[addr] = lc
		g.Go(func() error {
			lc.Workloads, lc.Err = p.list(ctx, cl)
			if lc.Err == nil {
				lc.Inventories, lc.Err = p.inventories(ctx, cl)
			}
			return nil
		})
	}
	_ = g.Wait()
	return out
}

func (p *Pool) list(ctx context.Context, cl *manifest.Cluster) ([]live.Workload, error) {
	c, err := p.Client(cl)
	if err != nil {
		return nil, err
	}
	ns := cl.Namespace
	opts := metav1.ListOptions{LabelSelector: label.Env}
	fail := func(what string, err error) error {
		return fmt.Errorf("cluster %s: list %s in namespace %s: %w", cl.Name, what, ns, err)
	}
	svcs, err := c.CoreV1().Services(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("services", err)
	}
	serving := map[string]string{} // owner/env/service → selected spec hash
	for _, s := range svcs.Items {
		if s.Labels[label.Env] != "" && s.Labels[label.Service] == s.Name {
			serving[s.Labels[label.Owner]+"/"+s.Labels[label.Env]+"/"+s.Name] = s.Spec.Selector[label.SpecHash]
		}
	}
	var out []live.Workload
	add := func(kind string, m metav1.ObjectMeta, ready bool, replicas int) {
		w := live.Workload{Kind: kind, Name: m.Name, UID: string(m.UID), Labels: m.Labels, Annotations: m.Annotations, Ready: ready, Replicas: replicas}
		if h := serving[w.Owner()+"/"+w.Env()+"/"+w.Service()]; h != "" && h == w.SpecHash() {
			w.Serving = true
		}
		out = append(out, w)
	}
	deps, err := c.AppsV1().Deployments(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("deployments", err)
	}
	for i := range deps.Items {
		d := &deps.Items[i]
		done, _, failed := deploymentDone(d)
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		add(KindDeployment, d.ObjectMeta, done && failed == nil, replicas)
	}
	dss, err := c.AppsV1().DaemonSets(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("daemonsets", err)
	}
	for i := range dss.Items {
		d := &dss.Items[i]
		done, _, _ := daemonSetDone(d)
		add(KindDaemonSet, d.ObjectMeta, done, 0)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}

// inventories lists the inventories of the cluster namespace: what each
// owner's environments applied there. Pruning an environment removed from
// the repository goes by its owner's inventory, never by a scan.
func (p *Pool) inventories(ctx context.Context, cl *manifest.Cluster) ([]live.Inventory, error) {
	c, err := p.Client(cl)
	if err != nil {
		return nil, err
	}
	cms, err := c.CoreV1().ConfigMaps(cl.Namespace).List(ctx, metav1.ListOptions{LabelSelector: label.Inventory + "=true"})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: list inventories in namespace %s: %w", cl.Name, cl.Namespace, err)
	}
	var out []live.Inventory
	for i := range cms.Items {
		cm := &cms.Items[i]
		env, own := cm.Labels[label.Env], cm.Labels[label.Owner]
		if env == "" || cm.Name != InventoryName(own, env) {
			continue
		}
		inv := live.Inventory{Env: env, Owner: own}
		for k, svc := range cm.Data {
			if r, ok := parseRef(k); ok && r.Namespace == cl.Namespace && !slices.Contains(inv.Services, svc) {
				inv.Services = append(inv.Services, svc)
			}
		}
		slices.Sort(inv.Services)
		out = append(out, inv)
	}
	return out, nil
}

// Follow watches, in the cluster namespace, the objects maestro-sync
// manages, and calls changed when one changed in a way live state would
// show (created, deleted, its spec or data edited; not status updates),
// until ctx ends.
func (p *Pool) Follow(ctx context.Context, cl *manifest.Cluster, changed func(what string, at time.Time)) {
	<-ctx.Done()
}
