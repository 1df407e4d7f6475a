package diff

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/secret"
)

// loadFiles loads the manifests of files (path → text) with the other
// files of fsys beside them, in strict mode.
func loadFiles(t *testing.T, fsys fstest.MapFS, files map[string]string) []*manifest.Environment {
	t.Helper()
	all := fstest.MapFS{}
	for k, v := range fsys {
		all[k] = v
	}
	var srcs []manifest.Source
	for name, text := range files {
		srcs = append(srcs, manifest.Source{Name: name, Data: []byte(text)})
		all[name] = &fstest.MapFile{Data: []byte(text)}
	}
	repo := manifest.LoadSources(all, srcs, manifest.Options{Strict: true})
	if err := repo.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(repo.Environments) != len(files) {
		t.Fatalf("loaded %d environments, want %d", len(repo.Environments), len(files))
	}
	return repo.Environments
}

// cartManifest is an environment that only the head revision has.
const cartManifest = `name: cart
ships:
  c1: {ip: 10.0.0.3}
services:
  store:
    image: redis:7
    instances:
      store-1: {ship: c1}
  cart:
    image: acme/cart:2
    requires: [store]
    instances:
      cart-1: {ship: c1}
      cart-2: {ship: c1}
`

// reviewRow is what the Revisions tests compare of a step.
type reviewRow struct {
	ID       string
	Action   plan.Action
	Service  string
	Ship     string
	Causes   []string
	Replaced bool // the step has a replacing change
}

func reviewRows(p *plan.Plan) []reviewRow {
	var out []reviewRow
	for _, st := range p.Steps {
		r := reviewRow{ID: st.ID, Action: st.Action, Service: st.Service, Ship: st.Ship, Causes: st.Causes}
		for _, c := range st.Changes {
			r.Replaced = r.Replaced || c.Replaces
		}
		out = append(out, r)
	}
	return out
}

