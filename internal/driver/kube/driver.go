// Package kube is the Kubernetes driver: it observes the workloads
// maestro-sync applied in each cluster namespace and carries out plan steps
// blue/green — a service's new Deployment (or DaemonSet) and immutable env
// ConfigMap are applied beside the old ones, the Service is switched to the
// new pods once their rollout is complete, and only then are the old
// objects deleted. A failed rollout deletes the new objects and leaves the
// Service on the old pods. Every object is applied with server-side apply
// and carries maestro-sync's owner labels; objects without them are never
// modified or deleted.
package kube

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	autoscalingv1ac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// DefaultRolloutTimeout bounds a rollout when Driver.RolloutTimeout is
// zero. It is also the Deployments' progressDeadlineSeconds.
const DefaultRolloutTimeout = 10 * time.Minute

// Driver carries out plan steps on Kubernetes clusters (steps whose Host is
// a cluster address, kube://...). It implements apply.Target. A Driver
// serves one run: what it lists to prune is read once for all the run's
// steps.
type Driver struct {
	pool     *Pool
	envs     map[string]*manifest.Environment
	revision string
	// RolloutTimeout bounds the wait for a new workload's rollout, and is
	// written as the Deployments' progressDeadlineSeconds.
	RolloutTimeout time.Duration
	// Owner is stamped on every object applied, and only objects of that
	// owner (or of none, made before owners existed) are changed or
	// deleted. The inventory is per owner and environment.
	Owner owner.Owner
	// PollInterval is the pause between reads of a rollout when the driver
	// may not watch workloads (it normally watches them).
	PollInterval time.Duration
	// Pushed, when set, returns the registry digest an image reference
	// was pushed with during this run ("" when none): a cluster service
	// built in the same run then runs its image pinned by digest.
	Pushed func(ref string) string

	mu         sync.Mutex
	invQueues  map[string]*invQueue
	namespaces map[string]bool         // cluster addresses whose namespace exists
	snapshots  map[string]*envSnapshot // by cluster address/environment
}

// NewDriver returns a driver for the steps of envs, recording revision on
// the objects it applies.
func NewDriver(pool *Pool, envs []*manifest.Environment, revision string) *Driver {
	d := &Driver{pool: pool, envs: map[string]*manifest.Environment{}, revision: revision,
		invQueues: map[string]*invQueue{}, namespaces: map[string]bool{}}
	for _, e := range envs {
		d.envs[e.Name] = e
	}
	return d
}

func (d *Driver) rolloutTimeout() time.Duration {
	if d.RolloutTimeout > 0 {
		return d.RolloutTimeout
	}
	return DefaultRolloutTimeout
}

func (d *Driver) pollInterval() time.Duration {
	if d.PollInterval > 0 {
		return d.PollInterval
	}
	return time.Second
}

// Apply carries out one step.
func (d *Driver) Apply(ctx context.Context, st plan.Step, progress func(string)) error {
	if !strings.HasPrefix(st.Host, AddressPrefix) {
		return fmt.Errorf("the kube driver cannot act on host %s", st.Host)
	}
	switch st.Action {
	case plan.Create, plan.Replace:
		return d.up(ctx, st, progress)
	case plan.Remove:
		return d.remove(ctx, st, progress)
	case plan.Scale:
		return d.scale(ctx, st, progress)
	}
	return fmt.Errorf("the kube driver cannot %s", st.Action)
}

// owned reports whether an object carries the labels of the given
// environment and service, and the driver's owner (or no owner: made
// before owners existed).
func (d *Driver) owned(l map[string]string, env, service string) bool {
	o := l[label.Owner]
	return l[label.Env] == env && l[label.Service] == service && env != "" && (o == "" || o == d.Owner.ID)
}

func (d *Driver) notOurs(kind, name, env string, l map[string]string) error {
	if o := l[label.Owner]; o != "" && o != d.Owner.ID && l[label.Env] != "" {
		return fmt.Errorf("%s %s belongs to environment %s of another owner (%s %s): left alone",
			strings.ToLower(kind), name, l[label.Env], label.Owner, o)
	}
	return fmt.Errorf("%s %s exists and is not managed by maestro-sync for environment %s of %s (no matching %s/%s/%s labels): left alone",
		strings.ToLower(kind), name, env, d.Owner, label.Env, label.Service, label.Owner)
}

