package docker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"golang.org/x/sync/errgroup"

	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// shipCache keeps the last list of a ship's containers while Follow
// follows its events: the list stays what the ship has until an event
// says a container was created, started, stopped, removed, renamed,
// updated or changed health. ObserveCached reads it instead of listing,
// so an idle daemon makes no list call.
type shipCache struct {
	mu sync.Mutex
	// gen counts the events that may change a list; up is set while the
	// event stream holds, since upSince (a time before it was opened).
	gen     uint64
	up      bool
	upSince time.Time
	// list is the last list, made when gen was listGen (read before the
	// list started) and with the stream up since before it started.
	list    []live.Container
	listGen uint64
	listAt  time.Time
	valid   bool
	// drifts are the drifts of the running instance containers of the
	// kept lists, by container ID: a full list inspects only the
	// containers without one. A container's event drops its entry (its
	// configuration only changes with an update event); a broken
	// stream drops them all.
	drifts map[string]keptDrift
	// own are the events this process's own actions are to send.
	own ownActions
}

// keptDrift is a container's drift and the start of the list that
// inspected it.
type keptDrift struct {
	drift []string
	at    time.Time
}

// maxListAge bounds how long a list is kept even when no event came: an
// event stream can die silently (a half-open connection to a ship that
// went away), and the next list finds out.
const maxListAge = 5 * time.Minute

// listActions are the container events after which a list may read
// otherwise (health checks' exec events, attaches and the like do not).
var listActions = []events.Action{
	events.ActionCreate, events.ActionStart, events.ActionRestart, events.ActionStop, events.ActionDie, events.ActionKill,
	events.ActionDestroy, events.ActionRename, events.ActionUpdate, events.ActionPause, events.ActionUnPause, events.ActionOOM,
}

// changesList reports whether an event of that action may change what a
// list of containers reads.
func changesList(a events.Action) bool {
	return slices.Contains(listActions, a) || strings.HasPrefix(string(a), string(events.ActionHealthStatus))
}

func (p *Pool) shipCache(addr string) *shipCache {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.caches == nil {
		p.caches = map[string]*shipCache{}
	}
	c := p.caches[addr]
	if c == nil {
		c = &shipCache{}
		p.caches[addr] = c
	}
	return c
}

// streamUp records that the ship's event stream, opened at since, holds.
func (c *shipCache) streamUp(since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.up, c.upSince = true, since
}

// streamDown records a broken stream: nothing cached can be trusted.
func (c *shipCache) streamDown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.up, c.valid, c.list, c.drifts = false, false, nil, nil
	c.gen++
}

// changed records an event of container id that may change a list.
func (c *shipCache) changed(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.valid, c.list = false, nil
	delete(c.drifts, id)
}

// drift returns the kept drift of a container, if the stream holds and
// no event of it came since it was inspected.
func (c *shipCache) drift(id string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.drifts[id]
	if !c.up || !ok || time.Since(k.at) > maxListAge {
		return nil, false
	}
	return slices.Clip(k.drift), true
}

// cached returns the last list when nothing may have changed since.
func (c *shipCache) cached() ([]live.Container, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up || !c.valid || c.listGen != c.gen || time.Since(c.listAt) > maxListAge {
		return nil, false
	}
	return copyList(c.list), true
}

// copyList copies a list of containers so that appending to a
// container's slices never writes into another copy's.
func copyList(list []live.Container) []live.Container {
	out := slices.Clone(list)
	for i := range out {
		out[i].Drift, out[i].Ports = slices.Clip(out[i].Drift), slices.Clip(out[i].Ports)
	}
	return out
}

// mark is the state a list starting now is made in.
func (c *shipCache) mark() (gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.up
}

// store keeps a list started at mark, if the stream held since before
// the list started and no event came meanwhile.
func (c *shipCache) store(gen uint64, started time.Time, list []live.Container) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up || c.gen != gen || c.upSince.After(started) {
		return
	}
	c.list, c.listGen, c.listAt, c.valid = copyList(list), gen, started, true
	drifts := make(map[string]keptDrift, len(list))
	for _, lc := range list {
		if !inspected(lc) {
			continue
		}
		k, ok := c.drifts[lc.ID]
		if !ok || started.Sub(k.at) > maxListAge {
			k = keptDrift{drift: slices.Clip(lc.Drift), at: started}
		}
		drifts[lc.ID] = k
	}
	c.drifts = drifts
}

// ObserveCached is Observe, reading each ship whose events Follow follows
// from its last list when no event since says it changed.
func (p *Pool) ObserveCached(ctx context.Context, envs []*manifest.Environment) *live.State {
	return p.observe(ctx, envs, true)
}

// observeShip lists a ship's containers, or reads them from its cache
// when allowed and current; a list made while the ship's events are
// followed is kept for the next reads.
func (p *Pool) observeShip(ctx context.Context, ship *manifest.Ship, cached bool) ([]live.Container, error) {
	p.mu.Lock()
	c := p.caches[ship.Address()]
	p.mu.Unlock()
	if c == nil {
		list, _, err := p.list(ctx, ship, nil)
		return list, err
	}
	if cached {
		if list, ok := c.cached(); ok {
			return list, nil
		}
	}
	gen, _ := c.mark()
	started := time.Now()
	list, complete, err := p.list(ctx, ship, c.drift)
	if err == nil && complete {
		c.store(gen, started, list)
	}
	return list, err
}

// observeLimit bounds the ships observed at once: a fleet's ships are
// mostly waited for, each on its own round trips.
const observeLimit = 64

// observe is Observe, with or without the ships' caches.
func (p *Pool) observe(ctx context.Context, envs []*manifest.Environment, cached bool) *live.State {
	ships := map[string]*manifest.Ship{}
	for _, env := range envs {
		for _, name := range env.ShipNames() {
			s := env.Ships[name]
			if _, ok := ships[s.Address()]; !ok {
				ships[s.Address()] = s
			}
		}
	}
	state := &live.State{Hosts: make(map[string]*live.Host, len(ships))}
	var g errgroup.Group
	g.SetLimit(observeLimit)
	for addr, ship := range ships {
		h := &live.Host{Address: addr}
		state.Hosts[addr] = h
		g.Go(func() error {
			h.Containers, h.Err = p.observeShip(ctx, ship, cached)
			return nil
		})
	}
	_ = g.Wait()
	return state
}
