package manifest

// §3 of the MaestroNG reference: environment variable injection, exactly.
// Also the spec hash, which is computed from the resolved instance.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func exampleEnv(t *testing.T) *Environment {
	t.Helper()
	return envOf(t, loadFixture(t, "example"))
}

// The example of §3 (verified upstream): web requires kafka and db (both
// require zk) and wants_info mon. Each instance's env is checked whole.
func TestLinkVarsExample(t *testing.T) {
	env := exampleEnv(t)
	fixed := func(svc, name, ip, image, tag string) map[string]string {
		return map[string]string{
			"MAESTRO_ENVIRONMENT_NAME": "example", "SERVICE_NAME": svc,
			"CONTAINER_NAME": name, "CONTAINER_HOST_ADDRESS": ip, "DOCKER_IMAGE": image, "DOCKER_TAG": tag,
		}
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// zk as a dependency: no _INTERNAL_PORT.
	zkDep := []string{
		"ZK_INSTANCES", "zk-1,zk-2",
		"ZK_ZK_1_HOST", "10.0.0.1", "ZK_ZK_1_CLIENT_PORT", "2181", "ZK_ZK_1_PEER_PORT", "2888",
		"ZK_ZK_2_HOST", "10.0.0.2", "ZK_ZK_2_CLIENT_PORT", "2181", "ZK_ZK_2_PEER_PORT", "2888",
	}
	tests := map[string]map[string]string{
		"web-1": with(fixed("web", "web-1", "10.0.0.1", "nginx:1.25", "1.25"), append([]string{
			"WEB_INSTANCES", "web-1", "WEB_WEB_1_HOST", "10.0.0.1",
			"KAFKA_INSTANCES", "kafka-1", "KAFKA_KAFKA_1_HOST", "10.0.0.1", "KAFKA_KAFKA_1_BROKER_PORT", "9092",
			"DB_INSTANCES", "db-1", "DB_DB_1_HOST", "10.0.0.2", "DB_DB_1_MY_PORT_PORT", "15432",
			"MON_INSTANCES", "mon-1", "MON_MON_1_HOST", "10.0.0.2", "MON_MON_1_HTTP_PORT", "3000",
		}, zkDep...)...),
		"db-1": with(fixed("db", "db-1", "10.0.0.2", "postgres:9.6", "9.6"), append([]string{
			"DB_INSTANCES", "db-1", "DB_DB_1_HOST", "10.0.0.2",
			"DB_DB_1_MY_PORT_PORT", "15432", "DB_DB_1_MY_PORT_INTERNAL_PORT", "5432",
		}, zkDep...)...),
		"kafka-1": with(fixed("kafka", "kafka-1", "10.0.0.1", "kafka", "latest"), append([]string{
			"KAFKA_INSTANCES", "kafka-1", "KAFKA_KAFKA_1_HOST", "10.0.0.1",
			"KAFKA_KAFKA_1_BROKER_PORT", "9092", "KAFKA_KAFKA_1_BROKER_INTERNAL_PORT", "9092",
		}, zkDep...)...),
		"zk-1": with(fixed("zk", "zk-1", "10.0.0.1", "quay.io/org/zk:3.4", "3.4"),
			"ZK_INSTANCES", "zk-1,zk-2",
			"ZK_ZK_1_HOST", "10.0.0.1", "ZK_ZK_1_CLIENT_PORT", "2181", "ZK_ZK_1_CLIENT_INTERNAL_PORT", "2181",
			"ZK_ZK_1_PEER_PORT", "2888", "ZK_ZK_1_PEER_INTERNAL_PORT", "2888",
			"ZK_ZK_2_HOST", "10.0.0.2", "ZK_ZK_2_CLIENT_PORT", "2181", "ZK_ZK_2_CLIENT_INTERNAL_PORT", "2181",
			"ZK_ZK_2_PEER_PORT", "2888", "ZK_ZK_2_PEER_INTERNAL_PORT", "2888"),
		"mon-1": with(fixed("mon", "mon-1", "10.0.0.2", "grafana", "latest"),
			"MON_INSTANCES", "mon-1", "MON_MON_1_HOST", "10.0.0.2",
			"MON_MON_1_HTTP_PORT", "3000", "MON_MON_1_HTTP_INTERNAL_PORT", "3000"),
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			in := env.Instance(name)
			if diff := cmp.Diff(want, envValues(in.Env)); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			for _, v := range in.Env {
				if v.FromFile || v.Unset {
					t.Errorf("%s: FromFile=%v Unset=%v", v.Name, v.FromFile, v.Unset)
				}
			}
		})
	}
	// Env is sorted by name.
	in := env.Instance("web-1")
	for i := 1; i < len(in.Env); i++ {
		if in.Env[i-1].Name >= in.Env[i].Name {
			t.Errorf("Env not sorted: %s before %s", in.Env[i-1].Name, in.Env[i].Name)
		}
	}
}