func TestRevisionsEnvironments(t *testing.T) {
	base := loadFiles(t, nil, map[string]string{
		"shop/manifest.yml":    shopManifest,
		"billing/manifest.yml": billingManifest,
		"legacy/manifest.yml":  legacyManifest,
	})
	head := loadFiles(t, nil, map[string]string{
		"shop/manifest.yml":    shopManifest,
		"billing/manifest.yml": strings.Replace(billingManifest, "billing/invoice:3", "billing/invoice:4", 1),
		"cart/manifest.yml":    cartManifest,
	})
	p := Revisions(base, head, nil)
	wantEnvs := []plan.EnvChange{
		{Name: "billing", File: "billing/manifest.yml", Status: "changed"},
		{Name: "cart", File: "cart/manifest.yml", Status: "added"},
		{Name: "legacy", File: "legacy/manifest.yml", Status: "removed"},
		{Name: "shop", File: "shop/manifest.yml", Status: "unchanged"},
	}
	if diff := cmp.Diff(wantEnvs, p.Environments); diff != "" {
		t.Errorf("environments (-want +got):\n%s", diff)
	}
	unchanged := func(ship, name, svc string) reviewRow {
		return reviewRow{ID: "shop/" + ship + "/" + name, Action: plan.Unchanged, Service: svc, Ship: ship}
	}
	want := []reviewRow{
		{ID: "billing/b1/inv-1", Action: plan.Replace, Service: "invoice", Ship: "b1", Replaced: true,
			Causes: []string{"image tag 3 → 4", "env.DOCKER_IMAGE changed", "env.DOCKER_TAG changed"}},
		// An added environment comes up dependencies first.
		{ID: "cart/c1/store-1", Action: plan.Create, Service: "store", Ship: "c1", Causes: []string{"environment cart added"}},
		{ID: "cart/c1/cart-1", Action: plan.Create, Service: "cart", Ship: "c1", Causes: []string{"environment cart added"}},
		{ID: "cart/c1/cart-2", Action: plan.Create, Service: "cart", Ship: "c1", Causes: []string{"environment cart added"}},
		{ID: "legacy/l1/old-1", Action: plan.Remove, Service: "old", Ship: "l1", Causes: []string{"environment legacy removed"}},
		unchanged("s2", "data-1", "data"), unchanged("s1", "db-1", "db"), unchanged("s1", "api-1", "api"),
		unchanged("s2", "api-2", "api"), unchanged("s2", "web-1", "web"),
	}
	if diff := cmp.Diff(want, reviewRows(p)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// A removed environment goes down dependents first.
	p = Revisions(loadFiles(t, nil, map[string]string{"cart/manifest.yml": cartManifest}), nil, nil)
	var order []string
	for _, st := range p.Steps {
		order = append(order, st.Instance)
	}
	if diff := cmp.Diff([]string{"cart-1", "cart-2", "store-1"}, order); diff != "" {
		t.Errorf("removal order (-want +got):\n%s", diff)
	}
	// Nothing on either side: an empty plan.
	if p := Revisions(nil, nil, nil); len(p.Steps) != 0 || len(p.Environments) != 0 {
		t.Errorf("empty revisions: %+v", p)
	}
}

// An environment whose file moved keeps its identity (it is its name) and
// takes the new file.
func TestRevisionsEnvironmentMoved(t *testing.T) {
	base := loadFiles(t, nil, map[string]string{"shop/manifest.yml": shopManifest})
	head := loadFiles(t, nil, map[string]string{"apps/shop/manifest.yaml": shopManifest})
	p := Revisions(base, head, nil)
	if diff := cmp.Diff([]plan.EnvChange{{Name: "shop", File: "apps/shop/manifest.yaml", Status: "unchanged"}}, p.Environments); diff != "" {
		t.Errorf("environments (-want +got):\n%s", diff)
	}
	if m := p.Mutating(); len(m) != 0 {
		t.Errorf("%d mutating steps", len(m))
	}
}

func TestRevisionsInstances(t *testing.T) {
	head := loadEnvs(t, edit(t,
		// An instance added to an existing service.
		"      api-2: {ship: s2, volumes_from: [data-1]}",
		"      api-2: {ship: s2, volumes_from: [data-1]}\n      api-3: {ship: s1, ports: {http: \"8080:18083\"}}",
		// A service removed, with its instance; a service added.
		"  web:\n    image: nginx:1.25\n    requires: [api]\n    instances:\n      web-1: {ship: s2}\n",
		"  cache:\n    image: redis:7\n    instances:\n      cache-1: {ship: s2}\n      cache-2: {ship: s1}\n",
		// An instance added to db, which also loses db-2 (base2).
		"      db-1: {ship: s1}", "      db-1: {ship: s1}\n      db-3: {ship: s2}",
	))
	base2 := loadEnvs(t, edit(t, "      db-1: {ship: s1}", "      db-1: {ship: s1}\n      db-2: {ship: s2}"))
	p := Revisions(base2, head, nil)
	want := []reviewRow{
		{ID: "shop/s2/cache-1", Action: plan.Create, Service: "cache", Ship: "s2", Causes: []string{"service cache added"}},
		{ID: "shop/s1/cache-2", Action: plan.Create, Service: "cache", Ship: "s1", Causes: []string{"service cache added"}},
		{ID: "shop/s2/data-1", Action: plan.Unchanged, Service: "data", Ship: "s2"},
		{ID: "shop/s1/db-1", Action: plan.Replace, Service: "db", Ship: "s1", Replaced: true, Causes: []string{
			"env.DB_DB_2_HOST removed", "env.DB_DB_2_PG_INTERNAL_PORT removed", "env.DB_DB_2_PG_PORT removed",
			"env.DB_DB_3_HOST added", "env.DB_DB_3_PG_INTERNAL_PORT added", "env.DB_DB_3_PG_PORT added", "env.DB_INSTANCES changed"}},
		{ID: "shop/s2/db-3", Action: plan.Create, Service: "db", Ship: "s2", Causes: []string{"instance added"}},
		{ID: "shop/s1/api-1", Action: plan.Replace, Service: "api", Ship: "s1", Replaced: true, Causes: []string{
			"env.API_API_3_HOST added", "env.API_API_3_HTTP_INTERNAL_PORT added", "env.API_API_3_HTTP_PORT added", "env.API_INSTANCES changed",
			"env.DB_DB_2_HOST removed (knock-on: injected from db)", "env.DB_DB_2_PG_PORT removed (knock-on: injected from db)",
			"env.DB_DB_3_HOST added (knock-on: injected from db)", "env.DB_DB_3_PG_PORT added (knock-on: injected from db)",
			"env.DB_INSTANCES changed (knock-on: injected from db)"}},
		{ID: "shop/s2/api-2", Action: plan.Replace, Service: "api", Ship: "s2", Replaced: true, Causes: []string{
			"env.API_API_3_HOST added", "env.API_API_3_HTTP_INTERNAL_PORT added", "env.API_API_3_HTTP_PORT added", "env.API_INSTANCES changed",
			"env.DB_DB_2_HOST removed (knock-on: injected from db)", "env.DB_DB_2_PG_PORT removed (knock-on: injected from db)",
			"env.DB_DB_3_HOST added (knock-on: injected from db)", "env.DB_DB_3_PG_PORT added (knock-on: injected from db)",
			"env.DB_INSTANCES changed (knock-on: injected from db)"}},
		{ID: "shop/s1/api-3", Action: plan.Create, Service: "api", Ship: "s1", Causes: []string{"instance added"}},
		{ID: "shop/s2/web-1", Action: plan.Remove, Service: "web", Ship: "s2", Causes: []string{"service web removed"}},
		{ID: "shop/s2/db-2", Action: plan.Remove, Service: "db", Ship: "s2", Causes: []string{"instance removed"}},
	}
	if diff := cmp.Diff(want, reviewRows(p)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]plan.EnvChange{{Name: "shop", File: "env0/manifest.yml", Status: "changed"}}, p.Environments); diff != "" {
		t.Errorf("environments (-want +got):\n%s", diff)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, st := range p.Steps {
		in := head[0].Instance(st.Instance)
		switch st.Action {
		case plan.Remove:
			in = base2[0].Instance(st.Instance)
		case plan.Replace, plan.Unchanged:
			if old := base2[0].Instance(st.Instance); st.LiveSpecHash != old.SpecHash {
				t.Errorf("%s: live spec hash %s, want the base's %s", st.ID, st.LiveSpecHash, old.SpecHash)
			}
		}
		if st.SpecHash != in.SpecHash {
			t.Errorf("%s: spec hash %s, want %s", st.ID, st.SpecHash, in.SpecHash)
		}
	}
}

// TestRevisionsChanges checks the changes of one instance for every kind
// of field.
func TestRevisionsChanges(t *testing.T) {
	ch := func(field, old, new string) plan.Change {
		return plan.Change{Field: field, Old: old, New: new, Replaces: true}
	}
	fixed := func(c plan.Change) plan.Change { c.Source = manifest.SourceFixed; return c }
	from := func(src string, c plan.Change) plan.Change { c.Source = src; return c }
	keep := func(c plan.Change) plan.Change { c.Replaces = false; return c }
	tests := []struct {
		name     string
		edits    []string
		instance string
		action   plan.Action
		want     []plan.Change
	}{
		{name: "ship", edits: []string{"web-1: {ship: s2}", "web-1: {ship: s1}"}, instance: "web-1", action: plan.Replace,
			want: []plan.Change{
				ch("ship", "s2 (tcp://10.0.0.2:2375)", "s1 (tcp://10.0.0.1:2375)"),
				fixed(ch("env.CONTAINER_HOST_ADDRESS", "10.0.0.2", "10.0.0.1")),
				fixed(ch("env.WEB_WEB_1_HOST", "10.0.0.2", "10.0.0.1")),
			}},
		{name: "image", edits: []string{"registry.example.com/api:1.2", "registry.example.com/api:1.3"}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{
				ch("image", "registry.example.com/api:1.2", "registry.example.com/api:1.3"),
				fixed(ch("env.DOCKER_IMAGE", "registry.example.com/api:1.2", "registry.example.com/api:1.3")),
				fixed(ch("env.DOCKER_TAG", "1.2", "1.3")),
			}},
		{name: "command", edits: []string{"api-1: {ship: s1}", `api-1: {ship: s1, command: [serve, "--name=a b"]}`}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("command", "", "serve '--name=a b'")}},
		{name: "command changed", edits: []string{"web-1: {ship: s2}", "web-1: {ship: s2, command: nginx -g 'daemon off;'}"}, instance: "web-1", action: plan.Replace,
			want: []plan.Change{ch("command", "", "nginx -g 'daemon off;'")}},
		{name: "env value", edits: []string{"FOO: bar", "FOO: baz"}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("env.FOO", "bar", "baz")}},
		{name: "env added and removed", edits: []string{"{FOO: bar, LOG_LEVEL: info}", "{LOG_LEVEL: info, ZED: 1}"}, instance: "api-2", action: plan.Replace,
			want: []plan.Change{ch("env.FOO", "bar", ""), ch("env.ZED", "", "1")}},
		{name: "env unset", edits: []string{"FOO: bar", "FOO: null"}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("env.FOO", "bar", "(unset)")}},
		{name: "env empty", edits: []string{"FOO: bar", `FOO: ""`}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("env.FOO", "bar", `""`)}},
		{name: "env list value", edits: []string{"FOO: bar", "FOO: [-Xmx1g, -Dx=1]"}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("env.FOO", "bar", "-Xmx1g -Dx=1")}},
		{name: "port", edits: []string{`ports: {http: "8080:18080"}`, `ports: {http: "8080:18081", admin: "9000/udp"}`}, instance: "api-2", action: plan.Replace,
			want: []plan.Change{
				fixed(ch("env.API_API_1_ADMIN_INTERNAL_PORT", "", "9000")),
				fixed(ch("env.API_API_1_ADMIN_PORT", "", "9000")),
				fixed(ch("env.API_API_1_HTTP_PORT", "18080", "18081")),
				fixed(ch("env.API_API_2_ADMIN_INTERNAL_PORT", "", "9000")),
				fixed(ch("env.API_API_2_ADMIN_PORT", "", "9000")),
				fixed(ch("env.API_API_2_HTTP_PORT", "18080", "18081")),
				ch("ports.admin", "", "9000:9000/udp"),
				ch("ports.http", "8080:18080/tcp", "8080:18081/tcp"),
			}},
		{name: "port removed", edits: []string{"ports: {pg: 5432}", "ports: {}"}, instance: "db-1", action: plan.Replace,
			want: []plan.Change{
				fixed(ch("env.DB_DB_1_PG_INTERNAL_PORT", "5432", "")),
				fixed(ch("env.DB_DB_1_PG_PORT", "5432", "")),
				ch("ports.pg", "5432:5432/tcp", ""),
			}},
		{name: "limits", edits: []string{"limits: {memory: 256m}", "limits: {memory: 512m, cpu: 100}"}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("limits.memory", "256m", "512m"), ch("limits.cpu", "", "100")}}, // key by key, sizes as written
		{name: "limits removed", edits: []string{"    limits: {memory: 256m}\n", ""}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{ch("limits.memory", "256m", "")}}, // removed, key by key
		{name: "generic fields", edits: []string{"web-1: {ship: s2}",
			"web-1: {ship: s2, volumes: {/usr/share/nginx/html: /srv/www}, username: www, restart: unless-stopped, labels: {team: web}, stop_timeout: 3, extra_hosts: {db: 10.0.0.1}}"},
			instance: "web-1", action: plan.Replace,
			want: []plan.Change{
				ch("volumes", "", `[{"source":"/srv/www","target":"/usr/share/nginx/html","mode":"rw"}]`),
				ch("username", "", "www"), // strings bare
				ch("extra_hosts.db", "", "10.0.0.1"),
				ch("restart.name", "no", "unless-stopped"), // key by key
				ch("stop_timeout", "10", "3"),
				ch("labels.team", "", "web"),
			}},
		{name: "lifecycle", edits: []string{"    limits: {memory: 256m}\n", "    limits: {memory: 256m}\n    lifecycle:\n      running: [{type: tcp, port: http}]\n"},
			instance: "api-1", action: plan.Unchanged,
			want: []plan.Change{keep(ch("lifecycle.running", "", `[{"type":"tcp","port":"http","max_wait":180}]`))}},
		{name: "requires without new variables", edits: []string{"requires: [api]", "requires: [api, db]"}, instance: "web-1", action: plan.Unchanged,
			want: []plan.Change{keep(ch("requires", "api", "api, db"))}},
		{name: "wants_info", edits: []string{"requires: [api]", "requires: [api]\n    wants_info: [data]"}, instance: "web-1", action: plan.Replace,
			want: []plan.Change{
				from("data", ch("env.DATA_DATA_1_HOST", "", "10.0.0.2")),
				from("data", ch("env.DATA_INSTANCES", "", "data-1")),
				keep(ch("wants_info", "", "data")),
			}},
		{name: "knock-on of a dependency's port", edits: []string{"ports: {pg: 5432}", `ports: {pg: "5432:15432"}`}, instance: "web-1", action: plan.Replace,
			want: []plan.Change{from("db", ch("env.DB_DB_1_PG_PORT", "5432", "15432"))}},
		{name: "the dependency's own variables are not knock-ons", edits: []string{"ports: {pg: 5432}", `ports: {pg: "5432:15432"}`}, instance: "db-1", action: plan.Replace,
			want: []plan.Change{
				fixed(ch("env.DB_DB_1_PG_PORT", "5432", "15432")),
				ch("ports.pg", "5432:5432/tcp", "5432:15432/tcp"),
			}},
		{name: "knock-on of a dependency's move", edits: []string{"db-1: {ship: s1}", "db-1: {ship: s2}"}, instance: "api-1", action: plan.Replace,
			want: []plan.Change{from("db", ch("env.DB_DB_1_HOST", "10.0.0.1", "10.0.0.2"))}},
		{name: "unchanged", edits: []string{"# nothing", "# nothing"}, instance: "api-1", action: plan.Unchanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := shopManifest + "# nothing\n"
			head := editText(t, base, tc.edits...)
			p := Revisions(loadEnvs(t, base), loadEnvs(t, head), secret.New(nil))
			i := slices.IndexFunc(p.Steps, func(st plan.Step) bool { return st.Instance == tc.instance })
			if i < 0 {
				t.Fatalf("no step for %s", tc.instance)
			}
			st := p.Steps[i]
			if st.Action != tc.action {
				t.Errorf("%s: %s, want %s", tc.instance, st.Action, tc.action)
			}
			if diff := cmp.Diff(tc.want, st.Changes); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			// One cause per change, without values.
			if len(st.Causes) != len(st.Changes) {
				t.Errorf("%d causes for %d changes: %q", len(st.Causes), len(st.Changes), st.Causes)
			}
			for j, c := range st.Changes {
				if j < len(st.Causes) && !strings.HasPrefix(st.Causes[j], c.Field) && c.Field != "image" {
					t.Errorf("cause %q of change %s", st.Causes[j], c.Field)
				}
			}
			if err := p.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			status := p.Environments[0].Status
			if wantStatus := map[bool]string{true: "changed", false: "unchanged"}[len(tc.want) > 0]; status != wantStatus {
				t.Errorf("environment %s, want %s", status, wantStatus)
			}
		})
	}
}

