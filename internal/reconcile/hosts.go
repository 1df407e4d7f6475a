package reconcile

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

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
	RefreshImages  bool
	// LockTTL is how long a lock outlives its holder's last renewal
	// (default lock.DefaultTTL).
	LockTTL time.Duration
}

// Observe observes the ships and, when an environment declares clusters,
// the cluster namespaces, both at once.
func (h *Hosts) Observe(ctx context.Context, envs []*manifest.Environment) *live.State {
	var clusters map[string]*live.Cluster
	var wg sync.WaitGroup
	if slices.ContainsFunc(envs, func(e *manifest.Environment) bool { return len(e.Clusters) > 0 }) {
		wg.Go(func() { clusters = h.Kube.Observe(ctx, envs) })
	}
	state := h.Docker.Observe(ctx, envs)
	wg.Wait()
	state.Clusters = clusters
	return state
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
	return Router{Docker: dd, Kube: kd}
}

// Mutexes returns the lock of each place: a lock container on a ship, a
// Lease in a cluster namespace. Places on hosts no environment declares
// are left out (nothing can reach them).
func (h *Hosts) Mutexes(envs []*manifest.Environment, places []Place, holder lock.Holder) []lock.Mutex {
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
