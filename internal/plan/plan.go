// Package plan is the result of comparing desired and live state: an
// ordered list of steps, each with its causes, printable as stable text and
// as JSON. A plan decides nothing by itself; internal/diff computes it and
// internal/apply carries it out.
package plan

import (
	"errors"
	"fmt"
	"slices"
)

// Action is what a step does to one instance.
type Action string

const (
	// Create starts a container for an instance that has none.
	Create Action = "create"
	// Replace swaps an instance's container for a new one.
	Replace Action = "replace"
	// Remove stops and removes a container maestro-sync owns.
	Remove Action = "remove"
	// Unchanged means the instance already runs as desired.
	Unchanged Action = "unchanged"
	// Conflict means a container maestro-sync does not own holds the
	// instance's name. It is left alone.
	Conflict Action = "conflict"
	// Orphan is a container maestro-sync owns that is no longer desired,
	// kept because pruning is off.
	Orphan Action = "orphan"
	// Unknown means the host could not be observed.
	Unknown Action = "unknown"
	// Bake is the gate between two batches of a staged rollout: the batch
	// just replaced must keep running and healthy for a while, or it is
	// swapped back and the rollout stops.
	Bake Action = "bake"
	// Build builds a service's image from the repository on a builder
	// ship and pushes it, before the instances that run it come up.
	Build Action = "build"
	// Scale changes the number of pods of a cluster service's Deployment
	// in place: no new Deployment, no rollout of a new spec.
	Scale Action = "scale"
)

// Mutates reports whether the action changes anything live (a bake swaps
// its batch back when it fails; a build makes and pushes an image).
func (a Action) Mutates() bool {
	return a == Create || a == Replace || a == Remove || a == Bake || a == Build || a == Scale
}

// Step is one action on one instance.
type Step struct {
	// ID identifies the step within the plan: env/ship/container.
	ID      string `json:"id"`
	Action  Action `json:"action"`
	Env     string `json:"env"`
	Service string `json:"service,omitempty"`
	// Instance is the container name the step acts on.
	Instance string `json:"instance"`
	Ship     string `json:"ship"`
	// Host is the address of the ship's Docker daemon.
	Host   string   `json:"host,omitempty"`
	Causes []string `json:"causes,omitempty"`
	// SpecHash is the desired spec hash (create, replace).
	SpecHash string `json:"spec_hash,omitempty"`
	// Container is the ID of the live container the step acts on
	// (replace, remove, conflict), and LiveSpecHash its spec hash.
	Container    string `json:"container,omitempty"`
	LiveSpecHash string `json:"live_spec_hash,omitempty"`
	// Warnings name what the new container does beyond itself
	// (privileged, the host's network, the Docker socket, a system
	// directory of the host), shown with ⚠ even when the policy allows it.
	Warnings []string `json:"warnings,omitempty"`
	// Adopt marks a replacement of a container maestro-sync did not make
	// (no labels: MaestroNG's), taken over with apply --adopt.
	Adopt bool `json:"adopt,omitempty"`
	// Gate is what a bake step watches.
	Gate *Gate `json:"gate,omitempty"`
	// After lists the IDs of steps that must succeed before this one.
	After []string `json:"after,omitempty"`
	// Changes lists the differing fields, with values, when both specs
	// are known (a plan between two revisions).
	Changes []Change `json:"changes,omitempty"`
	// Build is what a build step builds.
	Build *BuildInfo `json:"build,omitempty"`
	// Replicas is the number of pods a scale step sets.
	Replicas int `json:"replicas,omitempty"`
	// Image, on a create or replace of a built service, is the image
	// pinned by its registry digest (repository:tag@sha256:…) when it
	// was already pushed; "" when the step's build makes it.
	Image string `json:"image,omitempty"`
}

// BuildInfo is what a build step builds.
type BuildInfo struct {
	// Image is the reference it tags (repository:ctx-…); Push tells
	// whether it is pushed to the repository's registry.
	Image string `json:"image"`
	Push  bool   `json:"push"`
	// Context is the context directory in the repository, Dockerfile its
	// Dockerfile, Digest the context's digest.
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
	Digest     string `json:"digest"`
	// Files is how many files of the context changed since the image the
	// service runs now (-1: unknown).
	Files int `json:"files"`
	// Services are the services that run the image.
	Services []string `json:"services"`
}

// Gate is a batch of a staged rollout that a bake step watches.
type Gate struct {
	// Batch is the batch's number, from 1, of Batches.
	Batch   int `json:"batch"`
	Batches int `json:"batches"`
	// Instances are the instances of the batch.
	Instances []string `json:"instances"`
	// Bake is how long they must keep running and healthy, as text
	// ("1m0s").
	Bake string `json:"bake"`
}

// Change is one field that differs between two specs of an instance.
type Change struct {
	// Field is a path such as image, env.LOG_LEVEL, ports.http,
	// lifecycle.running or requires.
	Field string `json:"field"`
	// Old and New are the values; empty when absent on that side, and
	// always empty when Sensitive.
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Sensitive hides the values: only the fact of the change is shown,
	// and whether the value was added or removed.
	Sensitive bool `json:"sensitive,omitempty"`
	Added     bool `json:"added,omitempty"`
	Removed   bool `json:"removed,omitempty"`
	// Source names the service whose change this is a knock-on effect of
	// (an injected variable), or "maestro" for variables maestro-sync
	// injects otherwise.
	Source string `json:"source,omitempty"`
	// Replaces tells whether the change alone replaces the container;
	// lifecycle checks and dependencies do not.
	Replaces bool `json:"replaces"`
}

// Text renders the change in one line, never showing sensitive values.
func (c Change) Text() string { return c.Field + ": " + c.Detail() }

