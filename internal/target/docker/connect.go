package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

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
	clients map[string]*client.Client
	tunnels []*ssh.Client
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{clients: map[string]*client.Client{}} }

// Client returns the client for a ship, connecting on first use.
func (p *Pool) Client(ship *manifest.Ship) (*client.Client, error) {
	addr := ship.Address()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	c, err := p.connect(ship)
	if err != nil {
		return nil, fmt.Errorf("ship %s: connect: %w", ship.Name, err)
	}
	p.clients[addr] = c
	return c, nil
}

// Close closes every client and tunnel.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.clients {
		c.Close()
		delete(p.clients, addr)
	}
	for _, t := range p.tunnels {
		t.Close()
	}
	p.tunnels = nil
	return nil
}

func (p *Pool) connect(ship *manifest.Ship) (*client.Client, error) {
	opts := []client.Opt{}
	if ship.APIVersion != "" {
		opts = append(opts, client.WithVersion(ship.APIVersion))
	} else {
		opts = append(opts, client.WithAPIVersionNegotiation())
	}
	switch {
	case ship.SSHTunnel != nil:
		dial, err := p.tunnel(ship)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithHost("tcp://127.0.0.1:"+strconv.Itoa(ship.DockerPort)),
			client.WithHTTPClient(&http.Client{Transport: &http.Transport{DialContext: dial}}))
	case ship.SocketPath != "":
		opts = append(opts, client.WithHost("unix://"+ship.SocketPath))
	default:
		host := net.JoinHostPort(ship.Endpoint, strconv.Itoa(ship.DockerPort))
		if ship.TLS || ship.TLSVerify {
			tc, err := tlsConfig(ship)
			if err != nil {
				return nil, err
			}
			opts = append(opts, client.WithHost("tcp://"+host), client.WithScheme("https"),
				client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}))
		} else {
			opts = append(opts, client.WithHost("tcp://"+host))
		}
	}
	// The ship's timeout bounds each short request through its context
	// (see Driver.short); streams such as pulls and logs are not bounded.
	return client.NewClientWithOpts(opts...)
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

// tunnel opens an SSH connection to the ship and returns a dialer that
// reaches the daemon's port on the ship's loopback through it. The host key
// must be in known_hosts.
func (p *Pool) tunnel(ship *manifest.Ship) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
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
	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         time.Duration(ship.Timeout * float64(time.Second)),
	}
	conn, err := ssh.Dial("tcp", net.JoinHostPort(ship.Endpoint, strconv.Itoa(t.Port)), cfg)
	if err != nil {
		return nil, fmt.Errorf("ssh %s@%s: %w", t.User, ship.Endpoint, err)
	}
	p.tunnels = append(p.tunnels, conn)
	remote := net.JoinHostPort("127.0.0.1", strconv.Itoa(ship.DockerPort))
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return conn.DialContext(ctx, "tcp", remote)
	}, nil
}

func expandHome(p string) string {
	if len(p) > 1 && p[:2] == "~/" {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}