// up creates or replaces a service blue/green: new ConfigMap and workload,
// wait for the rollout, switch the Service, delete the old objects.
func (d *Driver) up(ctx context.Context, st plan.Step, progress func(string)) error {
	env := d.envs[st.Env]
	if env == nil {
		return fmt.Errorf("environment %s is not loaded", st.Env)
	}
	svc := env.Service(st.Service)
	if svc == nil || svc.Workload == nil {
		return fmt.Errorf("service %s is not a cluster service of environment %s", st.Service, st.Env)
	}
	w := svc.Workload
	cl := env.Clusters[w.Cluster]
	if cl == nil || cl.Address() != st.Host {
		return fmt.Errorf("service %s no longer runs on %s: plan again", svc.Name, st.Host)
	}
	if st.SpecHash != "" && st.SpecHash != w.SpecHash {
		return fmt.Errorf("service %s changed since the plan was made: plan again", svc.Name)
	}
	if errs := validation.IsValidLabelValue(env.Name); len(errs) > 0 {
		return fmt.Errorf("environment name %q cannot be a Kubernetes label value: %s", env.Name, strings.Join(errs, "; "))
	}
	c, err := d.pool.Client(cl)
	if err != nil {
		return err
	}
	ds := d.desired(env, svc, cl)
	ds.image = st.Image
	if d.Pushed != nil {
		if digest := d.Pushed(w.Image); digest != "" {
			ds.image = w.Image + "@" + digest
		}
	}
	if err := d.ensureNamespace(ctx, c, cl); err != nil {
		return err
	}
	ns := cl.Namespace
	wlName, cmName := ds.workloadName(), ds.configMapName()

	// Nothing of another owner is touched: every name is checked first,
	// all at once.
	secName := ds.secretName()
	ingress := ds.ingressObject()
	names := []struct{ kind, name string }{{ds.kind(), wlName}, {KindConfigMap, cmName}}
	if ds.hasSecret() {
		names = append(names, struct{ kind, name string }{KindSecret, secName})
	}
	if ingress != nil {
		names = append(names, struct{ kind, name string }{KindIngress, svc.Name})
	}
	errs := make([]error, 1+len(names))
	var live *corev1.Service
	var wg sync.WaitGroup
	wg.Go(func() { live, errs[0] = d.ownService(ctx, c, ns, env.Name, svc.Name) })
	for i, n := range names {
		wg.Go(func() { errs[1+i] = d.checkName(ctx, c, ns, n.kind, n.name, env.Name, svc.Name) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the first in the order above
		}
	}
	servingHash := ""
	if live != nil {
		servingHash = live.Spec.Selector[label.SpecHash]
	}

	// Record the objects before they exist, so that an interrupted apply
	// leaves nothing the inventory does not know.
	newRefs := []objRef{refOf(ns, KindConfigMap, cmName), refOf(ns, ds.kind(), wlName), refOf(ns, KindService, svc.Name)}
	if ds.hasSecret() {
		newRefs = append(newRefs, refOf(ns, KindSecret, secName))
	}
	if ingress != nil {
		newRefs = append(newRefs, refOf(ns, KindIngress, svc.Name))
	}
	if err := d.updateInventory(ctx, c, cl, env.Name, svc.Name, newRefs, nil, originOf(env)); err != nil {
		return err
	}
	apply := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	progress("applying configmap " + cmName)
	if _, err := c.CoreV1().ConfigMaps(ns).Apply(ctx, ds.configMap(), apply); err != nil {
		return d.rollback(ctx, c, ds, servingHash, fmt.Errorf("apply configmap %s: %w", cmName, err))
	}
	if ds.hasSecret() {
		progress("applying secret " + secName)
		if _, err := c.CoreV1().Secrets(ns).Apply(ctx, ds.secret(), apply); err != nil {
			return d.rollback(ctx, c, ds, servingHash, fmt.Errorf("apply secret %s: %w", secName, err))
		}
	}
	progress("applying " + strings.ToLower(ds.kind()) + " " + wlName)
	applied, err := d.applyWorkload(ctx, c, ds, apply)
	if err != nil {
		return d.rollback(ctx, c, ds, servingHash, err)
	}
	progress("waiting for the rollout of " + wlName)
	if err := d.waitRollout(ctx, c, ds, applied, progress); err != nil {
		return d.rollback(ctx, c, ds, servingHash, err)
	}
	progress("switching service " + svc.Name + " to " + wlName)
	if err := d.applyService(ctx, c, ds, live, apply); err != nil {
		return d.rollback(ctx, c, ds, servingHash, err)
	}
	if ingress != nil {
		// It targets the Service, which now selects the new pods.
		progress("applying ingress " + svc.Name)
		if _, err := c.NetworkingV1().Ingresses(ns).Apply(ctx, ingress, apply); err != nil {
			return fmt.Errorf("service %s runs %s, but applying its ingress failed: %w", svc.Name, wlName, err)
		}
	}
	progress("removing the old objects")
	gone, err := d.prune(ctx, c, cl, env.Name, svc.Name, func(kind, name string) bool {
		return kind == KindService || name == wlName && kind == ds.kind() || name == cmName && kind == KindConfigMap ||
			name == secName && kind == KindSecret || kind == KindIngress && ingress != nil
	})
	if err != nil {
		return fmt.Errorf("service %s runs %s, but removing the old objects failed: %w", svc.Name, wlName, err)
	}
	return d.updateInventory(ctx, c, cl, env.Name, svc.Name, nil, gone, nil)
}

// ownService reads the Service of a service, nil when there is none. It
// fails when the Service exists without the service's owner labels.
func (d *Driver) ownService(ctx context.Context, c kubernetes.Interface, ns, env, service string) (*corev1.Service, error) {
	live, err := c.CoreV1().Services(ns).Get(ctx, service, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get service %s: %w", service, err)
	case !d.owned(live.Labels, env, service):
		return nil, d.notOurs(KindService, service, env, live.Labels)
	}
	return live, nil
}

// checkName fails when an object of that kind and name exists without the
// service's owner labels.
func (d *Driver) checkName(ctx context.Context, c kubernetes.Interface, ns, kind, name, env, service string) error {
	l, _, err := getMeta(ctx, c, ns, kind, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case !d.owned(l, env, service):
		return d.notOurs(kind, name, env, l)
	}
	return nil
}

// getMeta reads the labels and UID of one object.
func getMeta(ctx context.Context, c kubernetes.Interface, ns, kind, name string) (map[string]string, types.UID, error) {
	var m metav1.ObjectMeta
	var err error
	switch kind {
	case KindDeployment:
		var o *appsv1.Deployment
		if o, err = c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			m = o.ObjectMeta
		}
	case KindDaemonSet:
		var o *appsv1.DaemonSet
		if o, err = c.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			m = o.ObjectMeta
		}
	case KindConfigMap:
		var o *corev1.ConfigMap
		if o, err = c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			m = o.ObjectMeta
		}
	case KindService:
		var o *corev1.Service
		if o, err = c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			m = o.ObjectMeta
		}
	case KindSecret:
		var o *corev1.Secret
		if o, err = c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			m = o.ObjectMeta
		}
	case KindIngress:
		var o *networkingv1.Ingress
		if o, err = c.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			m = o.ObjectMeta
		}
	default:
		return nil, "", fmt.Errorf("unknown kind %s", kind)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		err = fmt.Errorf("get %s %s: %w", strings.ToLower(kind), name, err)
	}
	return m.Labels, m.UID, err
}

