package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// ownerManifest is one environment with one instance on the shared ship.
const ownerManifest = `__maestro: {schema: 2}
name: %ENV%
ships:
  s1: {ip: %IP%, socket_path: %SOCK%, timeout: 20}
services:
  app:
    image: maestro-test/busybox:1
    env: {VERSION: "%VERSION%"}
    instances:
      %INSTANCE%:
        ship: s1
        stop_timeout: 1
        container_volumes: [/data]
        command: [sh, -c, 'trap "exit 0" TERM; sleep 3600 & wait']
`

// ownerRepo is a Git checkout with a remote, holding environments.
type ownerRepo struct {
	t    *testing.T
	dir  string
	ship *dockertest.Ship
}

func newOwnerRepo(t *testing.T, ship *dockertest.Ship, remote string) *ownerRepo {
	t.Helper()
	r := &ownerRepo{t: t, dir: t.TempDir(), ship: ship}
	for _, args := range [][]string{{"init", "-q"}, {"remote", "add", "origin", remote}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = r.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return r
}

// env writes <dir>/<env>/manifest.yml.
func (r *ownerRepo) env(env, instance, version string) {
	r.t.Helper()
	text := strings.NewReplacer("%ENV%", env, "%INSTANCE%", instance, "%VERSION%", version,
		"%IP%", r.ship.IP, "%SOCK%", r.ship.Socket).Replace(ownerManifest)
	dir := filepath.Join(r.dir, env)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *ownerRepo) run(code int, args ...string) verbResult {
	r.t.Helper()
	res := runVerb(r.t, r.dir, nil, args...)
	if res.code != code {
		r.t.Fatalf("want exit %d, got %s", code, res)
	}
	return res
}

// id returns the ID of the container with that name, "" when none.
func id(t *testing.T, ship *dockertest.Ship, name string) string {
	t.Helper()
	return ship.Docker(t, "ps", "-a", "--no-trunc", "--filter", "name=^/"+name+"$", "--format", "{{.ID}}")
}

// Two repositories deploy an environment named alpha to one engine: no
// run of either, with --prune or -f, touches the other's containers.
func TestOwnersShareAnEngine(t *testing.T) {
	ship := dockertest.Shared(t, 1)[0]
	a := newOwnerRepo(t, ship, "https://ci-bot:token@git.example.com/acme/repo-a.git")
	b := newOwnerRepo(t, ship, "git@git.example.com:acme/repo-b.git")
	a.env("alpha", "owa-app-1", "1")
	a.env("gone", "owa-gone-1", "1")
	b.env("alpha", "owb-app-1", "1")
	t.Cleanup(func() {
		for _, n := range []string{"owa-app-1", "owa-gone-1", "owb-app-1", "owa-app-1-copy"} {
			ship.Docker(t, "rm", "-f", "-v", n)
		}
	})
	a.run(0, "apply")
	b.run(0, "apply")
	bID, goneID := id(t, ship, "owb-app-1"), id(t, ship, "owa-gone-1")
	if bID == "" || goneID == "" {
		t.Fatal("the first applies did not create the containers")
	}
	labels := ship.Docker(t, "inspect", "--format", "{{json .Config.Labels}}", "owb-app-1")
	var l map[string]string
	if err := json.Unmarshal([]byte(labels), &l); err != nil {
		t.Fatal(err)
	}
	if l[label.OwnerName] != "git.example.com/acme/repo-b" || len(l[label.Owner]) != 16 {
		t.Errorf("owner labels of B's container: %v", l)
	}

	// A container started by hand with the labels of A's container copied,
	// under another name, with a volume of its own.
	var copied []string
	for k, v := range labelsOf(t, ship, "owa-app-1") {
		copied = append(copied, "--label", k+"="+v)
	}
	ship.Docker(t, append(append([]string{"run", "-d", "--name", "owa-app-1-copy", "-v", "/keep"}, copied...),
		"maestro-test/busybox:1", "sleep", "3600")...)
	copyID := id(t, ship, "owa-app-1-copy")

	// Prune of either repository, and -f of one file, leave the other's
	// containers (and A's other environment) alone.
	a.run(0, "apply", "--prune")
	b.run(0, "apply", "--prune")
	a.run(0, "apply", "--prune", "-f", "alpha/manifest.yml")
	if got := id(t, ship, "owb-app-1"); got != bID {
		t.Errorf("B's container %s became %q after A's prune", bID, got)
	}
	if got := id(t, ship, "owa-gone-1"); got != goneID {
		t.Errorf("A's gone-1 %s became %q after apply --prune -f alpha/manifest.yml", goneID, got)
	}
	if got := id(t, ship, "owa-app-1-copy"); got != copyID {
		t.Errorf("the copy with A's labels was removed (%q)", got)
	}
	if mounts := ship.Docker(t, "inspect", "--format", "{{range .Mounts}}{{.Destination}}{{end}}", "owa-app-1-copy"); mounts != "/keep" {
		t.Errorf("the copy's volume: %q", mounts)
	}
	p := a.run(0, "plan", "--prune")
	if !strings.Contains(p.out, "owner git.example.com/acme/repo-a") {
		t.Errorf("the plan does not name its owner:\n%s", p)
	}

	// An environment deleted from A is removed by A's prune, and only it.
	if err := os.RemoveAll(filepath.Join(a.dir, "gone")); err != nil {
		t.Fatal(err)
	}
	p = a.run(2, "plan", "--prune")
	if !strings.Contains(p.out, "environment gone is no longer in the repository") {
		t.Errorf("plan --prune after removing gone:\n%s", p)
	}
	a.run(0, "apply", "--prune")
	if got := id(t, ship, "owa-gone-1"); got != "" {
		t.Errorf("gone-1 is still there after apply --prune: %s", got)
	}
	if got := id(t, ship, "owb-app-1"); got != bID {
		t.Errorf("B's container %s became %q", bID, got)
	}

	// A name held by the other owner is a conflict naming it: exit 1.
	b.env("beta", "owa-app-1", "1")
	p = b.run(1, "plan")
	if !strings.Contains(p.out, "conflict") || !strings.Contains(p.out, "git.example.com/acme/repo-a") {
		t.Errorf("want a conflict naming repo-a:\n%s", p)
	}
	b.run(1, "apply", "-f", "beta/manifest.yml")
}

func labelsOf(t *testing.T, ship *dockertest.Ship, name string) map[string]string {
	t.Helper()
	var l map[string]string
	if err := json.Unmarshal([]byte(ship.Docker(t, "inspect", "--format", "{{json .Config.Labels}}", name)), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// Containers made before owners existed are taken over without a
// replacement, and then replaced with the owner's labels on a change.
func TestOwnerTakesOverContainersWithoutOwner(t *testing.T) {
	ship := dockertest.Shared(t, 1)[0]
	r := newOwnerRepo(t, ship, "https://git.example.com/acme/upgrade.git")
	r.env("up", "owu-app-1", "1")
	t.Cleanup(func() { ship.Docker(t, "rm", "-f", "-v", "owu-app-1") })
	// What the previous version made: the same container without the
	// owner labels.
	r.run(0, "apply")
	before := id(t, ship, "owu-app-1")
	old := labelsOf(t, ship, "owu-app-1")
	var env []string
	if err := json.Unmarshal([]byte(ship.Docker(t, "inspect", "--format", "{{json .Config.Env}}", "owu-app-1")), &env); err != nil {
		t.Fatal(err)
	}
	ship.Docker(t, "rm", "-f", "owu-app-1")
	args := []string{"create", "--name", "owu-app-1"}
	for k, v := range old {
		if k != label.Owner && k != label.OwnerName {
			args = append(args, "--label", k+"="+v)
		}
	}
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	ship.Docker(t, append(args, "maestro-test/busybox:1", "sh", "-c", `trap "exit 0" TERM; sleep 3600 & wait`)...)
	ship.Docker(t, "start", "owu-app-1")
	legacy := id(t, ship, "owu-app-1")
	if legacy == before || legacyOwner(t, ship) != "" {
		t.Fatal("the legacy container was not made")
	}
	p := r.run(0, "plan")
	if !strings.Contains(p.out, "0 to create, 0 to replace, 0 to remove, 1 unchanged") {
		t.Errorf("the legacy container is not taken over as unchanged:\n%s", p)
	}
	r.run(0, "apply", "--prune")
	if got := id(t, ship, "owu-app-1"); got != legacy {
		t.Errorf("the legacy container %s was replaced by %s", legacy, got)
	}
	r.env("up", "owu-app-1", "2")
	r.run(0, "apply")
	if legacyOwner(t, ship) != "git.example.com/acme/upgrade" {
		t.Errorf("after a replacement the container carries owner %q", legacyOwner(t, ship))
	}
}

func legacyOwner(t *testing.T, ship *dockertest.Ship) string {
	return labelsOf(t, ship, "owu-app-1")[label.OwnerName]
}

const adoptManifest = `__maestro: {schema: 2}
name: mng
ships:
  s1: {ip: %IP%, socket_path: %SOCK%, timeout: 20}
services:
  web:
    image: maestro-test/busybox:1
    ports: {http: "8080:18131"}
    lifecycle:
      running: [{type: http, port: http, path: /index.html, max_wait: 20}]
    instances:
      mng-web-1: {ship: s1, stop_timeout: 1, command: [httpd, -f, -p, "8080", -h, /www]}
`

// A container made the MaestroNG way (the instance's name, no labels, a
// host port) is a conflict without --adopt, and with it is replaced by a
// container of ours, its anonymous volume kept.
func TestAdoptMaestroNGContainer(t *testing.T) {
	ship := dockertest.Shared(t, 1)[0]
	r := newOwnerRepo(t, ship, "https://git.example.com/acme/adopt.git")
	if err := os.WriteFile(filepath.Join(r.dir, "manifest.yml"), []byte(strings.NewReplacer("%IP%", ship.IP, "%SOCK%", ship.Socket).Replace(adoptManifest)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ship.Docker(t, "rm", "-f", "-v", "mng-web-1") })
	ship.Docker(t, "run", "-d", "--name", "mng-web-1", "-p", ship.IP+":18131:8080", "-v", "/data",
		"maestro-test/busybox:1", "httpd", "-f", "-p", "8080", "-h", "/www")
	old := id(t, ship, "mng-web-1")
	volume := ship.Docker(t, "inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", "mng-web-1")
	t.Cleanup(func() { ship.Docker(t, "volume", "rm", "-f", volume) })

	p := r.run(1, "plan")
	if !strings.Contains(p.out, "conflict") || !strings.Contains(p.out, "--adopt") {
		t.Errorf("plan without --adopt:\n%s", p)
	}
	r.run(1, "apply")
	if id(t, ship, "mng-web-1") != old {
		t.Fatal("apply without --adopt touched the MaestroNG container")
	}
	p = r.run(2, "plan", "--adopt")
	if !strings.Contains(p.out, "adopt mng-web-1") {
		t.Errorf("plan --adopt:\n%s", p)
	}
	r.run(0, "apply", "--adopt")
	now := id(t, ship, "mng-web-1")
	if now == "" || now == old {
		t.Fatalf("after apply --adopt: %q (was %s)", now, old)
	}
	if l := labelsOf(t, ship, "mng-web-1"); l[label.Env] != "mng" || l[label.OwnerName] != "git.example.com/acme/adopt" {
		t.Errorf("labels of the adopted instance: %v", l)
	}
	if got := ship.Docker(t, "volume", "ls", "-q", "--filter", "name="+volume); got != volume {
		t.Errorf("the MaestroNG container's volume %s is gone", volume)
	}
	resp, err := http.Get("http://" + ship.IP + ":18131/index.html")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("the adopted service does not answer: %v", err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	r.run(0, "plan")
}
