package diff

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// The Docker daemons of the ships of shopManifest (docker_port defaults to
// 2375).
const (
	h1 = "tcp://10.0.0.1:2375"
	h2 = "tcp://10.0.0.2:2375"
)

// shopManifest is the environment most tests start from: web requires api,
// which requires db and takes volumes from data-1 (so api depends on data
// too); web-1, api-2 and data-1 share ship s2.
const shopManifest = `name: shop
ships:
  s1: {ip: 10.0.0.1}
  s2: {ip: 10.0.0.2}
services:
  db:
    image: postgres:16.1
    ports: {pg: 5432}
    instances:
      db-1: {ship: s1}
  data:
    image: busybox
    instances:
      data-1: {ship: s2, container_volumes: [/data]}
  api:
    image: registry.example.com/api:1.2
    requires: [db]
    env: {FOO: bar, LOG_LEVEL: info}
    ports: {http: "8080:18080"}
    limits: {memory: 256m}
    instances:
      api-1: {ship: s1}
      api-2: {ship: s2, volumes_from: [data-1]}
  web:
    image: nginx:1.25
    requires: [api]
    instances:
      web-1: {ship: s2}
`

// billingManifest is a second environment on the same Docker daemon as
// shop's s1.
const billingManifest = `name: billing
ships:
  b1: {ip: 10.0.0.1}
services:
  invoice:
    image: billing/invoice:3
    instances:
      inv-1: {ship: b1}
`

// legacyManifest is an environment that is no longer in the repository; its
// containers still run on s1.
const legacyManifest = `name: legacy
ships:
  l1: {ip: 10.0.0.1}
services:
  old:
    image: legacy/old:1
    instances:
      old-1: {ship: l1}
`

// edit returns shopManifest with each old string replaced by the following
// new one; each old string must occur exactly once.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	return editText(t, shopManifest, pairs...)
}

