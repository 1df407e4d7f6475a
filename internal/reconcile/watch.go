package reconcile

import (
	"context"
	"sync"

	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// watches are the event streams Hosts follows: one per ship address and
// per cluster namespace of the environments last given to Watch.
type watches struct {
	mu      sync.Mutex
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
}

// Watch follows the live state of every ship (its Docker events) and
// cluster namespace (watches on maestro-sync's objects) of envs, calling
// changed when something of ours changed there, until ctx ends or
// StopWatching. It may be called again with other environments: the
// streams of places no longer named stop, new ones start.
func (h *Hosts) Watch(ctx context.Context, envs []*manifest.Environment, changed func(live.Change)) {
	ships, clusters := hostsOf(envs)
	w := &h.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running == nil {
		w.running = map[string]context.CancelFunc{}
	}
	for addr, stop := range w.running {
		if ships[addr] == nil && clusters[addr] == nil {
			stop()
			delete(w.running, addr)
		}
	}
	start := func(addr string, follow func(ctx context.Context)) {
		if _, ok := w.running[addr]; ok || ctx.Err() != nil {
			return
		}
		wctx, stop := context.WithCancel(ctx)
		w.running[addr] = stop
		w.wg.Go(func() { follow(wctx) })
	}
	for addr, s := range ships {
		start(addr, func(ctx context.Context) { h.Docker.Follow(ctx, s, h.Owner.ID, changed) })
	}
	for addr, cl := range clusters {
		start(addr, func(ctx context.Context) { h.Kube.Follow(ctx, cl, h.Owner.ID, changed) })
	}
}

// StopWatching stops every stream Watch started and waits for them.
func (h *Hosts) StopWatching() {
	w := &h.watches
	w.mu.Lock()
	for addr, stop := range w.running {
		stop()
		delete(w.running, addr)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
