package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cliconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/connhelper"
	"github.com/docker/cli/cli/context/store"
	"github.com/docker/docker/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Pool holds one Docker client per daemon address, created on first use
// and reused.
type Pool struct {
	// KnownHosts is the known_hosts file that SSH tunnels check host keys
	// against; default ~/.ssh/known_hosts.
	KnownHosts string

	mu      sync.Mutex
	entries map[string]*poolEntry
	// netMu serialises creating the proxy network: Docker does not refuse
	// two networks of one name created at once.
	netMu sync.Mutex
	// memo remembers built images (see ObserveImages).
	memo imageMemo
	// caches are the ships' last lists while Follow follows their
	// events, by address.
	caches map[string]*shipCache
}

// poolEntry is the connection to one daemon. Its own lock serialises
// connecting to that daemon without holding up the other ships.
type poolEntry struct {
	mu     sync.Mutex
	c      *client.Client
	tunnel *tunnel
	closed bool // by Pool.Close: look the address up again
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{entries: map[string]*poolEntry{}} }

// Client returns the client for a ship, connecting on first use. Opening an
// SSH tunnel is bounded by the ship's timeout.
func (p *Pool) Client(ship *manifest.Ship) (*client.Client, error) {
	addr := ship.Address()
	var e *poolEntry
	for e == nil {
		p.mu.Lock()
		if p.entries == nil {
			p.entries = map[string]*poolEntry{}
		}
		e = p.entries[addr]
		if e == nil {
			e = &poolEntry{}
			p.entries[addr] = e
		}
		p.mu.Unlock()
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			e = nil
		}
	}
	defer e.mu.Unlock()
	if e.c != nil {
		return e.c, nil
	}
	c, tun, err := p.connect(ship)
	if err != nil {
		return nil, fmt.Errorf("ship %s: connect: %w", ship.Name, err)
	}
	if ship.APIVersion == "" {
		// The API version is settled before the client is shared: the
		// client would negotiate it on its first request otherwise, while
		// an event stream reads it without the lock negotiation takes.
		ctx, cancel := context.WithTimeout(context.Background(), shipTimeout(ship))
		c.NegotiateAPIVersion(ctx)
		cancel()
	}
	e.c, e.tunnel = c, tun
	return c, nil
}

// Close closes every client and tunnel. It waits for connections being
// made.
func (p *Pool) Close() error {
	p.mu.Lock()
	entries := p.entries
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		if e.c != nil {
			e.c.Close()
		}
		if e.tunnel != nil {
			e.tunnel.close()
		}
		e.c, e.tunnel, e.closed = nil, nil, true
		e.mu.Unlock()
	}
	return nil
}

func (p *Pool) connect(ship *manifest.Ship) (*client.Client, *tunnel, error) {
	opts := []client.Opt{}
	if ship.APIVersion != "" {
		opts = append(opts, client.WithVersion(ship.APIVersion))
	} else {
		opts = append(opts, client.WithAPIVersionNegotiation())
	}
	var tun *tunnel
	switch {
	case ship.Context != "":
		ctxOpts, err := p.contextOpts(ship)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, ctxOpts...)
	case ship.DockerHost != "":
		helper, err := connhelper.GetConnectionHelperWithSSHOpts(ship.DockerHost, p.sshFlags(ship))
		if err != nil {
			return nil, nil, fmt.Errorf("docker_host %s: %w", ship.DockerHost, err)
		}
		opts = append(opts, client.WithHost(helper.Host), client.WithDialContext(helper.Dialer))
	case ship.SSHTunnel != nil:
		var err error
		tun, err = p.tunnel(ship)
		if err != nil {
			return nil, nil, err
		}
		// The daemon is reached on the ship's loopback through the tunnel,
		// with TLS when the ship says so (MaestroNG then used https through
		// its tunnel too).
		tr := &http.Transport{DialContext: tun.dialContext}
		opts = append(opts, client.WithHost("tcp://127.0.0.1:"+strconv.Itoa(ship.DockerPort)))
		if (ship.TLS || ship.TLSVerify) && ship.SSHTunnel.Socket == "" {
			tc, err := tlsConfig(ship)
			if err != nil {
				tun.close()
				return nil, nil, err
			}
			// The daemon's certificate names the ship, not the loopback
			// address the tunnel ends at.
			tc.ServerName = ship.Endpoint
			tr.TLSClientConfig = tc
			opts = append(opts, client.WithScheme("https"))
		}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: tr}))
	case ship.SocketPath != "":
		opts = append(opts, client.WithHost("unix://"+ship.SocketPath))
	default:
		host := net.JoinHostPort(ship.Endpoint, strconv.Itoa(ship.DockerPort))
		if ship.TLS || ship.TLSVerify {
			tc, err := tlsConfig(ship)
			if err != nil {
				return nil, nil, err
			}
			opts = append(opts, client.WithHost("tcp://"+host), client.WithScheme("https"),
				client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}))
		} else {
			opts = append(opts, client.WithHost("tcp://"+host))
		}
	}
	// The ship's timeout bounds each short request through its context
	// (see Driver.short); streams such as pulls and logs are not bounded.
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		if tun != nil {
			tun.close()
		}
		return nil, nil, err
	}
	return c, tun, nil
}

