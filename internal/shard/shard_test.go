package shard

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

func mustShard(t *testing.T, globs []string, selector string) *Shard {
	t.Helper()
	g, err := ParseGlobs(globs)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := ParseSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	return New(g, sel)
}

func TestMatch(t *testing.T) {
	a := map[string]string{"shard": "a", "team": "web"}
	b := map[string]string{"shard": "b"}
	for _, tc := range []struct {
		globs    []string
		selector string
		path     string
		labels   map[string]string
		want     bool
	}{
		{nil, "", "x/manifest.yml", nil, true},
		{[]string{"apps/eu/**"}, "", "apps/eu/shop/manifest.yml", nil, true},
		{[]string{"apps/eu/**"}, "", "apps/us/shop/manifest.yml", nil, false},
		{[]string{"apps/eu"}, "", "apps/eu/shop/manifest.yml", nil, true}, // a directory above
		{[]string{"apps/eu"}, "", "apps/europe/manifest.yml", nil, false}, // not a prefix match
		{[]string{"apps/*/shop"}, "", "apps/us/shop/manifest.yml", nil, true},
		{[]string{"*/manifest.yml"}, "", "a/manifest.yml", nil, true},
		{[]string{"*/manifest.yml"}, "", "a/b/manifest.yml", nil, false},
		{[]string{"apps/{eu,us}/**"}, "", "apps/us/x/manifest.yaml", nil, true},
		{[]string{"a", "b"}, "", "b/manifest.yml", nil, true},
		{nil, "shard=a", "x/manifest.yml", a, true},
		{nil, "shard=a", "x/manifest.yml", b, false},
		{nil, "shard=a", "x/manifest.yml", nil, false},
		{nil, "shard!=a", "x/manifest.yml", nil, true},
		{nil, "shard in (a,b),team", "x/manifest.yml", a, true},
		{nil, "shard in (a,b),team", "x/manifest.yml", b, false},
		{[]string{"apps/**"}, "shard=a", "apps/x/manifest.yml", a, true},
		{[]string{"apps/**"}, "shard=a", "ops/x/manifest.yml", a, false},
	} {
		s := mustShard(t, tc.globs, tc.selector)
		if got := s.Match(tc.path, tc.labels); got != tc.want {
			t.Errorf("%q %q: Match(%s, %v) = %v, want %v", tc.globs, tc.selector, tc.path, tc.labels, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, g := range []string{"apps/[eu", "apps/{eu", "/apps/eu"} {
		if _, err := ParseGlobs([]string{g}); err == nil || !strings.Contains(err.Error(), g) {
			t.Errorf("ParseGlobs(%q) = %v, want an error naming it", g, err)
		}
	}
	for _, s := range []string{"shard in", "shard in (a", "!!x", "sh ard=a"} {
		if _, err := ParseSelector(s); err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("ParseSelector(%q) = %v, want an error naming it", s, err)
		}
	}
	if s := mustShard(t, []string{" ", ""}, " "); s != nil {
		t.Errorf("empty globs and selector = %v, want nil (every environment)", s)
	}
}

func TestPrunes(t *testing.T) {
	var all *Shard
	if !all.Prunes("", nil, false) {
		t.Error("without a shard, an environment without a record is not pruned; want pruned, as before shards")
	}
	a := mustShard(t, []string{"a/**"}, "shard=a")
	for _, tc := range []struct {
		path   string
		labels map[string]string
		ok     bool
		want   bool
	}{
		{"a/x/manifest.yml", map[string]string{"shard": "a"}, true, true},
		{"a/x/manifest.yml", map[string]string{"shard": "b"}, true, false},
		{"b/x/manifest.yml", map[string]string{"shard": "a"}, true, false},
		{"", nil, false, false}, // no record: no shard prunes it
	} {
		if got := a.Prunes(tc.path, tc.labels, tc.ok); got != tc.want {
			t.Errorf("Prunes(%s, %v, %v) = %v, want %v", tc.path, tc.labels, tc.ok, got, tc.want)
		}
	}
	if got, want := a.String(), "environments=a/** selector=shard=a"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestSplit(t *testing.T) {
	env := func(name, shard string) string {
		return "__maestro: {labels: {shard: " + shard + "}}\nname: " + name + "\nships: {s: {ip: 10.0.0.1}}\nservices: {web: {image: nginx, instances: {" + name + "-1: {ship: s}}}}\n"
	}
	fsys := fstest.MapFS{
		"a1/manifest.yml":     {Data: []byte(env("a1", "a"))},
		"a2/manifest.yml":     {Data: []byte(env("a2", "a"))},
		"b1/manifest.yml":     {Data: []byte(env("b1", "b"))},
		"bad-a/manifest.yml":  {Data: []byte("__maestro: {labels: {shard: a}}\nname: bad-a\nships: {}\nservices: {w: {instances: {w: {ship: none}}}}\n")},
		"bad-b/manifest.yml":  {Data: []byte("__maestro: {labels: {shard: b}}\nname: bad-b\nships: {}\nservices: {w: {instances: {w: {ship: none}}}}\n")},
		"broken/manifest.yml": {Data: []byte("name: [broken\n")},
	}
	repo, err := manifest.Load(fsys, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := mustShard(t, nil, "shard=a").Split(repo)
	var names []string
	for _, e := range v.Repo.Environments {
		names = append(names, e.Name)
	}
	if diff := cmp.Diff([]string{"a1", "a2"}, names); diff != "" {
		t.Errorf("environments (-want +got):\n%s", diff)
	}
	// broken's labels cannot be read: it may be a's, so it stalls here.
	if diff := cmp.Diff([]string{"bad-a/manifest.yml", "broken/manifest.yml"}, v.Repo.Invalid); diff != "" {
		t.Errorf("invalid (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"b1": true, "bad-b": true}, v.Others); diff != "" {
		t.Errorf("others (-want +got):\n%s", diff)
	}
	for _, d := range v.Repo.Diagnostics {
		if strings.HasPrefix(d.File, "bad-b") {
			t.Errorf("a diagnostic of another shard's file: %v", d)
		}
	}
	// By path, the broken file is known to be another shard's.
	v = mustShard(t, []string{"a*", "bad-a"}, "").Split(repo)
	if diff := cmp.Diff([]string{"bad-a/manifest.yml"}, v.Repo.Invalid); diff != "" {
		t.Errorf("by path, invalid (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"b1": true, "bad-b": true}, v.Others); diff != "" {
		t.Errorf("by path, others (-want +got):\n%s", diff)
	}
}
