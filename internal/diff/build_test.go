package diff

import (
	"bytes"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

const builtShop = `name: shop
ships:
  s1: {ip: 10.0.0.1}
  s2: {ip: 10.0.0.2}
services:
  web:
    image: registry.example.com/shop/web
    build: app
    instances:
      web-1: {ship: s1}
      web-2: {ship: s2}
  api:
    image: registry.example.com/shop/web
    build: app
    instances:
      api-1: {ship: s2}
  tool:
    image: registry.example.com/shop/tool
    build: tool
    instances:
      tool-1: {ship: s2}
`

// appFiles is the repository of builtShop at some revision.
func appFiles(index, main string) fstest.MapFS {
	return fstest.MapFS{
		"app/Dockerfile":  {Data: []byte("FROM base\nCOPY . /app\n")},
		"app/index.html":  {Data: []byte(index)},
		"app/main.go":     {Data: []byte(main)},
		"tool/Dockerfile": {Data: []byte("FROM base\n")},
		"README.md":       {Data: []byte(index + main)},
	}
}

// TestReviewNamesTheBuild: the review plan of a change of app/ builds
// its image once for the two services that run it, says how many files
// changed, and builds nothing for a context that did not change.
func TestReviewNamesTheBuild(t *testing.T) {
	base := loadFiles(t, appFiles("v1", "package main"), map[string]string{"manifest.yml": builtShop})
	head := loadFiles(t, appFiles("v2", "package main // 2"), map[string]string{"manifest.yml": builtShop})
	p := Revisions(base, head, nil)
	var builds []plan.Step
	for _, st := range p.Steps {
		if st.Action == plan.Build {
			builds = append(builds, st)
		}
	}
	if len(builds) != 1 || builds[0].Instance != "web, api" || builds[0].Causes[0] != "context changed: 2 files" ||
		!strings.Contains(builds[0].Causes[1], "context app sha256:") {
		t.Fatalf("build steps: %+v", builds)
	}
	var md bytes.Buffer
	if err := p.WriteMarkdown(&md, plan.MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "context changed: 2 files") || !strings.Contains(md.String(), "1 to build") {
		t.Errorf("markdown:\n%s", md.String())
	}
	if p := Revisions(base, loadFiles(t, appFiles("v1", "package main"), map[string]string{"manifest.yml": builtShop + "\n"}), nil); p.Summary().Build != 0 {
		t.Errorf("an unchanged context is built: %+v", p.Steps)
	}
}

// TestComputeBuilds: against live state, an image not yet pushed is
// built before the instances that run it come up; an image already
// pushed is not built again, and the instances run it pinned by digest.
func TestComputeBuilds(t *testing.T) {
	envs := loadFiles(t, appFiles("v1", "x"), map[string]string{"manifest.yml": builtShop})
	state := emptyShips(envs)
	p := Compute(envs, state, Options{})
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	web := envs[0].Service("web").Image
	builds := map[string]plan.Step{}
	for _, st := range p.Steps {
		if st.Action == plan.Build {
			builds[st.Build.Image] = st
		}
	}
	if len(builds) != 2 || builds[web].Ship != "s1" || builds[web].Causes[0] != "not built yet" {
		t.Fatalf("builds: %+v", builds)
	}
	for _, st := range p.Steps {
		if st.Action == plan.Create && st.Service != "tool" && (len(st.After) != 1 || st.After[0] != builds[web].ID) {
			t.Errorf("%s runs after %v", st.Instance, st.After)
		}
	}

	state.Images = map[string]*live.Image{web: {Present: true, Digest: "sha256:0123"}}
	p = Compute(envs, state, Options{})
	for _, st := range p.Steps {
		switch {
		case st.Action == plan.Build && st.Build.Image == web:
			t.Errorf("a pushed image is built again")
		case st.Action == plan.Create && st.Service == "web" && st.Image != web+"@sha256:0123":
			t.Errorf("%s runs %q", st.Instance, st.Image)
		}
	}
}

// TestBuildOfADependent: a built service that requires another one being
// created builds first, without waiting for it, and the plan is valid.
func TestBuildOfADependent(t *testing.T) {
	text := strings.Replace(builtShop, "    build: tool\n", "    build: tool\n    requires: [web]\n", 1)
	envs := loadFiles(t, appFiles("v1", "x"), map[string]string{"manifest.yml": text})
	state := emptyShips(envs)
	p := Compute(envs, state, Options{})
	if err := p.Validate(); err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, st := range p.Steps {
		if st.Action == plan.Build && len(st.After) != 0 {
			t.Errorf("build %s waits for %v", st.Instance, st.After)
		}
	}
}

// TestStaleWhenTheContextMoved: a saved plan is refused once a file of a
// build context changed, though no manifest did.
func TestStaleWhenTheContextMoved(t *testing.T) {
	v1 := loadFiles(t, appFiles("v1", "x"), map[string]string{"manifest.yml": builtShop})
	v2 := loadFiles(t, appFiles("v2", "x"), map[string]string{"manifest.yml": builtShop})
	saved := Compute(v1, emptyShips(v1), Options{})
	if got := Stale(saved, Compute(v1, emptyShips(v1), Options{})); len(got) != 0 {
		t.Fatalf("an unchanged repository: %v", got)
	}
	got := Stale(saved, Compute(v2, emptyShips(v2), Options{}))
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "new step build") {
		t.Errorf("a moved context: %v", got)
	}
}

// emptyShips is the live state of builtShop's two ships with nothing on
// them.
func emptyShips(envs []*manifest.Environment) *live.State {
	s := &live.State{Hosts: map[string]*live.Host{}}
	for _, name := range []string{"s1", "s2"} {
		addr := envs[0].Ships[name].Address()
		s.Hosts[addr] = &live.Host{Address: addr}
	}
	return s
}
