package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// routedManifest is one routed instance behind the front proxy. Its shell
// ignores SIGTERM, so that stopping it takes stop_timeout; /cgi-bin/slow
// answers after 8 s.
const routedManifest = `__maestro: {schema: 2}
name: swap
ships:
  s1: {ip: %s, socket_path: %s, timeout: 20}
proxy: {image: maestro-test/caddy:2, http: 18190}
services:
  app:
    image: maestro-test/busybox:1
    env: {VERSION: "%s"}
    ports: {http: "8080:8080"}
    proxy: {health: /up, drain: 30s}
    lifecycle:
      running: [{type: sleep, wait: %d}]
    instances:
      app-1:
        ship: s1
        stop_timeout: 6
        command:
          - sh
          - -c
          - >-
            trap "" TERM;
            mkdir -p /www/cgi-bin && echo "$VERSION" > /www/index.html && echo ok > /www/up &&
            printf "#!/bin/sh\nsleep 8\necho Content-Type: text/plain\necho\necho slow\n" > /www/cgi-bin/slow &&
            chmod +x /www/cgi-bin/slow && httpd -f -p 8080 -h /www & wait
`

func writeRouted(t *testing.T, dir string, ship *dockertest.Ship, version string, wait int) {
	t.Helper()
	text := fmt.Sprintf(routedManifest, ship.IP, ship.Socket, version, wait)
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// requestLoop GETs url every 10 ms until stop, counting what fails; every
// other request opens a new connection, as browsers and curl loops do.
type requestLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	first      []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startRequests(url string) *requestLoop {
	l := &requestLoop{stop: make(chan struct{})}
	keep := &http.Client{Timeout: 10 * time.Second}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	l.wg.Go(func() {
		for i := 0; ; i++ {
			client := keep
			if i%2 == 1 {
				client = fresh
			}
			select {
			case <-l.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			resp, err := client.Get(url)
			msg := ""
			if err != nil {
				msg = err.Error()
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					msg = resp.Status
				}
			}
			if msg == "" {
				l.ok.Add(1)
				continue
			}
			l.failed.Add(1)
			l.mu.Lock()
			if len(l.first) < 5 {
				l.first = append(l.first, msg)
			}
			l.mu.Unlock()
		}
	})
	return l
}

func (l *requestLoop) end() (ok, failed int64, first []string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.first
}

// TestKillDuringProxiedSwap kills apply at each phase of a proxied swap
// (before the switch, while draining, while the old container stops, and
// once it is gone), then applies again: the next apply converges, the
// proxy routes to exactly one healthy container, and no request through
// the proxy failed at any time.
func TestKillDuringProxiedSwap(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct {
		name, phase string
		wait        int  // running sleep check of the new version
		slow        bool // a slow request in flight at the switch
		removeOld   bool // the old container is gone when apply resumes
	}{
		{name: "before the switch", phase: "checking sleep", wait: 60},
		{name: "while draining", phase: "draining", slow: true},
		{name: "while the old container stops", phase: "stopping the old container"},
		{name: "after the old container went", phase: "stopping the old container", removeOld: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ship := dockertest.Shared(t, 1)[0]
			ship.RemoveAll(t)
			t.Cleanup(func() { ship.RemoveAll(t) })
			dir := t.TempDir()
			writeRouted(t, dir, ship, "1", 0)
			if out, err := run(t, bin, "apply", dir); err != nil {
				t.Fatalf("first apply: %v\n%s", err, out)
			}
			url := "http://" + ship.IP + ":18190/"
			loop := startRequests(url)
			if tc.slow {
				go func() { _, _ = http.Get(url + "cgi-bin/slow") }()
				time.Sleep(300 * time.Millisecond)
			}
			writeRouted(t, dir, ship, "2", tc.wait)
			// A short lock TTL: the next apply takes over the locks of the
			// killed one after 5 s.
			cmd := exec.Command(bin, "apply", "--lock-ttl", "5s", dir)
			var out dockertest.SyncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(out.String(), tc.phase) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(out.String(), tc.phase) {
				t.Fatalf("apply never reached %q:\n%s", tc.phase, out.String())
			}
			time.Sleep(200 * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if tc.removeOld {
				ship.Docker(t, "rm", "-f", "app-1")
			}

			writeRouted(t, dir, ship, "2", 0)
			if out, err := run(t, bin, "apply", dir); err != nil {
				t.Fatalf("apply after the kill: %v\n%s", err, out)
			}
			time.Sleep(500 * time.Millisecond)
			ok, failed, first := loop.end()
			t.Logf("requests through the proxy: %d ok, %d failed", ok, failed)
			if failed != 0 || ok == 0 {
				t.Errorf("%d requests failed (first: %v), %d succeeded", failed, first, ok)
			}
			names := strings.Fields(ship.Docker(t, "ps", "-a", "--format", "{{.Names}}"))
			// The replaced container is kept stopped for a rollback.
			names = slices.DeleteFunc(names, func(n string) bool { return strings.HasPrefix(n, "app-1.prev-") })
			slices.Sort(names)
			if !slices.Equal(names, []string{"app-1", "maestro-sync-proxy"}) {
				t.Fatalf("containers after recovery: %v, want app-1 and the proxy", names)
			}
			state := ship.Docker(t, "inspect", "-f", `{{.State.Running}} {{index .Config.Labels "io.maestro-sync/upstream"}} {{range .Config.Env}}{{println .}}{{end}}`, "app-1")
			fields := strings.Fields(state)
			if len(fields) < 2 || fields[0] != "true" || !strings.Contains(state, "VERSION=2") {
				t.Fatalf("app-1 after recovery: %s", state)
			}
			slots, raw := routeSlots(t, ship)
			if len(slots) != 1 || len(slots[0]) != 1 || slots[0]["app-1"] != fields[1] {
				t.Errorf("route table after recovery: %s; want one route to %s", raw, fields[1])
			}
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(body)) != "2" {
				t.Errorf("through the proxy after recovery: %q", body)
			}
			if out, err := run(t, bin, "plan", dir); err != nil || !strings.Contains(out, "0 to create, 0 to replace, 0 to remove, 1 unchanged") {
				t.Errorf("plan after recovery: %v\n%s", err, out)
			}
		})
	}
}