func TestRevisionsCauseText(t *testing.T) {
	base := shopManifest
	head := edit(t, "ports: {pg: 5432}", `ports: {pg: "5432:15432"}`,
		"registry.example.com/api:1.2", "registry.example.com/api:1.3",
		"FOO: bar, LOG_LEVEL: info", "LOG_LEVEL: info, DB_PASSWORD: s3cret",
		"    limits: {memory: 256m}\n", "    limits: {memory: 256m}\n    lifecycle:\n      running: [{type: tcp, port: http}]\n")
	p := Revisions(loadEnvs(t, base), loadEnvs(t, head), nil)
	i := slices.IndexFunc(p.Steps, func(st plan.Step) bool { return st.Instance == "api-1" })
	want := []string{
		"image tag 1.2 → 1.3",
		"env.DB_DB_1_PG_PORT changed (knock-on: injected from db)",
		"env.DB_PASSWORD changed", // sensitive: never "added", which would hint at emptiness
		"env.DOCKER_IMAGE changed",
		"env.DOCKER_TAG changed",
		"env.FOO removed",
		"lifecycle.running added",
	}
	if diff := cmp.Diff(want, p.Steps[i].Causes); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
	var texts []string
	for _, c := range p.Steps[i].Changes {
		texts = append(texts, c.Text())
	}
	wantTexts := []string{
		"image: registry.example.com/api:1.2 → registry.example.com/api:1.3",
		"env.DB_DB_1_PG_PORT: 5432 → 15432 (knock-on: injected from db)",
		"env.DB_PASSWORD: added (sensitive value hidden)",
		"env.DOCKER_IMAGE: registry.example.com/api:1.2 → registry.example.com/api:1.3",
		"env.DOCKER_TAG: 1.2 → 1.3",
		"env.FOO: removed (was bar)",
		`lifecycle.running: added [{"type":"tcp","port":"http","max_wait":180}] (does not replace the container)`,
	}
	if diff := cmp.Diff(wantTexts, texts); diff != "" {
		t.Errorf("change texts (-want +got):\n%s", diff)
	}
}

