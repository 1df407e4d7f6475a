package docker_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// connManifest is an environment with one ship, s, declared by the %SHIP%
// flow mapping, and one small instance on it.
const connManifest = `__maestro: {schema: 2}
name: conn
ships:
  s: %SHIP%
services:
  probe:
    image: maestro-test/busybox:1
    instances:
      probe-1: {ship: s, command: [sleep, "3600"], stop_timeout: 1}
`

func loadConn(t *testing.T, ship string) (*manifest.Environment, *manifest.Ship) {
	t.Helper()
	text := strings.Replace(connManifest, "%SHIP%", ship, 1)
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "conn/manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatalf("manifest: %v\n%s", err, text)
	}
	env := repo.Environments[0]
	return env, env.Ships["s"]
}

// observeErr observes the environment's ship and returns its error.
func observeErr(pool *docker.Pool, env *manifest.Environment) error {
	state := pool.Observe(context.Background(), []*manifest.Environment{env})
	for _, h := range state.Hosts {
		if h.Err != nil {
			return h.Err
		}
	}
	return nil
}

// deployProbe deploys probe-1 through the pool's connection to the ship and
// checks with the docker CLI (over the unix socket) that it runs there.
func deployProbe(t *testing.T, pool *docker.Pool, env *manifest.Environment, onShip *dockertest.Ship) {
	t.Helper()
	onShip.RemoveAll(t)
	envs := []*manifest.Environment{env}
	state := pool.Observe(context.Background(), envs)
	for addr, h := range state.Hosts {
		if h.Err != nil {
			t.Fatalf("observe %s: %v", addr, h.Err)
		}
	}
	p := diff.Compute(envs, state, diff.Options{Revision: "rev1"})
	if s := p.Summary(); s.Create != 1 {
		t.Fatalf("plan: %+v\n%s", s, p)
	}
	drv := docker.NewDriver(pool, envs, "rev1", nil)
	if err := apply.Run(context.Background(), p, drv, apply.Options{}).Err(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	c := inspectFull(t, onShip, "probe-1")
	if !c.State.Running || c.Config.Labels[label.Env] != "conn" {
		t.Fatalf("probe-1: running %v, labels %v", c.State.Running, c.Config.Labels)
	}
	// And observed back through the same connection.
	state = pool.Observe(context.Background(), envs)
	for _, h := range state.Hosts {
		if h.Err != nil || len(h.Containers) != 1 || h.Containers[0].Name != "probe-1" {
			t.Fatalf("observe after deploy: %v %+v", h.Err, h.Containers)
		}
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	t.Logf("error: %v", err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestConnectSocketPath(t *testing.T) {
	s := dockertest.Shared(t, 1)[0]
	pool := docker.NewPool()
	defer pool.Close()
	env, ship := loadConn(t, fmt.Sprintf("{ip: %s, socket_path: %s}", s.IP, s.Socket))
	deployProbe(t, pool, env, s)
	c, err := pool.Client(ship)
	if err != nil || c.DaemonHost() != "unix://"+s.Socket {
		t.Errorf("client %v: daemon host %q, want unix://%s", err, c.DaemonHost(), s.Socket)
	}

	missing := filepath.Join(t.TempDir(), "none.sock")
	env, _ = loadConn(t, fmt.Sprintf("{ip: %s, socket_path: %s, timeout: 2}", s.IP, missing))
	other := docker.NewPool()
	defer other.Close()
	wantErr(t, observeErr(other, env), "ship s", missing)
}

// TestConnectSSHSocket reaches a dockerd that listens on its unix socket
// only (Docker's default) over SSH, as DOCKER_HOST=ssh:// does: through
// sshd's unix socket forwarding, and, where sshd forwards none, through
// `docker system dial-stdio` run on the ship. A wrong host key in the
// configured known_hosts file is refused.
func TestConnectSSHSocket(t *testing.T) {
	s := dockertest.Shared(t, 1)[0]
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"unix socket forwarding", nil},
		{"docker system dial-stdio", []string{"AllowStreamLocalForwarding no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sshd := startSSHD(t, tc.extra...)
			ship := fmt.Sprintf("{ip: %s, endpoint: 127.0.0.1, ssh_tunnel: {user: root, key: %s, port: %d, socket: %s}, timeout: 5}", s.IP, sshd.key, sshd.port, s.Socket)
			env, _ := loadConn(t, ship)
			pool := docker.NewPool()
			defer pool.Close()
			pool.KnownHosts = sshd.knownHosts
			deployProbe(t, pool, env, s)
			// Which way the stream went, by sshd's own log.
			log, _ := os.ReadFile(sshd.logPath())
			if viaStdio := strings.Contains(string(log), "Starting session: command"); viaStdio != (tc.extra != nil) {
				t.Errorf("through docker system dial-stdio: %v, want %v; sshd log:\n%s", viaStdio, tc.extra != nil, log)
			}

			wrong := docker.NewPool()
			defer wrong.Close()
			wrong.KnownHosts = sshd.wrongKnownHosts
			wantErr(t, observeErr(wrong, env), "ship s", "does not match", sshd.wrongKnownHosts)
		})
	}
}

// TestConnectDockerHostSSH reaches a ship given as DOCKER_HOST is,
// docker_host: ssh://user@host:port/socket, through the system ssh client
// and `docker system dial-stdio` on the ship, with the ship's key; a host
// key that is not the configured known_hosts file's is refused.
func TestConnectDockerHostSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatal("ssh not found: install Debian's openssh-client (scripts/docker-setup.sh does)")
	}
	s := dockertest.Shared(t, 1)[0]
	sshd := startSSHD(t)
	ship := fmt.Sprintf("{ip: %s, docker_host: 'ssh://root@127.0.0.1:%d%s', ssh_key: %s, timeout: 10}", s.IP, sshd.port, s.Socket, sshd.key)
	env, _ := loadConn(t, ship)
	pool := docker.NewPool()
	defer pool.Close()
	pool.KnownHosts = sshd.knownHosts
	deployProbe(t, pool, env, s)

	for _, kh := range []string{sshd.wrongKnownHosts, sshd.emptyKnownHosts} {
		other := docker.NewPool()
		defer other.Close()
		other.KnownHosts = kh
		wantErr(t, observeErr(other, env), "ship s", "Host key verification failed")
	}
}

