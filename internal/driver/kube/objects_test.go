package kube

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []manifest.Cluster{
		{Kubeconfig: "/etc/kube/prod.yaml", Context: "prod", Namespace: "shop"},
		{Namespace: "default"},
		{Kubeconfig: "~/k.yaml", Context: "arn:aws:eks:eu-west-1:1:cluster/prod", Namespace: "a-b"},
	} {
		got, err := ParseAddress(c.Address())
		if err != nil {
			t.Fatalf("%s: %v", c.Address(), err)
		}
		if got.Kubeconfig != c.Kubeconfig || got.Context != c.Context || got.Namespace != c.Namespace || got.Address() != c.Address() {
			t.Errorf("%s: parsed %+v", c.Address(), got)
		}
	}
	for _, bad := range []string{"tcp://1.2.3.4:2375", "kube://nohash/ns", "kube://x#y"} {
		if _, err := ParseAddress(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestInventoryName(t *testing.T) {
	for env, want := range map[string]string{
		"shop":       "maestro-sync-inventory-shop",
		"Shop_Prod":  "maestro-sync-inventory-shop-prod-",
		"prod.eu-1":  "maestro-sync-inventory-prod.eu-1",
		"_x_":        "maestro-sync-inventory-x-",
		"shop_prod":  "maestro-sync-inventory-shop-prod-",
		"UPPER.case": "maestro-sync-inventory-upper.case-",
	} {
		got := InventoryName("", env)
		if !strings.HasPrefix(got, want) || len(validation.IsDNS1123Subdomain(got)) > 0 {
			t.Errorf("InventoryName(%q) = %q, want prefix %q and a valid name", env, got, want)
		}
	}
	if InventoryName("", "shop_prod") == InventoryName("", "shop-prod") {
		t.Error("two environments share an inventory")
	}
	r := refOf("ns", KindDeployment, "web-12345678")
	if got, ok := parseRef(r.String()); !ok || got != r || r.String() != "ns_web-12345678_apps_Deployment" {
		t.Errorf("ref %s parsed as %+v", r, got)
	}
}

func testDesired(w *manifest.Workload) *desired {
	w.SpecHash = w.Spec().Hash()
	return &desired{env: "shop", service: "web", revision: "0123abc", namespace: "ns", w: w, progressDeadline: 90 * time.Second}
}

func TestObjects(t *testing.T) {
	w := &manifest.Workload{Mode: manifest.ModeDeployment, Replicas: 3, Image: "nginx:1", Command: []string{"nginx", "-g", "daemon off;"},
		Env: manifest.Env{{Name: "A", Value: "1"}, {Name: "SECRET", Value: "hunter2", FromFile: true}, {Name: "UNSET", Unset: true}},
		Ports: manifest.PortList{
			{Name: "dns", Exposed: "53/udp", External: "53/udp"},
			{Name: "http", Exposed: "80/tcp", External: "30080/tcp"},
		},
		MemoryBytes: 128 << 20, CPUMillis: 1500,
		Lifecycle: map[string][]manifest.Check{"running": {{Type: manifest.CheckHTTP, Port: "http", Path: "/ready", Scheme: "https", Options: map[string]string{"timeout": "4.5"}}}},
	}
	d := testDesired(w)
	if d.workloadName() != "web-"+w.SpecHash[:8] || d.configMapName() != "web-env-"+w.SpecHash[:8] {
		t.Errorf("names: %s %s", d.workloadName(), d.configMapName())
	}
	cm := d.configMap()
	if !*cm.Immutable || len(cm.Data) != 1 || cm.Data["A"] != "1" {
		t.Errorf("configmap: %+v", cm)
	}
	if sec := d.secret(); !d.hasSecret() || !*sec.Immutable || len(sec.StringData) != 1 || sec.StringData["SECRET"] != "hunter2" || *sec.Name != "web-secret-"+w.SpecHash[:8] {
		t.Errorf("secret: %+v", sec)
	}
	if cm.Labels[label.Revision] != "0123abc" || cm.Labels[label.SpecHash] != w.SpecHash || strings.Contains(cm.Annotations[label.Spec], "hunter2") {
		t.Errorf("configmap metadata: %+v %+v", cm.Labels, cm.Annotations)
	}
	dep, err := d.deployment()
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 3 || *dep.Spec.ProgressDeadlineSeconds != 90 {
		t.Errorf("deployment spec: %+v", dep.Spec)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if strings.Join(c.Args, " ") != "nginx -g daemon off;" || c.Command != nil {
		t.Errorf("args %q command %q", c.Args, c.Command)
	}
	if lim := (*c.Resources.Limits)[corev1.ResourceCPU]; lim.String() != "1500m" {
		t.Errorf("cpu limit %s", lim.String())
	}
	if lim := (*c.Resources.Limits)[corev1.ResourceMemory]; lim.String() != "128Mi" {
		t.Errorf("memory limit %s", lim.String())
	}
	if p := c.ReadinessProbe; *p.HTTPGet.Scheme != corev1.URISchemeHTTPS || *p.HTTPGet.Path != "/ready" || *p.TimeoutSeconds != 5 {
		t.Errorf("probe: %+v %+v", p, p.HTTPGet)
	}
	if *c.Ports[0].Protocol != corev1.ProtocolUDP || *c.Ports[0].ContainerPort != 53 {
		t.Errorf("ports: %+v", c.Ports)
	}
	svc, err := d.serviceObject()
	if err != nil {
		t.Fatal(err)
	}
	if *svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.ClusterIP != nil {
		t.Errorf("service type %v cluster ip %v", *svc.Spec.Type, svc.Spec.ClusterIP)
	}
	if p := svc.Spec.Ports[1]; *p.Port != 80 || *p.NodePort != 30080 || p.TargetPort.StrVal != "http" {
		t.Errorf("http port: %+v", p)
	}
	if svc.Spec.Ports[0].NodePort != nil {
		t.Errorf("dns port has a node port")
	}
	if svc.Spec.Selector[label.SpecHash] != w.SpecHash || svc.Spec.Selector[label.Revision] != "" {
		t.Errorf("selector: %v", svc.Spec.Selector)
	}
	// The spec annotation is the summary and reads back.
	var spec manifest.Spec
	if err := json.Unmarshal([]byte(dep.Annotations[label.Spec]), &spec); err != nil || spec.Replicas != 3 || !strings.HasPrefix(strings.SplitN(spec.Env[0], "=", 2)[1], manifest.EnvDigestPrefix) {
		t.Errorf("spec annotation %s: %v", dep.Annotations[label.Spec], err)
	}
}

func TestObjectsVariants(t *testing.T) {
	// No port: a headless Service. tcp and exec probes. A revision that
	// is no label value stays an annotation.
	w := &manifest.Workload{Mode: manifest.ModeDaemonSet, Image: "agent:1",
		Lifecycle: map[string][]manifest.Check{"running": {{Type: manifest.CheckExec, Command: []string{"check", "--ok"}}}}}
	d := testDesired(w)
	d.revision = strings.Repeat("r", 70)
	svc, err := d.serviceObject()
	if err != nil {
		t.Fatal(err)
	}
	if *svc.Spec.ClusterIP != corev1.ClusterIPNone || *svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 0 {
		t.Errorf("service without ports: %+v", svc.Spec)
	}
	if _, ok := svc.Labels[label.Revision]; ok || svc.Annotations[label.Revision] != d.revision {
		t.Errorf("long revision: labels %v", svc.Labels)
	}
	ds, err := d.daemonSet()
	if err != nil {
		t.Fatal(err)
	}
	if d.kind() != KindDaemonSet || *ds.Name != "web-"+w.SpecHash[:8] {
		t.Errorf("daemonset %s", *ds.Name)
	}
	if p := ds.Spec.Template.Spec.Containers[0].ReadinessProbe; strings.Join(p.Exec.Command, " ") != "check --ok" {
		t.Errorf("exec probe: %+v", p)
	}
	p, err := readinessProbe(manifest.Check{Type: manifest.CheckTCP, Port: "pg"})
	if err != nil || p.TCPSocket.Port.StrVal != "pg" {
		t.Errorf("tcp probe: %+v %v", p, err)
	}
	p, err = readinessProbe(manifest.Check{Type: manifest.CheckHTTP, Port: "8080", Path: "/", Scheme: "http"})
	if err != nil || p.HTTPGet.Port.IntVal != 8080 {
		t.Errorf("http probe on a number: %+v %v", p, err)
	}
	if _, err := readinessProbe(manifest.Check{Type: manifest.CheckSleep}); err == nil {
		t.Error("a sleep check became a probe")
	}
}

// TestDocsExample loads the first example of docs/kubernetes.md and checks
// the variables the page says it injects.
func TestDocsExample(t *testing.T) {
	data, err := os.ReadFile("../../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(string(data))
	if block == nil {
		t.Fatal("no yaml block")
	}
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(block[1])}}, manifest.Options{Strict: true})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	env := repo.Environments[0]
	worker := env.Service("worker").Workload.Env
	cron := env.Instance("cron-1").Env
	for _, c := range []struct {
		env        manifest.Env
		name, want string
	}{
		{worker, "API_API_HOST", "api.shop.svc"}, {worker, "API_API_HTTP_PORT", "8080"},
		{worker, "DB_DB_1_HOST", "10.0.0.5"}, {worker, "DB_DB_1_PG_PORT", "5432"},
		{worker, "CONTAINER_HOST_ADDRESS", "worker.shop.svc"}, {worker, "CONTAINER_NAME", "worker"},
		{cron, "API_API_HOST", "10.0.1.10"}, {cron, "API_API_HTTP_PORT", "30080"}, {cron, "API_API_GRPC_PORT", "9090"},
	} {
		if got, _ := c.env.Get(c.name); got != c.want {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}
	if w := env.Service("agent").Workload; w.Mode != manifest.ModeDaemonSet {
		t.Errorf("agent mode %s", w.Mode)
	}
}
