package docker_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// routedApp is a routed service on two ships behind the front proxy.
// %GEN% is served at / and by a CGI script that answers after 3 s at
// /cgi-bin/slow; %UP% is the health path's file (a replacement without it
// never becomes healthy).
const routedApp = `__maestro: {schema: 2}
name: px
%SHIPS%
proxy: {image: maestro-test/caddy:2, http: 18090}
services:
  web:
    image: maestro-test/busybox:1
    env: {GEN: "%GEN%"}
    ports: {http: "8080:8080"}
    proxy: {hosts: [shop.test], health: /up, health_timeout: 4s, drain: 20s}
    instances:
      web-1:
        ship: s1
        stop_timeout: 1
        command: [sh, -c, '%CMD%']
      web-2:
        ship: s2
        stop_timeout: 1
        command: [sh, -c, '%CMD%']
`

const routedCmd = `mkdir -p /www/cgi-bin && echo "$GEN" > /www/index.html && %UP% ` +
	`printf "#!/bin/sh\nsleep 3\necho Content-Type: text/plain\necho\necho slow $GEN\n" > /www/cgi-bin/slow && ` +
	`chmod +x /www/cgi-bin/slow && exec httpd -f -p 8080 -h /www`

func newRouted(t *testing.T) *fixture {
	f := newFixture(t)
	for _, s := range f.ships {
		s.RemoveAll(t)
	}
	t.Cleanup(func() {
		for _, s := range f.ships {
			s.RemoveAll(t)
		}
	})
	f.text = routedApp
	f.vars["%SHIPS%"] = shipsYAML(f.ships[:2])
	f.vars["%GEN%"] = "gen-0"
	f.vars["%CMD%"] = strings.ReplaceAll(routedCmd, "%UP%", "echo ok > /www/up &&")
	return f
}

// loop requests / through the proxies of the ships every 10 ms until
// stopped, counting failures (anything but 200).
type loop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	bodies     map[string]int
	stop       chan struct{}
	done       sync.WaitGroup
}

func startLoop(t *testing.T, ships []*dockertest.Ship) *loop {
	var urls []string
	for _, s := range ships {
		urls = append(urls, "http://"+s.IP+":18090/")
	}
	return startLoopOn(t, urls, &http.Transport{})
}

