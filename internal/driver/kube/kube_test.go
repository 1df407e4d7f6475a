package kube_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// nodePorts hands out node ports, which are cluster-wide, so that tests
// never clash even while the namespaces of earlier tests are deleted.
var nodePorts atomic.Int32

func nextNodePort() int { return 30000 + int(nodePorts.Add(1)) }

// shop is the environment most tests deploy: web (a Deployment of 2
// replicas with a node port, limits and an http readiness probe) requires
// db (a DaemonSet).
type shop struct {
	kubeconfig, namespace string
	nodePort              int
	logLevel              string
	webMemory             string
	worker                bool // a third service
	replicas              int  // web's (default 2)
	// ingressHost, when set, exposes web through a LoadBalancer (http on
	// port 80) and an Ingress for that host.
	ingressHost string
}

func (s shop) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, `name: shop
clusters:
  kc:
    kubeconfig: %s
    namespace: %s
    node_address: 127.0.0.1
services:
  db:
    image: postgres:16
    cluster: kc
    mode: daemonset
    ports:
      pg: 5432
    env:
      POSTGRES_PASSWORD: secret
    lifecycle:
      running:
        - type: tcp
          port: pg
  web:
    image: nginx:1.27
    cluster: kc
    replicas: %d
    requires: [db]
    ports:
      http: "8080:%d"
      metrics: 9090
    env:
      LOG_LEVEL: %s
    limits:
      memory: %s
      cpu: 250m
    lifecycle:
      running:
        - type: http
          port: http
          path: /healthz
%s`, s.kubeconfig, s.namespace, cmp.Or(s.replicas, 2), s.nodePort, s.logLevel, s.webMemory, s.exposed())
	if s.worker {
		b.WriteString(`  worker:
    image: busybox:1.36
    cluster: kc
    wants_info: [web]
    env:
      QUEUE: jobs
`)
	}
	return b.String()
}

// exposed is web's expose and ingress keys, when it has them.
func (s shop) exposed() string {
	if s.ingressHost == "" {
		return ""
	}
	return fmt.Sprintf("    expose: {type: LoadBalancer, ports: {http: 80}}\n    ingress: {hosts: [%s], path: /shop, port: http}\n", s.ingressHost)
}

func newShop(t *testing.T, cp *kubetest.ControlPlane) shop {
	return shop{kubeconfig: cp.Kubeconfig, namespace: cp.Namespace(t, "shop"), nodePort: nextNodePort(), logLevel: "info", webMemory: "64m"}
}

func load(t *testing.T, text string) []*manifest.Environment {
	t.Helper()
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatalf("manifest: %v\n%s", err, text)
	}
	return repo.Environments
}

// run is one reconcile: observe, plan, apply with the kube driver.
type run struct {
	prune   bool
	timeout time.Duration
	pool    *kube.Pool
	// owner scopes the run; pruneEnvs also removes the owner's
	// environments not in the text.
	owner     owner.Owner
	pruneEnvs bool
}

func (r run) do(t *testing.T, text string) (*plan.Plan, *apply.Result) {
	t.Helper()
	envs := load(t, text)
	ctx := context.Background()
	pool := r.pool
	if pool == nil {
		pool = kube.NewPool()
	}
	state := &live.State{Clusters: pool.Observe(ctx, envs)}
	for addr, c := range state.Clusters {
		if c.Err != nil {
			t.Fatalf("observe %s: %v", addr, c.Err)
		}
	}
	p := diff.Compute(envs, state, diff.Options{Revision: "rev-1", Prune: r.prune, PruneEnvs: r.pruneEnvs, Owner: r.owner.ID})
	if err := p.Validate(); err != nil {
		t.Fatalf("invalid plan: %v", err)
	}
	drv := kube.NewDriver(pool, envs, "rev-1")
	drv.Owner = r.owner
	drv.RolloutTimeout = r.timeout
	if drv.RolloutTimeout == 0 {
		drv.RolloutTimeout = 2 * time.Minute
	}
	res := apply.Run(ctx, p, drv, apply.Options{Concurrency: 4})
	return p, res
}

func mustApply(t *testing.T, text string) *plan.Plan {
	t.Helper()
	p, res := run{}.do(t, text)
	if err := res.Err(); err != nil {
		t.Fatalf("apply: %v\nplan:\n%s", err, planText(p))
	}
	return p
}

