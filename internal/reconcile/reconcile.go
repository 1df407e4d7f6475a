// Package reconcile is the one path from desired state to live state, used
// by the CLI (apply, and plan) and by the daemon alike: lock the owner's
// environments on every ship and cluster they use, observe, plan, check
// the plan, apply it, observe again, release the locks. Owner scoping and
// the deploy lock live here, not in the callers; the daemon adds triggers,
// status and metrics around it, the CLI flags and output.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// Target is what the engine needs of the drivers.
type Target interface {
	// Observe reads the live state of every ship and cluster of envs.
	Observe(ctx context.Context, envs []*manifest.Environment) *live.State
	// Driver carries out the steps of a plan of envs.
	Driver(envs []*manifest.Environment, revision string) apply.Target
	// Mutexes are the deploy locks of the given places: each an owner's
	// environment on a host address (a ship's or a cluster's), reached
	// through the hosts envs declare.
	Mutexes(envs []*manifest.Environment, places []Place, holder lock.Holder) []lock.Mutex
}

// CachedObserver is a Target that can also observe from what it follows
// of its places (events, watches) instead of listing them, as accurate
// as the events it has received. It answers nil when what it follows
// cannot tell (then a run observes in full, under its locks).
type CachedObserver interface {
	ObserveCached(ctx context.Context, envs []*manifest.Environment) *live.State
}

// Place is an owner's environment on one host.
type Place struct {
	Key  lock.Key
	Host string
}

// Request is one run.
type Request struct {
	Owner owner.Owner
	// Envs are the valid environments loaded; Invalid describes the
	// others (they count as problems and are never pruned).
	Envs    []*manifest.Environment
	Invalid []plan.EnvChange
	// Revision is recorded on what is created.
	Revision string
	// Prune removes the owner's objects no longer desired; PruneEnvs also
	// those of environments not in Envs (only when Envs is the owner's
	// whole tree and every environment of it is valid).
	Prune, PruneEnvs bool
	// Others names environments of the repository outside this run's
	// selection (another daemon's shard): never planned nor pruned.
	// PruneGone, when set, says which environments no longer in the
	// repository PruneEnvs removes, by the manifest path and labels
	// their objects recorded (see diff.Options).
	Others    map[string]bool
	PruneGone func(path string, labels map[string]string, ok bool) bool
	// Reach are environments whose hosts are observed and reachable too,
	// though nothing of them is planned: with PruneEnvs, an environment
	// gone from the repository is then found on a ship only they still
	// use (another daemon's shard; see ShipsOf).
	Reach []*manifest.Environment
	// Adopt replaces containers without maestro-sync labels that hold an
	// instance's name (MaestroNG's) instead of reporting conflicts.
	Adopt bool
	// Select limits the run to some instances (THING arguments).
	Select func(*manifest.Environment, *manifest.Instance) bool
	// Paused names environments that are observed and planned, their
	// steps kept as pending, and never changed.
	Paused      map[string]bool
	Things      []string
	WithDeps    bool
	Concurrency int
	// Holder names this run on the locks; LockWait is how long to wait
	// for locks other runs hold (0: fail at once with a *lock.LockedError),
	// and Waiting is told when the run waits.
	Holder   lock.Holder
	LockWait time.Duration
	Waiting  func(*lock.LockedError)
	// SkipLocked locks each environment on its own: one whose lock
	// another run holds is left out of this run (Result.Locked) and the
	// others go on, as the daemon needs; without it the run takes every
	// lock or fails.
	SkipLocked bool
	// PlanFirst plans before taking any lock (from what the Target
	// follows of its places, when it is a CachedObserver), and takes the
	// locks (then observes and plans again) only when that plan changes
	// something: a run that finds nothing to do changes no lock, which
	// for a daemon following its places means no request at all.
	PlanFirst bool
	// Review sees the plan before anything is done; an error stops the
	// run with nothing applied (the CLI prints the plan, checks a saved
	// plan; the daemon counts drift).
	Review func(*plan.Plan) error
	// Progress is told of every step's progress.
	Progress func(apply.Event)
}

// Result is what a run did; valid even with an error.
type Result struct {
	Plan *plan.Plan
	// Before is the live state planned from, After the state the run
	// left (Before when nothing was applied).
	Before, After *live.State
	Apply         *apply.Result
	// Locked are the environments left out because another run holds
	// their lock (SkipLocked), with that error.
	Locked map[string]*lock.LockedError
}

// Plan observes and plans without locking or changing anything.
func Plan(ctx context.Context, t Target, req Request) (*plan.Plan, *live.State) {
	state := t.Observe(ctx, req.reach())
	return compute(req, state, nil), state
}

func compute(req Request, state *live.State, hold map[string]bool) *plan.Plan {
	p := diff.Compute(req.Envs, state, diff.Options{
		Revision: req.Revision, Owner: req.Owner.ID, Select: req.Select, Adopt: req.Adopt, Hold: hold, Paused: req.Paused,
		Prune: req.Prune, PruneEnvs: req.PruneEnvs && len(req.Invalid) == 0, Others: req.Others, PruneGone: req.PruneGone,
	})
	p.Owner = req.Owner.Name
	p.Things, p.WithDeps = req.Things, req.WithDeps
	p.Environments = append(slices.Clone(req.Invalid), p.Environments...)
	return p
}

// ErrInvalidPlan wraps a plan that breaks its invariants (a bug).
var ErrInvalidPlan = errors.New("internal error: invalid plan")

