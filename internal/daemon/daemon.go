// Package daemon is the sync loop behind `maestro-sync run`: it notices new
// commits (poll, webhook, file watch), converges every environment to them,
// re-observes live state on a timer to repair drift, and reports what it did
// through logs, a status API and Prometheus metrics.
//
// One reconcile runs at a time; a trigger during a run makes one more run
// follow. Environments are isolated: an invalid manifest stalls only its
// environment until a new commit, an unreachable ship fails only the steps
// on it, and failures are retried with exponential backoff.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/history"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/notify"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
	"github.com/maestro-sync/maestro-sync/internal/shard"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// Source provides snapshots of the desired state.
type Source interface {
	Fetch(ctx context.Context) (*source.Snapshot, error)
	String() string
}

// Target observes ships and clusters, locks and carries out plans on
// them (see reconcile.Target).
type Target = reconcile.Target

// HoldStore keeps the operators' holds durably.
type HoldStore interface {
	Holds() (map[string]history.Hold, error)
	SetHold(h history.Hold) error
	ClearHold(env string) error
}

// Watcher is a Target that can follow live changes (Docker events,
// Kubernetes watches): the daemon then repairs a change made by hand as
// soon as it is told of it, and the resync is only a safety net.
type Watcher interface {
	Watch(ctx context.Context, envs []*manifest.Environment, changed func(live.Change))
	StopWatching()
}

// changeQuiet is how long after a run the changes it made itself are
// still being reported: changes reported then are taken for the run's;
// changeSettle is how long a reported change waits for the others of its
// burst (a container dies, then is destroyed) before a run starts.
const (
	changeQuiet  = time.Second
	changeSettle = 100 * time.Millisecond
	// eventCalm is how long an object's repairs are remembered: one
	// repaired again within it (a container that keeps dying) waits
	// longer each time.
	eventCalm = 10 * time.Minute
)

// Config configures a Daemon.
type Config struct {
	Source Source
	// Watch, when set, delivers an event whenever the source changes
	// (a local directory).
	Watch  func(ctx context.Context) (<-chan struct{}, error)
	Target Target
	// Poll is the interval between remote checks (default 10s, ±10%).
	Poll time.Duration
	// Resync is the interval between re-observations of live state that
	// repair drift (default 5m).
	Resync time.Duration
	// BackoffMin and BackoffMax bound the retry delay after a retryable
	// failure (defaults 2s and 5m).
	BackoffMin, BackoffMax time.Duration
	// Owner is the identity of the source (see internal/owner): the plan
	// acts only on its objects. The Target's drivers stamp it.
	Owner owner.Owner
	// Prune removes containers no longer in the manifests.
	Prune bool
	// Shard, when set, is the part of the repository this daemon deploys
	// (several daemons split one repository): it loads every manifest,
	// and observes, plans, locks, prunes and reports only the
	// environments of its shard (see internal/shard).
	Shard *shard.Shard
	// Adopt takes over containers without maestro-sync labels that hold
	// an instance's name (MaestroNG's), replacing them immutably.
	Adopt bool
	// Concurrency limits the steps applied at once (0: no limit).
	Concurrency int
	// Manifest options: the template environment and strictness.
	Manifest manifest.Options
	// Branch is the tracked branch, for webhooks: "" when the ref is a tag
	// or a commit (pushes never trigger), "*" for the remote's default
	// branch (every push triggers a check).
	Branch  string
	Logger  *slog.Logger
	Metrics *Metrics
	// History, when set, keeps the runs of each environment.
	History *history.Store
	// Holds keeps the operators' holds (pauses, rollback pins); default
	// the History. With several replicas, a store they share (see
	// leader.Holds) keeps them across a change of leader.
	Holds HoldStore
	// Notify, when set, delivers notifications: to Notifiers (commit
	// statuses, webhooks) and to each environment's auditors (its audit
	// section, run with the Audit settings).
	Notify    *notify.Dispatcher
	Notifiers []notify.Notifier
	Audit     notify.AuditOptions
	// PublicURL is the dashboard's address, for links in notifications.
	PublicURL string
	// RunEnded, when set, is called after each run, outside the daemon's
	// lock (the run command trims its memory once the runs stop).
	RunEnded func()
}

