// Package diff compares desired state (manifest environments) with live
// state and computes the plan that turns one into the other. It is pure: no
// I/O, no logging, no context.
package diff

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/build"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// Options tune Compute.
type Options struct {
	// Revision is recorded in the plan.
	Revision string
	// Owner is the ID of the source the environments come from (see
	// internal/owner). Only containers and workloads with that owner, or
	// made before owners existed, are changed; another owner's are
	// invisible, except as a conflict where they hold a name we need.
	Owner string
	// Prune removes containers maestro-sync owns that are no longer
	// desired. Without it they are reported as orphans.
	Prune bool
	// PruneEnvs also removes the owner's containers and workloads of
	// environments that are not in envs at all. Set it only when envs is
	// every environment of the owner's repository and every manifest of it
	// is valid (not with -f, nor when an environment is invalid).
	PruneEnvs bool
	// Others names environments of the repository that this run does not
	// plan (another daemon's shard): they are not "no longer in the
	// repository", and nothing of them is changed.
	Others map[string]bool
	// PruneGone, when set, limits PruneEnvs to environments whose objects
	// record a manifest path and labels (ok false: none) it accepts.
	PruneGone func(path string, labels map[string]string, ok bool) bool
	// Hold names environments that are loaded but not planned this time
	// (another run holds their lock): nothing of them is changed, and
	// they are not "no longer in the repository" either.
	Hold map[string]bool
	// Paused names environments an operator paused: their steps are
	// computed (what would change is shown) but planned as pending only.
	Paused map[string]bool
	// Adopt plans the replacement of a container without maestro-sync
	// labels that holds an instance's name (made by MaestroNG, or by
	// hand) instead of reporting a conflict.
	Adopt bool
	// Select, when not nil, limits the plan to the instances for which it
	// returns true; nothing else is created, replaced or pruned.
	Select func(env *manifest.Environment, in *manifest.Instance) bool
}

// Compute returns the plan that makes live match envs.
func Compute(envs []*manifest.Environment, state *live.State, opts Options) *plan.Plan {
	p := &plan.Plan{Revision: opts.Revision, Desired: Digest(envs), Prune: opts.Prune}
	n := 0
	for _, env := range envs {
		for _, svc := range env.Services {
			n += len(svc.Instances)
		}
	}
	p.Steps = make([]plan.Step, 0, n)
	known := map[string]bool{}
	for env := range opts.Paused {
		known[env] = true // a paused environment is never changed, even when its file is gone
	}
	for env := range opts.Others {
		known[env] = true
	}
	index := indexHosts(state, opts.Owner)
	for _, env := range envs {
		known[env.Name] = true
		if opts.Hold[env.Name] {
			continue
		}
		if rb, ok := rolledBack(env, index, opts); ok {
			p.Environments = append(p.Environments, plan.EnvChange{Name: env.Name, File: env.File, Status: plan.RolledBack, Note: rollbackNote(rb)})
			continue
		}
		steps := computeEnv(env, state, index, opts)
		if opts.Paused[env.Name] {
			ec := plan.EnvChange{Name: env.Name, File: env.File, Status: plan.Paused}
			for _, st := range steps {
				if st.Action.Mutates() || st.Action == plan.Unknown {
					ec.Pending = append(ec.Pending, st)
				}
			}
			p.Environments = append(p.Environments, ec)
			continue
		}
		p.Steps = append(p.Steps, steps...)
	}
	if opts.Prune && opts.PruneEnvs && opts.Select == nil {
		p.Steps = append(p.Steps, pruneUnknownEnvs(known, state, opts.Owner, opts.PruneGone)...)
	}
	if len(p.Steps) == 0 {
		p.Steps = nil // as when nothing was appended
	}
	return p
}

func stepID(env, host, name string) string { return env + "/" + host + "/" + name }

