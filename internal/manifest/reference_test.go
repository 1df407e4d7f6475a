package manifest

// Tests of the MaestroNG compatibility reference
// (/work/shared/reference/maestro-ng-format.md): §0 and §1 (pipeline and
// configuration keys), §2.7 (templating), §5 (lifecycle parsing), §9 (the
// upstream test suite, as it applies to a loader) and the loader bugs of
// §10.2, each in a test named after it that states what we do instead.
//
// Helpers shared by env_test.go, graph_test.go and value_test.go live here.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// loadFS loads manifest.yml of fsys.
func loadFS(t *testing.T, fsys fs.FS, opts Options) *Repo {
	t.Helper()
	repo, err := LoadFiles(fsys, []string{"manifest.yml"}, opts)
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	return repo
}

// loadText loads one manifest given as text, with optional extra files.
func loadText(t *testing.T, text string, files ...string) *Repo {
	t.Helper()
	return loadFS(t, mapFS(text, files...), Options{})
}

// mapFS builds a MapFS holding manifest.yml and name/content pairs.
func mapFS(text string, files ...string) fstest.MapFS {
	fsys := fstest.MapFS{"manifest.yml": {Data: []byte(text)}}
	for i := 0; i+1 < len(files); i += 2 {
		fsys[files[i]] = &fstest.MapFile{Data: []byte(files[i+1])}
	}
	return fsys
}

// mustEnv loads text and fails the test on any error-level diagnostic.
func mustEnv(t *testing.T, text string, files ...string) *Environment {
	t.Helper()
	return envOf(t, loadText(t, text, files...))
}

func envOf(t *testing.T, repo *Repo) *Environment {
	t.Helper()
	if err := repo.Err(); err != nil {
		t.Fatalf("unexpected errors:\n%v", err)
	}
	if len(repo.Environments) != 1 {
		t.Fatalf("got %d environments, want 1", len(repo.Environments))
	}
	return repo.Environments[0]
}

// messages returns the formatted diagnostics of the given severity.
func messages(repo *Repo, sev Severity) []string {
	var out []string
	for _, d := range repo.Diagnostics {
		if d.Severity == sev {
			out = append(out, d.Error())
		}
	}
	return out
}

// wantErrors checks that the load failed with at least one error matching
// each substring, and that the environment is not in Environments.
func wantErrors(t *testing.T, repo *Repo, substrs ...string) {
	t.Helper()
	errs := messages(repo, SeverityError)
	if len(errs) == 0 {
		t.Fatalf("no error, want errors containing %q", substrs)
	}
	if len(repo.Environments) != 0 {
		t.Errorf("an invalid environment is in Environments")
	}
	for _, s := range substrs {
		if !containsAny(errs, s) {
			t.Errorf("no error contains %q; errors:\n%s", s, strings.Join(errs, "\n"))
		}
	}
	located := regexp.MustCompile(`^manifest\.yml:\d+:\d+: `)
	for _, e := range errs {
		if !located.MatchString(e) {
			t.Errorf("error is not located FILE:LINE:COL: %s", e)
		}
	}
}

// wantWarning checks that some warning contains substr.
func wantWarning(t *testing.T, repo *Repo, substr string) {
	t.Helper()
	ws := messages(repo, SeverityWarning)
	if !containsAny(ws, substr) {
		t.Errorf("no warning contains %q; warnings:\n%s", substr, strings.Join(ws, "\n"))
	}
}

func containsAny(list []string, substr string) bool {
	for _, s := range list {
		if strings.Contains(s, substr) {
			return true
		}
	}
	return false
}

