package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// Hosts is the Target of real ships and clusters: the Docker and
// Kubernetes drivers.
type Hosts struct {
	Docker *docker.Pool
	Kube   *kube.Pool
	Auth   *docker.Auth
	// Owner is stamped on what the drivers create.
	Owner          owner.Owner
	RolloutTimeout time.Duration
	// RefreshImages pulls every image a container is created from, and
	// at each observation re-resolves the tag of every Docker instance
	// on its ship: a container whose tag now names another image drifts
	// (the plan replaces it), as with RefreshEvery.
	RefreshImages bool
	// RefreshEvery re-resolves the tags at most this often (0: only with
	// RefreshImages), so that a mutable tag (:latest, :stable) that
	// moved is deployed.
	RefreshEvery time.Duration
	// LockTTL is how long a lock outlives its holder's last renewal
	// (default lock.DefaultTTL).
	LockTTL time.Duration

	refreshMu   sync.Mutex
	lastRefresh time.Time
	watches     watches
}

// Observe observes the ships and, when an environment declares clusters,
// the cluster namespaces, both at once; when a refresh of the images is
// due, it re-resolves their tags too.
func (h *Hosts) Observe(ctx context.Context, envs []*manifest.Environment) *live.State {
	return h.observe(ctx, envs, h.Docker.Observe, h.Kube.Observe, h.refreshDue())
}

// ObserveCached is Observe reading the ships whose events Watch follows
// from their last list, unless an event said they changed since. It
// answers nil while a refresh of the images is due: only a full Observe
// can tell whether a tag moved.
func (h *Hosts) ObserveCached(ctx context.Context, envs []*manifest.Environment) *live.State {
	if h.refreshPending() {
		return nil
	}
	return h.observe(ctx, envs, h.Docker.ObserveCached, h.Kube.ObserveCached, false)
}

func (h *Hosts) observe(ctx context.Context, envs []*manifest.Environment,
	ships func(context.Context, []*manifest.Environment) *live.State,
	kube func(context.Context, []*manifest.Environment) map[string]*live.Cluster, refresh bool) *live.State {
	var clusters map[string]*live.Cluster
	var wg sync.WaitGroup
	if slices.ContainsFunc(envs, func(e *manifest.Environment) bool { return len(e.Clusters) > 0 }) {
		wg.Go(func() { clusters = kube(ctx, envs) })
	}
	state := ships(ctx, envs)
	h.Docker.ObserveImages(ctx, envs, state, h.Auth)
	if refresh {
		h.movedImages(ctx, envs, state)
	}
	wg.Wait()
	state.Clusters = clusters
	return state
}

// refreshDue reports whether tags are to be re-resolved now, and if so
// counts the next refresh from now.
func (h *Hosts) refreshDue() bool {
	h.refreshMu.Lock()
	defer h.refreshMu.Unlock()
	if !h.refreshPendingLocked() {
		return false
	}
	h.lastRefresh = time.Now()
	return true
}

// refreshPending reports whether tags are to be re-resolved now.
func (h *Hosts) refreshPending() bool {
	h.refreshMu.Lock()
	defer h.refreshMu.Unlock()
	return h.refreshPendingLocked()
}

func (h *Hosts) refreshPendingLocked() bool {
	return h.RefreshImages || h.RefreshEvery > 0 && time.Since(h.lastRefresh) >= h.RefreshEvery
}

