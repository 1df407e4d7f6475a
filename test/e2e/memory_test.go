package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// Memory benchmark sizes: services of one instance each, spread over
// ships real dockerd ships.
const (
	memServices = 1000
	memShips    = 10
	memRuns     = 1000
)

// BenchmarkDaemonMemory measures the resident memory of a `maestro-sync
// run` process that tracks 1,000 services on 10 real dockerd ships,
// connections and event streams included: once it is in sync and idle
// (its status and metrics read now and then), and after 1,000 more
// reconciles, each a no-op asked for through the API. The containers are
// deployed beforehand by `maestro-sync apply`, so the figures are those of
// a daemon started over a fleet in sync.
//
//	go test -run '^$' -bench DaemonMemory -benchtime 1x -timeout 60m ./test/e2e/
//
// The resident set moves as the daemon trims its memory (half a second
// after its runs stop, and every minute, see internal/procmem) and pages
// come back as they are used, so each figure is the highest of a sample
// every second over 65 s, from two seconds after the last run ended:
// rss-MiB when idle after the first run (with its private part, anon-MiB,
// and its mapped pages of the binary, file-MiB, at that moment),
// rss-after-MiB idle after the reconciles (anon-after-MiB and
// file-after-MiB likewise), and growth-% from one to the other.
func BenchmarkDaemonMemory(b *testing.B) {
	ships := dockertest.StartShips(b, memShips)
	b.Cleanup(func() {
		// Before the ships stop, which would give their thousand
		// containers too little time.
		var wg sync.WaitGroup
		for _, s := range ships {
			wg.Go(func() { s.RemoveAll(b) })
		}
		wg.Wait()
	})
	dir := b.TempDir()
	var text strings.Builder
	text.WriteString("__maestro: {schema: 2}\nname: mem\nships:\n")
	for i, s := range ships {
		fmt.Fprintf(&text, "  s%d: {ip: %s, socket_path: %s, timeout: 60}\n", i, s.IP, s.Socket)
	}
	text.WriteString("services:\n")
	for s := range memServices {
		fmt.Fprintf(&text, "  svc%d:\n    image: %s\n    env: {LOG_LEVEL: info, SERVICE: svc%d}\n", s, dockertest.Busybox1, s)
		fmt.Fprintf(&text, "    instances:\n      mem-svc%d: {ship: s%d, stop_timeout: 1, command: [sleep, \"1000000\"]}\n", s, s%memShips)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(text.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	bin := binary(b)
	start := time.Now()
	if out, err := exec.Command(bin, "apply", "-c", "32", dir).CombinedOutput(); err != nil {
		b.Fatalf("apply: %v\n%s", err, tail(string(out), 40))
	}
	b.Logf("%d containers on %d ships deployed in %s", memServices, memShips, time.Since(start).Round(time.Second))

	for b.Loop() {
		d := startDaemon(b, b.TempDir(), "--dir", dir, "--poll", "1h", "--resync", "10m")
		pid := d.cmd.Process.Pid
		waitFor(b, "in sync", 5*time.Minute, func() bool { st, _, _ := d.env("mem"); return st == "synced" && d.status().LastResult != "" })
		// Idle begins once the runs have stopped: the daemon trims its
		// memory half a second after the last one ended.
		time.Sleep(2 * time.Second)
		// highest samples the resident set every second for 65 s,
		// reading the status and metrics every 15 s as a dashboard and
		// a Prometheus would, and returns the highest sample.
		highest := func() memory {
			var top memory
			for i := range 65 {
				if i%15 == 0 {
					d.status()
					d.metrics()
				}
				if m := procMemory(b, pid); m.rss > top.rss {
					top = m
				}
				time.Sleep(time.Second)
			}
			return top
		}
		idle := highest()
		idleRuntime := runtimeMemory(d.metrics())
		b.Logf("idle: %+v (runtime: %s)", idle, idleRuntime)

		from := d.successes()
		for i := range memRuns {
			// The API takes 5 requests a second.
			time.Sleep(200 * time.Millisecond)
			d.sync()
			waitFor(b, fmt.Sprint("reconcile ", i+1), time.Minute, func() bool { return d.successes() > from+i })
		}
		time.Sleep(2 * time.Second) // idle again, as above
		after := highest()
		b.Logf("after %d reconciles: %+v (runtime: %s)", memRuns, after, runtimeMemory(d.metrics()))
		if st, _, errs := d.env("mem"); st != "synced" {
			b.Fatalf("after the reconciles: %s %v", st, errs)
		}
		b.ReportMetric(idle.rss, "rss-MiB")
		b.ReportMetric(idle.anon, "anon-MiB")
		b.ReportMetric(idle.file, "file-MiB")
		b.ReportMetric(after.rss, "rss-after-MiB")
		b.ReportMetric(after.anon, "anon-after-MiB")
		b.ReportMetric(after.file, "file-after-MiB")
		b.ReportMetric(100*(after.rss-idle.rss)/idle.rss, "growth-%")
		d.stop()
	}
}

// successes is the number of successful runs the daemon counted.
func (d *daemonProc) successes() int {
	for line := range strings.Lines(d.metrics()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), `maestro_sync_reconcile_runs_total{result="success"} `); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// sync asks the daemon for a run through POST /api/v1/sync.
func (d *daemonProc) sync() {
	token, err := os.ReadFile(d.token)
	if err != nil {
		d.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", d.base+"/api/v1/sync", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		d.t.Fatalf("POST /api/v1/sync: %s", resp.Status)
	}
}

// memory is a process's resident memory in MiB.
type memory struct{ rss, anon, file float64 }

// procMemory reads VmRSS, RssAnon and RssFile of process pid.
func procMemory(t testing.TB, pid int) memory {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m memory
	for line := range strings.Lines(string(data)) {
		key, value, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		switch key {
		case "VmRSS":
			m.rss = kb / 1024
		case "RssAnon":
			m.anon = kb / 1024
		case "RssFile":
			m.file = kb / 1024
		}
	}
	return m
}

// runtimeMemory picks the Go runtime's memory figures out of the
// daemon's metrics.
func runtimeMemory(metrics string) string {
	var out []string
	for line := range strings.Lines(metrics) {
		for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
				out = append(out, name+"="+v)
			}
		}
	}
	return strings.Join(out, " ")
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