// indent indents every line of s by n spaces.
func indent(s string, n int) string {
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// containerManifest is the harness of the upstream ContainerTest (§9.2):
// service foo (image stackbrew/ubuntu:13.10, service ports {server: 4848}),
// ship "ship" at 10.0.0.1 (api 1.18), one instance foo1 with the given
// extra settings (block YAML, as written under the instance), schema 2.
func containerManifest(settings string) string {
	return containerManifestSchema("__maestro: {schema: 2}\n", settings)
}

func containerManifestSchema(maestro, settings string) string {
	return maestro + `name: test
ships:
  ship: {ip: 10.0.0.1, api_version: "1.18"}
services:
  foo:
    image: stackbrew/ubuntu:13.10
    ports: {server: 4848}
    instances:
      foo1:
        ship: ship
` + indent(settings, 8)
}

// container loads the §9.2 harness and returns foo1 (nil on errors).
func container(t *testing.T, settings string) (*Instance, *Repo) {
	t.Helper()
	repo := loadText(t, containerManifest(settings))
	if repo.Err() != nil || len(repo.Environments) != 1 {
		return nil, repo
	}
	return repo.Environments[0].Instance("foo1"), repo
}

// mustContainer is container for settings that must load.
func mustContainer(t *testing.T, settings string) *Instance {
	t.Helper()
	in, repo := container(t, settings)
	if in == nil {
		t.Fatalf("unexpected errors:\n%v", repo.Err())
	}
	return in
}

// envValues returns an Env as name → value ("<unset>" for a null).
func envValues(e Env) map[string]string {
	out := map[string]string{}
	for _, v := range e {
		if v.Unset {
			out[v.Name] = "<unset>"
			continue
		}
		out[v.Name] = v.Value
	}
	return out
}

// ---------------------------------------------------------------------------
// §0 Processing pipeline and §1.1 top level

func TestPipelineDocumentShape(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string
	}{
		{"empty document is an error, not a crash", "", "the file is empty"},
		{"only a comment is empty", "# nothing\n", "the file is empty"},
		{"root must be a mapping", "- a\n- b\n", "expected a mapping, got a list"},
		{"root scalar", "hello\n", "expected a mapping"},
		{"invalid YAML is located", "name: a\nships: [\n", "invalid YAML"},
		// PyYAML's safe_load refuses a stream of several documents too.
		{"one document per file", "name: a\nships: {s: {ip: 1.2.3.4}}\n---\nname: b\n", "a manifest holds one YAML document"},
		{"duplicate key at the top", "name: a\nname: b\nships: {s: {ip: 1.2.3.4}}\n", `duplicate key "name"`},
		{"duplicate key deep down", "name: a\nships: {s: {ip: 1.2.3.4, ip: 1.2.3.5}}\n", `duplicate key "ip"`},
		{"duplicate service (upstream duplicate_service)", `name: a
ships: {s: {ip: 1.2.3.4}}
services:
  webapp: {image: x, instances: {w1: {ship: s}}}
  webapp: {image: x, instances: {w2: {ship: s}}}
`, `services.webapp: duplicate key "webapp" (first defined at line 4)`},
		{"duplicate instance in one service (upstream duplicate_container_name)", `name: a
ships: {s: {ip: 1.2.3.4}}
services:
  webapp:
    image: x
    instances:
      w1: {ship: s}
      w1: {ship: s}
`, `duplicate key "w1"`},
		{"duplicate instance across services (upstream duplicate_container_name_across_services)", `name: a
ships: {s: {ip: 1.2.3.4}}
services:
  webapp: {image: x, instances: {w1: {ship: s}}}
  db: {image: x, instances: {w1: {ship: s}}}
`, `instance "w1" is already defined in service "webapp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := loadText(t, tt.text)
			errs := messages(repo, SeverityError)
			if !containsAny(errs, tt.wantErr) {
				t.Errorf("errors %q do not contain %q", errs, tt.wantErr)
			}
			if len(repo.Environments) != 0 || len(repo.Invalid) != 1 {
				t.Errorf("Environments=%d Invalid=%v, want 0 and the file", len(repo.Environments), repo.Invalid)
			}
		})
	}
}

// Errors read FILE:LINE:COL: yaml.path: message, with the path of the key.
func TestErrorFormat(t *testing.T) {
	repo := loadText(t, `name: test
ships:
  s1: {ip: 10.0.0.1}
services:
  web:
    image: nginx
    instances:
      web-1:
        ship: nope
`)
	want := []string{`manifest.yml:9:9: services.web.instances.web-1.ship: unknown ship "nope" (ships: s1)`}
	if diff := cmp.Diff(want, messages(repo, SeverityError)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	var me *Error
	if !errors.As(repo.Err(), &me) || me.Line != 9 || me.Col != 9 || me.Path != "services.web.instances.web-1.ship" {
		t.Errorf("errors.As(*Error) = %+v", me)
	}
	if diff := cmp.Diff([]string{"manifest.yml"}, repo.Invalid); diff != "" {
		t.Errorf("Invalid (-want +got):\n%s", diff)
	}
}

// A manifest read from stdin (-f -) shows its display name in errors, and
// env files and includes are relative to the directory of Name (the
// working directory for stdin).
func TestPipelineStdinDisplayName(t *testing.T) {
	fsys := fstest.MapFS{"app.env": {Data: []byte("A=1\n")}}
	text := "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  x: {image: x, envfile: app.env, instances: {x-1: {ship: nope}}}\n"
	repo := LoadSources(fsys, []Source{{Name: "manifest.yml", Display: "<stdin>", Data: []byte(text)}}, Options{})
	errs := messages(repo, SeverityError)
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "<stdin>:4:") {
		t.Errorf("errors = %q, want one starting with <stdin>:4:", errs)
	}
	text = strings.Replace(text, "nope", "s", 1)
	repo = LoadSources(fsys, []Source{{Name: "manifest.yml", Display: "<stdin>", Data: []byte(text)}}, Options{})
	env := envOf(t, repo)
	if v, _ := env.Instance("x-1").Env.Get("A"); v != "1" {
		t.Errorf("A = %q, want 1 (env file next to the manifest)", v)
	}
	if env.File != "<stdin>" {
		t.Errorf("File = %q, want <stdin>", env.File)
	}
}

// Load finds every manifest.yml/manifest.yaml, skipping dot directories.
func TestLoadFindsManifests(t *testing.T) {
	m := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("name: " + name + "\nships: {s: {ip: 1.2.3.4}}\n")}
	}
	fsys := fstest.MapFS{
		"a/manifest.yml":    m("a"),
		"b/c/manifest.yaml": m("c"),
		".git/manifest.yml": m("git"),
		"d/other.yml":       m("other"),
		"manifest.yml.orig": m("orig"),
	}
	repo, err := Load(fsys, Options{Prefix: "apps/"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range repo.Environments {
		got = append(got, e.Name+"@"+e.File)
	}
	if diff := cmp.Diff([]string{"a@apps/a/manifest.yml", "c@apps/b/c/manifest.yaml"}, got); diff != "" {
		t.Errorf("environments (-want +got):\n%s", diff)
	}
	if _, err := Load(fstest.MapFS{"x.yml": m("x")}, Options{}); err == nil {
		t.Error("Load of a tree without manifests: no error")
	}
}

// §1.1: name is required; the top level keys and their defaults.
func TestTopLevelKeys(t *testing.T) {
	t.Run("name", func(t *testing.T) {
		env := mustEnv(t, "name: test\nships: {s: {ip: 1.2.3.4}}\n")
		if env.Name != "test" {
			t.Errorf("Name = %q", env.Name)
		}
		// upstream missing_env_name
		repo := loadText(t, "ships: {s: {ip: 1.2.3.4}}\n")
		wantErrors(t, repo, "missing required environment name")
	})
	t.Run("ships missing is an error, not a KeyError (B18)", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: test\n"), "manifest.yml:1:1: ships: missing required ships section")
	})
	t.Run("services missing means none", func(t *testing.T) {
		env := mustEnv(t, "name: test\nships: {s: {ip: 1.2.3.4}}\n")
		if len(env.Services) != 0 {
			t.Errorf("Services = %v", env.Services)
		}
	})
	t.Run("ship_provider", func(t *testing.T) {
		mustEnv(t, "name: test\nship_provider: static\nships: {s: {ip: 1.2.3.4}}\n")
		wantErrors(t, loadText(t, "name: test\nship_provider: aws\nships: {s: {ip: 1.2.3.4}}\n"), `unknown ship provider "aws" (available: static)`)
	})
	t.Run("extra keys hold anchors", func(t *testing.T) {
		// Keys starting with _ (or x-) are ignored without a warning: they
		// hold YAML anchors. Merge keys (<<) work.
		repo := loadText(t, `name: test
_globals:
  base: &base
    image: redis:6
    env: {A: "1"}
x-more: 1
ships: {s: {ip: 1.2.3.4}}
services:
  cache:
    <<: *base
    instances: {cache-1: {ship: s}}
`)
		env := envOf(t, repo)
		if ws := messages(repo, SeverityWarning); len(ws) != 0 {
			t.Errorf("warnings: %q", ws)
		}
		in := env.Instance("cache-1")
		if in.Image != "redis:6" {
			t.Errorf("Image = %q", in.Image)
		}
		if v, _ := in.Env.Get("A"); v != "1" {
			t.Errorf("A = %q", v)
		}
	})
	t.Run("other unknown keys are warnings", func(t *testing.T) {
		// MaestroNG ignores them silently; we warn (and Strict turns the
		// warning into an error) because they are usually typos.
		text := "name: test\nships: {s: {ip: 1.2.3.4}}\nservise: {}\n"
		repo := loadText(t, text)
		envOf(t, repo)
		wantWarning(t, repo, `manifest.yml:3:1: warning: servise: unknown key "servise" is ignored (did you mean "services"?)`)
		if repo.Err() != nil || len(repo.Warnings()) != 1 || len(repo.Invalid) != 0 {
			t.Errorf("Err=%v Warnings=%v Invalid=%v: a warning must not invalidate the environment", repo.Err(), repo.Warnings(), repo.Invalid)
		}
		repo = loadFS(t, mapFS(text), Options{Strict: true})
		wantErrors(t, repo, `unknown key "servise"`)
	})
}

// §1.2: absent or integer 1 means schema 1; anything else is schema 2.
func TestSchema(t *testing.T) {
	tests := []struct {
		maestro string
		want    int
	}{
		{"", 1},
		{"__maestro: {}\n", 1},
		{"__maestro: {schema: 1}\n", 1},
		{"__maestro: {schema: 2}\n", 2},
		{"__maestro: {schema: \"2\"}\n", 2},
		{"__maestro: {schema: \"1\"}\n", 2}, // the check is "equals integer 1"
		{"__maestro: {schema: {version: 2}}\n", 2},
		// Python's 1.0 == 1 and True == 1.
		{"__maestro: {schema: 1.0}\n", 1},
		{"__maestro: {schema: 1.5}\n", 2},
		{"__maestro: {schema: 0x1}\n", 1},
		{"__maestro: {schema: true}\n", 1},
		{"__maestro: {schema: 1e0}\n", 2}, // a string in YAML 1.1
		// base_dir is injected by MaestroNG (a user value is overwritten);
		// we have no use for it and ignore it.
		{"__maestro: {schema: 2, base_dir: /elsewhere}\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.maestro, func(t *testing.T) {
			env := mustEnv(t, tt.maestro+"name: test\nships: {s: {ip: 1.2.3.4}}\n")
			if env.Schema != tt.want {
				t.Errorf("Schema = %d, want %d", env.Schema, tt.want)
			}
		})
	}
}

// §1.3 registries, §9.3 empty_registry_list.
func TestRegistries(t *testing.T) {
	t.Run("empty registry list", func(t *testing.T) {
		env := mustEnv(t, "name: test\nregistries:\n  # nothing yet\nships: {s: {ip: 1.2.3.4}}\n")
		if len(env.Registries) != 0 {
			t.Errorf("Registries = %v, want none", env.Registries)
		}
	})
	t.Run("entries and retry defaults", func(t *testing.T) {
		env := mustEnv(t, `name: test
registries:
  quay.io:
    registry: https://quay.io/v1/
    username: u
    password: p
    email: e@x
  foo2:
    registry: https://foo1.registry/v1
    retry: {attempts: 5, when: [500, 502]}
ships: {s: {ip: 1.2.3.4}}
`)
		want := map[string]*Registry{
			"quay.io": {Name: "quay.io", URL: "https://quay.io/v1/", Username: "u", Password: "p", Email: "e@x", Retry: Retry{Attempts: 3}},
			"foo2":    {Name: "foo2", URL: "https://foo1.registry/v1", Retry: Retry{Attempts: 5, When: []int{500, 502}}},
		}
		if diff := cmp.Diff(want, env.Registries); diff != "" {
			t.Errorf("Registries (-want +got):\n%s", diff)
		}
	})
	t.Run("registry URL is required", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: test\nregistries:\n  r: {username: u}\nships: {s: {ip: 1.2.3.4}}\n"), "registries.r.registry: missing required registry URL")
	})
}

// §1.4 ship_defaults and §1.5 ships, §9.1 ShipTest and §9.4 ship_parsing.
func TestShips(t *testing.T) {
	env := mustEnv(t, `name: test
ship_defaults:
  docker_port: 4243
  timeout: 30
  api_version: "1.24"
  ssh_tunnel: {user: ops, key: /k, port: 2222}
ships:
  ship1: {ip: 10.0.0.1, endpoint: 192.168.10.1}
  ship2: {ip: 10.0.0.2, docker_port: 1234}
  tls: {ip: 10.0.0.3, tls: true, docker_port: null, ssh_tunnel: {user: me, key: /mine, port: 22}}
  own-tunnel: {ip: 10.0.0.4, ssh_tunnel: {user: me, key: /mine}}
  sock: {ip: 10.0.0.5, socket_path: /var/run/docker.sock}
`)
	want := map[string]*Ship{
		// upstream test_ship_endpoint / ship_parsing: ip and endpoint differ
		"ship1": {Name: "ship1", IP: "10.0.0.1", Endpoint: "192.168.10.1", DockerPort: 4243, APIVersion: "1.24", Timeout: 30,
			SSHTunnel: &SSHTunnel{User: "ops", Key: "/k", Port: 2222}},
		// upstream ship_parsing: endpoint == ip, docker_port 1234 (the
		// ship's value beats ship_defaults)
		"ship2": {Name: "ship2", IP: "10.0.0.2", Endpoint: "10.0.0.2", DockerPort: 1234, APIVersion: "1.24", Timeout: 30,
			SSHTunnel: &SSHTunnel{User: "ops", Key: "/k", Port: 2222}},
		// A key set to null on the ship is set: ship_defaults do not apply
		// (MaestroNG: ship.get(key, default)), and tls switches the
		// default port to 2376.
		"tls": {Name: "tls", IP: "10.0.0.3", Endpoint: "10.0.0.3", DockerPort: 2376, APIVersion: "1.24", Timeout: 30, TLS: true,
			SSHTunnel: &SSHTunnel{User: "me", Key: "/mine", Port: 22}},
		// ssh_tunnel is taken whole, not merged: port is 22 here.
		"own-tunnel": {Name: "own-tunnel", IP: "10.0.0.4", Endpoint: "10.0.0.4", DockerPort: 4243, APIVersion: "1.24", Timeout: 30,
			SSHTunnel: &SSHTunnel{User: "me", Key: "/mine", Port: 22}},
		"sock": {Name: "sock", IP: "10.0.0.5", Endpoint: "10.0.0.5", DockerPort: 4243, APIVersion: "1.24", Timeout: 30,
			SocketPath: "/var/run/docker.sock", SSHTunnel: &SSHTunnel{User: "ops", Key: "/k", Port: 2222}},
	}
	if diff := cmp.Diff(want, env.Ships); diff != "" {
		t.Errorf("Ships (-want +got):\n%s", diff)
	}
	// Address follows MaestroNG's precedence ssh_tunnel > socket_path > tcp.
	for name, addr := range map[string]string{
		"ship1": "ssh://ops@192.168.10.1:2222/4243",
		"tls":   "ssh://me@10.0.0.3:22/2376",
		"sock":  "ssh://ops@10.0.0.5:2222/4243",
	} {
		if got := env.Ships[name].Address(); got != addr {
			t.Errorf("%s.Address() = %q, want %q", name, got, addr)
		}
	}

	t.Run("ssh_tunnel null on the ship means no tunnel", func(t *testing.T) {
		env := mustEnv(t, `name: test
ship_defaults:
  ssh_tunnel: {user: ops, key: /k}
ships:
  direct: {ip: 10.0.0.1, ssh_tunnel: null}
  plain: {ip: 10.0.0.2, ssh_tunnel: }
`)
		for _, name := range []string{"direct", "plain"} {
			if s := env.Ships[name]; s.SSHTunnel != nil || s.Address() != "tcp://"+s.IP+":2375" {
				t.Errorf("%s: SSHTunnel=%+v Address=%s, want a direct tcp connection", name, s.SSHTunnel, s.Address())
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		env := mustEnv(t, "name: test\nships:\n  s: {ip: 10.0.0.1}\n  u: {ip: 10.0.0.2, socket_path: /run/d.sock, docker_port: \"2380\"}\n  a: {ip: 10.0.0.3, api_version: auto}\n")
		s := env.Ships["s"]
		// docker_port 2375, timeout 5, endpoint = ip. MaestroNG's default
		// api_version is 1.18; we leave it empty to negotiate with the
		// daemon, as "auto" does (a 1.18 client is refused by current
		// daemons).
		if diff := cmp.Diff(&Ship{Name: "s", IP: "10.0.0.1", Endpoint: "10.0.0.1", DockerPort: 2375, Timeout: 5}, s); diff != "" {
			t.Errorf("defaults (-want +got):\n%s", diff)
		}
		if got := env.Ships["u"].Address(); got != "unix:///run/d.sock" {
			t.Errorf("socket Address = %q", got)
		}
		if got := env.Ships["u"].DockerPort; got != 2380 {
			t.Errorf("docker_port \"2380\" = %d (int() conversion)", got)
		}
		if got := env.Ships["a"].APIVersion; got != "" {
			t.Errorf("api_version auto = %q, want empty", got)
		}
		if got := env.ShipNames(); !cmp.Equal(got, []string{"a", "s", "u"}) {
			t.Errorf("ShipNames = %q", got)
		}
	})

	errTests := []struct {
		name, ships, want string
	}{
		{"ip is required (B18)", "s: {endpoint: 1.2.3.4}", "ships.s.ip: missing required ship ip"},
		{"ssh tunnel needs user and key", "s: {ip: 1.2.3.4, ssh_tunnel: {user: u}}", "for the tunnel of ship s"},
		// MaestroNG makes the path absolute with realpath; a GitOps
		// repository does not know the deployer's working directory.
		{"socket path must be absolute", "s: {ip: 1.2.3.4, socket_path: docker.sock}", `socket path "docker.sock" must be absolute`},
		// Not range-checked by MaestroNG (int() only).
		{"docker_port range", "s: {ip: 1.2.3.4, docker_port: 70000}", "port 70000 is out of range 1-65535"},
		{"docker_port integer", "s: {ip: 1.2.3.4, docker_port: abc}", "expected an integer"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrors(t, loadText(t, "name: test\nships:\n  "+tt.ships+"\n"), tt.want)
		})
	}
	t.Run("ship_defaults cannot default ip", func(t *testing.T) {
		repo := loadText(t, "name: test\nship_defaults: {ip: 1.2.3.4}\nships:\n  s: {endpoint: 1.2.3.4}\n")
		wantErrors(t, repo, "ships.s.ip: missing required ship ip")
		wantWarning(t, repo, `ship_defaults.ip: unknown key "ip" is ignored`)
	})
	t.Run("ssh_timeout in ship_defaults is accepted and unused", func(t *testing.T) {
		repo := loadText(t, "name: test\nship_defaults: {ssh_timeout: 10}\nships:\n  s: {ip: 1.2.3.4}\n")
		envOf(t, repo)
		if ws := messages(repo, SeverityWarning); len(ws) != 0 {
			t.Errorf("warnings: %q", ws)
		}
	})
}

// §1.6 services.
func TestServiceKeys(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  zk:
    image: zookeeper:3.4
    omit: true
    instances: {}
  web:
    image: nginx
    requires: zk
    wants_info: [zk]
    instances: {web-1: {ship: s}}
`)
	zk, web := env.Service("zk"), env.Service("web")
	if !zk.Omit || web.Omit {
		t.Errorf("Omit: zk=%v web=%v", zk.Omit, web.Omit)
	}
	if len(zk.Instances) != 0 {
		t.Errorf("instances: {} gave %d instances", len(zk.Instances))
	}
	if diff := cmp.Diff([]string{"zk"}, web.Requires); diff != "" {
		t.Errorf("requires as one string: (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"zk"}, web.WantsInfo); diff != "" {
		t.Errorf("wants_info (-want +got):\n%s", diff)
	}
	// Services and instances keep their file order (§2.8).
	ordered := mustEnv(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  zz: {image: x, instances: {z-2: {ship: s}, z-1: {ship: s}}}\n  aa: {image: x, instances: {a-1: {ship: s}}}\n")
	var order []string
	for _, s := range ordered.Services {
		order = append(order, s.Name)
	}
	if diff := cmp.Diff([]string{"zz", "aa"}, order); diff != "" {
		t.Errorf("service order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"z-2", "z-1", "a-1"}, names(ordered.Instances())); diff != "" {
		t.Errorf("instance order (-want +got):\n%s", diff)
	}
	if got := env.Service("nope"); got != nil {
		t.Errorf("Service(nope) = %v", got)
	}
	var names []string
	for _, in := range env.Instances() {
		names = append(names, in.Service+"/"+in.Name)
	}
	if diff := cmp.Diff([]string{"web/web-1"}, names); diff != "" {
		t.Errorf("Instances (-want +got):\n%s", diff)
	}

	errTests := []struct {
		name, service, want string
	}{
		{"image is required (B18)", "{instances: {x-1: {ship: s}}}", "services.x.image: missing required image"},
		{"instances is required (B18)", "{image: x}", "services.x.instances: missing required instances"},
		{"instances null", "{image: x, instances: null}", "services.x.instances: missing required instances"},
		{"unknown requires", "{image: x, requires: [nope], instances: {}}", `services.x.requires: unknown service "nope" (services: x)`},
		{"bad image", "{image: Not An Image, instances: {}}", `invalid image "Not An Image"`},
		{"upper-case repository", "{image: Ubuntu, instances: {}}", `invalid image "Ubuntu"`},
		{"omit must be a boolean", "{image: x, omit: maybe, instances: {}}", "services.x.omit: expected true or false"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrors(t, loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  x: "+tt.service+"\n"), tt.want)
		})
	}
	t.Run("no service-level volumes, ulimits, command", func(t *testing.T) {
		// MaestroNG ignores them (a changelog line claims service-level
		// ulimits, which do not exist). We warn.
		repo := loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  x: {image: x, ulimits: {nofile: 5}, volumes: {/a: /b}, command: x, instances: {x-1: {ship: s}}}\n")
		env := envOf(t, repo)
		for _, k := range []string{"ulimits", "volumes"} {
			wantWarning(t, repo, fmt.Sprintf("services.x.%s: unknown key %q is ignored", k, k))
		}
		// command is a key of cluster services; on ships it is ignored.
		wantWarning(t, repo, "services.x.command: a service-level command applies to cluster services only and is ignored here")
		in := env.Instance("x-1")
		if in.Ulimits != nil || in.Volumes != nil || len(in.Command) != 0 {
			t.Errorf("service-level keys leaked into the instance: %+v", in)
		}
	})
}

// §1.7 instance keys that have no table of their own elsewhere.
func TestInstanceKeys(t *testing.T) {
	in := mustContainer(t, `image: quay.io:8081/foo/bar:2.0
command: /bin/sh -c 'echo "a b"'
links: {db-1: db, cache-1: null}
username: nobody
privileged: yes
cap_add: [NET_ADMIN]
cap_drop: MKNOD
stop_timeout: 30
workdir: /tmp
security_opt: [no-new-privileges]
dns: 8.8.8.8
`)
	want := &Instance{
		Name: "foo1", Service: "foo", Ship: "ship", Image: "quay.io:8081/foo/bar:2.0",
		Command:  []string{"/bin/sh", "-c", `echo "a b"`},
		Ports:    PortList{{Name: "server", Exposed: "4848/tcp", External: "4848/tcp", ExternalIP: "0.0.0.0"}},
		Hostname: "foo1",
		// a null alias means the container's own name
		Links: map[string]string{"db-1": "db", "cache-1": "cache-1"},
		User:  "nobody", Privileged: true, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"},
		Restart: RestartPolicy{Name: "no"}, DNS: []string{"8.8.8.8"}, StopTimeout: 30, Workdir: "/tmp",
		SecurityOpt: []string{"no-new-privileges"},
	}
	if diff := cmp.Diff(want, in, cmp.AllowUnexported(Instance{}), cmpIgnoreEnvAndHash); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	// DOCKER_IMAGE is the instance's image verbatim, DOCKER_TAG its tag.
	if v, _ := in.Env.Get("DOCKER_IMAGE"); v != "quay.io:8081/foo/bar:2.0" {
		t.Errorf("DOCKER_IMAGE = %q", v)
	}
	if v, _ := in.Env.Get("DOCKER_TAG"); v != "2.0" {
		t.Errorf("DOCKER_TAG = %q", v)
	}

	t.Run("defaults", func(t *testing.T) {
		in := mustContainer(t, "")
		// stop_timeout 10, restart no, hostname = name, command empty
		// (the image's default), image from the service.
		if in.StopTimeout != 10 || in.Restart != (RestartPolicy{Name: "no"}) || in.Hostname != "foo1" ||
			len(in.Command) != 0 || in.Image != "stackbrew/ubuntu:13.10" || in.Privileged {
			t.Errorf("defaults: %+v", in)
		}
	})
	t.Run("net unsets hostname", func(t *testing.T) {
		in := mustContainer(t, "net: host")
		if in.Net != "host" || in.Hostname != "" {
			t.Errorf("Net=%q Hostname=%q", in.Net, in.Hostname)
		}
	})
	t.Run("command as a list", func(t *testing.T) {
		in := mustContainer(t, `command: [sh, -c, "echo $HOME"]`)
		if diff := cmp.Diff([]string{"sh", "-c", "echo $HOME"}, in.Command); diff != "" {
			t.Errorf("Command (-want +got):\n%s", diff)
		}
	})
	t.Run("cmd is a deprecated alias, command wins", func(t *testing.T) {
		in, repo := container(t, "cmd: a b")
		if in == nil || !cmp.Equal(in.Command, []string{"a", "b"}) {
			t.Fatalf("cmd: %v %v", in, repo.Err())
		}
		wantWarning(t, repo, "cmd is deprecated: use command")
		in = mustContainer(t, "cmd: a b\ncommand: c d")
		if !cmp.Equal(in.Command, []string{"c", "d"}) {
			t.Errorf("command+cmd = %q, want [c d]", in.Command)
		}
	})
	t.Run("lxc_conf is ignored with a warning", func(t *testing.T) {
		in, repo := container(t, "lxc_conf: {a: b}")
		if in == nil {
			t.Fatal(repo.Err())
		}
		wantWarning(t, repo, "lxc_conf is not supported")
	})

	errTests := []struct {
		name, settings, want string
	}{
		{"unknown ship (B18)", "ship: nope", `unknown ship "nope" (ships: ship)`},
		{"bad shell quoting", `command: "echo 'unterminated"`, "cannot split command"},
		{"negative stop_timeout", "stop_timeout: -1", "stop_timeout must not be negative"},
		{"privileged not a boolean", "privileged: sure", "expected true or false"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			settings := tt.settings
			text := containerManifest(settings)
			if strings.HasPrefix(settings, "ship:") {
				text = strings.Replace(containerManifest(""), "ship: ship", settings, 1)
			}
			wantErrors(t, loadText(t, text), tt.want)
		})
	}
	t.Run("ship is required (B18)", func(t *testing.T) {
		text := strings.Replace(containerManifest("image: x"), "        ship: ship\n", "", 1)
		wantErrors(t, loadText(t, text), "services.foo.instances.foo1.ship: missing required ship")
	})
	t.Run("invalid container name", func(t *testing.T) {
		text := strings.Replace(containerManifest(""), "foo1:", "\"foo 1\":", 1)
		wantErrors(t, loadText(t, text), `invalid instance name "foo 1"`)
	})
}

var cmpIgnoreEnvAndHash = cmp.FilterPath(func(p cmp.Path) bool {
	s := p.String()
	return s == "Env" || s == "SpecHash" || s == "line" || s == "col"
}, cmp.Ignore())

// ---------------------------------------------------------------------------
// §9.2 ContainerTest (upstream unit tests of one container)

func TestUpstreamContainerTest(t *testing.T) {
	t.Run("image_propagates_from_service", func(t *testing.T) {
		in := mustContainer(t, "")
		if in.Image != "stackbrew/ubuntu:13.10" {
			t.Errorf("Image = %q", in.Image)
		}
	})
	t.Run("ports_propagates_from_service", func(t *testing.T) {
		in := mustContainer(t, "")
		want := PortList{{Name: "server", Exposed: "4848/tcp", External: "4848/tcp", ExternalIP: "0.0.0.0"}}
		if diff := cmp.Diff(want, in.Ports); diff != "" {
			t.Errorf("Ports (-want +got):\n%s", diff)
		}
	})
	t.Run("env_propagates_from_service", func(t *testing.T) {
		text := strings.Replace(containerManifest("env: {OTHER_ENV: other-value}"), "    ports: {server: 4848}\n", "    ports: {server: 4848}\n    env: {ENV: value}\n", 1)
		in := envOf(t, loadText(t, text)).Instance("foo1")
		got := envValues(in.Env)
		if got["ENV"] != "value" || got["OTHER_ENV"] != "other-value" {
			t.Errorf("env = %v", got)
		}
	})
	t.Run("get_image_details", func(t *testing.T) {
		// the five rows of §2.6, through DOCKER_TAG
		for image, tag := range map[string]string{
			"stackbrew/ubuntu:13.10":     "13.10",
			"stackbrew/ubuntu":           "latest",
			"quay.io/foo/bar:13.10":      "13.10",
			"quay.io:8081/foo/bar:13.10": "13.10",
			"quay.io:8081/foo/bar":       "latest",
		} {
			in := mustContainer(t, "image: "+image)
			if v, _ := in.Env.Get("DOCKER_TAG"); v != tag {
				t.Errorf("%s: DOCKER_TAG = %q, want %q", image, v, tag)
			}
		}
	})
	t.Run("dns", func(t *testing.T) {
		for settings, want := range map[string][]string{
			"dns: 8.8.8.8":            {"8.8.8.8"},
			"dns: [8.8.8.8, 8.8.4.4]": {"8.8.8.8", "8.8.4.4"},
			"":                        nil,
		} {
			if got := mustContainer(t, settings).DNS; !cmp.Equal(want, got) {
				t.Errorf("%q: DNS = %q, want %q", settings, got, want)
			}
		}
	})
	t.Run("swap_limit", func(t *testing.T) {
		for settings, want := range map[string]int64{
			"limits: {swap: 42}":    42,
			"limits: {swap: '42'}":  42,
			"limits: {swap: '42k'}": 43008,
		} {
			if got := mustContainer(t, settings).Limits.Swap; got != want {
				t.Errorf("%q: Swap = %d, want %d", settings, got, want)
			}
		}
	})
	t.Run("ulimits", func(t *testing.T) {
		tests := []struct {
			settings string
			want     []Ulimit
		}{
			{"", nil},
			{"ulimits: {nofile: {hard: 1024, soft: 1024}}", []Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}}},
			{"ulimits: {nproc: 65535}", []Ulimit{{Name: "nproc", Soft: 65535, Hard: 65535}}},
		}
		for _, tt := range tests {
			if diff := cmp.Diff(tt.want, mustContainer(t, tt.settings).Ulimits); diff != "" {
				t.Errorf("%q: Ulimits (-want +got):\n%s", tt.settings, diff)
			}
		}
	})
	t.Run("log_config", func(t *testing.T) {
		tests := []struct {
			name, settings string
			driver         string
			opts           map[string]string
			wantErr        string
		}{
			{name: "default", settings: ""},
			{name: "syslog", settings: "log_driver: syslog", driver: "syslog"},
			{name: "syslog_with_opts", settings: "log_driver: syslog\nlog_opt: {syslog-address: 'tcp://127.0.0.1:514'}",
				driver: "syslog", opts: map[string]string{"syslog-address": "tcp://127.0.0.1:514"}},
			{name: "wrong_driver_type", settings: "log_driver: notvalid", wantErr: `unknown log driver "notvalid"`},
			{name: "wrong_opt_type", settings: "log_driver: syslog\nlog_opt: 'shouldbeadict'", wantErr: "log_opt: expected a mapping"},
			{name: "converts_options_to_string", settings: "log_driver: json-file\nlog_opt: {max-size: '2M', max-file: 2}",
				driver: "json-file", opts: map[string]string{"max-size": "2M", "max-file": "2"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in, repo := container(t, tt.settings)
				if tt.wantErr != "" {
					wantErrors(t, repo, tt.wantErr)
					return
				}
				if in == nil {
					t.Fatal(repo.Err())
				}
				if in.LogDriver != tt.driver {
					t.Errorf("LogDriver = %q, want %q", in.LogDriver, tt.driver)
				}
				if diff := cmp.Diff(tt.opts, in.LogOpt); diff != "" {
					t.Errorf("LogOpt (-want +got):\n%s", diff)
				}
			})
		}
	})
	t.Run("log_opt without log_driver is ignored", func(t *testing.T) {
		in, repo := container(t, "log_opt: {max-size: 2M}")
		if in == nil || in.LogOpt != nil {
			t.Fatalf("in=%v err=%v", in, repo.Err())
		}
		wantWarning(t, repo, "log_opt without log_driver is ignored")
	})
	t.Run("restart", func(t *testing.T) {
		tests := []struct {
			settings string
			want     RestartPolicy
			wantErr  string
		}{
			{settings: "", want: RestartPolicy{Name: "no"}},
			{settings: "restart: 'no'", want: RestartPolicy{Name: "no"}},
			{settings: "restart: always", want: RestartPolicy{Name: "always"}},
			{settings: "restart: on-failure", want: RestartPolicy{Name: "on-failure"}},
			{settings: "restart: {name: on-failure, retries: 42}", want: RestartPolicy{Name: "on-failure", MaxRetries: 42}},
			{settings: "restart: {name: on-failure}", want: RestartPolicy{Name: "on-failure"}},
			// Upstream: [] falls back to the default. We reject a value of
			// the wrong type rather than silently ignore it.
			{settings: "restart: []", wantErr: "invalid restart policy: expected a string such as on-failure:3 or {name, retries}, got a list"},
			{settings: "restart: noclue", wantErr: `invalid restart policy "noclue"`},
		}
		for _, tt := range tests {
			in, repo := container(t, tt.settings)
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				continue
			}
			if in == nil {
				t.Fatalf("%q: %v", tt.settings, repo.Err())
			}
			if in.Restart != tt.want {
				t.Errorf("%q: Restart = %+v, want %+v", tt.settings, in.Restart, tt.want)
			}
		}
	})
	t.Run("volumes", func(t *testing.T) {
		tests := []struct {
			name, maestro, settings string
			want                    []Bind
			wantErr                 string
		}{
			{name: "simple_bind", settings: "volumes: {/outside: /inside}", want: []Bind{{Source: "/outside", Target: "/inside"}}},
			{name: "dict_bind_no_mode", settings: "volumes: {/outside: {target: /inside}}", want: []Bind{{Source: "/outside", Target: "/inside", Mode: "rw"}}},
			{name: "ro_bind", settings: "volumes: {/outside: {target: /inside, mode: ro}}", want: []Bind{{Source: "/outside", Target: "/inside", Mode: "ro"}}},
			{name: "bind_with_mode", settings: "volumes: {/outside: {target: /inside, mode: 'ro,Z'}}", want: []Bind{{Source: "/outside", Target: "/inside", Mode: "ro,Z"}}},
			{name: "multibind_throws", settings: "volumes: {/outside: [/inside1, /inside2]}", wantErr: "invalid volume: expected a container path or {target, mode}, got a list"},
			{name: "invalid_params_throws", settings: "volumes: {/outside: {bind: /inside}}", wantErr: "missing required volume target"},
			{name: "old_schema", maestro: "__maestro: {schema: 1}\n", settings: "volumes: {/inside: /outside}", want: []Bind{{Source: "/outside", Target: "/inside"}}},
			{name: "old_schema_no_maestro", maestro: "-", settings: "volumes: {/inside: /outside}", want: []Bind{{Source: "/outside", Target: "/inside"}}},
			{name: "old_schema_map_value", maestro: "-", settings: "volumes: {/inside: {target: /x}}", wantErr: "invalid volume: schema 1 maps a container path to a host path string"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var text string
				switch tt.maestro {
				case "":
					text = containerManifest(tt.settings)
				case "-":
					text = containerManifestSchema("", tt.settings)
				default:
					text = containerManifestSchema(tt.maestro, tt.settings)
				}
				repo := loadText(t, text)
				if tt.wantErr != "" {
					wantErrors(t, repo, tt.wantErr)
					return
				}
				in := envOf(t, repo).Instance("foo1")
				if diff := cmp.Diff(tt.want, in.Volumes); diff != "" {
					t.Errorf("Volumes (-want +got):\n%s", diff)
				}
			})
		}
	})
	t.Run("workdir", func(t *testing.T) {
		if got := mustContainer(t, "workdir: /tmp").Workdir; got != "/tmp" {
			t.Errorf("Workdir = %q", got)
		}
	})
	t.Run("volume_conflict_container", func(t *testing.T) {
		_, repo := container(t, "volumes: {/out: /in1}\ncontainer_volumes: [/in1]")
		wantErrors(t, repo, "conflict in foo1 between bind-mounted volume and container-only volume on /in1")
	})
	t.Run("ports", func(t *testing.T) {
		tests := []struct {
			spec    string
			want    Port
			wantErr string
		}{
			{spec: "'80'", want: Port{Exposed: "80/tcp", External: "80/tcp", ExternalIP: "0.0.0.0"}},
			{spec: "'80/udp'", want: Port{Exposed: "80/udp", External: "80/udp", ExternalIP: "0.0.0.0"}},
			{spec: "'80:8080'", want: Port{Exposed: "80/tcp", External: "8080/tcp", ExternalIP: "0.0.0.0"}},
			{spec: "'80/tcp:8080/udp'", wantErr: "mismatched protocols between 80/tcp and 8080/udp"},
			{spec: "{exposed: '1234-1236', external: '1234-1236'}", want: Port{Exposed: "1234-1236/tcp", External: "1234-1236/tcp", ExternalIP: "0.0.0.0"}},
			{spec: "{exposed: '1234', external: '1234-1236'}", want: Port{Exposed: "1234/tcp", External: "1234-1236/tcp", ExternalIP: "0.0.0.0"}},
		}
		for _, tt := range tests {
			in, repo := container(t, "ports: {p: "+tt.spec+"}")
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				continue
			}
			if in == nil {
				t.Fatalf("%s: %v", tt.spec, repo.Err())
			}
			tt.want.Name = "p"
			if diff := cmp.Diff(&tt.want, in.Port("p")); diff != "" {
				t.Errorf("%s: port (-want +got):\n%s", tt.spec, diff)
			}
		}
	})
	t.Run("extra_hosts", func(t *testing.T) {
		for settings, want := range map[string]map[string]string{
			"extra_hosts: {foo: 10.0.0.1}":     {"foo": "10.0.0.1"},
			"extra_hosts: {foo: {ship: ship}}": {"foo": "10.0.0.1"},
			"":                                 nil,
		} {
			if diff := cmp.Diff(want, mustContainer(t, settings).ExtraHosts); diff != "" {
				t.Errorf("%q: ExtraHosts (-want +got):\n%s", settings, diff)
			}
		}
		// MaestroNG: unknown ship → KeyError; a non-string non-map value
		// is silently dropped. We report both.
		_, repo := container(t, "extra_hosts: {foo: {ship: nope}}")
		wantErrors(t, repo, `extra_hosts.foo.ship: unknown ship "nope"`)
		_, repo = container(t, "extra_hosts: {foo: 42}")
		wantErrors(t, repo, `invalid address "42" for extra host foo`)
	})
	t.Run("labels", func(t *testing.T) {
		for _, bad := range []string{"labels: 'foo'", "labels: 42"} {
			_, repo := container(t, bad)
			wantErrors(t, repo, "invalid labels: expected a list or a mapping")
		}
		for settings, want := range map[string]map[string]string{
			"labels: ['foo']":    {"foo": ""},
			"labels: {foo: bar}": {"foo": "bar"},
		} {
			if diff := cmp.Diff(want, mustContainer(t, settings).Labels); diff != "" {
				t.Errorf("%q: Labels (-want +got):\n%s", settings, diff)
			}
		}
		// Our own label prefix is reserved.
		_, repo := container(t, "labels: {io.maestro-sync/env: x}")
		wantErrors(t, repo, "which maestro-sync reserves")
	})
}