// trigger is a reason to reconcile.
type trigger struct {
	reason string // poll, resync, webhook, api, watch, event, retry, start
	at     time.Time
}

// Daemon runs the sync loop. Create it with New, start it with Run.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	wake    chan trigger

	mu      sync.Mutex
	status  Status
	pending *trigger // the earliest trigger not yet served
	ready   bool
	// leader is the identity of the replica that leads, when leader
	// election is on; follower is true while it is another one.
	leader   string
	follower bool
	// running is true during a reconcile, and changedDuring tells of
	// live changes reported meanwhile. mutFrom and mutUntil bound the
	// last run that changed something: watches report its own changes
	// too. repairs counts, per object, the runs that its live changes
	// started and that changed something, lately: a repair that keeps
	// repeating (a container that keeps dying) waits longer each time,
	// and delays no other object's. burst holds the objects whose changes
	// the next event run answers, eventTimer starts it at eventDue.
	running, changedDuring bool
	mutFrom, mutUntil      time.Time
	repairs                map[string]repairs
	burst                  map[string]bool
	eventTimer             *time.Timer
	eventDue               time.Time
	lastApply              map[string]string // env → revision fully applied
	// rollouts is the progress of staged rollouts, by environment and
	// service: shown in the status while and after they run.
	rollouts map[string]map[string]RolloutStatus
	failures int // consecutive reconciles with failed steps
	retryAt  time.Time
	lastRev  string // the revision of the last snapshot
	// awaited is the revision whose commit-to-healthy time is not yet
	// recorded, and awaitedFrom when it counts from.
	awaited     string
	awaitedFrom time.Time
	// holds are the operators' holds (pause, rollback pins), kept in the
	// history store; pinned are the environments as of their pin.
	holds  map[string]history.Hold
	pinned map[string]*manifest.Environment
	// warned are the auditors already said not to run.
	warned map[string]bool
	// holdMu orders the changes of holds (store and map together).
	holdMu sync.Mutex
	// manifests loads each revision, re-using the environments of the
	// previous one whose files did not change.
	manifests manifest.Cache
}

// New returns a daemon with the defaults filled in.
func New(cfg Config) *Daemon {
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 2 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	d := &Daemon{
		cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, wake: make(chan trigger, 1),
		lastApply: map[string]string{}, holds: map[string]history.Hold{}, pinned: map[string]*manifest.Environment{}, warned: map[string]bool{},
		status: Status{Source: cfg.Source.String(), Owner: cfg.Owner.Name, Branch: cfg.Branch, Environments: []EnvStatus{}, Shard: shardStatus(cfg.Shard)},
	}
	if cfg.Shard != nil {
		d.metrics.shard.WithLabelValues(strings.Join(cfg.Shard.Globs, ","), cfg.Shard.SelectorString()).Set(1)
	}
	if cfg.Holds == nil && cfg.History != nil {
		d.cfg.Holds = cfg.History
	}
	d.loadHolds()
	return d
}