// TestConnectDockerContext reaches a ship named by a docker CLI context
// (made with `docker context create`, in the CLI's own store), and an
// unknown context is an error naming it.
func TestConnectDockerContext(t *testing.T) {
	s := dockertest.Shared(t, 1)[0]
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	out, err := exec.Command("docker", "context", "create", "ms-ship", "--docker", "host=unix://"+s.Socket).CombinedOutput()
	if err != nil {
		t.Fatalf("docker context create: %v\n%s", err, out)
	}
	env, ship := loadConn(t, fmt.Sprintf("{ip: %s, context: ms-ship}", s.IP))
	pool := docker.NewPool()
	defer pool.Close()
	deployProbe(t, pool, env, s)
	if c, _ := pool.Client(ship); c.DaemonHost() != "unix://"+s.Socket {
		t.Errorf("daemon host %q", c.DaemonHost())
	}

	env, _ = loadConn(t, fmt.Sprintf("{ip: %s, context: nope}", s.IP))
	other := docker.NewPool()
	defer other.Close()
	wantErr(t, observeErr(other, env), "ship s", `docker context "nope"`)
}

// TestConnectTCP reaches a dockerd that also listens on a loopback TCP
// port: directly, with pinned or negotiated API versions, and through an
// SSH tunnel.
func TestConnectTCP(t *testing.T) {
	port := dockertest.FreePort(t)
	start := time.Now()
	s := dockertest.StartShipWithArgs(t, "--host", "tcp://127.0.0.1:"+strconv.Itoa(port))
	t.Logf("TCP ship started in %s", time.Since(start).Round(time.Millisecond))
	tcpShip := fmt.Sprintf("{ip: %s, endpoint: 127.0.0.1, docker_port: %d", s.IP, port)

	t.Run("endpoint and docker_port", func(t *testing.T) {
		pool := docker.NewPool()
		defer pool.Close()
		env, ship := loadConn(t, tcpShip+"}")
		deployProbe(t, pool, env, s)
		if c, _ := pool.Client(ship); c.DaemonHost() != fmt.Sprintf("tcp://127.0.0.1:%d", port) {
			t.Errorf("daemon host %q", c.DaemonHost())
		}
	})

	t.Run("api_version", func(t *testing.T) {
		server := s.Docker(t, "version", "--format", "{{.Server.APIVersion}}")
		for _, tc := range []struct {
			setting, want string
		}{
			{"", server},       // unset: negotiated with the daemon
			{"auto", server},   // MaestroNG's spelling of the same
			{`"1.41"`, "1.41"}, // pinned
			{`"1.40"`, "1.40"}, // pinned below the daemon's, so not negotiated
		} {
			t.Run("setting "+tc.setting, func(t *testing.T) {
				pool := docker.NewPool()
				defer pool.Close()
				extra := ""
				if tc.setting != "" {
					extra = ", api_version: " + tc.setting
				}
				env, ship := loadConn(t, tcpShip+extra+"}")
				deployProbe(t, pool, env, s)
				c, _ := pool.Client(ship)
				if got := c.ClientVersion(); got != tc.want {
					t.Errorf("API version used %q, want %q", got, tc.want)
				}
			})
		}
		pool := docker.NewPool()
		defer pool.Close()
		env, _ := loadConn(t, tcpShip+`, api_version: "1.99"}`)
		wantErr(t, observeErr(pool, env), "ship s", "1.99", "too new")
	})

	t.Run("ssh_tunnel", func(t *testing.T) {
		sshd := startSSHD(t)
		tunnelShip := fmt.Sprintf("%s, ssh_tunnel: {user: root, key: %s, port: %d}, timeout: 5}", tcpShip, sshd.key, sshd.port)
		env, ship := loadConn(t, tunnelShip)

		pool := docker.NewPool()
		defer pool.Close()
		pool.KnownHosts = sshd.knownHosts
		deployProbe(t, pool, env, s)

		// sshd restarts: the tunnel is opened again on the next request.
		sshd.restart(t)
		if err := observeErr(pool, env); err != nil {
			t.Errorf("observe after sshd restarted: %v", err)
		}

		for _, tc := range []struct {
			name, knownHosts string
			want             []string
		}{
			{"wrong host key", sshd.wrongKnownHosts, []string{"ship s", "does not match", sshd.wrongKnownHosts + ":1", "key mismatch"}},
			{"unknown host", sshd.emptyKnownHosts, []string{"ship s", "is not in " + sshd.emptyKnownHosts, "key is unknown"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				pool := docker.NewPool()
				defer pool.Close()
				pool.KnownHosts = tc.knownHosts
				_, err := pool.Client(ship)
				wantErr(t, err, tc.want...)
			})
		}
		t.Run("unauthorized key", func(t *testing.T) {
			other := writeSSHKey(t, filepath.Join(t.TempDir(), "other"))
			env, _ := loadConn(t, strings.Replace(tunnelShip, sshd.key, other, 1))
			pool := docker.NewPool()
			defer pool.Close()
			pool.KnownHosts = sshd.knownHosts
			wantErr(t, observeErr(pool, env), "ship s", "ssh root@127.0.0.1", "unable to authenticate")
		})
	})
}

