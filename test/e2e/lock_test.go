package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// An operator's apply while the daemon is mid-replacement waits for the
// daemon's deploy lock instead of removing its replacement in flight.
func TestApplyWaitsForTheDaemon(t *testing.T) {
	ship := dockertest.Shared(t, 1)[0]
	bin := binary(t)
	dir := t.TempDir()
	write := func(version, check string) {
		if err := os.WriteFile(filepath.Join(dir, "manifest.yml"), []byte(appManifest("lk", ship, 18109, version, check)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1", httpCheck)
	startDaemon(t, t.TempDir(), "--dir", dir, "--poll", "1h")
	waitFor(t, "first deploy", 60*time.Second, func() bool { return envVersion(t, ship, "lk-app") == "1" })
	write("2", httpCheck+", {type: sleep, wait: 6}")
	waitFor(t, "the daemon's replacement to be checked", 30*time.Second, func() bool {
		return strings.Contains(ship.Docker(t, "ps", "-a", "--format", "{{.Names}}"), "lk-app.next-")
	})
	cmd := exec.Command(bin, "apply", "--lock-timeout", "1m")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is locked by") {
		t.Fatalf("apply during the daemon's replacement: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "0 to create, 0 to replace, 0 to remove, 1 unchanged") {
		t.Errorf("after waiting, apply should find the daemon's work done:\n%s", out)
	}
	names := strings.Fields(ship.Docker(t, "ps", "-a", "--filter", "name=lk-app", "--format", "{{.Names}}"))
	if len(names) != 1 || names[0] != "lk-app" || envVersion(t, ship, "lk-app") != "2" {
		t.Errorf("containers %v, version %q: want only lk-app at version 2", names, envVersion(t, ship, "lk-app"))
	}
}