// ---------------------------------------------------------------------------
// §9.3 ConductorTest (YAML fixtures under testdata/reference)

func loadFixture(t *testing.T, dir string) *Repo {
	t.Helper()
	return loadFS(t, os.DirFS("testdata/reference/"+dir), Options{})
}

func TestUpstreamConductorTest(t *testing.T) {
	t.Run("env_name", func(t *testing.T) {
		env := mustEnv(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  foo: {image: x, instances: {foo-1: {ship: s}}}\n")
		if env.Name != "test" {
			t.Errorf("Name = %q", env.Name)
		}
		if v, _ := env.Instance("foo-1").Env.Get("MAESTRO_ENVIRONMENT_NAME"); v != "test" {
			t.Errorf("MAESTRO_ENVIRONMENT_NAME = %q", v)
		}
	})
	t.Run("volumes_parsing", func(t *testing.T) {
		env := envOf(t, loadFixture(t, "volumes"))
		i1, i2 := env.Instance("instance-1"), env.Instance("instance-2")
		// volumes = container_volumes ∪ bind targets
		if diff := cmp.Diff([]string{"/in1", "/in2"}, volumeTargets(i1)); diff != "" {
			t.Errorf("instance-1 volumes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"/in3"}, volumeTargets(i2)); diff != "" {
			t.Errorf("instance-2 volumes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"instance-1"}, i2.VolumesFrom); diff != "" {
			t.Errorf("instance-2 volumes_from (-want +got):\n%s", diff)
		}
		// B4: volumes_from within one service adds no self-dependency, so
		// ordering works (upstream, start on this fixture recursed forever).
		if got := env.Service("myservice").Dependencies; len(got) != 0 {
			t.Errorf("Dependencies = %q, want none", got)
		}
		if got := names(env.StartOrder(env.Instances())); !cmp.Equal(got, []string{"instance-1", "instance-2"}) {
			t.Errorf("StartOrder = %q", got)
		}
	})
	t.Run("volume_conflict_volumes_from", func(t *testing.T) {
		wantErrors(t, loadText(t, `__maestro: {schema: 2}
name: test
ships: {s: {ip: 1.2.3.4}}
services:
  myservice:
    image: x
    instances:
      instance-1: {ship: s, volumes: {/out: /in1}}
      instance-2: {ship: s, volumes: {/out2: /in1}, volumes_from: instance-1}
`), "volume conflicts between instance-2 and instance-1: /in1")
	})
	t.Run("volumes_from_unknown", func(t *testing.T) {
		wantErrors(t, loadText(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  myservice:
    image: x
    instances:
      instance-1: {ship: s, volumes_from: [instance-2]}
`), `services.myservice.instances.instance-1.volumes_from: unknown container "instance-2" to get volumes from`)
	})
	t.Run("volumes_from_other_ship", func(t *testing.T) {
		wantErrors(t, loadText(t, `name: test
ships: {s: {ip: 1.2.3.4}, t: {ip: 1.2.3.5}}
services:
  a: {image: x, instances: {a-1: {ship: s}}}
  b: {image: x, instances: {b-1: {ship: t, volumes_from: a-1}}}
`), "a-1 (ship s) and b-1 (ship t) must be on the same ship for volumes_from")
	})
	t.Run("volumes_from_adds_dependency", func(t *testing.T) {
		env := envOf(t, loadFixture(t, "volumes_from_dependency"))
		if env.Schema != 2 {
			t.Errorf("schema {version: 2} read as %d", env.Schema)
		}
		if len(env.Services) != 2 || len(env.Instances()) != 2 || len(env.Service("myservice").Instances) != 1 {
			t.Errorf("services=%d instances=%d", len(env.Services), len(env.Instances()))
		}
		// Upstream: dependencies == requires == {mydata}. We keep Requires
		// as written and put the implied edge in Dependencies.
		if diff := cmp.Diff([]string{"mydata"}, env.Service("myservice").Dependencies); diff != "" {
			t.Errorf("Dependencies (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"mydata"}, env.Dependencies("myservice")); diff != "" {
			t.Errorf("Dependencies() (-want +got):\n%s", diff)
		}
	})
	t.Run("envfiles", func(t *testing.T) {
		// The exact env sets are in TestEnvFilesFixture (env_test.go).
		env := envOf(t, loadFixture(t, "envfiles"))
		for name, want := range map[string]string{"s1a": "dog", "s1b": "giraffe", "s2a": "giraffe", "s2b": "cat"} {
			if v, _ := env.Instance(name).Env.Get("OVERRIDE"); v != want {
				t.Errorf("%s: OVERRIDE = %q, want %q", name, v, want)
			}
		}
	})
	// container_filters_* select containers for CLI commands: not the
	// loader's business (see the CLI's tests).
}

func names(ins []*Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.Name
	}
	return out
}

// ---------------------------------------------------------------------------
// §9.4 ConfigTest, AuditorConfigTest and §2.7 templating

func TestTemplating(t *testing.T) {
	const ships = "ships: {s: {ip: 10.0.0.1}}\n"
	tests := []struct {
		name    string
		dir     string   // directory of manifest.yml; "" is the root
		files   []string // name, content pairs besides manifest.yml
		text    string
		environ map[string]string
		check   func(t *testing.T, env *Environment)
	}{
		{
			name: "yaml_parsing_test1: env.X", environ: map[string]string{"BAR": "bar"},
			text: "name: {{ env.BAR }}\n" + ships,
			check: func(t *testing.T, env *Environment) {
				if env.Name != "bar" {
					t.Errorf("Name = %q", env.Name)
				}
			},
		},
		{
			name: "env['X']", environ: map[string]string{"BAR": "bar"},
			text: "name: x{{ env['BAR'] }}\n" + ships,
			check: func(t *testing.T, env *Environment) {
				if env.Name != "xbar" {
					t.Errorf("Name = %q", env.Name)
				}
			},
		},
		{
			name: "undefined renders empty (a null value)",
			text: "name: test\n" + ships + "services:\n  x:\n    image: x\n    env: {A: {{ env.NOPE }}, B: \"{{ env.NOPE }}\"}\n    instances: {x-1: {ship: s}}\n",
			check: func(t *testing.T, env *Environment) {
				in := env.Instance("x-1")
				if v, ok := in.Env.Lookup("A"); !ok || !v.Unset {
					t.Errorf("A = %+v, want unset (null)", v)
				}
				if v, ok := in.Env.Get("B"); !ok || v != "" {
					t.Errorf("B = %q, want empty", v)
				}
			},
		},
		{
			name: "default filter",
			text: "name: {{ env.NOPE | default(\"d\") }}\n" + ships,
			check: func(t *testing.T, env *Environment) {
				if env.Name != "d" {
					t.Errorf("Name = %q", env.Name)
				}
			},
		},
		{
			name: "for loop emitting instances, set and with",
			text: "name: test\n" + ships + "{% set img = 'kafka:2' %}services:\n  kafka:\n    image: {{ img }}\n    instances:\n{%- for i in range(1, 4) %}\n      kafka-{{ i }}: {ship: s, ports: {broker: {{ 9091 + i }}}}\n{%- endfor %}\n{% with n = 'zk' %}  {{ n }}: {image: {{ n }}, instances: {}}\n{% endwith %}",
			check: func(t *testing.T, env *Environment) {
				if got := names(env.Instances()); !cmp.Equal(got, []string{"kafka-1", "kafka-2", "kafka-3"}) {
					t.Errorf("instances = %q", got)
				}
				if p := env.Instance("kafka-3").Port("broker"); p == nil || p.External != "9094/tcp" {
					t.Errorf("kafka-3 broker = %+v", p)
				}
				if env.Service("kafka").Image != "kafka:2" || env.Service("zk") == nil {
					t.Errorf("services = %+v", env.Services)
				}
			},
		},
		{
			name:  "include at the root",
			files: []string{"services.yml", "services:\n  web: {image: nginx, instances: {web-1: {ship: s}}}\n"},
			text:  "name: test\n" + ships + "{% include 'services.yml' %}\n",
			check: func(t *testing.T, env *Environment) {
				if env.Instance("web-1") == nil {
					t.Errorf("include did not read services.yml")
				}
			},
		},
		{
			// Names inside an included file are relative to the manifest's
			// directory too (Jinja's FileSystemLoader(base_dir)).
			name: "nested include at the root",
			files: []string{"inc/services.yml", "services:\n{% include 'inc/web.yml' %}\n",
				"inc/web.yml", "  web: {image: nginx, instances: {web-1: {ship: s}}}"},
			text: "name: test\n" + ships + "{% include 'inc/services.yml' %}\n",
			check: func(t *testing.T, env *Environment) {
				if env.Instance("web-1") == nil {
					t.Errorf("nested include failed")
				}
			},
		},
		{
			name:  "include is relative to the manifest's directory",
			dir:   "apps/shop",
			files: []string{"apps/shop/services.yml", "services:\n  web: {image: nginx, instances: {web-1: {ship: s}}}\n", "services.yml", "services: {}\n"},
			text:  "name: test\n" + ships + "{% include 'services.yml' %}\n",
			check: func(t *testing.T, env *Environment) {
				if env.Instance("web-1") == nil {
					t.Errorf("include did not read apps/shop/services.yml")
				}
			},
		},
		{
			name:  "import of macros",
			files: []string{"macros.j2", "{% macro inst(n) %}{{ n }}: {ship: s}{% endmacro %}"},
			text:  "{% import 'macros.j2' as m %}name: test\n" + ships + "services:\n  web:\n    image: nginx\n    instances:\n      {{ m.inst('web-1') }}\n",
			check: func(t *testing.T, env *Environment) {
				if env.Instance("web-1") == nil {
					t.Errorf("macro import failed")
				}
			},
		},
		{
			name:  "import relative to the manifest's directory",
			dir:   "apps/shop",
			files: []string{"apps/shop/macros.j2", "{% macro inst(n) %}{{ n }}: {ship: s}{% endmacro %}"},
			text:  "{% import 'macros.j2' as m %}name: test\n" + ships + "services:\n  web:\n    image: nginx\n    instances:\n      {{ m.inst('web-1') }}\n",
			check: func(t *testing.T, env *Environment) {
				if env.Instance("web-1") == nil {
					t.Errorf("macro import failed")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := path.Join(tt.dir, "manifest.yml")
			fsys := fstest.MapFS{name: {Data: []byte(tt.text)}}
			for i := 0; i+1 < len(tt.files); i += 2 {
				fsys[tt.files[i]] = &fstest.MapFile{Data: []byte(tt.files[i+1])}
			}
			repo, err := LoadFiles(fsys, []string{name}, Options{Environ: tt.environ})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, envOf(t, repo))
		})
	}

	errTests := []struct {
		name, text, want string
	}{
		{"include outside the repository", "{% include '../../../etc/passwd' %}", "outside the repository"},
		{"include of a missing file", "{% include 'nope.yml' %}", "template"},
		{"syntax error", "name: {{ env.X \n", "template"},
		{"include loop is bounded", "{% include 'manifest.yml' %}", "template"},
		// Jinja's FileSystemLoader refuses .. in template names.
		{"include of a parent directory", "{% include '../x.yml' %}", "outside the repository"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(tt.text)}}, Options{})
			errs := messages(repo, SeverityError)
			if !containsAny(errs, tt.want) || len(repo.Environments) != 0 {
				t.Errorf("errors %q, want one containing %q", errs, tt.want)
			}
		})
	}

	t.Run("rendered line numbers are marked", func(t *testing.T) {
		text := "name: test\n" + ships + "{# a comment #}\nservices:\n  x: {image: x, instances: {x-1: {ship: nope}}}\n"
		repo := loadText(t, text)
		errs := messages(repo, SeverityError)
		if len(errs) != 1 || !strings.Contains(errs[0], "(line of the rendered template") {
			t.Errorf("errors = %q", errs)
		}
	})
	t.Run("RenderTemplate shows what is parsed", func(t *testing.T) {
		out, err := RenderTemplate(fstest.MapFS{}, Source{Name: "manifest.yml", Data: []byte("name: {{ env.A }}\n")}, map[string]string{"A": "a"})
		if err != nil || string(out) != "name: a\n" {
			t.Errorf("RenderTemplate = %q, %v", out, err)
		}
	})
}

// §9.4 ignore_errors_wraps_with_non_failing_auditor: the _fail auditor is
// test-only; the parsing of ignore_errors is checked on a log auditor.
func TestAuditorIgnoreErrors(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 1.2.3.4}}
audit:
  - {type: log, file: /var/log/a.log}
  - {type: log, file: /var/log/b.log, ignore_errors: True, level: debug}
`)
	want := []Auditor{
		{Type: "log", Level: "info", Options: map[string]string{"file": "/var/log/a.log"}},
		{Type: "log", Level: "debug", IgnoreErrors: true, Options: map[string]string{"file": "/var/log/b.log"}},
	}
	if diff := cmp.Diff(want, env.Audit); diff != "" {
		t.Errorf("Audit (-want +got):\n%s", diff)
	}
	// MaestroNG took only the boolean true (audit.py: `is True`) and never
	// refused a value; we take yes and on too, quoted or not, and never
	// refuse a value either.
	quoted := mustEnv(t, "name: test\nships: {}\naudit:\n  - {type: log, file: a.log, ignore_errors: \"yes\"}\n  - {type: log, file: b.log, ignore_errors: 2}\n")
	if !quoted.Audit[0].IgnoreErrors || quoted.Audit[1].IgnoreErrors {
		t.Errorf("ignore_errors \"yes\" and 2: %v, %v; want true, false", quoted.Audit[0].IgnoreErrors, quoted.Audit[1].IgnoreErrors)
	}
	wantErrors(t, loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\naudit:\n  - {type: nope}\n"), `unknown auditor type "nope"`)
	wantErrors(t, loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\naudit:\n  - {type: log}\n"), "missing required file for a log auditor")
}

// ---------------------------------------------------------------------------
// §5 and §9.5 LifecycleHelperTest: lifecycle check parsing.

// lifecycleManifest is the §9.5 harness: ship test-ship (ip ship.ip),
// ports server 4242/tcp and data 4243/udp, env {foo: bar, wid: 42}, with
// the given instance lifecycle (block YAML under lifecycle:).
func lifecycleManifest(lifecycle string) string {
	return `name: test
ships:
  test-ship: {ip: ship.ip}
services:
  foo:
    image: x
    instances:
      foo1:
        ship: test-ship
        ports: {server: '4242/tcp', data: '4243/udp', range: '5000-5002'}
        env: {foo: bar, wid: 42}
        lifecycle:
` + indent(lifecycle, 10)
}

func TestUpstreamLifecycleHelperTest(t *testing.T) {
	tests := []struct {
		name      string
		lifecycle string
		want      []Check
		wantErr   string
		wantWarn  string
	}{
		{name: "parse_checker_exec", lifecycle: "running: [{type: exec, command: 'python foo.py -arg'}]",
			want: []Check{{Type: "exec", Command: []string{"python", "foo.py", "-arg"}, Attempts: 180, EnvFrom: "env"}}},
		{name: "exec envfrom stdin and attempts", lifecycle: "running: [{type: exec, command: [a, b c], envfrom: stdin, attempts: 3}]",
			want: []Check{{Type: "exec", Command: []string{"a", "b c"}, Attempts: 3, EnvFrom: "stdin"}}},
		{name: "exec bad envfrom", lifecycle: "running: [{type: exec, command: x, envfrom: file}]", wantErr: `envfrom must be env or stdin, got "file"`},
		{name: "exec command required", lifecycle: "running: [{type: exec}]", wantErr: "missing required command"},
		// The docs' example uses cmd, which upstream rejects (KeyError);
		// we accept it as an alias as for the instance command.
		{name: "exec cmd alias", lifecycle: "running: [{type: exec, cmd: 'a b'}]",
			want: []Check{{Type: "exec", Command: []string{"a", "b"}, Attempts: 180, EnvFrom: "env"}}},
		{name: "rexec", lifecycle: "running: [{type: rexec, command: 'pg_isready -q'}]",
			want: []Check{{Type: "rexec", Command: []string{"pg_isready", "-q"}, Attempts: 180}}},
		{name: "parse_checker_tcp", lifecycle: "running: [{type: tcp, port: server}]",
			want: []Check{{Type: "tcp", Port: "server", MaxWait: 180}}},
		{name: "parse_checker_tcp_with_max_wait", lifecycle: "running: [{type: tcp, port: server, max_wait: 2}]",
			want: []Check{{Type: "tcp", Port: "server", MaxWait: 2}}},
		{name: "tcp_unknown_port", lifecycle: "running: [{type: tcp, port: nope}]", wantErr: "port nope is not defined by foo1 (ports: data, range, server)"},
		{name: "tcp_invalid_port (udp)", lifecycle: "running: [{type: tcp, port: data}]", wantErr: "port data of foo1 is not TCP"},
		{name: "tcp port number is not a name", lifecycle: "running: [{type: tcp, port: 4242}]", wantErr: "port 4242 is not defined by foo1"},
		// upstream crashes converting a range to int
		{name: "tcp on a range", lifecycle: "running: [{type: tcp, port: range}]", wantErr: "port range of foo1 is a range"},
		{name: "tcp negative max_wait", lifecycle: "running: [{type: tcp, port: server, max_wait: -1}]", wantErr: "max_wait must not be negative"},
		// upstream: KeyError
		{name: "parse_unknown_checker_type", lifecycle: "running: [{type: nope}]", wantErr: `unknown check type "nope"`},
		{name: "missing type", lifecycle: "running: [{port: server}]", wantErr: "missing required check type"},
		{name: "http_defaults", lifecycle: "running: [{type: http, port: server}]",
			// Host empty means the ship's ip. The method is upper-cased
			// (MaestroNG lower-cases it for python-requests; HTTP methods
			// are upper case on the wire).
			want: []Check{{Type: "http", Port: "server", MaxWait: 300, Path: "/", Scheme: "http", Method: "GET"}}},
		{name: "http_explicits", lifecycle: "running: [{type: http, port: server, host: example.com, match_regex: 'abc[^d]', path: blah, scheme: https, method: put, max_wait: 2, requests_options: {verify: false}}]",
			want: []Check{{Type: "http", Port: "server", Host: "example.com", MatchRegex: "abc[^d]", Path: "/blah", Scheme: "https", Method: "PUT", MaxWait: 2, Options: map[string]string{"verify": "false"}}}},
		{name: "http literal port number", lifecycle: "running: [{type: http, port: 8080}]",
			want: []Check{{Type: "http", Port: "8080", MaxWait: 300, Path: "/", Scheme: "http", Method: "GET"}}},
		{name: "http bad regex", lifecycle: "running: [{type: http, port: server, match_regex: 'a('}]", wantErr: `bad regex "a("`},
		{name: "http bad scheme", lifecycle: "running: [{type: http, port: server, scheme: ftp}]", wantErr: `unknown scheme "ftp"`},
		{name: "http udp port", lifecycle: "running: [{type: http, port: data}]", wantErr: "port data of foo1 is not TCP"},
		// upstream: TypeError at parse time; we warn (Strict makes it an
		// error), as for every unknown key.
		{name: "http unknown key", lifecycle: "running: [{type: http, port: server, attempts: 3}]",
			want:     []Check{{Type: "http", Port: "server", MaxWait: 300, Path: "/", Scheme: "http", Method: "GET"}},
			wantWarn: `unknown key "attempts" is ignored`},
		{name: "http unsupported requests option", lifecycle: "running: [{type: http, port: server, requests_options: {cert: x}}]",
			want:     []Check{{Type: "http", Port: "server", MaxWait: 300, Path: "/", Scheme: "http", Method: "GET", Options: map[string]string{"cert": "x"}}},
			wantWarn: `requests option "cert" is ignored`},
		{name: "sleep", lifecycle: "running: [{type: sleep, wait: 5}]", want: []Check{{Type: "sleep", Wait: 5}}},
		{name: "sleep wait required", lifecycle: "running: [{type: sleep}]", wantErr: "missing required wait"},
		{name: "state must be a list", lifecycle: "running: {type: tcp, port: server}",
			wantErr: "services.foo.instances.foo1.lifecycle.running: expected a list of checks, got a mapping"},
		// upstream does not validate state names; only four are used.
		{name: "unknown state", lifecycle: "started: [{type: tcp, port: server}]", wantWarn: `unknown lifecycle state "started" is ignored`},
		{name: "null state", lifecycle: "running:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := loadText(t, lifecycleManifest(tt.lifecycle))
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				return
			}
			in := envOf(t, repo).Instance("foo1")
			if diff := cmp.Diff(tt.want, in.Lifecycle["running"]); diff != "" {
				t.Errorf("running checks (-want +got):\n%s", diff)
			}
			if tt.wantWarn != "" {
				wantWarning(t, repo, tt.wantWarn)
			}
		})
	}

	t.Run("script_env_all_strings", func(t *testing.T) {
		in := envOf(t, loadText(t, lifecycleManifest(""))).Instance("foo1")
		if v, ok := in.Env.Get("wid"); !ok || v != "42" {
			t.Errorf("wid = %q", v)
		}
	})
	t.Run("tcp check targets the ship ip and the external port", func(t *testing.T) {
		// The check carries the port name; the host is the ship's ip and
		// the number the port's external one.
		env := envOf(t, loadText(t, lifecycleManifest("running: [{type: tcp, port: server}]")))
		in := env.Instance("foo1")
		if env.Ships[in.Ship].IP != "ship.ip" || in.Port(in.Lifecycle["running"][0].Port).ExternalPort() != "4242" {
			t.Errorf("tcp check target: ship %q port %+v", in.Ship, in.Port("server"))
		}
	})
	t.Run("http regex semantics", func(t *testing.T) {
		// match_regex is searched (not anchored) with DOTALL.
		re := regexp.MustCompile("(?s)" + "abc[^d]")
		if re.MatchString("blah abcd blah") || !re.MatchString("blah abce blah") {
			t.Error("abc[^d] must match abce and not abcd")
		}
	})
	t.Run("all four states", func(t *testing.T) {
		in := envOf(t, loadText(t, lifecycleManifest(`pre-start: [{type: sleep, wait: 1}]
running: [{type: sleep, wait: 2}]
pre-stop: [{type: sleep, wait: 3}]
stopped: [{type: sleep, wait: 4}]`))).Instance("foo1")
		want := map[string][]Check{
			"pre-start": {{Type: "sleep", Wait: 1}}, "running": {{Type: "sleep", Wait: 2}},
			"pre-stop": {{Type: "sleep", Wait: 3}}, "stopped": {{Type: "sleep", Wait: 4}},
		}
		if diff := cmp.Diff(want, in.Lifecycle); diff != "" {
			t.Errorf("Lifecycle (-want +got):\n%s", diff)
		}
	})
}

// §5 merge: service checks followed by the instance's own.
func TestLifecycleMerge(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}, t: {ip: 10.0.0.2}}
services:
  app:
    image: x
    ports: {web: 80}
    lifecycle:
      running: [{type: tcp, port: web}]
      stopped: [{type: sleep, wait: 1}]
    instances:
      a1:
        ship: s
        ports: {admin: 8081}
        lifecycle: {running: [{type: tcp, port: admin}]}
      a2: {ship: t}
`)
	want := map[string][]Check{
		"running": {{Type: "tcp", Port: "web", MaxWait: 180}, {Type: "tcp", Port: "admin", MaxWait: 180}},
		"stopped": {{Type: "sleep", Wait: 1}},
	}
	if diff := cmp.Diff(want, env.Instance("a1").Lifecycle); diff != "" {
		t.Errorf("a1 (-want +got):\n%s", diff)
	}
	// A service check naming a port that one instance lacks is an error
	// for that instance.
	wantErrors(t, loadText(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  app:
    image: x
    lifecycle: {running: [{type: tcp, port: web}]}
    instances:
      a1: {ship: s, ports: {web: 80}}
      a2: {ship: s, ports: {other: 81}}
`), "port web is not defined by a2")
}

// ---------------------------------------------------------------------------
// §10.2 bugs that concern the loader: what we do instead.

// B1: service lifecycle lists were extended in place, so instance checks
// leaked to later instances. Instance checks stay with their instance.
func TestB1InstanceChecksDoNotLeak(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  app:
    image: x
    ports: {web: 80}
    lifecycle: {running: [{type: tcp, port: web}]}
    instances:
      a1:
        ship: s
        ports: {admin: 8081}
        lifecycle: {running: [{type: tcp, port: admin}]}
      a2: {ship: s, ports: {web: 81}}
      a3: {ship: s, ports: {web: 82}}
`)
	web := Check{Type: "tcp", Port: "web", MaxWait: 180}
	admin := Check{Type: "tcp", Port: "admin", MaxWait: 180}
	for name, want := range map[string][]Check{"a1": {web, admin}, "a2": {web}, "a3": {web}} {
		if diff := cmp.Diff(want, env.Instance(name).Lifecycle["running"]); diff != "" {
			t.Errorf("%s running checks (-want +got):\n%s", name, diff)
		}
	}
}

// B2: a map-form port spec shared by several containers (service level, or
// a YAML alias) crashed on the second parse. It parses for every instance.
func TestB2SharedMapPortParsesForAll(t *testing.T) {
	env := mustEnv(t, `name: test
_ports: &admin {exposed: 9000, external: [127.0.0.1, 9000]}
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}
services:
  app:
    image: x
    ports:
      web: {exposed: 80, external: 8080}
    instances:
      a1: {ship: s1, ports: {admin: *admin}}
      a2: {ship: s2, ports: {admin: *admin}}
`)
	for _, name := range []string{"a1", "a2"} {
		want := PortList{
			{Name: "admin", Exposed: "9000/tcp", External: "9000/tcp", ExternalIP: "127.0.0.1"},
			{Name: "web", Exposed: "80/tcp", External: "8080/tcp", ExternalIP: "0.0.0.0"},
		}
		if diff := cmp.Diff(want, env.Instance(name).Ports); diff != "" {
			t.Errorf("%s ports (-want +got):\n%s", name, diff)
		}
	}
}

// B3: a dependency cycle (including a service requiring itself) recursed
// forever. It is an error that prints the cycle.
func TestB3CycleIsAnErrorPrintingTheCycle(t *testing.T) {
	tests := []struct {
		name, services string
		want           []string
	}{
		{"self", "  a: {image: x, requires: [a], instances: {}}\n", []string{"services.a", "dependency cycle: a"}},
		{"two", "  a: {image: x, requires: [b], instances: {}}\n  b: {image: x, requires: [a], instances: {}}\n",
			[]string{"dependency cycle: a → b → a"}},
		{"three with a tail", "  t: {image: x, requires: [a], instances: {}}\n  a: {image: x, requires: [b], instances: {}}\n  b: {image: x, requires: [c], instances: {}}\n  c: {image: x, requires: [a], instances: {}}\n",
			[]string{"dependency cycle: a → b → c → a"}},
		{"through volumes_from", "  a: {image: x, requires: [b], instances: {a-1: {ship: s}}}\n  b: {image: x, instances: {b-1: {ship: s, volumes_from: a-1}}}\n",
			[]string{"dependency cycle: a → b → a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n"+tt.services)
			wantErrors(t, repo, tt.want...)
		})
	}
	t.Run("instance on itself", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  a: {image: x, instances: {a-1: {ship: s, volumes_from: a-1}}}\n"),
			"a-1 cannot take volumes from itself")
	})
}

// B4: volumes_from between two instances of one service made the service
// depend on itself. It is fine and adds no self-dependency.
func TestB4VolumesFromWithinOneService(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  app:
    image: x
    instances:
      data: {ship: s, container_volumes: /data}
      app-1: {ship: s, volumes_from: data}
`)
	if got := env.Service("app").Dependencies; len(got) != 0 {
		t.Errorf("Dependencies = %q, want none", got)
	}
	if got := env.Dependencies("app"); len(got) != 0 {
		t.Errorf("Dependencies() = %q, want none", got)
	}
	if got := names(env.StartOrder(env.Instances())); !cmp.Equal(got, []string{"app-1", "data"}) {
		t.Errorf("StartOrder = %q", got)
	}
	var b strings.Builder
	env.DepTree(&b, nil, false)
	if b.String() != "app\n" {
		t.Errorf("DepTree = %q", b.String())
	}
}

