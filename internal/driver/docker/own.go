package docker

import (
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// The actions of this process on containers, and the events each makes
// that Follow must not take for a live change made by someone else.
var (
	stopEvents    = []events.Action{events.ActionDie, events.ActionStop}
	killEvents    = []events.Action{events.ActionDie}
	removeEvents  = []events.Action{events.ActionDie, events.ActionDestroy} // forced
	destroyEvents = []events.Action{events.ActionDestroy}                   // of a stopped container
	renameEvents  = []events.Action{events.ActionRename}
	updateEvents  = []events.Action{events.ActionUpdate}
)

// ownTTL is how long the events of an action of this process are waited
// for. An engine sends them as it acts; one that never comes (a stop of
// a container already stopped sends none) is forgotten after that.
const ownTTL = time.Minute

// ownActions are the events a ship's containers are to send because this
// process acted on them, by the reference it acted through (a container
// ID or name). Each expected event is matched once, so that a person's
// stop after the deployer's own rename of the same container is still a
// live change.
type ownActions struct {
	mu  sync.Mutex
	ref map[string]*ownAction
	// pruned is when the expectations older than ownTTL were last
	// dropped.
	pruned time.Time
}

// ownAction is what is still expected of one container.
type ownAction struct {
	events []events.Action
	at     time.Time
}

// expect records that this process is about to act on the container ref
// (an ID or a name) in a way that sends those events.
func (o *ownActions) expect(ref string, evs []events.Action, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if now.Sub(o.pruned) > ownTTL/4 {
		for r, a := range o.ref {
			if now.Sub(a.at) > ownTTL {
				delete(o.ref, r)
			}
		}
		o.pruned = now
	}
	if o.ref == nil {
		o.ref = map[string]*ownAction{}
	}
	a := o.ref[ref]
	if a == nil {
		a = &ownAction{}
		o.ref[ref] = a
	}
	a.events = append(a.events, evs...)
	a.at = now
}

// mine reports whether an event of action for the container of that ID
// and name was expected of an action of this process, and if so marks it
// seen.
func (o *ownActions) mine(id, name string, action events.Action, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ref := range [...]string{id, name} {
		a := o.ref[ref]
		if ref == "" || a == nil || now.Sub(a.at) > ownTTL {
			continue
		}
		if i := slices.Index(a.events, action); i >= 0 {
			a.events = slices.Delete(a.events, i, i+1)
			if len(a.events) == 0 {
				delete(o.ref, ref)
			}
			return true
		}
	}
	return false
}

// own returns the events the ship's containers are to send because this
// process acted on them.
func (p *Pool) own(ship *manifest.Ship) *ownActions {
	return &p.shipCache(ship.Address()).own
}

// expect records that this process is about to act on the container ref
// of the ship, which sends those events (see ownActions).
func (p *Pool) expect(ship *manifest.Ship, ref string, evs []events.Action) {
	p.own(ship).expect(ref, evs, time.Now())
}

// expect records that the step is about to act on the container ref in a
// way that sends those events.
func (t *target) expect(ref string, evs []events.Action) {
	if t.own != nil {
		t.own.expect(ref, evs, time.Now())
	}
}