func planText(p *plan.Plan) string {
	var b strings.Builder
	_ = p.WriteText(&b, plan.TextOptions{Unchanged: true})
	return b.String()
}

func actions(p *plan.Plan) map[string]plan.Action {
	out := map[string]plan.Action{}
	for _, st := range p.Steps {
		out[st.Service] = st.Action
	}
	return out
}

func workload(t *testing.T, envs []*manifest.Environment, service string) *manifest.Workload {
	t.Helper()
	svc := envs[0].Service(service)
	if svc == nil || svc.Workload == nil {
		t.Fatalf("no cluster service %s", service)
	}
	return svc.Workload
}

func TestDeployAndUnchanged(t *testing.T) {
	cp := kubetest.Start(t)
	cp.CreateNode(t, "shop-node-2", nil) // the DaemonSet runs on both nodes
	s := newShop(t, cp)
	text := s.text()
	envs := load(t, text)
	web, db := workload(t, envs, "web"), workload(t, envs, "db")

	p := mustApply(t, text)
	if got := actions(p); got["web"] != plan.Create || got["db"] != plan.Create {
		t.Fatalf("first plan: %v\n%s", got, planText(p))
	}
	for _, st := range p.Steps {
		if st.Service == "web" && !slices.ContainsFunc(st.After, func(id string) bool { return strings.HasSuffix(id, "/db") }) {
			t.Errorf("web does not come up after db: after %v", st.After)
		}
	}

	ctx := context.Background()
	c := cp.Client
	ns := s.namespace
	wantLabels := func(what string, l map[string]string, service, hash string) {
		t.Helper()
		want := map[string]string{label.Env: "shop", label.Service: service, label.SpecHash: hash, label.Revision: "rev-1"}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s: label %s = %q, want %q", what, k, l[k], v)
			}
		}
	}
	wantSpec := func(what string, a map[string]string, w *manifest.Workload) {
		t.Helper()
		var spec manifest.Spec
		if err := json.Unmarshal([]byte(a[label.Spec]), &spec); err != nil {
			t.Errorf("%s: annotation %s: %v", what, label.Spec, err)
			return
		}
		if spec.Image != w.Image || spec.Mode != w.Mode || len(spec.Env) != len(w.Env) {
			t.Errorf("%s: annotation %s is not the spec summary: %s", what, label.Spec, a[label.Spec])
		}
		if strings.Contains(a[label.Spec], "secret") {
			t.Errorf("%s: the spec annotation shows an env value: %s", what, a[label.Spec])
		}
	}

	// web: a Deployment of 2 ready replicas.
	dep, err := c.AppsV1().Deployments(ns).Get(ctx, kube.WorkloadName("web", web.SpecHash), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels("deployment", dep.Labels, "web", web.SpecHash)
	wantSpec("deployment", dep.Annotations, web)
	if *dep.Spec.Replicas != 2 || dep.Status.AvailableReplicas != 2 || dep.Status.UpdatedReplicas != 2 {
		t.Errorf("deployment: replicas %d, status %+v", *dep.Spec.Replicas, dep.Status)
	}
	if dep.Spec.Selector.MatchLabels[label.SpecHash] != web.SpecHash || dep.Spec.Template.Labels[label.SpecHash] != web.SpecHash {
		t.Errorf("deployment selector/template labels: %v / %v", dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}
	if _, ok := dep.Spec.Template.Labels[label.Revision]; ok {
		t.Error("the pod template carries the revision: a new revision would roll the pods")
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != "nginx:1.27" || ctr.Name != "web" {
		t.Errorf("container: %s image %s", ctr.Name, ctr.Image)
	}
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].ConfigMapRef == nil || ctr.EnvFrom[0].ConfigMapRef.Name != kube.ConfigMapName("web", web.SpecHash) {
		t.Errorf("envFrom: %+v", ctr.EnvFrom)
	}
	if mem := ctr.Resources.Limits.Memory(); mem.Value() != 64<<20 {
		t.Errorf("memory limit %s", mem)
	}
	if cpu := ctr.Resources.Limits.Cpu(); cpu.MilliValue() != 250 {
		t.Errorf("cpu limit %s", cpu)
	}
	if pr := ctr.ReadinessProbe; pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != "/healthz" || pr.HTTPGet.Port.StrVal != "http" || pr.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("readiness probe: %+v", pr)
	}
	ports := map[string]int32{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["metrics"] != 9090 {
		t.Errorf("container ports: %v", ports)
	}
	if dep.Spec.ProgressDeadlineSeconds == nil || *dep.Spec.ProgressDeadlineSeconds != 120 {
		t.Errorf("progressDeadlineSeconds: %v", dep.Spec.ProgressDeadlineSeconds)
	}
	if !managedBy(dep.ManagedFields) {
		t.Errorf("deployment not server-side applied by %s: %+v", kube.FieldManager, dep.ManagedFields)
	}

	// db: a DaemonSet on both nodes, tcp readiness probe.
	ds, err := c.AppsV1().DaemonSets(ns).Get(ctx, kube.WorkloadName("db", db.SpecHash), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels("daemonset", ds.Labels, "db", db.SpecHash)
	if st := ds.Status; st.DesiredNumberScheduled != 2 || st.NumberAvailable != 2 || st.UpdatedNumberScheduled != 2 {
		t.Errorf("daemonset status: %+v", st)
	}
	if pr := ds.Spec.Template.Spec.Containers[0].ReadinessProbe; pr == nil || pr.TCPSocket == nil || pr.TCPSocket.Port.StrVal != "pg" {
		t.Errorf("daemonset readiness probe: %+v", pr)
	}

	// The env ConfigMaps: immutable, with the service's env and the link
	// variables of its dependencies.
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, kube.ConfigMapName("web", web.SpecHash), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels("configmap", cm.Labels, "web", web.SpecHash)
	wantSpec("configmap", cm.Annotations, web)
	if cm.Immutable == nil || !*cm.Immutable {
		t.Error("configmap is not immutable")
	}
	for k, v := range map[string]string{
		"LOG_LEVEL": "info", "DB_DB_HOST": "db." + ns + ".svc", "DB_DB_PG_PORT": "5432",
		"WEB_WEB_HOST": "web." + ns + ".svc", "WEB_WEB_HTTP_PORT": "8080", "CONTAINER_NAME": "web",
	} {
		if cm.Data[k] != v {
			t.Errorf("configmap %s = %q, want %q", k, cm.Data[k], v)
		}
	}
	if len(cm.Data) != len(web.Env) {
		t.Errorf("configmap holds %d variables, the workload %d", len(cm.Data), len(web.Env))
	}
	// db's password is sensitive: in its Secret, not in its ConfigMap.
	dbCM, err := c.CoreV1().ConfigMaps(ns).Get(ctx, kube.ConfigMapName("db", db.SpecHash), metav1.GetOptions{})
	if err != nil || dbCM.Data["POSTGRES_PASSWORD"] != "" || dbCM.Data["SERVICE_NAME"] != "db" {
		t.Errorf("db configmap: %v %v", err, dbCM)
	}
	dbSecret, err := c.CoreV1().Secrets(ns).Get(ctx, kube.SecretName("db", db.SpecHash), metav1.GetOptions{})
	if err != nil || string(dbSecret.Data["POSTGRES_PASSWORD"]) != "secret" {
		t.Errorf("db secret: %v %v", err, dbSecret)
	}

	// Services select the spec hash; web has a node port.
	svc, err := c.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels("service", svc.Labels, "web", web.SpecHash)
	if svc.Spec.Selector[label.SpecHash] != web.SpecHash || svc.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("service web: selector %v type %s", svc.Spec.Selector, svc.Spec.Type)
	}
	for _, p := range svc.Spec.Ports {
		switch p.Name {
		case "http":
			if p.Port != 8080 || p.NodePort != int32(s.nodePort) || p.TargetPort.StrVal != "http" {
				t.Errorf("service port http: %+v", p)
			}
		case "metrics":
			if p.Port != 9090 || p.TargetPort.StrVal != "metrics" {
				t.Errorf("service port metrics: %+v", p)
			}
		}
	}
	dbSvc, err := c.CoreV1().Services(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil || dbSvc.Spec.Type != corev1.ServiceTypeClusterIP || dbSvc.Spec.Selector[label.SpecHash] != db.SpecHash {
		t.Errorf("service db: %v %+v", err, dbSvc)
	}

	// The inventory lists the seven objects (db's Secret too).
	inv := inventory(t, cp, ns)
	if len(inv) != 7 {
		t.Errorf("inventory: %v", inv)
	}
	if inv[ns+"_"+kube.WorkloadName("web", web.SpecHash)+"_apps_Deployment"] != "web" || inv[ns+"_db__Service"] != "db" {
		t.Errorf("inventory entries: %v", inv)
	}

	// Observe sees both workloads ready and serving.
	state := kube.NewPool().Observe(ctx, envs)
	lc := state[envs[0].Clusters["kc"].Address()]
	if lc == nil || lc.Err != nil || len(lc.Workloads) != 2 {
		t.Fatalf("observe: %+v", lc)
	}
	for _, w := range lc.Workloads {
		if !w.Ready || !w.Serving {
			t.Errorf("observed %s %s: ready %v serving %v", w.Kind, w.Name, w.Ready, w.Serving)
		}
	}

	// The same repository again: nothing to do.
	p, res := run{}.do(t, text)
	if n := len(p.Mutating()); n != 0 || res.Err() != nil {
		t.Errorf("second apply planned %d steps (err %v):\n%s", n, res.Err(), planText(p))
	}
	if s := p.Summary(); s.Unchanged != 2 {
		t.Errorf("second plan: %+v", s)
	}
}

func managedBy(fields []metav1.ManagedFieldsEntry) bool {
	for _, f := range fields {
		if f.Manager == kube.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func inventory(t *testing.T, cp *kubetest.ControlPlane, ns string) map[string]string {
	t.Helper()
	cm, err := cp.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), kube.InventoryName("", "shop"), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[label.Inventory] != "true" || cm.Labels[label.Env] != "shop" {
		t.Errorf("inventory labels: %v", cm.Labels)
	}
	return cm.Data
}

// event is one watch event, ordered by resource version (etcd's revision:
// one order across every resource of the cluster).
type event struct {
	rv   uint64
	kind string
	typ  watch.EventType
	name string
	obj  any
}

// recorder watches the Deployments and Services of a namespace.
type recorder struct {
	mu     sync.Mutex
	events []event
	stop   func()
	wg     sync.WaitGroup
}

func record(t *testing.T, cp *kubetest.ControlPlane, ns string) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{stop: cancel}
	dw, err := cp.Client.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := cp.Client.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for kind, w := range map[string]watch.Interface{"Deployment": dw, "Service": sw} {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					m, ok := ev.Object.(metav1.Object)
					if !ok {
						continue
					}
					rv, _ := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
					r.mu.Lock()
					r.events = append(r.events, event{rv: rv, kind: kind, typ: ev.Type, name: m.GetName(), obj: ev.Object})
					r.mu.Unlock()
				}
			}
		}()
	}
	t.Cleanup(r.done)
	return r
}