// sshFlags are the options of the system ssh client for a docker_host
// ship: never a prompt, host keys checked strictly against the pool's
// known_hosts file (or the user's), the ship's key when it names one.
func (p *Pool) sshFlags(ship *manifest.Ship) []string {
	flags := []string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"}
	if p.KnownHosts != "" {
		flags = append(flags, "-o", "UserKnownHostsFile="+p.KnownHosts)
	}
	if ship.SSHKey != "" {
		flags = append(flags, "-i", expandHome(ship.SSHKey), "-o", "IdentitiesOnly=yes")
	}
	return flags
}

// tlsConfig builds the client TLS settings: the CA verifies the daemon when
// tls_verify is set; a client certificate is presented when given.
func tlsConfig(ship *manifest.Ship) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !ship.TLSVerify} //nolint:gosec // tls_verify: false is the user's explicit choice, as in MaestroNG
	if ship.TLSCACert != "" {
		pem, err := os.ReadFile(ship.TLSCACert)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_cert %s: no certificate found", ship.TLSCACert)
		}
		tc.RootCAs = pool
	}
	if ship.TLSCert != "" || ship.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(ship.TLSCert, ship.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// tunnel is an SSH connection to a ship through which the daemon is
// reached: its port on the ship's loopback (MaestroNG's tunnel), or its
// unix socket (as DOCKER_HOST=ssh:// does). A connection that died (sshd
// restarted, network cut) is opened again on the next dial.
type tunnel struct {
	dial func(ctx context.Context) (*ssh.Client, error)
	// network and remote are where the tunnel ends on the ship: tcp and
	// 127.0.0.1:port, or unix and the socket's path.
	network, remote string

	mu     sync.Mutex
	conn   *ssh.Client
	dead   chan struct{} // closed when conn has ended
	closed bool
	wg     sync.WaitGroup // the watchers of each conn
}

// tunnel opens an SSH connection to the ship. The host key must be in
// known_hosts.
func (p *Pool) tunnel(ship *manifest.Ship) (*tunnel, error) {
	t := ship.SSHTunnel
	key, err := os.ReadFile(expandHome(t.Key))
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", t.Key, err)
	}
	khPath := p.KnownHosts
	if khPath == "" {
		khPath = expandHome("~/.ssh/known_hosts")
	}
	hostKeys, err := knownhosts.New(khPath)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	timeout := shipTimeout(ship)
	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         timeout,
	}
	addr := net.JoinHostPort(ship.Endpoint, strconv.Itoa(t.Port))
	tun := &tunnel{network: "tcp", remote: net.JoinHostPort("127.0.0.1", strconv.Itoa(ship.DockerPort))}
	if t.Socket != "" {
		tun.network, tun.remote = "unix", t.Socket
	}
	tun.dial = func(ctx context.Context) (*ssh.Client, error) {
		c, err := sshDial(ctx, addr, cfg, timeout)
		if err != nil {
			return nil, fmt.Errorf("ssh %s@%s: %w", t.User, addr, explainHostKey(err, addr, khPath))
		}
		return c, nil
	}
	if _, _, err := tun.client(context.Background()); err != nil {
		return nil, err
	}
	return tun, nil
}

// sshDial connects and does the SSH handshake within timeout (and ctx):
// ssh.Dial bounds only the TCP connect, so a server that accepts and never
// answers would hang it for ever.
func sshDial(ctx context.Context, addr string, cfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	stop()
	if err != nil {
		conn.Close()
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("no SSH handshake within %s: %w", timeout, err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// explainHostKey turns a known_hosts rejection into a message that says
// what to do.
func explainHostKey(err error, addr, khPath string) error {
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return err
	}
	if len(ke.Want) == 0 {
		return fmt.Errorf("host key of %s is not in %s (add it, e.g. with ssh-keyscan): %w", addr, khPath, err)
	}
	return fmt.Errorf("host key of %s does not match the one in %s:%d (changed host key or man in the middle): %w",
		addr, ke.Want[0].Filename, ke.Want[0].Line, err)
}

// client returns the live SSH connection and a channel closed when it
// ends, opening a new connection when the last one has ended.
func (t *tunnel) client(ctx context.Context) (*ssh.Client, <-chan struct{}, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, errors.New("ssh tunnel closed")
	}
	if t.conn != nil {
		select {
		case <-t.dead:
			t.conn.Close()
			t.conn = nil
		default:
			return t.conn, t.dead, nil
		}
	}
	c, err := t.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	dead := make(chan struct{})
	t.wg.Add(1)
	go func() { // owned by close, which closes c and waits
		defer t.wg.Done()
		_ = c.Wait()
		close(dead)
	}()
	t.conn, t.dead = c, dead
	return c, dead, nil
}

func (t *tunnel) dialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		c, dead, err := t.client(ctx)
		if err != nil {
			return nil, err
		}
		conn, err := c.DialContext(ctx, t.network, t.remote)
		if err == nil {
			return conn, nil
		}
		if t.network == "unix" && isOpenRefused(err) {
			// sshd forwards no unix sockets (AllowStreamLocalForwarding
			// no): ask the ship's docker CLI to carry the stream, as the
			// docker CLI's ssh:// does.
			return dialStdio(c, t.remote)
		}
		select {
		case <-dead: // the SSH connection ended under us: open a new one, once
			if attempt == 0 {
				continue
			}
		default:
		}
		return nil, err
	}
}