// movedImages pulls the image of every Docker instance on its ship (once
// per ship and image) and marks as drift each running container whose
// image is no longer what its tag names. A ship or registry that cannot
// be reached marks nothing: the next refresh tries again.
func (h *Hosts) movedImages(ctx context.Context, envs []*manifest.Environment, state *live.State) {
	drv := docker.NewDriver(h.Docker, envs, "", h.Auth)
	drv.Owner = h.Owner
	pulls := map[string]docker.Ref{}
	for _, env := range envs {
		for _, in := range env.Instances() {
			ship := env.Ships[in.Ship]
			if ship == nil {
				continue
			}
			key := ship.Address() + "|" + in.Image
			if _, ok := pulls[key]; !ok {
				pulls[key] = docker.Ref{Env: env, In: in, Owner: h.Owner.ID}
			}
		}
	}
	ids := map[string]string{}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(8)
	for key, r := range pulls {
		g.Go(func() error {
			if drv.Pull(ctx, r, func(string) {}) != nil {
				return nil
			}
			if id, err := h.Docker.ImageID(ctx, r); err == nil && id != "" {
				mu.Lock()
				ids[key] = id
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, env := range envs {
		for _, in := range env.Instances() {
			ship := env.Ships[in.Ship]
			if ship == nil {
				continue
			}
			want := ids[ship.Address()+"|"+in.Image]
			host := state.Host(ship.Address())
			if want == "" || host == nil {
				continue
			}
			for i := range host.Containers {
				c := &host.Containers[i]
				if c.Name == in.Name && c.Env() == env.Name && c.Running() && c.ImageID != "" && c.ImageID != want {
					c.Drift = append(c.Drift, fmt.Sprintf("image: %s is now %s, the container runs %s", in.Image, shortImageID(want), shortImageID(c.ImageID)))
				}
			}
		}
	}
}

// shortImageID is an image ID without its algorithm, 12 digits long.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

// Driver returns the drivers of envs behind one router.
func (h *Hosts) Driver(envs []*manifest.Environment, revision string) apply.Target {
	kd := kube.NewDriver(h.Kube, envs, revision)
	kd.RolloutTimeout = h.RolloutTimeout
	kd.Owner = h.Owner
	dd := docker.NewDriver(h.Docker, envs, revision, h.Auth)
	dd.Owner = h.Owner
	dd.RefreshImages = h.RefreshImages
	dd.LockTTL = h.LockTTL
	kd.Pushed = dd.Pushed // a cluster service built in this run runs it by digest
	return Router{Docker: dd, Kube: kd}
}

// Mutexes returns the lock of each place: a lock container on a ship, a
// Lease in a cluster namespace. Places on hosts no environment declares
// are left out (nothing can reach them).
func (h *Hosts) Mutexes(envs []*manifest.Environment, places []Place, holder lock.Holder) []lock.Mutex {
	ships, clusters := hostsOf(envs)
	var out []lock.Mutex
	for _, p := range places {
		switch {
		case ships[p.Host] != nil:
			out = append(out, h.Docker.Mutex(ships[p.Host], p.Key, holder, h.LockTTL))
		case clusters[p.Host] != nil:
			out = append(out, h.Kube.Mutex(clusters[p.Host], p.Key, holder, h.LockTTL))
		}
	}
	return out
}

// Router sends each step to the driver of its host: cluster addresses
// (kube://) to the Kubernetes driver, the others to the Docker driver.
type Router struct {
	Docker, Kube apply.Target
}

// Apply carries out one step.
func (r Router) Apply(ctx context.Context, st plan.Step, progress func(string)) error {
	if strings.HasPrefix(st.Host, kube.AddressPrefix) {
		return r.Kube.Apply(ctx, st, progress)
	}
	return r.Docker.Apply(ctx, st, progress)
}

// hostsOf returns the ships and clusters envs declare, by address: the
// first of each address, in ship name order.
func hostsOf(envs []*manifest.Environment) (map[string]*manifest.Ship, map[string]*manifest.Cluster) {
	ships := map[string]*manifest.Ship{}
	clusters := map[string]*manifest.Cluster{}
	for _, env := range envs {
		for _, name := range env.ShipNames() {
			if s := env.Ships[name]; ships[s.Address()] == nil {
				ships[s.Address()] = s
			}
		}
		for _, cl := range env.Clusters {
			if clusters[cl.Address()] == nil {
				clusters[cl.Address()] = cl
			}
		}
	}
	return ships, clusters
}