// loadHolds reads the holds from their store, replacing those in memory.
func (d *Daemon) loadHolds() {
	if d.cfg.Holds == nil {
		return
	}
	holds, err := d.cfg.Holds.Holds()
	if err != nil {
		d.log.Error("holds: some cannot be read; the others hold", "err", err.Error())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holds = map[string]history.Hold{}
	for env, h := range holds {
		d.holds[env] = h
	}
}

// Trigger asks for a reconcile as soon as possible. It never blocks: a
// trigger during a run makes one more run follow.
func (d *Daemon) Trigger(reason string, at time.Time) {
	d.mu.Lock()
	if d.pending == nil || at.Before(d.pending.at) {
		d.pending = &trigger{reason: reason, at: at}
	}
	d.mu.Unlock()
	select {
	case d.wake <- trigger{reason: reason, at: at}:
	default:
	}
}

// Run runs the loop until ctx ends. A step in flight when ctx ends is
// finished or rolled back by the driver before Run returns.
func (d *Daemon) Run(ctx context.Context) error {
	var watch <-chan struct{}
	if d.cfg.Watch != nil {
		ch, err := d.cfg.Watch(ctx)
		if err != nil {
			return fmt.Errorf("watch %s: %w", d.cfg.Source, err)
		}
		watch = ch
	}
	poll := time.NewTimer(jitter(d.cfg.Poll)) // the start trigger runs the first reconcile
	defer poll.Stop()
	resync := time.NewTicker(d.cfg.Resync)
	defer resync.Stop()
	if w, ok := d.cfg.Target.(Watcher); ok {
		defer w.StopWatching()
	}
	// Another replica may have led until now: its holds are the ones.
	d.loadHolds()
	d.Trigger("start", time.Now())
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case <-poll.C:
			poll.Reset(jitter(d.cfg.Poll))
			d.serve(ctx, trigger{reason: "poll", at: time.Now()})
		case <-resync.C:
			d.serve(ctx, trigger{reason: "resync", at: time.Now()})
		case _, ok := <-watch:
			if !ok {
				watch = nil
				continue
			}
			d.serve(ctx, trigger{reason: "watch", at: time.Now()})
		case t := <-d.wake:
			d.serve(ctx, t)
		}
	}
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// serve runs a reconcile for t, then one more for each trigger that came
// during the run.
func (d *Daemon) serve(ctx context.Context, t trigger) {
	for ctx.Err() == nil {
		d.mu.Lock()
		if d.pending != nil {
			t, d.pending = *d.pending, nil
		}
		d.mu.Unlock()
		d.reconcile(ctx, t)
		// The wake-up of a trigger that came during the run is drained
		// before the check for it, so that one coming after the check
		// still wakes the loop.
		select {
		case <-d.wake:
		default:
		}
		d.mu.Lock()
		more := d.pending != nil
		d.mu.Unlock()
		if !more {
			return
		}
	}
}

// repairs is how many runs an object's live changes started lately, and
// when the last one ended.
type repairs struct {
	n    int
	last time.Time
}

// changed is told of a live change (by a Watcher): unless the last run
// made it, a reconcile follows at once, or after a backoff when the
// object was repaired lately.
func (d *Daemon) changed(c live.Change) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.burst == nil {
		d.burst = map[string]bool{}
	}
	if c.Object != "" {
		d.burst[c.Object] = true
	}
	if d.running {
		d.changedDuring = true // a run follows this one
		return
	}
	if !c.At.Before(d.mutFrom) && c.At.Before(d.mutUntil.Add(changeQuiet)) {
		delete(d.burst, c.Object)
		return // what the last run did itself
	}
	delay := changeSettle
	if r := d.repairs[c.Object]; r.n > 0 && time.Since(r.last) <= eventCalm {
		delay = max(delay, min(d.cfg.BackoffMax, d.cfg.BackoffMin<<min(r.n-1, 20)))
	}
	d.log.Info("live change", "change", c.What, "run_in", delay.Round(time.Millisecond).String())
	due := time.Now().Add(delay)
	switch {
	case d.eventTimer == nil:
		// One run for a burst (a container dies, then is removed).
		d.eventTimer = time.AfterFunc(delay, func() {
			d.mu.Lock()
			d.eventTimer = nil
			d.mu.Unlock()
			d.Trigger("event", time.Now())
		})
		d.eventDue = due
	case due.Before(d.eventDue):
		// An object not repaired lately does not wait for one that
		// backs off.
		d.eventTimer.Reset(delay)
		d.eventDue = due
	}
}

// countRepairs counts a run that live changes of the objects of burst
// started and that changed something, and forgets the objects calm for
// eventCalm. Called with d.mu held.
func (d *Daemon) countRepairs(burst map[string]bool, now time.Time) {
	for obj, r := range d.repairs {
		if now.Sub(r.last) > eventCalm {
			delete(d.repairs, obj)
		}
	}
	for obj := range burst {
		if d.repairs == nil {
			d.repairs = map[string]repairs{}
		}
		r := d.repairs[obj]
		d.repairs[obj] = repairs{n: r.n + 1, last: now}
	}
}

