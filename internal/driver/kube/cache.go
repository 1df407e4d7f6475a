package kube

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// nsCache is what Follow's informers know of one cluster namespace:
// maestro-sync's objects there, kept current by watches. While it is
// registered, Observe reads it instead of listing, so a reconcile that
// changes nothing makes no API call.
type nsCache struct {
	deployments appslisters.DeploymentNamespaceLister
	daemonSets  appslisters.DaemonSetNamespaceLister
	services    corelisters.ServiceNamespaceLister
	configMaps  corelisters.ConfigMapNamespaceLister
	ingresses   networkinglisters.IngressNamespaceLister // nil when they may not be listed
	synced      []cache.InformerSynced
	memo        factMemo

	// expect holds, by "resource/name", what the pool's own writes made
	// of objects of this namespace, until the informers have seen it.
	mu     sync.Mutex
	expect map[string]expectation
	seq    uint64 // numbers the writes recorded
	dirty  uint64 // the last write the cache cannot be checked against (a list shows it); 0 when none
}

// factMemo keeps the facts of cached workloads by UID, as long as their
// resource version stays: an object of the cache never changes in place.
type factMemo struct {
	mu    sync.Mutex
	facts map[types.UID]memoFacts
}

type memoFacts struct {
	rv   string
	seen bool // read by the last pass
	workloadFacts
}

// factsOf returns the facts of a workload, computed once per version.
// Entries of workloads no longer read are dropped by sweep.
func (m *factMemo) factsOf(o *metav1.ObjectMeta, tpl *corev1.PodTemplateSpec) workloadFacts {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.facts == nil {
		m.facts = map[types.UID]memoFacts{}
	}
	if f, ok := m.facts[o.UID]; ok && f.rv == o.ResourceVersion {
		f.seen = true
		m.facts[o.UID] = f
		return f.workloadFacts
	}
	f := memoFacts{rv: o.ResourceVersion, seen: true, workloadFacts: factsOf(o, tpl)}
	m.facts[o.UID] = f
	return f.workloadFacts
}

// sweep forgets the workloads the last pass did not read.
func (m *factMemo) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for uid, f := range m.facts {
		if !f.seen {
			delete(m.facts, uid)
			continue
		}
		f.seen = false
		m.facts[uid] = f
	}
}

// expectation is the state an object was written into.
type expectation struct {
	rv      uint64 // in the cache at this resource version or a later one
	deleted bool   // gone from the cache
	at      time.Time
}

// expectFor bounds how long an expectation is waited for: one the cache
// can never show (an object created, then deleted by someone else before
// the watch told of it) stops holding the cache up.
const expectFor = 10 * time.Second

// newNSCache reads the informers of f on namespace ns; it must be made
// before f starts.
func newNSCache(f informers.SharedInformerFactory, ns string, ingresses bool) *nsCache {
	c := &nsCache{
		deployments: f.Apps().V1().Deployments().Lister().Deployments(ns),
		daemonSets:  f.Apps().V1().DaemonSets().Lister().DaemonSets(ns),
		services:    f.Core().V1().Services().Lister().Services(ns),
		configMaps:  f.Core().V1().ConfigMaps().Lister().ConfigMaps(ns),
		expect:      map[string]expectation{},
	}
	c.synced = []cache.InformerSynced{
		f.Apps().V1().Deployments().Informer().HasSynced,
		f.Apps().V1().DaemonSets().Informer().HasSynced,
		f.Core().V1().Services().Informer().HasSynced,
		f.Core().V1().ConfigMaps().Informer().HasSynced,
	}
	if ingresses {
		c.ingresses = f.Networking().V1().Ingresses().Lister().Ingresses(ns)
		c.synced = append(c.synced, f.Networking().V1().Ingresses().Informer().HasSynced)
	}
	return c
}

// cachedResources are the resources the informers keep.
var cachedResources = map[string]bool{"deployments": true, "daemonsets": true, "services": true, "configmaps": true, "ingresses": true}

