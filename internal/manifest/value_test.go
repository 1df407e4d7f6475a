package manifest

// Tables of §2 of the MaestroNG reference: port specs (§2.1), sizes
// (§2.3), restart policies (§2.4), env values, list flattening and env
// files (§2.5), image names (§2.6), and the name normalisation of §3.

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// TestPortTable covers every row of the §2.1 table of verified examples,
// through the loader: the parsed port and the link variables of the
// instance's own service (_PORT is the external number, _INTERNAL_PORT the
// exposed one).
func TestPortTable(t *testing.T) {
	tests := []struct {
		name, spec                 string
		exposed, external, ip      string
		port, internal             string
		wantErr, wantWarn, comment string
	}{
		{name: "int", spec: "25", exposed: "25/tcp", external: "25/tcp", ip: "0.0.0.0", port: "25", internal: "25"},
		{name: "string", spec: `"25"`, exposed: "25/tcp", external: "25/tcp", ip: "0.0.0.0", port: "25", internal: "25"},
		{name: "udp", spec: `"53/udp"`, exposed: "53/udp", external: "53/udp", ip: "0.0.0.0", port: "53", internal: "53"},
		{name: "explicit tcp", spec: `"80/tcp"`, exposed: "80/tcp", external: "80/tcp", ip: "0.0.0.0", port: "80", internal: "80"},
		{name: "exposed:external", spec: `"25:2525"`, exposed: "25/tcp", external: "2525/tcp", ip: "0.0.0.0", port: "2525", internal: "25"},
		{name: "udp both sides", spec: `"53/udp:5353/udp"`, exposed: "53/udp", external: "5353/udp", ip: "0.0.0.0", port: "5353", internal: "53"},
		{name: "range to range", spec: `"1234-1236:1234-1236"`, exposed: "1234-1236/tcp", external: "1234-1236/tcp", ip: "0.0.0.0", port: "1234-1236", internal: "1234-1236"},
		{name: "port to range", spec: `"1234:1234-1236"`, exposed: "1234/tcp", external: "1234-1236/tcp", ip: "0.0.0.0", port: "1234-1236", internal: "1234"},
		{name: "range alone", spec: `"1234-1236"`, exposed: "1234-1236/tcp", external: "1234-1236/tcp", ip: "0.0.0.0", port: "1234-1236", internal: "1234-1236"},
		{name: "map with host ip", spec: "{exposed: 25, external: [192.168.10.2, 25]}", exposed: "25/tcp", external: "25/tcp", ip: "192.168.10.2", port: "25", internal: "25"},
		{name: "map udp with host ip", spec: "{exposed: 53/udp, external: [192.168.10.2, 5353/udp]}", exposed: "53/udp", external: "5353/udp", ip: "192.168.10.2", port: "5353", internal: "53"},
		{name: "map without host ip", spec: "{exposed: '1234', external: '1234-1236'}", exposed: "1234/tcp", external: "1234-1236/tcp", ip: "0.0.0.0", port: "1234-1236", internal: "1234"},
		{name: "map: no protocol check", spec: "{exposed: 53/udp, external: 5353}", exposed: "53/udp", external: "5353/tcp", ip: "0.0.0.0", port: "5353", internal: "53",
			comment: "the map form does not check that protocols match (Docker ignores the external one)"},
		{name: "map: extra keys", spec: "{exposed: 25, external: 2525, note: smtp}", exposed: "25/tcp", external: "2525/tcp", ip: "0.0.0.0", port: "2525", internal: "25",
			wantWarn: `ports.p.note: unknown key "note" is ignored`, comment: "upstream keeps extra keys silently; we warn"},
		{name: "ipv6 host ip", spec: "{exposed: 25, external: ['::1', 25]}", exposed: "25/tcp", external: "25/tcp", ip: "::1", port: "25", internal: "25"},

		{name: "mismatch tcp:udp", spec: `"53:5353/udp"`, wantErr: "mismatched protocols between 53/tcp and 5353/udp"},
		{name: "mismatch udp:tcp", spec: `"53/udp:5353"`, wantErr: "mismatched protocols between 53/udp and 5353/tcp"},
		{name: "not a number", spec: `"abc"`, wantErr: `invalid port "abc": expected <port>, <p1>-<p2> or <port>/{tcp,udp}`},
		{name: "sctp", spec: `"25/sctp"`, wantErr: `invalid port "25/sctp"`},
		{name: "leading space", spec: `" 25"`, wantErr: `invalid port " 25"`},
		{name: "upper-case protocol", spec: `"25/TCP"`, wantErr: `invalid port "25/TCP"`},
		{name: "empty external", spec: `"25:"`, wantErr: `invalid port ""`},
		{name: "three parts", spec: `"1:2:3"`, wantErr: `invalid port spec "1:2:3": expected "exposed" or "exposed:external" (container side first`},
		{name: "map without external", spec: "{exposed: 25}", wantErr: `a port mapping needs both "exposed" and "external"`},
		{name: "map without exposed", spec: "{external: 25}", wantErr: `a port mapping needs both "exposed" and "external"`},
		{name: "list", spec: "[25]", wantErr: "invalid port spec: expected a port number, \"exposed:external\" or {exposed, external}, got a list"},
		{name: "null", spec: "null", wantErr: "got null"},
		{name: "float", spec: "25.0", wantErr: "got a number"},
		{name: "bool", spec: "true", wantErr: "got a boolean"},
		{name: "map with a list exposed", spec: "{exposed: [25], external: 25}", wantErr: "invalid port spec: expected a port, got a list"},

		// Upstream does not range-check numbers: 99999, 0 and 25-20 are
		// accepted and fail later in Docker. We reject them up front.
		{name: "too large", spec: "99999", wantErr: `invalid port "99999": 99999 is out of range 1-65535`},
		{name: "zero exposed", spec: "0", wantErr: `invalid port "0": 0 is out of range 1-65535`},
		{name: "inverted range", spec: `"25-20"`, wantErr: `invalid port "25-20": range 25-20 is inverted`},
		{name: "range end too large", spec: `"65535-70000"`, wantErr: "70000 is out of range 1-65535"},
		// An external port 0 asks Docker for a random host port.
		{name: "random host port", spec: `"80:0"`, exposed: "80/tcp", external: "0/tcp", ip: "0.0.0.0", port: "0", internal: "80"},
		{name: "zero exposed side", spec: `"0:80"`, wantErr: `invalid port "0"`},
		// Upstream passes a container range published on a host range of
		// another size (or on one port) to Docker, which refuses it.
		{name: "range on a single port", spec: `"1234-1236:2000"`, wantErr: "container range 1234-1236 needs a host range of the same size, got 2000"},
		{name: "ranges of different sizes", spec: `"1234-1236:2000-2001"`, wantErr: "container range 1234-1236 needs a host range of the same size, got 2000-2001"},
		{name: "map ranges of different sizes", spec: "{exposed: '1234-1236', external: [127.0.0.1, '2000-2009']}", wantErr: "container range 1234-1236 needs a host range of the same size"},
		{name: "shifted range", spec: `"1234-1236:2000-2002"`, exposed: "1234-1236/tcp", external: "2000-2002/tcp", ip: "0.0.0.0", port: "2000-2002", internal: "1234-1236"},
		// Upstream copies the host IP verbatim; we require an address.
		{name: "bad host ip", spec: "{exposed: 25, external: [myhost, 25]}", wantErr: `invalid host IP "myhost"`},
		{name: "host ip list of one", spec: "{exposed: 25, external: [1.2.3.4]}", wantErr: "external as a list must be [host_ip, port], got 1 elements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, repo := container(t, "ports:\n  p: "+tt.spec)
			if tt.wantErr != "" {
				wantErrors(t, repo, "services.foo.instances.foo1.ports.p", tt.wantErr)
				return
			}
			if in == nil {
				t.Fatal(repo.Err())
			}
			want := &Port{Name: "p", Exposed: tt.exposed, External: tt.external, ExternalIP: tt.ip}
			if diff := cmp.Diff(want, in.Port("p")); diff != "" {
				t.Errorf("port (-want +got):\n%s", diff)
			}
			if v, _ := in.Env.Get("FOO_FOO1_P_PORT"); v != tt.port {
				t.Errorf("FOO_FOO1_P_PORT = %q, want %q", v, tt.port)
			}
			if v, _ := in.Env.Get("FOO_FOO1_P_INTERNAL_PORT"); v != tt.internal {
				t.Errorf("FOO_FOO1_P_INTERNAL_PORT = %q, want %q", v, tt.internal)
			}
			if tt.wantWarn != "" {
				wantWarning(t, repo, tt.wantWarn)
			}
		})
	}
}

