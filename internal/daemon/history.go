package daemon

import (
	"errors"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/history"
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
	case "synced":
		return "success"
	}
	return state
}

// record adds to the history, per environment, the run that just ended
// when it changed something, failed, or changed the environment's state
// or desired revision: a resync or poll that finds nothing to do is not a
// run worth keeping.
func (d *Daemon) record(t trigger, snap *source.Snapshot, start time.Time, before map[string]EnvStatus, res *apply.Result) {
	if d.cfg.History == nil {
		return
	}
	steps := map[string][]history.Step{}
	if res != nil {
		for _, o := range res.Outcomes {
			if !o.Step.Action.Mutates() {
				continue
			}
			hs := history.Step{Action: string(o.Step.Action), Service: o.Step.Service, Instance: o.Step.Instance,
				Ship: o.Step.Ship, Cause: causeText(o.Step), Result: outcomeResult(o), Duration: o.Duration}
			if o.Err != nil {
				hs.Error = o.Err.Error()
			}
			steps[o.Step.Env] = append(steps[o.Step.Env], hs)
		}
	}
	finished := time.Now()
	for i, es := range d.Status().Environments {
		prev, seen := before[es.Name]
		// After a restart (nothing seen yet), only a failure is news.
		changed := seen && (prev.State != es.State || prev.DesiredRevision != es.DesiredRevision) ||
			!seen && (es.State == "failed" || es.State == "stalled")
		if len(steps[es.Name]) == 0 && !changed && es.State != "failed" {
			continue
		}
		run, err := d.cfg.History.Add(history.Run{
			Env: es.Name, Trigger: t.reason, Revision: snap.Revision, Subject: snap.Subject, Author: snap.Author,
			Started: start, Finished: finished, Result: runResult(es.State), Errors: es.Errors, Steps: steps[es.Name],
		})
		if err != nil {
			d.log.Error("history", "env", es.Name, "err", err.Error())
			continue
		}
		d.mu.Lock()
		if i < len(d.status.Environments) && d.status.Environments[i].Name == es.Name {
			d.status.Environments[i].LastRunID = run.ID
		}
		d.mu.Unlock()
	}
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
	if d.cfg.History == nil {
		return history.Hold{}, ErrNoHistory
	}
	h := history.Hold{Env: env, Paused: true, Since: time.Now().UTC(), Reason: reason}
	if err := d.cfg.History.SetHold(h); err != nil {
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
	if d.cfg.History == nil {
		return ErrNoHistory
	}
	if err := d.cfg.History.ClearHold(env); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.holds, env)
	d.mu.Unlock()
	d.log.Info("resumed", "env", env)
	d.Trigger("resume", time.Now())
	return nil
}

// Known reports whether env is an environment of the status.
func (d *Daemon) Known(env string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, es := range d.status.Environments {
		if es.Name == env {
			return true
		}
	}
	return false
}