func (r *recorder) done() {
	r.stop()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.SortFunc(r.events, func(a, b event) int { return int(a.rv) - int(b.rv) })
}

// first returns the resource version of the first event matching f, or 0.
func (r *recorder) first(f func(event) bool) uint64 {
	for _, e := range r.events {
		if f(e) {
			return e.rv
		}
	}
	return 0
}

func TestReplaceSwitchesAfterRollout(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	mustApply(t, s.text())
	oldWeb := workload(t, load(t, s.text()), "web")
	oldName := kube.WorkloadName("web", oldWeb.SpecHash)

	rec := record(t, cp, s.namespace)
	s.logLevel = "debug"
	text := s.text()
	newWeb := workload(t, load(t, text), "web")
	newName := kube.WorkloadName("web", newWeb.SpecHash)
	if newName == oldName {
		t.Fatal("an env change did not change the spec hash")
	}
	p := mustApply(t, text)
	if got := actions(p); got["web"] != plan.Replace || got["db"] != plan.Unchanged {
		t.Fatalf("plan: %v\n%s", got, planText(p))
	}
	if !strings.Contains(planText(p), "LOG_LEVEL") {
		t.Errorf("the plan does not say what changed:\n%s", planText(p))
	}
	rec.done()

	available := rec.first(func(e event) bool {
		d, ok := e.obj.(*appsv1.Deployment)
		return ok && e.name == newName && d.Status.AvailableReplicas == 2 && d.Status.ReadyReplicas == 2 && d.Status.UpdatedReplicas == 2
	})
	switched := rec.first(func(e event) bool {
		s, ok := e.obj.(*corev1.Service)
		return ok && e.name == "web" && s.Spec.Selector[label.SpecHash] == newWeb.SpecHash
	})
	oldGone := rec.first(func(e event) bool { return e.kind == "Deployment" && e.name == oldName && e.typ == watch.Deleted })
	created := rec.first(func(e event) bool { return e.kind == "Deployment" && e.name == newName && e.typ == watch.Added })
	t.Logf("resource versions: new deployment created %d, available %d, service switched %d, old deployment deleted %d", created, available, switched, oldGone)
	if created == 0 || available == 0 || switched == 0 || oldGone == 0 {
		t.Fatalf("missing events: created %d available %d switched %d old deleted %d", created, available, switched, oldGone)
	}
	if !(created < available && available < switched && switched < oldGone) {
		t.Errorf("wrong order: created %d, available %d, switched %d, old deleted %d", created, available, switched, oldGone)
	}
	// While the new pods became available, the Service still selected the
	// old ones.
	for _, e := range rec.events {
		if s, ok := e.obj.(*corev1.Service); ok && e.name == "web" && e.rv < available && s.Spec.Selector[label.SpecHash] != oldWeb.SpecHash {
			t.Errorf("service web selected %s before the new pods were available", s.Spec.Selector[label.SpecHash])
		}
	}

	ctx := context.Background()
	c := cp.Client
	if _, err := c.AppsV1().Deployments(s.namespace).Get(ctx, oldName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("old deployment %s: %v", oldName, err)
	}
	if _, err := c.CoreV1().ConfigMaps(s.namespace).Get(ctx, kube.ConfigMapName("web", oldWeb.SpecHash), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("old configmap: %v", err)
	}
	cm, err := c.CoreV1().ConfigMaps(s.namespace).Get(ctx, kube.ConfigMapName("web", newWeb.SpecHash), metav1.GetOptions{})
	if err != nil || cm.Data["LOG_LEVEL"] != "debug" {
		t.Errorf("new configmap: %v %v", err, cm)
	}
	inv := inventory(t, cp, s.namespace)
	if len(inv) != 7 || inv[s.namespace+"_"+newName+"_apps_Deployment"] != "web" || inv[s.namespace+"_"+oldName+"_apps_Deployment"] != "" {
		t.Errorf("inventory after the replacement: %v", inv)
	}
	if p, _ := (run{}).do(t, text); len(p.Mutating()) != 0 {
		t.Errorf("after the replacement: %s", planText(p))
	}
}