// applyWorkload applies the workload, then records the digest of its
// pod template as the apiserver keeps it. It returns the workload as
// that last write left it.
func (d *Driver) applyWorkload(ctx context.Context, c kubernetes.Interface, ds *desired, opts metav1.ApplyOptions) (object, error) {
	name := ds.workloadName()
	var tpl *corev1.PodTemplateSpec
	if ds.kind() == KindDaemonSet {
		obj, err := ds.daemonSet()
		if err != nil {
			return nil, err
		}
		live, err := c.AppsV1().DaemonSets(ds.namespace).Apply(ctx, obj, opts)
		if err != nil {
			return nil, fmt.Errorf("apply daemonset %s: %w", name, err)
		}
		tpl = &live.Spec.Template
	} else {
		obj, err := ds.deployment()
		if err != nil {
			return nil, err
		}
		live, err := c.AppsV1().Deployments(ds.namespace).Apply(ctx, obj, opts)
		if err != nil {
			return nil, fmt.Errorf("apply deployment %s: %w", name, err)
		}
		tpl = &live.Spec.Template
	}
	// The template as the apiserver keeps it (defaults filled in): what
	// Observe compares with to see an edit made on the cluster.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{label.TemplateDigest: TemplateDigest(tpl)}}})
	if err != nil {
		return nil, err
	}
	po := metav1.PatchOptions{FieldManager: FieldManager}
	var patched object
	if ds.kind() == KindDaemonSet {
		patched, err = c.AppsV1().DaemonSets(ds.namespace).Patch(ctx, name, types.MergePatchType, patch, po)
	} else {
		patched, err = c.AppsV1().Deployments(ds.namespace).Patch(ctx, name, types.MergePatchType, patch, po)
	}
	if err != nil {
		return nil, fmt.Errorf("annotate %s %s: %w", strings.ToLower(ds.kind()), name, err)
	}
	return patched, nil
}

