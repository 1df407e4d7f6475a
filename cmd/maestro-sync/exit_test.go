package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// plan and apply exit 1 on what keeps them from doing everything: an
// unreachable ship, an invalid environment (also beside a valid one).
func TestExitCodesTellTheTruth(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, text string) { t.Helper(); writeFile(t, dir, rel, text) }
	down := "__maestro: {schema: 2}\nname: down\nships:\n  s1: {ip: 127.0.0.1, socket_path: " + filepath.Join(dir, "no.sock") + ", timeout: 2}\nservices:\n  web: {image: web:1, instances: {web-1: {ship: s1}}}\n"
	write("down/manifest.yml", down)
	r := runVerb(t, dir, nil, "plan", "down")
	if r.code != 1 || !strings.Contains(r.out, "on unreachable ships") {
		t.Errorf("plan with an unreachable ship: %s", r)
	}
	if r := runVerb(t, dir, nil, "apply", "down"); r.code != 1 {
		t.Errorf("apply with an unreachable ship: %s", r)
	}
	write("bad/manifest.yml", "__maestro: {schema: 2}\nname: bad\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  web: {image: web:1, instances: {web-1: {ship: s9}}}\n")
	r = runVerb(t, dir, nil, "plan", "bad")
	if r.code != 1 || !strings.Contains(r.out, "1 invalid environment(s)") || !strings.Contains(r.stderr, "unknown ship") {
		t.Errorf("plan with an invalid environment: %s", r)
	}
}
