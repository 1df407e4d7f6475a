package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

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
	return p.observe(ctx, envs, false)
}

// ObserveCached is Observe reading, where Follow runs, its informers'
// cache instead, with no API call, once the cache shows every write the
// pool made there (it waits for that at most cacheWait, then lists).
func (p *Pool) ObserveCached(ctx context.Context, envs []*manifest.Environment) map[string]*live.Cluster {
	return p.observe(ctx, envs, true)
}

func (p *Pool) observe(ctx context.Context, envs []*manifest.Environment, cached bool) map[string]*live.Cluster {
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
			c := p.cacheOf(addr)
			if cached && c != nil && c.await(ctx, cacheWait) {
				lc.Workloads, lc.Inventories, lc.Err = p.fromCache(cl, c)
				return nil
			}
			var mark uint64
			if c != nil {
				mark = c.mark()
			}
			lc.Workloads, lc.Err = p.list(ctx, cl)
			if lc.Err == nil {
				lc.Inventories, lc.Err = p.inventories(ctx, cl)
			}
			if c != nil && lc.Err == nil {
				c.listed(mark)
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
	var o objects
	svcs, err := c.CoreV1().Services(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("services", err)
	}
	o.services = pointers(svcs.Items)
	cms, err := c.CoreV1().ConfigMaps(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("configmaps", err)
	}
	o.configMaps = pointers(cms.Items)
	switch ings, err := c.NetworkingV1().Ingresses(ns).List(ctx, opts); {
	case apierrors.IsForbidden(err):
	case err != nil:
		return nil, fail("ingresses", err)
	default:
		o.ingresses = pointers(ings.Items)
		o.ingressesListed = true
	}
	deps, err := c.AppsV1().Deployments(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("deployments", err)
	}
	o.deployments = pointers(deps.Items)
	dss, err := c.AppsV1().DaemonSets(ns).List(ctx, opts)
	if err != nil {
		return nil, fail("daemonsets", err)
	}
	o.daemonSets = pointers(dss.Items)
	return o.workloads(), nil
}

// fromCache reads the workloads and inventories of a cluster namespace
// from Follow's informers.
func (p *Pool) fromCache(cl *manifest.Cluster, c *nsCache) ([]live.Workload, []live.Inventory, error) {
	sel := labels.Everything()
	o := objects{memo: &c.memo}
	var errs []error
	var err error
	o.services, err = c.services.List(sel)
	errs = append(errs, err)
	o.configMaps, err = c.configMaps.List(sel)
	errs = append(errs, err)
	if c.ingresses != nil {
		o.ingresses, err = c.ingresses.List(sel)
		o.ingressesListed = true
		errs = append(errs, err)
	}
	o.deployments, err = c.deployments.List(sel)
	errs = append(errs, err)
	o.daemonSets, err = c.daemonSets.List(sel)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("cluster %s: namespace %s: %w", cl.Name, cl.Namespace, err)
	}
	ws := o.workloads()
	c.memo.sweep()
	return ws, inventoriesOf(cl.Namespace, o.configMaps), nil
}