func editText(t *testing.T, text string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if n := strings.Count(text, pairs[i]); n != 1 {
			t.Fatalf("edit: %q occurs %d times", pairs[i], n)
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	return text
}

// loadEnvs loads manifests (one environment each) with files from fsys
// beside them; manifest i is env<i>/manifest.yml.
func loadEnvs(t *testing.T, texts ...string) []*manifest.Environment {
	t.Helper()
	return loadEnvsFS(t, fstest.MapFS{}, texts...)
}

func loadEnvsFS(t *testing.T, fsys fstest.MapFS, texts ...string) []*manifest.Environment {
	t.Helper()
	var srcs []manifest.Source
	for i, text := range texts {
		srcs = append(srcs, manifest.Source{Name: fmt.Sprintf("env%d/manifest.yml", i), Data: []byte(text)})
	}
	repo := manifest.LoadSources(fsys, srcs, manifest.Options{Strict: true})
	if err := repo.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(repo.Environments) != len(texts) {
		t.Fatalf("loaded %d environments, want %d", len(repo.Environments), len(texts))
	}
	return repo.Environments
}

func loadEnv(t *testing.T, text string) *manifest.Environment {
	t.Helper()
	return loadEnvs(t, text)[0]
}

// driverContainer returns the container the Docker driver leaves for an
// instance of environment env once it is swapped in and running: its name is
// the instance name and it carries the labels of containerConfig (see
// internal/driver/docker/spec.go), the spec summary included.
func driverContainer(in *manifest.Instance, env string) live.Container {
	labels := map[string]string{}
	for k, v := range in.Labels {
		labels[k] = v
	}
	summary, err := json.Marshal(in.Spec().Summary())
	if err != nil {
		panic(err)
	}
	labels[label.Env] = env
	labels[label.Service] = in.Service
	labels[label.Instance] = in.Name
	labels[label.SpecHash] = in.SpecHash
	labels[label.Spec] = string(summary)
	labels[label.Revision] = "rev0"
	return live.Container{ID: containerID(env, in.Name, in.SpecHash), Name: in.Name, Image: in.Image, State: "running", Labels: labels}
}

// containerID is a fake 64-hex-character container ID.
func containerID(parts ...string) string {
	id := fmt.Sprintf("%x", strings.Join(parts, "/"))
	for len(id) < 64 {
		id += "0"
	}
	return id[:64]
}

// tempContainer is the replacement container of an interrupted apply: the
// new spec under the temporary name.
func tempContainer(in *manifest.Instance, env string) live.Container {
	c := driverContainer(in, env)
	c.Name = live.TempName(in.Name, in.SpecHash)
	c.ID = containerID("temp", env, in.Name, in.SpecHash)
	return c
}

// foreign is a container maestro-sync does not own.
func foreign(name string) live.Container {
	return live.Container{ID: containerID("foreign", name), Name: name, Image: "busybox:latest", State: "running",
		Labels: map[string]string{"com.example.team": "ops"}}
}

// observed returns a state where every given host was observed and is
// empty.
func observed(addrs ...string) *live.State {
	s := &live.State{Hosts: map[string]*live.Host{}}
	for _, a := range addrs {
		s.Hosts[a] = &live.Host{Address: a}
	}
	return s
}

// put adds containers to a host of s, creating the host if needed, and
// keeps them sorted by name as the driver's Observe does.
func put(s *live.State, addr string, cs ...live.Container) {
	h := s.Hosts[addr]
	if h == nil {
		h = &live.Host{Address: addr}
		s.Hosts[addr] = h
	}
	h.Containers = append(h.Containers, cs...)
	slices.SortStableFunc(h.Containers, func(a, b live.Container) int { return strings.Compare(a.Name, b.Name) })
}

// deploy puts every instance of envs on its ship, as a completed apply
// leaves them.
func deploy(s *live.State, envs ...*manifest.Environment) *live.State {
	for _, env := range envs {
		for _, in := range env.Instances() {
			put(s, env.Ships[in.Ship].Address(), driverContainer(in, env.Name))
		}
	}
	return s
}

// deployed is the state after applying the given manifests on empty ships
// h1 and h2.
func deployed(t *testing.T, texts ...string) *live.State {
	t.Helper()
	return deploy(observed(h1, h2), loadEnvs(t, texts...)...)
}

// change modifies the named container wherever it runs.
func change(t *testing.T, s *live.State, name string, f func(*live.Container)) {
	t.Helper()
	for _, h := range s.Hosts {
		for i := range h.Containers {
			if h.Containers[i].Name == name {
				f(&h.Containers[i])
				return
			}
		}
	}
	t.Fatalf("no container %s", name)
}

// id is the step ID of a container of shop.
func id(host, name string) string { return stepID("shop", host, name) }

// row is what the Compute tests compare of a step. After is kept only for
// mutating steps: the ordering of a step that does nothing is not
// significant.
type row struct {
	ID        string
	Action    plan.Action
	Service   string
	Ship      string
	Causes    []string
	After     []string
	Container string
}

func rows(p *plan.Plan) []row {
	var out []row
	for _, st := range p.Steps {
		r := row{ID: st.ID, Action: st.Action, Service: st.Service, Ship: st.Ship, Causes: st.Causes, Container: st.Container}
		if st.Action.Mutates() {
			r.After = st.After
		}
		out = append(out, r)
	}
	return out
}

// checkSteps checks what every step says of itself against the live state
// and the desired environments: the ID is env/host/container, the host is
// where the container runs or will run, spec hashes and container IDs
// match what is live and desired.
func checkSteps(t *testing.T, envs []*manifest.Environment, state *live.State, p *plan.Plan) {
	t.Helper()
	byName := map[string]*manifest.Environment{}
	for _, e := range envs {
		byName[e.Name] = e
	}
	for _, st := range p.Steps {
		if want := stepID(st.Env, st.Host, st.Instance); st.ID != want {
			t.Errorf("step %s: want id %s", st.ID, want)
		}
		var c *live.Container
		if hi := indexHosts(state, "")[st.Host]; hi != nil {
			c = hi.named[st.Instance]
		}
		switch st.Action {
		case plan.Create, plan.Unknown:
			if st.Container != "" || st.LiveSpecHash != "" {
				t.Errorf("step %s: %s names a live container %s (%s)", st.ID, st.Action, st.Container, st.LiveSpecHash)
			}
		case plan.Replace, plan.Remove, plan.Unchanged, plan.Orphan:
			if c == nil {
				t.Errorf("step %s: no live container %s on %s", st.ID, st.Instance, st.Host)
				continue
			}
			if st.Container != c.ID || st.LiveSpecHash != c.SpecHash() {
				t.Errorf("step %s: container %s (%s), live is %s (%s)", st.ID, st.Container, st.LiveSpecHash, c.ID, c.SpecHash())
			}
			if st.Action == plan.Remove || st.Action == plan.Orphan {
				if !c.Owned() {
					t.Errorf("step %s: %s of a container maestro-sync does not own", st.ID, st.Action)
				}
			}
		case plan.Conflict:
			if c == nil || st.Container != c.ID {
				t.Errorf("step %s: conflict with %s, live is %v", st.ID, st.Container, c)
			}
		}
		if st.Action == plan.Create || st.Action == plan.Replace || st.Action == plan.Unchanged {
			env := byName[st.Env]
			in := env.Instance(st.Instance)
			if in == nil {
				t.Errorf("step %s: %s of an instance that is not desired", st.ID, st.Action)
				continue
			}
			if st.SpecHash != in.SpecHash || st.Host != env.Ships[in.Ship].Address() || st.Ship != in.Ship || st.Service != in.Service {
				t.Errorf("step %s: spec %s on %s (%s) of %s, want %s on %s (%s) of %s", st.ID, st.SpecHash, st.Ship, st.Host, st.Service,
					in.SpecHash, in.Ship, env.Ships[in.Ship].Address(), in.Service)
			}
		}
	}
}

func TestCompute(t *testing.T) {
	shop := loadEnv(t, shopManifest)
	in := func(name string) *manifest.Instance {
		i := shop.Instance(name)
		if i == nil {
			t.Fatalf("no instance %s", name)
		}
		return i
	}
	cid := func(name string) string { return containerID("shop", name, in(name).SpecHash) }
	withFoo := edit(t, "FOO: bar", "FOO: baz")
	fooEnv := loadEnv(t, withFoo)
	// shopPlus has two more instances on s1 (api-3 and web-2), and a
	// service (cache) on s2, that the desired shop no longer has.
	shopPlus := edit(t,
		`      api-2: {ship: s2, volumes_from: [data-1]}`,
		`      api-2: {ship: s2, volumes_from: [data-1]}
      api-3: {ship: s1, ports: {http: "8080:18083"}}`,
		`      web-1: {ship: s2}`,
		`      web-1: {ship: s2}
      web-2: {ship: s1}
  cache:
    image: redis:7
    instances:
      cache-1: {ship: s2}`)
	plus := loadEnv(t, shopPlus)
	plusID := func(name string) string { return containerID("shop", name, plus.Instance(name).SpecHash) }
	// withExtra is shop deployed, plus the containers of the given
	// instances of shopPlus, left from an earlier revision.
	withExtra := func(t *testing.T, names ...string) *live.State {
		s := deployed(t, shopManifest)
		for _, n := range names {
			put(s, plus.Ships[plus.Instance(n).Ship].Address(), driverContainer(plus.Instance(n), "shop"))
		}
		return s
	}
	unchanged := func(host, name string) row {
		return row{ID: id(host, name), Action: plan.Unchanged, Service: in(name).Service, Ship: in(name).Ship, Container: cid(name)}
	}
	create := func(host, name string, after ...string) row {
		return row{ID: id(host, name), Action: plan.Create, Service: in(name).Service, Ship: in(name).Ship, Causes: []string{"not found"}, After: after}
	}
	unknown := func(host, name, cause string) row {
		return row{ID: id(host, name), Action: plan.Unknown, Service: in(name).Service, Ship: in(name).Ship, Causes: []string{cause}}
	}
	allUnchanged := []row{unchanged(h2, "data-1"), unchanged(h1, "db-1"), unchanged(h1, "api-1"), unchanged(h2, "api-2"), unchanged(h2, "web-1")}

	tests := []struct {
		name    string
		desired []string
		live    func(t *testing.T) *live.State
		opts    Options
		want    []row
	}{
		{
			name:    "empty ships: create everything, dependencies first",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return observed(h1, h2) },
			// api depends on db (requires) and on data (volumes_from);
			// web on api, and through it on db and data.
			want: []row{
				create(h2, "data-1"),
				create(h1, "db-1"),
				create(h1, "api-1", id(h1, "db-1"), id(h2, "data-1")),
				create(h2, "api-2", id(h1, "db-1"), id(h2, "data-1")),
				create(h2, "web-1", id(h1, "api-1"), id(h1, "db-1"), id(h2, "api-2"), id(h2, "data-1")),
			},
		},
		{
			name:    "up to date",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest) },
			want:    allUnchanged,
		},
		{
			name:    "up to date beside foreign containers and another environment",
			desired: []string{shopManifest, billingManifest},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest, billingManifest)
				put(s, h1, foreign("registry"), foreign("api-1-old"))
				put(s, h2, foreign("portainer"))
				return s
			},
			opts: Options{Prune: true, PruneEnvs: true},
			want: append(slices.Clone(allUnchanged),
				row{ID: stepID("billing", h1, "inv-1"), Action: plan.Unchanged, Service: "invoice", Ship: "b1",
					Container: containerID("billing", "inv-1", loadEnv(t, billingManifest).Instance("inv-1").SpecHash)}),
		},
		{
			name:    "only the missing instance is created",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := observed(h1, h2)
				for _, n := range []string{"data-1", "db-1", "api-1", "web-1"} {
					put(s, shop.Ships[in(n).Ship].Address(), driverContainer(in(n), "shop"))
				}
				return s
			},
			// web-1 is up: it waits for nothing, even though api-2 is
			// created.
			want: []row{unchanged(h2, "data-1"), unchanged(h1, "db-1"), unchanged(h1, "api-1"),
				create(h2, "api-2"), unchanged(h2, "web-1")},
		},
		{
			name:    "spec changed: replace with the causes",
			desired: []string{withFoo},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest) },
			want: []row{
				unchanged(h2, "data-1"), unchanged(h1, "db-1"),
				{ID: id(h1, "api-1"), Action: plan.Replace, Service: "api", Ship: "s1", Causes: []string{"env FOO changed"}, Container: cid("api-1")},
				{ID: id(h2, "api-2"), Action: plan.Replace, Service: "api", Ship: "s2", Causes: []string{"env FOO changed"}, Container: cid("api-2")},
				unchanged(h2, "web-1"),
			},
		},
		{
			name: "replacements wait for the replacements of their transitive dependencies",
			desired: []string{edit(t, "image: postgres:16.1", "image: postgres:16.2",
				"image: nginx:1.25", "image: nginx:1.27")},
			live: func(t *testing.T) *live.State { return deployed(t, shopManifest) },
			want: []row{
				unchanged(h2, "data-1"),
				{ID: id(h1, "db-1"), Action: plan.Replace, Service: "db", Ship: "s1", Container: cid("db-1"),
					Causes: []string{"image tag 16.1 → 16.2", "env DOCKER_IMAGE changed", "env DOCKER_TAG changed"}},
				unchanged(h1, "api-1"), unchanged(h2, "api-2"),
				{ID: id(h2, "web-1"), Action: plan.Replace, Service: "web", Ship: "s2", Container: cid("web-1"),
					Causes: []string{"image tag 1.25 → 1.27", "env DOCKER_IMAGE changed", "env DOCKER_TAG changed"},
					After:  []string{id(h1, "db-1")}},
			},
		},
		{
			name:    "a replacement waits for the replacement of a volumes_from source",
			desired: []string{edit(t, "image: busybox", "image: busybox:1.36")},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest) },
			want: []row{
				{ID: id(h2, "data-1"), Action: plan.Replace, Service: "data", Ship: "s2", Container: cid("data-1"),
					Causes: []string{"image tag latest → 1.36", "env DOCKER_IMAGE changed", "env DOCKER_TAG changed"}},
				unchanged(h1, "db-1"), unchanged(h1, "api-1"), unchanged(h2, "api-2"), unchanged(h2, "web-1"),
			},
		},
		{
			name:    "stopped containers with the desired spec are replaced",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest)
				change(t, s, "api-1", func(c *live.Container) { c.State = "exited" })
				change(t, s, "api-2", func(c *live.Container) { c.State = "dead" })
				change(t, s, "db-1", func(c *live.Container) { c.State = "created" })
				change(t, s, "web-1", func(c *live.Container) { c.State = "restarting" }) // counts as running
				return s
			},
			want: []row{
				unchanged(h2, "data-1"),
				{ID: id(h1, "db-1"), Action: plan.Replace, Service: "db", Ship: "s1", Causes: []string{"container is created"}, Container: cid("db-1")},
				{ID: id(h1, "api-1"), Action: plan.Replace, Service: "api", Ship: "s1", Causes: []string{"container is exited"}, Container: cid("api-1"),
					After: []string{id(h1, "db-1")}},
				{ID: id(h2, "api-2"), Action: plan.Replace, Service: "api", Ship: "s2", Causes: []string{"container is dead"}, Container: cid("api-2"),
					After: []string{id(h1, "db-1")}},
				unchanged(h2, "web-1"),
			},
		},
		{
			name:    "containers without a spec summary",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest)
				change(t, s, "api-1", func(c *live.Container) {
					delete(c.Labels, label.Spec)
					c.Labels[label.SpecHash] = "0123456789abcdef0123456789abcdef"
				})
				change(t, s, "api-2", func(c *live.Container) {
					c.Labels[label.Spec] = "{not json"
					c.Labels[label.SpecHash] = "0123456789abcdef0123456789abcdef"
				})
				// Same hash, no summary: nothing to do.
				change(t, s, "web-1", func(c *live.Container) { delete(c.Labels, label.Spec) })
				return s
			},
			want: []row{
				unchanged(h2, "data-1"), unchanged(h1, "db-1"),
				{ID: id(h1, "api-1"), Action: plan.Replace, Service: "api", Ship: "s1", Container: cid("api-1"),
					Causes: []string{"spec hash differs (the container carries no spec summary)"}},
				{ID: id(h2, "api-2"), Action: plan.Replace, Service: "api", Ship: "s2", Container: cid("api-2"),
					Causes: []string{"spec hash differs (the container carries no spec summary)"}},
				unchanged(h2, "web-1"),
			},
		},
		{
			name:    "a leftover replacement is removed before the instance's step",
			desired: []string{withFoo},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest)
				put(s, h1, tempContainer(fooEnv.Instance("api-1"), "shop"))
				// A leftover of an older attempt, with another spec.
				put(s, h2, tempContainer(shop.Instance("web-1"), "shop"))
				return s
			},
			want: []row{
				{ID: id(h1, live.TempName("api-1", fooEnv.Instance("api-1").SpecHash)), Action: plan.Remove, Service: "api", Ship: "s1",
					Causes:    []string{"leftover replacement container of an interrupted apply"},
					Container: containerID("temp", "shop", "api-1", fooEnv.Instance("api-1").SpecHash)},
				{ID: id(h2, live.TempName("web-1", in("web-1").SpecHash)), Action: plan.Remove, Service: "web", Ship: "s2",
					Causes:    []string{"leftover replacement container of an interrupted apply"},
					Container: containerID("temp", "shop", "web-1", in("web-1").SpecHash)},
				unchanged(h2, "data-1"), unchanged(h1, "db-1"),
				{ID: id(h1, "api-1"), Action: plan.Replace, Service: "api", Ship: "s1", Causes: []string{"env FOO changed"}, Container: cid("api-1"),
					After: []string{id(h1, live.TempName("api-1", fooEnv.Instance("api-1").SpecHash))}},
				{ID: id(h2, "api-2"), Action: plan.Replace, Service: "api", Ship: "s2", Causes: []string{"env FOO changed"}, Container: cid("api-2")},
				unchanged(h2, "web-1"),
			},
		},
		{
			name:    "a leftover replacement of a missing instance is removed before the create",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest)
				h := s.Hosts[h2]
				h.Containers = slices.DeleteFunc(h.Containers, func(c live.Container) bool { return c.Name == "web-1" })
				put(s, h2, tempContainer(in("web-1"), "shop"))
				return s
			},
			want: []row{
				{ID: id(h2, live.TempName("web-1", in("web-1").SpecHash)), Action: plan.Remove, Service: "web", Ship: "s2",
					Causes:    []string{"leftover replacement container of an interrupted apply"},
					Container: containerID("temp", "shop", "web-1", in("web-1").SpecHash)},
				unchanged(h2, "data-1"), unchanged(h1, "db-1"), unchanged(h1, "api-1"), unchanged(h2, "api-2"),
				create(h2, "web-1", id(h2, live.TempName("web-1", in("web-1").SpecHash))),
			},
		},
		{
			name:    "a container without our labels holds an instance's name",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := observed(h1, h2)
				put(s, h1, foreign("db-1"))
				return s
			},
			// Nothing brings db-1 up, so api does not wait for it.
			want: []row{
				create(h2, "data-1"),
				{ID: id(h1, "db-1"), Action: plan.Conflict, Service: "db", Ship: "s1", Container: containerID("foreign", "db-1"),
					Causes: []string{"a container named db-1 exists without maestro-sync labels; it is left alone (apply --adopt replaces it with a container of ours, as MaestroNG's would be)"}},
				create(h1, "api-1", id(h2, "data-1")),
				create(h2, "api-2", id(h2, "data-1")),
				create(h2, "web-1", id(h1, "api-1"), id(h2, "api-2"), id(h2, "data-1")),
			},
		},
		{
			name:    "a container of another environment holds an instance's name",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest)
				h := s.Hosts[h2]
				h.Containers = slices.DeleteFunc(h.Containers, func(c live.Container) bool { return c.Name == "web-1" })
				other := driverContainer(in("web-1"), "staging")
				other.ID = containerID("staging", "web-1")
				put(s, h2, other)
				return s
			},
			opts: Options{Prune: true},
			want: []row{
				unchanged(h2, "data-1"), unchanged(h1, "db-1"), unchanged(h1, "api-1"), unchanged(h2, "api-2"),
				{ID: id(h2, "web-1"), Action: plan.Conflict, Service: "web", Ship: "s2", Container: containerID("staging", "web-1"),
					Causes: []string{`a container named web-1 belongs to environment "staging"; it is left alone`}},
			},
		},
		{
			name:    "containers no longer desired are orphans without prune",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return withExtra(t, "api-3", "web-2", "cache-1") },
			want: append(slices.Clone(allUnchanged),
				row{ID: id(h1, "api-3"), Action: plan.Orphan, Service: "api", Ship: "s1", Container: plusID("api-3"),
					Causes: []string{"no longer in the manifest (use --prune to remove)"}},
				row{ID: id(h1, "web-2"), Action: plan.Orphan, Service: "web", Ship: "s1", Container: plusID("web-2"),
					Causes: []string{"no longer in the manifest (use --prune to remove)"}},
				row{ID: id(h2, "cache-1"), Action: plan.Orphan, Service: "cache", Ship: "s2", Container: plusID("cache-1"),
					Causes: []string{"no longer in the manifest (use --prune to remove)"}},
			),
		},
		{
			name:    "containers no longer desired are removed with prune",
			desired: []string{shopManifest},
			// Stop order is TestComputeStopOrder's.
			live: func(t *testing.T) *live.State { return withExtra(t, "api-3", "cache-1") },
			opts: Options{Prune: true},
			want: append(slices.Clone(allUnchanged),
				row{ID: id(h1, "api-3"), Action: plan.Remove, Service: "api", Ship: "s1", Container: plusID("api-3"),
					Causes: []string{"no longer in the manifest"}},
				row{ID: id(h2, "cache-1"), Action: plan.Remove, Service: "cache", Ship: "s2", Container: plusID("cache-1"),
					Causes: []string{"no longer in the manifest"}},
			),
		},
		{
			name:    "prune of environments that are not loaded",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest, legacyManifest) },
			opts:    Options{Prune: true, PruneEnvs: true},
			want: append(slices.Clone(allUnchanged),
				row{ID: stepID("legacy", h1, "old-1"), Action: plan.Remove, Service: "old", Ship: h1,
					Container: containerID("legacy", "old-1", loadEnv(t, legacyManifest).Instance("old-1").SpecHash),
					Causes:    []string{"environment legacy is no longer in the repository"}}),
		},
		{
			name:    "no prune of a paused environment whose file is gone",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest, legacyManifest) },
			opts:    Options{Prune: true, PruneEnvs: true, Paused: map[string]bool{"legacy": true}},
			want:    allUnchanged,
		},
		{
			name:    "no prune of environments that are not loaded without PruneEnvs",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest, legacyManifest) },
			opts:    Options{Prune: true},
			want:    allUnchanged,
		},
		{
			name:    "no prune of environments that are not loaded without Prune",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest, legacyManifest) },
			opts:    Options{PruneEnvs: true},
			want:    allUnchanged,
		},
		{
			name:    "an instance moved to another ship",
			desired: []string{edit(t, "web-1: {ship: s2}", "web-1: {ship: s1}")},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest) },
			opts:    Options{}, // a move removes the old container even without prune
			want: []row{
				unchanged(h2, "data-1"), unchanged(h1, "db-1"), unchanged(h1, "api-1"), unchanged(h2, "api-2"),
				{ID: id(h1, "web-1"), Action: plan.Create, Service: "web", Ship: "s1", Causes: []string{"not found"}},
				{ID: id(h2, "web-1"), Action: plan.Remove, Service: "web", Ship: "s2", Container: cid("web-1"),
					Causes: []string{"web-1 moved to ship s1"}, After: []string{id(h1, "web-1")}},
			},
		},
		{
			name:    "an unreachable ship: unknown steps, nothing removed from it",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := deployed(t, shopManifest, legacyManifest)
				// Whatever the host lists, an error means nothing is known.
				put(s, h2, driverContainer(plus.Instance("cache-1"), "shop"), driverContainer(loadEnv(t, legacyManifest).Instance("old-1"), "legacy"))
				s.Hosts[h2].Err = errors.New("dial tcp 10.0.0.2:2375: i/o timeout")
				s.Hosts[h1].Containers = slices.DeleteFunc(s.Hosts[h1].Containers, func(c live.Container) bool { return c.Env() == "legacy" })
				return s
			},
			opts: Options{Prune: true, PruneEnvs: true},
			want: []row{
				unknown(h2, "data-1", "ship unreachable: dial tcp 10.0.0.2:2375: i/o timeout"),
				unchanged(h1, "db-1"), unchanged(h1, "api-1"),
				unknown(h2, "api-2", "ship unreachable: dial tcp 10.0.0.2:2375: i/o timeout"),
				unknown(h2, "web-1", "ship unreachable: dial tcp 10.0.0.2:2375: i/o timeout"),
			},
		},
		{
			name:    "a ship that was not observed",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := deploy(observed(h1), shop)
				delete(s.Hosts, h2) // s2 is not in the state at all
				return s
			},
			opts: Options{Prune: true},
			want: []row{
				unknown(h2, "data-1", "ship not observed"),
				unchanged(h1, "db-1"), unchanged(h1, "api-1"),
				unknown(h2, "api-2", "ship not observed"),
				unknown(h2, "web-1", "ship not observed"),
			},
		},
		{
			name:    "Select limits the plan",
			desired: []string{shopManifest},
			live:    func(t *testing.T) *live.State { return observed(h1, h2) },
			opts: Options{Select: func(env *manifest.Environment, in *manifest.Instance) bool {
				return in.Service == "web" || in.Name == "api-1"
			}},
			// api-1 is created and web-1 waits for it; the unselected
			// dependencies are neither created nor waited for.
			want: []row{
				create(h1, "api-1"),
				create(h2, "web-1", id(h1, "api-1")),
			},
		},
		{
			name:    "Select prunes nothing",
			desired: []string{shopManifest},
			live: func(t *testing.T) *live.State {
				s := withExtra(t, "api-3", "web-2", "cache-1")
				put(s, h1, driverContainer(loadEnv(t, legacyManifest).Instance("old-1"), "legacy"))
				return s
			},
			opts: Options{Prune: true, PruneEnvs: true, Select: func(env *manifest.Environment, in *manifest.Instance) bool {
				return in.Service == "api"
			}},
			want: []row{unchanged(h1, "api-1"), unchanged(h2, "api-2")},
		},
		{
			name:    "Select of a moved instance removes its old container",
			desired: []string{edit(t, "web-1: {ship: s2}", "web-1: {ship: s1}")},
			live:    func(t *testing.T) *live.State { return deployed(t, shopManifest) },
			opts: Options{Select: func(env *manifest.Environment, in *manifest.Instance) bool {
				return in.Name == "web-1"
			}},
			want: []row{
				{ID: id(h1, "web-1"), Action: plan.Create, Service: "web", Ship: "s1", Causes: []string{"not found"}},
				{ID: id(h2, "web-1"), Action: plan.Remove, Service: "web", Ship: "s2", Container: cid("web-1"),
					Causes: []string{"web-1 moved to ship s1"}, After: []string{id(h1, "web-1")}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			envs := loadEnvs(t, tc.desired...)
			state := tc.live(t)
			tc.opts.Revision = "rev1"
			p := Compute(envs, state, tc.opts)
			if diff := cmp.Diff(tc.want, rows(p)); diff != "" {
				t.Errorf("steps (-want +got):\n%s\n%s", diff, p)
			}
			if err := p.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if p.Revision != "rev1" || p.Prune != tc.opts.Prune || p.Desired != Digest(envs) {
				t.Errorf("plan revision %q prune %v desired %q", p.Revision, p.Prune, p.Desired)
			}
			checkSteps(t, envs, state, p)
		})
	}
}

