package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

// replica is one maestro-sync run --leader-elect process.
type replica struct {
	id, base string
	cmd      *exec.Cmd
	out      *dockertest.SyncBuffer
	done     chan struct{}
}

func startReplica(t *testing.T, bin, id, dir, leaseNS, kubeconfig, token string) *replica {
	t.Helper()
	return startDaemon(t, bin, id, dir, token, "--leader-elect", "--leader-elect-namespace", leaseNS,
		"--leader-elect-identity", id, "--leader-elect-kubeconfig", kubeconfig, "--leader-elect-lease-duration", "3s")
}

// startDaemon runs maestro-sync run on the manifests of dir, with args.
func startDaemon(t *testing.T, bin, id, dir, token string, args ...string) *replica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	work := t.TempDir()
	r := &replica{id: id, base: "http://" + addr, out: &dockertest.SyncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "run", "--dir", dir, "--poll", "1s", "--resync", "2s", "--listen", addr,
		"--data-dir", filepath.Join(work, "data"), "--cache-dir", filepath.Join(work, "cache"), "--api-token-file", token,
		"--rollout-timeout", "1m", "--log-format", "json")
	r.cmd.Args = append(r.cmd.Args, args...)
	r.cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("replica %s:\n%s", id, r.out.String())
		}
	})
	return r
}

// status returns the replica's role and leader, "" when it does not answer.
func (r *replica) status() (role, leader string) {
	resp, err := http.Get(r.base + "/api/v1/status")
	if err != nil {
		return "", ""
	}
	defer resp.Body.Close()
	var s struct{ Role, Leader string }
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return s.Role, s.Leader
}

func eventually(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
	}
}