// No _INTERNAL_PORT for dependencies, whatever the graph.
func TestNoInternalPortForDependencies(t *testing.T) {
	env := exampleEnv(t)
	for _, in := range env.Instances() {
		own := ToEnv(in.Service) + "_"
		for _, v := range in.Env {
			if strings.HasSuffix(v.Name, "_INTERNAL_PORT") && !strings.HasPrefix(v.Name, own) {
				t.Errorf("%s has %s", in.Name, v.Name)
			}
		}
	}
}

// Transitive requires give variables; wants_info is not transitive, and the
// requires or wants_info of a wants_info service add nothing; wants_info of
// a required service is not inherited.
func TestLinkVarsTransitivity(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  web:
    image: x
    requires: [api]
    wants_info: [mon]
    instances: {web-1: {ship: s}}
  api:
    image: x
    requires: [db]
    wants_info: [cache]
    instances: {api-1: {ship: s}}
  db:
    image: x
    requires: [disk]
    instances: {db-1: {ship: s}}
  disk: {image: x, instances: {disk-1: {ship: s}}}
  cache: {image: x, instances: {cache-1: {ship: s}}}
  mon:
    image: x
    requires: [metrics]
    wants_info: [logs]
    instances: {mon-1: {ship: s}}
  metrics: {image: x, instances: {metrics-1: {ship: s}}}
  logs: {image: x, instances: {logs-1: {ship: s}}}
`)
	prefixes := func(name string) []string {
		seen := map[string]bool{}
		for k := range envValues(env.Instance(name).Env) {
			if p, _, ok := strings.Cut(k, "_INSTANCES"); ok {
				seen[p] = true
			}
		}
		return sortedKeys(seen)
	}
	for name, want := range map[string][]string{
		"web-1":  {"API", "DB", "DISK", "MON", "WEB"}, // not CACHE, METRICS, LOGS
		"api-1":  {"API", "CACHE", "DB", "DISK"},
		"db-1":   {"DB", "DISK"},
		"mon-1":  {"LOGS", "METRICS", "MON"},
		"disk-1": {"DISK"},
	} {
		if diff := cmp.Diff(want, prefixes(name)); diff != "" {
			t.Errorf("%s: services with variables (-want +got):\n%s", name, diff)
		}
	}
}

// Name normalisation (§3, §9.7): my.svc-x / Zk-1.a / client-port.v2 →
// MY_SVC_X_ZK_1_A_CLIENT_PORT_V2_PORT; <S>_INSTANCES lists the raw names,
// sorted.
func TestLinkVarsNames(t *testing.T) {
	repo := loadText(t, `name: test
ships: {s: {ip: 10.0.0.1}, t: {ip: 10.0.0.2}}
services:
  my.svc-x:
    image: x
    instances:
      Zk-1.a: {ship: s, ports: {client-port.v2: "2181:12181"}}
      b-2: {ship: t}
      B-3: {ship: t}
  app:
    image: x
    requires: [my.svc-x]
    instances: {app-1: {ship: s}}
`)
	env := envOf(t, repo)
	got := envValues(env.Instance("app-1").Env)
	for k, v := range map[string]string{
		"MY_SVC_X_ZK_1_A_CLIENT_PORT_V2_PORT": "12181",
		"MY_SVC_X_ZK_1_A_HOST":                "10.0.0.1",
		"MY_SVC_X_B_2_HOST":                   "10.0.0.2",
		"MY_SVC_X_B_3_HOST":                   "10.0.0.2",
		"MY_SVC_X_INSTANCES":                  "B-3,Zk-1.a,b-2",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	own := envValues(env.Instance("b-2").Env)
	if own["MY_SVC_X_ZK_1_A_CLIENT_PORT_V2_INTERNAL_PORT"] != "2181" || own["SERVICE_NAME"] != "my.svc-x" {
		t.Errorf("own service: %v", own)
	}
}

// Names that normalise to the same variable part collide silently
// upstream; we warn.
func TestLinkVarsNameClash(t *testing.T) {
	repo := loadText(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  a-b: {image: x, instances: {x-1: {ship: s}, x.1: {ship: s}}}
  a.b: {image: x, instances: {}}
`)
	envOf(t, repo)
	wantWarning(t, repo, `services "a-b" and "a.b" share the variable prefix A_B_`)
	wantWarning(t, repo, `instances "x-1" and "x.1" share the variable name part X_1`)
}