// computeEnv plans one environment: leftovers first, then creates and
// replaces in start order, then removals in stop order.
func computeEnv(env *manifest.Environment, state *live.State, index map[string]*hostIndex, opts Options) []plan.Step {
	var leftovers, changes, removals []plan.Step
	// Where each instance is desired, and the step that brings it up.
	desiredHost := map[string]string{}
	upStep := map[string]string{}
	blocked := map[string]bool{} // instances that cannot come up where desired
	selected := func(in *manifest.Instance) bool { return opts.Select == nil || opts.Select(env, in) }

	ordered := env.StartOrder(env.Instances())
	changes = make([]plan.Step, 0, len(ordered))
	addrs := shipAddresses(env)
	for _, in := range ordered {
		desiredHost[in.Name] = addrs[in.Ship]
	}
	for _, in := range ordered {
		if !selected(in) {
			continue
		}
		addr := addrs[in.Ship]
		base := plan.Step{ID: stepID(env.Name, addr, in.Name), Env: env.Name, Service: in.Service, Instance: in.Name, Ship: in.Ship, Host: addr, SpecHash: in.SpecHash}
		host := state.Host(addr)
		if host == nil || host.Err != nil {
			st := base
			st.Action = plan.Unknown
			st.Causes = []string{unreachable(host)}
			changes = append(changes, st)
			blocked[in.Name] = true
			continue
		}
		var current, resumable *live.Container
		var temps []*live.Container
		hi := index[addr]
		for _, c := range hi.owned[env.Name+"\x00"+in.Name] {
			switch {
			case c.Temporary():
				temps = append(temps, c)
			case c.Name == in.Name:
				current = c
			}
		}
		var before []string
		for _, c := range temps {
			// A routed replacement of the desired spec, left running by an
			// interrupted apply, may already serve through the proxy: the
			// driver resumes the replacement with it.
			if in.Route != nil && c.SpecHash() == in.SpecHash && c.Running() && resumable == nil &&
				(current == nil || current.SpecHash() != in.SpecHash || !current.Running()) {
				resumable = c
				continue
			}
			id := stepID(env.Name, addr, c.Name)
			leftovers = append(leftovers, plan.Step{ID: id, Action: plan.Remove, Env: env.Name, Service: in.Service,
				Instance: c.Name, Ship: in.Ship, Host: addr, Container: c.ID, LiveSpecHash: c.SpecHash(),
				Causes: []string{"leftover replacement container of an interrupted apply"}})
			before = append(before, id)
		}
		st := base
		st.After = before
		switch {
		case current == nil && resumable != nil:
			st.Action = plan.Create
			st.Causes = []string{"finish the interrupted replacement " + resumable.Name}
		case current == nil:
			foreign := hi.named[in.Name]
			if foreign != nil && opts.Adopt && !foreign.Owned() {
				// Made without maestro-sync (by MaestroNG): replaced
				// immutably by a container of ours.
				st.Action, st.Adopt = plan.Replace, true
				st.Container = foreign.ID
				st.Causes = []string{"adopt " + foreign.Name + ", a container without maestro-sync labels (made by MaestroNG or by hand)"}
				break
			}
			if foreign != nil {
				st.Action = plan.Conflict
				st.Container = foreign.ID
				st.Causes = []string{conflictCause(foreign, opts.Owner)}
				changes = append(changes, st)
				blocked[in.Name] = true
				continue
			}
			st.Action = plan.Create
			st.Causes = []string{"not found"}
		case current.SpecHash() != in.SpecHash:
			st.Action = plan.Replace
			st.Container, st.LiveSpecHash = current.ID, current.SpecHash()
			st.Causes = Causes(liveSpec(current), in.Spec())
		case !current.Running():
			st.Action = plan.Replace
			st.Container, st.LiveSpecHash = current.ID, current.SpecHash()
			st.Causes = []string{"container is " + current.State}
		case len(current.Drift) > 0:
			// Changed under its labels (docker update, by hand).
			st.Action = plan.Replace
			st.Container, st.LiveSpecHash = current.ID, current.SpecHash()
			for _, d := range current.Drift {
				st.Causes = append(st.Causes, "drift: "+d)
			}
		default:
			st.Action = plan.Unchanged
			st.Container, st.LiveSpecHash = current.ID, current.SpecHash()
		}
		if st.Action.Mutates() {
			upStep[in.Name] = st.ID
			st.Warnings = manifest.Risks(in)
			if st.Action == plan.Replace && current != nil {
				if clash := downtime(current, in); clash != "" {
					st.Warnings = append(st.Warnings, clash)
				}
			}
		}
		changes = append(changes, st)
	}
	wlSteps, wlUp, wlRemovals := computeWorkloads(env, state, opts)
	changes = append(changes, wlSteps...)
	if bs := builds(env, state, changes); len(bs) > 0 {
		changes = append(bs, changes...)
	}
	// Ordering: an instance (or workload) comes up after the instances and
	// workloads of every service it depends on. A build needs none of them
	// running.
	for i := range changes {
		st := &changes[i]
		if !st.Action.Mutates() || st.Action == plan.Build {
			continue
		}
		for _, dep := range env.Dependencies(st.Service) {
			for _, peer := range env.Service(dep).Instances {
				if id, ok := upStep[peer.Name]; ok {
					st.After = append(st.After, id)
				}
			}
			if id, ok := wlUp[dep]; ok {
				st.After = append(st.After, id)
			}
		}
	}
	changes = stage(env, changes)
	// Containers of this environment that are not desired where they run.
	removedSvc := map[string][]string{} // service → remove step IDs
	for _, addr := range sortedHosts(state) {
		for _, c := range index[addr].byEnv[env.Name] {
			want, desired := desiredHost[c.Instance()]
			if desired && want == addr && (c.Name == c.Instance() || c.Temporary() || c.Kept()) {
				continue // the instance's own container, a leftover planned above, or one kept for a rollback
			}
			in := env.Instance(c.Instance())
			if in != nil && !selected(in) || in == nil && opts.Select != nil {
				continue
			}
			st := plan.Step{ID: stepID(env.Name, addr, c.Name), Action: plan.Remove, Env: env.Name, Service: c.Service(),
				Instance: c.Name, Ship: shipName(env, addr), Host: addr, Container: c.ID, LiveSpecHash: c.SpecHash()}
			switch {
			case c.Temporary():
				st.Causes = []string{"leftover replacement container of an interrupted apply"}
			case desired && blocked[c.Instance()]:
				st.Action = plan.Orphan
				st.Causes = []string{fmt.Sprintf("%s moves to ship %s, which cannot run it now: kept", c.Instance(), in.Ship)}
			case desired:
				st.Causes = []string{fmt.Sprintf("%s moved to ship %s", c.Instance(), in.Ship)}
				if id, ok := upStep[c.Instance()]; ok {
					st.After = []string{id}
				}
			case opts.Prune:
				st.Causes = []string{"no longer in the manifest"}
			default:
				st.Action = plan.Orphan
				st.Causes = []string{"no longer in the manifest (use --prune to remove)"}
			}
			if st.Action == plan.Remove && !desired && !c.Temporary() {
				removedSvc[st.Service] = append(removedSvc[st.Service], st.ID)
			}
			removals = append(removals, st)
		}
	}
	// Stop order among removals: dependents go first.
	for i := range removals {
		st := &removals[i]
		if st.Action != plan.Remove || env.Service(st.Service) == nil {
			continue
		}
		for _, dependent := range env.Dependents(st.Service) {
			st.After = append(st.After, removedSvc[dependent]...)
		}
	}
	removals = append(removals, wlRemovals...)
	out := make([]plan.Step, 0, len(leftovers)+len(changes)+len(removals))
	out = append(out, leftovers...)
	out = append(out, changes...)
	out = append(out, stopOrdered(removals)...)
	for i := range out {
		slices.Sort(out[i].After)
		out[i].After = slices.Compact(out[i].After)
	}
	return out
}

