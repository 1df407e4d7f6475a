package kube

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Pool holds one client per cluster (kubeconfig and context), created on
// first use and reused by every namespace of that cluster.
type Pool struct {
	// QPS and Burst bound the requests per second of each client (client-go
	// defaults to 5 and 10, too few for a large apply). Zero means 100 and
	// 200.
	QPS   float32
	Burst int
	// Timeout bounds every single request (not a rollout); zero means 30s.
	Timeout time.Duration

	mu       sync.Mutex
	clients  map[string]*poolEntry
	caches   map[string]*nsCache // by cluster address, while Follow runs
	requests atomic.Int64
}

type poolEntry struct {
	once sync.Once
	c    kubernetes.Interface
	err  error
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{clients: map[string]*poolEntry{}} }

// Client returns the client for a cluster, connecting on first use.
func (p *Pool) Client(c *manifest.Cluster) (kubernetes.Interface, error) {
	key := c.Kubeconfig + "#" + c.Context
	p.mu.Lock()
	if p.clients == nil {
		p.clients = map[string]*poolEntry{}
	}
	e := p.clients[key]
	if e == nil {
		e = &poolEntry{}
		p.clients[key] = e
	}
	p.mu.Unlock()
	e.once.Do(func() {
		var cfg *rest.Config
		cfg, e.err = RESTConfig(c.Kubeconfig, c.Context)
		if e.err != nil {
			e.err = fmt.Errorf("cluster %s: %w", c.Name, e.err)
			return
		}
		cfg.QPS, cfg.Burst, cfg.Timeout = p.QPS, p.Burst, p.Timeout
		if cfg.QPS == 0 {
			cfg.QPS = 100
		}
		if cfg.Burst == 0 {
			cfg.Burst = 200
		}
		if cfg.Timeout == 0 {
			cfg.Timeout = 30 * time.Second
		}
		cfg.UserAgent = "maestro-sync"
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &writeTracker{pool: p, key: key, next: rt} })
		e.c, e.err = kubernetes.NewForConfig(cfg)
		if e.err != nil {
			e.err = fmt.Errorf("cluster %s: %w", c.Name, e.err)
		}
	})
	return e.c, e.err
}

// Close forgets every client. Clients hold no connection that needs
// closing beyond idle HTTP connections.
func (p *Pool) Close() {
	p.mu.Lock()
	p.clients = map[string]*poolEntry{}
	p.mu.Unlock()
}

// RESTConfig loads the client configuration of a cluster. A kubeconfig
// file is read with the given context (its current context when empty). An
// empty kubeconfig means the in-cluster configuration (the pod's
// ServiceAccount) when running in a pod and no context is asked for, else
// KUBECONFIG or ~/.kube/config as kubectl reads them.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	if kubeconfig != "" {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: expandHome(kubeconfig)}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	if context == "" {
		cfg, err := rest.InClusterConfig()
		if err == nil {
			return cfg, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster, and no usable KUBECONFIG or ~/.kube/config: %w", err)
	}
	return cfg, nil
}

func expandHome(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return path
}

// ParseAddress splits a cluster address (manifest.Cluster.Address) into
// its kubeconfig, context and namespace. It is used for steps on clusters
// no environment declares any more (removals).
func ParseAddress(addr string) (*manifest.Cluster, error) {
	rest, ok := strings.CutPrefix(addr, AddressPrefix)
	if !ok {
		return nil, fmt.Errorf("%q is not a cluster address", addr)
	}
	slash := strings.LastIndexByte(rest, '/')
	if slash < 0 {
		return nil, fmt.Errorf("%q is not a cluster address: no namespace", addr)
	}
	head, ns := rest[:slash], rest[slash+1:]
	hash := strings.LastIndexByte(head, '#')
	if hash < 0 {
		return nil, fmt.Errorf("%q is not a cluster address: no context", addr)
	}
	return &manifest.Cluster{Name: addr, Kubeconfig: head[:hash], Context: head[hash+1:], Namespace: ns}, nil
}

// AddressPrefix starts every cluster address.
const AddressPrefix = "kube://"
