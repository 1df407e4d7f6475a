package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/history"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/notify"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// envStates returns each environment's state and desired revision in the
// status, before a run changes them.
func (d *Daemon) envStates() map[string]EnvStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]EnvStatus, len(d.status.Environments))
	for _, es := range d.status.Environments {
		out[es.Name] = es
	}
	return out
}

// runResult is a history run's result for an environment state.
func runResult(state string) string {
	switch state {
	case "synced", "pinned":
		return "success"
	}
	return state
}

// record adds to the history, per environment, the run that just ended
// when it changed something, failed, or changed the environment's state
// or desired revision: a resync or poll that finds nothing to do is not a
// run worth keeping.
func (d *Daemon) record(t trigger, snap *source.Snapshot, start time.Time, before map[string]EnvStatus, res *apply.Result, auditors map[string][]notify.Notifier) {
	steps, _ := runSteps(res)
	finished := time.Now()
	for i, es := range d.Status().Environments {
		prev, seen := before[es.Name]
		// After a restart (nothing seen yet), only a failure is news.
		changed := seen && (prev.State != es.State || prev.DesiredRevision != es.DesiredRevision) ||
			!seen && (es.State == "failed" || es.State == "stalled")
		retried := seen && prev.State == "failed" && es.State == "failed" && prev.DesiredRevision == es.DesiredRevision &&
			slices.Equal(prev.Errors, es.Errors)
		if len(steps[es.Name]) == 0 && !changed || retried {
			continue // nothing new; a failure retried with the same errors was recorded
		}
		targets := targetsOf(steps[es.Name])
		if d.cfg.History == nil {
			d.notifyOutcome(es, prev, 0, targets, snap, t, auditors)
			continue
		}
		r := history.Run{Env: es.Name, Trigger: t.reason, Revision: cmp.Or(es.DesiredRevision, snap.Revision),
			Started: start, Finished: finished, Result: runResult(es.State), Errors: es.Errors, Steps: steps[es.Name]}
		if r.Revision == snap.Revision {
			r.Subject, r.Author = snap.Subject, snap.Author
		}
		run, err := d.cfg.History.Add(r)
		if err != nil {
			d.log.Error("history", "env", es.Name, "err", err.Error())
		}
		d.notifyOutcome(es, prev, run.ID, targets, snap, t, auditors)
		if err != nil {
			continue
		}
		d.mu.Lock()
		if i < len(d.status.Environments) && d.status.Environments[i].Name == es.Name {
			d.status.Environments[i].LastRunID = run.ID
		}
		d.mu.Unlock()
	}
}

// runSteps groups the mutating steps of a run by environment, as the
// history keeps them, with the environments in the order they come.
func runSteps(res *apply.Result) (map[string][]history.Step, []string) {
	steps := map[string][]history.Step{}
	var envs []string
	if res == nil {
		return steps, nil
	}
	for _, o := range res.Outcomes {
		if !o.Step.Action.Mutates() {
			continue
		}
		hs := history.Step{Action: string(o.Step.Action), Service: o.Step.Service, Instance: o.Step.Instance,
			Ship: o.Step.Ship, Cause: causeText(o.Step), Result: outcomeResult(o), Duration: o.Duration}
		if o.Err != nil {
			hs.Error = o.Err.Error()
		}
		if _, ok := steps[o.Step.Env]; !ok {
			envs = append(envs, o.Step.Env)
		}
		steps[o.Step.Env] = append(steps[o.Step.Env], hs)
	}
	return steps, envs
}

// targetsOf names the instances the steps change, once each.
func targetsOf(steps []history.Step) []string {
	var out []string
	for _, st := range steps {
		out = addTarget(out, plan.Action(st.Action), st.Instance)
	}
	return out
}

// addTarget adds an instance a step changes to names: a bake step waits
// on a batch and changes none.
func addTarget(names []string, a plan.Action, instance string) []string {
	if instance == "" || a == plan.Bake || slices.Contains(names, instance) {
		return names
	}
	return append(names, instance)
}

// outcomeResult names a step's outcome as the history does.
func outcomeResult(o apply.Outcome) string {
	switch {
	case o.Aborted:
		return "aborted"
	case o.Err != nil:
		return "failed"
	}
	return "success"
}