// TestComputeReplaceCauses changes one thing of api at a time and checks
// the causes of api-1's replacement (and that api-1 is replaced at all).
func TestComputeReplaceCauses(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		want      []string
		unchanged bool
	}{
		{name: "env value", old: "FOO: bar", new: "FOO: baz", want: []string{"env FOO changed"}},
		{name: "env added", old: "LOG_LEVEL: info}", new: "LOG_LEVEL: info, NEW_VAR: x}", want: []string{"env NEW_VAR added"}},
		{name: "env removed", old: "FOO: bar, ", new: "", want: []string{"env FOO removed"}},
		{name: "env unset", old: "FOO: bar", new: "FOO: null", want: []string{"env FOO changed"}},
		{name: "env empty", old: "FOO: bar", new: `FOO: ""`, want: []string{"env FOO changed"}},
		{name: "several env", old: "{FOO: bar, LOG_LEVEL: info}", new: "{A_NEW: 1, LOG_LEVEL: debug}",
			want: []string{"env A_NEW added", "env FOO removed", "env LOG_LEVEL changed"}},
		{name: "image tag", old: "registry.example.com/api:1.2", new: "registry.example.com/api:1.3",
			want: []string{"image tag 1.2 → 1.3", "env DOCKER_IMAGE changed", "env DOCKER_TAG changed"}},
		{name: "image repository", old: "registry.example.com/api:1.2", new: "registry.example.com/api-ng:1.2",
			want: []string{"image registry.example.com/api:1.2 → registry.example.com/api-ng:1.2", "env DOCKER_IMAGE changed"}},
		{name: "image registry", old: "registry.example.com/api:1.2", new: "ghcr.io/acme/api:1.3",
			want: []string{"image registry.example.com/api:1.2 → ghcr.io/acme/api:1.3", "env DOCKER_IMAGE changed", "env DOCKER_TAG changed"}},
		{name: "image tag with a registry port", old: "registry.example.com/api:1.2", new: "registry.example.com:5000/api:1.2",
			want: []string{"image registry.example.com/api:1.2 → registry.example.com:5000/api:1.2", "env DOCKER_IMAGE changed"}},
		{name: "external port", old: `ports: {http: "8080:18080"}`, new: `ports: {http: "8080:18081"}`,
			want: []string{"env API_API_1_HTTP_PORT changed", "env API_API_2_HTTP_PORT changed", "port http 8080:18080/tcp → 8080:18081/tcp"}},
		{name: "port protocol", old: `ports: {http: "8080:18080"}`, new: `ports: {http: "8080/udp:18080/udp"}`,
			want: []string{"port http 8080:18080/tcp → 8080:18080/udp"}},
		{name: "port host address", old: `ports: {http: "8080:18080"}`, new: `ports: {http: {exposed: 8080, external: ["127.0.0.1", 18080]}}`,
			want: []string{"port http 8080:18080/tcp → 8080:127.0.0.1:18080/tcp"}},
		{name: "port added", old: `ports: {http: "8080:18080"}`, new: `ports: {http: "8080:18080", admin: 9000}`,
			want: []string{"env API_API_1_ADMIN_INTERNAL_PORT added", "env API_API_1_ADMIN_PORT added", "env API_API_2_ADMIN_INTERNAL_PORT added", "env API_API_2_ADMIN_PORT added", "port admin added (9000:9000/tcp)"}},
		{name: "port removed", old: `ports: {http: "8080:18080"}`, new: `ports: {}`,
			want: []string{"env API_API_1_HTTP_INTERNAL_PORT removed", "env API_API_1_HTTP_PORT removed", "env API_API_2_HTTP_INTERNAL_PORT removed", "env API_API_2_HTTP_PORT removed", "port http removed"}},
		{name: "command", old: "api-1: {ship: s1}", new: "api-1: {ship: s1, command: [serve, --fast]}", want: []string{"command changed"}},
		{name: "memory limit", old: "limits: {memory: 256m}", new: "limits: {memory: 512m}", want: []string{"limits changed"}},
		{name: "cpu limit", old: "limits: {memory: 256m}", new: "limits: {memory: 256m, cpu: 512}", want: []string{"limits changed"}},
		{name: "instance limits", old: "api-1: {ship: s1}", new: "api-1: {ship: s1, limits: {swap: 1g}}", want: []string{"limits changed"}},
		{name: "volumes", old: "api-1: {ship: s1}", new: "api-1: {ship: s1, volumes: {/srv/api: /data}}", want: []string{"volumes changed"}},
		{name: "restart", old: "api-1: {ship: s1}", new: "api-1: {ship: s1, restart: always}", want: []string{"restart changed"}},
		{name: "labels", old: "api-1: {ship: s1}", new: "api-1: {ship: s1, labels: {team: core}}", want: []string{"labels changed"}},
		{name: "several generic fields", old: "api-1: {ship: s1}",
			new:  "api-1: {ship: s1, username: app, workdir: /srv, dns: [1.1.1.1], stop_timeout: 30, privileged: true, cap_add: [NET_ADMIN]}",
			want: []string{"username changed", "privileged changed", "cap_add changed", "dns changed", "stop_timeout changed", "workdir changed"}},
		{name: "net", old: "api-1: {ship: s1}", new: "api-1: {ship: s1, net: bridge}", want: []string{"hostname changed", "net changed"}},
		{name: "lifecycle only", old: "limits: {memory: 256m}",
			new:       "limits: {memory: 256m}\n    lifecycle:\n      running: [{type: tcp, port: http}]",
			unchanged: true},
		{name: "instance lifecycle only", old: "api-1: {ship: s1}",
			new:       "api-1: {ship: s1, lifecycle: {running: [{type: exec, command: true}]}}",
			unchanged: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state := deployed(t, shopManifest)
			envs := loadEnvs(t, edit(t, tc.old, tc.new))
			p := Compute(envs, state, Options{})
			if err := p.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			i := slices.IndexFunc(p.Steps, func(st plan.Step) bool { return st.Instance == "api-1" })
			if i < 0 {
				t.Fatalf("no step for api-1:\n%s", p)
			}
			st := p.Steps[i]
			if tc.unchanged {
				if st.Action != plan.Unchanged {
					t.Errorf("api-1: %s %q, want unchanged", st.Action, st.Causes)
				}
				return
			}
			if st.Action != plan.Replace {
				t.Fatalf("api-1: %s, want replace", st.Action)
			}
			if diff := cmp.Diff(tc.want, st.Causes); diff != "" {
				t.Errorf("causes (-want +got):\n%s", diff)
			}
		})
	}
}

