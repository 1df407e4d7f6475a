package manifest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// cacheRepo is a repository of two environments: a reads an env file, b
// renders its image tag from an included template and the env variable
// TAG.
func cacheRepo() fstest.MapFS {
	return fstest.MapFS{
		"a/manifest.yml": {Data: []byte("name: a\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: busybox:1\n    envfile: app.env\n    instances:\n      a-1: {ship: s1}\n")},
		"a/app.env":      {Data: []byte("FOO=1\n")},
		"b/manifest.yml": {Data: []byte("name: b\nships:\n  s1: {ip: 10.0.0.2}\nservices:\n  web:\n    image: nginx:{% include \"tag.j2\" %}\n    env: {TAG: \"{{ env.TAG | default('none') }}\"}\n    instances:\n      b-1: {ship: s1}\n")},
		"b/tag.j2":       {Data: []byte("1.25")},
	}
}

// byName returns the environments of repo by name.
func byName(t *testing.T, repo *Repo) map[string]*Environment {
	t.Helper()
	if err := repo.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	out := map[string]*Environment{}
	for _, env := range repo.Environments {
		out[env.Name] = env
	}
	return out
}

// sameAsLoad checks that a cached load gives what Load gives.
func sameAsLoad(t *testing.T, fsys fstest.MapFS, opts Options, got *Repo) {
	t.Helper()
	want, err := Load(fsys, opts)
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("cached load:\n%s\nwant:\n%s", gj, wj)
	}
	if g, w := got.Diagnostics.Error(), want.Diagnostics.Error(); g != w {
		t.Errorf("cached load's diagnostics:\n%s\nwant:\n%s", g, w)
	}
	if strings.Join(got.Invalid, ",") != strings.Join(want.Invalid, ",") {
		t.Errorf("invalid %v, want %v", got.Invalid, want.Invalid)
	}
}

func TestCacheReusesUnchangedEnvironments(t *testing.T) {
	fsys := cacheRepo()
	var c Cache
	load := func(opts Options) map[string]*Environment {
		t.Helper()
		repo, err := c.Load(fsys, opts)
		if err != nil {
			t.Fatal(err)
		}
		sameAsLoad(t, fsys, opts, repo)
		return byName(t, repo)
	}
	first := load(Options{})
	if c.builds != 2 {
		t.Fatalf("first load built %d environments, want 2", c.builds)
	}

	second := load(Options{})
	if c.builds != 2 {
		t.Errorf("an unchanged repository was loaded again: %d builds, want 2", c.builds)
	}
	for _, name := range []string{"a", "b"} {
		if first[name] != second[name] {
			t.Errorf("environment %s was not re-used", name)
		}
	}

	// An included template changes: only b is loaded again.
	fsys["b/tag.j2"] = &fstest.MapFile{Data: []byte("1.27")}
	third := load(Options{})
	if c.builds != 3 {
		t.Errorf("after changing b's include: %d builds, want 3", c.builds)
	}
	if third["a"] != second["a"] {
		t.Error("a was loaded again although none of its files changed")
	}
	if third["b"] == second["b"] || third["b"].Services[0].Image != "nginx:1.27" {
		t.Errorf("b was not loaded again from its changed include (image %s)", third["b"].Services[0].Image)
	}

	// An env file changes: only a is loaded again.
	fsys["a/app.env"] = &fstest.MapFile{Data: []byte("FOO=2\n")}
	fourth := load(Options{})
	if c.builds != 4 || fourth["b"] != third["b"] || fourth["a"] == third["a"] {
		t.Errorf("after changing a's env file: %d builds (want 4), a re-used %v (want false), b re-used %v (want true)",
			c.builds, fourth["a"] == third["a"], fourth["b"] == third["b"])
	}
	if v, _ := fourth["a"].Instances()[0].Env.Get("FOO"); v != "2" {
		t.Errorf("FOO = %q after the env file changed, want 2", v)
	}

	// The options change: everything is loaded again.
	fifth := load(Options{Environ: map[string]string{"TAG": "x"}})
	if c.builds != 6 || fifth["a"] == fourth["a"] || fifth["b"] == fourth["b"] {
		t.Errorf("after changing the options: %d builds, want 6", c.builds)
	}
	if v, _ := fifth["b"].Instances()[0].Env.Get("TAG"); v != "x" {
		t.Errorf("TAG = %q, want x", v)
	}
	sixth := load(Options{Environ: map[string]string{"TAG": "x"}})
	if c.builds != 6 || sixth["b"] != fifth["b"] {
		t.Errorf("the same options again: %d builds, want 6", c.builds)
	}
	sixth = load(Options{Environ: map[string]string{"TAG": "x"}, Strict: true})
	if c.builds != 8 {
		t.Errorf("strict: %d builds, want 8", c.builds)
	}
}