// TestConnectTLS reaches a dockerd that requires TLS client certificates
// (--tlsverify), directly and through an SSH tunnel.
func TestConnectTLS(t *testing.T) {
	pki := newTestPKI(t)
	port := dockertest.FreePort(t)
	start := time.Now()
	s := dockertest.StartShipWithArgs(t, "--host", "tcp://127.0.0.1:"+strconv.Itoa(port),
		"--tlsverify", "--tlscacert", pki.ca, "--tlscert", pki.serverCert, "--tlskey", pki.serverKey)
	t.Logf("TLS ship started in %s", time.Since(start).Round(time.Millisecond))
	base := fmt.Sprintf("{ip: %s, endpoint: 127.0.0.1, docker_port: %d", s.IP, port)
	verified := fmt.Sprintf("%s, tls: true, tls_verify: true, tls_ca_cert: %s, tls_cert: %s, tls_key: %s", base, pki.ca, pki.clientCert, pki.clientKey)

	t.Run("tls_verify with CA and client certificate", func(t *testing.T) {
		pool := docker.NewPool()
		defer pool.Close()
		env, ship := loadConn(t, verified+"}")
		if ship.DockerPort != port {
			t.Fatalf("docker_port %d", ship.DockerPort)
		}
		deployProbe(t, pool, env, s)
	})
	t.Run("tls without verification", func(t *testing.T) {
		pool := docker.NewPool()
		defer pool.Close()
		env, _ := loadConn(t, fmt.Sprintf("%s, tls: true, tls_cert: %s, tls_key: %s}", base, pki.clientCert, pki.clientKey))
		deployProbe(t, pool, env, s)
	})
	for _, tc := range []struct {
		name, ship string
		want       []string
	}{
		{"wrong CA", strings.Replace(verified, pki.ca, pki.otherCA, 1) + ", timeout: 5}",
			[]string{"ship s", "certificate signed by unknown authority"}},
		{"no client certificate", fmt.Sprintf("%s, tls: true, tls_verify: true, tls_ca_cert: %s, timeout: 5}", base, pki.ca),
			[]string{"ship s", "certificate"}},
		{"client certificate of another CA", strings.NewReplacer(pki.clientCert, pki.otherClientCert, pki.clientKey, pki.otherClientKey).Replace(verified) + ", timeout: 5}",
			[]string{"ship s", "certificate"}},
		{"plain HTTP to the TLS port", base + ", timeout: 5}",
			[]string{"ship s", "HTTPS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := docker.NewPool()
			defer pool.Close()
			env, _ := loadConn(t, tc.ship)
			wantErr(t, observeErr(pool, env), tc.want...)
		})
	}
	t.Run("through an ssh_tunnel", func(t *testing.T) {
		sshd := startSSHD(t)
		pool := docker.NewPool()
		defer pool.Close()
		pool.KnownHosts = sshd.knownHosts
		env, _ := loadConn(t, fmt.Sprintf("%s, ssh_tunnel: {user: root, key: %s, port: %d}}", verified, sshd.key, sshd.port))
		deployProbe(t, pool, env, s)
	})
}