// record notes a write of the pool to an object of the namespace: rv
// is the version the write produced (0 when unknown), gone a deletion.
// labelled tells whether the written object carries the environment
// label the informers select on; unknown (a subresource's answer) counts
// as labelled when the cache holds the object.
func (c *nsCache) record(resource, name string, rv uint64, gone bool, labelled *bool) {
	if resource == "ingresses" && c.ingresses == nil {
		return // not watched
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	key := resource + "/" + name
	now := time.Now()
	switch {
	case name == "" || rv == 0 && !gone:
		c.dirty = c.seq
	case gone:
		c.expect[key] = expectation{deleted: true, at: now}
	case labelled != nil && !*labelled:
		delete(c.expect, key) // not one the informers see
	case labelled == nil && !c.has(resource, name):
		delete(c.expect, key)
	default:
		c.expect[key] = expectation{rv: rv, at: now}
	}
}

// has reports whether the cache holds the object.
func (c *nsCache) has(resource, name string) bool {
	_, ok := c.version(resource, name)
	return ok
}

// version is the resource version of the object in the cache.
func (c *nsCache) version(resource, name string) (string, bool) {
	switch resource {
	case "deployments":
		return versionOf(c.deployments.Get(name))
	case "daemonsets":
		return versionOf(c.daemonSets.Get(name))
	case "services":
		return versionOf(c.services.Get(name))
	case "configmaps":
		return versionOf(c.configMaps.Get(name))
	case "ingresses":
		if c.ingresses != nil {
			return versionOf(c.ingresses.Get(name))
		}
	}
	return "", false
}

// versionOf is the resource version of an object a lister found.
func versionOf[T metav1.Object](o T, err error) (string, bool) {
	if err != nil {
		return "", false
	}
	return o.GetResourceVersion(), true
}

// current reports whether the cache shows every write the pool made
// (forgetting those it shows), and whether it is synced at all.
func (c *nsCache) current() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty != 0 {
		return false
	}
	for key, want := range c.expect {
		if time.Since(want.at) > expectFor {
			delete(c.expect, key)
			continue
		}
		resource, name, _ := strings.Cut(key, "/")
		rv, ok := c.version(resource, name)
		switch {
		case want.deleted && ok:
			return false
		case want.deleted:
		case !ok:
			return false
		default:
			n, err := strconv.ParseUint(rv, 10, 64)
			if err != nil {
				c.dirty = c.seq
				return false
			}
			if n < want.rv {
				return false
			}
		}
		delete(c.expect, key)
	}
	return true
}

// mark is the number of the last write recorded: what a list started
// now shows.
func (c *nsCache) mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// listed forgets a write the cache could not be checked against, up to
// mark: a list started after it showed it. (What the informers have yet
// to show of the pool's writes is still waited for.)
func (c *nsCache) listed(mark uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty <= mark {
		c.dirty = 0
	}
}

// ready reports whether the informers are synced and no write is known
// that the cache cannot be checked against: only then is the cache worth
// waiting for.
func (c *nsCache) ready() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirty == 0
}

// await waits, at most wait, until the cache is current; not at all when
// it cannot become so without a list.
func (c *nsCache) await(ctx context.Context, wait time.Duration) bool {
	if !c.ready() {
		return false
	}
	deadline := time.Now().Add(wait)
	for !c.current() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// cacheWait bounds how long ObserveCached waits for the informers to show
// the pool's own writes before it lists instead.
const cacheWait = time.Second

// register makes the cache of a cluster address what Observe reads.
func (p *Pool) register(addr string, c *nsCache) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.caches == nil {
		p.caches = map[string]*nsCache{}
	}
	p.caches[addr] = c
}

// unregister stops Observe reading the cache of addr.
func (p *Pool) unregister(addr string, c *nsCache) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.caches[addr] == c {
		delete(p.caches, addr)
	}
}

func (p *Pool) cacheOf(addr string) *nsCache {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.caches[addr]
}