// startLoopOn requests each of urls, for the host shop.test, through
// clients made from transport.
func startLoopOn(t *testing.T, urls []string, transport *http.Transport) *loop {
	l := &loop{bodies: map[string]int{}, stop: make(chan struct{})}
	keep := &http.Client{Timeout: 10 * time.Second, Transport: transport}
	once := transport.Clone()
	once.DisableKeepAlives = true
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: once}
	for _, url := range urls {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := 0; ; i++ {
				// Every other request opens a new connection, as
				// browsers and curl loops do.
				client := keep
				if i%2 == 1 {
					client = fresh
				}
				select {
				case <-l.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = "shop.test"
				resp, err := client.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.fail(fmt.Sprintf("%s: status %d %q", url, resp.StatusCode, body))
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.bodies[strings.TrimSpace(string(body))]++
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *loop) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

func (l *loop) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

func (l *loop) check(t *testing.T) {
	t.Helper()
	l.end()
	t.Logf("requests: %d ok, %d failed; bodies %v", l.ok.Load(), l.failed.Load(), l.bodies)
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed, first: %v", l.failed.Load(), l.errs)
	}
	if l.ok.Load() == 0 {
		t.Errorf("no request succeeded")
	}
}

func viaProxy(t *testing.T, s *dockertest.Ship, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.IP+":18090"+path, nil)
	req.Host = "shop.test"
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s through the proxy of %s: %v", path, s.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestProxySwapHasNoFailedRequest(t *testing.T) {
	f := newRouted(t)
	_, res, _ := f.apply(false)
	if err := res.Err(); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	for _, s := range f.ships[:2] {
		if code, body := viaProxy(t, s, "/"); code != 200 || body != "gen-0" {
			out, _ := exec.Command("docker", "-H", s.Host, "logs", "--tail", "20", docker.ProxyName).CombinedOutput()
			t.Logf("logs: %s", out)
			out, _ = exec.Command("docker", "-H", s.Host, "exec", docker.ProxyName, "cat", "/etc/maestro-sync/routes.json").CombinedOutput()
			t.Logf("routes: %s", out)
			out, _ = exec.Command("docker", "-H", s.Host, "network", "inspect", "maestro-sync").CombinedOutput()
			t.Logf("net: %s", out)
			t.Fatalf("ship %s through the proxy: %d %q", s.Name, code, body)
		}
		// The routed port is not published on its fixed host port.
		if out := s.Docker(t, "port", "web-"+s.Name[len(s.Name)-1:]); strings.Contains(out, ":8080") {
			t.Errorf("the routed port is published on its fixed host port: %s", out)
		}
	}
	l := startLoop(t, f.ships[:2])
	// A request slower than the swap, started before it, completes
	// (drain): the old container stops only once it is answered.
	slow := make(chan string, 1)
	go func() {
		code, body := viaProxy(t, f.ships[0], "/cgi-bin/slow")
		slow <- fmt.Sprint(code, " ", body)
	}()
	time.Sleep(300 * time.Millisecond)
	for i := 1; i <= 10; i++ {
		f.vars["%GEN%"] = fmt.Sprintf("gen-%d", i)
		p, res, _ := f.apply(false)
		if err := res.Err(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		if s := p.Summary(); s.Replace != 2 {
			t.Fatalf("apply %d: plan %+v", i, s)
		}
		for _, st := range p.Steps {
			for _, w := range st.Warnings {
				if strings.Contains(w, "downtime") {
					t.Errorf("a routed replacement warns of downtime: %s", w)
				}
			}
		}
		if i == 1 {
			if got := <-slow; got != "200 slow gen-0" {
				t.Errorf("the slow request started before the swap got %q, want the old container's answer", got)
			}
		}
	}
	l.check(t)
	for _, s := range f.ships[:2] {
		if code, body := viaProxy(t, s, "/"); code != 200 || body != "gen-10" {
			t.Errorf("ship %s after 10 swaps: %d %q", s.Name, code, body)
		}
		if got := names(t, s); len(got) != 3 {
			t.Errorf("ship %s has %v: want the instance, the one kept for a rollback (keep: 1) and the proxy", s.Name, got)
		}
	}
	if p, _ := f.plan(false); p.Summary().Changes() != 0 {
		t.Errorf("plan after the swaps is not empty: %+v", p.Summary())
	}
}

func TestProxyFailedReplacementKeepsServing(t *testing.T) {
	f := newRouted(t)
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("first apply: %v", res.Err())
	}
	l := startLoop(t, f.ships[:2])
	f.vars["%GEN%"] = "broken"
	f.vars["%CMD%"] = strings.ReplaceAll(routedCmd, "%UP%", "")
	_, res, _ := f.apply(false)
	err := res.Err()
	if err == nil || !strings.Contains(err.Error(), "proxy health check GET /up") {
		t.Fatalf("apply of a replacement that never becomes healthy: %v", err)
	}
	l.check(t)
	if l.bodies["broken"] != 0 {
		t.Errorf("the unhealthy replacement got %d requests", l.bodies["broken"])
	}
	for _, s := range f.ships[:2] {
		if code, body := viaProxy(t, s, "/"); code != 200 || body != "gen-0" {
			t.Errorf("ship %s after the failed replacement: %d %q", s.Name, code, body)
		}
		if got := names(t, s); len(got) != 2 {
			t.Errorf("ship %s runs %v after the rollback: want the old instance and the proxy", s.Name, got)
		}
	}
}

// TestProxyRecreated: a proxy removed by hand comes back, with the routes
// of the containers running on the ship, at the next deploy.
func TestProxyRecreated(t *testing.T) {
	f := newRouted(t)
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("first apply: %v", res.Err())
	}
	s := f.ships[0]
	s.Docker(t, "rm", "-f", docker.ProxyName)
	f.vars["%GEN%"] = "gen-1"
	_, res, _ := f.apply(false)
	if err := res.Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if code, body := viaProxy(t, s, "/"); code != 200 || body != "gen-1" {
		t.Errorf("through the recreated proxy: %d %q", code, body)
	}
}

