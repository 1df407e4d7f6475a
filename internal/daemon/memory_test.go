package daemon

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleMemory measures the memory of a daemon that tracks 1,000
// services (2,000 instances on 4 ships) once everything is in sync and it
// only polls: the Go heap in use and the process RSS (VmRSS), after a GC.
// The target is the in-memory one of the unit tests, so the figure is the
// daemon's own state (manifests, plans, status, metrics), without Docker
// client connections.
func BenchmarkIdleMemory(b *testing.B) {
	var text strings.Builder
	text.WriteString("__maestro: {schema: 2}\nname: big\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n")
	for s := range 1000 {
		fmt.Fprintf(&text, "  svc%d:\n    image: registry.example.com/svc%d:1\n    env: {LOG_LEVEL: info, JAVA_OPTS: [-Xmx256m]}\n", s, s)
		if s >= 5 {
			fmt.Fprintf(&text, "    requires: [svc%d]\n", s%5)
		}
		text.WriteString("    instances:\n")
		for i := range 2 {
			fmt.Fprintf(&text, "      svc%d-%d: {ship: s1, restart: always, ports: {http: \"8080:%d\"}}\n", s, i, 10000+2*s+i)
		}
	}
	manifest := text.String()
	for b.Loop() {
		src := &fakeSource{}
		src.set("rev1", map[string]string{"big/manifest.yml": manifest})
		tgt := newFakeTarget()
		d := New(Config{Source: src, Target: tgt, Poll: 50 * time.Millisecond, Resync: time.Hour})
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = d.Run(ctx) }()
		deadline := time.Now().Add(2 * time.Minute)
		for d.Status().LastResult == "" || len(d.Status().Environments) == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("no reconcile: %+v", d.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if es := d.Status().Environments[0]; es.State != "synced" || len(es.Instances) != 2000 {
			b.Fatalf("not synced: %s %v %d", es.State, es.Errors, len(es.Instances))
		}
		time.Sleep(300 * time.Millisecond) // several idle polls
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(rssMiB(), "rss-MiB")
		cancel()
		<-done
	}
}

// rssMiB reads the resident set size of this process.
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}
