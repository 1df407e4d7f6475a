package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

// benchRound numbers the rounds of every run of the benchmark in this
// process (go test -count runs it several times), naming fresh namespaces.
var benchRound atomic.Int64

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchManifest is an environment of n cluster services, each a
// Deployment of one replica with one port and two env variables: 3n
// objects (ConfigMap, Deployment, Service).
func benchManifest(kubeconfig, ns string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: bench\nclusters:\n  kc:\n    kubeconfig: %s\n    namespace: %s\nservices:\n", kubeconfig, ns)
	for i := range n {
		fmt.Fprintf(&b, "  s%03d:\n    image: registry.example/app:1\n    cluster: kc\n    ports:\n      http: 8080\n    env:\n      INDEX: %d\n      MODE: bench\n", i, i)
	}
	return b.String()
}

// BenchmarkApply500 applies about 500 objects (BENCH_KUBE_SERVICES
// services, default 167, × ConfigMap, Deployment, Service) with the kube
// driver (observe, plan, apply with BENCH_KUBE_CONCURRENCY steps at once,
// default 16, each waiting for its rollout), and the very same objects
// with `kubectl apply --server-side`, then `kubectl wait` for the
// Deployments to be Available, against the same apiserver, alternating
// which goes first. It also times the no-op second run of each. bench/kube.sh
// runs it and writes bench/results-kube.txt.
func BenchmarkApply500(b *testing.B) {
	cp := kubetest.Start(b)
	n := benchEnv("BENCH_KUBE_SERVICES", 167)
	conc := benchEnv("BENCH_KUBE_CONCURRENCY", 16)
	ctx := context.Background()
	var drv, drvNoop, watchFirst, watchNoop, kApply, kWait, kNoop time.Duration
	var watchRequests int64
	for range b.N {
		b.StopTimer()
		round := benchRound.Add(1)
		nsD := fmt.Sprintf("bench-drv-%d-%d", os.Getpid()%100000, round)
		nsK := fmt.Sprintf("bench-kubectl-%d-%d", os.Getpid()%100000, round)
		text := benchManifest(cp.Kubeconfig, nsD, n)
		repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(text)}}, manifest.Options{})
		if err := repo.Err(); err != nil {
			b.Fatal(err)
		}
		envs := repo.Environments
		yaml := benchYAML(b, envs[0], nsK)
		file := filepath.Join(b.TempDir(), "objects.yaml")
		if err := os.WriteFile(file, yaml, 0o644); err != nil {
			b.Fatal(err)
		}

		runDriver := func() (time.Duration, int) {
			start := time.Now()
			pool := NewPool()
			if qps := benchEnv("BENCH_KUBE_QPS", 0); qps > 0 {
				pool.QPS, pool.Burst = float32(qps), 2*qps
			}
			state := &live.State{Clusters: pool.Observe(ctx, envs)}
			p := diff.Compute(envs, state, diff.Options{Revision: "bench"})
			d := NewDriver(pool, envs, "bench")
			d.RolloutTimeout = 5 * time.Minute
			res := apply.Run(ctx, p, d, apply.Options{Concurrency: conc})
			took := time.Since(start)
			if err := res.Err(); err != nil {
				b.Fatal(err)
			}
			return took, len(p.Mutating())
		}
		runKubectl := func() {
			start := time.Now()
			if _, err := cp.KubectlErr(ctx, nil, "apply", "--server-side", "--field-manager=kubectl-bench", "-f", file); err != nil {
				b.Fatal(err)
			}
			kApply += time.Since(start)
			if _, err := cp.KubectlErr(ctx, nil, "-n", nsK, "wait", "--for=condition=Available", "deployment", "--all", "--timeout=5m"); err != nil {
				b.Fatal(err)
			}
			kWait += time.Since(start)
		}
		b.StartTimer()
		if round%2 == 1 {
			took, steps := runDriver()
			drv += took
			if steps != n {
				b.Fatalf("the driver applied %d steps, want %d", steps, n)
			}
			runKubectl()
		} else {
			runKubectl()
			took, _ := runDriver()
			drv += took
		}
		// No-op second runs.
		took, steps := runDriver()
		if steps != 0 {
			b.Fatalf("the second run applied %d steps", steps)
		}
		drvNoop += took
		// The no-op run of a daemon, which follows the namespace: from
		// the watches' cache, counting the API requests it makes.
		first, took, requests := noopWatched(b, envs)
		watchFirst += first
		watchNoop += took
		watchRequests += requests
		start := time.Now()
		if _, err := cp.KubectlErr(ctx, nil, "apply", "--server-side", "--field-manager=kubectl-bench", "-f", file); err != nil {
			b.Fatal(err)
		}
		kNoop += time.Since(start)
		b.StopTimer()
		for _, ns := range []string{nsD, nsK} {
			deps, err := cp.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil || len(deps.Items) != n {
				b.Fatalf("namespace %s holds %d deployments (%v), want %d", ns, len(deps.Items), err, n)
			}
			_ = cp.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		}
		// The next round starts on a quiet cluster.
		for _, ns := range []string{nsD, nsK} {
			deadline := time.Now().Add(5 * time.Minute)
			for {
				_, err := cp.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if apierrors.IsNotFound(err) || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Second)
			}
		}
		b.StartTimer()
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(float64(3*n), "objects")
	b.ReportMetric(per(drv), "driver-s")
	b.ReportMetric(per(kApply), "kubectl-apply-s")
	b.ReportMetric(per(kWait), "kubectl-apply+wait-s")
	b.ReportMetric(drv.Seconds()/kApply.Seconds(), "ratio-vs-apply")
	b.ReportMetric(drv.Seconds()/kWait.Seconds(), "ratio-vs-apply+wait")
	b.ReportMetric(per(drvNoop), "driver-noop-s")
	b.ReportMetric(per(kNoop), "kubectl-noop-s")
	b.ReportMetric(per(watchFirst), "driver-noop-watched-first-s")
	b.ReportMetric(per(watchNoop), "driver-noop-watched-s")
	b.ReportMetric(float64(watchRequests)/float64(b.N), "driver-noop-watched-requests")
}