func TestCacheKeepsOnlyTheLatestEnvironments(t *testing.T) {
	fsys := cacheRepo()
	var c Cache
	if _, err := c.Load(fsys, Options{}); err != nil {
		t.Fatal(err)
	}
	delete(fsys, "a/manifest.yml")
	repo, err := c.Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Environments) != 1 || len(c.entries) != 1 || c.entries["b/manifest.yml"] == nil {
		t.Errorf("after removing a: %d environments, cache holds %d (want 1, b's)", len(repo.Environments), len(c.entries))
	}
}

func TestCacheLoadsAgainWhatItCannotCheck(t *testing.T) {
	fsys := fstest.MapFS{
		"r/manifest.yml": {Data: []byte("name: r\nships:\n  s1: {ip: 10.0.0.1}\nservices:\n  app:\n    image: busybox:1\n    env: {PICK: \"{{ [1, 2, 3] | random }}\"}\n    instances:\n      r-1: {ship: s1}\n")},
		"i/manifest.yml": {Data: []byte("name: i\nships:\n  s1: {ip: 10.0.0.2}\nservices:\n  app:\n    image: busybox:1\n    instances:\n      i-1: {ship: nowhere}\n")},
	}
	var c Cache
	for range 2 {
		repo, err := c.Load(fsys, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(repo.Environments) != 1 || len(repo.Invalid) != 1 || repo.Err() == nil {
			t.Fatalf("got %d environments, invalid %v, err %v; want r valid and i invalid", len(repo.Environments), repo.Invalid, repo.Err())
		}
	}
	if c.builds != 4 {
		t.Errorf("%d builds, want 4: a random template and an invalid environment are loaded every time", c.builds)
	}
}

func TestCacheChecksBetweenEnvironments(t *testing.T) {
	fsys := cacheRepo()
	var c Cache
	if _, err := c.Load(fsys, Options{}); err != nil {
		t.Fatal(err)
	}
	// A new environment takes a's name: both become invalid, although a
	// itself is re-used.
	fsys["c/manifest.yml"] = &fstest.MapFile{Data: []byte("name: a\nships:\n  s1: {ip: 10.0.0.3}\nservices:\n  app:\n    image: busybox:1\n    instances:\n      c-1: {ship: s1}\n")}
	repo, err := c.Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.builds != 3 {
		t.Errorf("%d builds, want 3 (only c is new)", c.builds)
	}
	sameAsLoad(t, fsys, Options{}, repo)
	if got := strings.Join(repo.Invalid, ","); got != "a/manifest.yml,c/manifest.yml" {
		t.Errorf("invalid %s, want a and c (duplicate name)", got)
	}
}

// BenchmarkLoadCached loads the repository of BenchmarkLoad split into 10
// environments through a Cache, with one environment's file changed
// between loads: that one is loaded again, the other 9 are re-used.
func BenchmarkLoadCached(b *testing.B) {
	fsys := genRepo(10, 1000)
	var c Cache
	if _, err := c.Load(fsys, Options{}); err != nil {
		b.Fatal(err)
	}
	base := fsys["env3/manifest.yml"].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		fsys["env3/manifest.yml"] = &fstest.MapFile{Data: fmt.Appendf(append([]byte(nil), base...), "# load %d\n", i)}
		before := c.builds
		repo, err := c.Load(fsys, Options{})
		if err != nil || repo.Err() != nil {
			b.Fatalf("load: %v %v", err, repo.Err())
		}
		if n := len(repo.Environments); n != 10 {
			b.Fatalf("got %d environments", n)
		}
		if c.builds != before+1 {
			b.Fatalf("loaded %d environments, want 1", c.builds-before)
		}
	}
}
