// Command buildpush measures "git push to deploy" of application code: the
// time from a one-line change of a web page in a service's build context
// to the new page being served, with a warm build cache. It compares the
// maestro-sync daemon (a push to its Git repository and a webhook: it
// builds the image on the ship, pushes it to a registry, pulls it by
// digest and replaces the container once its check passes) with the same
// work done by hand: docker build, docker push and docker compose up -d,
// on the same engine, registry and context in the same run.
//
// bench/bench.sh runs it (part e); see bench/README.md.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	owner     = "maestro-sync-bench"
	project   = "bpcompose"
	secret    = "bench-webhook-secret"
	msPort    = 18251 // the daemon-deployed service's host port
	handPort  = 18252 // the compose-deployed one's
	dockerfil = "FROM %s\nCOPY index.html /www/index.html\n" +
		`CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]` + "\n"
)

func main() {
	bin := flag.String("maestro-sync", "bin/maestro-sync", "maestro-sync binary")
	composeBin := flag.String("compose", "", "docker compose binary")
	registryBin := flag.String("registry", "", "CNCF Distribution registry binary")
	work := flag.String("work", os.TempDir(), "directory for the generated files")
	n := flag.Int("n", 5, "changes per way")
	base := flag.String("image", "maestro-test/busybox:1", "the base image of the Dockerfile")
	flag.Parse()
	if err := run(*bin, *composeBin, *registryBin, *work, *n, *base); err != nil {
		fmt.Fprintln(os.Stderr, "buildpush:", err)
		os.Exit(1)
	}
}

func run(bin, composeBin, registryBin, work string, n int, base string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp(work, "buildpush-")
	if err != nil {
		return err
	}
	reg, stop, err := startRegistry(ctx, registryBin, dir)
	if err != nil {
		return err
	}
	defer stop()

	// The repository: a bare one the daemon follows, and a work tree.
	bare, tree := filepath.Join(dir, "repo.git"), filepath.Join(dir, "tree")
	for _, c := range [][]string{{"init", "-q", "--bare", "-b", "main", bare}, {"init", "-q", "-b", "main", tree}} {
		if err := git("", c...); err != nil {
			return err
		}
	}
	manifest := fmt.Sprintf(`__maestro: {schema: 2}
name: buildpush
ships:
  local: {ip: 127.0.0.1, socket_path: /var/run/docker.sock, timeout: 60}
services:
  web:
    image: %s/bench/web
    build: app
    ports: {http: "8080:%d"}
    lifecycle:
      running: [{type: http, port: http, path: /index.html, max_wait: 60}]
    instances:
      bp-web: {ship: local, stop_timeout: 1}
`, reg, msPort)
	files := map[string]string{"manifest.yml": manifest, "app/Dockerfile": fmt.Sprintf(dockerfil, base), "app/index.html": page(0)}
	for name, text := range files {
		if err := write(filepath.Join(tree, name), text); err != nil {
			return err
		}
	}
	if err := commit(tree, bare, "gen 0"); err != nil {
		return err
	}

	// The daemon follows the repository; a webhook tells it of a push.
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	secretFile := filepath.Join(dir, "secret")
	if err := write(secretFile, secret+"\n"); err != nil {
		return err
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	daemon := exec.CommandContext(dctx, bin, "run", "--repo", "file://"+bare, "--ref", "main", "--poll", "1h", "--resync", "1h",
		"--listen", listen, "--webhook-secret-file", secretFile, "--cache-dir", filepath.Join(dir, "cache"),
		"--data-dir", filepath.Join(dir, "data"), "--owner", owner)
	var dlog bytes.Buffer
	daemon.Stdout, daemon.Stderr = &dlog, &dlog
	daemon.Cancel = func() error { return daemon.Process.Signal(os.Interrupt) }
	daemon.WaitDelay = 30 * time.Second
	if err := daemon.Start(); err != nil {
		return err
	}
	defer func() {
		cancel()
		_ = daemon.Wait()
		_ = exec.Command("docker", "rm", "-f", "bp-web").Run()
	}()
	if _, err := waitPage(msPort, 0, 5*time.Minute); err != nil {
		return fmt.Errorf("first deploy: %w\n%s", err, dlog.String())
	}

	// By hand: the same context built, pushed and brought up by compose.
	compose := filepath.Join(dir, "compose.yml")
	if err := write(compose, fmt.Sprintf("services:\n  web:\n    image: ${IMAGE}\n    ports: [\"%d:8080\"]\n    stop_grace_period: 1s\n", handPort)); err != nil {
		return err
	}
	defer func() { _ = exec.Command(composeBin, "-f", compose, "-p", project, "down", "-t", "1").Run() }()
	hand := func(gen int) error {
		img := fmt.Sprintf("%s/bench/hand:gen%d", reg, gen)
		for _, c := range [][]string{{"docker", "build", "-q", "-t", img, filepath.Join(tree, "app")}, {"docker", "push", "-q", img}} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
			}
		}
		up := exec.Command(composeBin, "-f", compose, "-p", project, "up", "-d")
		up.Env = append(os.Environ(), "IMAGE="+img)
		if out, err := up.CombinedOutput(); err != nil {
			return fmt.Errorf("compose up: %w\n%s", err, out)
		}
		return nil
	}
	if err := hand(0); err != nil {
		return err
	}
	if _, err := waitPage(handPort, 0, 2*time.Minute); err != nil {
		return fmt.Errorf("compose's first deploy: %w", err)
	}

	var msTimes, handTimes []time.Duration
	for gen := 1; gen <= n; gen++ {
		// maestro-sync: a commit pushed, a webhook, the page served.
		start := time.Now()
		if err := write(filepath.Join(tree, "app/index.html"), page(gen)); err != nil {
			return err
		}
		if err := commit(tree, bare, fmt.Sprintf("gen %d", gen)); err != nil {
			return err
		}
		if err := webhook(listen); err != nil {
			return err
		}
		if _, err := waitPage(msPort, gen, 3*time.Minute); err != nil {
			return fmt.Errorf("maestro-sync, change %d: %w\n%s", gen, err, dlog.String())
		}
		msTimes = append(msTimes, time.Since(start))

		// By hand, from the same change.
		start = time.Now()
		if err := hand(gen); err != nil {
			return err
		}
		if _, err := waitPage(handPort, gen, 2*time.Minute); err != nil {
			return fmt.Errorf("by hand, change %d: %w", gen, err)
		}
		handTimes = append(handTimes, time.Since(start))
	}
	ms, hd := median(msTimes), median(handTimes)
	fmt.Printf("changes: %d one-line edits of app/index.html, warm build cache, one instance on the default engine, registry %s (CNCF Distribution, local)\n", n, reg)
	fmt.Printf("maestro-sync (git push + webhook → build, push, pull by digest, checked replace): median %s  [%s]\n", ms.Round(time.Millisecond), list(msTimes))
	fmt.Printf("by hand (docker build + docker push + docker compose up -d, until served):   median %s  [%s]\n", hd.Round(time.Millisecond), list(handTimes))
	fmt.Printf("ratio maestro-sync / by hand: %.2f\n", ms.Seconds()/hd.Seconds())
	return nil
}