// routeSlots reads the proxy's route table on the ship: the slots of each
// route (instance → upstream), and the table as it is written.
func routeSlots(t *testing.T, ship *dockertest.Ship) ([]map[string]string, string) {
	t.Helper()
	var table struct {
		Routes []struct{ Slots map[string]string }
	}
	raw := ship.Docker(t, "exec", "maestro-sync-proxy", "cat", "/etc/maestro-sync/routes.json")
	if err := json.Unmarshal([]byte(raw), &table); err != nil {
		t.Fatalf("route table: %v\n%s", err, raw)
	}
	var out []map[string]string
	for _, r := range table.Routes {
		out = append(out, r.Slots)
	}
	return out, raw
}

func getBody(url string) string {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body))
}

// TestRollback: after a good deploy, rollback serves the previous version
// at once with no failed request, the environment is then held (plan
// says it is rolled back and plans nothing), and a change of the source
// deploys again.
func TestRollback(t *testing.T) {
	bin := binary(t)
	ship := dockertest.Shared(t, 1)[0]
	ship.RemoveAll(t)
	t.Cleanup(func() { ship.RemoveAll(t) })
	dir := t.TempDir()
	url := "http://" + ship.IP + ":18190/"
	for _, v := range []string{"1", "2"} {
		writeRouted(t, dir, ship, v, 0)
		if out, err := run(t, bin, "apply", dir); err != nil {
			t.Fatalf("apply %s: %v\n%s", v, err, out)
		}
	}
	if got := getBody(url); got != "2" {
		t.Fatalf("before the rollback: %q", got)
	}
	kept := ship.Docker(t, "ps", "-a", "--filter", "name=app-1.prev-", "--format", "{{.Names}} {{.State}}")
	if !strings.HasSuffix(kept, "exited") || strings.Count(kept, "\n") != 0 {
		t.Fatalf("kept containers: %q, want one, stopped", kept)
	}
	// A plan does not count the kept container as drift or a leftover.
	if out, err := run(t, bin, "plan", "--prune", dir); err != nil || !strings.Contains(out, "0 to create, 0 to replace, 0 to remove, 1 unchanged") {
		t.Fatalf("plan with a kept container: %v\n%s", err, out)
	}

	loop := startRequests(url)
	served := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		for time.Since(start) < 30*time.Second {
			if getBody(url) == "1" {
				served <- time.Since(start)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		served <- -1
	}()
	out, err := run(t, bin, "rollback", dir)
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	took := <-served
	time.Sleep(300 * time.Millisecond)
	ok, failed, first := loop.end()
	t.Logf("rollback: the previous version served after %s; command took %s; requests %d ok, %d failed", took, time.Since(start), ok, failed)
	// The 2 s target is measured by make bench; here a bound that only a
	// rollback that pulls, builds or waits on something would pass.
	if took < 0 || took > 10*time.Second {
		t.Errorf("the previous version served after %s, want within seconds", took)
	}
	if failed != 0 {
		t.Errorf("%d requests failed during the rollback: %v", failed, first)
	}
	if got := getBody(url); got != "1" {
		t.Errorf("after the rollback: %q", got)
	}

	out, err = run(t, bin, "plan", dir)
	if err != nil || !strings.Contains(out, "(rolled back)") || !strings.Contains(out, "0 to create, 0 to replace, 0 to remove") {
		t.Errorf("plan after the rollback: %v\n%s", err, out)
	}
	if out, err := run(t, bin, "apply", dir); err != nil || getBody(url) != "1" {
		t.Errorf("apply after the rollback undid it (serves %q): %v\n%s", getBody(url), err, out)
	}
	// A new desired state deploys again.
	writeRouted(t, dir, ship, "3", 0)
	if out, err := run(t, bin, "apply", dir); err != nil {
		t.Fatalf("apply 3: %v\n%s", err, out)
	}
	if got := getBody(url); got != "3" {
		t.Errorf("after a new deploy: %q", got)
	}
}

// TestRoutedVerbs: behind the front proxy, restart is a swap (no request
// fails, and the old container is kept for a rollback), and stop takes
// the instance out of the proxy and lets a request in flight finish
// before the container stops; start brings it back.
func TestRoutedVerbs(t *testing.T) {
	bin := binary(t)
	ship := dockertest.Shared(t, 1)[0]
	ship.RemoveAll(t)
	t.Cleanup(func() { ship.RemoveAll(t) })
	dir := t.TempDir()
	url := "http://" + ship.IP + ":18190/"
	writeRouted(t, dir, ship, "1", 0)
	if out, err := run(t, bin, "apply", dir); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	id := func() string { return strings.TrimSpace(ship.Docker(t, "inspect", "-f", "{{.Id}}", "app-1")) }
	before := id()

	loop := startRequests(url)
	out, err := run(t, bin, "restart", dir, "app-1")
	time.Sleep(300 * time.Millisecond)
	ok, failed, first := loop.end()
	t.Logf("restart: %d requests ok, %d failed", ok, failed)
	if err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	if failed != 0 || ok == 0 {
		t.Errorf("restart of a routed instance: %d requests failed (first: %v), %d ok\n%s", failed, first, ok, out)
	}
	if after := id(); after == before {
		t.Errorf("restart left the same container %s", before)
	}
	if kept := ship.Docker(t, "ps", "-a", "--filter", "id="+before, "--format", "{{.Names}} {{.State}}"); !strings.HasPrefix(kept, "app-1.prev-") || !strings.HasSuffix(kept, "exited") {
		t.Errorf("the restarted container: %q, want it kept stopped", kept)
	}

	// A request that takes 8 s is in flight when stop runs.
	slow := make(chan string, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url + "cgi-bin/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		slow <- strings.TrimSpace(string(body))
	}()
	time.Sleep(500 * time.Millisecond)
	out, err = run(t, bin, "stop", dir, "app-1")
	if err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if got := <-slow; got != "slow" {
		t.Errorf("the request in flight during stop got %q, want it answered", got)
	}
	if state := strings.TrimSpace(ship.Docker(t, "inspect", "-f", "{{.State.Running}}", "app-1")); state != "false" {
		t.Errorf("app-1 after stop: running %s", state)
	}
	slots, raw := routeSlots(t, ship)
	for _, route := range slots {
		if route["app-1"] != "" {
			t.Errorf("the stopped instance is still served by the proxy:\n%s", raw)
		}
	}

	if out, err := run(t, bin, "start", dir, "app-1"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if got := getBody(url); got != "1" {
		t.Errorf("after start: %q", got)
	}
}
