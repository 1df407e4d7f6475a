package kube_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/source/sourcetest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

// Tests on the real node (kubetest.StartNode): a kubelet with its own
// containerd runs the pods, so readiness probes really probe and the
// apiserver's service proxy really reaches the pods behind a Service.

// probeManifest is one cluster service, web, on the real node: the
// node's maestro-test/web:1 image (test/kube/tools/cmd/testweb), two
// replicas answering message on / and gated by a readiness probe on
// /ready, which fails (503) when ready is "no".
func probeManifest(kubeconfig, ns, message, ready string) string {
	return fmt.Sprintf(`name: probe
clusters:
  kc:
    kubeconfig: %s
    namespace: %s
services:
  web:
    image: maestro-test/web:1
    cluster: kc
    replicas: 2
    ports:
      http: 8080
    env:
      MESSAGE: %s
      READY: %q
    lifecycle:
      running:
        - type: http
          port: http
          path: /ready
`, kubeconfig, ns, message, ready)
}

// runBinaryCode runs maestro-sync and returns its output and exit code.
func runBinaryCode(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// serviceGet asks the Service ns/name on its port through the apiserver's
// service proxy, which picks one of the Service's ready endpoints (there
// is no kube-proxy): an answer comes from a pod the Service selects.
func serviceGet(ctx context.Context, cp *kubetest.ControlPlane, ns, name, port, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := cp.Client.CoreV1().Services(ns).ProxyGet("http", name, port, path, nil).DoRaw(ctx)
	return strings.TrimSpace(string(b)), err
}

// TestReadinessProbeBlocksRollout: a new spec whose readiness probe fails
// on the real node is never switched to. Its pods run but stay unready
// (the kubelet's probe failed with 503: its event and its probe metrics
// say so), maestro-sync apply fails with a non-zero status naming the
// rollout, removes the new Deployment, and the old pods answer every
// request to the Service throughout.
func TestReadinessProbeBlocksRollout(t *testing.T) {
	cp := kubetest.Start(t)
	node := cp.StartNode(t)
	ns := node.Namespace(t, "probe")
	bin := buildBinary(t)
	dir := t.TempDir()
	ctx := context.Background()
	c := cp.Client

	v1 := probeManifest(cp.Kubeconfig, ns, "v1", "yes")
	writeManifest(t, dir, v1)
	began := time.Now()
	out := runBinary(t, bin, 0, "apply", "--rollout-timeout", "2m", dir)
	t.Logf("first apply (%s):\n%s", time.Since(began).Round(time.Millisecond), out)
	oldWeb := workload(t, load(t, v1), "web")
	oldName := kube.WorkloadName("web", oldWeb.SpecHash)
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(map[string]string{label.SpecHash: oldWeb.SpecHash}).String()})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods of %s: %v %d", oldName, err, len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != node.Name || !podReady(&p) {
			t.Fatalf("pod %s on %q, ready %v: want the real node %s, ready", p.Name, p.Spec.NodeName, podReady(&p), node.Name)
		}
	}
	if got, err := serviceGet(ctx, cp, ns, "web", "http", "/"); err != nil || got != "v1" {
		t.Fatalf("web through its Service: %q, %v", got, err)
	}

	// The old pods' probes may have failed while their server started;
	// from now on they must not.
	oldUnhealthy := unhealthyEvents(t, cp, ns, oldName)

	v2 := probeManifest(cp.Kubeconfig, ns, "v2", "no")
	newWeb := workload(t, load(t, v2), "web")
	newName := kube.WorkloadName("web", newWeb.SpecHash)
	newPods := labels.SelectorFromSet(map[string]string{label.SpecHash: newWeb.SpecHash}).String()

	// While the rollout runs and after it failed: ask the Service, and
	// watch the new pods and the kubelet's probe counts.
	var (
		mu                 sync.Mutex
		answers            = map[string]int{}
		failures           []string
		runningUnready     = map[string]bool{}
		readyNew           []string
		failedProbeMetrics string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := serviceGet(ctx, cp, ns, "web", "http", "/")
			mu.Lock()
			if err != nil {
				failures = append(failures, err.Error())
			} else {
				answers[got]++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: newPods}); err == nil {
				mu.Lock()
				for _, p := range pods.Items {
					if podReady(&p) {
						readyNew = append(readyNew, p.Name)
					} else if p.Status.Phase == corev1.PodRunning && containerRunning(&p) {
						runningUnready[p.Name] = true
					}
				}
				mu.Unlock()
			}
			// The kubelet's own count of readiness probes, by result.
			m, err := c.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node.Name, "proxy", "metrics", "probes").DoRaw(ctx)
			if err == nil {
				for _, line := range strings.Split(string(m), "\n") {
					if strings.HasPrefix(line, "prober_probe_total{") && strings.Contains(line, `namespace="`+ns+`"`) &&
						strings.Contains(line, `pod="`+newName) && strings.Contains(line, `probe_type="Readiness"`) &&
						strings.Contains(line, `result="failed"`) && !strings.HasSuffix(line, " 0") {
						mu.Lock()
						failedProbeMetrics = line
						mu.Unlock()
					}
				}
			}
		}
	}()

	writeManifest(t, dir, v2)
	began = time.Now()
	out, code := runBinaryCode(t, bin, "apply", "--rollout-timeout", "15s", dir)
	took := time.Since(began)
	t.Logf("failing apply: exit %d after %s:\n%s", code, took.Round(time.Millisecond), out)
	time.Sleep(2 * time.Second) // the Service keeps answering after the failure
	close(stop)
	wg.Wait()

	if code == 0 {
		t.Errorf("maestro-sync apply of a spec whose readiness probe fails exited 0")
	}
	// The error says why: the probe's failure, read from the kubelet's
	// event (the admin may list pods and events).
	for _, want := range []string{"rollout of deployment " + newName + " failed", "still selects the pods of " + oldName,
		"Readiness probe failed: HTTP probe failed with statuscode: 503", "Applied 0 step(s), 1 failed."} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output does not say %q", want)
		}
	}
	if took > 90*time.Second {
		t.Errorf("the failed rollout took %s with a 15s timeout", took)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("answers of the Service during and after the rollout: %v; failures: %d; new pods running unready: %v; kubelet: %s",
		answers, len(failures), runningUnready, failedProbeMetrics)
	if len(failures) > 0 {
		t.Errorf("%d requests to the Service failed, first: %s", len(failures), failures[0])
	}
	if answers["v1"] < 20 || len(answers) != 1 {
		t.Errorf("the Service answered %v: want only v1, at least 20 times", answers)
	}
	if len(runningUnready) == 0 {
		t.Error("no pod of the new spec was seen running and unready")
	}
	if len(readyNew) > 0 {
		t.Errorf("pods of the new spec became ready: %v", readyNew)
	}
	if failedProbeMetrics == "" {
		t.Error("the kubelet counted no failed readiness probe of the new pods (/metrics/probes)")
	}

	// The kubelet's events: the probe ran and got 503.
	events, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=Unhealthy"})
	if err != nil {
		t.Fatal(err)
	}
	probeFailed := ""
	for _, e := range events.Items {
		if strings.HasPrefix(e.InvolvedObject.Name, newName) && e.Source.Component == "kubelet" &&
			strings.Contains(e.Message, "Readiness probe failed") && strings.Contains(e.Message, "503") {
			probeFailed = e.Message
		}
	}
	if probeFailed == "" {
		t.Errorf("no kubelet event says the readiness probe of a new pod failed with 503: %d Unhealthy events", len(events.Items))
	} else {
		t.Logf("kubelet event: %s", probeFailed)
	}

	for name, n := range unhealthyEvents(t, cp, ns, oldName) {
		if n > oldUnhealthy[name] {
			t.Errorf("a pod of the old spec became unhealthy during the rollout: %s", name)
		}
	}

	// Nothing of the new spec is left; the old Deployment still serves.
	if _, err := c.AppsV1().Deployments(ns).Get(ctx, newName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the new deployment is still there: %v", err)
	}
	svc, err := c.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Selector[label.SpecHash] != oldWeb.SpecHash {
		t.Errorf("service web after the failure: %v, selector %v", err, svc.Spec.Selector)
	}
	old, err := c.AppsV1().Deployments(ns).Get(ctx, oldName, metav1.GetOptions{})
	if err != nil || old.Status.AvailableReplicas != 2 {
		t.Errorf("old deployment after the failure: %v %+v", err, old.Status)
	}
}