// Detail is Text without the field name.
func (c Change) Detail() string {
	var s string
	switch {
	case c.Sensitive && c.Added:
		s = "added (sensitive value hidden)"
	case c.Sensitive && c.Removed:
		s = "removed (sensitive value hidden)"
	case c.Sensitive && c.Old == "" && c.New == "":
		s = "changed (sensitive value hidden)"
	case c.Old == "":
		s = "added " + c.New
	case c.New == "":
		s = "removed (was " + c.Old + ")"
	default:
		s = c.Old + " → " + c.New
	}
	if c.Source != "" && c.Source != "maestro" {
		s += " (knock-on: injected from " + c.Source + ")"
	}
	if !c.Replaces {
		s += " (does not replace the container)"
	}
	return s
}

// Plan is every step for a set of environments.
type Plan struct {
	// Revision is the source revision the desired state comes from.
	Revision string `json:"revision,omitempty"`
	// Owner is the readable name of the source the environments come
	// from (see internal/owner), for a plan against live state.
	Owner string `json:"owner,omitempty"`
	// Desired is a digest of the desired state the plan was computed
	// from, and Prune and Things the options it was computed with, so
	// that a saved plan can be checked before it is applied.
	Desired string   `json:"desired,omitempty"`
	Prune   bool     `json:"prune,omitempty"`
	Things  []string `json:"things,omitempty"`
	// WithDeps is -d: things include their dependencies.
	WithDeps bool `json:"with_dependencies,omitempty"`
	// Base is the revision compared against, for a plan between two
	// revisions (no live state involved).
	Base string `json:"base,omitempty"`
	// Environments summarises each environment: added, removed, changed,
	// unchanged or invalid.
	Environments []EnvChange `json:"environments,omitempty"`
	// Steps are in a stable order: by environment, dependencies first.
	Steps []Step `json:"steps"`
}

// EnvChange is the fate of one environment.
type EnvChange struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
	// Status is added, removed, changed, unchanged, invalid or rolled
	// back (held on a rollback until its source moves on).
	Status string `json:"status"`
	// Errors are the validation errors of an invalid environment.
	Errors []string `json:"errors,omitempty"`
	// Note explains a status: for "rolled back", from and to which
	// revision, and until when nothing is planned.
	Note string `json:"note,omitempty"`
	// Pending are the steps a paused environment would take.
	Pending []Step `json:"pending,omitempty"`
}

// RolledBack is the status of an environment held on a rollback.
const RolledBack = "rolled back"

// Paused is the status of an environment an operator paused: it is
// observed, and what would change is told (Pending), but nothing is done.
const Paused = "paused"

// Summary counts the steps by action.
type Summary struct {
	Create    int `json:"create"`
	Replace   int `json:"replace"`
	Remove    int `json:"remove"`
	Unchanged int `json:"unchanged"`
	Conflict  int `json:"conflict"`
	Orphan    int `json:"orphan"`
	Unknown   int `json:"unknown"`
	Build     int `json:"build"`
	Scale     int `json:"scale"`
	// Invalid counts the environments that did not validate.
	Invalid int `json:"invalid"`
}

// Changes returns the number of steps that change something.
func (s Summary) Changes() int { return s.Create + s.Replace + s.Remove }

// Problems returns the number of things that keep the plan from being
// carried out in full: conflicts, unreachable hosts, invalid environments.
func (s Summary) Problems() int { return s.Conflict + s.Unknown + s.Invalid }

// Summary counts the plan's steps by action.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, st := range p.Steps {
		switch st.Action {
		case Create:
			s.Create++
		case Replace:
			s.Replace++
		case Remove:
			s.Remove++
		case Unchanged:
			s.Unchanged++
		case Conflict:
			s.Conflict++
		case Orphan:
			s.Orphan++
		case Unknown:
			s.Unknown++
		case Build:
			s.Build++
		case Scale:
			s.Scale++
		}
	}
	for _, ec := range p.Environments {
		if ec.Status == "invalid" {
			s.Invalid++
		}
	}
	return s
}

// Mutating returns the steps that change something, in plan order.
func (p *Plan) Mutating() []Step {
	var out []Step
	for _, st := range p.Steps {
		if st.Action.Mutates() {
			out = append(out, st)
		}
	}
	return out
}

// Validate checks the plan's invariants: unique step IDs, known actions,
// ordering edges that point at earlier mutating steps, and at most one
// create or replace per instance and host.
func (p *Plan) Validate() error {
	var errs []error
	index := map[string]int{}
	placed := map[string]bool{}
	for i, st := range p.Steps {
		if _, dup := index[st.ID]; dup {
			errs = append(errs, fmt.Errorf("step %s: duplicate id", st.ID))
		}
		index[st.ID] = i
		if !slices.Contains([]Action{Create, Replace, Remove, Unchanged, Conflict, Orphan, Unknown, Bake, Build, Scale}, st.Action) {
			errs = append(errs, fmt.Errorf("step %s: unknown action %q", st.ID, st.Action))
		}
		if st.Action == Create || st.Action == Replace {
			key := st.Env + "/" + st.Instance
			if placed[key] {
				errs = append(errs, fmt.Errorf("step %s: instance %s is created twice", st.ID, key))
			}
			placed[key] = true
		}
		for _, a := range st.After {
			j, ok := index[a]
			switch {
			case a == st.ID:
				errs = append(errs, fmt.Errorf("step %s: runs after itself", st.ID))
			case !ok:
				errs = append(errs, fmt.Errorf("step %s: runs after %s, which is missing or later", st.ID, a))
			case !p.Steps[j].Action.Mutates():
				errs = append(errs, fmt.Errorf("step %s: runs after %s, which changes nothing", st.ID, a))
			}
		}
	}
	return errors.Join(errs...)
}
