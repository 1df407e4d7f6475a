package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// binary builds maestro-sync once per test binary: static (CGO_ENABLED=0),
// as the Dockerfile builds it, and as the kube and manifest tests build it,
// so that one compile serves all of them.
func binary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("maestro-sync-e2e-%d", os.Getpid()))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	build := exec.Command("go", "build", "-o", bin, "github.com/maestro-sync/maestro-sync/cmd/maestro-sync")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

const crashManifest = `__maestro: {schema: 2}
name: crash
ships:
  s1: {ip: %s, socket_path: %s, timeout: 20}
services:
  app:
    image: maestro-test/busybox:1
    env: {VERSION: "%s"}
    ports: {http: "8080:%s"}
    lifecycle:
      running:
        - {type: http, port: http, path: /index.html, max_wait: 20}
        - {type: sleep, wait: %d}
    instances:
      app-1: {ship: s1, stop_timeout: 1, command: [httpd, -f, -p, "8080", -h, /www]}
`

func writeManifest(t *testing.T, dir string, ship *dockertest.Ship, version, port string, wait int) {
	t.Helper()
	text := fmt.Sprintf(crashManifest, ship.IP, ship.Socket, version, port, wait)
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestKillDuringReplacement kills maestro-sync apply while the replacement
// container is being checked, then applies again: exactly one container
// per instance remains, it runs the new spec, and no temporary container is
// left behind. With the same host port the old container is stopped when
// the kill comes; with another one both run.
func TestKillDuringReplacement(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct{ name, newPort string }{
		{"beside the old one", "18091"},
		{"host port clash", "18090"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ship := dockertest.Shared(t, 1)[0]
			dir := t.TempDir()
			writeManifest(t, dir, ship, "1", "18090", 0)
			if out, err := run(t, bin, "apply", dir); err != nil {
				t.Fatalf("first apply: %v\n%s", err, out)
			}
			writeManifest(t, dir, ship, "2", tc.newPort, 60)
			cmd := exec.Command(bin, "apply", dir)
			var out dockertest.SyncBuffer // written by the process, read while it runs
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(out.String(), "checking sleep") && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(ship.Docker(t, "ps", "-a", "--format", "{{.Names}}"), ".next-") {
				t.Fatalf("no temporary container while checking:\n%s", out.String())
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()

			writeManifest(t, dir, ship, "2", tc.newPort, 0)
			if out, err := run(t, bin, "apply", dir); err != nil {
				t.Fatalf("apply after the kill: %v\n%s", err, out)
			}
			names := strings.Fields(ship.Docker(t, "ps", "-a", "--format", "{{.Names}}"))
			if len(names) != 1 || names[0] != "app-1" {
				t.Fatalf("containers after recovery: %v, want only app-1", names)
			}
			state := ship.Docker(t, "inspect", "-f", "{{.State.Running}} {{range .Config.Env}}{{println .}}{{end}}", "app-1")
			if !strings.HasPrefix(state, "true") || !strings.Contains(state, "VERSION=2") {
				t.Fatalf("app-1 after recovery: %s", state)
			}
			if out, err := run(t, bin, "plan", dir); err != nil || !strings.Contains(out, "0 to create, 0 to replace, 0 to remove, 1 unchanged") {
				t.Fatalf("plan after recovery: %v\n%s", err, out)
			}
		})
	}
}