// reconcile fetches, loads, observes, plans and applies once.
func (d *Daemon) reconcile(ctx context.Context, t trigger) {
	start := time.Now()
	var burst map[string]bool
	d.mu.Lock()
	d.running, d.changedDuring = true, false
	if t.reason == "event" {
		burst, d.burst = d.burst, nil
	}
	d.mu.Unlock()
	mutated := false
	defer func() {
		d.mu.Lock()
		now := time.Now()
		d.running = false
		if mutated {
			d.mutFrom, d.mutUntil = start, now
			d.countRepairs(burst, now)
		}
		again := d.changedDuring
		d.mu.Unlock()
		if again {
			// Changes were reported during the run: its own, or someone
			// else's made after it observed. One more run tells.
			d.Trigger("event", time.Now())
		}
		if d.cfg.RunEnded != nil {
			d.cfg.RunEnded()
		}
	}()
	snap, err := d.cfg.Source.Fetch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.sourceFailed(err, start)
		return
	}
	d.mu.Lock()
	changed := snap.Revision != d.lastRev
	failing := d.failures > 0
	waiting := failing && time.Now().Before(d.retryAt)
	d.lastRev = snap.Revision
	if changed {
		d.awaited, d.awaitedFrom = snap.Revision, snap.Time
	}
	if (t.reason == "webhook" || t.reason == "api") && t.at.After(d.awaitedFrom) && d.awaited == snap.Revision {
		d.awaitedFrom = t.at // the push was announced after the commit was made
	}
	d.status.Revision, d.status.RevisionTime = snap.Revision, snap.Time
	d.status.RevisionSubject, d.status.RevisionAuthor = snap.Subject, snap.Author
	d.status.SourceError, d.status.LastCheck = "", time.Now()
	d.mu.Unlock()
	if t.reason == "poll" && !changed && (!failing || waiting) {
		return // nothing new; the resync timer re-observes live state
	}
	if t.reason == "event" && !changed && waiting {
		return // failing: the retry comes at its time, with its backoff
	}
	log := d.log.With("revision", shortRev(snap.Revision), "trigger", t.reason)

	opts := d.cfg.Manifest
	before := d.envStates()
	repo, err := d.manifests.Load(snap.Files, opts)
	if err != nil {
		d.finishRun(log, "stalled", start, fmt.Errorf("load manifests: %w", err))
		d.setAllStalled(snap.Revision, err.Error())
		d.record(t, snap, start, before, nil, nil)
		return
	}
	view := d.cfg.Shard.Split(repo)
	repo = view.Repo
	envStatus := d.invalidEnvs(repo, snap.Revision, log)
	envs := d.applyPins(ctx, snap.Revision, repo.Environments, log)
	// A pin of an environment that left the shard is another daemon's.
	envs = slices.DeleteFunc(envs, func(e *manifest.Environment) bool { return view.Others[e.Name] })
	// An environment pinned by a rollback is deployed from its pin, even
	// when its file is broken at the head of the branch.
	envStatus = slices.DeleteFunc(envStatus, func(es EnvStatus) bool {
		return slices.ContainsFunc(envs, func(e *manifest.Environment) bool { return e.Name == es.Name })
	})
	d.publish(envStatus) // stalled now, not once a long run ends
	auditors := d.auditors(envs, log)
	var invalid []plan.EnvChange
	for _, file := range repo.Invalid {
		invalid = append(invalid, plan.EnvChange{Name: file, File: file, Status: "invalid"})
	}
	req := reconcile.Request{
		Owner: d.cfg.Owner, Envs: envs, Invalid: invalid, Revision: snap.Revision,
		Prune: d.cfg.Prune, PruneEnvs: d.cfg.Prune, Others: view.Others, PruneGone: d.pruneGone(), Reach: d.reach(view), Adopt: d.cfg.Adopt, Concurrency: d.cfg.Concurrency,
		Holder: lock.Self(), SkipLocked: true, PlanFirst: true, Paused: d.paused(),
		Review: func(p *plan.Plan) error {
			if t.reason == "resync" || t.reason == "event" {
				d.countDrift(p, snap.Revision)
			}
			for _, st := range p.Mutating() {
				log.Info("planned", "env", st.Env, "instance", st.Instance, "ship", st.Ship, "action", string(st.Action), "cause", causeText(st))
			}
			d.notifyStarted(p, snap, t, auditors)
			return nil
		},
		Progress: func(e apply.Event) {
			if e.Step.Action == plan.Bake {
				d.rolloutProgress(e)
			}
			if !e.Done {
				return
			}
			result := "success"
			switch e.Status {
			case apply.Aborted:
				result = "aborted"
			case apply.Failed:
				result = "failed"
			}
			d.metrics.steps.WithLabelValues(string(e.Step.Action), result).Inc()
			attrs := []any{"env", e.Step.Env, "instance", e.Step.Instance, "ship", e.Step.Ship, "action", string(e.Step.Action),
				"cause", causeText(e.Step), "duration", e.Elapsed.Round(time.Millisecond).String(), "result", result}
			if e.Err != nil {
				log.Error("step", append(attrs, "err", e.Err.Error())...)
				return
			}
			log.Info("step", attrs...)
		},
	}
	out, err := reconcile.Apply(ctx, d.cfg.Target, req)
	if w, ok := d.cfg.Target.(Watcher); ok && ctx.Err() == nil {
		w.Watch(ctx, envs, d.changed)
	}
	if ctx.Err() != nil {
		d.recordCut(t, snap, start, out, "interrupted", ctx.Err(), auditors)
		d.finishRun(log, "interrupted", start, ctx.Err())
		return
	}
	if err != nil {
		// Another run holds a lock, a lock was lost, or the plan is
		// broken: nothing (more) was applied; try again later.
		d.recordCut(t, snap, start, out, "failed", err, auditors)
		d.finishRun(log, "failed", start, err)
		d.retryLater(ctx)
		return
	}
	p, res, state := out.Plan, out.Apply, out.After
	mutating := len(p.Mutating())
	mutated = mutating > 0
	failed := d.applyStatus(envs, p, res, state, snap, envStatus, out.Locked)
	d.record(t, snap, start, before, res, auditors)
	result := "success"
	var runErr error
	switch {
	case failed > 0:
		result, runErr = "failed", fmt.Errorf("%d environment(s) failed", failed)
	case len(repo.Invalid) > 0:
		result = "stalled"
	}
	d.mu.Lock()
	if failed == 0 && d.awaited == snap.Revision {
		// Every replacement of the revision passed its checks (possibly
		// after retries).
		if mutating > 0 && !d.awaitedFrom.IsZero() {
			d.metrics.commitToHealthy.Observe(time.Since(d.awaitedFrom).Seconds())
		}
		d.awaited = ""
	}
	d.mu.Unlock()
	d.finishRun(log, result, start, runErr, "create", p.Summary().Create, "replace", p.Summary().Replace, "remove", p.Summary().Remove)
	if failed > 0 {
		d.retryLater(ctx)
		return
	}
	d.mu.Lock()
	d.ready = true
	d.failures = 0
	d.status.NextRetry = time.Time{}
	d.mu.Unlock()
}