// page is the web page of a generation: one line changes.
func page(gen int) string { return fmt.Sprintf("<h1>hello</h1>\n<p>generation %d</p>\n", gen) }

// waitPage waits until the service on port serves the page of gen.
func waitPage(port, gen int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	want := page(gen)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Since(start) < limit {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == want {
				return time.Since(start), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("port %d did not serve generation %d within %s", port, gen, limit)
}

// webhook tells the daemon of a push, as GitHub would.
func webhook(listen string) error {
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, err := http.NewRequest("POST", "http://"+listen+"/hooks/github", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook: %s", resp.Status)
	}
	return nil
}

// startRegistry starts a registry without authentication on a free
// loopback port (Docker trusts loopback registries over HTTP).
func startRegistry(ctx context.Context, bin, dir string) (string, func(), error) {
	if bin == "" {
		return "", nil, errors.New("no -registry binary")
	}
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	config := fmt.Sprintf("version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n",
		filepath.Join(dir, "registry"), addr)
	cfg := filepath.Join(dir, "registry.yml")
	if err := write(cfg, config); err != nil {
		return "", nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(rctx, bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		cancel()
		return "", nil, err
	}
	stop := func() { cancel(); _ = cmd.Wait() }
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("the registry did not answer on %s", addr)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func write(name, text string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, []byte(text), 0o644)
}

func git(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// commit commits the work tree and pushes it to the bare repository.
func commit(tree, bare, msg string) error {
	for _, c := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", msg}, {"push", "-q", bare, "HEAD:refs/heads/main"}} {
		if err := git(tree, c...); err != nil {
			return err
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func list(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond).String()
	}
	return strings.Join(out, " ")
}