func TestFailedRolloutKeepsOldPods(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	mustApply(t, s.text())
	oldWeb := workload(t, load(t, s.text()), "web")

	// More memory than any node has: the new pods are never scheduled.
	s.webMemory = "4096g"
	text := s.text()
	newWeb := workload(t, load(t, text), "web")
	start := time.Now()
	p, res := run{timeout: 8 * time.Second}.do(t, text)
	took := time.Since(start)
	if got := actions(p); got["web"] != plan.Replace {
		t.Fatalf("plan: %v", got)
	}
	err := res.Err()
	if err == nil {
		t.Fatal("the apply of an unschedulable rollout succeeded")
	}
	t.Logf("error after %s: %v", took.Round(time.Millisecond), err)
	msg := err.Error()
	for _, want := range []string{"service web", kube.WorkloadName("web", newWeb.SpecHash), "new objects were removed", "still selects the pods of " + kube.WorkloadName("web", oldWeb.SpecHash)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q: %s", want, msg)
		}
	}
	if !strings.Contains(msg, "Insufficient memory") && !strings.Contains(msg, "deadline") && !strings.Contains(msg, "not complete") {
		t.Errorf("error gives no reason: %s", msg)
	}
	if took > time.Minute {
		t.Errorf("the failed rollout took %s with an 8s timeout", took)
	}

	ctx := context.Background()
	c := cp.Client
	ns := s.namespace
	if _, err := c.AppsV1().Deployments(ns).Get(ctx, kube.WorkloadName("web", newWeb.SpecHash), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new deployment is still there: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, kube.ConfigMapName("web", newWeb.SpecHash), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new configmap is still there: %v", err)
	}
	svc, err := c.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector[label.SpecHash] != oldWeb.SpecHash {
		t.Errorf("service web after the failure: %v selector %v", err, svc.Spec.Selector)
	}
	old, err := c.AppsV1().Deployments(ns).Get(ctx, kube.WorkloadName("web", oldWeb.SpecHash), metav1.GetOptions{})
	if err != nil || old.Status.AvailableReplicas != 2 {
		t.Errorf("old deployment after the failure: %v %+v", err, old.Status)
	}
	if inv := inventory(t, cp, ns); len(inv) != 7 || inv[ns+"_"+kube.WorkloadName("web", newWeb.SpecHash)+"_apps_Deployment"] != "" {
		t.Errorf("inventory after the failure: %v", inv)
	}
	// The next reconcile tries again.
	p, _ = run{timeout: time.Second}.do(t, text)
	if got := actions(p); got["web"] != plan.Replace {
		t.Errorf("plan after the failure: %v", got)
	}
}