// ErrNoHistory is returned by Pause and Resume when the daemon keeps no
// history store, where holds live.
var ErrNoHistory = errors.New("the daemon keeps no history (--data-dir): pause needs it to survive restarts")

// paused returns the paused environments.
func (d *Daemon) paused() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]bool{}
	for env, h := range d.holds {
		if h.Paused {
			out[env] = true
		}
	}
	return out
}

// hold returns the hold on env.
func (d *Daemon) hold(env string) (history.Hold, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.holds[env]
	return h, ok
}

// Pause pauses env: from the next run on, it is observed and its pending
// changes shown, but nothing of it is changed, until Resume. The pause is
// stored, so it outlives restarts; the run it triggers records it in the
// history.
func (d *Daemon) Pause(env, reason string) (history.Hold, error) {
	if err := d.notLeading(); err != nil {
		return history.Hold{}, err
	}
	if d.cfg.Holds == nil {
		return history.Hold{}, ErrNoHistory
	}
	h := history.Hold{Env: env, Paused: true, Since: time.Now().UTC(), Reason: reason}
	d.holdMu.Lock()
	defer d.holdMu.Unlock()
	if err := d.cfg.Holds.SetHold(h); err != nil {
		return history.Hold{}, err
	}
	d.mu.Lock()
	d.holds[env] = h
	d.mu.Unlock()
	d.log.Info("paused", "env", env, "reason", reason)
	d.Trigger("pause", time.Now())
	return h, nil
}

// Resume lifts the hold on env; the next run (triggered now) deploys it.
func (d *Daemon) Resume(env string) error {
	if err := d.notLeading(); err != nil {
		return err
	}
	if d.cfg.Holds == nil {
		return ErrNoHistory
	}
	d.holdMu.Lock()
	defer d.holdMu.Unlock()
	if err := d.cfg.Holds.ClearHold(env); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.holds, env)
	delete(d.pinned, env)
	d.mu.Unlock()
	d.log.Info("resumed", "env", env)
	d.Trigger("resume", time.Now())
	return nil
}

// Known reports whether env is an environment of the status.
func (d *Daemon) Known(env string) bool { return d.previous(env).Name != "" }

// Revisions is a source that reads earlier revisions (the Git source).
type Revisions interface {
	Revision(ctx context.Context, rev string) (*source.Snapshot, error)
}

// ErrRollback marks a rollback request that cannot be carried out: no
// such revision, no such environment in it, an invalid manifest there.
var ErrRollback = errors.New("rollback")

// Rollback pins env to an earlier revision rev: from the next run on (run
// now), the environment is deployed as it was at rev, and held there
// until Resume or until a new commit arrives. The pin is stored, so it
// outlives restarts.
func (d *Daemon) Rollback(ctx context.Context, env, rev, reason string) (history.Hold, error) {
	if err := d.notLeading(); err != nil {
		return history.Hold{}, err
	}
	if d.cfg.Holds == nil {
		return history.Hold{}, ErrNoHistory
	}
	src, ok := d.cfg.Source.(Revisions)
	if !ok {
		return history.Hold{}, fmt.Errorf("%w: %s has no earlier revisions (rollback --to needs a Git source)", ErrRollback, d.cfg.Source)
	}
	snap, err := src.Revision(ctx, rev)
	if err != nil {
		return history.Hold{}, fmt.Errorf("%w: %w", ErrRollback, err)
	}
	pinned, err := d.loadPinned(snap, env)
	if err != nil {
		return history.Hold{}, err
	}
	d.mu.Lock()
	head := d.status.Revision
	d.mu.Unlock()
	h := history.Hold{Env: env, Revision: snap.Revision, Head: head, Since: time.Now().UTC(), Reason: reason}
	d.holdMu.Lock()
	defer d.holdMu.Unlock()
	if err := d.cfg.Holds.SetHold(h); err != nil {
		return history.Hold{}, err
	}
	d.mu.Lock()
	d.holds[env] = h
	d.pinned[env] = pinned
	d.mu.Unlock()
	d.log.Info("rollback", "env", env, "to", shortRev(snap.Revision), "head", shortRev(head), "reason", reason)
	d.Trigger("rollback", time.Now())
	return h, nil
}