// Apply runs the whole path: lock, observe, plan, review, apply,
// observe, release. The error is a *lock.LockedError when another run
// holds a lock, wraps lock.ErrLost when a lock was lost while applying,
// wraps ErrInvalidPlan for a plan that breaks its invariants, or is
// Review's error; failed steps are in Result.Apply, not in the error.
func Apply(ctx context.Context, t Target, req Request) (*Result, error) {
	res := &Result{Apply: &apply.Result{}}
	reach := req.reach() // observed and reached: Envs and Reach
	if req.PlanFirst {
		var state *live.State
		if c, ok := t.(CachedObserver); ok {
			state = c.ObserveCached(ctx, reach)
		} else {
			state = t.Observe(ctx, reach)
		}
		if state != nil {
			if p := compute(req, state, nil); p.Validate() == nil && len(p.Mutating()) == 0 {
				res.Plan, res.Before, res.After = p, state, state
				if req.Review != nil {
					return res, req.Review(p)
				}
				return res, nil
			}
		}
	}
	runCtx, held, err := lockAll(ctx, t, req, res)
	for _, s := range held {
		defer s.Release(ctx)
	}
	if err != nil {
		return res, err
	}
	hold := map[string]bool{}
	for env := range res.Locked {
		hold[env] = true
	}

	res.Before = t.Observe(runCtx, reach)
	res.After = res.Before
	p := compute(req, res.Before, hold)
	res.Plan = p
	if err := p.Validate(); err != nil {
		return res, fmt.Errorf("%w: %w", ErrInvalidPlan, err)
	}
	// Environments no longer in the repository are locked too before
	// their objects are removed.
	if extra := removedPlaces(req.Owner, req.Envs, p); len(extra) > 0 {
		var more *lock.Set
		runCtx, more, err = lock.Acquire(runCtx, t.Mutexes(reach, extra, req.Holder), lock.Options{Wait: req.LockWait, Waiting: req.Waiting})
		if err != nil {
			return res, err
		}
		defer more.Release(ctx)
	}
	if req.Review != nil {
		if err := req.Review(p); err != nil {
			return res, err
		}
	}
	if len(p.Mutating()) == 0 {
		return res, nil
	}
	res.Apply = apply.Run(runCtx, p, t.Driver(reach, req.Revision), apply.Options{Concurrency: req.Concurrency, Progress: req.Progress})
	if cause := context.Cause(runCtx); errors.Is(cause, lock.ErrLost) {
		return res, cause
	}
	if ctx.Err() == nil {
		res.After = t.Observe(ctx, reach)
	}
	return res, nil
}

// reach is what the run observes and reaches: its environments and Reach.
func (req Request) reach() []*manifest.Environment {
	if len(req.Reach) == 0 {
		return req.Envs
	}
	return append(slices.Clone(req.Envs), req.Reach...)
}

// ShipsOf returns one environment without a name or services that holds
// every ship of envs (by address): for Request.Reach, it lets a run see
// and reach those ships without taking anything of envs for its own.
func ShipsOf(envs []*manifest.Environment) []*manifest.Environment {
	ships := map[string]*manifest.Ship{}
	for _, env := range envs {
		for _, name := range env.ShipNames() {
			s := env.Ships[name]
			ships[s.Address()] = s
		}
	}
	if len(ships) == 0 {
		return nil
	}
	return []*manifest.Environment{{Ships: ships}}
}

// lockAll takes the locks of the request's environments: all at once, or
// with SkipLocked each on its own, recording those held elsewhere in
// res.Locked.
func lockAll(ctx context.Context, t Target, req Request, res *Result) (context.Context, []*lock.Set, error) {
	opts := lock.Options{Wait: req.LockWait, Waiting: req.Waiting}
	if !req.SkipLocked {
		runCtx, held, err := lock.Acquire(ctx, t.Mutexes(req.Envs, Places(req.Owner, req.Envs), req.Holder), opts)
		if err != nil {
			return ctx, nil, err
		}
		return runCtx, []*lock.Set{held}, nil
	}
	var sets []*lock.Set
	runCtx := ctx
	for _, env := range req.Envs {
		one := []*manifest.Environment{env}
		c, held, err := lock.Acquire(runCtx, t.Mutexes(one, Places(req.Owner, one), req.Holder), opts)
		var le *lock.LockedError
		switch {
		case errors.As(err, &le):
			if res.Locked == nil {
				res.Locked = map[string]*lock.LockedError{}
			}
			res.Locked[env.Name] = le
			continue
		case err != nil:
			return runCtx, sets, err
		}
		runCtx = c
		sets = append(sets, held)
	}
	return runCtx, sets, nil
}

// Places lists every host every environment declares, its ships and its
// clusters: where the owner's lock of the environment is taken.
func Places(own owner.Owner, envs []*manifest.Environment) []Place {
	var out []Place
	for _, env := range envs {
		key := lock.Key{Owner: own, Env: env.Name}
		seen := map[string]bool{}
		add := func(host string) {
			if !seen[host] {
				seen[host] = true
				out = append(out, Place{Key: key, Host: host})
			}
		}
		for _, name := range env.ShipNames() {
			add(env.Ships[name].Address())
		}
		for _, cl := range env.Clusters {
			add(cl.Address())
		}
	}
	return out
}

// removedPlaces lists the hosts of environments the plan removes that are
// not loaded.
func removedPlaces(own owner.Owner, envs []*manifest.Environment, p *plan.Plan) []Place {
	loaded := map[string]bool{}
	for _, env := range envs {
		loaded[env.Name] = true
	}
	seen := map[Place]bool{}
	var out []Place
	for _, st := range p.Mutating() {
		pl := Place{Key: lock.Key{Owner: own, Env: st.Env}, Host: st.Host}
		if loaded[st.Env] || seen[pl] {
			continue
		}
		seen[pl] = true
		out = append(out, pl)
	}
	return out
}