// TestProxyTLSInternal: a route with tls: internal is served over HTTPS
// with a certificate of the proxy's own CA for its host, plain HTTP
// redirects there, and a replacement under an HTTPS request loop fails no
// request.
func TestProxyTLSInternal(t *testing.T) {
	f := newRouted(t)
	f.text = strings.Replace(f.text, "http: 18090}", "http: 18090, https: 18443}", 1)
	f.text = strings.Replace(f.text, "drain: 20s}", "drain: 20s, tls: internal}", 1)
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("first apply: %v", res.Err())
	}
	roots := x509.NewCertPool()
	var urls []string
	for _, s := range f.ships[:2] {
		pem := s.Docker(t, "exec", docker.ProxyName, "cat", "/data/caddy/pki/authorities/local/root.crt")
		if !roots.AppendCertsFromPEM([]byte(pem)) {
			t.Fatalf("%s: no root certificate in the proxy: %q", s.Name, pem)
		}
		urls = append(urls, "https://"+s.IP+":18443/")

		req, _ := http.NewRequest(http.MethodGet, "http://"+s.IP+":18090/a/b?c=1", nil)
		req.Host = "shop.test"
		noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusPermanentRedirect || loc != "https://shop.test:18443/a/b?c=1" {
			t.Errorf("%s: plain HTTP answers %d, Location %q; want a redirect to HTTPS", s.Name, resp.StatusCode, loc)
		}
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "shop.test", RootCAs: roots}}
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	for _, url := range urls {
		// The certificate is issued in the background once the
		// configuration is loaded.
		var last string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Host = "shop.test"
			resp, err := client.Do(req)
			if err != nil {
				last = err.Error()
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body))); last == "200 gen-0" {
				break
			}
		}
		if last != "200 gen-0" {
			t.Fatalf("GET %s over verified HTTPS: %s", url, last)
		}
	}
	l := startLoopOn(t, urls, tr)
	f.vars["%GEN%"] = "gen-1"
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply gen-1: %v", res.Err())
	}
	time.Sleep(300 * time.Millisecond)
	l.check(t)
	if l.bodies["gen-1"] == 0 {
		t.Errorf("gen-1 never answered over HTTPS: %v", l.bodies)
	}
}

// TestInstanceRoute: an instance with a proxy key of its own is reached
// by its own hosts only, and moves back to its service's route when the
// key goes.
func TestInstanceRoute(t *testing.T) {
	f := newRouted(t)
	plain := f.text
	f.text = strings.Replace(plain, "      web-2:\n        ship: s2\n", "      web-2:\n        ship: s2\n        proxy: {hosts: [beta.test]}\n", 1)
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply: %v", res.Err())
	}
	s2 := f.ships[1]
	hostGet := func(host string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s2.IP+":18090/", nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", host, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if beta, shop := hostGet("beta.test"), hostGet("shop.test"); beta != 200 || shop != 404 {
		t.Errorf("web-2 on its own route: beta.test %d, shop.test %d; want 200 and 404", beta, shop)
	}
	f.text = plain
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply without the instance's key: %v", res.Err())
	}
	if beta, shop := hostGet("beta.test"), hostGet("shop.test"); beta != 404 || shop != 200 {
		t.Errorf("web-2 back on the service's route: beta.test %d, shop.test %d; want 404 and 200", beta, shop)
	}
}

// TestProxyRetiredWithItsLastRoute: pruning the only routed instance of a
// ship (its kept container too) removes that ship's proxy; the other
// ship's proxy keeps serving.
func TestProxyRetiredWithItsLastRoute(t *testing.T) {
	f := newRouted(t)
	for _, gen := range []string{"gen-0", "gen-1"} {
		f.vars["%GEN%"] = gen
		if _, res, _ := f.apply(false); res.Err() != nil {
			t.Fatalf("apply %s: %v", gen, res.Err())
		}
	}
	i := strings.Index(f.text, "      web-2:")
	f.text = f.text[:i]
	p, res, _ := f.apply(true)
	if err := res.Err(); err != nil {
		t.Fatalf("apply --prune: %v", err)
	}
	if sum := p.Summary(); sum.Remove != 2 {
		t.Errorf("plan: %+v, want web-2 and its kept container removed", sum)
	}
	if names := f.ships[1].Docker(t, "ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(names) != "" {
		t.Errorf("s2 after its last routed instance went:\n%s", names)
	}
	if code, body := viaProxy(t, f.ships[0], "/"); code != 200 || body != "gen-1" {
		t.Errorf("s1 through its proxy: %d %q", code, body)
	}
}

// stagedApp is a routed service of four instances on two ships, rolled out
// one instance at a time with a 5 s bake.
const stagedApp = `__maestro: {schema: 2}
name: staged
%SHIPS%
proxy: {image: maestro-test/caddy:2, http: 18090}
services:
  web:
    image: maestro-test/busybox:1
    env: {GEN: "%GEN%"}
    ports: {http: "8080:8080"}
    proxy: {health: /up, health_timeout: 4s, drain: 5s}
    rollout: {batch: 1, bake: 5s}
    instances:
      web-1: {ship: s1, stop_timeout: 1, command: [sh, -c, '%CMD%']}
      web-2: {ship: s2, stop_timeout: 1, command: [sh, -c, '%CMD%']}
      web-3: {ship: s1, stop_timeout: 1, command: [sh, -c, '%CMD%']}
      web-4: {ship: s2, stop_timeout: 1, command: [sh, -c, '%CMD%']}
`