// applyService points the Service at the new pods. A Service cannot change
// between headless (no port) and not: it is then deleted and created
// again.
func (d *Driver) applyService(ctx context.Context, c kubernetes.Interface, ds *desired, live *corev1.Service, opts metav1.ApplyOptions) error {
	obj, err := ds.serviceObject()
	if err != nil {
		return err
	}
	api := c.CoreV1().Services(ds.namespace)
	if live != nil && (live.Spec.ClusterIP == corev1.ClusterIPNone) != ds.headless() {
		uid := live.UID
		err := api.Delete(ctx, live.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete service %s to change its cluster IP: %w", live.Name, err)
		}
	}
	if _, err := api.Apply(ctx, obj, opts); err != nil {
		return fmt.Errorf("switch service %s: %w", ds.service, err)
	}
	return nil
}

// rollback deletes the new workload and ConfigMap of a failed step, unless
// the Service already selects them (they are then what runs). It finishes
// even when ctx is cancelled.
func (d *Driver) rollback(ctx context.Context, c kubernetes.Interface, ds *desired, servingHash string, cause error) error {
	err := fmt.Errorf("service %s: %w", ds.service, cause)
	if servingHash == ds.hash() {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	var gone []objRef
	for _, o := range []struct{ kind, name string }{{ds.kind(), ds.workloadName()}, {KindConfigMap, ds.configMapName()}, {KindSecret, ds.secretName()}} {
		if err := d.deleteOwned(ctx, c, ds.namespace, o.kind, o.name, ds.env, ds.service); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, refOf(ds.namespace, o.kind, o.name))
	}
	if servingHash == "" {
		// Nothing served before: the Service was never applied.
		gone = append(gone, refOf(ds.namespace, KindService, ds.service))
	}
	if ierr := d.updateInventory(ctx, c, ds.cluster, ds.env, ds.service, nil, gone, nil); ierr != nil {
		errs = append(errs, ierr)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; and removing the new objects failed: %w", err, errors.Join(errs...))
	}
	if servingHash != "" {
		return fmt.Errorf("%w; the new objects were removed, service %s still selects the pods of %s", err, ds.service, WorkloadName(ds.service, servingHash))
	}
	return fmt.Errorf("%w; the new objects were removed", err)
}

