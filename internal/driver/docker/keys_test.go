package docker_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// keysManifest uses every instance key of MaestroNG's §1.7 that reaches
// Docker. "all" carries most of them; "vol-src" is the volumes_from and
// links peer (list labels, list command, image override, no net so the
// hostname is the name); "isolated" and "hostnet" use net: none and host.
const keysManifest = `__maestro: {schema: 2}
name: keys
ships:
  s1: {ip: %IP1%, socket_path: %SOCK1%, timeout: 20}
  s2: {ip: %IP2%, socket_path: %SOCK2%, timeout: 20}
services:
  store:
    image: maestro-test/busybox:1
    instances:
      vol-src:
        ship: s1
        image: maestro-test/busybox:2
        command: [sleep, "3600"]
        container_volumes: [/shared]
        labels: [role.storage, canary]
        stop_timeout: 1
  app:
    image: maestro-test/busybox:1
    requires: [store]
    instances:
      all:
        ship: s1
        command: sh -c "echo 'hello   world' > /tmp/greeting && exec httpd -f -p 8080 -h /www"
        ports:
          http: "8080:18090"
          plain: 18091
          admin: {exposed: 8081, external: [%IP1%, 18092]}
          dns: "5353/udp:18093/udp"
          span: "9000-9001:18094-18095"
        envfile: app.env
        env: {OVERRIDDEN: from-env, PLAIN: "a b"}
        volumes:
          %RWDIR%: /mnt/rw
          %RODIR%: {target: /mnt/ro, mode: ro}
        container_volumes: /data
        volumes_from: vol-src
        links: {vol-src: src}
        username: nobody
        privileged: true
        cap_add: [NET_ADMIN]
        cap_drop: [MKNOD]
        extra_hosts: {db.local: 10.9.8.7, peer: {ship: s2}}
        net: bridge
        restart: on-failure:3
        dns: [10.0.0.53, 10.0.0.54]
        stop_timeout: 7
        limits: {memory: 64m, swap: 128m, cpu: 512}
        log_driver: json-file
        log_opt: {max-size: 1m, max-file: 2}
        workdir: /tmp/work
        security_opt: [no-new-privileges]
        ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
        labels: {team: core, tier: "1"}
      isolated: {ship: s1, net: none, command: [sleep, "3600"], stop_timeout: 1}
      hostnet: {ship: s1, net: host, command: [sleep, "3600"], stop_timeout: 1}
`

const keysEnvFile = "# env file of all\nFROM_FILE=file value\nOVERRIDDEN=from-file\n"