// unhealthyEvents counts the kubelet's Unhealthy events of the pods whose
// name starts with prefix, by event.
func unhealthyEvents(t *testing.T, cp *kubetest.ControlPlane, ns, prefix string) map[string]int32 {
	t.Helper()
	events, err := cp.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Unhealthy"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, e := range events.Items {
		if strings.HasPrefix(e.InvolvedObject.Name, prefix) {
			out[e.Name] = max(e.Count, 1)
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func containerRunning(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil {
			return true
		}
	}
	return false
}

// daemonImage imports the maestro-sync image into the node's containerd
// as ref, made offline as the Dockerfile makes it: the static binary
// (buildBinary) on an empty base, /cache, /data and the home directory owned by 65532, which
// it runs as.
func daemonImage(t *testing.T, node *kubetest.Node, ref string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"cache", "data", "home/maestro-sync", "etc/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"cache", "data", "home/maestro-sync"} {
		if err := os.Chown(filepath.Join(root, d), 65532, 65532); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile(buildBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "maestro-sync"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		if err := os.WriteFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), ca, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := node.ImportImage(t, ref, root, `{"Entrypoint":["/maestro-sync"],"Cmd":["run"],`+
		`"Env":["HOME=/home/maestro-sync","MAESTRO_SYNC_CACHE_DIR=/cache","MAESTRO_SYNC_DATA_DIR=/data"],`+
		`"User":"65532:65532","ExposedPorts":{"8080/tcp":{}}}`)
	t.Logf("image %s: %s (%d MB binary)", ref, id, len(bin)>>20)
}

// inClusterManifest deploys web (the node's testweb image, one replica,
// gated by its readiness probe) into namespace ns of the cluster
// maestro-sync runs in (no kubeconfig), and box (busybox httpd) on a Docker
// ship reached over TCP at endpoint:dockerPort, its port published on the
// ship's address.
func inClusterManifest(ns, message string, ship *dockertest.Ship, endpoint string, dockerPort, hostPort int) string {
	return fmt.Sprintf(`name: incluster
clusters:
  here:
    namespace: %[1]s
ships:
  s1: {ip: %[3]s, endpoint: %[4]s, docker_port: %[5]d, timeout: 30}
services:
  web:
    image: maestro-test/web:1
    cluster: here
    replicas: 1
    ports:
      http: 8080
    env:
      MESSAGE: %[2]s
    lifecycle:
      running:
        - type: http
          port: http
          path: /ready
  box:
    image: maestro-test/busybox:1
    ports:
      http: 8080
    env:
      MESSAGE: %[2]s
    lifecycle:
      running:
        - {type: http, port: http, path: /index.html, max_wait: 30}
    instances:
      box-1:
        ship: s1
        ports: {http: "8080:%[6]d"}
        stop_timeout: 1
        command: [sh, -c, "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
`, ns, message, ship.IP, endpoint, dockerPort, hostPort)
}

// TestDaemonPodDeploys: maestro-sync runs as pods of the real node,
// installed from manifests/ (two replicas electing a leader, the
// ServiceAccount's RBAC, the Secret's Git token) with its image made
// offline from the static binary. It follows a Git repository served over
// HTTP on the node's address and deploys each commit to the cluster it
// runs in (in-cluster configuration) and to a Docker ship reached over
// TCP.
//
// There is no kube-proxy: the pods reach the apiserver at the node's
// address (kubetest's forwarder), set as KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT by the kustomization's patch, where kube-proxy
// would route the kubernetes Service's ClusterIP.
func TestDaemonPodDeploys(t *testing.T) {
	cp := kubetest.Start(t)
	node := cp.StartNode(t)
	ctx := context.Background()
	c := cp.Client

	const ref = "maestro-sync:node-test"
	daemonImage(t, node, ref)

	// The Docker ship: dockerd listening on the node's address too.
	dockerPort := dockertest.FreePort(t)
	ship := dockertest.StartShipWithArgs(t, "--host", fmt.Sprintf("tcp://%s:%d", node.IP, dockerPort))
	hostPort := dockertest.FreePort(t)

	// The repository, behind basic auth with the Secret's token.
	target := node.Namespace(t, "incluster")
	repo := sourcetest.NewRepo(t)
	first := repo.Commit(t, map[string]string{"app/manifest.yml": inClusterManifest(target, "v1", ship, node.IP, dockerPort, hostPort)}, "v1")
	const gitToken = "node-test-git-token"
	git := sourcetest.NewHTTPServerOn(t, node.IP, repo, "git", gitToken)
	apiHost, apiPort := node.ForwardAPIServer(t)

	// The install: manifests/ through a kustomization of the test's, in a
	// namespace and with names of its own (TestInstallManifests installs
	// the same cluster-wide objects).
	inst := fmt.Sprintf("maestro-node-%d", os.Getpid()%100000)
	suffix := fmt.Sprintf("-node%d", os.Getpid()%100000)
	name := "maestro-sync" + suffix
	overlay := t.TempDir()
	manifests, err := filepath.Abs(manifestsDir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(overlay, manifests)
	if err != nil {
		t.Fatal(err)
	}
	var annotations strings.Builder
	for k, v := range node.NamespaceAnnotations() {
		fmt.Fprintf(&annotations, "          %s: '%s'\n", k, v)
	}
	files := map[string]string{
		"kustomization.yaml": fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %[1]s
nameSuffix: %[2]s
resources:
  - %[3]s
  - secret.yaml
images:
  - name: maestro-sync
    newTag: node-test
patches:
  # The pods run on the real node.
  - patch: |-
      apiVersion: v1
      kind: Namespace
      metadata:
        name: maestro-sync
        annotations:
%[4]s  # The repository; the apiserver at the node's address (no kube-proxy
  # to route the kubernetes Service); a short poll interval.
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: maestro-sync
        namespace: maestro-sync
      spec:
        template:
          spec:
            containers:
              - name: maestro-sync
                env:
                  - {name: MAESTRO_SYNC_REPO, value: "%[5]s"}
                  - {name: MAESTRO_SYNC_POLL, value: 2s}
                  - {name: KUBERNETES_SERVICE_HOST, value: "%[6]s"}
                  - {name: KUBERNETES_SERVICE_PORT, value: "%[7]s"}
`, inst, suffix, rel, annotations.String(), git.URL, apiHost, apiPort),
		"secret.yaml": fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: maestro-sync
stringData:
  git-token: %s
  webhook-secret: node-test-webhook-secret
`, gitToken),
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(overlay, f), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	cp.Kubectl(t, "apply", "--server-side", "-k", overlay)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := cp.KubectlErr(ctx, nil, "-n", inst, "logs", "--tail=40", "--prefix", "-l", "app.kubernetes.io/name=maestro-sync")
			t.Logf("daemon logs:\n%s", logs)
		}
		start := time.Now()
		_, _ = cp.KubectlErr(ctx, nil, "delete", "--wait=false", "-k", overlay)
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if pods, err := c.CoreV1().Pods(inst).List(ctx, metav1.ListOptions{}); err == nil && len(pods.Items) == 0 {
				t.Logf("the install removed in %s", time.Since(start).Round(100*time.Millisecond))
				return
			}
		}
		t.Logf("the daemon's pods in %s are still there after 90s", inst)
	})
	if out, err := cp.KubectlErr(ctx, nil, "-n", inst, "rollout", "status", "deployment/"+name, "--timeout=3m"); err != nil {
		t.Fatalf("the daemon's rollout: %v\n%s\n%s", err, out, cp.Kubectl(t, "-n", inst, "get", "pods,events", "-o", "wide"))
	}
	t.Logf("daemon rolled out in %s", time.Since(began).Round(100*time.Millisecond))
	pods, err := c.CoreV1().Pods(inst).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=maestro-sync"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("the daemon's pods: %v %d", err, len(pods.Items))
	}
	podNames := map[string]bool{}
	for _, p := range pods.Items {
		podNames[p.Name] = true
		if p.Spec.NodeName != node.Name || !podReady(&p) {
			t.Errorf("daemon pod %s on %q, ready %v", p.Name, p.Spec.NodeName, podReady(&p))
		}
	}

	// deployed waits until web answers message through its Service and box
	// runs message on the ship, both from commit rev.
	deployed := func(rev, message string) {
		t.Helper()
		start := time.Now()
		eventually(t, "web "+message+" from "+rev[:8]+" on the cluster", 3*time.Minute, func() bool {
			deps, err := c.AppsV1().Deployments(target).List(ctx, metav1.ListOptions{LabelSelector: label.Service + "=web"})
			if err != nil || len(deps.Items) != 1 || deps.Items[0].Annotations[label.Revision] != rev || deps.Items[0].Status.AvailableReplicas != 1 {
				return false
			}
			got, err := serviceGet(ctx, cp, target, "web", "http", "/")
			return err == nil && got == message
		})
		eventually(t, "box "+message+" from "+rev[:8]+" on the ship", time.Minute, func() bool {
			out, err := exec.Command("docker", "-H", ship.Host, "ps", "--filter", "label="+label.Revision+"="+rev,
				"--format", `{{.Names}} {{.Label "`+label.Service+`"}}`).Output()
			return err == nil && strings.Contains(string(out), " box")
		})
		t.Logf("%s deployed %s after %s", rev[:8], message, time.Since(start).Round(100*time.Millisecond))
	}
	deployed(first, "v1")
	env := ship.Docker(t, "ps", "--filter", "label="+label.Service+"=box", "--format", "{{.ID}}")
	if got := ship.Docker(t, "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", env); !strings.Contains(got, "MESSAGE=v1") {
		t.Errorf("box's env on the ship: %s", got)
	}
	// Its published port answers on the ship's address.
	if resp, err := http.Get(fmt.Sprintf("http://%s:%d/index.html", ship.IP, hostPort)); err != nil {
		t.Errorf("box on the ship: %v", err)
	} else {
		resp.Body.Close()
	}

	// The next commit.
	second := repo.Commit(t, map[string]string{"app/manifest.yml": inClusterManifest(target, "v2", ship, node.IP, dockerPort, hostPort)}, "v2")
	deployed(second, "v2")

	// The leader that deployed is one of the pods: the Lease of the
	// replicas in the install's namespace names it.
	lease, err := c.CoordinationV1().Leases(inst).Get(ctx, "maestro-sync", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || !podNames[*lease.Spec.HolderIdentity] {
		t.Fatalf("leader Lease: %v, holder %v, pods %v", err, lease.Spec.HolderIdentity, podNames)
	} else {
		t.Logf("leader: %s", *lease.Spec.HolderIdentity)
	}
	// Each replica's status API (through the apiserver's pod proxy): the
	// leader says the environment is synced at the second commit, the
	// follower names the leader.
	for pod := range podNames {
		var st struct {
			Role, Leader string
			Environments []struct {
				Name, State     string
				AppliedRevision string `json:"applied_revision"`
			}
		}
		eventually(t, "the status of "+pod, 30*time.Second, func() bool {
			b, err := c.CoreV1().Pods(inst).ProxyGet("http", pod, "8080", "/api/v1/status", nil).DoRaw(ctx)
			if err != nil || json.Unmarshal(b, &st) != nil {
				return false
			}
			if pod != *lease.Spec.HolderIdentity {
				return st.Role == "follower" && st.Leader == *lease.Spec.HolderIdentity
			}
			return st.Role == "leader" && len(st.Environments) == 1 && st.Environments[0].State == "synced" && st.Environments[0].AppliedRevision == second
		})
		t.Logf("status of %s: role %s, leader %s, environments %+v", pod, st.Role, st.Leader, st.Environments)
	}
	if n := git.Fetches(); n == 0 {
		t.Error("the daemon never fetched from the Git server")
	}
}