// TestConnectTimeout checks that a daemon address that accepts connections
// and never answers fails within about the ship's timeout, whatever the
// connection kind, and does not hold up the pool's other ships.
func TestConnectTimeout(t *testing.T) {
	silent := silentListener(t)
	key := writeSSHKey(t, filepath.Join(t.TempDir(), "id"))
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("{ip: 127.0.0.1, endpoint: 127.0.0.1, docker_port: %d, timeout: 1", silent)
	for _, tc := range []struct {
		name, ship string
	}{
		{"tcp", base + "}"},
		{"tls", base + ", tls: true}"},
		{"ssh_tunnel", fmt.Sprintf("%s, ssh_tunnel: {user: root, key: %s, port: %d}}", base, key, silent)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := docker.NewPool()
			pool.KnownHosts = known
			env, _ := loadConn(t, tc.ship)
			begin := time.Now()
			err := withDeadline(t, 10*time.Second, func() error { return observeErr(pool, env) })
			pool.Close()
			took := time.Since(begin)
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), "ship s") {
				t.Fatalf("error %v, want one naming ship s", err)
			}
			if took < 900*time.Millisecond || took > 3*time.Second {
				t.Errorf("failed after %s, want about the ship's timeout of 1s", took)
			}
			if !strings.Contains(err.Error(), "deadline exceeded") && !strings.Contains(err.Error(), "within 1s") {
				t.Errorf("error %q does not say it timed out", err)
			}
		})
	}

	t.Run("other ships are not held up", func(t *testing.T) {
		s := dockertest.Shared(t, 1)[0]
		pool := docker.NewPool()
		defer pool.Close()
		pool.KnownHosts = known
		_, slow := loadConn(t, fmt.Sprintf("%s, timeout: 2, ssh_tunnel: {user: root, key: %s, port: %d}}", strings.TrimSuffix(base, ", timeout: 1"), key, silent))
		_, fast := loadConn(t, fmt.Sprintf("{ip: %s, socket_path: %s}", s.IP, s.Socket))
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = pool.Client(slow) })
		defer wg.Wait()
		time.Sleep(200 * time.Millisecond) // the slow ship is connecting
		begin := time.Now()
		if _, err := pool.Client(fast); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took > time.Second {
			t.Errorf("a socket ship waited %s for another ship's SSH handshake", took)
		}
	})
}

// withDeadline runs f and fails the test if it has not returned after d
// (f is then left running: what it holds cannot be released).
func withDeadline(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still waiting after %s", d)
		return nil
	}
}