// TestEveryInstanceKeyReachesDocker deploys keysManifest through the whole
// pipeline and checks, key by key, what docker inspect reports and what the
// running containers see.
func TestEveryInstanceKeyReachesDocker(t *testing.T) {
	ships := dockertest.Shared(t, 2)
	s1 := ships[0]
	pool := docker.NewPool()
	t.Cleanup(func() { pool.Close() })

	dir := t.TempDir()
	rwDir, roDir := filepath.Join(dir, "rw"), filepath.Join(dir, "ro")
	for _, d := range []string{rwDir, roDir} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil { // umask; "all" runs as nobody
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(roDir, "file"), []byte("ro-content"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("%IP1%", s1.IP, "%SOCK1%", s1.Socket, "%IP2%", ships[1].IP, "%SOCK2%", ships[1].Socket,
		"%RWDIR%", rwDir, "%RODIR%", roDir).Replace(keysManifest)
	load := func() []*manifest.Environment {
		t.Helper()
		fsys := fstest.MapFS{"keys/app.env": {Data: []byte(keysEnvFile)}}
		repo := manifest.LoadSources(fsys, []manifest.Source{{Name: "keys/manifest.yml", Data: []byte(text)}}, manifest.Options{})
		if err := repo.Err(); err != nil {
			t.Fatalf("manifest: %v", err)
		}
		if w := repo.Warnings(); len(w) > 0 {
			t.Fatalf("manifest warnings: %v", w)
		}
		return repo.Environments
	}

	start := time.Now()
	envs := load()
	state := pool.Observe(context.Background(), envs)
	for addr, h := range state.Hosts {
		if h.Err != nil {
			t.Fatalf("observe %s: %v", addr, h.Err)
		}
	}
	p := diff.Compute(envs, state, diff.Options{Revision: "rev1"})
	if s := p.Summary(); s.Create != 4 {
		t.Fatalf("plan: %+v\n%s", s, p)
	}
	drv := docker.NewDriver(pool, envs, "rev1", nil)
	drv.CheckInterval = 200 * time.Millisecond
	if err := apply.Run(context.Background(), p, drv, apply.Options{}).Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("deployed in %s", time.Since(start).Round(time.Millisecond))

	all := inspectFull(t, s1, "all")
	src := inspectFull(t, s1, "vol-src")
	isolated := inspectFull(t, s1, "isolated")
	hostnet := inspectFull(t, s1, "hostnet")
	for _, c := range []container.InspectResponse{all, src, isolated, hostnet} {
		if !c.State.Running {
			t.Fatalf("%s is not running: %+v", c.Name, c.State)
		}
	}
	cfg, hc := all.Config, all.HostConfig

	t.Run("image", func(t *testing.T) {
		if cfg.Image != dockertest.Busybox1 || src.Config.Image != dockertest.Busybox2 {
			t.Errorf("images %q and %q, want the service's %s and vol-src's override %s", cfg.Image, src.Config.Image, dockertest.Busybox1, dockertest.Busybox2)
		}
	})
	t.Run("command", func(t *testing.T) {
		want := []string{"sh", "-c", "echo 'hello   world' > /tmp/greeting && exec httpd -f -p 8080 -h /www"}
		if diff := cmp.Diff(want, []string(cfg.Cmd)); diff != "" {
			t.Errorf("all: string command is shell-split (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"sleep", "3600"}, []string(src.Config.Cmd)); diff != "" {
			t.Errorf("vol-src: list command (-want +got):\n%s", diff)
		}
		if got := s1.Docker(t, "exec", "all", "cat", "/tmp/greeting"); got != "hello   world" {
			t.Errorf("the command ran with %q in /tmp/greeting", got)
		}
	})
	t.Run("ports", func(t *testing.T) {
		exposed := slices.Sorted(func(yield func(string) bool) {
			for p := range cfg.ExposedPorts {
				if !yield(string(p)) {
					return
				}
			}
		})
		if diff := cmp.Diff([]string{"18091/tcp", "5353/udp", "8080/tcp", "8081/tcp", "9000/tcp", "9001/tcp"}, exposed); diff != "" {
			t.Errorf("ExposedPorts (-want +got):\n%s", diff)
		}
		bindings := map[string]string{}
		for p, bs := range hc.PortBindings {
			var parts []string
			for _, b := range bs {
				parts = append(parts, b.HostIP+"|"+b.HostPort)
			}
			bindings[string(p)] = strings.Join(parts, ",")
		}
		want := map[string]string{
			"8080/tcp":  "|18090",
			"18091/tcp": "|18091",
			"8081/tcp":  s1.IP + "|18092", // the map form's host IP
			"5353/udp":  "|18093",
			"9000/tcp":  "|18094", // a range is published port by port
			"9001/tcp":  "|18095",
		}
		if diff := cmp.Diff(want, bindings); diff != "" {
			t.Errorf("PortBindings (-want +got):\n%s", diff)
		}
		// What the daemon bound: every port on the ship's address.
		for p, hostPort := range map[string]string{"8080/tcp": "18090", "18091/tcp": "18091", "8081/tcp": "18092", "5353/udp": "18093", "9000/tcp": "18094", "9001/tcp": "18095"} {
			bs := all.NetworkSettings.Ports[nat.Port(p)]
			if len(bs) != 1 || bs[0].HostIP != s1.IP || bs[0].HostPort != hostPort {
				t.Errorf("%s is bound to %+v, want %s:%s", p, bs, s1.IP, hostPort)
			}
		}
		if got := strings.TrimSpace(get(t, "http://"+s1.IP+":18090/index.html")); got != dockertest.Busybox1 {
			t.Errorf("http port answers %q", got)
		}
	})
	t.Run("env and envfile", func(t *testing.T) {
		env := map[string]string{}
		for _, kv := range cfg.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		for k, v := range map[string]string{"FROM_FILE": "file value", "OVERRIDDEN": "from-env", "PLAIN": "a b", "CONTAINER_NAME": "all"} {
			if env[k] != v {
				t.Errorf("env %s = %q, want %q", k, env[k], v)
			}
		}
	})
	t.Run("volumes", func(t *testing.T) {
		// Sorted by target; the string form has no mode (rw for Docker).
		if diff := cmp.Diff([]string{roDir + ":/mnt/ro:ro", rwDir + ":/mnt/rw"}, hc.Binds); diff != "" {
			t.Errorf("Binds (-want +got):\n%s", diff)
		}
		mounts := map[string]container.MountPoint{}
		for _, m := range all.Mounts {
			mounts[m.Destination] = m
		}
		type mnt struct {
			Type, Source, Name string
			RW                 bool
		}
		got := map[string]mnt{}
		for dst, m := range mounts {
			got[dst] = mnt{Type: string(m.Type), Name: m.Name, RW: m.RW}
			if m.Type == "bind" {
				got[dst] = mnt{Type: string(m.Type), Source: m.Source, RW: m.RW}
			}
		}
		want := map[string]mnt{
			"/mnt/rw": {Type: "bind", Source: rwDir, RW: true},
			"/mnt/ro": {Type: "bind", Source: roDir, RW: false},
			"/data":   {Type: "volume", Name: docker.VolumeName("keys", "all", "/data"), RW: true},
			"/shared": {Type: "volume", Name: docker.VolumeName("keys", "vol-src", "/shared"), RW: true}, // volumes_from
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Mounts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"vol-src"}, hc.VolumesFrom); diff != "" {
			t.Errorf("VolumesFrom (-want +got):\n%s", diff)
		}
		if got := s1.Docker(t, "exec", "all", "cat", "/mnt/ro/file"); got != "ro-content" {
			t.Errorf("/mnt/ro/file reads %q", got)
		}
		if out, err := dockerExec(s1, "all", "touch", "/mnt/ro/new"); err == nil {
			t.Errorf("/mnt/ro is writable: %s", out)
		}
		s1.Docker(t, "exec", "all", "sh", "-c", "echo written > /mnt/rw/out")
		if b, err := os.ReadFile(filepath.Join(rwDir, "out")); err != nil || string(b) != "written\n" {
			t.Errorf("/mnt/rw/out on the host: %q, %v", b, err)
		}
		s1.Docker(t, "exec", "vol-src", "sh", "-c", "echo shared > /shared/f")
		if got := s1.Docker(t, "exec", "all", "cat", "/shared/f"); got != "shared" {
			t.Errorf("volumes_from: /shared/f reads %q in all", got)
		}
	})
	t.Run("links and extra_hosts", func(t *testing.T) {
		if diff := cmp.Diff([]string{"/vol-src:/all/src"}, hc.Links); diff != "" {
			t.Errorf("Links (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"db.local:10.9.8.7", "peer:" + ships[1].IP}, sortedCopy(hc.ExtraHosts)); diff != "" {
			t.Errorf("ExtraHosts (-want +got):\n%s", diff)
		}
		hosts := hostsEntries(s1.Docker(t, "exec", "all", "cat", "/etc/hosts"))
		srcIP := src.NetworkSettings.Networks["bridge"].IPAddress
		for name, ip := range map[string]string{"db.local": "10.9.8.7", "peer": ships[1].IP, "src": srcIP, "vol-src": srcIP} {
			if hosts[name] != ip {
				t.Errorf("/etc/hosts: %s is %q, want %q", name, hosts[name], ip)
			}
		}
	})
	t.Run("user and privileges", func(t *testing.T) {
		if cfg.User != "nobody" {
			t.Errorf("User %q", cfg.User)
		}
		if got := s1.Docker(t, "exec", "all", "id", "-u"); got != "65534" {
			t.Errorf("id -u = %s, want 65534 (nobody)", got)
		}
		if !hc.Privileged || src.HostConfig.Privileged {
			t.Errorf("Privileged: all %v, vol-src %v", hc.Privileged, src.HostConfig.Privileged)
		}
		if diff := cmp.Diff([]string{"NET_ADMIN"}, capNames(hc.CapAdd)); diff != "" {
			t.Errorf("CapAdd (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"MKNOD"}, capNames(hc.CapDrop)); diff != "" {
			t.Errorf("CapDrop (-want +got):\n%s", diff)
		}
		// The daemon adds label=disable to a privileged container.
		if !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
			t.Errorf("SecurityOpt %q lacks no-new-privileges", hc.SecurityOpt)
		}
		if status := s1.Docker(t, "exec", "all", "cat", "/proc/self/status"); !strings.Contains(status, "NoNewPrivs:\t1") {
			t.Errorf("no-new-privileges is not in effect:\n%s", status)
		}
	})
	t.Run("net and hostname", func(t *testing.T) {
		for _, tc := range []struct {
			c            container.InspectResponse
			mode         string
			namedHost    bool
			wantHostname string
		}{
			{all, "bridge", false, all.ID[:12]},
			{isolated, "none", false, isolated.ID[:12]},
			{hostnet, "host", false, ""},
			{src, "default", true, "vol-src"},
		} {
			name := strings.TrimPrefix(tc.c.Name, "/")
			if string(tc.c.HostConfig.NetworkMode) != tc.mode {
				t.Errorf("%s: NetworkMode %q, want %q", name, tc.c.HostConfig.NetworkMode, tc.mode)
			}
			if tc.wantHostname != "" && tc.c.Config.Hostname != tc.wantHostname {
				t.Errorf("%s: Hostname %q, want %q", name, tc.c.Config.Hostname, tc.wantHostname)
			}
			if !tc.namedHost && tc.c.Config.Hostname == name {
				t.Errorf("%s: with net set, the hostname must not be the instance name", name)
			}
		}
		if h, _ := os.Hostname(); hostnet.Config.Hostname != h {
			t.Errorf("hostnet: Hostname %q, want the machine's %q", hostnet.Config.Hostname, h)
		}
		if got := s1.Docker(t, "exec", "isolated", "ls", "/sys/class/net"); got != "lo" {
			t.Errorf("net: none has interfaces %q", got)
		}
	})
	t.Run("restart, dns, stop_timeout", func(t *testing.T) {
		if hc.RestartPolicy.Name != "on-failure" || hc.RestartPolicy.MaximumRetryCount != 3 {
			t.Errorf("RestartPolicy %+v", hc.RestartPolicy)
		}
		if src.HostConfig.RestartPolicy.Name != "no" {
			t.Errorf("vol-src: default RestartPolicy %+v, want no", src.HostConfig.RestartPolicy)
		}
		if diff := cmp.Diff([]string{"10.0.0.53", "10.0.0.54"}, hc.DNS); diff != "" {
			t.Errorf("Dns (-want +got):\n%s", diff)
		}
		if resolv := s1.Docker(t, "exec", "all", "cat", "/etc/resolv.conf"); !strings.Contains(resolv, "nameserver 10.0.0.53\nnameserver 10.0.0.54") {
			t.Errorf("resolv.conf:\n%s", resolv)
		}
		if cfg.StopTimeout == nil || *cfg.StopTimeout != 7 {
			t.Errorf("StopTimeout %v, want 7", cfg.StopTimeout)
		}
	})
	t.Run("limits", func(t *testing.T) {
		if hc.Memory != 64<<20 || hc.MemorySwap != 128<<20 || hc.CPUShares != 512 {
			t.Errorf("Memory %d MemorySwap %d CpuShares %d, want %d %d 512", hc.Memory, hc.MemorySwap, hc.CPUShares, 64<<20, 128<<20)
		}
		// A limit the kernel does not enforce is dropped by dockerd with a
		// warning; the cgroup shows what is enforced.
		if got := s1.Docker(t, "exec", "all", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"); got != "67108864" {
			t.Errorf("memory cgroup limit %s", got)
		}
	})
	t.Run("logging and workdir", func(t *testing.T) {
		want := container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}}
		if diff := cmp.Diff(want, hc.LogConfig); diff != "" {
			t.Errorf("LogConfig (-want +got):\n%s", diff)
		}
		if cfg.WorkingDir != "/tmp/work" {
			t.Errorf("WorkingDir %q", cfg.WorkingDir)
		}
		if got := s1.Docker(t, "exec", "all", "pwd"); got != "/tmp/work" {
			t.Errorf("pwd = %q", got)
		}
	})
	t.Run("ulimits", func(t *testing.T) {
		got := map[string][2]int64{}
		for _, u := range hc.Ulimits {
			got[u.Name] = [2]int64{u.Soft, u.Hard}
		}
		if diff := cmp.Diff(map[string][2]int64{"nofile": {1024, 2048}, "nproc": {512, 512}}, got); diff != "" {
			t.Errorf("Ulimits (-want +got):\n%s", diff)
		}
		limits := s1.Docker(t, "exec", "all", "cat", "/proc/1/limits")
		for _, want := range [][]string{{"Max open files", "1024", "2048"}, {"Max processes", "512", "512"}} {
			if !hasLimit(limits, want) {
				t.Errorf("/proc/1/limits has no %q:\n%s", want, limits)
			}
		}
	})
	t.Run("labels", func(t *testing.T) {
		for k, v := range map[string]string{"team": "core", "tier": "1", label.Env: "keys", label.Instance: "all"} {
			if got, ok := cfg.Labels[k]; !ok || got != v {
				t.Errorf("all: label %s = %q (%v), want %q", k, got, ok, v)
			}
		}
		for _, k := range []string{"role.storage", "canary"} {
			if got, ok := src.Config.Labels[k]; !ok || got != "" {
				t.Errorf("vol-src: list label %s = %q (present %v), want an empty value", k, got, ok)
			}
		}
	})

	// Every key round-trips: the same manifest plans nothing.
	again := diff.Compute(load(), pool.Observe(context.Background(), envs), diff.Options{Revision: "rev1"})
	if s := again.Summary(); s.Changes() != 0 || s.Unchanged != 4 {
		t.Errorf("second plan: %+v\n%s", s, again)
	}
}

func inspectFull(t *testing.T, s *dockertest.Ship, name string) container.InspectResponse {
	t.Helper()
	var out []container.InspectResponse
	if err := json.Unmarshal([]byte(s.Docker(t, "inspect", name)), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect %s: %v (%d results)", name, err, len(out))
	}
	if out[0].Config == nil || out[0].HostConfig == nil || out[0].State == nil || out[0].NetworkSettings == nil {
		t.Fatalf("inspect %s: incomplete", name)
	}
	return out[0]
}

// dockerExec runs docker exec on the ship and returns its error instead of
// failing the test.
func dockerExec(s *dockertest.Ship, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"--host", s.Host, "exec"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// capNames strips the CAP_ prefix that some daemons add.
func capNames(caps []string) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
	}
	sort.Strings(out)
	return out
}

// hostsEntries maps each name of an /etc/hosts file to its address.
func hostsEntries(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		for _, name := range f[min(1, len(f)):] {
			m[name] = f[0]
		}
	}
	return m
}

func hasLimit(limits string, want []string) bool {
	for _, line := range strings.Split(limits, "\n") {
		if rest, ok := strings.CutPrefix(line, want[0]); ok {
			f := strings.Fields(rest)
			return len(f) >= 2 && f[0] == want[1] && f[1] == want[2]
		}
	}
	return false
}