// Ports: accessors, merging by name (instance wins), sorted by name.
func TestPortsMerge(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}, t: {ip: 10.0.0.2}}
services:
  app:
    image: x
    ports: {web: 80, admin: "9000:19000"}
    instances:
      a1: {ship: s, ports: {web: "8080:80", debug: 5005}}
      a2: {ship: t}
`)
	want := PortList{
		{Name: "admin", Exposed: "9000/tcp", External: "19000/tcp", ExternalIP: "0.0.0.0"},
		{Name: "debug", Exposed: "5005/tcp", External: "5005/tcp", ExternalIP: "0.0.0.0"},
		{Name: "web", Exposed: "8080/tcp", External: "80/tcp", ExternalIP: "0.0.0.0"},
	}
	if diff := cmp.Diff(want, env.Instance("a1").Ports); diff != "" {
		t.Errorf("a1 ports (-want +got):\n%s", diff)
	}
	if got := env.Instance("a2").Port("web"); got == nil || got.External != "80/tcp" {
		t.Errorf("a2 web = %+v", got)
	}
	p := env.Instance("a1").Port("admin")
	if p.Protocol() != "tcp" || p.ExposedPort() != "9000" || p.ExternalPort() != "19000" {
		t.Errorf("accessors: %s %s %s", p.Protocol(), p.ExposedPort(), p.ExternalPort())
	}
	if env.Instance("a1").Port("nope") != nil {
		t.Error("Port(nope) != nil")
	}
	js, err := json.Marshal(env.Instance("a2").Ports)
	if err != nil || string(js) != `{"admin":{"exposed":"9000/tcp","external":"19000/tcp","external_ip":"0.0.0.0"},"web":{"exposed":"80/tcp","external":"80/tcp","external_ip":"0.0.0.0"}}` {
		t.Errorf("JSON = %s, %v", js, err)
	}
}

// Two instances binding the same host port on one Docker host cannot both
// run; upstream finds out from Docker at start. We report it at load.
func TestHostPortClash(t *testing.T) {
	tests := []struct {
		name, instances, wantErr string
	}{
		{"same ship, same port", "a1: {ship: s, ports: {p: 80}}\na2: {ship: s, ports: {p: 80}}", "host port 0.0.0.0:80/tcp on ship s is also bound by a1 (port p)"},
		{"overlapping ranges", "a1: {ship: s, ports: {p: '1000-1010'}}\na2: {ship: s, ports: {q: '5:1005'}}", "is also bound by a1"},
		{"different ships", "a1: {ship: s, ports: {p: 80}}\na2: {ship: t, ports: {p: 80}}", ""},
		{"tcp and udp", "a1: {ship: s, ports: {p: 53}}\na2: {ship: s, ports: {p: 53/udp}}", ""},
		{"different host ips", "a1: {ship: s, ports: {p: {exposed: 80, external: [10.0.0.1, 80]}}}\na2: {ship: s, ports: {p: {exposed: 80, external: [127.0.0.1, 80]}}}", ""},
		{"any address and a specific one", "a1: {ship: s, ports: {p: 80}}\na2: {ship: s, ports: {p: {exposed: 80, external: [127.0.0.1, 80]}}}", "is also bound by a1"},
		{"random host ports", "a1: {ship: s, ports: {p: '80:0'}}\na2: {ship: s, ports: {p: '80:0'}}", ""},
		{"host network", "a1: {ship: s, ports: {p: 80}}\na2: {ship: s, net: host, ports: {p: 80}}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := loadText(t, "name: test\nships: {s: {ip: 10.0.0.1}, t: {ip: 10.0.0.2}}\nservices:\n  app:\n    image: x\n    instances:\n"+indent(tt.instances, 6))
			if tt.wantErr == "" {
				envOf(t, repo)
				return
			}
			wantErrors(t, repo, tt.wantErr)
		})
	}
}

// TestSizeTable covers §2.3 (limits.memory and limits.swap) and cpu.
func TestSizeTable(t *testing.T) {
	tests := []struct {
		limits  string
		want    Limits
		wantErr string
	}{
		{limits: "", want: Limits{}},
		{limits: "limits: {}", want: Limits{}},
		{limits: "limits: {memory: null}", want: Limits{}},
		{limits: "limits: {memory: ''}", want: Limits{}},
		{limits: "limits: {memory: 0}", want: Limits{}},
		{limits: "limits: {memory: 1048576}", want: Limits{Memory: 1048576}},
		{limits: "limits: {memory: '42'}", want: Limits{Memory: 42}},
		{limits: "limits: {memory: 10m}", want: Limits{Memory: 10485760}},
		{limits: "limits: {memory: 10M}", want: Limits{Memory: 10485760}},
		{limits: "limits: {memory: 1G}", want: Limits{Memory: 1073741824}},
		{limits: "limits: {memory: 1g}", want: Limits{Memory: 1073741824}},
		{limits: "limits: {memory: 42k}", want: Limits{Memory: 43008}},
		{limits: "limits: {memory: 42K}", want: Limits{Memory: 43008}},
		{limits: "limits: {swap: 42}", want: Limits{Swap: 42}},
		{limits: "limits: {swap: '42k'}", want: Limits{Swap: 43008}},
		// int() accepts a sign. Docker reads a swap of -1 as unlimited.
		{limits: "limits: {swap: -1}", want: Limits{Swap: -1}},
		{limits: "limits: {swap: -1m}", want: Limits{Swap: -1048576}},
		{limits: "limits: {memory: 1g, swap: 2g}", want: Limits{Memory: 1 << 30, Swap: 2 << 30}},
		{limits: "limits: {cpu: 2}", want: Limits{CPUShares: 2}},
		{limits: "limits: {cpu: '512'}", want: Limits{CPUShares: 512}},

		{limits: "limits: {memory: 10mb}", wantErr: `limits.memory: unknown unit suffix "b" in "10mb": use k, m or g`},
		{limits: "limits: {memory: 10b}", wantErr: `unknown unit suffix "b" in "10b"`},
		{limits: "limits: {memory: 1t}", wantErr: `unknown unit suffix "t" in "1t"`},
		{limits: "limits: {swap: 1t}", wantErr: `limits.swap: unknown unit suffix "t"`},
		// upstream: a raw ValueError
		{limits: "limits: {memory: 1.5g}", wantErr: `invalid size "1.5g"`},
		{limits: "limits: {memory: k}", wantErr: `invalid size "k"`},
		{limits: "limits: {memory: 1.5}", wantErr: "invalid size: expected a number of bytes or a string such as 512m, got a number"},
		{limits: "limits: {memory: [1]}", wantErr: "invalid size"},
		{limits: "limits: {memory: 99999999999g}", wantErr: `invalid size "99999999999g": too large`},
		// Upstream accepts -1m for memory too (int() takes the sign);
		// Docker refuses a negative memory limit, so we do at load.
		{limits: "limits: {memory: -1m}", wantErr: "limits.memory: memory limit -1m must not be negative"},
		// Docker's MemorySwap is memory+swap: it cannot be below memory.
		{limits: "limits: {memory: 1g, swap: 512m}", wantErr: "swap (memory+swap in Docker's terms) 536870912 must be at least the memory limit 1073741824"},
		{limits: "limits: {cpu: two}", wantErr: "limits.cpu: expected an integer"},
		{limits: "limits: {cpus: 2}", wantErr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.limits, func(t *testing.T) {
			in, repo := container(t, tt.limits)
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				return
			}
			if in == nil {
				t.Fatal(repo.Err())
			}
			if in.Limits != tt.want {
				t.Errorf("Limits = %+v, want %+v", in.Limits, tt.want)
			}
		})
	}
}

// Service limits are merged per key into the instance's (instance wins).
func TestLimitsMerge(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 10.0.0.1}}
services:
  app:
    image: x
    limits: {cpu: 2, memory: '10m'}
    instances:
      a1: {ship: s, limits: {memory: 20m, swap: 40m}}
      a2: {ship: s}
      a3: {ship: s, limits: {memory: null}}
`)
	for name, want := range map[string]Limits{
		"a1": {Memory: 20 << 20, Swap: 40 << 20, CPUShares: 2},
		"a2": {Memory: 10 << 20, CPUShares: 2},
		// A null overrides the service's value with "no limit", as
		// upstream's dict update of the service limits does.
		"a3": {CPUShares: 2},
	} {
		if got := env.Instance(name).Limits; got != want {
			t.Errorf("%s: Limits = %+v, want %+v", name, got, want)
		}
	}
}

