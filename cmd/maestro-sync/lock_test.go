package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// lockManifest replaces slowly: the running check waits 3 s.
const lockManifest = `__maestro: {schema: 2}
name: locked
ships:
  s1: {ip: %IP%, socket_path: %SOCK%, timeout: 20}
services:
  app:
    image: maestro-test/busybox:1
    env: {VERSION: "%VERSION%"}
    lifecycle:
      running: [{type: sleep, wait: 3}]
    instances:
      lock-app-1:
        ship: s1
        stop_timeout: 1
        command: [sh, -c, 'trap "exit 0" TERM; sleep 3600 & wait']
`

func writeLockManifest(t *testing.T, dir string, ship *dockertest.Ship, version string) {
	t.Helper()
	text := strings.NewReplacer("%IP%", ship.IP, "%SOCK%", ship.Socket, "%VERSION%", version).Replace(lockManifest)
	if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// containers lists the names of the containers of the lock test's
// instance, its replacements included.
func lockAppContainers(t *testing.T, ship *dockertest.Ship) []string {
	t.Helper()
	out := ship.Docker(t, "ps", "-a", "--filter", "name=lock-app-1", "--format", "{{.Names}}")
	if out == "" {
		return nil
	}
	return strings.Fields(out)
}

func appVersion(t *testing.T, ship *dockertest.Ship) string {
	t.Helper()
	return ship.Docker(t, "exec", "lock-app-1", "sh", "-c", "echo $VERSION")
}

// Two applies of one change started together: one waits for the other's
// lock, nothing in flight is removed, and exactly one container remains.
// deployedLockApp deploys version 1 of the lock test's instance and writes
// version 2, which replaces slowly.
func deployedLockApp(t *testing.T) (*dockertest.Ship, string) {
	t.Helper()
	ship := dockertest.Shared(t, 1)[0]
	dir := t.TempDir()
	writeLockManifest(t, dir, ship, "1")
	t.Cleanup(func() { ship.Docker(t, "rm", "-f", "lock-app-1") })
	if r := runVerb(t, dir, nil, "apply"); r.code != 0 {
		t.Fatal(r)
	}
	writeLockManifest(t, dir, ship, "2")
	return ship, dir
}

func TestConcurrentAppliesTakeTurns(t *testing.T) {
	ship, dir := deployedLockApp(t)
	var wg sync.WaitGroup
	results := make([]verbResult, 2)
	for i := range results {
		wg.Go(func() { results[i] = runVerb(t, dir, nil, "apply", "--lock-timeout", "1m") })
	}
	wg.Wait()
	waited := 0
	for _, r := range results {
		if r.code != 0 {
			t.Errorf("an apply failed: %s", r)
		}
		if strings.Contains(r.stderr, "is locked by") {
			waited++
		}
	}
	if waited != 1 {
		t.Errorf("want exactly one apply waiting for the other's lock, got %d:\n%s\n%s", waited, results[0], results[1])
	}
	if got := lockAppContainers(t, ship); len(got) != 1 || got[0] != "lock-app-1" {
		t.Errorf("containers after two concurrent applies: %v", got)
	}
	if v := appVersion(t, ship); v != "2" {
		t.Errorf("VERSION %q, want 2", v)
	}
	if out := ship.Docker(t, "ps", "-a", "--filter", "label=io.maestro-sync/lock", "--format", "{{.Names}}"); out != "" {
		t.Errorf("locks left after the applies: %s", out)
	}

	// Without waiting, the second apply fails at once, naming the holder.
	writeLockManifest(t, dir, ship, "3")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := make(chan verbResult, 1)
	go func() { first <- runVerb(t, dir, ctx, "apply") }()
	waitFor(t, "the first apply's lock", func() bool {
		return ship.Docker(t, "ps", "-a", "--filter", "label=io.maestro-sync/lock", "--format", "{{.Names}}") != ""
	})
	r := runVerb(t, dir, nil, "apply", "--lock-timeout", "0")
	if r.code != 1 || !strings.Contains(r.stderr, "is locked by") || !strings.Contains(r.stderr, "pid") {
		t.Errorf("apply during another apply: %s", r)
	}
	st := runVerb(t, dir, nil, "lock", "status")
	if st.code != 0 || !strings.Contains(st.out, "locked") || !strings.Contains(st.out, "held") {
		t.Errorf("lock status during an apply: %s", st)
	}
	if rr := <-first; rr.code != 0 {
		t.Errorf("the first apply: %s", rr)
	}
	if got := lockAppContainers(t, ship); len(got) != 1 {
		t.Errorf("containers: %v", got)
	}
}

// kill -9 of an apply holding the lock mid-replacement: the next apply
// waits for the lock to expire, then repairs what the killed one left.
func TestKilledLockHolderExpires(t *testing.T) {
	ship, dir := deployedLockApp(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "apply", "--lock-ttl", "4s")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), verbCLIEnv+"=1", "DOCKER_CONFIG="+filepath.Join(dir, ".docker"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replacement in flight", func() bool { return len(lockAppContainers(t, ship)) == 2 })
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	killed := time.Now()
	r := runVerb(t, dir, nil, "apply", "--lock-timeout", "1m")
	if r.code != 0 || !strings.Contains(r.stderr, "is locked by") {
		t.Fatalf("apply after kill -9 of the holder: %s", r)
	}
	if waited := time.Since(killed); waited < 2*time.Second {
		t.Errorf("the lock of the killed apply was taken after %s, before it expired", waited)
	}
	if got := lockAppContainers(t, ship); len(got) != 1 || got[0] != "lock-app-1" {
		t.Errorf("containers after the repair: %v", got)
	}
	if v := appVersion(t, ship); v != "2" {
		t.Errorf("VERSION %q, want 2", v)
	}
}