// deleteOwned deletes an object if it carries the service's owner labels.
// A missing object is not an error.
func (d *Driver) deleteOwned(ctx context.Context, c kubernetes.Interface, ns, kind, name, env, service string) error {
	l, uid, err := getMeta(ctx, c, ns, kind, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case !d.owned(l, env, service):
		return nil // not ours (any more): left alone
	}
	return d.deleteUID(ctx, c, ns, kind, name, uid)
}

// deleteUID deletes exactly the object with that UID (not one created
// since under the same name); dependents (ReplicaSets, pods) are removed by
// the garbage collector. An object that is gone, or replaced under its
// name, is not an error.
func (d *Driver) deleteUID(ctx context.Context, c kubernetes.Interface, ns, kind, name string, uid types.UID) error {
	err := d.deleteAt(ctx, c, ns, kind, name, uid, "")
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// deleteAt deletes the object with that UID, and with that resource
// version when rv is not empty: an object changed since it was read
// (relabelled by hand, say) gives a Conflict error. A missing object is
// not an error.
func (d *Driver) deleteAt(ctx context.Context, c kubernetes.Interface, ns, kind, name string, uid types.UID, rv string) error {
	bg := metav1.DeletePropagationBackground
	pre := &metav1.Preconditions{UID: &uid}
	if rv != "" {
		pre.ResourceVersion = &rv
	}
	opts := metav1.DeleteOptions{Preconditions: pre, PropagationPolicy: &bg}
	var err error
	switch kind {
	case KindDeployment:
		err = c.AppsV1().Deployments(ns).Delete(ctx, name, opts)
	case KindDaemonSet:
		err = c.AppsV1().DaemonSets(ns).Delete(ctx, name, opts)
	case KindConfigMap:
		err = c.CoreV1().ConfigMaps(ns).Delete(ctx, name, opts)
	case KindService:
		err = c.CoreV1().Services(ns).Delete(ctx, name, opts)
	case KindSecret:
		err = c.CoreV1().Secrets(ns).Delete(ctx, name, opts)
	case KindIngress:
		err = c.NetworkingV1().Ingresses(ns).Delete(ctx, name, opts)
	}
	switch {
	case err == nil || apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return err
	}
	return fmt.Errorf("delete %s %s: %w", strings.ToLower(kind), name, err)
}

// prune deletes the service's workloads, ConfigMaps and (when not kept)
// Service: every one carrying its owner labels, and every one its
// inventory lists that still carries them. It returns the references of
// the deleted objects. What exists is read from the environment's
// snapshot (one list per kind for every service of the run): anything of
// the service that is not in it was made by this run's own step, and is
// kept.
func (d *Driver) prune(ctx context.Context, c kubernetes.Interface, cl *manifest.Cluster, env, service string, keep func(kind, name string) bool) ([]objRef, error) {
	ns := cl.Namespace
	snap, err := d.snapshot(ctx, c, cl, env)
	if err != nil {
		return nil, err
	}
	var gone []objRef
	var errs []error
	seen := map[objRef]bool{}
	// del deletes an object as it was read (rv; "" for any version).
	// One changed since the snapshot is read again, and deleted only if
	// it is still ours.
	del := func(kind, name string, l map[string]string, uid types.UID, rv string) {
		r := refOf(ns, kind, name)
		seen[r] = true
		if keep(kind, name) || !d.owned(l, env, service) {
			return
		}
		err := d.deleteAt(ctx, c, ns, kind, name, uid, rv)
		if apierrors.IsConflict(err) {
			err = d.deleteOwned(ctx, c, ns, kind, name, env, service)
		}
		if err != nil {
			errs = append(errs, err)
			return
		}
		gone = append(gone, r)
	}
	// The Service first: no traffic goes to pods about to be removed.
	if keep(KindService, service) {
		seen[refOf(ns, KindService, service)] = true
	} else if svc, err := c.CoreV1().Services(ns).Get(ctx, service, metav1.GetOptions{}); err == nil {
		del(KindService, svc.Name, svc.Labels, svc.UID, svc.ResourceVersion)
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get service %s: %w", service, err)
	}
	for _, o := range snap.objects {
		if o.labels[label.Service] == service {
			del(o.kind, o.name, o.labels, o.uid, o.rv)
		}
	}
	// What the inventory lists and the selectors did not find (its labels
	// were changed by hand, say) is deleted only if it is still ours.
	for _, r := range snap.inventory[service] {
		if seen[r] || keep(r.Kind, r.Name) {
			continue
		}
		if err := d.deleteOwned(ctx, c, ns, r.Kind, r.Name, env, service); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, r) // deleted, gone already, or no longer ours: forget it
	}
	return gone, errors.Join(errs...)
}