// objects are maestro-sync's objects of a cluster namespace, listed or
// cached: what its workloads are read from.
type objects struct {
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	ingresses   []*networkingv1.Ingress
	deployments []*appsv1.Deployment
	daemonSets  []*appsv1.DaemonSet
	// ingressesListed is false when ingresses may not be listed (a role
	// that predates them).
	ingressesListed bool
	// memo, when not nil, keeps the facts of the workloads between reads.
	memo *factMemo
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// workloads reads the workloads: their readiness, the Service selecting
// them, their drift.
func (o *objects) workloads() []live.Workload {
	serving := map[string]string{} // owner/env/service → selected spec hash
	for _, s := range o.services {
		if s.Labels[label.Env] != "" && s.Labels[label.Service] == s.Name {
			serving[s.Labels[label.Owner]+"/"+s.Labels[label.Env]+"/"+s.Name] = s.Spec.Selector[label.SpecHash]
		}
	}
	configMaps := map[string]bool{}
	for _, cm := range o.configMaps {
		configMaps[cm.Name] = true
	}
	var ingresses map[string]bool // nil when they may not be listed
	if o.ingressesListed {
		ingresses = map[string]bool{}
		for _, in := range o.ingresses {
			ingresses[in.Name] = true
		}
	}
	facts := factsOf
	if o.memo != nil {
		facts = o.memo.factsOf
	}
	var out []live.Workload
	add := func(kind string, m *metav1.ObjectMeta, tpl *corev1.PodTemplateSpec, ready bool, replicas int) {
		w := live.Workload{Kind: kind, Name: m.Name, UID: string(m.UID), Labels: m.Labels, Annotations: m.Annotations, Ready: ready, Replicas: replicas}
		w.Drift = drift(m, facts(m, tpl), configMaps, ingresses)
		if h := serving[w.Owner()+"/"+w.Env()+"/"+w.Service()]; h != "" && h == w.SpecHash() {
			w.Serving = true
		}
		out = append(out, w)
	}
	for _, d := range o.deployments {
		done, _, failed := deploymentDone(d)
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		add(KindDeployment, &d.ObjectMeta, &d.Spec.Template, done && failed == nil, replicas)
	}
	for _, d := range o.daemonSets {
		done, _, _ := daemonSetDone(d)
		add(KindDaemonSet, &d.ObjectMeta, &d.Spec.Template, done, 0)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out
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
	return inventoriesOf(cl.Namespace, pointers(cms.Items)), nil
}

// inventoriesOf reads the inventories among the ConfigMaps of namespace
// ns.
func inventoriesOf(ns string, cms []*corev1.ConfigMap) []live.Inventory {
	var out []live.Inventory
	for _, cm := range cms {
		env, own := cm.Labels[label.Env], cm.Labels[label.Owner]
		if cm.Labels[label.Inventory] != "true" || env == "" || cm.Name != InventoryName(own, env) {
			continue
		}
		inv := live.Inventory{Env: env, Owner: own}
		inv.File, inv.Labels, inv.HasOrigin = live.Origin(cm.Annotations[label.File], cm.Annotations[label.EnvLabels])
		for k, svc := range cm.Data {
			if r, ok := parseRef(k); ok && r.Namespace == ns && !slices.Contains(inv.Services, svc) {
				inv.Services = append(inv.Services, svc)
			}
		}
		slices.Sort(inv.Services)
		out = append(out, inv)
	}
	sort.Slice(out, func(i, j int) bool {
		return InventoryName(out[i].Owner, out[i].Env) < InventoryName(out[j].Owner, out[j].Env)
	})
	return out
}

// workloadFacts are what drift reads of a workload that takes work to
// compute: the digest of its pod template, whether its spec asks for an
// Ingress.
type workloadFacts struct {
	digest  string
	ingress bool
}

func factsOf(m *metav1.ObjectMeta, tpl *corev1.PodTemplateSpec) workloadFacts {
	f := workloadFacts{digest: TemplateDigest(tpl)}
	var spec manifest.Spec
	if m.Labels[label.Service] != "" && json.Unmarshal([]byte(m.Annotations[label.Spec]), &spec) == nil {
		f.ingress = spec.Ingress != nil
	}
	return f
}

// drift names what changed on the cluster since maestro-sync applied a
// workload: its pod template (by whom), its ConfigMap or Ingress gone.
func drift(m *metav1.ObjectMeta, f workloadFacts, configMaps, ingresses map[string]bool) []string {
	var out []string
	if want := m.Annotations[label.TemplateDigest]; want != "" && want != f.digest {
		var who []string
		for _, f := range m.ManagedFields {
			if f.Manager != FieldManager && f.Operation == metav1.ManagedFieldsOperationUpdate && f.Subresource == "" && !slices.Contains(who, f.Manager) {
				who = append(who, f.Manager)
			}
		}
		msg := "pod template edited on the cluster"
		if len(who) > 0 {
			msg += " (by " + strings.Join(who, ", ") + ")"
		}
		out = append(out, msg)
	}
	if svc, hash := m.Labels[label.Service], m.Labels[label.SpecHash]; svc != "" && hash != "" && !configMaps[ConfigMapName(svc, hash)] {
		out = append(out, "configmap "+ConfigMapName(svc, hash)+" deleted")
	}
	if svc := m.Labels[label.Service]; ingresses != nil && f.ingress && !ingresses[svc] {
		out = append(out, "ingress "+svc+" missing")
	}
	return out
}

// Follow watches, in the cluster namespace, the objects maestro-sync
// manages for the owner with that ID, or for none (label-filtered
// informers: Deployments, DaemonSets, Services, ConfigMaps, Ingresses),
// and calls changed when one is created, deleted,
// or edited in a way the plan could see (a spec, labels, annotations or
// data; not status updates), until ctx ends. The informers list once,
// then watch, and re-list by themselves after a broken watch.
func (p *Pool) Follow(ctx context.Context, cl *manifest.Cluster, owner string, changed func(live.Change)) {
	c, err := p.Client(cl)
	if err != nil {
		return
	}
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(cl.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = label.Env }))
	var synced atomic.Bool
	tell := func(kind string, obj any, how string) {
		if !synced.Load() {
			return // the first list: what Observe sees anyway
		}
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		if o := m.GetLabels()[label.Owner]; o != "" && o != owner {
			return // another repository's object in a shared namespace
		}
		name := m.GetName()
		// A service's workloads change names with their spec: the
		// service is the object.
		object := name
		if svc := m.GetLabels()[label.Service]; svc != "" {
			object = m.GetLabels()[label.Env] + "/" + svc
		}
		changed(live.Change{
			Object: "cluster " + cl.Name + ": " + kind + " " + object,
			What:   "cluster " + cl.Name + ": " + kind + " " + name + " " + how,
			At:     time.Now(),
		})
	}
	watch := func(inf cache.SharedIndexInformer, kind string, differ func(old, cur any) bool) {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { tell(kind, obj, "created") },
			UpdateFunc: func(old, cur any) {
				if differ(old, cur) {
					tell(kind, cur, "changed")
				}
			},
			DeleteFunc: func(obj any) { tell(kind, obj, "deleted") },
		})
	}
	metaDiffers := func(old, cur metav1.Object) bool {
		return !maps.Equal(old.GetLabels(), cur.GetLabels()) || !maps.Equal(old.GetAnnotations(), cur.GetAnnotations())
	}
	// Deployments and DaemonSets: their spec (generation), not status.
	generation := func(old, cur any) bool {
		o, ok1 := old.(metav1.Object)
		n, ok2 := cur.(metav1.Object)
		return !ok1 || !ok2 || o.GetGeneration() != n.GetGeneration() || metaDiffers(o, n)
	}
	watch(f.Apps().V1().Deployments().Informer(), "deployment", generation)
	watch(f.Apps().V1().DaemonSets().Informer(), "daemonset", generation)
	watch(f.Core().V1().Services().Informer(), "service", func(old, cur any) bool {
		o, ok1 := old.(*corev1.Service)
		n, ok2 := cur.(*corev1.Service)
		return !ok1 || !ok2 || !equality.Semantic.DeepEqual(o.Spec, n.Spec) || metaDiffers(o, n)
	})
	watch(f.Core().V1().ConfigMaps().Informer(), "configmap", func(old, cur any) bool {
		o, ok1 := old.(*corev1.ConfigMap)
		n, ok2 := cur.(*corev1.ConfigMap)
		return !ok1 || !ok2 || !maps.Equal(o.Data, n.Data) || metaDiffers(o, n)
	})
	_, err = c.NetworkingV1().Ingresses(cl.Namespace).List(ctx, metav1.ListOptions{LabelSelector: label.Env, Limit: 1})
	ingresses := err == nil // not when they may not be listed: the informer would never sync
	if ingresses {
		watch(f.Networking().V1().Ingresses().Informer(), "ingress", func(old, cur any) bool {
			o, ok1 := old.(*networkingv1.Ingress)
			n, ok2 := cur.(*networkingv1.Ingress)
			return !ok1 || !ok2 || !equality.Semantic.DeepEqual(o.Spec, n.Spec) || metaDiffers(o, n)
		})
	}
	// Registered before it syncs, so that it knows of every write made
	// meanwhile; it is read once synced.
	nc := newNSCache(f, cl.Namespace, ingresses)
	addr := cl.Address()
	p.register(addr, nc)
	defer p.unregister(addr, nc)
	f.Start(ctx.Done())
	defer f.Shutdown() // waits for the informers' goroutines
	for _, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return
		}
	}
	synced.Store(true)
	<-ctx.Done()
}
