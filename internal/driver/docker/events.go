package docker

import (
	"context"
	"slices"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// changeActions are the container events that can make live state differ
// from what was applied: a container gone, stopped or dead, renamed, its
// resources updated, paused, or unhealthy.
var changeActions = []events.Action{
	events.ActionDie, events.ActionStop, events.ActionDestroy, events.ActionRename, events.ActionUpdate,
	events.ActionPause, events.ActionOOM, events.ActionHealthStatusUnhealthy,
}

// Follow follows the ship's Docker event stream of containers, and calls
// changed for each event of a container with maestro-sync's labels of the
// owner with that ID (or of none: made before owners) whose action
// changes it (what happened, and when the engine says it did), until ctx
// ends; the events of the pool's own actions are not changes (see
// ownActions). Every event that may change a list of the ship's containers (any
// container's, ours or not) also tells the ship's cache, which
// ObserveCached reads while the stream holds. When the stream breaks (the
// ship or its daemon restarted), it reconnects with backoff and calls
// changed once more: what happened meanwhile is unknown, so live state is
// to be listed again.
func (p *Pool) Follow(ctx context.Context, ship *manifest.Ship, owner string, changed func(live.Change)) {
	// Every container event that may change a list (of any container: a
	// foreign one can hold an instance's name); the engine matches
	// "health_status" with every health status.
	args := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", string(events.ActionHealthStatus)))
	for _, a := range listActions {
		args.Add("event", string(a))
	}
	cache := p.shipCache(ship.Address())
	defer cache.streamDown()
	backoff := time.Second
	broken := false
	for ctx.Err() == nil {
		c, err := p.Client(ship)
		if err == nil {
			opened := time.Now()
			msgs, errs := c.Events(ctx, events.ListOptions{Filters: args})
			err = consume(ctx, ship, owner, msgs, errs, cache, changed, func() {
				// Held for a second: subscribed by now. Only lists
				// started from here on are kept.
				cache.streamUp(time.Now())
				if broken {
					changed(live.Change{What: "ship " + ship.Name + ": events followed again after a break", At: time.Now()})
				}
				broken = false
			})
			cache.streamDown()
			if time.Since(opened) > time.Minute {
				backoff = time.Second // it worked for a while
			}
		}
		if ctx.Err() != nil {
			return
		}
		broken = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// consume passes the owner's events on until the stream ends; up is
// called once the stream has held for a second.
func consume(ctx context.Context, ship *manifest.Ship, owner string, msgs <-chan events.Message, errs <-chan error,
	cache *shipCache, changed func(live.Change), up func()) error {
	held := time.NewTimer(time.Second)
	defer held.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case <-held.C:
			up()
		case m := <-msgs:
			if changesList(m.Action) {
				cache.changed(m.Actor.ID)
			}
			attrs := m.Actor.Attributes
			if _, ours := attrs[label.Env]; !ours || !slices.Contains(changeActions, m.Action) {
				continue
			}
			if o := attrs[label.Owner]; o != "" && o != owner {
				continue // another repository's container on a shared ship
			}
			if cache.own.mine(m.Actor.ID, attrs["name"], m.Action, time.Now()) {
				continue // what this process did itself
			}
			at := time.Unix(0, m.TimeNano)
			if m.TimeNano == 0 {
				at = time.Now()
			}
			// The instance's label stays when the container is renamed.
			object := attrs[label.Instance]
			if object == "" {
				object = attrs["name"]
			}
			changed(live.Change{
				Object: "ship " + ship.Name + ": " + attrs[label.Env] + "/" + object,
				What:   "ship " + ship.Name + ": container " + attrs["name"] + " " + string(m.Action),
				At:     at,
			})
		}
	}
}