// envSnapshot is what existed of an environment in a namespace when the
// run first pruned there: its workloads, ConfigMaps and Ingresses (in
// that order), and its inventory's objects by service.
type envSnapshot struct {
	once      sync.Once
	err       error
	objects   []snapObject
	inventory map[string][]objRef
}

type snapObject struct {
	kind, name, rv string
	labels         map[string]string
	uid            types.UID
}

// snapshot lists, once per run, the objects carrying the environment's
// label in the namespace, and reads its inventory. A service's step
// changes only the service's own objects, so what the snapshot holds of a
// service is still all that may be left of it, besides what its step
// made.
func (d *Driver) snapshot(ctx context.Context, c kubernetes.Interface, cl *manifest.Cluster, env string) (*envSnapshot, error) {
	d.mu.Lock()
	key := cl.Address() + "/" + env
	if d.snapshots == nil {
		d.snapshots = map[string]*envSnapshot{}
	}
	s := d.snapshots[key]
	if s == nil {
		s = &envSnapshot{}
		d.snapshots[key] = s
	}
	d.mu.Unlock()
	s.once.Do(func() { s.err = s.read(ctx, c, cl.Namespace, d.Owner.ID, env) })
	if s.err != nil {
		d.mu.Lock()
		if d.snapshots[key] == s {
			delete(d.snapshots, key) // the next step reads again
		}
		d.mu.Unlock()
	}
	return s, s.err
}

func (s *envSnapshot) read(ctx context.Context, c kubernetes.Interface, ns, owner, env string) error {
	list := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{label.Env: env}).String()}
	add := func(kind string, m metav1.ObjectMeta) {
		s.objects = append(s.objects, snapObject{kind: kind, name: m.Name, rv: m.ResourceVersion, labels: m.Labels, uid: m.UID})
	}
	deps, err := c.AppsV1().Deployments(ns).List(ctx, list)
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	for _, o := range deps.Items {
		add(KindDeployment, o.ObjectMeta)
	}
	dss, err := c.AppsV1().DaemonSets(ns).List(ctx, list)
	if err != nil {
		return fmt.Errorf("list daemonsets: %w", err)
	}
	for _, o := range dss.Items {
		add(KindDaemonSet, o.ObjectMeta)
	}
	cms, err := c.CoreV1().ConfigMaps(ns).List(ctx, list)
	if err != nil {
		return fmt.Errorf("list configmaps: %w", err)
	}
	for _, o := range cms.Items {
		if o.Labels[label.Inventory] != "true" {
			add(KindConfigMap, o.ObjectMeta)
		}
	}
	// An install whose role predates ingresses may not list them: it
	// made none either (the inventory still lists any it did).
	switch ings, err := c.NetworkingV1().Ingresses(ns).List(ctx, list); {
	case apierrors.IsForbidden(err):
	case err != nil:
		return fmt.Errorf("list ingresses: %w", err)
	default:
		for _, o := range ings.Items {
			add(KindIngress, o.ObjectMeta)
		}
	}
	s.inventory, err = readInventory(ctx, c, ns, owner, env)
	return err
}

// remove deletes every object of a service that is no longer desired on
// the step's cluster.
func (d *Driver) remove(ctx context.Context, st plan.Step, progress func(string)) error {
	cl, err := d.cluster(st)
	if err != nil {
		return err
	}
	c, err := d.pool.Client(cl)
	if err != nil {
		return err
	}
	progress("removing service " + st.Service)
	gone, err := d.prune(ctx, c, cl, st.Env, st.Service, func(string, string) bool { return false })
	if err != nil {
		return fmt.Errorf("service %s: %w", st.Service, err)
	}
	return d.updateInventory(ctx, c, cl, st.Env, st.Service, nil, gone, nil)
}

