package kube_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	out, code := runBinaryCode(t, bin, "apply", "--rollout-timeout", "20s", dir)
	took := time.Since(began)
	t.Logf("failing apply: exit %d after %s:\n%s", code, took.Round(time.Millisecond), out)
	time.Sleep(2 * time.Second) // the Service keeps answering after the failure
	close(stop)
	wg.Wait()

	if code == 0 {
		t.Errorf("maestro-sync apply of a spec whose readiness probe fails exited 0")
	}
	for _, want := range []string{"rollout of deployment " + newName + " failed", "still selects the pods of " + oldName, "Applied 0 step(s), 1 failed."} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output does not say %q", want)
		}
	}
	if took > 90*time.Second {
		t.Errorf("the failed rollout took %s with a 20s timeout", took)
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