// TestLeaderElection: of two replicas with --leader-elect, one holds the
// Lease and deploys, the other serves its status and refuses operations;
// the leader killed with SIGKILL while it rolls a change out is followed
// by the other, which finishes the rollout: one Deployment, the Service
// on the new spec, the Lease held by the new leader.
func TestLeaderElection(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	leaseNS := cp.Namespace(t, "lease")
	if _, err := cp.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeManifest(t, dir, s.text())
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("le-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	replicas := map[string]*replica{
		"a": startReplica(t, bin, "a", dir, leaseNS, cp.Kubeconfig, token),
		"b": startReplica(t, bin, "b", dir, leaseNS, cp.Kubeconfig, token),
	}
	ctx := context.Background()
	holder := func() string {
		l, err := cp.Client.CoordinationV1().Leases(leaseNS).Get(ctx, "maestro-sync", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	serving := func() string {
		svc, err := cp.Client.CoreV1().Services(s.namespace).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return svc.Spec.Selector[label.SpecHash]
	}
	h1 := workload(t, load(t, s.text()), "web").SpecHash
	eventually(t, "a leader deploying web", 90*time.Second, func() bool { return holder() != "" && serving() == h1 })
	lead := replicas[holder()]
	other := replicas[map[string]string{"a": "b", "b": "a"}[lead.id]]
	eventually(t, "both replicas telling their roles", 30*time.Second, func() bool {
		r1, l1 := lead.status()
		r2, l2 := other.status()
		return r1 == "leader" && l1 == lead.id && r2 == "follower" && l2 == lead.id
	})
	req, _ := http.NewRequest("POST", other.base+"/api/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer le-token")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("sync asked of the follower: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	// A change; the leader is killed once the new Deployment exists.
	s.logLevel = "debug"
	writeManifest(t, dir, s.text())
	h2 := workload(t, load(t, s.text()), "web").SpecHash
	eventually(t, "the rollout of the change to start", 60*time.Second, func() bool {
		_, err := cp.Client.AppsV1().Deployments(s.namespace).Get(ctx, kube.WorkloadName("web", h2), metav1.GetOptions{})
		return err == nil
	})
	started := serving() == h1
	if err := lead.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-lead.done
	t.Logf("killed the leader %s with the Service still on the old pods: %v", lead.id, started)
	eventually(t, "the other replica to lead and finish the rollout", 90*time.Second, func() bool {
		return holder() == other.id && serving() == h2
	})
	eventually(t, "one Deployment and one ConfigMap of web", 60*time.Second, func() bool {
		sel := metav1.ListOptions{LabelSelector: label.Service + "=web"}
		deps, err1 := cp.Client.AppsV1().Deployments(s.namespace).List(ctx, sel)
		cms, err2 := cp.Client.CoreV1().ConfigMaps(s.namespace).List(ctx, sel)
		if err1 != nil || err2 != nil || len(deps.Items) != 1 || deps.Items[0].Name != kube.WorkloadName("web", h2) {
			return false
		}
		n := 0
		for _, cm := range cms.Items {
			if strings.HasPrefix(cm.Name, "web-") {
				n++
			}
		}
		return n == 1
	})
	if role, leader := other.status(); role != "leader" || leader != other.id {
		t.Errorf("the new leader says %s, led by %s", role, leader)
	}

	// A pause asked of this leader holds under the next one.
	req, _ = http.NewRequest("POST", other.base+"/api/v1/environments/shop/pause?reason=incident", nil)
	req.Header.Set("Authorization", "Bearer le-token")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pause: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	third := startReplica(t, bin, "c", dir, leaseNS, cp.Kubeconfig, token)
	eventually(t, "the third replica following", 30*time.Second, func() bool { r, _ := third.status(); return r == "follower" })
	if err := other.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-other.done
	eventually(t, "the third replica leading, the environment still paused", 60*time.Second, func() bool {
		if holder() != third.id {
			return false
		}
		resp, err := http.Get(third.base + "/api/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Environments []struct{ Name, State string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return len(st.Environments) == 1 && st.Environments[0].State == "paused"
	})
	s.logLevel = "warn"
	writeManifest(t, dir, s.text())
	time.Sleep(5 * time.Second) // polls and resyncs of a paused environment
	if got := serving(); got != h2 {
		t.Errorf("a paused environment was deployed by the new leader: %s", got)
	}
}

// TestSelfHeal: with a resync of 10 minutes, the daemon repairs what is
// changed on the cluster as soon as its watches tell of it: kubectl
// scale, a deleted ConfigMap, an image set by hand; each counted as drift.
func TestSelfHeal(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	d := startShopDaemon(t, s, "heal", "--resync", "10m")
	ctx := context.Background()
	web := workload(t, load(t, s.text()), "web")
	name, cmName := kube.WorkloadName("web", web.SpecHash), kube.ConfigMapName("web", web.SpecHash)
	deps := cp.Client.AppsV1().Deployments(s.namespace)
	eventually(t, "web deployed", 90*time.Second, func() bool {
		dep, err := deps.Get(ctx, name, metav1.GetOptions{})
		return err == nil && dep.Status.AvailableReplicas == 2 && dep.Annotations[label.TemplateDigest] != ""
	})
	time.Sleep(2 * time.Second) // past the quiet time after the run
	healed := func(what string, ok func() bool) {
		t.Helper()
		start := time.Now()
		eventually(t, what+" repaired", 30*time.Second, ok)
		t.Logf("%s repaired in %s", what, time.Since(start).Round(10*time.Millisecond))
		time.Sleep(2 * time.Second)
	}

	cp.Kubectl(t, "-n", s.namespace, "scale", "deployment/"+name, "--replicas", "4")
	healed("kubectl scale", func() bool {
		dep, err := deps.Get(ctx, name, metav1.GetOptions{})
		return err == nil && *dep.Spec.Replicas == 2
	})

	if err := cp.Client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, cmName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	healed("a deleted configmap", func() bool {
		_, err := cp.Client.CoreV1().ConfigMaps(s.namespace).Get(ctx, cmName, metav1.GetOptions{})
		return err == nil
	})

	cp.Kubectl(t, "-n", s.namespace, "set", "image", "deployment/"+name, "web=nginx:by-hand")
	healed("kubectl set image", func() bool {
		dep, err := deps.Get(ctx, name, metav1.GetOptions{})
		return err == nil && dep.Spec.Template.Spec.Containers[0].Image == web.Image
	})
	eventually(t, "three drifts counted", 10*time.Second, func() bool {
		return metric(t, d.base, `maestro_sync_drift_detected_total{env="shop"}`) == 3
	})
}

// startShopDaemon starts a daemon (startDaemon) deploying the shop s from
// a directory of its own.
func startShopDaemon(t *testing.T, s shop, id string, args ...string) *replica {
	t.Helper()
	dir := t.TempDir()
	writeManifest(t, dir, s.text())
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte(id+"-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, buildBinary(t), id, dir, token, args...)
}

// metric reads one unlabelled or labelled sample of the daemon's
// metrics (the line's name and labels exactly), -1 when absent.
func metric(t *testing.T, base, sample string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// TestDaemonNoOpMakesNoRequests: a daemon whose cluster services are in
// sync reconciles (every 2 s here) from its watches' cache and takes no
// lock: its reconciles send no request to the apiserver.
func TestDaemonNoOpMakesNoRequests(t *testing.T) {
	cp := kubetest.Start(t)
	s := newShop(t, cp)
	d := startShopDaemon(t, s, "noop")
	web := workload(t, load(t, s.text()), "web")
	eventually(t, "web deployed", 90*time.Second, func() bool {
		dep, err := cp.Client.AppsV1().Deployments(s.namespace).Get(context.Background(), kube.WorkloadName("web", web.SpecHash), metav1.GetOptions{})
		return err == nil && dep.Status.AvailableReplicas == 2
	})
	const runs, requests = `maestro_sync_reconcile_runs_total{result="success"}`, "maestro_sync_kube_api_requests_total"
	// The run that deployed ends and the watches sync: wait until two
	// runs in a row sent nothing.
	eventually(t, "the runs after the deploy", 60*time.Second, func() bool {
		r, n := metric(t, d.base, runs), metric(t, d.base, requests)
		for i := 0; metric(t, d.base, runs) < r+2 && i < 100; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		return metric(t, d.base, requests) == n
	})
	runs1, req1 := metric(t, d.base, runs), metric(t, d.base, requests)
	time.Sleep(7 * time.Second)
	runs2, req2 := metric(t, d.base, runs), metric(t, d.base, requests)
	if runs1 < 1 || runs2 < runs1+2 {
		t.Fatalf("successful runs %v, then %v: want at least two more no-op runs", runs1, runs2)
	}
	if req1 <= 0 || req2 != req1 {
		t.Errorf("kube API requests %v before %v no-op runs, %v after: want none sent by them", req1, runs2-runs1, req2)
	}
	t.Logf("%v no-op runs, %v kube API requests in all so far", runs2-runs1, req2)
}