// cluster finds the cluster of a step by its address: one of the
// environment's clusters, else the address itself (a cluster the
// environment no longer declares).
func (d *Driver) cluster(st plan.Step) (*manifest.Cluster, error) {
	if env := d.envs[st.Env]; env != nil {
		if cl := env.Clusters[st.Ship]; cl != nil && cl.Address() == st.Host {
			return cl, nil
		}
		for _, cl := range env.Clusters {
			if cl.Address() == st.Host {
				return cl, nil
			}
		}
	}
	return ParseAddress(st.Host)
}

// ensureNamespace creates the cluster's namespace when it is missing.
// Without permission to read namespaces, it is assumed to exist.
func (d *Driver) ensureNamespace(ctx context.Context, c kubernetes.Interface, cl *manifest.Cluster) error {
	addr := cl.Address()
	d.mu.Lock()
	known := d.namespaces[addr]
	d.mu.Unlock()
	if known {
		return nil
	}
	_, err := c.CoreV1().Namespaces().Get(ctx, cl.Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cl.Namespace}}
		if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", cl.Namespace, err)
		}
	case apierrors.IsForbidden(err):
	case err != nil:
		return fmt.Errorf("get namespace %s: %w", cl.Namespace, err)
	}
	d.mu.Lock()
	d.namespaces[addr] = true
	d.mu.Unlock()
	return nil
}

// scale sets the number of pods of a service's serving Deployment in
// place, through its scale subresource (server-side apply, our field
// manager), and waits until they are available: the pod template, the
// Deployment's name and the Service stay as they are.
func (d *Driver) scale(ctx context.Context, st plan.Step, progress func(string)) error {
	env := d.envs[st.Env]
	if env == nil {
		return fmt.Errorf("environment %s is not loaded", st.Env)
	}
	svc := env.Service(st.Service)
	if svc == nil || svc.Workload == nil || svc.Workload.Mode != manifest.ModeDeployment {
		return fmt.Errorf("service %s is not a Deployment of environment %s", st.Service, st.Env)
	}
	w := svc.Workload
	cl := env.Clusters[w.Cluster]
	if cl == nil || cl.Address() != st.Host || st.SpecHash != w.SpecHash || st.Replicas != w.Replicas {
		return fmt.Errorf("service %s changed since the plan was made: plan again", svc.Name)
	}
	c, err := d.pool.Client(cl)
	if err != nil {
		return err
	}
	ds := d.desired(env, svc, cl)
	name := ds.workloadName()
	if st.Container != name {
		return fmt.Errorf("service %s runs %s, not %s: plan again", svc.Name, st.Container, name)
	}
	// Labels are read again right before the change.
	dep, err := c.AppsV1().Deployments(cl.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err != nil:
		return fmt.Errorf("get deployment %s: %w", name, err)
	case !d.owned(dep.Labels, env.Name, svc.Name):
		return d.notOurs(KindDeployment, name, env.Name, dep.Labels)
	case dep.Labels[label.SpecHash] != w.SpecHash:
		return fmt.Errorf("deployment %s changed since the plan was made: plan again", name)
	}
	progress(fmt.Sprintf("scaling %s to %d", name, w.Replicas))
	scale := autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(int32(w.Replicas)))
	if _, err := c.AppsV1().Deployments(cl.Namespace).ApplyScale(ctx, name, scale, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("scale deployment %s: %w", name, err)
	}
	return d.waitRollout(ctx, c, ds, nil, progress)
}

// desired is what the objects of a cluster service of env are built
// from, on its cluster cl.
func (d *Driver) desired(env *manifest.Environment, svc *manifest.Service, cl *manifest.Cluster) *desired {
	return &desired{env: env.Name, owner: d.Owner, service: svc.Name, revision: cmp.Or(env.Revision, d.revision),
		namespace: cl.Namespace, cluster: cl, w: svc.Workload, progressDeadline: d.rolloutTimeout()}
}