// TestRestartTable covers §2.4.
func TestRestartTable(t *testing.T) {
	tests := []struct {
		restart string
		want    RestartPolicy
		wantErr string
	}{
		{restart: "", want: RestartPolicy{Name: "no"}},
		{restart: "restart: always", want: RestartPolicy{Name: "always"}},
		{restart: "restart: unless-stopped", want: RestartPolicy{Name: "unless-stopped"}},
		{restart: "restart: 'no'", want: RestartPolicy{Name: "no"}},
		{restart: "restart: on-failure", want: RestartPolicy{Name: "on-failure"}},
		{restart: "restart: on-failure:3", want: RestartPolicy{Name: "on-failure", MaxRetries: 3}},
		{restart: "restart: {name: on-failure, retries: 42}", want: RestartPolicy{Name: "on-failure", MaxRetries: 42}},
		{restart: "restart: {name: on-failure, retries: '5'}", want: RestartPolicy{Name: "on-failure", MaxRetries: 5}},
		{restart: "restart: {name: on-failure}", want: RestartPolicy{Name: "on-failure"}},
		{restart: "restart: {name: always}", want: RestartPolicy{Name: "always"}},
		{restart: "restart: {}", want: RestartPolicy{Name: "no"}},
		// The docs show maximum_retry_count, which upstream rejects (#95).
		// We accept it as a spelling of retries.
		{restart: "restart: {name: on-failure, maximum_retry_count: 3}", want: RestartPolicy{Name: "on-failure", MaxRetries: 3}},
		// Null, no and false are the default, as upstream (YAML 1.1 read
		// an unquoted no as false).
		{restart: "restart: null", want: RestartPolicy{Name: "no"}},
		{restart: "restart: no", want: RestartPolicy{Name: "no"}},
		{restart: "restart: false", want: RestartPolicy{Name: "no"}},

		{restart: "restart: always:x", wantErr: `invalid restart policy "always:x": expected name[:retries], e.g. on-failure:3`},
		{restart: "restart: on-failure:3:4", wantErr: `invalid restart policy "on-failure:3:4"`},
		{restart: "restart: on-failure:-1", wantErr: `invalid restart policy "on-failure:-1"`},
		{restart: "restart: noclue", wantErr: `invalid restart policy "noclue": choose one of no, always, on-failure, unless-stopped`},
		{restart: "restart: {name: noclue}", wantErr: `invalid restart policy "noclue"`},
		{restart: "restart: {name: on-failure, max_retries: 3}", wantErr: `restart.max_retries: invalid restart policy: unknown key "max_retries"`},
		{restart: "restart: {name: on-failure, retries: x}", wantErr: "restart.retries: expected an integer"},
		{restart: "restart: {name: on-failure, retries: -2}", wantErr: "retries must not be negative"},
		// Upstream falls back to the default for any other type; we
		// report the mistake.
		{restart: "restart: []", wantErr: "got a list"},
		{restart: "restart: 5", wantErr: "got an integer"},
		{restart: "restart: true", wantErr: "got a boolean"},
		// Docker accepts retries with on-failure only; upstream passes
		// e.g. {always, 3} and Docker refuses the container.
		{restart: "restart: always:3", wantErr: "invalid restart policy: retries only apply to on-failure, not always"},
		{restart: "restart: {name: unless-stopped, retries: 1}", wantErr: "retries only apply to on-failure, not unless-stopped"},
		// Upstream gives {no, 2} for {retries: 2}; Docker refuses it.
		{restart: "restart: {retries: 2}", wantErr: "retries only apply to on-failure, not no"},
		{restart: "restart: no:2", wantErr: "retries only apply to on-failure, not no"},
	}
	for _, tt := range tests {
		t.Run(tt.restart, func(t *testing.T) {
			in, repo := container(t, tt.restart)
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				return
			}
			if in == nil {
				t.Fatal(repo.Err())
			}
			if in.Restart != tt.want {
				t.Errorf("Restart = %+v, want %+v", in.Restart, tt.want)
			}
		})
	}
}

