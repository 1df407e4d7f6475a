package manifest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// TestDeliberateDifferences backs the list "Deliberate differences from
// MaestroNG" of docs/manifest.md: one subtest per entry the loader
// decides, named after its number, showing maestro-sync's side of the
// difference (MaestroNG's side is in each entry, with the code it comes
// from). The entries decided elsewhere are in deliberateElsewhere;
// TestDeliberateDifferencesListed keeps the list and the tests in step.
func TestDeliberateDifferences(t *testing.T) {
	for _, tc := range deliberateCases {
		t.Run(strconv.Itoa(tc.n)+": "+tc.name, tc.test)
	}
}

// deliberateElsewhere names, for the entries of the list decided outside
// the loader (the CLI, the daemon, the Docker driver), the test that backs
// each, as file and function.
var deliberateElsewhere = map[int]string{
	34: "internal/manifest/reference_test.go:TestDeliberateEnvAndLinks",
	35: "internal/manifest/reference_test.go:TestDeliberateEnvAndLinks",
	36: "internal/manifest/reference_test.go:TestDeliberateEnvAndLinks",
	37: "internal/manifest/reference_test.go:TestDeliberateEnvAndLinks",
	39: "internal/notify/notify_test.go:TestLogAuditor",
	41: "internal/driver/docker/health_test.go:TestHealthcheckGatesTheReplacement",
	42: "cmd/maestro-sync/verbs_test.go:TestVerbsKillAndReuse",
	43: "cmd/maestro-sync/verbs_test.go:TestVerbsStartStatusStopRestart",
}

