package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

// envText is an environment with one Deployment service.
func envText(kubeconfig, ns, env, service string) string {
	return fmt.Sprintf(`name: %s
clusters:
  kc: {kubeconfig: %s, namespace: %s}
services:
  %s:
    image: nginx:1.27
    cluster: kc
    ports: {http: 8080}
    env: {OWNER_TEST: "1"}
`, env, kubeconfig, ns, service)
}

// uids returns the UIDs of the Deployments, ConfigMaps and Services of a
// namespace, by kind/name.
func uids(t *testing.T, cp *kubetest.ControlPlane, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	deps, err := cp.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range deps.Items {
		out["deployment/"+o.Name] = string(o.UID)
	}
	cms, err := cp.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: label.Env})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		out["configmap/"+o.Name] = string(o.UID)
	}
	svcs, err := cp.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range svcs.Items {
		out["service/"+o.Name] = string(o.UID)
	}
	return out
}

// Two owners deploy an environment named alpha into one namespace: prune
// of either removes only what its own inventory records.
func TestOwnersShareANamespace(t *testing.T) {
	cp := kubetest.Start(t)
	ns := cp.Namespace(t, "owners")
	a := owner.FromRemote("https://git.example.com/acme/a.git", "")
	b := owner.FromRemote("git@git.example.com:acme/b.git", "")
	aAlpha := envText(cp.Kubeconfig, ns, "alpha", "aweb")
	aGone := envText(cp.Kubeconfig, ns, "agone", "gone")
	bAlpha := envText(cp.Kubeconfig, ns, "alpha", "bweb")
	for _, step := range []struct {
		o    owner.Owner
		text string
	}{{a, aAlpha}, {a, aGone}, {b, bAlpha}} {
		if _, res := (run{owner: step.o}).do(t, step.text); res.Err() != nil {
			t.Fatalf("apply: %v", res.Err())
		}
	}
	before := uids(t, cp, ns)
	bObjects := map[string]string{}
	for k, v := range before {
		if strings.Contains(k, "bweb") || strings.HasSuffix(k, "-"+b.ID) {
			bObjects[k] = v
		}
	}
	if len(bObjects) != 4 { // deployment, env configmap, service, inventory
		t.Fatalf("B's objects: %v (all: %v)", bObjects, before)
	}
	inv, err := cp.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), kube.InventoryName(b.ID, "alpha"), metav1.GetOptions{})
	if err != nil || inv.Labels[label.Owner] != b.ID || inv.Annotations[label.OwnerName] != b.Name {
		t.Fatalf("B's inventory: %v %+v", err, inv)
	}

	// B prunes with only its alpha loaded: A's alpha and agone are not in
	// B's inventories, so nothing of A is touched.
	p, res := (run{owner: b, prune: true, pruneEnvs: true}).do(t, bAlpha)
	if res.Err() != nil || len(p.Mutating()) != 0 {
		t.Fatalf("B's prune: %v\n%s", res.Err(), planText(p))
	}
	// A prunes with only alpha loaded: agone goes, B stays.
	p, res = (run{owner: a, prune: true, pruneEnvs: true}).do(t, aAlpha)
	if res.Err() != nil {
		t.Fatalf("A's prune: %v\n%s", res.Err(), planText(p))
	}
	if m := p.Mutating(); len(m) != 1 || m[0].Env != "agone" || m[0].Service != "gone" {
		t.Fatalf("A's prune plan:\n%s", planText(p))
	}
	after := uids(t, cp, ns)
	for k, v := range bObjects {
		if after[k] != v {
			t.Errorf("B's %s: uid %s became %q", k, v, after[k])
		}
	}
	for k := range after {
		if strings.Contains(k, "gone") {
			t.Errorf("%s survived A's prune", k)
		}
	}
	for k, v := range before {
		if strings.Contains(k, "aweb") && after[k] != v {
			t.Errorf("A's %s changed", k)
		}
	}
	if _, err := cp.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), kube.InventoryName(a.ID, "agone"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("agone's inventory: %v", err)
	}

	// A's service name taken by B is reported, not taken over.
	_, res = (run{owner: b}).do(t, envText(cp.Kubeconfig, ns, "beta", "aweb"))
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "another owner") {
		t.Errorf("B applying over A's service: %v", err)
	}
	if got := uids(t, cp, ns)["service/aweb"]; got != before["service/aweb"] {
		t.Errorf("A's service changed hands: %s", got)
	}
}

// Sensitive env values (names that look secret, values from env files)
// land in an immutable Secret, never in the ConfigMap.
func TestSensitiveEnvInASecret(t *testing.T) {
	cp := kubetest.Start(t)
	ns := cp.Namespace(t, "secret")
	text := fmt.Sprintf(`name: sec
clusters:
  kc: {kubeconfig: %s, namespace: %s}
services:
  api:
    image: nginx:1.27
    cluster: kc
    env: {API_TOKEN: tok-0a1b2c3d4e, DB_PASSWORD: hunter2-pw, LOG_LEVEL: info}
`, cp.Kubeconfig, ns)
	o := owner.New("git.example.com/acme/secrets")
	if _, res := (run{owner: o}).do(t, text); res.Err() != nil {
		t.Fatal(res.Err())
	}
	w := workload(t, load(t, text), "api")
	ctx := context.Background()
	cm, err := cp.Client.CoreV1().ConfigMaps(ns).Get(ctx, kube.ConfigMapName("api", w.SpecHash), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["LOG_LEVEL"] != "info" || cm.Data["API_TOKEN"] != "" || cm.Data["DB_PASSWORD"] != "" {
		t.Errorf("configmap data: %v", cm.Data)
	}
	for _, v := range cm.Data {
		if strings.Contains(v, "tok-0a1b") || strings.Contains(v, "hunter2") {
			t.Errorf("a sensitive value is in the configmap: %v", cm.Data)
		}
	}
	sec, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, kube.SecretName("api", w.SpecHash), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["API_TOKEN"]) != "tok-0a1b2c3d4e" || string(sec.Data["DB_PASSWORD"]) != "hunter2-pw" || sec.Immutable == nil || !*sec.Immutable {
		t.Errorf("secret: immutable %v, data %v", sec.Immutable, sec.Data)
	}
	if sec.Labels[label.Owner] != o.ID {
		t.Errorf("secret labels: %v", sec.Labels)
	}
	dep, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, kube.WorkloadName("api", w.SpecHash), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs := dep.Spec.Template.Spec.Containers[0].EnvFrom
	if len(refs) != 2 || refs[1].SecretRef == nil || refs[1].SecretRef.Name != sec.Name {
		t.Errorf("envFrom: %+v", refs)
	}
	// A change replaces the Secret with the workload; the old one goes.
	changed := strings.Replace(text, "tok-0a1b2c3d4e", "tok-ffffffffff", 1)
	if _, res := (run{owner: o}).do(t, changed); res.Err() != nil {
		t.Fatal(res.Err())
	}
	if _, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old secret after a replacement: %v", err)
	}
	w2 := workload(t, load(t, changed), "api")
	if _, err := cp.Client.CoreV1().Secrets(ns).Get(ctx, kube.SecretName("api", w2.SpecHash), metav1.GetOptions{}); err != nil {
		t.Errorf("the new secret: %v", err)
	}
}
