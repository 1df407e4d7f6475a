// Command downtime measures what users see while a web service is
// replaced: a vegeta attack at a constant rate, one new connection per
// request, runs against the service during N successive replacements, and
// reports the failed requests and the latency percentiles. It compares
// maestro-sync behind its front proxy, maestro-sync without it (the old
// container stops first: host ports clash) and `docker compose up -d`
// recreating the same service, on the same engine in the same run; then
// it times `maestro-sync rollback` until the previous version answers.
//
// bench/bench.sh runs it (part d); see bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

type scenario struct {
	name string
	// port is where the service answers on the engine's host.
	port int
	// write writes the deployment files for generation gen.
	write func(gen int) error
	// deploy deploys what write wrote.
	deploy func(ctx context.Context) error
}

type figures struct {
	requests, failed uint64
	p50, p99, max    time.Duration
	firstErrors      []string
}

func main() {
	bin := flag.String("maestro-sync", "bin/maestro-sync", "maestro-sync binary")
	composeBin := flag.String("compose", "", "docker compose binary (empty: skip the compose scenario)")
	work := flag.String("work", os.TempDir(), "directory for the generated files")
	n := flag.Int("n", 10, "replacements per scenario")
	rate := flag.Int("rate", 100, "requests per second")
	image := flag.String("image", "maestro-test/busybox:1", "the service's image")
	proxyImage := flag.String("proxy-image", "maestro-test/caddy:2", "the front proxy's image")
	flag.Parse()
	if err := run(*bin, *composeBin, *work, *n, *rate, *image, *proxyImage); err != nil {
		fmt.Fprintln(os.Stderr, "downtime:", err)
		os.Exit(1)
	}
}

const command = `echo "$GEN" > /www/index.html && echo ok > /www/up && exec httpd -f -p 8080 -h /www`