// Causes never show env values, only names.
func TestCausesHideValues(t *testing.T) {
	old := loadEnv(t, edit(t, "FOO: bar", "FOO: hunter2-old-secret")).Instance("api-1").Spec().Summary()
	cur := loadEnv(t, edit(t, "FOO: bar", "FOO: hunter2-new-secret")).Instance("api-1").Spec()
	got := Causes(&old, cur)
	if diff := cmp.Diff([]string{"env FOO changed"}, got); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
	if strings.Contains(strings.Join(old.Env, " "), "hunter2") {
		t.Errorf("the summary holds an env value: %q", old.Env)
	}
	// Equal summaries whose hashes differ (a change the summary cannot
	// see) still give a cause.
	same := cur.Summary()
	if diff := cmp.Diff([]string{"spec hash differs"}, Causes(&same, cur)); diff != "" {
		t.Errorf("causes of equal specs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"spec hash differs (the container carries no spec summary)"}, Causes(nil, cur)); diff != "" {
		t.Errorf("causes without a summary (-want +got):\n%s", diff)
	}
}

// Stop order among removals: the containers of dependents stop first, also
// when they run on a host that is visited later.
func TestComputeStopOrder(t *testing.T) {
	shopPlus := edit(t,
		`      api-2: {ship: s2, volumes_from: [data-1]}`,
		`      api-2: {ship: s2, volumes_from: [data-1]}
      api-3: {ship: s1, ports: {http: "8080:18083"}}`,
		"image: postgres:16.1\n    ports: {pg: 5432}\n    instances:\n      db-1: {ship: s1}",
		"image: postgres:16.1\n    ports: {pg: 5432}\n    instances:\n      db-1: {ship: s1}\n      db-2: {ship: s2, ports: {pg: 5433}}",
		`      web-1: {ship: s2}`,
		"      web-1: {ship: s2}\n      web-2: {ship: s1}\n      web-3: {ship: s2}")
	plus := loadEnv(t, shopPlus)
	state := deployed(t, shopManifest)
	for _, n := range []string{"api-3", "db-2", "web-2", "web-3"} {
		put(state, plus.Ships[plus.Instance(n).Ship].Address(), driverContainer(plus.Instance(n), "shop"))
	}
	p := Compute(loadEnvs(t, shopManifest), state, Options{Prune: true})
	removals := map[string]plan.Step{}
	pos := map[string]int{}
	for i, st := range p.Steps {
		pos[st.Instance] = i
		if st.Action == plan.Remove {
			removals[st.Instance] = st
		}
	}
	if len(removals) != 4 {
		t.Fatalf("%d removals, want api-3, db-2, web-2 and web-3:\n%s", len(removals), p)
	}
	want := map[string][]string{
		"api-3": {id(h1, "web-2"), id(h2, "web-3")},
		"db-2":  {id(h1, "api-3"), id(h1, "web-2"), id(h2, "web-3")},
		"web-2": nil,
		"web-3": nil,
	}
	for name, after := range want {
		if diff := cmp.Diff(after, removals[name].After); diff != "" {
			t.Errorf("%s runs after (-want +got):\n%s", name, diff)
		}
	}
	err := p.Validate()
	for _, pair := range [][2]string{{"web-2", "api-3"}, {"web-3", "api-3"}, {"api-3", "db-2"}} {
		if pos[pair[0]] > pos[pair[1]] {
			t.Errorf("BUG: removal of %s comes after the removal of %s that waits for it (Validate: %v):\n%s", pair[0], pair[1], err, p)
		}
	}
	if err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// A move removes the old container only once the new one is up. When the
// new one cannot be brought up (its ship cannot be observed, or a foreign
// container holds the name there), the old container is not removed.
func TestComputeMoveBlocked(t *testing.T) {
	moved := edit(t, "web-1: {ship: s2}", "web-1: {ship: s1}")
	tests := []struct {
		name string
		live func(t *testing.T) *live.State
		want plan.Action // of the step on the new ship
	}{
		{"new ship unreachable", func(t *testing.T) *live.State {
			s := deployed(t, shopManifest)
			s.Hosts[h1] = &live.Host{Address: h1, Err: errors.New("connection refused")}
			return s
		}, plan.Unknown},
		{"name taken on the new ship", func(t *testing.T) *live.State {
			s := deployed(t, shopManifest)
			put(s, h1, foreign("web-1"))
			return s
		}, plan.Conflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(loadEnvs(t, moved), tc.live(t), Options{Prune: true})
			if err := p.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			var up, old *plan.Step
			for i, st := range p.Steps {
				switch {
				case st.Instance == "web-1" && st.Host == h1:
					up = &p.Steps[i]
				case st.Instance == "web-1" && st.Host == h2:
					old = &p.Steps[i]
				}
			}
			if up == nil || up.Action != tc.want {
				t.Fatalf("step on the new ship: %+v, want %s", up, tc.want)
			}
			if old != nil && old.Action == plan.Remove && len(old.After) == 0 {
				t.Errorf("BUG: the old container of a moved instance is removed although the new one cannot be brought up (%s on %s): %+v\n%s", up.Action, h1, *old, p)
			}
			if old != nil && old.Action.Mutates() {
				t.Errorf("old container: %s, want it left alone", old.Action)
			}
		})
	}
}

// A leftover replacement container is cleaned up also when its instance is
// no longer desired (with prune) or no longer desired on that ship.
func TestComputeLeftoverOfUndesiredInstance(t *testing.T) {
	plus := loadEnv(t, edit(t, `      web-1: {ship: s2}`, "      web-1: {ship: s2}\n      web-2: {ship: s1}"))
	shop := loadEnv(t, shopManifest)
	tests := []struct {
		name    string
		desired string
		temp    live.Container
		host    string
	}{
		{"instance no longer in the manifest", shopManifest, tempContainer(plus.Instance("web-2"), "shop"), h1},
		{"instance moved away from the ship", edit(t, "web-1: {ship: s2}", "web-1: {ship: s1}"), tempContainer(shop.Instance("web-1"), "shop"), h2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state := deployed(t, shopManifest)
			put(state, tc.host, tc.temp)
			p := Compute(loadEnvs(t, tc.desired), state, Options{Prune: true})
			if err := p.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			i := slices.IndexFunc(p.Steps, func(st plan.Step) bool { return st.Instance == tc.temp.Name })
			if i < 0 {
				t.Errorf("BUG: leftover replacement %s on %s is neither removed nor reported with Prune:\n%s", tc.temp.Name, tc.host, p)
			}
			if st := p.Steps[i]; st.Action != plan.Remove || st.Container != tc.temp.ID {
				t.Errorf("%s: %s of %s, want remove of %s", tc.temp.Name, st.Action, st.Container, tc.temp.ID)
			}
		})
	}
}

