package manifest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// oneAtATimeFS fails a test when two calls overlap: a file system that is
// not safe for concurrent use.
type oneAtATimeFS struct {
	t     *testing.T
	fsys  fs.FS
	busy  atomic.Bool
	calls atomic.Int64
}

func (o *oneAtATimeFS) enter() func() {
	if !o.busy.CompareAndSwap(false, true) {
		o.t.Error("two reads of the file system at once")
		return func() {}
	}
	o.calls.Add(1)
	time.Sleep(100 * time.Microsecond) // a slow read widens the window
	return func() { o.busy.Store(false) }
}

func (o *oneAtATimeFS) Open(name string) (fs.File, error) {
	defer o.enter()()
	return o.fsys.Open(name)
}

// parallelRepo is a repository of envs environments whose manifests are
// templates including a file and reading env files.
func parallelRepo(envs int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for e := range envs {
		dir := fmt.Sprintf("env%02d", e)
		fsys[dir+"/ships.j2"] = &fstest.MapFile{Data: []byte("ships:\n  a: {ip: 10.0.0.1}\n  b: {ip: 10.0.0.2}\n")}
		fsys[dir+"/app.env"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("FROM_FILE=%d\n", e))}
		fsys[dir+"/manifest.yml"] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`__maestro: {schema: 2}
name: env%02d
{%% include "ships.j2" %%}
services:
{%% for s in range(%d) %%}
  svc{{ s }}:
    image: registry.example.com/svc:{{ s }}
    envfile: app.env
    env: {INDEX: "{{ s }}"}
    instances:
      e%02d-svc{{ s }}-1: {ship: a}
      e%02d-svc{{ s }}-2: {ship: b}
{%% endfor %%}
`, e, 5+e, e, e))}
	}
	return fsys
}

// TestParallelLoadIsTheSequentialLoad checks that the manifests of a
// repository, loaded in parallel, give what loading each on its own gives,
// and that the file system is read one call at a time.
func TestParallelLoadIsTheSequentialLoad(t *testing.T) {
	files := parallelRepo(12)
	fsys := &oneAtATimeFS{t: t, fsys: files}
	repo, err := Load(fsys, Options{})
	if err != nil || repo.Err() != nil {
		t.Fatalf("load: %v %v", err, repo.Err())
	}
	if len(repo.Environments) != 12 || fsys.calls.Load() == 0 {
		t.Fatalf("%d environments from %d reads", len(repo.Environments), fsys.calls.Load())
	}
	var cache Cache
	cached, err := cache.Load(fsys, Options{})
	if err != nil || cached.Err() != nil {
		t.Fatalf("cache load: %v %v", err, cached.Err())
	}
	// Every field, unexported ones too (positions, the graph).
	opts := cmp.Options{cmp.Exporter(func(reflect.Type) bool { return true }), cmpopts.EquateEmpty()}
	for i, env := range repo.Environments {
		one, err := LoadFiles(files, []string{env.Path}, Options{})
		if err != nil || one.Err() != nil || len(one.Environments) != 1 {
			t.Fatalf("load %s alone: %v %v", env.Path, err, one.Err())
		}
		if diff := cmp.Diff(one.Environments[0], env, opts...); diff != "" {
			t.Errorf("%s loaded in parallel differs from its load alone (-alone +parallel):\n%s", env.Path, diff)
		}
		if diff := cmp.Diff(one.Environments[0], cached.Environments[i], opts...); diff != "" {
			t.Errorf("%s loaded through the cache differs from its load alone (-alone +cached):\n%s", env.Path, diff)
		}
	}
}

// TestParallelServicesAreTheSequentialLoad checks that building the
// services of a manifest in parallel gives what building them one after
// the other (GOMAXPROCS 1) gives, problems and their order included, on
// every manifest of the test corpora (broken ones report many problems)
// and on a large generated one. Under -race it also finds a service that
// reads what another is building. The corpora's golden files pin what the
// load reports.
func TestParallelServicesAreTheSequentialLoad(t *testing.T) {
	dirs := map[string]fs.FS{"generated": genRepo(1, 300)} // parsed in parts
	for _, corpus := range []string{"testdata/invalid", "testdata/reference"} {
		entries, err := os.ReadDir(corpus)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs[corpus+"/"+e.Name()] = os.DirFS(filepath.Join(corpus, e.Name()))
			}
		}
	}
	if len(dirs) < 100 {
		t.Fatalf("only %d manifests found", len(dirs))
	}
	opts := Options{Environ: map[string]string{"DEPLOY_TAG": "1.25", "HOME": "/home/deployer", "USER": "deployer"}}
	load := func(procs int, fsys fs.FS) (*Repo, error) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		return Load(fsys, opts)
	}
	cmpOpts := cmp.Options{cmp.Exporter(func(reflect.Type) bool { return true }), cmpopts.EquateEmpty(),
		// A build context's file system is the one given to Load.
		cmpopts.IgnoreFields(Build{}, "FS")}
	diagnostics := 0
	for name, fsys := range dirs {
		one, err1 := load(1, fsys)
		many, err2 := load(8, fsys)
		if (err1 == nil) != (err2 == nil) {
			t.Errorf("%s: sequential load: %v, parallel load: %v", name, err1, err2)
			continue
		}
		if err1 != nil {
			continue
		}
		diagnostics += len(one.Diagnostics)
		if diff := cmp.Diff(one, many, cmpOpts...); diff != "" {
			t.Errorf("%s: the parallel load differs from the sequential one (-sequential +parallel):\n%s", name, diff)
		}
	}
	if diagnostics < 100 {
		t.Errorf("the corpora reported only %d problems: they should exercise their order", diagnostics)
	}
}
