package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// screenshotDir is where the dashboard test leaves its screenshots (the
// test's log names the files).
var screenshotDir = filepath.Join(os.TempDir(), "maestro-sync-screenshots")

// chromium runs headless Chromium with args and returns its standard
// output.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium: run scripts/docker-setup.sh (or make test, which runs it)")
	}
	all := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + t.TempDir()}, args...)
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, all...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 10 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("chromium %v did not finish", args)
	}
	return out.String()
}

// screenshot saves a screenshot of url at the window size and checks it
// is an image of some substance.
func screenshot(t *testing.T, name, url string, width, height int) {
	t.Helper()
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(screenshotDir, name)
	os.Remove(path)
	chromium(t, fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+path, url)
	data, err := os.ReadFile(path)
	if err != nil || len(data) < 10_000 || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %d bytes, %v", path, len(data), err)
	}
	t.Logf("screenshot: %s (%dx%d, %d bytes)", path, width, height, len(data))
}

// stagedManifest is a routed service of two instances rolled out one at a
// time with a long bake: a deploy of a new version stays mid-rollout.
func stagedManifest(ship *dockertest.Ship, gen string) string {
	return fmt.Sprintf(`__maestro: {schema: 2}
name: staged
ships:
  s1: {ip: %s, socket_path: %s, timeout: 20}
proxy: {image: maestro-test/caddy:2, http: 18112}
services:
  web:
    image: maestro-test/busybox:1
    env: {GEN: "%s"}
    ports: {http: "8080:8080"}
    proxy: {health: /up, health_timeout: 4s, drain: 1s}
    rollout: {batch: 1, bake: 120s}
    instances:
      staged-1: {ship: s1, stop_timeout: 1, command: [sh, -c, 'echo "$GEN" > /www/index.html && echo ok > /www/up && exec httpd -f -p 8080 -h /www']}
      staged-2: {ship: s1, stop_timeout: 1, command: [sh, -c, 'echo "$GEN" > /www/index.html && echo ok > /www/up && exec httpd -f -p 8080 -h /www']}
`, ship.IP, ship.Socket, gen)
}

// TestDashboardInABrowser loads the dashboard of a daemon with real
// deploys in headless Chromium: three environments, one synced, one
// stalled (an invalid file; what still runs is shown) and one in the
// middle of a staged rollout; an environment page and a run page. It
// checks what the browser rendered and saves screenshots, desktop and
// phone sized.
func TestDashboardInABrowser(t *testing.T) {
	ship := dockertest.StartShips(t, 1)[0]
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "manifest.yml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("shop", appManifest("shop", ship, 18113, "1", httpCheck))
	write("staged", stagedManifest(ship, "1"))
	write("broken", appManifest("broken", ship, 18114, "1", httpCheck))
	d := startDaemon(t, t.TempDir(), "--dir", dir, "--poll", "1h", "--resync", "1h")
	waitFor(t, "first deploys", 90*time.Second, func() bool {
		st := d.status()
		n := 0
		for _, e := range st.Environments {
			if e.State == "synced" {
				n++
			}
		}
		return n == 3
	})
	// The broken environment's file breaks (an unknown ship): it stalls,
	// and what runs of it stays shown. Then a new version of staged
	// starts a rollout that bakes for two minutes.
	write("broken", strings.Replace(appManifest("broken", ship, 18114, "2", httpCheck), "ship: s1", "ship: s9", 1))
	write("staged", stagedManifest(ship, "2"))
	waitFor(t, "staged mid-rollout and broken stalled", 90*time.Second, func() bool {
		var staged, broken bool
		for _, e := range d.status().Environments {
			staged = staged || e.Name == "staged" && e.State == "progressing"
			broken = broken || e.Name == "broken" && e.State == "stalled"
		}
		return staged && broken
	})

	dom := chromium(t, "--dump-dom", d.base+"/")
	for _, want := range []string{"Environments", "shop", "synced", "staged", "progressing", "rollout of web: batch 1 of 2",
		"broken", "stalled", `unknown ship "s9"`, "broken-app", "shop-app", "staged-1", "Last runs", "start"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered dashboard lacks %q", want)
		}
	}
	if strings.Contains(dom, "Sync now") {
		t.Errorf("controls are shown without a token")
	}
	screenshot(t, "dashboard-desktop.png", d.base+"/", 1280, 1600)
	screenshot(t, "dashboard-phone.png", d.base+"/", 390, 2400)

	envDOM := chromium(t, "--dump-dom", d.base+"/environments/broken")
	for _, want := range []string{"broken", "stalled", `unknown ship "s9"`, "broken-app", "running", "Runs"} {
		if !strings.Contains(envDOM, want) {
			t.Errorf("the page of the stalled environment lacks %q", want)
		}
	}
	screenshot(t, "environment-stalled.png", d.base+"/environments/broken", 1280, 1000)

	var runID uint64
	resp := d.status()
	for _, e := range resp.Environments {
		if e.Name == "shop" {
			runID = e.LastRunID
		}
	}
	if runID == 0 {
		t.Fatalf("shop has no last run: %+v", resp)
	}
	runDOM := chromium(t, "--dump-dom", fmt.Sprintf("%s/runs/%d", d.base, runID))
	for _, want := range []string{fmt.Sprintf("Run #%d", runID), "shop", "create", "shop-app", "success"} {
		if !strings.Contains(runDOM, want) {
			t.Errorf("the run page lacks %q", want)
		}
	}
	screenshot(t, "run.png", fmt.Sprintf("%s/runs/%d", d.base, runID), 1280, 800)
}