// TestEnvValues covers the value conversions of §2.5: what the container
// sees is Python's str() of the YAML value, lists are flattened and joined
// with spaces, null is a bare KEY.
func TestEnvValues(t *testing.T) {
	tests := []struct {
		value, want, wantErr string
	}{
		{value: "hello", want: "hello"},
		{value: "'quoted'", want: "quoted"},
		{value: "''", want: ""},
		{value: "true", want: "True"},
		{value: "false", want: "False"},
		{value: "True", want: "True"},
		{value: "3", want: "3"},
		{value: "-3", want: "-3"},
		{value: "3.5", want: "3.5"},
		{value: "1.0", want: "1.0"},
		{value: "0.1", want: "0.1"},
		{value: "1.5e-7", want: "1.5e-07"},
		{value: "0x10", want: "16"},
		{value: ".inf", want: "inf"},
		{value: "2001-12-14", want: "2001-12-14"},
		{value: "null", want: "<unset>"},
		{value: "~", want: "<unset>"},
		{value: "", want: "<unset>"},
		{value: "[This, [is, a], test]", want: "This is a test"},
		{value: "[]", want: ""},
		{value: "[[]]", want: ""},
		{value: "[-Xmx1g, [-Dx=1, '-Dy=2']]", want: "-Xmx1g -Dx=1 -Dy=2"},
		// Upstream passes a nested map to Docker as its Python repr; we
		// refuse it.
		{value: "{a: b}", wantErr: "env.V: expected a string, a number or a list, got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			in, repo := container(t, "env:\n  V: "+tt.value)
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				return
			}
			if in == nil {
				t.Fatal(repo.Err())
			}
			if got := envValues(in.Env)["V"]; got != tt.want {
				t.Errorf("V = %q, want %q", got, tt.want)
			}
		})
	}
}