// A renamed ship that still points at the same Docker daemon replaces
// nothing (a live plan finds every container where it wants it); a ship
// whose daemon changed replaces every container on it (a live plan creates
// them on the new daemon).
func TestRevisionsShipIdentity(t *testing.T) {
	base := loadEnvs(t, shopManifest)
	t.Run("renamed, same daemon", func(t *testing.T) {
		head := loadEnvs(t, strings.ReplaceAll(shopManifest, "s1", "node1"))
		if m := Compute(head, deploy(observed(h1, h2), base...), Options{}).Mutating(); len(m) != 0 {
			t.Fatalf("live plan: %d mutating steps", len(m))
		}
		p := Revisions(base, head, nil)
		if m := p.Mutating(); len(m) != 0 {
			t.Errorf("BUG: renaming ship s1 to node1 (same ip, same daemon) reports %d replacements (%s: %q); a live plan replaces nothing", len(m), m[0].ID, m[0].Causes)
		}
	})
	t.Run("same name, other daemon", func(t *testing.T) {
		head := loadEnvs(t, edit(t, "s1: {ip: 10.0.0.1}", "s1: {ip: 10.0.0.1, docker_port: 2376}"))
		// The new daemon is not observed here: the live plan cannot act
		// on it yet, but it does not find the instances where it wants them.
		if live := Compute(head, deploy(observed(h1, h2), base...), Options{}); len(live.Mutating()) == 0 && live.Summary().Unknown == 0 {
			t.Fatal("live plan: nothing to do")
		}
		p := Revisions(base, head, nil)
		if m := p.Mutating(); len(m) == 0 {
			t.Errorf("BUG: moving ship s1 to another Docker daemon (docker_port 2375 → 2376) reports no change (environment %s); a live plan creates db-1 and api-1 on the new daemon", p.Environments[0].Status)
		}
	})
}