// TestStagedRolloutStopsAtAFailedBatch: a new version that dies 3 s after
// it started fails the bake of the first batch; that batch is swapped back
// to its previous container, and the other three instances never change.
func TestStagedRolloutStopsAtAFailedBatch(t *testing.T) {
	f := newRouted(t)
	f.text = stagedApp
	f.vars["%CMD%"] = `echo "$GEN" > /www/index.html && echo ok > /www/up && exec httpd -f -p 8080 -h /www`
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("first apply: %v", res.Err())
	}
	ids := map[string]string{}
	for i, name := range []string{"web-1", "web-2", "web-3", "web-4"} {
		ids[name] = inspect(t, f.ships[i%2], name).ID
	}
	f.vars["%GEN%"] = "gen-1"
	f.vars["%CMD%"] = `echo "$GEN" > /www/index.html && echo ok > /www/up && httpd -p 8080 -h /www && sleep 3 && exit 1`
	p, _ := f.plan(false)
	var bakes []string
	for _, st := range p.Steps {
		if st.Action == plan.Bake {
			bakes = append(bakes, st.Instance+" after "+strings.Join(st.After, ","))
		}
	}
	if len(bakes) != 3 || !strings.Contains(p.String(), "⏸ web batch 1/4") {
		t.Fatalf("plan has bakes %v:\n%s", bakes, p)
	}
	_, res, _ := f.apply(false)
	err := res.Err()
	if err == nil || !strings.Contains(err.Error(), "web-1 failed") || !strings.Contains(err.Error(), "bake of batch 1/4") {
		t.Fatalf("apply of a version that dies after 3 s: %v", err)
	}
	for i, name := range []string{"web-1", "web-2", "web-3", "web-4"} {
		s := f.ships[i%2]
		c := inspect(t, s, name)
		if c.ID != ids[name] || !c.State.Running || envOf(c)["GEN"] != "gen-0" {
			t.Errorf("%s after the failed rollout: %s running %v GEN %s, want the first container %s", name, c.ID[:12], c.State.Running, envOf(c)["GEN"], ids[name][:12])
		}
	}
	for _, s := range f.ships[:2] {
		all := strings.Join(names(t, s), " ")
		replaced := strings.Count(all, ".prev-")
		if strings.Contains(all, ".next-") || (s == f.ships[0]) != (replaced == 1) || replaced > 1 {
			t.Errorf("ship %s has %s: want only web-1 replaced (and kept)", s.Name, all)
		}
		if code, body := viaProxy(t, s, "/"); code != 200 || body != "gen-0" {
			t.Errorf("ship %s through the proxy: %d %q", s.Name, code, body)
		}
	}
}

// TestProxyLeave: a service that loses its proxy key takes its host port
// back, and its old container leaves the proxy before it stops.
// TestProxyLeave: a service that leaves the proxy is served on its host
// port; its kept containers go, and so does the proxy of each ship, which
// routes nothing any more.
func TestProxyLeave(t *testing.T) {
	f := newRouted(t)
	for _, gen := range []string{"gen-0", "gen-1"} {
		f.vars["%GEN%"] = gen
		if _, res, _ := f.apply(false); res.Err() != nil {
			t.Fatalf("apply %s: %v", gen, res.Err())
		}
	}
	if kept := f.ships[0].Docker(t, "ps", "-aq", "--filter", "name=web-1.prev-"); kept == "" {
		t.Fatal("no kept container after a replacement")
	}
	f.text = strings.Replace(f.text, "    proxy: {hosts: [shop.test], health: /up, health_timeout: 4s, drain: 20s}\n", "", 1)
	f.text = strings.Replace(f.text, `ports: {http: "8080:8080"}`, `ports: {http: "8080:18095"}`, 1)
	f.vars["%GEN%"] = "direct"
	if _, res, _ := f.apply(false); res.Err() != nil {
		t.Fatalf("apply without proxy: %v", res.Err())
	}
	for _, s := range f.ships[:2] {
		if got := strings.TrimSpace(get(t, "http://"+s.IP+":18095/")); got != "direct" {
			t.Errorf("%s: on the host port: %q", s.Name, got)
		}
		if names := s.Docker(t, "ps", "-a", "--format", "{{.Names}}"); strings.Contains(names, ".prev-") || strings.Contains(names, docker.ProxyName) {
			t.Errorf("%s: containers after leaving the proxy:\n%s", s.Name, names)
		}
		if conn, err := net.DialTimeout("tcp", s.IP+":18090", 2*time.Second); err == nil {
			conn.Close()
			t.Errorf("%s: the proxy's public port still accepts connections", s.Name)
		}
	}
}
