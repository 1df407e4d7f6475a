package daemon

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/shard"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// Status is what GET /api/v1/status returns.
type Status struct {
	// Source is the repository (credentials redacted) and ref.
	Source string `json:"source"`
	// Owner is the readable identity stamped on every object deployed.
	Owner  string `json:"owner,omitempty"`
	Branch string `json:"branch,omitempty"`
	// Revision is the latest revision fetched (the desired one), with its
	// commit's time, subject and author.
	Revision        string    `json:"revision,omitempty"`
	RevisionTime    time.Time `json:"revision_time,omitzero"`
	RevisionSubject string    `json:"revision_subject,omitempty"`
	RevisionAuthor  string    `json:"revision_author,omitempty"`
	LastCheck       time.Time `json:"last_check,omitzero"`
	// SourceError is the last error of the source, cleared by a fetch
	// that works.
	SourceError string    `json:"source_error,omitempty"`
	LastRun     time.Time `json:"last_run,omitzero"`
	// LastResult is success, failed, stalled, source_error or
	// interrupted.
	LastResult string    `json:"last_result,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	NextRetry  time.Time `json:"next_retry,omitzero"`
	// Role is leader or follower with leader election (empty without),
	// and Leader the identity of the replica that leads.
	Role   string `json:"role,omitempty"`
	Leader string `json:"leader,omitempty"`
	// Shard is the part of the repository this daemon deploys, when
	// several split it (nil: all of it).
	Shard        *ShardStatus `json:"shard,omitempty"`
	Environments []EnvStatus  `json:"environments"`
}

// ShardStatus describes a daemon's shard: the path globs and the label
// selector of run --environments and --environment-selector.
type ShardStatus struct {
	Environments []string `json:"environments,omitempty"`
	Selector     string   `json:"selector,omitempty"`
}

func shardStatus(s *shard.Shard) *ShardStatus {
	if s == nil {
		return nil
	}
	return &ShardStatus{Environments: s.Globs, Selector: s.SelectorString()}
}

// EnvStatus is the state of one environment.
type EnvStatus struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
	// State is synced, progressing, failed (retried with backoff),
	// stalled (waiting for a new commit), rolled back (held by
	// maestro-sync rollback until its desired state changes; see Note)
	// paused (by maestro-sync pause: observed, never changed; Pending
	// says what would change) or pinned (deployed as of an earlier
	// revision by maestro-sync rollback --to; see Note).
	State string `json:"state"`
	// Pending are the changes a paused environment waits with.
	Pending []string `json:"pending,omitempty"`
	// Note explains a rolled back state: from and to what, since when.
	Note string `json:"note,omitempty"`
	// Rollouts are the staged rollouts of the environment's services in
	// the last run (or the one running).
	Rollouts        []RolloutStatus  `json:"rollouts,omitempty"`
	DesiredRevision string           `json:"desired_revision,omitempty"`
	AppliedRevision string           `json:"applied_revision,omitempty"`
	LastRun         time.Time        `json:"last_run,omitzero"`
	Errors          []string         `json:"errors,omitempty"`
	Instances       []InstanceStatus `json:"instances,omitempty"`
	// LastRunID is the environment's last run in the history (0 when
	// the daemon keeps none).
	LastRunID uint64 `json:"last_run_id,omitempty"`
}

// RolloutStatus is the progress of a service's staged rollout.
type RolloutStatus struct {
	Service string `json:"service"`
	// Batch is the batch being baked, or the last one baked.
	Batch   int `json:"batch"`
	Batches int `json:"batches"`
	// State is baking, passed (the batch is good: the next one goes) or
	// failed (the batch was swapped back: the rollout stopped).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// rolloutProgress records a bake step's start and outcome.
func (d *Daemon) rolloutProgress(e apply.Event) {
	g := e.Step.Gate
	if g == nil {
		return
	}
	rs := RolloutStatus{Service: e.Step.Service, Batch: g.Batch, Batches: g.Batches, State: "baking"}
	switch {
	case e.Done && e.Err != nil:
		rs.State, rs.Error = "failed", e.Err.Error()
	case e.Done:
		rs.State = "passed"
	}
	if e.Done && e.Status == apply.Aborted {
		return
	}
	d.metrics.rolloutBatch.WithLabelValues(e.Step.Env, e.Step.Service).Set(float64(g.Batch))
	d.metrics.rolloutBatches.WithLabelValues(e.Step.Env, e.Step.Service).Set(float64(g.Batches))
	if rs.State == "failed" {
		d.metrics.rolloutFailed.WithLabelValues(e.Step.Env, e.Step.Service).Inc()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rollouts == nil {
		d.rollouts = map[string]map[string]RolloutStatus{}
	}
	if d.rollouts[e.Step.Env] == nil {
		d.rollouts[e.Step.Env] = map[string]RolloutStatus{}
	}
	d.rollouts[e.Step.Env][e.Step.Service] = rs
	for i := range d.status.Environments {
		if es := &d.status.Environments[i]; es.Name == e.Step.Env {
			es.Rollouts = rolloutList(d.rollouts[e.Step.Env])
			if rs.State == "baking" {
				es.State = "progressing"
			}
		}
	}
}

func rolloutList(m map[string]RolloutStatus) []RolloutStatus {
	out := make([]RolloutStatus, 0, len(m))
	for _, rs := range m {
		out = append(out, rs)
	}
	slices.SortFunc(out, func(a, b RolloutStatus) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// InstanceStatus is the state of one instance.
type InstanceStatus struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Ship    string `json:"ship"`
	// State is running, exited, missing or unknown (ship unreachable);
	// for a cluster service also progressing (a rollout not complete).
	State     string `json:"state"`
	Container string `json:"container,omitempty"`
	// InSync is true when the container runs the desired spec.
	InSync bool `json:"in_sync"`
	// Health is the state of the container's own Docker HEALTHCHECK
	// (starting, healthy, unhealthy), when it has one.
	Health string `json:"health,omitempty"`
	// Created is when the container was created (its age).
	Created  time.Time `json:"created,omitzero"`
	Revision string    `json:"revision,omitempty"`
	// Image is the image the container runs, pinned: repository@digest
	// (or repository:tag@digest) when it came from a registry, else the
	// image ID.
	Image string `json:"image,omitempty"`
	Error string `json:"error,omitempty"`
}

// Status returns a copy of the current status.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	if d.leader != "" || d.follower {
		s.Role, s.Leader = "leader", d.leader
		if d.follower {
			s.Role = "follower"
		}
	}
	s.Environments = slices.Clone(s.Environments)
	return s
}

// invalidEnvs logs the invalid environments and returns their stalled
// status entries. Nothing of them is observed, planned or applied.
func (d *Daemon) invalidEnvs(repo *manifest.Repo, revision string, log *slog.Logger) []EnvStatus {
	var out []EnvStatus
	for _, file := range repo.Invalid {
		es := EnvStatus{Name: d.envNameOf(file), File: file, State: "stalled", DesiredRevision: revision, LastRun: time.Now()}
		// What ran before the file broke still runs: keep showing it.
		prev := d.previous(es.Name)
		es.AppliedRevision, es.Instances, es.LastRunID = prev.AppliedRevision, prev.Instances, prev.LastRunID
		for _, diag := range repo.Diagnostics {
			if diag.File == file && diag.Severity == manifest.SeverityError {
				es.Errors = append(es.Errors, diag.Error())
			}
		}
		log.Error("invalid manifest: the environment waits for a fix in a new commit", "env", es.Name, "file", file, "err", strings.Join(es.Errors, "; "))
		d.metrics.stalled.WithLabelValues(es.Name).Set(1)
		out = append(out, es)
	}
	return out
}

// publish puts environment statuses in the status at once, replacing
// those of the same name.
func (d *Daemon) publish(envs []EnvStatus) {
	if len(envs) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, es := range envs {
		i := slices.IndexFunc(d.status.Environments, func(e EnvStatus) bool { return e.Name == es.Name })
		if i < 0 {
			d.status.Environments = append(d.status.Environments, es)
		} else {
			d.status.Environments[i] = es
		}
	}
	sortEnvs(d.status.Environments)
}

// previous returns the environment's status before this run.
func (d *Daemon) previous(name string) EnvStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, es := range d.status.Environments {
		if es.Name == name {
			return es
		}
	}
	return EnvStatus{}
}

// envNameOf returns the name the environment of file had when it was last
// valid, or the file name.
func (d *Daemon) envNameOf(file string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, es := range d.status.Environments {
		if es.File == file && es.Name != file {
			return es.Name
		}
	}
	return file
}

// setAllStalled marks every environment stalled (nothing could be loaded).
func (d *Daemon) setAllStalled(revision, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.status.Environments {
		d.status.Environments[i].State = "stalled"
		d.status.Environments[i].DesiredRevision = revision
		d.status.Environments[i].Errors = []string{msg}
	}
}

// applyStatus records the outcome of a run per environment and returns
// how many environments failed.
func (d *Daemon) applyStatus(envs []*manifest.Environment, p *plan.Plan, res *apply.Result, state *live.State, snap *source.Snapshot, invalid []EnvStatus, locked map[string]*lock.LockedError) int {
	failedSteps := map[string][]string{} // env → errors
	for env, err := range locked {
		// Left out: another run holds its lock; retried with backoff.
		failedSteps[env] = append(failedSteps[env], err.Error())
	}
	failedInst := map[string]string{} // env/instance → error
	for _, o := range res.Outcomes {
		if o.Err != nil {
			failedSteps[o.Step.Env] = append(failedSteps[o.Step.Env], o.Err.Error())
			failedInst[o.Step.Env+"/"+o.Step.Instance] = o.Err.Error()
		}
	}
	unknown := map[string][]string{}
	for _, st := range p.Steps {
		if st.Action == plan.Unknown {
			unknown[st.Env] = append(unknown[st.Env], st.Instance+": "+strings.Join(st.Causes, "; "))
		}
	}
	held := map[string]string{} // env → note of its rollback
	paused := map[string][]string{}
	for _, ec := range p.Environments {
		switch ec.Status {
		case plan.RolledBack:
			held[ec.Name] = ec.Note
		case plan.Paused:
			paused[ec.Name] = []string{}
			for _, st := range ec.Pending {
				paused[ec.Name] = append(paused[ec.Name], fmt.Sprintf("%s %s on %s: %s", st.Action, st.Instance, st.Ship, causeText(st)))
			}
		}
	}
	failed := 0
	out := slices.Clone(invalid)
	before := d.envStates()
	for _, env := range envs {
		d.metrics.stalled.WithLabelValues(env.Name).Set(0)
		rev := cmp.Or(env.Revision, snap.Revision) // a pinned environment's own
		es := EnvStatus{Name: env.Name, File: env.File, DesiredRevision: rev, LastRun: time.Now(), State: "synced", LastRunID: before[env.Name].LastRunID}
		es.Errors = append(failedSteps[env.Name], unknown[env.Name]...)
		if note, ok := held[env.Name]; ok {
			es.State, es.Note = plan.RolledBack, note
		}
		if pending, ok := paused[env.Name]; ok {
			es.State, es.Pending = plan.Paused, pending
			es.Note = fmt.Sprintf("paused: observed, not changed, until resumed; %d change(s) wait", len(pending))
			if h, ok := d.hold(env.Name); ok {
				es.Note = fmt.Sprintf("paused since %s: observed, not changed, until resumed; %d change(s) wait", h.Since.UTC().Format(time.RFC3339), len(pending))
				if h.Reason != "" {
					es.Note += " (" + h.Reason + ")"
				}
			}
		}
		if h, ok := d.hold(env.Name); ok && env.Revision != "" {
			es.State = "pinned"
			es.Note = fmt.Sprintf("rolled back to %s since %s: held there until resumed or a new commit arrives", shortRev(h.Revision), h.Since.UTC().Format(time.RFC3339))
			if h.Reason != "" {
				es.Note += " (" + h.Reason + ")"
			}
		}
		if len(es.Errors) > 0 {
			es.State = "failed"
			failed++
		}
		es.Instances = instanceStatus(env, state, failedInst)
		d.mu.Lock()
		es.Rollouts = rolloutList(d.rollouts[env.Name])
		if es.State == "synced" || es.State == "pinned" {
			d.lastApply[env.Name] = rev
		}
		es.AppliedRevision = d.lastApply[env.Name]
		d.mu.Unlock()
		d.metrics.setApplied(env.Name, es.AppliedRevision)
		out = append(out, es)
	}
	sortEnvs(out)
	d.mu.Lock()
	d.status.Environments = out
	d.mu.Unlock()
	return failed
}

// instanceStatus reads each instance's state from an observation made
// after the run, with the run's errors.
func instanceStatus(env *manifest.Environment, state *live.State, failed map[string]string) []InstanceStatus {
	var out []InstanceStatus
	// The environment's containers of each host, by name (the last one
	// listed of a name, should there be two).
	byHost := map[string]map[string]*live.Container{}
	containers := func(addr string) map[string]*live.Container {
		if m, ok := byHost[addr]; ok {
			return m
		}
		m := map[string]*live.Container{}
		if host := state.Host(addr); host != nil && host.Err == nil {
			for i := range host.Containers {
				if c := &host.Containers[i]; c.Env() == env.Name {
					m[c.Name] = c
				}
			}
		}
		byHost[addr] = m
		return m
	}
	for _, in := range env.Instances() {
		is := InstanceStatus{Name: in.Name, Service: in.Service, Ship: in.Ship, State: "missing"}
		addr := env.Ships[in.Ship].Address()
		host := state.Host(addr)
		switch {
		case host == nil || host.Err != nil:
			is.State = "unknown"
		default:
			if c := containers(addr)[in.Name]; c != nil {
				is.Container = c.ID[:min(12, len(c.ID))]
				is.State = c.State
				is.Health = c.Health
				is.Created = c.Created
				is.Revision = c.Revision()
				is.Image = cmp.Or(c.Labels[label.Image], c.ImageID)
				is.InSync = c.SpecHash() == in.SpecHash && c.Running()
			}
		}
		if err, ok := failed[env.Name+"/"+in.Name]; ok {
			is.Error, is.InSync = err, false
		}
		out = append(out, is)
	}
	// Cluster services: the workload the Service selects.
	for _, svc := range env.Services {
		w := svc.Workload
		if w == nil || env.Clusters[w.Cluster] == nil {
			continue
		}
		is := InstanceStatus{Name: svc.Name, Service: svc.Name, Ship: w.Cluster, State: "missing"}
		var c *live.Cluster
		if state != nil {
			c = state.Clusters[env.Clusters[w.Cluster].Address()]
		}
		switch {
		case c == nil || c.Err != nil:
			is.State = "unknown"
		default:
			for _, lw := range c.Workloads {
				if lw.Env() != env.Name || lw.Service() != svc.Name || !lw.Serving {
					continue
				}
				is.Container, is.Revision = lw.Name, lw.Labels[label.Revision]
				is.State = "progressing"
				if lw.Ready {
					is.State = "running"
				}
				is.InSync = lw.Ready && lw.SpecHash() == w.SpecHash
			}
		}
		if err, ok := failed[env.Name+"/"+svc.Name]; ok {
			is.Error, is.InSync = err, false
		}
		out = append(out, is)
	}
	return out
}
