package daemon

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/notify"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// auditors returns the notifiers of each environment's audit section,
// logging once the auditors that are not run and why.
func (d *Daemon) auditors(envs []*manifest.Environment, log *slog.Logger) map[string][]notify.Notifier {
	if d.cfg.Notify == nil {
		return nil
	}
	out := map[string][]notify.Notifier{}
	for _, env := range envs {
		for i, a := range env.Audit {
			n, why := notify.FromAudit(env.Name, a, d.cfg.Audit)
			if n == nil {
				key := fmt.Sprintf("%s/%d/%s", env.Name, i, a.Type)
				d.mu.Lock()
				warned := d.warned[key]
				d.warned[key] = true
				d.mu.Unlock()
				if !warned {
					log.Warn("auditor not run", "env", env.Name, "type", a.Type, "reason", why)
				}
				continue
			}
			out[env.Name] = append(out[env.Name], n)
		}
	}
	return out
}

// notifyStarted tells, per environment with steps to take, that its
// deploy begins.
func (d *Daemon) notifyStarted(p *plan.Plan, snap *source.Snapshot, t trigger, auditors map[string][]notify.Notifier) {
	if d.cfg.Notify == nil {
		return
	}
	targets := map[string][]string{}
	for _, st := range p.Mutating() {
		targets[st.Env] = addTarget(targets[st.Env], st.Action, st.Instance)
	}
	for env, names := range targets {
		if prev := d.previous(env); (prev.State == "failed" || prev.State == "stalled") && prev.DesiredRevision == d.revisionOf(p, env, snap) {
			continue // a retry of a failed deploy: it was told
		}
		ev := d.event(notify.Started, env, d.revisionOf(p, env, snap), snap, t, "")
		ev.Targets = names
		d.cfg.Notify.Send(ev, append(slices.Clone(d.cfg.Notifiers), auditors[env]...)...)
	}
}

// revisionOf is the revision an environment of the plan deploys.
func (d *Daemon) revisionOf(_ *plan.Plan, env string, snap *source.Snapshot) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.holds[env]; ok && h.Revision != "" {
		return h.Revision
	}
	return snap.Revision
}

// notifyOutcome tells how an environment's run ended: succeeded when it
// changed things and every step passed, failed when a step failed or its
// file is invalid (once per revision: retries of a failure are not told
// again).
func (d *Daemon) notifyOutcome(es, prev EnvStatus, runID uint64, targets []string, snap *source.Snapshot, t trigger, auditors map[string][]notify.Notifier) {
	if d.cfg.Notify == nil {
		return
	}
	failing := es.State == "failed" || es.State == "stalled"
	var kind notify.Kind
	switch {
	case failing && (prev.State == "failed" || prev.State == "stalled") && prev.DesiredRevision == es.DesiredRevision:
		return // the same failure, retried: it was told
	case failing:
		kind = notify.Failed
	case len(targets) > 0:
		kind = notify.Succeeded
	default:
		return
	}
	ev := d.event(kind, es.Name, cmp.Or(es.DesiredRevision, snap.Revision), snap, t, strings.Join(es.Errors, "; "))
	ev.Targets, ev.RunID = targets, runID
	if d.cfg.PublicURL != "" && runID > 0 {
		ev.URL = fmt.Sprintf("%s/runs/%d", strings.TrimRight(d.cfg.PublicURL, "/"), runID)
	}
	d.cfg.Notify.Send(ev, append(slices.Clone(d.cfg.Notifiers), auditors[es.Name]...)...)
}

// event is a notification of env's deploy of revision; the commit's
// subject and author go with it when it is the snapshot's (a rollback's
// pinned revision has others).
func (d *Daemon) event(kind notify.Kind, env, revision string, snap *source.Snapshot, t trigger, msg string) notify.Event {
	ev := notify.Event{Kind: kind, Env: env, Revision: revision, Trigger: t.reason, Action: "deploy", Who: "maestro-sync",
		Message: source.Printable(msg, 1000)}
	if revision == snap.Revision {
		ev.Subject, ev.Author = snap.Subject, snap.Author
	}
	if d.cfg.PublicURL != "" {
		ev.URL = strings.TrimRight(d.cfg.PublicURL, "/") + "/environments/" + env
	}
	return ev
}