// null → bare KEY for Docker; null in JSON.
func TestEnvNullIsBareKey(t *testing.T) {
	in := mustContainer(t, "env: {A: null, B: '', C: 1}")
	list := in.Env.List()
	for _, want := range []string{"A", "B=", "C=1"} {
		found := false
		for _, kv := range list {
			found = found || kv == want
		}
		if !found {
			t.Errorf("List() = %q lacks %q", list, want)
		}
	}
	if _, ok := in.Env.Get("A"); ok {
		t.Error("Get(A) reports a null as set")
	}
	if v, ok := in.Env.Lookup("A"); !ok || !v.Unset {
		t.Errorf("Lookup(A) = %+v, %v", v, ok)
	}
	if v, ok := in.Env.Get("B"); !ok || v != "" {
		t.Errorf("Get(B) = %q, %v", v, ok)
	}
	js, err := json.Marshal(Env{{Name: "A", Unset: true}, {Name: "B", Value: "x"}})
	if err != nil || string(js) != `{"A":null,"B":"x"}` {
		t.Errorf("JSON = %s, %v", js, err)
	}
	// List is sorted by name, as Env is.
	if diff := cmp.Diff([]string{"A=1", "B", "C=x"}, Env{{Name: "A", Value: "1"}, {Name: "B", Unset: true}, {Name: "C", Value: "x"}}.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestEnvNames(t *testing.T) {
	_, repo := container(t, "env: {'A=B': x}")
	wantErrors(t, repo, `invalid environment variable name "A=B"`)
	_, repo = container(t, "env: {'': x}")
	wantErrors(t, repo, `invalid environment variable name ""`)
	// A list is a list of env file sources, as in MaestroNG: A=1 is a
	// file name.
	_, repo = container(t, "env: [A=1]")
	wantErrors(t, repo, "env[0]: env file A=1: ")
}

// TestEnvFileFormat covers the env-file rules of §2.5 (docker-py's
// parse_env_file).
func TestEnvFileFormat(t *testing.T) {
	tests := []struct {
		name, file string
		want       map[string]string
		wantErr    string
	}{
		{name: "basic", file: "A=1\nB=two\n", want: map[string]string{"A": "1", "B": "two"}},
		{name: "comment and blank lines", file: "# comment\n\nA=1\n   \n#B=2\n", want: map[string]string{"A": "1"}},
		{name: "no trimming around =", file: "B = 2\n", want: map[string]string{"B ": " 2"}},
		{name: "line is stripped", file: "   A=1   \n", want: map[string]string{"A": "1"}},
		{name: "quotes kept", file: "C='q'\nD=\"q\"\n", want: map[string]string{"C": "'q'", "D": `"q"`}},
		{name: "split at the first =", file: "D=x=y\n", want: map[string]string{"D": "x=y"}},
		{name: "empty value", file: "E=\n", want: map[string]string{"E": ""}},
		{name: "CRLF", file: "A=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "no final newline", file: "A=1", want: map[string]string{"A": "1"}},
		{name: "later line wins", file: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "line without =", file: "A=1\nNOVALUE\n", wantErr: `env file app.env:2: invalid line "NOVALUE": expected NAME=value`},
		{name: "empty name", file: "=x\n", wantErr: `env file app.env:1: invalid line "=x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(containerManifest(""), "    ports: {server: 4848}\n", "    ports: {server: 4848}\n    envfile: app.env\n", 1)
			repo := loadText(t, text, "app.env", tt.file)
			if tt.wantErr != "" {
				wantErrors(t, repo, "services.foo.envfile", tt.wantErr)
				return
			}
			in := envOf(t, repo).Instance("foo1")
			got := envValues(in.Env)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%q = %q, want %q", k, got[k], v)
				}
				if ev, _ := in.Env.Lookup(k); !ev.FromFile {
					t.Errorf("%q is not marked FromFile", k)
				}
			}
			fixed := 6 + 4 // the fixed variables and FOO_INSTANCES, _HOST, _SERVER_PORT, _SERVER_INTERNAL_PORT
			if len(got) != len(tt.want)+fixed {
				t.Errorf("env has %d variables, want %d: %v", len(got), len(tt.want)+fixed, got)
			}
		})
	}
	t.Run("a bad line is not shown whole", func(t *testing.T) {
		text := strings.Replace(containerManifest(""), "    ports: {server: 4848}\n", "    ports: {server: 4848}\n    envfile: app.env\n", 1)
		repo := loadText(t, text, "app.env", "s3cr3t-password-without-name\n")
		wantErrors(t, repo, `invalid line "s3cr3t-passw…"`)
		if strings.Contains(repo.Diagnostics.Error(), "without-name") {
			t.Errorf("the error shows the whole line: %v", repo.Diagnostics)
		}
	})
}

// An indented # is not a comment for docker-py (§2.5, verified: the line
// has no = and is invalid). We follow the docker CLI's --env-file, which
// strips leading space first: an indented # is a comment.
func TestEnvFileIndentedComment(t *testing.T) {
	text := strings.Replace(containerManifest(""), "    ports: {server: 4848}\n", "    ports: {server: 4848}\n    envfile: app.env\n", 1)
	in := envOf(t, loadText(t, text, "app.env", "A=1\n  # B=2 is a comment\n\t#C=3\n")).Instance("foo1")
	got := envValues(in.Env)
	if got["A"] != "1" {
		t.Errorf("A = %q", got["A"])
	}
	if len(got) != 1+6+4 { // A, the fixed variables, FOO_INSTANCES, _HOST, _SERVER_PORT, _SERVER_INTERNAL_PORT
		t.Errorf("a comment line was read as a variable: %v", got)
	}
}

// Env sources: a path, a (nested) list of paths, later files winning;
// paths relative to the manifest's directory and inside the repository.
func TestEnvFileSources(t *testing.T) {
	files := []string{
		"apps/shop/a.env", "A=a\nX=a\n",
		"apps/shop/b.env", "B=b\nX=b\n",
		"apps/common.env", "C=c\nX=common\n",
	}
	tests := []struct {
		name, envfile string
		want          map[string]string
		wantErr       string
	}{
		{name: "one file", envfile: "a.env", want: map[string]string{"A": "a", "X": "a"}},
		{name: "list, later wins", envfile: "[a.env, b.env]", want: map[string]string{"A": "a", "B": "b", "X": "b"}},
		{name: "nested list", envfile: "[[b.env], [[a.env]]]", want: map[string]string{"A": "a", "B": "b", "X": "a"}},
		{name: "parent directory inside the repository", envfile: "../common.env", want: map[string]string{"C": "c", "X": "common"}},
		// A mapping among the sources is merged in, in order (§2.5).
		{name: "mapping source", envfile: "[a.env, {X: inline, Y: 2}, b.env]", want: map[string]string{"A": "a", "B": "b", "X": "b", "Y": "2"}},
		{name: "null is nothing", envfile: "null", want: map[string]string{}},
		{name: "empty list", envfile: "[]", want: map[string]string{}},
		{name: "missing file", envfile: "nope.env", wantErr: "env file nope.env: file does not exist"},
		{name: "outside the repository", envfile: "../../../etc/passwd", wantErr: "env file ../../../etc/passwd: path is outside the repository"},
		{name: "absolute path", envfile: "/etc/passwd", wantErr: "env file /etc/passwd: absolute path is outside the repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  x:\n    image: x\n    envfile: " + tt.envfile + "\n    instances: {x-1: {ship: s}}\n"
			fsys := mapFS("", files...)
			delete(fsys, "manifest.yml")
			fsys["apps/shop/manifest.yml"] = &fstest.MapFile{Data: []byte(text)}
			repo, err := LoadFiles(fsys, []string{"apps/shop/manifest.yml"}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				errs := messages(repo, SeverityError)
				if !containsAny(errs, tt.wantErr) {
					t.Errorf("errors %q lack %q", errs, tt.wantErr)
				}
				return
			}
			got := envValues(envOf(t, repo).Instance("x-1").Env)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range []string{"A", "B", "C", "X", "Y"} {
				if _, want := tt.want[k]; !want {
					if v, has := got[k]; has {
						t.Errorf("%s = %q, want unset", k, v)
					}
				}
			}
		})
	}
	t.Run("absolute path with ReadFile", func(t *testing.T) {
		text := "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  x: {image: x, envfile: /etc/app.env, instances: {x-1: {ship: s}}}\n"
		read := func(name string) ([]byte, error) {
			if name != "/etc/app.env" {
				t.Errorf("ReadFile(%q)", name)
			}
			return []byte("ABS=1\n"), nil
		}
		repo := loadFS(t, mapFS(text), Options{ReadFile: read})
		if v, _ := envOf(t, repo).Instance("x-1").Env.Get("ABS"); v != "1" {
			t.Errorf("ABS = %q", v)
		}
	})
}

// TestParseImage covers the table of §2.6.
func TestParseImage(t *testing.T) {
	tests := []struct{ image, repo, tag string }{
		{"stackbrew/ubuntu:13.10", "stackbrew/ubuntu", "13.10"},
		{"stackbrew/ubuntu", "stackbrew/ubuntu", "latest"},
		{"quay.io/foo/bar:13.10", "quay.io/foo/bar", "13.10"},
		{"quay.io:8081/foo/bar:13.10", "quay.io:8081/foo/bar", "13.10"},
		{"quay.io:8081/foo/bar", "quay.io:8081/foo/bar", "latest"},
		// Digests are not supported upstream: split at the last colon.
		{"foo@sha256:abcd", "foo@sha256", "abcd"},
		{"ubuntu", "ubuntu", "latest"},
		{"localhost:5000/app", "localhost:5000/app", "latest"},
	}
	for _, tt := range tests {
		repo, tag := ParseImage(tt.image)
		if repo != tt.repo || tag != tt.tag {
			t.Errorf("ParseImage(%q) = %q, %q; want %q, %q", tt.image, repo, tag, tt.repo, tt.tag)
		}
	}
}

// Image names are checked loosely at load time.
func TestImageCheck(t *testing.T) {
	for image, ok := range map[string]bool{
		"ubuntu": true, "quay.io:8081/foo/bar:13.10": true, "foo@sha256:abcd": true, "a/b/c:d": true,
		"Ubuntu": false, "ubuntu:": false, "has space": false, "ubuntu:bad tag": false,
	} {
		repo := loadText(t, "name: test\nships: {s: {ip: 1.2.3.4}}\nservices:\n  x: {image: '"+image+"', instances: {}}\n")
		if got := repo.Err() == nil; got != ok {
			t.Errorf("image %q: valid = %v, want %v (%v)", image, got, ok, repo.Err())
		}
	}
}

// TestToEnv covers the name normalisation of §3: non-word characters
// become _, then upper case.
func TestToEnv(t *testing.T) {
	for in, want := range map[string]string{
		"my.svc-x":       "MY_SVC_X",
		"Zk-1.a":         "ZK_1_A",
		"client-port.v2": "CLIENT_PORT_V2",
		"web":            "WEB",
		"snake_case":     "SNAKE_CASE",
		"a b/c:d":        "A_B_C_D",
		"café":           "CAFÉ",
		"":               "",
	} {
		if got := ToEnv(in); got != want {
			t.Errorf("ToEnv(%q) = %q, want %q", in, got, want)
		}
	}
}

// Other conversions (§2.9, §1.7): container_volumes and volumes_from are
// sets, ulimits accept an int or {soft, hard}.
func TestOtherConversions(t *testing.T) {
	t.Run("container_volumes", func(t *testing.T) {
		for settings, want := range map[string][]string{
			"container_volumes: /data":                 {"/data"},
			"container_volumes: [/b, /a, /b, /a/../c]": {"/a", "/b", "/c"},
		} {
			if diff := cmp.Diff(want, mustContainer(t, settings).ContainerVolumes); diff != "" {
				t.Errorf("%q (-want +got):\n%s", settings, diff)
			}
		}
		_, repo := container(t, "container_volumes: [data]")
		wantErrors(t, repo, `container path "data" must be absolute`)
	})
	t.Run("volumes", func(t *testing.T) {
		in := mustContainer(t, "volumes: {/z: /data/z, /a: /data/a/, named-vol: /vol}")
		want := []Bind{{Source: "/a", Target: "/data/a"}, {Source: "/z", Target: "/data/z"}, {Source: "named-vol", Target: "/vol"}}
		if diff := cmp.Diff(want, in.Volumes); diff != "" {
			t.Errorf("Volumes sorted by target (-want +got):\n%s", diff)
		}
		_, repo := container(t, "volumes: {/a: /data, /b: /data}")
		wantErrors(t, repo, "/data is mounted twice (also from /a)")
		_, repo = container(t, "volumes: {/a: data}")
		wantErrors(t, repo, `container path "data" must be absolute`)
		_, repo = container(t, "volumes: {'./rel': /data}")
		wantErrors(t, repo, `volume source "./rel" must be an absolute host path or a volume name`)
	})
	t.Run("ulimits", func(t *testing.T) {
		tests := []struct {
			settings string
			want     []Ulimit
			wantErr  string
		}{
			{settings: "ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 4096}}", want: []Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}, {Name: "nproc", Soft: 65535, Hard: 65535}}},
			// Upstream leaves the missing one out (Docker then fails);
			// we use the one given for both.
			{settings: "ulimits: {nofile: {soft: 1024}}", want: []Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}}},
			{settings: "ulimits: {nofile: {hard: 2048}}", want: []Ulimit{{Name: "nofile", Soft: 2048, Hard: 2048}}},
			// Upstream silently drops a string; int() of it is what is meant.
			{settings: "ulimits: {nproc: '5'}", want: []Ulimit{{Name: "nproc", Soft: 5, Hard: 5}}},
			{settings: "ulimits: {nofile: {soft: 10, hard: 5}}", wantErr: "soft limit 10 is above hard limit 5"},
			{settings: "ulimits: {nofile: {}}", wantErr: "a ulimit needs soft and/or hard"},
			{settings: "ulimits: {nofile: many}", wantErr: "ulimits.nofile: expected an integer"},
		}
		for _, tt := range tests {
			in, repo := container(t, tt.settings)
			if tt.wantErr != "" {
				wantErrors(t, repo, tt.wantErr)
				continue
			}
			if in == nil {
				t.Fatal(repo.Err())
			}
			if diff := cmp.Diff(tt.want, in.Ulimits); diff != "" {
				t.Errorf("%q (-want +got):\n%s", tt.settings, diff)
			}
		}
	})
}

// TestPyScalarCorpus: an env value written as each YAML scalar of
// testdata/pyscalars/cases.json reaches the container as it does under
// MaestroNG (gen.py recorded PyYAML's reading, formatted by Python).
func TestPyScalarCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/pyscalars/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		YAML string  `json:"yaml"`
		Env  *string `json:"env"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	// Deliberate differences (docs/manifest.md, with a warning at load):
	// YAML 1.2 keeps these as the text written.
	deliberate := map[string]bool{"yes": true, "no": true, "on": true, "off": true, "1:30": true, "12:30:45": true}
	for _, c := range cases {
		if deliberate[c.YAML] {
			c.Env = &c.YAML
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("v: "+c.YAML), &doc); err != nil {
			t.Errorf("%q: %v", c.YAML, err)
			continue
		}
		got, set := envString(doc.Content[0].Content[1])
		switch {
		case c.Env == nil && set:
			t.Errorf("%q: got %q, MaestroNG: unset (None)", c.YAML, got)
		case c.Env != nil && (!set || got != *c.Env):
			t.Errorf("%q: got %q (set %v), MaestroNG: %q", c.YAML, got, set, *c.Env)
		}
	}
}

// TestToEnvCorpus: names become variable name parts as MaestroNG makes
// them (testdata/envnames/gen.py recorded Python 3's result).
func TestToEnvCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/envnames/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ Name, Env string }
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if got := ToEnv(c.Name); got != c.Env {
			t.Errorf("ToEnv(%q) = %q, MaestroNG: %q", c.Name, got, c.Env)
		}
	}
}

func TestToEnvASCII(t *testing.T) {
	for _, name := range []string{"", "web", "WEB_1", "a-b.c", "svc9", "x y/z", "_", "Mixed-Case.9"} {
		got, ok := asciiToEnv(name)
		if !ok {
			t.Fatalf("asciiToEnv(%q) refused an ASCII name", name)
		}
		want := strings.ToUpper(strings.Map(func(r rune) rune {
			if r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) {
				return r
			}
			return '_'
		}, name))
		if got != want || ToEnv(name) != want {
			t.Errorf("ToEnv(%q) = %q, want %q", name, got, want)
		}
	}
	if _, ok := asciiToEnv("straße"); ok {
		t.Error("asciiToEnv accepted a name that is not ASCII")
	}
}

// TestPortListJSON checks that the plain form of a port list is the one
// the general form (encoding/json for every name and port) writes.
func TestPortListJSON(t *testing.T) {
	general := func(pl PortList) string {
		out, err := pl.generalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	for _, pl := range []PortList{
		nil,
		{},
		{{Name: "http", Exposed: "80/tcp", External: "8080/tcp"}},
		{{Name: "admin", Exposed: "9000/tcp", External: "20000/tcp", ExternalIP: "127.0.0.1"}, {Name: "dns", Exposed: "53/udp", External: "53/udp"}},
		{{Name: "a<b>&\"q\"", Exposed: "1/tcp"}, {Name: "é\u2028", External: "\x01"}},
	} {
		got, err := json.Marshal(pl)
		if err != nil {
			t.Fatal(err)
		}
		if want := general(pl); string(got) != want {
			t.Errorf("ports %v: got %s, want %s", pl, got, want)
		}
	}
}