// pruneGone says which environments gone from the repository this daemon
// prunes: with a shard, those its shard selects as their objects
// recorded them; without, every one of the owner.
func (d *Daemon) pruneGone() func(string, map[string]string, bool) bool {
	if d.cfg.Shard == nil {
		return nil
	}
	return d.cfg.Shard.Prunes
}

// reach is what a sharded daemon that prunes observes beside its own
// environments: the ships of the others (never their environments), where
// an environment of its shard that is gone may have been the last one.
func (d *Daemon) reach(v shard.View) []*manifest.Environment {
	if d.cfg.Shard == nil || !d.cfg.Prune {
		return nil
	}
	return reconcile.ShipsOf(v.Outside)
}

// retryLater counts a failed run and schedules a retry with backoff.
func (d *Daemon) retryLater(ctx context.Context) {
	d.mu.Lock()
	d.ready = true
	d.failures++
	delay := min(d.cfg.BackoffMax, d.cfg.BackoffMin<<min(d.failures-1, 20))
	d.retryAt = time.Now().Add(delay)
	d.status.NextRetry = d.retryAt
	d.mu.Unlock()
	d.scheduleRetry(ctx, delay)
}

// scheduleRetry wakes the loop after delay. The timer goroutine ends with
// ctx or when it fired.
func (d *Daemon) scheduleRetry(ctx context.Context, delay time.Duration) {
	timer := time.AfterFunc(delay, func() { d.Trigger("retry", time.Now()) })
	context.AfterFunc(ctx, func() { timer.Stop() })
}