// B5: volumes_from added only the forward edge, so stop order ignored it.
// It adds the dependent edge too (and, as upstream, no link variables).
func TestB5VolumesFromAddsDependentEdge(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  app:
    image: x
    instances: {app-1: {ship: s, volumes_from: [data-1]}}
  data:
    image: x
    ports: {p: 1}
    instances: {data-1: {ship: s, container_volumes: [/data]}}
`)
	if diff := cmp.Diff([]string{"app"}, env.Dependents("data")); diff != "" {
		t.Errorf("Dependents(data) (-want +got):\n%s", diff)
	}
	all := env.Instances()
	if got := names(env.StartOrder(all)); !cmp.Equal(got, []string{"data-1", "app-1"}) {
		t.Errorf("StartOrder = %q", got)
	}
	if got := names(env.StopOrder(all)); !cmp.Equal(got, []string{"app-1", "data-1"}) {
		t.Errorf("StopOrder = %q, want the volumes_from user stopped first", got)
	}
	// volumes_from implies no link variables (§2.2, §3).
	for name := range envValues(env.Instance("app-1").Env) {
		if strings.HasPrefix(name, "DATA_") {
			t.Errorf("app-1 has %s from a volumes_from dependency", name)
		}
	}
}

// B6: an unknown wants_info gave UnboundLocalError, or named the last
// requires entry. The error names the wrong service, with or without
// requires.
func TestB6UnknownWantsInfoNamesTheService(t *testing.T) {
	for name, svc := range map[string]string{
		"without requires": "{image: x, wants_info: [nope], instances: {}}",
		"with requires":    "{image: x, requires: [db], wants_info: [nope], instances: {}}",
	} {
		t.Run(name, func(t *testing.T) {
			repo := loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  db: {image: x, instances: {}}\n  web: "+svc+"\n")
			wantErrors(t, repo, `services.web.wants_info: unknown service "nope" (services: db, web)`)
			if errs := messages(repo, SeverityError); len(errs) != 1 || strings.Contains(errs[0], `"db"`) {
				t.Errorf("errors = %q, want one, naming nope only", errs)
			}
		})
	}
}

// B10: env lists with non-string items gave a raw TypeError. Items are
// stringified as scalars are, then joined.
func TestB10EnvListWithNonStrings(t *testing.T) {
	tests := []struct {
		value, want, wantErr string
	}{
		{value: "[1, 2]", want: "1 2"},
		{value: "['a', 1]", want: "a 1"},
		{value: "[true, 2.5, [x, [3]]]", want: "True 2.5 x 3"},
		// a null or a mapping inside a list has no sensible text: an error
		{value: "[null]", wantErr: "A[0]: env list items must be strings or numbers, got null"},
		{value: "[a, {b: c}]", wantErr: "A[1]: env list items must be strings or numbers, got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			in, repo := container(t, "env: {A: "+tt.value+"}")
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				return
			}
			if in == nil {
				t.Fatal(repo.Err())
			}
			if v, _ := in.Env.Get("A"); v != tt.want {
				t.Errorf("A = %q, want %q", v, tt.want)
			}
		})
	}
}

// B11: the http check's host was deleted from the shared config after the
// first container. Every instance keeps it.
func TestB11HTTPHostKeptForEveryInstance(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  app:
    image: x
    ports: {web: 80}
    lifecycle: {running: [{type: http, port: web, host: lb.example}]}
    instances:
      a1: {ship: s, ports: {web: 81}}
      a2: {ship: s, ports: {web: 82}}
      a3: {ship: s, ports: {web: 83}}
`)
	for _, name := range []string{"a1", "a2", "a3"} {
		if c := env.Instance(name).Lifecycle["running"]; len(c) != 1 || c[0].Host != "lb.example" {
			t.Errorf("%s: checks %+v, want host lb.example", name, c)
		}
	}
}

