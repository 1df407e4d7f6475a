package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/source/sourcetest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// builtManifest has two services built from two contexts of the
// repository and pushed to a registry: web on two ships (built on the
// first, pulled by digest on the second), worker on the second.
func builtManifest(ships []*dockertest.Ship, reg *dockertest.Registry) string {
	return fmt.Sprintf(`__maestro: {schema: 2}
name: built
registries:
  reg: {registry: "http://%[1]s", username: %[2]s, password: %[3]s}
ships:
  s1: {ip: %[4]s, socket_path: %[5]s, timeout: 20}
  s2: {ip: %[6]s, socket_path: %[7]s, timeout: 20}
services:
  web:
    image: %[1]s/built/web
    build: {context: web, args: {GREETING: hello}}
    ports: {http: 8080}
    lifecycle:
      running: [{type: http, port: http, path: /index.html, max_wait: 20}]
    instances:
      web-1: {ship: s1, ports: {http: "8080:18141"}, stop_timeout: 1}
      web-2: {ship: s2, ports: {http: "8080:18142"}, stop_timeout: 1}
  worker:
    image: %[1]s/built/worker
    build: worker
    instances:
      worker-1: {ship: s2, stop_timeout: 1}
`, reg.Host, reg.User, reg.Password, ships[0].IP, ships[0].Socket, ships[1].IP, ships[1].Socket)
}

const (
	webDockerfile = "FROM maestro-test/busybox:1\nARG GREETING\nCOPY index.html /www/index.html\n" +
		`CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]` + "\n"
	workerDockerfile = "FROM maestro-test/busybox:1\nCOPY job.sh /job.sh\n" +
		`CMD ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]` + "\n"
)

// TestDaemonBuildsOnPush: a push that changes one build context builds,
// pushes and deploys that service only (pulled by digest on the other
// ship); a push that touches no context builds and replaces nothing; a
// broken Dockerfile fails with its file and line while the old containers
// serve, and the next commit that fixes it deploys.
func TestDaemonBuildsOnPush(t *testing.T) {
	ships := dockertest.Shared(t, 2)
	reg := dockertest.StartRegistry(t, "deployer", "deploy-pw")
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{
		"manifest.yml":      builtManifest(ships, reg),
		"web/Dockerfile":    webDockerfile,
		"web/index.html":    "v1\n",
		"worker/Dockerfile": workerDockerfile,
		"worker/job.sh":     "echo job\n",
		"README.md":         "readme 1\n",
	}, "two built services")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	d := startDaemon(t, t.TempDir(), "--repo", srv.URL, "--ref", "main", "--poll", "1s", "--resync", "3s", "--data-dir", t.TempDir())

	serves := func(port int) string {
		resp, err := http.Get(fmt.Sprintf("http://%s:%d/index.html", ships[0].IP, port))
		if port == 18142 {
			resp, err = http.Get(fmt.Sprintf("http://%s:%d/index.html", ships[1].IP, port))
		}
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	inspect := func(ship *dockertest.Ship, name, format string) string {
		out, _ := exec.Command("docker", "-H", ship.Host, "inspect", "-f", format, name).Output()
		return strings.TrimSpace(string(out))
	}
	synced := func(rev string) func() bool {
		return func() bool { st, applied, _ := d.env("built"); return st == "synced" && applied == rev }
	}
	took := waitFor(t, "the first deploy", 120*time.Second, synced(c1))
	t.Logf("built both images and deployed 3 instances in %s", took)
	if a, b := serves(18141), serves(18142); a != "v1\n" || b != "v1\n" {
		t.Fatalf("web serves %q and %q", a, b)
	}
	image := inspect(ships[1], "web-2", "{{.Config.Image}}")
	if !strings.HasPrefix(image, reg.Host+"/built/web:ctx-") || !strings.Contains(image, "@sha256:") ||
		inspect(ships[1], "web-2", `{{index .Config.Labels "io.maestro-sync/image"}}`) != image {
		t.Errorf("web-2 on the second ship runs %q, not its build pinned by digest", image)
	}
	for _, e := range d.status().Environments {
		for _, in := range e.Instances {
			if in.Name == "web-2" && in.Image != image {
				t.Errorf("the status says web-2 runs %q, the ship %q", in.Image, image)
			}
		}
	}
	worker := inspect(ships[1], "worker-1", "{{.Id}}")

	// A change of web's context builds and replaces web only.
	c2 := repo.Commit(t, map[string]string{"web/index.html": "v2\n"}, "web v2")
	took = waitFor(t, "web v2", 120*time.Second, func() bool { return synced(c2)() && serves(18141) == "v2\n" && serves(18142) == "v2\n" })
	t.Logf("push to healthy on two ships: %s", took)
	if got := inspect(ships[1], "worker-1", "{{.Id}}"); got != worker {
		t.Errorf("worker was replaced by a change of web's context")
	}
	var runs []histRun
	waitFor(t, "the run of c2 recorded", 30*time.Second, func() bool {
		runs = d.history("built")
		return len(runs) >= 2
	})
	var steps []string
	for _, s := range runs[0].Steps {
		steps = append(steps, s.Action+" "+s.Instance+" "+s.Result)
	}
	if got := strings.Join(steps, ", "); !strings.Contains(got, "build web success") || strings.Contains(got, "worker") || strings.Count(got, "replace web-") != 2 {
		t.Errorf("the run of a change of web/: %s", got)
	}

	// A commit that touches no context changes nothing.
	web1 := inspect(ships[0], "web-1", "{{.Id}}")
	c3 := repo.Commit(t, map[string]string{"README.md": "readme 2\n"}, "docs only")
	waitFor(t, "the docs commit applied", 60*time.Second, synced(c3))
	if inspect(ships[0], "web-1", "{{.Id}}") != web1 || inspect(ships[1], "worker-1", "{{.Id}}") != worker {
		t.Errorf("a commit touching no build context replaced a container")
	}
	if r := d.history("built"); len(r) > 0 && r[0].ID != runs[0].ID {
		for _, s := range r[0].Steps {
			if s.Action == "build" || s.Action == "replace" {
				t.Errorf("a commit touching no build context ran %s %s", s.Action, s.Instance)
			}
		}
	}

	// A broken Dockerfile: a located error, the old containers serve, and
	// the environment waits for the next commit without being stuck.
	c4 := repo.Commit(t, map[string]string{"web/Dockerfile": strings.Replace(webDockerfile, "COPY", "COPPY", 1), "web/index.html": "v4\n"}, "broken")
	var errs []string
	waitFor(t, "the broken build reported", 120*time.Second, func() bool {
		st, _, e := d.env("built")
		errs = e
		return st == "failed" && len(e) > 0
	})
	if got := strings.Join(errs, "\n"); !strings.Contains(got, "web/Dockerfile:3") || !strings.Contains(strings.ToLower(got), "coppy") {
		t.Errorf("the broken build's error: %s", got)
	}
	if a, b := serves(18141), serves(18142); a != "v2\n" || b != "v2\n" {
		t.Errorf("during a failed build web serves %q and %q", a, b)
	}
	_ = c4
	c5 := repo.Commit(t, map[string]string{"web/Dockerfile": webDockerfile, "web/index.html": "v5\n"}, "fixed")
	waitFor(t, "the fix deployed", 120*time.Second, func() bool { return synced(c5)() && serves(18141) == "v5\n" && serves(18142) == "v5\n" })
}