func (t *tunnel) close() {
	t.mu.Lock()
	t.closed = true
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	t.mu.Unlock()
	t.wg.Wait()
}

func expandHome(p string) string {
	if len(p) > 1 && p[:2] == "~/" {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

// isOpenRefused reports an SSH channel the server would not open.
func isOpenRefused(err error) bool {
	var oce *ssh.OpenChannelError
	return errors.As(err, &oce)
}

// dialStdio reaches the ship's Docker socket through `docker system
// dial-stdio` run over SSH: the remote docker CLI copies the session's
// standard input and output to the socket.
func dialStdio(c *ssh.Client, socket string) (net.Conn, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("ssh session for docker system dial-stdio: %w", err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Start("DOCKER_HOST=unix://" + shellQuote(socket) + " docker system dial-stdio"); err != nil {
		s.Close()
		return nil, fmt.Errorf("docker system dial-stdio on the ship: %w", err)
	}
	return &stdioConn{session: s, in: in, out: out}, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// stdioConn is a net.Conn over an SSH session's standard streams.
type stdioConn struct {
	session *ssh.Session
	in      io.WriteCloser
	out     io.Reader
}

func (c *stdioConn) Read(p []byte) (int, error)  { return c.out.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.in.Write(p) }
func (c *stdioConn) Close() error {
	_ = c.in.Close()
	return c.session.Close()
}
func (c *stdioConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (c *stdioConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (c *stdioConn) SetDeadline(time.Time) error      { return nil }
func (c *stdioConn) SetReadDeadline(time.Time) error  { return nil }
func (c *stdioConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "docker system dial-stdio" }

// contextEndpoint is the Docker endpoint of a docker CLI context.
type contextEndpoint struct {
	Host          string `json:",omitempty"`
	SkipTLSVerify bool
}

// contextOpts are the client options of a ship given as a docker CLI
// context, read from the CLI's context store ($DOCKER_CONFIG/contexts or
// ~/.docker/contexts) as the CLI reads it: an ssh:// endpoint goes
// through the system ssh client (as docker_host does), a unix socket is
// used as is, a TCP endpoint with the context's TLS files.
func (p *Pool) contextOpts(ship *manifest.Ship) ([]client.Opt, error) {
	dir := filepath.Join(cliconfig.Dir(), "contexts")
	st := store.New(dir, store.NewConfig(func() any { return &map[string]any{} },
		store.EndpointTypeGetter("docker", func() any { return &contextEndpoint{} })))
	md, err := st.GetMetadata(ship.Context)
	if err != nil {
		return nil, fmt.Errorf("docker context %q: %w", ship.Context, err)
	}
	ep, ok := md.Endpoints["docker"].(contextEndpoint)
	if !ok || ep.Host == "" {
		return nil, fmt.Errorf("docker context %q has no Docker endpoint", ship.Context)
	}
	switch {
	case strings.HasPrefix(ep.Host, "ssh://"):
		helper, err := connhelper.GetConnectionHelperWithSSHOpts(ep.Host, p.sshFlags(ship))
		if err != nil {
			return nil, fmt.Errorf("docker context %q: %w", ship.Context, err)
		}
		return []client.Opt{client.WithHost(helper.Host), client.WithDialContext(helper.Dialer)}, nil
	case strings.HasPrefix(ep.Host, "unix://"):
		return []client.Opt{client.WithHost(ep.Host)}, nil
	}
	opts := []client.Opt{client.WithHost(ep.Host)}
	ca, _ := st.GetTLSData(ship.Context, "docker", "ca.pem")
	cert, _ := st.GetTLSData(ship.Context, "docker", "cert.pem")
	key, _ := st.GetTLSData(ship.Context, "docker", "key.pem")
	if ca == nil && cert == nil && !ep.SkipTLSVerify {
		return opts, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: ep.SkipTLSVerify} //nolint:gosec // the context asks for it
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("docker context %q: ca.pem holds no certificate", ship.Context)
		}
		tc.RootCAs = pool
	}
	if cert != nil && key != nil {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("docker context %q: client certificate: %w", ship.Context, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return append(opts, client.WithScheme("https"), client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}})), nil
}