// stopOrdered sorts steps so that each comes after the steps of the list it
// runs after, keeping the given order otherwise.
func stopOrdered(steps []plan.Step) []plan.Step {
	index := make(map[string]int, len(steps))
	for i, st := range steps {
		index[st.ID] = i
	}
	placed := make([]bool, len(steps))
	out := make([]plan.Step, 0, len(steps))
	var place func(i int, depth int)
	place = func(i, depth int) {
		if placed[i] || depth > len(steps) {
			return
		}
		for _, a := range steps[i].After {
			if j, ok := index[a]; ok {
				place(j, depth+1)
			}
		}
		if !placed[i] {
			placed[i] = true
			out = append(out, steps[i])
		}
	}
	for i := range steps {
		place(i, 0)
	}
	return out
}

// pruneUnknownEnvs removes the owner's containers of environments that are
// not in the repository any more (by their labels), and the objects its
// cluster inventories record for such environments. Containers made before
// owners existed are never pruned this way: nothing says whose they are.
// gone, when set, must accept the manifest path and labels the objects
// recorded.
func pruneUnknownEnvs(known map[string]bool, state *live.State, owner string, gone func(string, map[string]string, bool) bool) []plan.Step {
	var out []plan.Step
	for _, addr := range sortedHosts(state) {
		for _, c := range state.Hosts[addr].Containers {
			if c.Owner() != owner || !c.Ours(owner) || known[c.Env()] {
				continue
			}
			if gone != nil && !gone(c.Origin()) {
				continue
			}
			out = append(out, plan.Step{ID: stepID(c.Env(), addr, c.Name), Action: plan.Remove, Env: c.Env(), Service: c.Service(),
				Instance: c.Name, Ship: addr, Host: addr, Container: c.ID, LiveSpecHash: c.SpecHash(),
				Causes: []string{"environment " + c.Env() + " is no longer in the repository"}})
		}
	}
	if state != nil {
		addrs := make([]string, 0, len(state.Clusters))
		for a, c := range state.Clusters {
			if c.Err == nil {
				addrs = append(addrs, a)
			}
		}
		slices.Sort(addrs)
		seen := map[string]bool{}
		for _, addr := range addrs {
			for _, inv := range state.Clusters[addr].Inventories {
				if inv.Owner != owner || inv.Env == "" || known[inv.Env] {
					continue
				}
				if gone != nil && !gone(inv.File, inv.Labels, inv.HasOrigin) {
					continue
				}
				for _, svc := range inv.Services {
					id := stepID(inv.Env, addr, svc)
					if seen[id] {
						continue
					}
					seen[id] = true
					out = append(out, plan.Step{ID: id, Action: plan.Remove, Env: inv.Env, Service: svc,
						Instance: svc, Ship: addr, Host: addr,
						Causes: []string{"environment " + inv.Env + " is no longer in the repository"}})
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b plan.Step) int { return strings.Compare(a.Env, b.Env) })
	return out
}

func sortedHosts(state *live.State) []string {
	if state == nil {
		return nil
	}
	keys := make([]string, 0, len(state.Hosts))
	for k, h := range state.Hosts {
		if h.Err == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// shipAddresses returns the address of each ship of env, by ship name.
func shipAddresses(env *manifest.Environment) map[string]string {
	out := make(map[string]string, len(env.Ships))
	for name, ship := range env.Ships {
		out[name] = ship.Address()
	}
	return out
}

func shipName(env *manifest.Environment, addr string) string {
	for _, name := range env.ShipNames() {
		if env.Ships[name].Address() == addr {
			return name
		}
	}
	return addr
}

// hostIndex finds a host's containers by owner and by name without a scan
// per instance.
type hostIndex struct {
	owned map[string][]*live.Container // env + "\x00" + instance
	named map[string]*live.Container
	// byEnv holds the owner's containers by environment, in the host's
	// order.
	byEnv map[string][]*live.Container
	// rollbacks are the containers that carry a rollback marker.
	rollbacks []*live.Container
}

// indexHosts indexes every observed host once per Compute; owned holds
// only the containers of the owner.
func indexHosts(state *live.State, owner string) map[string]*hostIndex {
	out := map[string]*hostIndex{}
	if state == nil {
		return out
	}
	for addr, h := range state.Hosts {
		hi := &hostIndex{owned: make(map[string][]*live.Container, len(h.Containers)), named: make(map[string]*live.Container, len(h.Containers)),
			byEnv: map[string][]*live.Container{}}
		for i := range h.Containers {
			c := &h.Containers[i]
			hi.named[c.Name] = c
			if c.Ours(owner) {
				env := c.Env()
				key := env + "\x00" + c.Instance()
				hi.owned[key] = append(hi.owned[key], c)
				hi.byEnv[env] = append(hi.byEnv[env], c)
			}
			if c.Labels[label.Rollback] != "" {
				hi.rollbacks = append(hi.rollbacks, c)
			}
		}
		out[addr] = hi
	}
	return out
}

func conflictCause(c *live.Container, owner string) string {
	switch {
	case c.Owned() && c.Owner() != "" && c.Owner() != owner:
		who := c.OwnerName()
		if who == "" {
			who = c.Owner()
		}
		return fmt.Sprintf("a container named %s belongs to environment %q of another owner, %s; it is left alone", c.Name, c.Env(), who)
	case c.Owned() && c.Name != c.Instance() && !c.Temporary():
		return fmt.Sprintf("a container named %s carries the labels of instance %s of environment %q; it is left alone", c.Name, c.Instance(), c.Env())
	case c.Owned():
		return fmt.Sprintf("a container named %s belongs to environment %q; it is left alone", c.Name, c.Env())
	}
	return fmt.Sprintf("a container named %s exists without maestro-sync labels; it is left alone (apply --adopt replaces it with a container of ours, as MaestroNG's would be)", c.Name)
}

func unreachable(h *live.Host) string {
	if h == nil || h.Err == nil {
		return "ship not observed"
	}
	return "ship unreachable: " + h.Err.Error()
}

// liveSpec reads the spec summary a container was created with; nil when
// it has none.
func liveSpec(c *live.Container) *manifest.Spec { return parseSpec(c.Labels[label.Spec]) }

// parseSpec reads a spec summary (JSON); nil when absent or unreadable.
func parseSpec(raw string) *manifest.Spec {
	if raw == "" {
		return nil
	}
	var s manifest.Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil
	}
	return &s
}

// Digest is a digest of a desired state: every environment's instances,
// where they run and their spec hashes. Two loads of unchanged manifests
// give the same digest.
func Digest(envs []*manifest.Environment) string {
	var lines []string
	for _, env := range envs {
		addrs := shipAddresses(env)
		for _, svc := range env.Services {
			for _, in := range svc.Instances {
				lines = append(lines, env.Name+"\x00"+in.Name+"\x00"+addrs[in.Ship]+"\x00"+in.SpecHash)
			}
		}
		lines = append(lines, env.Name)
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:16])
}

// Stale compares a saved plan with one computed now for the same options
// and returns what differs: nil when the saved plan still describes the
// live state and the desired state exactly.
func Stale(saved, now *plan.Plan) []string {
	var out []string
	if saved.Owner != now.Owner {
		out = append(out, fmt.Sprintf("the owner changed: %q → %q", saved.Owner, now.Owner))
	}
	if saved.Desired != now.Desired {
		out = append(out, "the manifests changed since the plan was made")
	}
	if saved.Revision != now.Revision {
		out = append(out, fmt.Sprintf("the revision changed: %q → %q", saved.Revision, now.Revision))
	}
	key := func(st plan.Step) string {
		return strings.Join([]string{string(st.Action), st.Container, st.LiveSpecHash, st.SpecHash}, "|")
	}
	old := map[string]plan.Step{}
	for _, st := range saved.Steps {
		old[st.ID] = st
	}
	for _, st := range now.Steps {
		o, ok := old[st.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s/%s: new step %s", st.Env, st.Instance, st.Action))
		case key(o) != key(st):
			out = append(out, fmt.Sprintf("%s/%s: planned %s of %s, now %s of %s", st.Env, st.Instance, o.Action, shortID(o.Container), st.Action, shortID(st.Container)))
		}
		delete(old, st.ID)
	}
	for _, st := range saved.Steps {
		if _, gone := old[st.ID]; gone {
			out = append(out, fmt.Sprintf("%s/%s: planned %s no longer applies", st.Env, st.Instance, st.Action))
		}
	}
	return out
}

func shortID(id string) string {
	if id == "" {
		return "nothing"
	}
	return id[:min(12, len(id))]
}

// downtime tells why replacing the live container c by one of in leaves a
// moment with neither running: the new one needs a host port the old one
// holds (or the host's network), so the old one stops first. "" when the
// replacement runs beside the old one.
func downtime(c *live.Container, in *manifest.Instance) string {
	if in.Net == "host" {
		return "downtime: the host's network is shared, so the old container stops before the new one starts"
	}
	held := map[string]bool{}
	for _, b := range c.Ports {
		if i := strings.LastIndex(b, ":"); i >= 0 {
			held[b[i+1:]] = true
		}
	}
	var clash []string
	for _, p := range in.Ports {
		if in.Route != nil && p.Name == in.Route.Port {
			continue
		}
		lo, hi := p.ExternalRange()
		for n := lo; n > 0 && n <= hi && n-lo < 1024; n++ {
			if key := strconv.Itoa(n) + "/" + p.Protocol(); held[key] {
				clash = append(clash, key)
			}
		}
	}
	if len(clash) == 0 {
		return ""
	}
	msg := "downtime: host ports clash (" + strings.Join(clash, ", ") + "), so the old container stops before the new one starts"
	if in.Route == nil {
		msg += "; route the service through the front proxy (proxy:) for zero downtime"
	}
	return msg
}

// rolledBack returns the rollback marker that holds env: one of the
// owner's, on a ship of env, made while the source desired what it
// desires now.
func rolledBack(env *manifest.Environment, index map[string]*hostIndex, opts Options) (live.Rollback, bool) {
	digest := ""
	for _, name := range env.ShipNames() {
		hi := index[env.Ships[name].Address()]
		if hi == nil {
			continue
		}
		for _, c := range hi.rollbacks {
			rb, ok := c.Rollback()
			if !ok || rb.Env != env.Name || c.Owner() != opts.Owner {
				continue
			}
			if digest == "" {
				digest = Digest([]*manifest.Environment{env})
			}
			if rb.Digest == digest {
				return rb, true
			}
		}
	}
	return live.Rollback{}, false
}

// rollbackNote says what a rollback marker holds.
func rollbackNote(rb live.Rollback) string {
	what := "rolled back to the previous containers"
	if rb.From != "" && rb.To != "" {
		what = "rolled back from " + shortRev(rb.From) + " to " + shortRev(rb.To)
	}
	return what + " at " + rb.At.Format("2006-01-02 15:04:05 MST") +
		": nothing is planned while the source desires what was rolled back (a new commit that changes it, or maestro-sync rollback --release, deploys again)"
}

func shortRev(r string) string { return r[:min(12, len(r))] }

// stage splits the replacements of each service with a rollout into
// batches, in instance order across ships: a bake step after each batch
// but the last watches it, and the next batch runs after that step.
func stage(env *manifest.Environment, changes []plan.Step) []plan.Step {
	for _, svc := range env.Services {
		if svc.Rollout == nil {
			continue
		}
		var idx []int
		for i, st := range changes {
			if st.Action == plan.Replace && st.Service == svc.Name {
				idx = append(idx, i)
			}
		}
		size := svc.Rollout.Size(len(svc.Instances))
		if len(idx) <= size {
			continue
		}
		batches := (len(idx) + size - 1) / size
		gates := map[int]plan.Step{} // position in changes → gate after it
		for b := 0; b < batches-1; b++ {
			batch := idx[b*size : (b+1)*size]
			next := idx[(b+1)*size : min((b+2)*size, len(idx))]
			gate := plan.Step{
				ID: env.Name + "/rollout/" + svc.Name + "/" + strconv.Itoa(b+1), Action: plan.Bake, Env: env.Name, Service: svc.Name,
				Instance: fmt.Sprintf("%s batch %d/%d", svc.Name, b+1, batches), Host: changes[batch[0]].Host,
				Gate: &plan.Gate{Batch: b + 1, Batches: batches, Bake: svc.Rollout.Bake.String()},
			}
			for _, i := range batch {
				gate.After = append(gate.After, changes[i].ID)
				gate.Gate.Instances = append(gate.Gate.Instances, changes[i].Instance)
			}
			gate.Causes = []string{fmt.Sprintf("%s must keep running and healthy for %s before batch %d starts; if not, the batch is swapped back and the rollout stops",
				strings.Join(gate.Gate.Instances, ", "), svc.Rollout.Bake, b+2)}
			for _, i := range next {
				changes[i].After = append(changes[i].After, gate.ID)
			}
			gates[batch[len(batch)-1]] = gate
		}
		out := make([]plan.Step, 0, len(changes)+len(gates))
		for i, st := range changes {
			out = append(out, st)
			if g, ok := gates[i]; ok {
				out = append(out, g)
			}
		}
		changes = out
	}
	return changes
}

// builds plans the image builds that the steps need: one per image that a
// created or replaced instance or workload runs and that is not yet where
// its instances get it (its registry, or its builder for a local image).
// Those steps then run after their build; the others run the image pinned
// by its registry digest.
func builds(env *manifest.Environment, state *live.State, steps []plan.Step) []plan.Step {
	var out []plan.Step
	at := map[string]int{}                  // image → index in out
	first := map[string]*manifest.Service{} // image → its first service, which builds it
	for _, svc := range env.Services {
		if svc.Build != nil && first[svc.Image] == nil {
			first[svc.Image] = svc
		}
	}
	for i := range steps {
		st := &steps[i]
		svc := env.Service(st.Service)
		if st.Action != plan.Create && st.Action != plan.Replace || svc == nil || svc.Build == nil {
			continue
		}
		ref, b := svc.Image, svc.Build
		img := state.Image(ref)
		if img != nil && img.Present && img.Err == nil {
			if img.Digest != "" {
				st.Image = ref + "@" + img.Digest
			}
			continue
		}
		j, ok := at[ref]
		if !ok {
			owner := first[ref]
			builder := env.Ships[owner.Build.Builder]
			if builder == nil {
				continue // validated: a cluster service names its builder
			}
			bs := newBuildStep(env.Name, owner)
			bs.Host = builder.Address()
			bs.ID = stepID(env.Name, bs.Host, "build "+ref)
			if img != nil && img.Err != nil {
				bs.Causes = append(bs.Causes, "could not tell whether it is built: "+img.Err.Error())
			}
			out = append(out, bs)
			j = len(out) - 1
			at[ref] = j
		}
		bs := &out[j]
		alsoRuns(bs, svc.Name)
		if bs.Build.Files < 0 {
			if old := state.Image(runningImage(state, st)); old != nil && old.Files != nil {
				bs.Build.Files = build.Changed(old.Files, b.Files)
			}
		}
		st.After = append(st.After, bs.ID)
	}
	for i := range out {
		out[i].Causes[0] = buildCause(out[i].Build, steps)
	}
	return out
}

// newBuildStep is the step that builds svc's image, svc being the first
// service that runs it. Its first cause, ID and host are the caller's.
func newBuildStep(env string, svc *manifest.Service) plan.Step {
	b := svc.Build
	where := "kept on " + b.Builder
	if b.Push {
		where = "pushed to its registry"
	}
	return plan.Step{Action: plan.Build, Env: env, Service: svc.Name, Instance: svc.Name, Ship: b.Builder,
		Causes: []string{"", fmt.Sprintf("context %s %s → %s, %s", b.Context, shortDigest(b.Digest), svc.Image, where)},
		Build:  &plan.BuildInfo{Image: svc.Image, Push: b.Push, Context: b.Context, Dockerfile: b.Dockerfile, Digest: b.Digest, Files: -1, Services: []string{svc.Name}}}
}

// alsoRuns records that svc runs the image the build step st builds.
func alsoRuns(st *plan.Step, svc string) {
	if !slices.Contains(st.Build.Services, svc) {
		st.Build.Services = append(st.Build.Services, svc)
		st.Instance = strings.Join(st.Build.Services, ", ")
	}
}

// changedFiles says how many files of a build context changed.
func changedFiles(n int) string {
	if n == 1 {
		return "context changed: 1 file"
	}
	return fmt.Sprintf("context changed: %d files", n)
}

// buildCause says why an image is built: how many files of its context
// changed since what its services run, as far as that is known.
func buildCause(b *plan.BuildInfo, steps []plan.Step) string {
	if b.Files >= 0 {
		return changedFiles(b.Files)
	}
	for _, st := range steps {
		if st.Action == plan.Replace && slices.Contains(b.Services, st.Service) {
			return "context changed"
		}
	}
	return "not built yet"
}

// runningImage is the image reference (without a digest) of the container
// a step replaces, or "".
func runningImage(state *live.State, st *plan.Step) string {
	h := state.Host(st.Host)
	if st.Container == "" || h == nil {
		return ""
	}
	for i := range h.Containers {
		if c := &h.Containers[i]; c.ID == st.Container {
			ref, _, _ := strings.Cut(c.Image, "@")
			return ref
		}
	}
	return ""
}

// shortDigest is a digest's algorithm and first 12 hex digits.
func shortDigest(d string) string { return d[:min(len("sha256:")+12, len(d))] }