// expectVersion tells the cache of addr, if any, that an object of
// resource was seen at version rv (read through a watch of the pool's
// own), so that Observe waits until the cache shows it.
func (p *Pool) expectVersion(addr, resource, name, rv string) {
	c := p.cacheOf(addr)
	if c == nil {
		return
	}
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		n = 0 // unknown: list instead
	}
	c.record(resource, name, n, false, nil)
}

// Watching reports whether ObserveCached reads the cluster namespace of
// cl from Follow's watches (Follow runs and its informers are synced).
func (p *Pool) Watching(cl *manifest.Cluster) bool {
	c := p.cacheOf(cl.Address())
	return c != nil && c.ready()
}

// Requests is how many requests the pool's clients sent to API servers.
func (p *Pool) Requests() int64 { return p.requests.Load() }

// maxRecordedBody bounds the answer to a write read for its resource
// version; a larger one marks the cache for a list instead.
const maxRecordedBody = 4 << 20

// writeTracker counts a client's requests and tells the caches of what the
// client writes, so that Observe never reads a cache that has not seen
// them yet.
type writeTracker struct {
	pool *Pool
	key  string // the client's kubeconfig#context
	next http.RoundTripper
}

func (r *writeTracker) RoundTrip(req *http.Request) (*http.Response, error) {
	r.pool.requests.Add(1)
	resp, err := r.next.RoundTrip(req)
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return resp, err
	}
	ns, resource, name, sub := splitPath(req.URL.Path)
	if ns == "" || !cachedResources[resource] || (sub != "" && sub != "scale") {
		return resp, err
	}
	c := r.pool.cacheOf(AddressPrefix + r.key + "/" + ns)
	if c == nil {
		return resp, err
	}
	switch {
	case err != nil || resp.StatusCode >= 500 || req.Method == http.MethodDelete && name == "":
		// A write that failed on the way may still have happened; a
		// collection changed.
		c.record(resource, name, 0, false, nil)
		return resp, err
	case req.Method == http.MethodDelete && resp.StatusCode == http.StatusNotFound:
		c.record(resource, name, 0, true, nil) // gone already
		return resp, nil
	case resp.StatusCode >= 300:
		return resp, nil // refused: nothing was written
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxRecordedBody+1))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
	// The answer is the object as written (JSON or protobuf); a deletion
	// answers the object while finalizers keep it, else a Status.
	var rv uint64
	var labels map[string]string
	kept := false
	if rerr == nil && len(body) <= maxRecordedBody {
		if obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil); err == nil {
			if m, err := meta.Accessor(obj); err == nil && m.GetName() != "" {
				rv, _ = strconv.ParseUint(m.GetResourceVersion(), 10, 64)
				labels = m.GetLabels()
				kept = m.GetDeletionTimestamp() != nil
				if name == "" { // a create names the object in its answer
					name = m.GetName()
				}
			}
		}
	}
	if req.Method == http.MethodDelete && !kept {
		c.record(resource, name, 0, true, nil)
		return resp, nil
	}
	var labelled *bool
	if sub == "" {
		_, ok := labels[label.Env]
		labelled = &ok
	}
	c.record(resource, name, rv, false, labelled)
	return resp, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// splitPath reads the namespace, resource, name and subresource of an
// API path (/api/v1/namespaces/NS/RESOURCE[/NAME[/SUB]], or under
// /apis/GROUP/VERSION), behind any path prefix of the server's.
func splitPath(p string) (ns, resource, name, sub string) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := range parts {
		var rest []string
		switch {
		case parts[i] == "api" && len(parts) > i+1:
			rest = parts[i+2:]
		case parts[i] == "apis" && len(parts) > i+2:
			rest = parts[i+3:]
		default:
			continue
		}
		if len(rest) < 3 || rest[0] != "namespaces" {
			continue
		}
		ns, resource = rest[1], rest[2]
		if len(rest) > 3 {
			name = rest[3]
		}
		if len(rest) > 4 {
			sub = rest[4]
		}
		return ns, resource, name, sub
	}
	return "", "", "", ""
}