// loadPinned loads env as it is in snap, with its revision recorded.
func (d *Daemon) loadPinned(snap *source.Snapshot, env string) (*manifest.Environment, error) {
	repo, err := manifest.Load(snap.Files, d.cfg.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: revision %s: %w", ErrRollback, shortRev(snap.Revision), err)
	}
	for _, e := range repo.Environments {
		if e.Name == env {
			e.Revision = snap.Revision
			return e, nil
		}
	}
	for _, diag := range repo.Diagnostics {
		if diag.Severity == manifest.SeverityError && d.envNameOf(diag.File) == env {
			return nil, fmt.Errorf("%w: environment %s is invalid at revision %s: %s", ErrRollback, env, shortRev(snap.Revision), diag.Error())
		}
	}
	return nil, fmt.Errorf("%w: no environment %s at revision %s", ErrRollback, env, shortRev(snap.Revision))
}

// applyPins replaces, in envs loaded at head, each environment pinned by a
// rollback with its pinned version. A pin ends when head moved past the
// revision it was placed at.
func (d *Daemon) applyPins(ctx context.Context, head string, envs []*manifest.Environment, log *slog.Logger) []*manifest.Environment {
	d.mu.Lock()
	var pins []history.Hold
	for _, h := range d.holds {
		if h.Revision != "" {
			pins = append(pins, h)
		}
	}
	d.mu.Unlock()
	if len(pins) == 0 {
		return envs
	}
	out := slices.Clone(envs)
	for _, h := range pins {
		if h.Head != head {
			d.endPin(h, head, log)
			continue
		}
		d.mu.Lock()
		pinned := d.pinned[h.Env]
		d.mu.Unlock()
		if pinned == nil {
			// After a restart: read the revision again.
			src, ok := d.cfg.Source.(Revisions)
			if !ok {
				log.Error("rollback: the source has no earlier revisions", "env", h.Env)
				continue
			}
			snap, err := src.Revision(ctx, h.Revision)
			if err == nil {
				pinned, err = d.loadPinned(snap, h.Env)
			}
			if err != nil {
				log.Error("rollback: cannot load the pinned revision; the environment follows the branch", "env", h.Env, "err", err.Error())
				continue
			}
			d.mu.Lock()
			d.pinned[h.Env] = pinned
			d.mu.Unlock()
		}
		i := slices.IndexFunc(out, func(e *manifest.Environment) bool { return e.Name == h.Env })
		if i < 0 {
			out = append(out, pinned)
		} else {
			out[i] = pinned
		}
	}
	return out
}

// endPin lifts a rollback's pin once a new commit arrived, unless an
// operator placed another hold since it was read.
func (d *Daemon) endPin(h history.Hold, head string, log *slog.Logger) {
	d.holdMu.Lock()
	defer d.holdMu.Unlock()
	d.mu.Lock()
	cur, ok := d.holds[h.Env]
	d.mu.Unlock()
	if !ok || cur != h {
		return
	}
	log.Info("a new commit ends the rollback", "env", h.Env, "pinned", shortRev(h.Revision), "head", shortRev(head))
	if err := d.cfg.Holds.ClearHold(h.Env); err != nil {
		log.Error("history", "env", h.Env, "err", err.Error())
		return
	}
	d.mu.Lock()
	delete(d.holds, h.Env)
	delete(d.pinned, h.Env)
	d.mu.Unlock()
}

// recordCut records, for each environment that took steps, a run cut
// short (interrupted by shutdown, or failed as a whole: a lock lost), and
// tells its notifiers it failed.
func (d *Daemon) recordCut(t trigger, snap *source.Snapshot, start time.Time, out *reconcile.Result, result string, cause error, auditors map[string][]notify.Notifier) {
	if out == nil {
		return
	}
	steps, envs := runSteps(out.Apply)
	for _, env := range envs {
		var id uint64
		if d.cfg.History != nil {
			run, err := d.cfg.History.Add(history.Run{Env: env, Trigger: t.reason, Revision: snap.Revision, Subject: snap.Subject,
				Author: snap.Author, Started: start, Finished: time.Now(), Result: result, Errors: []string{cause.Error()}, Steps: steps[env]})
			if err != nil {
				d.log.Error("history", "env", env, "err", err.Error())
			}
			id = run.ID
		}
		d.notifyOutcome(EnvStatus{Name: env, State: "failed", DesiredRevision: snap.Revision, Errors: []string{result + ": " + cause.Error()}},
			EnvStatus{}, id, targetsOf(steps[env]), snap, t, auditors)
	}
}