// noopWatched times observe + plan of envs, already applied, by a pool
// that follows their cluster namespace (as the daemon does), once its
// watches are synced: the first such run, which computes what it reads of
// each workload, and the median of the next 9 (a daemon's reconciles
// after its first). requests counts the API requests all of them made.
func noopWatched(b *testing.B, envs []*manifest.Environment) (first, median time.Duration, requests int64) {
	pool := NewPool()
	var cl *manifest.Cluster
	for _, c := range envs[0].Clusters {
		cl = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		pool.Follow(ctx, cl, "", func(live.Change) {})
	}()
	defer func() { cancel(); <-followed }()
	for deadline := time.Now().Add(time.Minute); !pool.Watching(cl); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the watches did not sync in a minute")
		}
	}
	before := pool.Requests()
	var took []time.Duration
	for range 10 {
		start := time.Now()
		state := &live.State{Clusters: pool.ObserveCached(ctx, envs)}
		p := diff.Compute(envs, state, diff.Options{Revision: "bench"})
		took = append(took, time.Since(start))
		if n := len(p.Mutating()); n != 0 {
			b.Fatalf("the watched no-op run planned %d steps", n)
		}
	}
	rest := took[1:]
	slices.Sort(rest)
	return took[0], rest[len(rest)/2], pool.Requests() - before
}

// benchYAML renders the objects the driver applies for env, in namespace
// ns, as one multi-document stream (JSON documents) for kubectl.
func benchYAML(b *testing.B, env *manifest.Environment, ns string) []byte {
	var out bytes.Buffer
	write := func(v any) {
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(data)
		out.WriteString("\n")
	}
	write(&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, svc := range env.Services {
		d := &desired{env: env.Name, service: svc.Name, revision: "bench", namespace: ns, w: svc.Workload, progressDeadline: 5 * time.Minute}
		dep, err := d.deployment()
		if err != nil {
			b.Fatal(err)
		}
		s, err := d.serviceObject()
		if err != nil {
			b.Fatal(err)
		}
		write(d.configMap())
		write(dep)
		write(s)
	}
	return out.Bytes()
}