// An up-to-date live state gives no step that changes anything, whatever
// the options.
func TestComputeIdempotent(t *testing.T) {
	envs := loadEnvs(t, shopManifest, billingManifest)
	state := deploy(observed(h1, h2), envs...)
	put(state, h1, foreign("registry"))
	put(state, h2, foreign("watchtower"))
	for _, opts := range []Options{{}, {Prune: true}, {Prune: true, PruneEnvs: true}, {Select: func(*manifest.Environment, *manifest.Instance) bool { return true }}} {
		p := Compute(envs, state, opts)
		if m := p.Mutating(); len(m) != 0 {
			t.Errorf("%+v: %d mutating steps:\n%s", opts, len(m), p)
		}
		if s := p.Summary(); s.Unchanged != 6 || s.Changes() != 0 || s.Conflict+s.Orphan+s.Unknown != 0 {
			t.Errorf("%+v: summary %+v", opts, s)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	}
	// Loading the same manifests again changes nothing either.
	again := loadEnvs(t, shopManifest, billingManifest)
	if m := Compute(again, state, Options{Prune: true, PruneEnvs: true}).Mutating(); len(m) != 0 {
		t.Errorf("after a reload: %d mutating steps", len(m))
	}
}

func TestComputeNilState(t *testing.T) {
	p := Compute(loadEnvs(t, shopManifest), nil, Options{Prune: true, PruneEnvs: true})
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, st := range p.Steps {
		if st.Action != plan.Unknown || !slices.Equal(st.Causes, []string{"ship not observed"}) {
			t.Errorf("%s: %s %q, want unknown", st.ID, st.Action, st.Causes)
		}
	}
	if len(p.Steps) != 5 {
		t.Errorf("%d steps, want 5", len(p.Steps))
	}
}

func TestDigest(t *testing.T) {
	a := loadEnvs(t, shopManifest, billingManifest)
	b := loadEnvs(t, shopManifest, billingManifest)
	base := Digest(a)
	if len(base) != 32 {
		t.Errorf("digest %q: want 32 hex characters", base)
	}
	if got := Digest(b); got != base {
		t.Errorf("two loads: %s and %s", base, got)
	}
	if got := Digest([]*manifest.Environment{a[1], a[0]}); got != base {
		t.Errorf("other order: %s, want %s", got, base)
	}
	// Formatting, comments and key order do not shape the desired state.
	reformatted := "# the shop\n" + strings.Replace(shopManifest, "    env: {FOO: bar, LOG_LEVEL: info}\n", "    env:\n      LOG_LEVEL: info   # noisy\n      FOO: 'bar'\n", 1)
	if got := Digest(loadEnvs(t, reformatted, billingManifest)); got != base {
		t.Errorf("reformatted: %s, want %s", got, base)
	}
	differs := map[string][]string{
		"env value":    {edit(t, "FOO: bar", "FOO: baz"), billingManifest},
		"image":        {edit(t, "nginx:1.25", "nginx:1.27"), billingManifest},
		"moved":        {edit(t, "web-1: {ship: s2}", "web-1: {ship: s1}"), billingManifest},
		"ship address": {edit(t, "s1: {ip: 10.0.0.1}", "s1: {ip: 10.0.0.1, docker_port: 2376}"), billingManifest},
		"renamed env":  {edit(t, "name: shop", "name: shop2"), billingManifest},
		"one env less": {shopManifest},
		"instance":     {edit(t, "      web-1: {ship: s2}", "      web-1: {ship: s2}\n      web-2: {ship: s1}"), billingManifest},
	}
	seen := map[string]string{}
	for name, texts := range differs {
		got := Digest(loadEnvs(t, texts...))
		if got == base {
			t.Errorf("%s: digest unchanged", name)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%s and %s: same digest", name, other)
		}
		seen[got] = name
	}
	if Digest(nil) == base {
		t.Error("no environments: same digest")
	}
}

func TestStale(t *testing.T) {
	envs := loadEnvs(t, shopManifest)
	state := deployed(t, shopManifest)
	saved := Compute(envs, state, Options{Revision: "r1", Prune: true})
	now := Compute(loadEnvs(t, shopManifest), deployed(t, shopManifest), Options{Revision: "r1", Prune: true})
	if got := Stale(saved, now); got != nil {
		t.Errorf("identical plans: %q", got)
	}
	// A round trip through JSON (a saved plan file) changes nothing.
	var buf strings.Builder
	if err := saved.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := plan.ReadJSON(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := Stale(read, now); got != nil {
		t.Errorf("after a JSON round trip: %q", got)
	}

	step := func(p *plan.Plan, instance string) *plan.Step {
		for i := range p.Steps {
			if p.Steps[i].Instance == instance {
				return &p.Steps[i]
			}
		}
		t.Fatalf("no step %s", instance)
		return nil
	}
	webID := step(saved, "web-1").Container
	tests := []struct {
		name string
		now  func(t *testing.T) *plan.Plan
		want []string
	}{
		{"manifests changed", func(t *testing.T) *plan.Plan {
			return Compute(loadEnvs(t, edit(t, "nginx:1.25", "nginx:1.27")), deployed(t, shopManifest), Options{Revision: "r1", Prune: true})
		}, []string{
			"the manifests changed since the plan was made",
			"shop/web-1: planned unchanged of " + webID[:12] + ", now replace of " + webID[:12],
		}},
		{"revision changed", func(t *testing.T) *plan.Plan {
			return Compute(envs, state, Options{Revision: "r2", Prune: true})
		}, []string{`the revision changed: "r1" → "r2"`}},
		{"container replaced behind our back", func(t *testing.T) *plan.Plan {
			s := deployed(t, shopManifest)
			change(t, s, "web-1", func(c *live.Container) { c.ID = containerID("someone", "else") })
			return Compute(envs, s, Options{Revision: "r1", Prune: true})
		}, []string{"shop/web-1: planned unchanged of " + webID[:12] + ", now unchanged of " + containerID("someone", "else")[:12]}},
		{"container gone", func(t *testing.T) *plan.Plan {
			s := deployed(t, shopManifest)
			s.Hosts[h2].Containers = slices.DeleteFunc(s.Hosts[h2].Containers, func(c live.Container) bool { return c.Name == "web-1" })
			return Compute(envs, s, Options{Revision: "r1", Prune: true})
		}, []string{"shop/web-1: planned unchanged of " + webID[:12] + ", now create of nothing"}},
		{"container stopped", func(t *testing.T) *plan.Plan {
			s := deployed(t, shopManifest)
			change(t, s, "web-1", func(c *live.Container) { c.State = "exited" })
			return Compute(envs, s, Options{Revision: "r1", Prune: true})
		}, []string{"shop/web-1: planned unchanged of " + webID[:12] + ", now replace of " + webID[:12]}},
		{"new step", func(t *testing.T) *plan.Plan {
			s := deployed(t, shopManifest)
			put(s, h1, driverContainer(loadEnv(t, legacyManifest).Instance("old-1"), "shop"))
			return Compute(envs, s, Options{Revision: "r1", Prune: true})
		}, []string{"shop/old-1: new step remove"}},
		{"step gone", func(t *testing.T) *plan.Plan {
			p := Compute(envs, state, Options{Revision: "r1", Prune: true})
			p.Steps = slices.DeleteFunc(p.Steps, func(st plan.Step) bool { return st.Instance == "db-1" })
			return p
		}, []string{"shop/db-1: planned unchanged no longer applies"}},
		{"ship unreachable", func(t *testing.T) *plan.Plan {
			s := deployed(t, shopManifest)
			s.Hosts[h2] = &live.Host{Address: h2, Err: errors.New("timeout")}
			return Compute(envs, s, Options{Revision: "r1", Prune: true})
		}, []string{
			"shop/data-1: planned unchanged of " + step(saved, "data-1").Container[:12] + ", now unknown of nothing",
			"shop/api-2: planned unchanged of " + step(saved, "api-2").Container[:12] + ", now unknown of nothing",
			"shop/web-1: planned unchanged of " + webID[:12] + ", now unknown of nothing",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Stale(saved, tc.now(t))); diff != "" {
				t.Errorf("Stale (-want +got):\n%s", diff)
			}
		})
	}
	// Differences only in what the plan says, not in what it does, are
	// not staleness.
	cosmetic := Compute(envs, state, Options{Revision: "r1", Prune: true})
	for i := range cosmetic.Steps {
		cosmetic.Steps[i].Causes = []string{"reworded"}
	}
	if got := Stale(saved, cosmetic); got != nil {
		t.Errorf("reworded causes: %q", got)
	}
}