// sourceFailed records a failed fetch: retryable, except an untrusted
// commit, which waits for a new one.
func (d *Daemon) sourceFailed(err error, start time.Time) {
	log := d.log.With("source", d.cfg.Source.String())
	result := "source_error" // the next poll checks the source again
	if errors.Is(err, source.ErrUntrusted) {
		result = "stalled"
	}
	d.finishRun(log, result, start, err)
}

func (d *Daemon) finishRun(log *slog.Logger, result string, start time.Time, err error, attrs ...any) {
	dur := time.Since(start)
	if result != "interrupted" {
		d.metrics.runs.WithLabelValues(result).Inc()
		d.metrics.runDuration.Observe(dur.Seconds())
	}
	attrs = append(attrs, "result", result, "duration", dur.Round(time.Millisecond).String())
	d.mu.Lock()
	d.status.LastRun, d.status.LastResult = start, result
	if result == "source_error" || errors.Is(err, source.ErrUntrusted) {
		// One update, so a reader never sees the source's error
		// beside the previous run's result.
		d.status.SourceError, d.status.LastCheck = err.Error(), time.Now()
	}
	if err != nil {
		d.status.LastError = err.Error()
	} else {
		d.status.LastError = ""
	}
	d.mu.Unlock()
	if err != nil {
		log.Error("reconcile", append(attrs, "err", err.Error())...)
		return
	}
	log.Info("reconcile", attrs...)
}

// countDrift counts, per environment already applied at this revision,
// a resync that found something to change.
func (d *Daemon) countDrift(p *plan.Plan, revision string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	for _, st := range p.Mutating() {
		if !seen[st.Env] && d.lastApply[st.Env] == revision {
			seen[st.Env] = true
			d.metrics.drift.WithLabelValues(st.Env).Inc()
			d.log.Warn("drift", "env", st.Env, "revision", shortRev(revision), "instance", st.Instance, "cause", causeText(st))
		}
	}
}

func causeText(st plan.Step) string {
	if len(st.Causes) == 0 {
		return ""
	}
	s := st.Causes[0]
	if len(st.Causes) > 1 {
		s += fmt.Sprintf(" (+%d more)", len(st.Causes)-1)
	}
	return s
}

func shortRev(rev string) string { return rev[:min(12, len(rev))] }

// Ready reports whether a first reconcile has completed, or the daemon is
// a follower (ready to take over).
func (d *Daemon) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready || d.follower
}

// ErrFollower is the error of an operation asked of a replica that does
// not lead: only the leader deploys, pauses, resumes and rolls back.
var ErrFollower = errors.New("this replica does not lead")

// SetLeader records which replica leads (with leader election): self
// tells whether it is this one. A follower serves its status and
// refuses operations.
func (d *Daemon) SetLeader(identity string, self bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.leader, d.follower = identity, !self
}

// notLeading returns an ErrFollower naming the leader when this replica
// is a follower, else nil.
func (d *Daemon) notLeading() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.follower {
		return nil
	}
	if d.leader == "" {
		return fmt.Errorf("%w: no leader is known yet", ErrFollower)
	}
	return fmt.Errorf("%w: %s leads", ErrFollower, d.leader)
}

// sortEnvs orders the status by environment name.
func sortEnvs(s []EnvStatus) {
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}