// Sensitive values are never copied into a plan: a secret-looking name or
// a value from an env file gives a change without values.
func TestRevisionsSensitive(t *testing.T) {
	fsys := func(apiEnv string) fstest.MapFS {
		return fstest.MapFS{"shop/api.env": &fstest.MapFile{Data: []byte(apiEnv)}}
	}
	withSecrets := func(t *testing.T, env string) string {
		return edit(t, "env: {FOO: bar, LOG_LEVEL: info}", "envfile: api.env\n    env: "+env)
	}
	base := loadFiles(t, fsys("PLAIN_FROM_FILE=file-value-one\nGONE_FROM_FILE=file-value-gone\n"), map[string]string{
		"shop/manifest.yml": withSecrets(t, "{FOO: bar, LOG_LEVEL: info, DB_PASSWORD: pw-value-old, api_token: tok-value-old, OLD_SECRET: sec-value-gone, MY_DSN: dsn-value}"),
	})
	head := loadFiles(t, fsys("PLAIN_FROM_FILE=file-value-two\nNEW_FROM_FILE=file-value-new\n"), map[string]string{
		"shop/manifest.yml": withSecrets(t, "{FOO: baz, LOG_LEVEL: info, DB_PASSWORD: pw-value-new, api_token: tok-value-new, NEW_PRIVATE_KEY: key-value-new, MY_DSN: null}"),
	})
	secrets := []string{"file-value-one", "file-value-gone", "pw-value-old", "tok-value-old", "sec-value-gone", "dsn-value",
		"file-value-two", "file-value-new", "pw-value-new", "tok-value-new", "key-value-new"}
	sensitive := func(field string) plan.Change {
		return plan.Change{Field: field, Sensitive: true, Replaces: true}
	}
	added := func(field string) plan.Change {
		return plan.Change{Field: field, Sensitive: true, Added: true, Replaces: true}
	}
	removed := func(field string) plan.Change {
		return plan.Change{Field: field, Sensitive: true, Removed: true, Replaces: true}
	}

	tests := []struct {
		name    string
		matcher *secret.Matcher
		want    []plan.Change
		shown   []string // values that may appear
	}{
		{"default patterns", nil, []plan.Change{
			sensitive("env.DB_PASSWORD"),
			{Field: "env.FOO", Old: "bar", New: "baz", Replaces: true},
			removed("env.GONE_FROM_FILE"),
			sensitive("env.MY_DSN"),
			added("env.NEW_FROM_FILE"),
			added("env.NEW_PRIVATE_KEY"),
			removed("env.OLD_SECRET"),
			sensitive("env.PLAIN_FROM_FILE"),
			sensitive("env.api_token"),
		}, nil},
		{"explicit default patterns", secret.New(secret.DefaultPatterns), []plan.Change{
			sensitive("env.DB_PASSWORD"),
			{Field: "env.FOO", Old: "bar", New: "baz", Replaces: true},
			removed("env.GONE_FROM_FILE"),
			sensitive("env.MY_DSN"),
			added("env.NEW_FROM_FILE"),
			added("env.NEW_PRIVATE_KEY"),
			removed("env.OLD_SECRET"),
			sensitive("env.PLAIN_FROM_FILE"),
			sensitive("env.api_token"),
		}, nil},
		// Custom patterns replace the defaults; matching ignores case and
		// blanks; env files stay sensitive whatever the patterns.
		{"custom patterns", secret.New([]string{" foo ", "", "Token"}), []plan.Change{
			{Field: "env.DB_PASSWORD", Old: "pw-value-old", New: "pw-value-new", Replaces: true},
			sensitive("env.FOO"),
			removed("env.GONE_FROM_FILE"),
			{Field: "env.MY_DSN", Old: "dsn-value", New: "(unset)", Replaces: true},
			added("env.NEW_FROM_FILE"),
			{Field: "env.NEW_PRIVATE_KEY", New: "key-value-new", Replaces: true},
			{Field: "env.OLD_SECRET", Old: "sec-value-gone", Replaces: true},
			sensitive("env.PLAIN_FROM_FILE"),
			sensitive("env.api_token"),
		}, []string{"pw-value-old", "pw-value-new", "dsn-value", "key-value-new", "sec-value-gone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Revisions(base, head, tc.matcher)
			for _, name := range []string{"api-1", "api-2"} {
				i := slices.IndexFunc(p.Steps, func(st plan.Step) bool { return st.Instance == name })
				st := p.Steps[i]
				if st.Action != plan.Replace {
					t.Errorf("%s: %s, want replace", name, st.Action)
				}
				if diff := cmp.Diff(tc.want, st.Changes); diff != "" {
					t.Errorf("%s changes (-want +got):\n%s", name, diff)
				}
				for _, c := range st.Changes {
					if c.Sensitive && !strings.Contains(c.Text(), "(sensitive value hidden)") {
						t.Errorf("text of %s: %q", c.Field, c.Text())
					}
				}
			}
			// No hidden value anywhere in any rendering of the plan.
			var outputs = map[string][]byte{}
			data, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			outputs["json.Marshal"] = data
			var buf bytes.Buffer
			if err := p.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			outputs["WriteJSON"] = buf.Bytes()
			outputs["String"] = []byte(p.String())
			var md bytes.Buffer
			if err := p.WriteMarkdown(&md, plan.MarkdownOptions{}); err != nil {
				t.Fatal(err)
			}
			outputs["WriteMarkdown"] = md.Bytes()
			for what, out := range outputs {
				for _, s := range secrets {
					if bytes.Contains(out, []byte(s)) && !slices.Contains(tc.shown, s) {
						t.Errorf("%s shows the sensitive value %q", what, s)
					}
				}
			}
		})
	}
}
