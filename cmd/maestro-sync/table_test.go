package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// TestTableKeepsNamesWhole: instance names of 40 characters are printed
// whole (the columns are as wide as the longest name), whatever the
// terminal's width; without a terminal there is no escape sequence.
func TestTableKeepsNamesWhole(t *testing.T) {
	long1 := "monitoring-pinger-eu-west-1-zone-a-00001" // 40 characters
	long2 := "monitoring-pinger-eu-west-1-zone-a-00002"
	text := "name: monitoring\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  pinger:\n    image: busybox:1\n    instances:\n      " +
		long1 + ": {ship: s1}\n      " + long2 + ": {ship: s1}\n"
	repo, err := manifest.Load(fstest.MapFS{"manifest.yml": {Data: []byte(text)}}, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := repo.Environments[0]
	var refs []docker.Ref
	for _, in := range env.Instances() {
		refs = append(refs, docker.Ref{Env: env, In: in})
	}
	t.Setenv("COLUMNS", "80")
	var out bytes.Buffer
	tb := newTable(&out, refs, kindStatus, false)
	tb.print(tb.line(0, "1:abcdef0", "running for 3s", green), tb.line(1, "1:abcdef1", "down", red))
	for _, name := range []string{long1, long2} {
		if !strings.Contains(out.String(), name+"  pinger") {
			t.Errorf("%s is not whole:\n%s", name, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("escape sequences without a terminal:\n%q", out.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 || strings.Index(lines[0], "STATUS") != strings.Index(lines[1], "running") {
		t.Errorf("the columns do not line up:\n%s", out.String())
	}
}

// TestNoColor: NO_COLOR or --no-color turns colours off.
func TestNoColor(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	noColorFlag = false
	if noColor() {
		t.Error("colours off with neither NO_COLOR nor --no-color")
	}
	t.Setenv("NO_COLOR", "1")
	if !noColor() {
		t.Error("NO_COLOR=1 leaves colours on")
	}
	t.Setenv("NO_COLOR", "")
	noColorFlag = true
	defer func() { noColorFlag = false }()
	if !noColor() {
		t.Error("--no-color leaves colours on")
	}
}