// TestDeliberateDifferencesListed: every entry of the list has a test
// (a subtest of TestDeliberateDifferences, or one of deliberateElsewhere
// that exists), and every such test an entry.
func TestDeliberateDifferencesListed(t *testing.T) {
	doc, err := os.ReadFile("../../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "\n## Deliberate differences from MaestroNG")
	end := strings.Index(text, "\n### MaestroNG bugs fixed")
	if start < 0 || end < start {
		t.Fatal("docs/manifest.md has no deliberate differences section")
	}
	var listed []int
	for _, m := range regexp.MustCompile(`(?m)^(\d+)\. \*\*`).FindAllStringSubmatch(text[start:end], -1) {
		n, _ := strconv.Atoi(m[1])
		listed = append(listed, n)
	}
	var tested []int
	for _, tc := range deliberateCases {
		tested = append(tested, tc.n)
	}
	for n, where := range deliberateElsewhere {
		tested = append(tested, n)
		file, fn, _ := strings.Cut(where, ":")
		src, err := os.ReadFile(filepath.Join("../..", file))
		if err != nil || !strings.Contains(string(src), "\nfunc "+fn+"(t *testing.T)") {
			t.Errorf("entry %d: no test %s in %s (%v)", n, fn, file, err)
		}
	}
	slices.Sort(listed)
	slices.Sort(tested)
	if !slices.Equal(listed, tested) {
		t.Errorf("entries listed %v, entries tested %v", listed, tested)
	}
	for i, n := range listed {
		if n != i+1 {
			t.Errorf("the list is not numbered 1 to %d: %v", len(listed), listed)
			break
		}
	}
}

type deliberateCase struct {
	n    int
	name string
	test func(t *testing.T)
}

// wantError checks that settings of the container harness fail with an
// error containing substr.
func wantError(t *testing.T, settings, substr string) {
	t.Helper()
	_, repo := container(t, settings)
	wantErrors(t, repo, substr)
}

var deliberateCases = []deliberateCase{
	{1, "YAML 1.2 scalars, with warnings where MaestroNG's value differs", func(t *testing.T) {
		in, repo := container(t, "env: {A: yes, B: 22:22}\nrestart: no\nprivileged: on")
		if in == nil {
			t.Fatal(repo.Err())
		}
		if a, _ := in.Env.Get("A"); a != "yes" {
			t.Errorf("A = %q", a)
		}
		if b, _ := in.Env.Get("B"); b != "22:22" {
			t.Errorf("B = %q", b)
		}
		if in.Restart.Name != "no" || !in.Privileged {
			t.Errorf("restart %q, privileged %v", in.Restart.Name, in.Privileged)
		}
		wantWarning(t, repo, "MaestroNG (YAML 1.1) passed an unquoted yes as True")
		wantWarning(t, repo, `env.B: "22:22" is passed as the string "22:22"`)
	}},
	{2, "templates stay in the repository", func(t *testing.T) {
		for _, inc := range []string{"/etc/hostname", "../x.yml"} {
			wantErrors(t, loadText(t, "{% include '"+inc+"' %}\nname: x\nships: {}\n"), "outside the repository")
		}
	}},
	{3, "no default file: maestro.yaml alone is not a manifest", func(t *testing.T) {
		_, err := Load(fstest.MapFS{"maestro.yaml": {Data: []byte("name: x\nships: {}\n")}}, Options{})
		if err == nil || !strings.Contains(err.Error(), "no manifest.yml or manifest.yaml found") {
			t.Errorf("Load of a directory holding maestro.yaml: %v", err)
		}
	}},
	{4, "port numbers are range-checked", func(t *testing.T) {
		wantError(t, "ports: {p: 99999}", "99999 is out of range 1-65535")
		wantError(t, `ports: {p: "25-20"}`, "range 25-20 is inverted")
	}},
	{5, "restart retries only with on-failure", func(t *testing.T) {
		wantError(t, "restart: always:3", "retries only apply to on-failure, not always")
		wantError(t, "restart: {retries: 2}", "retries only apply to on-failure, not no")
	}},
	{6, "maximum_retry_count is accepted", func(t *testing.T) {
		if got := mustContainer(t, "restart: {name: on-failure, maximum_retry_count: 5}").Restart; got != (RestartPolicy{Name: "on-failure", MaxRetries: 5}) {
			t.Errorf("restart = %+v", got)
		}
	}},
	{7, "wrong types are errors instead of silently ignored", func(t *testing.T) {
		wantError(t, "restart: 5", "got an integer")
		wantError(t, "restart: []", "got a list")
		wantError(t, "restart: true", "got a boolean")
		wantError(t, "extra_hosts: {h: 5}", "extra_hosts.h")
		wantError(t, "ulimits: {nofile: [1]}", "ulimits.nofile")
		if u := mustContainer(t, `ulimits: {nofile: "100"}`).Ulimits; len(u) != 1 || u[0].Soft != 100 || u[0].Hard != 100 {
			t.Errorf("ulimits %+v", u)
		}
	}},
	{8, "api_version has no default and is kept as written", func(t *testing.T) {
		env := mustEnv(t, "name: x\nships:\n  a: {ip: 10.0.0.1}\n  b: {ip: 10.0.0.2, api_version: 1.40}\n  c: {ip: 10.0.0.3, api_version: auto}\n")
		if a, b, c := env.Ships["a"].APIVersion, env.Ships["b"].APIVersion, env.Ships["c"].APIVersion; a != "" || b != "1.40" || c != "" {
			t.Errorf("api_version %q %q %q, want \"\", 1.40, \"\"", a, b, c)
		}
	}},
	{9, "more log drivers", func(t *testing.T) {
		for _, d := range []string{"local", "awslogs", "splunk", "gcplogs", "logentries", "etwlogs"} {
			if got := mustContainer(t, "log_driver: "+d).LogDriver; got != d {
				t.Errorf("log_driver %s: %q", d, got)
			}
		}
	}},
	{10, "env list values may hold numbers and booleans", func(t *testing.T) {
		if v, _ := mustContainer(t, "env: {A: [1, 2, true]}").Env.Get("A"); v != "1 2 True" {
			t.Errorf("A = %q", v)
		}
		wantError(t, "env: {A: [a, null]}", "env list items must be strings or numbers")
	}},
	{11, "a mapping as an env value is an error", func(t *testing.T) {
		wantError(t, "env: {A: {b: c}}", "got a mapping")
	}},
	{12, "extra_hosts addresses must be IP addresses", func(t *testing.T) {
		wantError(t, "extra_hosts: {db: myhost}", "extra_hosts.db")
		if h := mustContainer(t, "extra_hosts: {db: 10.1.2.3}").ExtraHosts; h["db"] != "10.1.2.3" {
			t.Errorf("extra_hosts %v", h)
		}
	}},
	{13, "ulimits with only soft or only hard", func(t *testing.T) {
		if u := mustContainer(t, "ulimits: {nofile: {soft: 10}}").Ulimits; len(u) != 1 || u[0].Soft != 10 || u[0].Hard != 10 {
			t.Errorf("ulimits %+v", u)
		}
		wantError(t, "ulimits: {nofile: {soft: 20, hard: 10}}", "ulimits.nofile")
	}},
	{14, "the label prefix io.maestro-sync/ is reserved", func(t *testing.T) {
		wantError(t, "labels: {io.maestro-sync/env: x}", "io.maestro-sync/")
	}},
	{15, "a relative socket_path is refused", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: x\nships: {s: {ip: 10.0.0.1, socket_path: run/docker.sock}}\n"), "socket_path")
	}},
	{16, "docker_port must be 1-65535", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: x\nships: {s: {ip: 10.0.0.1, docker_port: 70000}}\n"), "port 70000 is out of range 1-65535")
	}},
	{17, "memory limits are checked", func(t *testing.T) {
		wantError(t, "limits: {memory: -1m}", "memory")
		wantError(t, "limits: {memory: 64m, swap: 32m}", "swap")
		wantError(t, "limits: {cpu: 1.5}", "cpu")
		wantError(t, "limits: {memory: 1.5g}", `invalid size "1.5g"`)
	}},
	{18, "volumes are checked, named volumes accepted", func(t *testing.T) {
		wantError(t, "volumes: {/srv: data}", "data")
		wantError(t, "volumes: {./data: /data}", "./data")
		wantError(t, "volumes: {/a: /data, /b: /data}", "/data")
		wantError(t, "volumes_from: foo1", "foo1")
		if v := mustContainer(t, "volumes: {appdata: /var/lib/app}").Volumes; len(v) != 1 || v[0].Source != "appdata" {
			t.Errorf("volumes %+v", v)
		}
		wantErrors(t, loadText(t, containerManifestSchema("", "volumes: {/data: {target: /x}}")), "schema: 2")
	}},
	{19, "lxc_conf is ignored with a warning", func(t *testing.T) {
		_, repo := container(t, "lxc_conf: {lxc.utsname: x}")
		wantWarning(t, repo, "lxc_conf")
	}},
	{20, "instance names must be valid Docker container names", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a: {image: a, instances: {a: {ship: s}, 'b c': {ship: s}}}\n"), `"a"`, `"b c"`)
	}},
	{21, "images are checked", func(t *testing.T) {
		for _, img := range []string{"'a b'", "Foo/bar", "'foo:'"} {
			wantErrors(t, loadText(t, "name: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a: {image: "+img+", instances: {a-1: {ship: s}}}\n"), "image")
		}
	}},
	{22, "env files must be inside the repository", func(t *testing.T) {
		wantError(t, "envfile: ../x.env", "outside the repository")
		wantError(t, "envfile: /etc/hostname", "outside the repository")
		// Where the program allows local files (validate, render), an
		// absolute path is read.
		abs := filepath.Join(t.TempDir(), "x.env")
		if err := os.WriteFile(abs, []byte("A=local\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		repo := loadFS(t, mapFS(containerManifest("envfile: "+abs)), Options{ReadFile: os.ReadFile})
		if a, _ := envOf(t, repo).Instance("foo1").Env.Get("A"); a != "local" {
			t.Errorf("A = %q", a)
		}
	}},
	{23, "unique environment names and container names per daemon across the repository", func(t *testing.T) {
		m := func(env string) *fstest.MapFile {
			return &fstest.MapFile{Data: []byte("name: " + env + "\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a: {image: a, instances: {a-1: {ship: s}}}\n")}
		}
		repo, err := Load(fstest.MapFS{"a/manifest.yml": m("x"), "b/manifest.yml": m("x"), "c/manifest.yml": m("y"), "d/manifest.yml": m("z")}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		errs := strings.Join(messages(repo, SeverityError), "\n")
		if len(repo.Environments) != 1 || repo.Environments[0].Name != "y" || !strings.Contains(errs, `duplicate environment name "x"`) || !strings.Contains(errs, "d/manifest.yml") {
			t.Errorf("environments %d, errors:\n%s", len(repo.Environments), errs)
		}
	}},
	{24, "host port clashes are errors", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a:\n    image: a\n    ports: {http: 8080}\n    instances: {a-1: {ship: s}, a-2: {ship: s}}\n"), "is also bound by")
	}},
	{25, "registry is required in a registry entry, password and email are not", func(t *testing.T) {
		mustEnv(t, "name: x\nships: {}\nregistries:\n  q: {registry: https://quay.io/v1/, username: u}\n")
		wantErrors(t, loadText(t, "name: x\nships: {}\nregistries:\n  q: {username: u, password: p, email: e}\n"), "registry")
	}},
	{26, "unknown keys are warnings with suggestions, errors with Strict", func(t *testing.T) {
		_, repo := container(t, "enviroment: {A: 1}")
		wantWarning(t, repo, `did you mean "env"?`)
		strict := loadFS(t, mapFS(containerManifest("enviroment: {A: 1}")), Options{Strict: true})
		wantErrors(t, strict, "enviroment")
	}},
	{27, "lifecycle checks are checked", func(t *testing.T) {
		_, repo := container(t, "lifecycle: {starting: []}")
		wantWarning(t, repo, "starting")
		in := mustContainer(t, "lifecycle: {running: [{type: exec, cmd: 'true'}]}")
		if c := in.Lifecycle["running"]; len(c) != 1 || !slices.Equal(c[0].Command, []string{"true"}) {
			t.Errorf("exec with cmd: %+v", c)
		}
		wantError(t, "lifecycle: {running: [{type: http, port: server, scheme: ftp}]}", "scheme")
		wantError(t, "lifecycle: {running: [{type: http, port: server, match_regex: '(?=x)'}]}", "match_regex")
		wantError(t, "ports: {r: 1234-1236}\nlifecycle: {running: [{type: tcp, port: r}]}", "range")
		_, repo = container(t, "lifecycle: {running: [{type: http, port: server, attempts: 3}]}")
		wantWarning(t, repo, "attempts")
	}},
	{28, "every MaestroNG crash is a located error", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a: {instances: {a-1: {ship: t}}}\n"), "image", `unknown ship "t"`)
		wantErrors(t, loadText(t, "name: x\nships: {s: {}}\n"), "ip")
		wantError(t, "lifecycle: {running: [{type: nope}]}", "nope")
	}},
	{29, "name normalisation clashes are warnings", func(t *testing.T) {
		repo := loadText(t, "name: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a-b: {image: a, instances: {x-1: {ship: s}}}\n  a.b: {image: a, instances: {x-2: {ship: s}}}\n")
		wantWarning(t, repo, "A_B")
	}},
	{30, "cmd is deprecated with a warning", func(t *testing.T) {
		in, repo := container(t, "cmd: sleep 1")
		if in == nil || !slices.Equal(in.Command, []string{"sleep", "1"}) {
			t.Fatalf("cmd: %v", repo.Err())
		}
		wantWarning(t, repo, "cmd")
	}},
	{31, "auditors: no _fail, a webhook needs endpoint, ignore_errors spellings", func(t *testing.T) {
		wantErrors(t, loadText(t, "name: x\nships: {}\naudit: [{type: _fail}]\n"), "_fail")
		wantErrors(t, loadText(t, "name: x\nships: {}\naudit: [{type: http}]\n"), "endpoint")
		env := mustEnv(t, "name: x\nships: {}\naudit:\n"+
			"  - {type: log, file: a.log, ignore_errors: yes}\n  - {type: log, file: b.log, ignore_errors: 'On'}\n"+
			"  - {type: log, file: c.log, ignore_errors: 1}\n  - {type: log, file: d.log, ignore_errors: [true]}\n")
		var got []bool
		for _, a := range env.Audit {
			got = append(got, a.IgnoreErrors)
		}
		if !slices.Equal(got, []bool{true, true, false, false}) {
			t.Errorf("ignore_errors %v, want true, true, false, false", got)
		}
	}},
	{32, "unset variables in templates are warned about", func(t *testing.T) {
		repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte("name: x-{{ env.NOPE }}\nships: {}\n")}}, Options{Environ: map[string]string{}})
		wantWarning(t, repo, "env.NOPE is not set and has no default")
	}},
	{33, "env files: an indented # is a comment, an empty name an error", func(t *testing.T) {
		repo := loadFS(t, mapFS(containerManifest("envfile: a.env"), "a.env", "  # note\nA=1\n"), Options{})
		if a, _ := envOf(t, repo).Instance("foo1").Env.Get("A"); a != "1" {
			t.Errorf("A = %q", a)
		}
		wantErrors(t, loadFS(t, mapFS(containerManifest("envfile: a.env"), "a.env", "=x\n"), Options{}), "a.env")
	}},
	{38, "a template's integers and repetitions are bounded", func(t *testing.T) {
		for expr, want := range map[string]string{"9 ** 387420489": "integer too large", "'x' * 10 ** 9": "repetition larger than"} {
			_, line, err := render(fstest.MapFS{}, ".", []byte("a: 1\nb: \"{{ "+expr+" }}\"\n"), nil)
			if err == nil || line != 2 || !strings.Contains(err.Error(), want) {
				t.Errorf("{{ %s }}: line %d, %v", expr, line, err)
			}
		}
	}},
	{40, "dependencies' link variables are written in service-name order", func(t *testing.T) {
		// b-c's instance x1 and b's instance c-x1 both make B_C_X1_HOST;
		// a's dependencies are written in name order, b then b-c, however
		// requires lists them.
		text := `name: x
ships:
  s1: {ip: 10.0.0.1}
  s2: {ip: 10.0.0.2}
services:
  a:
    image: a
    requires: [b-c, b]
    instances: {a-1: {ship: s1}}
  b-c:
    image: a
    instances: {x1: {ship: s1}}
  b:
    image: a
    instances: {c-x1: {ship: s2}}
`
		for range 5 {
			repo := loadText(t, text)
			if got, _ := envOf(t, repo).Instance("a-1").Env.Get("B_C_X1_HOST"); got != "10.0.0.1" {
				t.Fatalf("B_C_X1_HOST = %q, want b-c's 10.0.0.1 (written after b's)", got)
			}
			wantWarning(t, repo, "B_C_X1_HOST: the link variable of service b-c overwrites the link variable of service b")
		}
	}},
}