func run(bin, composeBin, work string, n, rate int, image, proxyImage string) error {
	ctx := context.Background()
	manifest := func(dir string, gen int, proxied bool, port int) error {
		var b strings.Builder
		fmt.Fprintf(&b, "__maestro: {schema: 2}\nname: %s\nships:\n  local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock}\n", filepath.Base(dir))
		ports := fmt.Sprintf("8080:%d", port) // container:host, as MaestroNG
		if proxied {
			fmt.Fprintf(&b, "proxy: {image: %s, http: %d}\n", proxyImage, port)
			ports = "8080"
		}
		fmt.Fprintf(&b, "services:\n  web:\n    image: %s\n    env: {GEN: \"%d\"}\n    ports: {http: \"%s\"}\n", image, gen, ports)
		if proxied {
			b.WriteString("    proxy: {health: /up, drain: 10s}\n")
		}
		fmt.Fprintf(&b, "    lifecycle:\n      running: [{type: http, port: http, path: /up, max_wait: 30}]\n")
		fmt.Fprintf(&b, "    instances:\n      %s-1: {ship: local, stop_timeout: 2, command: [sh, -c, '%s']}\n", filepath.Base(dir), command)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(b.String()), 0o644)
	}
	apply := func(dir string) func(context.Context) error {
		return func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, bin, "apply", "--owner", "maestro-sync-bench", dir).CombinedOutput()
			if err != nil {
				return fmt.Errorf("apply %s: %w\n%s", dir, err, out)
			}
			return nil
		}
	}
	proxied := filepath.Join(work, "dtproxied")
	clash := filepath.Join(work, "dtclash")
	scenarios := []scenario{
		{name: "maestro-sync, front proxy", port: 28191, write: func(g int) error { return manifest(proxied, g, true, 28191) }, deploy: apply(proxied)},
		{name: "maestro-sync, host port (clash)", port: 28192, write: func(g int) error { return manifest(clash, g, false, 28192) }, deploy: apply(clash)},
	}
	if composeBin != "" {
		file := filepath.Join(work, "dtcompose", "compose.yml")
		scenarios = append(scenarios, scenario{name: "docker compose up -d", port: 28193,
			write: func(g int) error {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					return err
				}
				text := fmt.Sprintf("services:\n  web:\n    image: %s\n    environment: {GEN: \"%d\"}\n    ports: [\"28193:8080\"]\n    network_mode: bridge\n    stop_grace_period: 2s\n    command: [sh, -c, '%s']\n",
					image, g, strings.ReplaceAll(command, "$", "$$"))
				return os.WriteFile(file, []byte(text), 0o644)
			},
			deploy: func(ctx context.Context) error {
				out, err := exec.CommandContext(ctx, composeBin, "-f", file, "-p", "dtcompose", "up", "-d").CombinedOutput()
				if err != nil {
					return fmt.Errorf("compose up: %w\n%s", err, out)
				}
				return nil
			}})
	}
	fmt.Printf("%d replacements per scenario under a constant %d requests/s (vegeta, a new connection per request)\n", n, rate)
	fmt.Printf("%-34s %9s %8s %10s %10s %10s\n", "", "requests", "failed", "p50", "p99", "max")
	for _, sc := range scenarios {
		if err := sc.write(0); err != nil {
			return err
		}
		if err := sc.deploy(ctx); err != nil {
			return err
		}
		f, err := attackDuring(fmt.Sprintf("http://127.0.0.1:%d/", sc.port), rate, func() error {
			for g := 1; g <= n; g++ {
				if err := sc.write(g); err != nil {
					return err
				}
				if err := sc.deploy(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		fmt.Printf("%-34s %9d %8d %10s %10s %10s\n", sc.name, f.requests, f.failed, f.p50.Round(time.Microsecond), f.p99.Round(time.Microsecond), f.max.Round(time.Microsecond))
		for _, e := range f.firstErrors {
			fmt.Printf("    %s\n", e)
		}
	}

	// Rollback: back to generation n-1 through the proxy.
	url := "http://127.0.0.1:28191/"
	want := fmt.Sprint(n - 1)
	var took time.Duration
	f, err := attackDuring(url, rate, func() error {
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			out, err := exec.CommandContext(ctx, bin, "rollback", "--owner", "maestro-sync-bench", proxied).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("rollback: %w\n%s", err, out)
			}
			done <- err
		}()
		for took == 0 && time.Since(start) < time.Minute {
			if body(url) == want {
				took = time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return <-done
	})
	if err != nil {
		return err
	}
	fmt.Printf("rollback: the previous version answers %s after maestro-sync rollback starts (%d requests meanwhile, %d failed)\n",
		took.Round(time.Millisecond), f.requests, f.failed)
	// Leave nothing behind.
	_ = exec.Command(bin, "rollback", "--owner", "maestro-sync-bench", "--release", proxied).Run()
	return nil
}

func body(url string) string {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// attackDuring attacks url at rate while during runs, and reports what the
// attack saw.
func attackDuring(url string, rate int, during func() error) (figures, error) {
	attacker := vegeta.NewAttacker(vegeta.KeepAlive(false), vegeta.Timeout(10*time.Second))
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	results := attacker.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, 0, "downtime")
	var m vegeta.Metrics
	var errs []string
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for r := range results {
			m.Add(r)
			if (r.Error != "" || r.Code != http.StatusOK) && len(errs) < 3 {
				errs = append(errs, fmt.Sprintf("%s: %d %s", r.Timestamp.Format("15:04:05.000"), r.Code, r.Error))
			}
		}
	}()
	time.Sleep(time.Second) // a steady attack before the first replacement
	err := during()
	time.Sleep(time.Second)
	attacker.Stop()
	<-collected
	m.Close()
	failed := m.Requests - uint64(float64(m.Requests)*m.Success+0.5)
	return figures{requests: m.Requests, failed: failed, p50: m.Latencies.P50, p99: m.Latencies.P99, max: m.Latencies.Max, firstErrors: errs}, err
}
