package daemon

import (
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
		// After a restart (nothing seen yet), a synced environment with
		// nothing to do is no news.
		changed := seen && (prev.State != es.State || prev.DesiredRevision != es.DesiredRevision) || !seen && es.State != "synced"
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