func TestPruneLeavesForeignObjects(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	s.worker = true
	mustApply(t, s.text())
	worker := workload(t, load(t, s.text()), "worker")
	ns := s.namespace
	ctx := context.Background()
	c := cp.Client

	// Objects someone else made in the same namespace.
	replicas := int32(1)
	sel := map[string]string{"app": "legacy"}
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "legacy", Image: "legacy:1"}}}}}}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "legacy-config", Namespace: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	s.worker = false
	text := s.text()
	// Without prune the worker is an orphan, left in place.
	p, res := run{}.do(t, text)
	if got := actions(p); got["worker"] != plan.Orphan || len(p.Mutating()) != 0 || res.Err() != nil {
		t.Fatalf("plan without prune: %v\n%s", got, planText(p))
	}
	p, res = run{prune: true}.do(t, text)
	if got := actions(p); got["worker"] != plan.Remove || len(p.Mutating()) != 1 {
		t.Fatalf("plan with prune: %v\n%s", got, planText(p))
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().Deployments(ns).Get(ctx, kube.WorkloadName("worker", worker.SpecHash), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("worker deployment: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, kube.ConfigMapName("worker", worker.SpecHash), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("worker configmap: %v", err)
	}
	if _, err := c.CoreV1().Services(ns).Get(ctx, "worker", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("worker service: %v", err)
	}
	if _, err := c.AppsV1().Deployments(ns).Get(ctx, "legacy", metav1.GetOptions{}); err != nil {
		t.Errorf("the unlabelled deployment was touched: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "legacy-config", metav1.GetOptions{}); err != nil {
		t.Errorf("the unlabelled configmap was touched: %v", err)
	}
	inv := inventory(t, cp, ns)
	for k, v := range inv {
		if v == "worker" {
			t.Errorf("inventory still lists %s", k)
		}
	}
	if len(inv) != 7 {
		t.Errorf("inventory after prune: %v", inv)
	}
	if p, _ := (run{prune: true}).do(t, text); len(p.Mutating()) != 0 {
		t.Errorf("after prune: %s", planText(p))
	}
}

func TestForeignObjectNamedLikeOurs(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	text := s.text()
	web := workload(t, load(t, text), "web")
	ns := s.namespace
	ctx := context.Background()
	c := cp.Client
	cp.Kubectl(t, "create", "namespace", ns)
	name := kube.WorkloadName("web", web.SpecHash)
	cp.Kubectl(t, "-n", ns, "create", "deployment", name, "--image=someone/else:1")
	before, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	p, res := run{}.do(t, text)
	err = res.Err()
	if err == nil {
		t.Fatalf("apply over a foreign deployment succeeded:\n%s", planText(p))
	}
	if msg := err.Error(); !strings.Contains(msg, "deployment "+name+" exists and is not managed by maestro-sync") {
		t.Errorf("error: %v", err)
	}
	after, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || managedBy(after.ManagedFields) || len(after.Labels) != len(before.Labels) {
		t.Errorf("the foreign deployment was modified: %+v", after.ObjectMeta)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, kube.ConfigMapName("web", web.SpecHash), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("web's configmap was created: %v", err)
	}
	// db, which web requires, is deployed all the same.
	if _, err := c.CoreV1().Services(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil {
		t.Errorf("service db: %v", err)
	}
}

// TestScaleInPlace: a change of replicas scales the serving Deployment in
// place (same name and UID, the Service untouched), and so does the
// repair of a kubectl scale by hand.
func TestScaleInPlace(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	mustApply(t, s.text())
	ctx := context.Background()
	name := kube.WorkloadName("web", workload(t, load(t, s.text()), "web").SpecHash)
	before, err := cp.Client.AppsV1().Deployments(s.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := func() (int32, int32) {
		d, err := cp.Client.AppsV1().Deployments(s.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || d.UID != before.UID {
			t.Fatalf("deployment %s: %v (UID %s, was %s)", name, err, d.UID, before.UID)
		}
		return *d.Spec.Replicas, d.Status.AvailableReplicas
	}

	s.replicas = 3
	p := mustApply(t, s.text())
	if got := actions(p); got["web"] != plan.Scale || got["db"] != plan.Unchanged || !strings.Contains(planText(p), "scale web 2 → 3") {
		t.Fatalf("plan: %v\n%s", got, planText(p))
	}
	if want, avail := replicas(); want != 3 || avail != 3 {
		t.Errorf("after scaling to 3: %d desired, %d available", want, avail)
	}
	svc, err := cp.Client.CoreV1().Services(s.namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector[label.SpecHash] != before.Labels[label.SpecHash] {
		t.Errorf("service web after scaling: %v %v", err, svc.Spec.Selector)
	}

	// kubectl scale --replicas 5, by hand: repaired to the manifest's 3.
	sc, err := cp.Client.AppsV1().Deployments(s.namespace).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 5
	if _, err := cp.Client.AppsV1().Deployments(s.namespace).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = mustApply(t, s.text())
	if got := actions(p); got["web"] != plan.Scale || !strings.Contains(planText(p), "scale web 5 → 3") {
		t.Errorf("repair plan: %v\n%s", got, planText(p))
	}
	if want, _ := replicas(); want != 3 {
		t.Errorf("after the repair: %d desired", want)
	}
	if p, _ := (run{}).do(t, s.text()); len(p.Mutating()) != 0 {
		t.Errorf("after scaling: %s", planText(p))
	}
}

// TestExposeAndIngress: expose makes web's Service a LoadBalancer on port
// 80; ingress adds an Ingress to the stable Service, which follows a
// blue/green replacement, and is pruned when the key goes.
func TestExposeAndIngress(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	s.ingressHost = "shop.example.com"
	mustApply(t, s.text())
	ctx := context.Background()
	c := cp.Client
	svc, err := c.CoreV1().Services(s.namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Fatalf("service web: %v %+v", err, svc)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" && (p.Port != 80 || p.TargetPort.String() != "http" || p.NodePort != int32(s.nodePort)) {
			t.Errorf("port http: %+v", p)
		}
	}
	ingress := func() *networkingv1.Ingress {
		ing, err := c.NetworkingV1().Ingresses(s.namespace).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return ing
	}
	check := func(host string) {
		t.Helper()
		ing := ingress()
		if ing == nil || len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != host || ing.Labels[label.Service] != "web" {
			t.Fatalf("ingress for %s: %+v", host, ing)
		}
		p := ing.Spec.Rules[0].HTTP.Paths[0]
		if p.Path != "/shop" || p.Backend.Service.Name != "web" || p.Backend.Service.Port.Name != "http" {
			t.Errorf("ingress path: %+v", p)
		}
	}
	check("shop.example.com")
	if inv := inventory(t, cp, s.namespace); inv[s.namespace+"_web_networking.k8s.io_Ingress"] != "web" {
		t.Errorf("inventory: %v", inv)
	}

	// Deleted by hand: applied again.
	if err := c.NetworkingV1().Ingresses(s.namespace).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := mustApply(t, s.text()); actions(p)["web"] != plan.Replace || !strings.Contains(planText(p), "drift: ingress web missing") {
		t.Errorf("after deleting the ingress: %s", planText(p))
	}
	check("shop.example.com")

	// Another host: a blue/green replacement; the one Ingress follows.
	s.ingressHost = "www.example.com"
	p := mustApply(t, s.text())
	if got := actions(p); got["web"] != plan.Replace {
		t.Fatalf("plan: %v\n%s", got, planText(p))
	}
	check("www.example.com")

	// Without the keys: a ClusterIP Service with a node port again, and
	// no Ingress.
	s.ingressHost = ""
	mustApply(t, s.text())
	if ing := ingress(); ing != nil {
		t.Errorf("the ingress was not pruned: %+v", ing)
	}
	if svc, err := c.CoreV1().Services(s.namespace).Get(ctx, "web", metav1.GetOptions{}); err != nil || svc.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("service web without expose: %v %v", err, svc.Spec.Type)
	}
	if p, _ := (run{}).do(t, s.text()); len(p.Mutating()) != 0 {
		t.Errorf("after removing the ingress: %s", planText(p))
	}
}
