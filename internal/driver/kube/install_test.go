package kube_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

const manifestsDir = "../../../manifests"

// installObjects reads the kustomization's resources, each YAML document
// decoded into its API type.
func installObjects(t *testing.T) (namespace string, objs []any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(manifestsDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for _, res := range k.Resources {
		data, err := os.ReadFile(filepath.Join(manifestsDir, res))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			if m, ok := obj.(metav1.Object); ok && gvk.Kind != "Namespace" && gvk.Kind != "ClusterRole" && gvk.Kind != "ClusterRoleBinding" && m.GetNamespace() != k.Namespace {
				t.Errorf("%s: %s %s is in namespace %q, the kustomization's is %q", res, gvk.Kind, m.GetName(), m.GetNamespace(), k.Namespace)
			}
			objs = append(objs, obj)
		}
	}
	return k.Namespace, objs
}

func TestInstallManifests(t *testing.T) {
	ns, objs := installObjects(t)
	if ns != "maestro-sync" {
		t.Errorf("kustomization namespace %q", ns)
	}
	var (
		role    *rbacv1.ClusterRole
		binding *rbacv1.ClusterRoleBinding
		dep     *appsv1.Deployment
		svc     *corev1.Service
		sa      *corev1.ServiceAccount
		nsObj   *corev1.Namespace
		pdb     *policyv1.PodDisruptionBudget
	)
	for _, o := range objs {
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			role = o
		case *rbacv1.ClusterRoleBinding:
			binding = o
		case *appsv1.Deployment:
			dep = o
		case *corev1.Service:
			svc = o
		case *corev1.ServiceAccount:
			sa = o
		case *corev1.Namespace:
			nsObj = o
		case *policyv1.PodDisruptionBudget:
			pdb = o
		default:
			t.Errorf("unexpected object %T", o)
		}
	}
	if role == nil || binding == nil || dep == nil || svc == nil || sa == nil || nsObj == nil || pdb == nil {
		t.Fatalf("missing objects: role %v binding %v deployment %v service %v serviceaccount %v namespace %v", role != nil, binding != nil, dep != nil, svc != nil, sa != nil, nsObj != nil)
	}

	// Least privilege: exactly these permissions.
	want := map[string][]string{
		"/namespaces":                 {"create", "get"},
		"apps/deployments":            {"create", "delete", "get", "list", "patch", "watch"},
		"apps/daemonsets":             {"create", "delete", "get", "list", "patch", "watch"},
		"apps/deployments/scale":      {"patch"},
		"networking.k8s.io/ingresses": {"create", "delete", "get", "list", "patch", "watch"},
		"/services":                   {"create", "delete", "get", "list", "patch", "watch"},
		"/configmaps":                 {"create", "delete", "get", "list", "patch", "update", "watch"},
		"coordination.k8s.io/leases":  {"create", "delete", "get", "update"},
		"/secrets":                    {"create", "delete", "get", "patch"},
	}
	got := map[string][]string{}
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				got[g+"/"+res] = append(got[g+"/"+res], r.Verbs...)
			}
		}
	}
	for k := range got {
		slices.Sort(got[k])
	}
	if !mapsEqual(got, want) {
		t.Errorf("ClusterRole rules:\n got %v\nwant %v", got, want)
	}
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" ||
		binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != ns {
		t.Errorf("binding: %+v", binding)
	}

	// The daemon's Deployment: two replicas electing a leader, one of which
	// a voluntary disruption may take at a time.
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 ||
		!labelsMatch(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("replicas %v, disruption budget %+v", dep.Spec.Replicas, pdb.Spec)
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name || len(pod.Containers) != 1 {
		t.Fatalf("pod spec: %+v", pod)
	}
	c := pod.Containers[0]
	if c.Image != "maestro-sync:latest" || !slices.Equal(c.Args, []string{"run"}) {
		t.Errorf("container image %s args %v", c.Image, c.Args)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("liveness probe: %+v", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe: %+v", p)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Ports[0].Name != "http" {
		t.Errorf("ports: %+v", c.Ports)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod security context: %+v", psc)
	}
	if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context: %+v", sc)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["GIT_TOKEN"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "maestro-sync" {
		t.Errorf("GIT_TOKEN does not come from the Secret: %+v", e)
	}
	if env["MAESTRO_SYNC_LEADER_ELECT"].Value != "true" || env["POD_NAME"].ValueFrom == nil || env["POD_NAMESPACE"].ValueFrom == nil {
		t.Errorf("leader election: %+v %+v %+v", env["MAESTRO_SYNC_LEADER_ELECT"], env["POD_NAME"], env["POD_NAMESPACE"])
	}
	if env["MAESTRO_SYNC_GIT_PASSWORD_ENV"].Value != "GIT_TOKEN" {
		t.Errorf("MAESTRO_SYNC_GIT_PASSWORD_ENV: %+v", env["MAESTRO_SYNC_GIT_PASSWORD_ENV"])
	}
	secretFile := env["MAESTRO_SYNC_WEBHOOK_SECRET_FILE"].Value
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == "maestro-sync" && strings.HasPrefix(secretFile, m.MountPath+"/") {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the webhook secret file %q is not on a volume of the Secret", secretFile)
	}
	// The root file system is read-only: the clone (/cache) and the run
	// history (/data, MAESTRO_SYNC_DATA_DIR of the image) need volumes.
	for _, dir := range []string{"/cache", "/data"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir && !m.ReadOnly }) {
			t.Errorf("no writable volume at %s: %+v", dir, c.VolumeMounts)
		}
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != dep.Spec.Template.Labels["app.kubernetes.io/name"] || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("service: %+v", svc.Spec)
	}

	// kustomize renders the same objects.
	cp := kubetest.Start(t)
	rendered := cp.Kubectl(t, "kustomize", manifestsDir)
	if n := strings.Count(rendered, "\nkind: ") + boolInt(strings.HasPrefix(rendered, "kind: ")); n != len(objs) {
		t.Errorf("kubectl kustomize renders %d objects, the files hold %d", n, len(objs))
	}

	// Install it in the test cluster, as a user would.
	cp.Kubectl(t, "apply", "--server-side", "-k", manifestsDir)
	t.Cleanup(func() {
		_, _ = cp.KubectlErr(context.Background(), nil, "delete", "--wait=false", "-k", manifestsDir)
	})

	// maestro-sync with the ServiceAccount's token: everything it does
	// goes through RBAC.
	kubeconfig := cp.WriteKubeconfig(t, "maestro-sync", cp.Token(t, ns, sa.Name))
	target := cp.Namespace(t, "rbac") // created by maestro-sync itself
	dir := t.TempDir()
	s := shop{kubeconfig: kubeconfig, namespace: target, nodePort: nextNodePort(), logLevel: "info", webMemory: "64m", worker: true}
	writeManifest(t, dir, s.text())
	bin := buildBinary(t)
	out := runBinary(t, bin, 0, "apply", "--rollout-timeout", "2m", "-c", "4", dir)
	t.Logf("maestro-sync apply:\n%s", out)
	if !strings.Contains(out, "Applied 3 step(s), 0 failed.") {
		t.Errorf("apply output:\n%s", out)
	}
	// Unchanged: plan exits 0.
	runBinary(t, bin, 0, "plan", dir)
	// A changed env value and a pruned service.
	s.worker, s.logLevel = false, "debug"
	writeManifest(t, dir, s.text())
	out = runBinary(t, bin, 0, "apply", "--prune", "--rollout-timeout", "2m", dir)
	if !strings.Contains(out, "Applied 2 step(s), 0 failed.") {
		t.Errorf("second apply output:\n%s", out)
	}
	runBinary(t, bin, 0, "plan", "--prune", dir)
	// Scaled in place, then exposed through a load balancer and an
	// Ingress: both through RBAC too.
	s.replicas = 3
	writeManifest(t, dir, s.text())
	if out := runBinary(t, bin, 0, "apply", "--rollout-timeout", "2m", dir); !strings.Contains(out, "Applied 1 step(s), 0 failed.") || !strings.Contains(out, "scale") {
		t.Errorf("scale output:\n%s", out)
	}
	s.ingressHost = "rbac.example.com"
	writeManifest(t, dir, s.text())
	if out := runBinary(t, bin, 0, "apply", "--rollout-timeout", "2m", dir); !strings.Contains(out, "Applied 1 step(s), 0 failed.") {
		t.Errorf("ingress output:\n%s", out)
	}

	ctx := context.Background()
	if ing, err := cp.Client.NetworkingV1().Ingresses(target).Get(ctx, "web", metav1.GetOptions{}); err != nil || ing.Spec.Rules[0].Host != "rbac.example.com" {
		t.Errorf("ingress web: %v", err)
	}
	web := workload(t, load(t, s.text()), "web")
	if svc, err := cp.Client.CoreV1().Services(target).Get(ctx, "web", metav1.GetOptions{}); err != nil || svc.Spec.Selector[label.SpecHash] != web.SpecHash {
		t.Errorf("service web: %v", err)
	}
	if _, err := cp.Client.CoreV1().Services(target).Get(ctx, "worker", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service worker after prune: %v", err)
	}

	// And it may do nothing else.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sac := kubernetes.NewForConfigOrDie(cfg)
	for what, err := range map[string]error{
		"list secrets":      listErr(sac.CoreV1().Secrets(target).List(ctx, metav1.ListOptions{})),
		"list pods":         listErr(sac.CoreV1().Pods(target).List(ctx, metav1.ListOptions{})),
		"list namespaces":   listErr(sac.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})),
		"delete namespace":  sac.CoreV1().Namespaces().Delete(ctx, target, metav1.DeleteOptions{}),
		"list statefulsets": listErr(sac.AppsV1().StatefulSets(target).List(ctx, metav1.ListOptions{})),
		"list nodes":        listErr(sac.CoreV1().Nodes().List(ctx, metav1.ListOptions{})),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: want forbidden, got %v", what, err)
		}
	}
}

func listErr[T any](_ T, err error) error { return err }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func writeManifest(t *testing.T, dir, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop", "manifest.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildBinary builds cmd/maestro-sync for the test: static (CGO_ENABLED=0),
// as the Dockerfile builds it, since TestDaemonPodDeploys makes the image
// of it (and as the e2e and manifest tests build it: one compile serves all).
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "maestro-sync")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/maestro-sync/maestro-sync/cmd/maestro-sync")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBinary(t *testing.T, bin string, wantCode int, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent") // only the manifest's kubeconfig counts
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != wantCode {
		t.Fatalf("maestro-sync %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
	}
	return string(out)
}

// labelsMatch reports whether every label of sel is in labels.
func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}