// B12: a sleep check decremented its own counter, so a shared one slept 0
// the second time. Each instance gets its own value.
func TestB12SleepCheckNotShared(t *testing.T) {
	env := mustEnv(t, `name: test
_checks: &wait [{type: sleep, wait: 5}]
ships: {s: {ip: 10.0.0.1}}
services:
  app:
    image: x
    lifecycle: {running: *wait}
    instances:
      a1: {ship: s, lifecycle: {stopped: *wait}}
      a2: {ship: s}
`)
	want := []Check{{Type: "sleep", Wait: 5}}
	for _, name := range []string{"a1", "a2"} {
		if diff := cmp.Diff(want, env.Instance(name).Lifecycle["running"]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if diff := cmp.Diff(want, env.Instance("a1").Lifecycle["stopped"]); diff != "" {
		t.Errorf("a1 stopped (-want +got):\n%s", diff)
	}
	// The parsed values are not shared between instances.
	env.Instance("a1").Lifecycle["running"][0].Wait = 0
	if env.Instance("a2").Lifecycle["running"][0].Wait != 5 {
		t.Error("a2's check changed with a1's")
	}
}

// B18: unknown ship, missing image/instances/ip/ships gave a bare
// KeyError. Each is a located error, and every problem of the file is
// reported at once.
func TestB18MissingKeysAreLocatedErrors(t *testing.T) {
	repo := loadText(t, `name: test
ships:
  s1: {endpoint: 10.0.0.1}
services:
  web:
    instances:
      web-1: {ship: nope}
  db:
    image: postgres
`)
	want := []string{
		// a missing key is located at the key of the mapping that lacks it
		"manifest.yml:3:3: ships.s1.ip: missing required ship ip",
		"manifest.yml:5:3: services.web.image: missing required image",
		`manifest.yml:7:15: services.web.instances.web-1.ship: unknown ship "nope" (ships: s1)`,
		"manifest.yml:8:3: services.db.instances: missing required instances (a mapping of instance name to settings), or cluster",
	}
	if diff := cmp.Diff(want, messages(repo, SeverityError)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	wantErrors(t, loadText(t, "name: test\nservices: {}\n"), "manifest.yml:1:1: ships: missing required ships section")

	// Values of the wrong shape are located errors too, never a panic.
	const head = "name: t\nships: {s: {ip: 1.2.3.4}}\n"
	odd := []struct{ text, want string }{
		{"name: t\nships: {s: null}\n", "ships.s.ip: missing required ship ip"},
		{"name: [t]\nships: {s: {ip: 1.2.3.4}}\n", "name: expected a string, got a list"},
		{"name: t\nships: [s]\n", "ships: expected a mapping, got a list"},
		{head + "services: [x]\n", "services: expected a mapping, got a list"},
		{head + "services: {x: null}\n", "services.x.image: missing required image"},
		{head + "services: {x: {image: {a: b}, instances: {}}}\n", "services.x.image: expected an image name, got a mapping"},
		{head + "services: {x: {image: x, instances: [x-1]}}\n", "services.x.instances: expected a mapping, got a list"},
		{head + "services: {x: {image: x, instances: {x-1: null}}}\n", "services.x.instances.x-1.ship: missing required ship"},
		{head + "services: {x: {image: x, instances: {x-1: {ship: [s]}}}}\n", "services.x.instances.x-1.ship: expected a ship name, got a list"},
		{head + "services: {x: {image: x, requires: {a: b}, instances: {}}}\n", "services.x.requires: expected a string or a list of strings, got a mapping"},
		{head + "services: {x: {image: x, instances: {x-1: {ship: s, volumes_from: {a: b}}}}}\n", "volumes_from: expected a string or a list of strings, got a mapping"},
		{head + "services: {x: {image: x, instances: {x-1: {ship: s, lifecycle: {running: [null]}}}}}\n", "lifecycle.running[0].type: missing required check type"},
		{head + "services: {x: {image: x, instances: {x-1: {ship: s, ports: {p: {exposed: 1, external: [null, 1]}}}}}}\n", "ports.p.external[0]: invalid host IP"},
		{head + "services: {x: {image: x, instances: {x-1: {ship: s, command: {a: b}}}}}\n", "command: expected a string or a list of strings, got a mapping"},
		{head + "services: {x: {image: x, instances: {x-1: {ship: s, extra_hosts: {h: {ship: null}}}}}}\n", "extra_hosts.h.ship: missing required ship name"},
		{"name: t\nships: {s: {ip: 1.2.3.4, ssh_tunnel: 5}}\n", "ships.s.ssh_tunnel: expected a mapping, got an integer"},
	}
	for _, tt := range odd {
		t.Run(tt.want, func(t *testing.T) {
			wantErrors(t, loadText(t, tt.text), tt.want)
		})
	}
}

// B19: PyYAML reads YAML 1.1. We read YAML 1.2, and warn where the two
// readings differ in ways that matter.
func TestB19YAML12Reading(t *testing.T) {
	t.Run("22:22 stays a port spec string, with a warning", func(t *testing.T) {
		// YAML 1.1 read it as the base-60 integer 1342.
		in, repo := container(t, "ports:\n  ssh: 22:22\n  web: 80:80\n  quoted: '22:23'")
		if in == nil {
			t.Fatal(repo.Err())
		}
		if p := in.Port("ssh"); p == nil || p.Exposed != "22/tcp" || p.External != "22/tcp" {
			t.Errorf("ssh = %+v", p)
		}
		wantWarning(t, repo, `services.foo.instances.foo1.ports.ssh: "22:22" is read as the port spec "22:22"`)
		if ws := messages(repo, SeverityWarning); len(ws) != 1 {
			t.Errorf("warnings = %q, want only the one for 22:22 (80:80 and quoted specs are not sexagesimal)", ws)
		}
	})
	t.Run("restart: no is the default policy", func(t *testing.T) {
		if got := mustContainer(t, "restart: no").Restart; got != (RestartPolicy{Name: "no"}) {
			t.Errorf("Restart = %+v", got)
		}
		if got := mustContainer(t, "restart: false").Restart; got != (RestartPolicy{Name: "no"}) {
			t.Errorf("Restart = %+v", got)
		}
	})
	t.Run("yes/no/on/off in env stay strings, with a warning", func(t *testing.T) {
		// YAML 1.1 made them booleans, passed as True/False.
		in, repo := container(t, "env: {A: yes, B: Off, C: 'no', D: true}")
		if in == nil {
			t.Fatal(repo.Err())
		}
		got := envValues(in.Env)
		for k, v := range map[string]string{"A": "yes", "B": "Off", "C": "no", "D": "True"} {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		wantWarning(t, repo, `env.A: "yes" is passed as the string "yes"; MaestroNG (YAML 1.1) passed an unquoted yes as True`)
		wantWarning(t, repo, `env.B: "Off" is passed as the string "Off"; MaestroNG (YAML 1.1) passed an unquoted Off as False`)
		if ws := messages(repo, SeverityWarning); len(ws) != 2 {
			t.Errorf("warnings = %q, want 2 (quoted 'no' and true are unambiguous)", ws)
		}
	})
	t.Run("12:30 in env stays a string, with a warning", func(t *testing.T) {
		in, repo := container(t, "env: {T: 12:30, U: '12:30', V: 1.10}")
		if in == nil {
			t.Fatal(repo.Err())
		}
		got := envValues(in.Env)
		// 1.10 is a float in both dialects: Python's str() gives 1.1.
		if got["T"] != "12:30" || got["U"] != "12:30" || got["V"] != "1.1" {
			t.Errorf("T=%q U=%q V=%q", got["T"], got["U"], got["V"])
		}
		wantWarning(t, repo, `env.T: "12:30" is passed as the string "12:30"`)
		if ws := messages(repo, SeverityWarning); len(ws) != 1 {
			t.Errorf("warnings = %q, want one (for T)", ws)
		}
	})
	t.Run("numbers that only YAML 1.2 reads as numbers stay as written", func(t *testing.T) {
		// MaestroNG (YAML 1.1) passed 1e3, 1.5e3 and 0o10 as strings; the
		// container sees the same text here.
		in, repo := container(t, "env: {A: 1e3, B: 0o10, C: 1.5e3, D: 1.5e+3, E: 0x10}")
		if in == nil {
			t.Fatal(repo.Err())
		}
		for k, want := range map[string]string{"A": "1e3", "B": "0o10", "C": "1.5e3", "D": "1500.0", "E": "16"} {
			if got, _ := in.Env.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
	t.Run("yes/no/on/off still work for boolean keys", func(t *testing.T) {
		env := mustEnv(t, "name: test\nships: {s: {ip: 1.2.3.4, tls: on}}\nservices:\n  x: {image: x, omit: yes, instances: {x-1: {ship: s, privileged: Yes}}}\n")
		if !env.Ships["s"].TLS || !env.Service("x").Omit || !env.Instance("x-1").Privileged {
			t.Error("yes/on not read as true for boolean keys")
		}
	})
}

// TestDeliberateEnvAndLinks backs the deliberate differences 34 to 37 and
// MaestroNG's reading of env as env file sources (docs/manifest.md).
func TestDeliberateEnvAndLinks(t *testing.T) {
	t.Run("34: an empty env file line is skipped", func(t *testing.T) {
		repo := loadFS(t, mapFS(containerManifest("envfile: a.env"), "a.env", "A=1\n\nB=2\n"), Options{})
		env := envOf(t, repo)
		a, _ := env.Instance("foo1").Env.Get("A")
		b, _ := env.Instance("foo1").Env.Get("B")
		if a != "1" || b != "2" {
			t.Errorf("A=%q B=%q", a, b)
		}
	})
	t.Run("35: merge keys work", func(t *testing.T) {
		env := mustEnv(t, `__maestro: {schema: 2}
name: m
ships: {s: {ip: 10.0.0.1}}
_common: &c {ship: s, env: {X: "1"}}
services:
  foo:
    image: foo:1
    instances:
      foo1:
        <<: *c
        command: [run]
`)
		if in := env.Instance("foo1"); in.Ship != "s" || !slices.Equal(in.Command, []string{"run"}) {
			t.Errorf("foo1: ship %q, command %q", in.Ship, in.Command)
		}
	})
	t.Run("36: a link without alias uses the name", func(t *testing.T) {
		repo := loadText(t, `__maestro: {schema: 2}
name: l
ships: {s: {ip: 10.0.0.1}}
services:
  db:
    image: db:1
    instances: {db-1: {ship: s}}
  web:
    image: web:1
    requires: [db]
    instances: {web-1: {ship: s, links: {db-1: }}}
`)
		if got := envOf(t, repo).Instance("web-1").Links; got["db-1"] != "db-1" {
			t.Errorf("links %v, want db-1 as its own alias", got)
		}
	})
	t.Run("37: a host name as binding address is an error", func(t *testing.T) {
		_, repo := container(t, "ports: {http: {exposed: 80, external: [localhost, 8080]}}")
		wantErrors(t, repo, `invalid host IP "localhost"`)
	})
	t.Run("env as a string is an env file, as in MaestroNG", func(t *testing.T) {
		repo := loadFS(t, mapFS(containerManifest("env: a.env"), "a.env", "A=from-file\n"), Options{})
		env := envOf(t, repo)
		if a, _ := env.Instance("foo1").Env.Get("A"); a != "from-file" {
			t.Errorf("A=%q", a)
		}
		wantWarning(t, repo, `env given as the string "a.env" is read as env file sources, as MaestroNG does: write it as envfile`)
	})
}

// TestZeroAttemptsMeanTheDefault: MaestroNG's retrying checks (tcp, exec,
// rexec) take `int(attempts or 180)` (lifecycle.py,
// RetryingLifecycleHelper), so 0 means 180.
func TestZeroAttemptsMeanTheDefault(t *testing.T) {
	in := mustContainer(t, `lifecycle:
  running:
    - {type: tcp, port: server, max_wait: 0}
    - {type: rexec, command: "true", attempts: 0}
    - {type: exec, command: "true", attempts: 3}`)
	checks := in.Lifecycle["running"]
	if len(checks) != 3 || checks[0].MaxWait != 180 || checks[1].Attempts != 180 || checks[2].Attempts != 3 {
		t.Errorf("checks %+v, want 180, 180 and 3", checks)
	}
}