// _HOST is the ship's ip even when the port is bound to a host IP.
func TestLinkVarsHostIsShipIP(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  db:
    image: x
    instances: {db-1: {ship: s, ports: {pg: {exposed: 5432, external: [192.168.10.2, 15432]}}}}
  app: {image: x, requires: [db], instances: {app-1: {ship: s}}}
`)
	got := envValues(env.Instance("app-1").Env)
	if got["DB_DB_1_HOST"] != "10.0.0.1" || got["DB_DB_1_PG_PORT"] != "15432" {
		t.Errorf("DB vars: %v", got)
	}
}

// TestEnvPrecedence covers the order of §3 (later wins): service envfile,
// service env, MAESTRO_ENVIRONMENT_NAME and SERVICE_NAME, instance envfile,
// instance env, the fixed container variables, then the link variables.
func TestEnvPrecedence(t *testing.T) {
	const svcFile = "svc.env"
	const instFile = "inst.env"
	tests := []struct {
		name                                     string
		svcEnvfile, svcEnv, instEnvfile, instEnv string
		want                                     map[string]string
	}{
		{name: "service env beats service envfile",
			svcEnvfile: "A=file\n", svcEnv: "A: env",
			want: map[string]string{"A": "env"}},
		{name: "service env cannot override SERVICE_NAME or MAESTRO_ENVIRONMENT_NAME",
			svcEnv: "SERVICE_NAME: x, MAESTRO_ENVIRONMENT_NAME: y",
			want:   map[string]string{"SERVICE_NAME": "web", "MAESTRO_ENVIRONMENT_NAME": "test"}},
		{name: "service envfile cannot either",
			svcEnvfile: "SERVICE_NAME=x\n",
			want:       map[string]string{"SERVICE_NAME": "web"}},
		{name: "instance envfile beats service env and envfile",
			svcEnvfile: "A=svcfile\nB=svcfile\n", svcEnv: "A: svcenv", instEnvfile: "A=inst\nB=inst\n",
			want: map[string]string{"A": "inst", "B": "inst"}},
		{name: "instance env beats instance envfile",
			instEnvfile: "A=file\n", instEnv: "A: env",
			want: map[string]string{"A": "env"}},
		{name: "instance env overrides SERVICE_NAME and MAESTRO_ENVIRONMENT_NAME",
			instEnv: "SERVICE_NAME: x, MAESTRO_ENVIRONMENT_NAME: y",
			want:    map[string]string{"SERVICE_NAME": "x", "MAESTRO_ENVIRONMENT_NAME": "y"}},
		{name: "instance envfile overrides SERVICE_NAME too",
			instEnvfile: "SERVICE_NAME=x\n",
			want:        map[string]string{"SERVICE_NAME": "x"}},
		{name: "fixed container variables cannot be overridden",
			instEnv: "CONTAINER_NAME: x, CONTAINER_HOST_ADDRESS: x, DOCKER_IMAGE: x, DOCKER_TAG: x",
			want:    map[string]string{"CONTAINER_NAME": "web-1", "CONTAINER_HOST_ADDRESS": "10.0.0.1", "DOCKER_IMAGE": "nginx:1.25", "DOCKER_TAG": "1.25"}},
		{name: "not from an instance envfile either",
			instEnvfile: "CONTAINER_NAME=x\nDOCKER_TAG=x\n",
			want:        map[string]string{"CONTAINER_NAME": "web-1", "DOCKER_TAG": "1.25"}},
		{name: "link variables overwrite user values",
			svcEnv: "WEB_INSTANCES: x", instEnv: "DB_INSTANCES: x, DB_DB_1_HOST: x, DB_DB_1_PG_PORT: x, WEB_WEB_1_HOST: x",
			want: map[string]string{"WEB_INSTANCES": "web-1", "DB_INSTANCES": "db-1", "DB_DB_1_HOST": "10.0.0.2", "DB_DB_1_PG_PORT": "5432", "WEB_WEB_1_HOST": "10.0.0.1"}},
		{name: "names of services that are not dependencies are free",
			instEnv: "MON_INSTANCES: mine",
			want:    map[string]string{"MON_INSTANCES": "mine"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			web := "    image: nginx:1.25\n    requires: [db]\n"
			var files []string
			if tt.svcEnvfile != "" {
				web += "    envfile: " + svcFile + "\n"
				files = append(files, svcFile, tt.svcEnvfile)
			}
			if tt.svcEnv != "" {
				web += "    env: {" + tt.svcEnv + "}\n"
			}
			inst := "ship: s1"
			if tt.instEnvfile != "" {
				inst += ", envfile: " + instFile
				files = append(files, instFile, tt.instEnvfile)
			}
			if tt.instEnv != "" {
				inst += ", env: {" + tt.instEnv + "}"
			}
			text := fmt.Sprintf(`name: test
ships: {s1: {ip: 10.0.0.1}, s2: {ip: 10.0.0.2}}
services:
  db: {image: postgres, instances: {db-1: {ship: s2, ports: {pg: 5432}}}}
  mon: {image: grafana, instances: {}}
  web:
%s    instances:
      web-1: {%s}
`, web, inst)
			got := envValues(mustEnv(t, text, files...).Instance("web-1").Env)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// §9.3 envfiles (upstream test_envfiles.yaml): the EXACT env sets.
func TestEnvFilesFixture(t *testing.T) {
	env := envOf(t, loadFixture(t, "envfiles"))
	base := func(svc, name, override string) map[string]string {
		m := map[string]string{
			"MAESTRO_ENVIRONMENT_NAME": "test-envfiles",
			"SERVICE_NAME":             svc,
			"SOME_ENV":                 "value",
			"OVERRIDE":                 override,
			"CONTAINER_NAME":           name,
			"CONTAINER_HOST_ADDRESS":   "localhost",
			"DOCKER_IMAGE":             "ubuntu",
			"DOCKER_TAG":               "latest",
		}
		s := strings.ToUpper(svc)
		m[s+"_INSTANCES"] = svc + "a," + svc + "b"
		m[s+"_"+s+"A_HOST"] = "localhost"
		m[s+"_"+s+"B_HOST"] = "localhost"
		return m
	}
	tests := []struct {
		name, svc, override string
		fromFile            bool // whether OVERRIDE came from an env file
	}{
		{"s1a", "s1", "dog", false},    // service env beats service envfile
		{"s1b", "s1", "giraffe", true}, // instance envfile beats service env
		{"s2a", "s2", "giraffe", true}, // later service envfile wins
		{"s2b", "s2", "cat", false},    // instance env wins
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := env.Instance(tt.name)
			if diff := cmp.Diff(base(tt.svc, tt.name, tt.override), envValues(in.Env)); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			for _, v := range in.Env {
				wantFile := v.Name == "SOME_ENV" || (v.Name == "OVERRIDE" && tt.fromFile)
				if v.FromFile != wantFile {
					t.Errorf("%s: FromFile = %v, want %v", v.Name, v.FromFile, wantFile)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Spec hash

const hashBase = `__maestro: {schema: 2}
name: test
ships:
  s1: {ip: 10.0.0.1}
  s2: {ip: 10.0.0.2}
services:
  db:
    image: postgres:16
    instances:
      db-1: {ship: s2, ports: {pg: 5432}}
  web:
    image: nginx:1.25
    requires: [db]
    env:
      A: "1"
      B: two
    instances:
      web-1:
        ship: s1
        command: nginx -g 'daemon off;'
        ports:
          http: "80:8080"
          admin: 9000
        volumes:
          /srv/www: {target: /usr/share/nginx/html, mode: ro}
          /var/log/web: /var/log/nginx
        limits: {memory: 512m, cpu: 512}
        restart: on-failure:3
        labels: {team: web, tier: front}
        cap_add: [NET_ADMIN, SYS_TIME]
        dns: [8.8.8.8, 8.8.4.4]
        extra_hosts: {db: {ship: s2}}
        lifecycle:
          running: [{type: tcp, port: http}]
`

func hashOf(t *testing.T, text string, files ...string) string {
	t.Helper()
	in := mustEnv(t, text, files...).Instance("web-1")
	if in.SpecHash != SpecHash(in) {
		t.Errorf("SpecHash field %q != SpecHash() %q", in.SpecHash, SpecHash(in))
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(in.SpecHash) {
		t.Errorf("SpecHash %q is not 32 hex characters", in.SpecHash)
	}
	return in.SpecHash
}

func TestSpecHashStable(t *testing.T) {
	base := hashOf(t, hashBase)
	if again := hashOf(t, hashBase); again != base {
		t.Fatalf("hash of the same text differs: %s %s", base, again)
	}
	tests := []struct {
		name, text string
		files      []string
	}{
		{name: "comments and blank lines", text: "# environment\n" + strings.ReplaceAll(hashBase, "    image: nginx:1.25\n", "    # the web tier\n\n    image: nginx:1.25  # pinned\n")},
		{name: "key order", text: strings.Replace(strings.Replace(hashBase,
			"        labels: {team: web, tier: front}\n", "        labels: {tier: front, team: web}\n", 1),
			"      A: \"1\"\n      B: two\n", "      B: two\n      A: \"1\"\n", 1)},
		{name: "order of ports, volumes, caps", text: strings.NewReplacer(
			"          http: \"80:8080\"\n          admin: 9000\n", "          admin: 9000\n          http: \"80:8080\"\n",
			"          /srv/www: {target: /usr/share/nginx/html, mode: ro}\n          /var/log/web: /var/log/nginx\n", "          /var/log/web: /var/log/nginx\n          /srv/www: {target: /usr/share/nginx/html, mode: ro}\n",
			"[NET_ADMIN, SYS_TIME]", "[SYS_TIME, NET_ADMIN]").Replace(hashBase)},
		{name: "flow and block style, quoting", text: strings.NewReplacer(
			"    env:\n      A: \"1\"\n      B: two\n", "    env: {A: 1, 'B': \"two\"}\n",
			"        limits: {memory: 512m, cpu: 512}\n", "        limits:\n          memory: '512m'\n          cpu: \"512\"\n",
			"          admin: 9000\n", "          admin: '9000:9000/tcp'\n").Replace(hashBase)},
		{name: "equivalent forms", text: strings.NewReplacer(
			"        command: nginx -g 'daemon off;'\n", "        command: [nginx, -g, daemon off;]\n",
			"        restart: on-failure:3\n", "        restart: {name: on-failure, retries: 3}\n",
			"memory: 512m", "memory: 536870912",
			"extra_hosts: {db: {ship: s2}}", "extra_hosts: {db: 10.0.0.2}").Replace(hashBase)},
		{name: "a bind with mode rw written either way",
			text: strings.Replace(hashBase, "          /var/log/web: /var/log/nginx\n", "          /var/log/web: {target: /var/log/nginx, mode: rw}\n", 1)},
		{name: "env from a file instead of the manifest",
			text:  strings.Replace(hashBase, "    env:\n      A: \"1\"\n      B: two\n", "    envfile: web.env\n", 1),
			files: []string{"web.env", "A=1\nB=two\n"}},
		{name: "rendered from a template", text: strings.Replace(hashBase, "image: nginx:1.25", "image: {{ 'nginx' }}:{{ env.TAG | default('1.25') }}", 1)},
		{name: "lifecycle checks do not shape the container", text: strings.Replace(hashBase, "running: [{type: tcp, port: http}]", "running: [{type: http, port: http, path: /health}]", 1)},
		{name: "omit does not shape the container", text: strings.Replace(hashBase, "    requires: [db]\n", "    requires: [db]\n    omit: true\n", 1)},
		{name: "another service's change that reaches no variable", text: strings.Replace(hashBase, "image: postgres:16", "image: postgres:17", 1)},
		{name: "an unrelated service", text: hashBase + "  other: {image: x, instances: {other-1: {ship: s1}}}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.text == hashBase {
				t.Fatal("the variant does not change the text")
			}
			if got := hashOf(t, tt.text, tt.files...); got != base {
				t.Errorf("hash changed: %s, want %s", got, base)
			}
		})
	}
}

func TestSpecHashChanges(t *testing.T) {
	base := hashOf(t, hashBase)
	tests := []struct{ name, old, new string }{
		{"image tag", "image: nginx:1.25", "image: nginx:1.26"},
		{"env value", "      B: two\n", "      B: three\n"},
		{"env added", "      B: two\n", "      B: two\n      C: x\n"},
		{"env null vs empty", "      B: two\n", "      B: two\n      C: ''\n"},
		{"command", "daemon off;", "daemon on;"},
		{"port external", `http: "80:8080"`, `http: "80:8081"`},
		{"port protocol", "admin: 9000", "admin: 9000/udp"},
		{"port host ip", "admin: 9000", "admin: {exposed: 9000, external: [127.0.0.1, 9000]}"},
		{"volume mode", "mode: ro", "mode: rw"},
		{"volume source", "/srv/www:", "/srv/web:"},
		{"memory", "memory: 512m", "memory: 1g"},
		{"cpu", "cpu: 512", "cpu: 1024"},
		{"restart", "restart: on-failure:3", "restart: always"},
		{"labels", "tier: front", "tier: back"},
		{"caps", "[NET_ADMIN, SYS_TIME]", "[NET_ADMIN]"},
		{"dns order", "[8.8.8.8, 8.8.4.4]", "[8.8.4.4, 8.8.8.8]"},
		{"extra hosts", "extra_hosts: {db: {ship: s2}}", "extra_hosts: {db: {ship: s1}}"},
		{"ship (CONTAINER_HOST_ADDRESS)", "        ship: s1\n", "        ship: s2\n"},
		{"a dependency moves (DB_DB_1_HOST)", "db-1: {ship: s2,", "db-1: {ship: s1,"},
		{"a dependency's port (DB_DB_1_PG_PORT)", "ports: {pg: 5432}", "ports: {pg: \"5432:5433\"}"},
		{"a peer instance (WEB_INSTANCES)", "          running: [{type: tcp, port: http}]\n", "          running: [{type: tcp, port: http}]\n      web-2: {ship: s2}\n"},
		{"stop timeout", "        restart: on-failure:3\n", "        restart: on-failure:3\n        stop_timeout: 30\n"},
		{"net (and hostname)", "        restart: on-failure:3\n", "        restart: on-failure:3\n        net: host\n"},
		{"privileged", "        restart: on-failure:3\n", "        restart: on-failure:3\n        privileged: true\n"},
		{"user", "        restart: on-failure:3\n", "        restart: on-failure:3\n        username: www\n"},
		{"workdir", "        restart: on-failure:3\n", "        restart: on-failure:3\n        workdir: /srv\n"},
		{"ulimits", "        restart: on-failure:3\n", "        restart: on-failure:3\n        ulimits: {nofile: 1024}\n"},
		{"log driver", "        restart: on-failure:3\n", "        restart: on-failure:3\n        log_driver: syslog\n"},
		{"container volume", "        restart: on-failure:3\n", "        restart: on-failure:3\n        container_volumes: /cache\n"},
		{"links", "        restart: on-failure:3\n", "        restart: on-failure:3\n        links: {db-1: db}\n"},
		{"security opt", "        restart: on-failure:3\n", "        restart: on-failure:3\n        security_opt: [no-new-privileges]\n"},
		{"environment name (MAESTRO_ENVIRONMENT_NAME)", "name: test\n", "name: prod\n"},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(hashBase, tt.old, tt.new, 1)
			if text == hashBase {
				t.Fatalf("%q is not in the base manifest", tt.old)
			}
			got := hashOf(t, text)
			if prev, dup := seen[got]; dup {
				t.Errorf("hash %s is the same as for %q", got, prev)
			}
			seen[got] = tt.name
		})
	}
}

func TestDenyExecChecks(t *testing.T) {
	text := `name: shop
ships: {s1: {ip: 10.0.0.1}}
services:
  web:
    image: web:1
    lifecycle:
      running:
        - {type: rexec, command: [true]}
        - {type: exec, command: [sh, -c, "id; env"]}
    instances: {web-1: {ship: s1}}
`
	load := func(deny bool) *Repo {
		return LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(text)}}, Options{DenyExecChecks: deny})
	}
	if err := load(false).Err(); err != nil {
		t.Fatalf("the CLI keeps exec checks: %v", err)
	}
	repo := load(true)
	err := repo.Err()
	if err == nil || len(repo.Environments) != 0 {
		t.Fatal("an exec check is accepted with DenyExecChecks")
	}
	if msg := err.Error(); !strings.Contains(msg, "manifest.yml:9:") || !strings.Contains(msg, "services.web.lifecycle.running[1].type") || !strings.Contains(msg, "--allow-exec-checks") {
		t.Errorf("error %q: want the file, line, field and the flag", msg)
	}
}

// A template is written by whoever commits: a loop bomb, an endless text or
// a render that never ends is an error of its file, in bounded time and
// memory.
func TestTemplateBounds(t *testing.T) {
	old := RenderTimeout
	t.Cleanup(func() { RenderTimeout = old })
	head := "name: shop\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  web:\n    image: web:1\n    env:\n      X: \""
	tail := "\"\n    instances: {web-1: {ship: s1}}\n"
	for name, tc := range map[string]struct {
		tpl, want string
		// timeout is the render deadline: short where the deadline is
		// the bound under test, long where another bound must stop the
		// render first however slow the machine is.
		timeout time.Duration
	}{
		"nested loops":   {"{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "items in all", time.Minute},
		"huge range":     {"{% for a in range(1000000000) %}x{% endfor %}", "items in all", time.Minute},
		"endless output": {"{% for a in range(1000) %}{% for b in range(90) %}{{ '" + strings.Repeat("x", 120) + "' }}{% endfor %}{% endfor %}", "larger than", time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			RenderTimeout = tc.timeout
			start := time.Now()
			repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(head + tc.tpl + tail)}}, Options{})
			err := repo.Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "manifest.yml") {
				t.Fatalf("err = %v, want a located error with %q", err, tc.want)
			}
			if took := time.Since(start); took > tc.timeout+3*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
	RenderTimeout = 2 * time.Second
	// Ordinary loops still work.
	repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(head + "{% for a in range(3) %}{{ a }}{% endfor %}" + tail)}}, Options{})
	if err := repo.Err(); err != nil {
		t.Fatalf("range(3): %v", err)
	}
	if v, _ := repo.Environments[0].Instance("web-1").Env.Get("X"); v != "012" {
		t.Errorf("range(3) gives %q", v)
	}
}

func TestTemplateTaint(t *testing.T) {
	environ := map[string]string{"REGION": "eu-west-9", "DEPLOY_KEY": "k3y-abcdef", "N": "1"}
	load := func(tpl string) Env {
		t.Helper()
		text := "name: shop\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  web:\n    image: web:1\n    env:\n" + tpl + "    instances: {web-1: {ship: s1}}\n"
		repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(text)}}, Options{Environ: environ})
		if err := repo.Err(); err != nil {
			t.Fatal(err)
		}
		return repo.Environments[0].Instance("web-1").Env
	}
	tainted := func(env Env, name string) bool {
		v, _ := env.Lookup(name)
		return v.FromEnv
	}
	env := load("      A: \"{{ env.REGION }}-a\"\n      B: static-value\n      C: \"{{ env.N }}\"\n")
	if !tainted(env, "A") || tainted(env, "B") || tainted(env, "C") {
		t.Errorf("by reference: A %v B %v C %v", tainted(env, "A"), tainted(env, "B"), tainted(env, "C"))
	}
	env = load("      A: \"{% for k, v in env.items() %}{% if k == 'DEPLOY_KEY' %}{{ v }}{% endif %}{% endfor %}\"\n      B: static-value\n")
	if !tainted(env, "A") || tainted(env, "B") {
		t.Errorf("by a loop over env: A %v B %v", tainted(env, "A"), tainted(env, "B"))
	}
}

// TestLinkVariableOrder: MaestroNG writes a container's own service's link
// variables first and its dependencies' after (maestro.py, Conductor
// __init__: container.env.update(service_link_vars), then one update per
// dependency), so when two variables get the same name the dependency's
// value wins; the clash is a warning that names the variable.
func TestLinkVariableOrder(t *testing.T) {
	repo := loadText(t, `__maestro: {schema: 2}
name: clash
ships:
  a: {ip: 10.0.0.1}
  b: {ip: 10.0.0.2}
services:
  web:
    image: web:1
    requires: [web-api]
    env: {KEEP: mine}
    instances:
      api-1x: {ship: a}
  web-api:
    image: api:1
    instances:
      1x: {ship: b}
`)
	env := envOf(t, repo)
	got, _ := env.Instance("api-1x").Env.Get("WEB_API_1X_HOST")
	if got != "10.0.0.2" {
		t.Errorf("WEB_API_1X_HOST of api-1x = %q, want the dependency's 10.0.0.2 (MaestroNG's order)", got)
	}
	if keep, _ := env.Instance("api-1x").Env.Get("KEEP"); keep != "mine" {
		t.Errorf("KEEP = %q", keep)
	}
	warns := messages(repo, SeverityWarning)
	found := false
	for _, w := range warns {
		if strings.Contains(w, "WEB_API_1X_HOST: the link variable of service web-api overwrites the link variable of service web") {
			found = true
		}
		if strings.Contains(w, "10.0.0.") {
			t.Errorf("a warning shows a value: %s", w)
		}
	}
	if !found {
		t.Errorf("no clash warning: %q", warns)
	}
}

// TestLinkVariableOverwritesManifestEnv: a link variable written over a
// variable of the manifest with another value is a warning, once per
// service and variable; the same value is not.
func TestLinkVariableOverwritesManifestEnv(t *testing.T) {
	repo := loadText(t, `__maestro: {schema: 2}
name: over
ships:
  a: {ip: 10.0.0.1}
services:
  web:
    image: web:1
    requires: [db]
    env: {DB_DB_1_HOST: elsewhere, KEEP: mine}
    instances:
      web-1: {ship: a}
      web-2: {ship: a}
      web-3: {ship: a, env: {DB_DB_1_HOST: 10.0.0.1}}
  db:
    image: db:1
    instances:
      db-1: {ship: a}
`)
	env := envOf(t, repo)
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		if got, _ := env.Instance(name).Env.Get("DB_DB_1_HOST"); got != "10.0.0.1" {
			t.Errorf("DB_DB_1_HOST of %s = %q, want the link variable's 10.0.0.1", name, got)
		}
	}
	n := 0
	for _, w := range messages(repo, SeverityWarning) {
		if strings.Contains(w, "DB_DB_1_HOST: the link variable of service db overwrites the env variable of the manifest") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d warnings of the overwritten variable, want 1: %q", n, messages(repo, SeverityWarning))
	}
}

// TestHostPortClashNamesTheFirstBinding: a binding that clashes with
// several earlier ones is reported against the first of them, whether
// ranges are narrow or wide.
func TestHostPortClashNamesTheFirstBinding(t *testing.T) {
	repo := loadText(t, `__maestro: {schema: 2}
name: ports
ships:
  a: {ip: 10.0.0.1}
services:
  svc:
    image: web:1
    instances:
      r1: {ship: a, ports: {p: "80-90:8000-8010"}}
      r2: {ship: a, ports: {p: "80:8005"}}
      r3: {ship: a, ports: {p: {exposed: 80, external: [127.0.0.1, 8005]}}}
      w1: {ship: a, ports: {p: "1000-2000:1000-2000"}}
      w2: {ship: a, ports: {p: "80:1500"}}
      w3: {ship: a, ports: {p: "900-1900:900-1900"}}
      u1: {ship: a, ports: {p: "80/udp:8005/udp"}}
`)
	got := strings.Join(messages(repo, SeverityError), "\n")
	for _, want := range []string{
		"r2: host port 0.0.0.0:8005/tcp on ship a is also bound by r1 (port p)",
		"r3: host port 127.0.0.1:8005/tcp on ship a is also bound by r1 (port p)",
		"w2: host port 0.0.0.0:1500/tcp on ship a is also bound by w1 (port p)",
		"w3: host port 0.0.0.0:900-1900/tcp on ship a is also bound by w1 (port p)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "u1") || strings.Count(got, "is also bound by") != 4 {
		t.Errorf("want 4 clashes, none of u1 (udp):\n%s", got)
	}
}

// TestEnvMapClone checks the copy-on-write env of instances: a clone sees
// its base's variables, its own win, and the base (shared by the other
// instances of the service) never sees them.
func TestEnvMapClone(t *testing.T) {
	svc := &envMap{}
	svc.set(EnvVar{Name: "B", Value: "svc"})
	svc.set(EnvVar{Name: "D", Value: "svc"})
	one, two := svc.clone(), svc.clone()
	one.set(EnvVar{Name: "A", Value: "one"})
	one.set(EnvVar{Name: "D", Value: "one"})
	one.set(EnvVar{Name: "E", Value: "one"})
	two.set(EnvVar{Name: "C", Value: "two"})
	names := func(e Env) string {
		var out []string
		for _, v := range e {
			out = append(out, v.Name+"="+v.Value)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		m    *envMap
		want string
	}{
		{one, "A=one B=svc D=one E=one"},
		{two, "B=svc C=two D=svc"},
		{svc, "B=svc D=svc"},
		{one.clone(), "A=one B=svc D=one E=one"},
		{two.clone().clone(), "B=svc C=two D=svc"},
	} {
		if got := names(tc.m.env()); got != tc.want {
			t.Errorf("env() = %s, want %s", got, tc.want)
		}
	}
	if v, ok := one.get("D"); !ok || v.Value != "one" {
		t.Errorf("one.get(D) = %+v %v, want one's own", v, ok)
	}
	if v, ok := two.get("D"); !ok || v.Value != "svc" {
		t.Errorf("two.get(D) = %+v %v, want the service's", v, ok)
	}
	if _, ok := two.get("A"); ok {
		t.Error("two sees a variable of one")
	}
}