// silentListener accepts TCP connections on 127.0.0.1 and never answers.
func silentListener(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// sshServer is an OpenSSH sshd on a loopback port, letting root in with a
// test key; it is what ssh_tunnel forwards through.
type sshServer struct {
	port int
	dir  string
	// key is the client's private key, authorized for root.
	key string
	// knownHosts holds the server's host key, wrongKnownHosts another key
	// for the same address, emptyKnownHosts nothing.
	knownHosts, wrongKnownHosts, emptyKnownHosts string

	bin  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startSSHD(t *testing.T, extraConfig ...string) *sshServer {
	t.Helper()
	bin := "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("sshd"); err != nil {
			t.Fatalf("sshd not found: install Debian's openssh-server (scripts/docker-setup.sh does)")
		}
	}
	// sshd refuses to start without its privilege separation directory,
	// which Debian creates at boot (tmpfiles), not at install.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &sshServer{port: dockertest.FreePort(t), dir: dir, bin: bin}
	hostKey := writeSSHKey(t, filepath.Join(dir, "host_key"))
	s.key = writeSSHKey(t, filepath.Join(dir, "id_root"))
	otherHostKey := writeSSHKey(t, filepath.Join(dir, "other_host_key"))

	clientPub := readPub(t, s.key)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := knownhosts.Normalize(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	s.knownHosts = filepath.Join(dir, "known_hosts")
	s.wrongKnownHosts = filepath.Join(dir, "known_hosts.wrong")
	s.emptyKnownHosts = filepath.Join(dir, "known_hosts.empty")
	for path, content := range map[string]string{
		s.knownHosts:      knownhosts.Line([]string{addr}, readPub(t, hostKey)) + "\n",
		s.wrongKnownHosts: knownhosts.Line([]string{addr}, readPub(t, otherHostKey)) + "\n",
		s.emptyKnownHosts: "",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers root
AllowTcpForwarding yes
StrictModes no
LogLevel VERBOSE
`, s.port, hostKey, filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys")) + strings.Join(extraConfig, "\n")
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *sshServer) logPath() string { return filepath.Join(s.dir, "sshd.log") }

func (s *sshServer) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(s.bin, "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { // owned by stop, which waits on done
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if banner(s.port) {
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(s.logPath())
			t.Fatalf("sshd exited at start:\n%s", log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	log, _ := os.ReadFile(s.logPath())
	t.Fatalf("sshd does not answer on 127.0.0.1:%d:\n%s", s.port, log)
}

// stop kills sshd and the processes it forked for each connection (they
// outlive the listener otherwise, and so would the connections).
func (s *sshServer) stop() {
	if s.cmd == nil {
		return
	}
	pids := descendants(s.cmd.Process.Pid)
	_ = s.cmd.Process.Kill()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-s.done
	s.cmd = nil
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], child)
			}
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// restart stops sshd, which ends every connection through it, and starts
// it again with the same keys on the same port.
func (s *sshServer) restart(t *testing.T) {
	t.Helper()
	s.stop()
	s.start(t)
}

// banner reports whether an SSH server greets on port.
func banner(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

// writeSSHKey writes a new ed25519 private key in OpenSSH format to path and
// returns path.
func writeSSHKey(t *testing.T, path string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readPub(t *testing.T, keyPath string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey()
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, plus another CA with its own client certificate.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	otherCA, otherClientCert, otherClientKey         string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{}
	caCert, caKey := newCA(t, dir, "ca", "maestro-sync test CA")
	p.ca = filepath.Join(dir, "ca.pem")
	p.serverCert, p.serverKey = newLeaf(t, dir, "server", caCert, caKey, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = newLeaf(t, dir, "client", caCert, caKey, x509.ExtKeyUsageClientAuth)
	otherCert, otherKey := newCA(t, dir, "other-ca", "another CA")
	p.otherCA = filepath.Join(dir, "other-ca.pem")
	p.otherClientCert, p.otherClientKey = newLeaf(t, dir, "other-client", otherCert, otherKey, x509.ExtKeyUsageClientAuth)
	return p
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newCA(t *testing.T, dir, name, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	return cert, key
}

func newLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "PRIVATE KEY", pkcs8)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
