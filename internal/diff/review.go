package diff

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/kballard/go-shellquote"

	"github.com/maestro-sync/maestro-sync/internal/build"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/secret"
)

// Revisions compares two desired states (of two revisions of a repository)
// without any live state: which environments, services and instances are
// added, removed, replaced or unchanged, and for each instance the fields
// that differ, with values unless they are sensitive.
func Revisions(base, head []*manifest.Environment, m *secret.Matcher) *plan.Plan {
	if m == nil {
		m = secret.New(nil)
	}
	p := &plan.Plan{}
	baseBy, headBy := byName(base), byName(head)
	for _, name := range sortedUnion(baseBy, headBy) {
		b, h := baseBy[name], headBy[name]
		ec := plan.EnvChange{Name: name}
		var steps []plan.Step
		switch {
		case b == nil:
			ec.Status, ec.File = "added", h.File
			steps = reviewBuilds(&manifest.Environment{}, h)
			for _, in := range h.StartOrder(h.Instances()) {
				steps = append(steps, reviewStep(h, in, plan.Create, []string{"environment " + name + " added"}))
			}
			steps = append(steps, compareWorkloads(&manifest.Environment{}, h, m)...)
		case h == nil:
			ec.Status, ec.File = "removed", b.File
			for _, in := range b.StopOrder(b.Instances()) {
				steps = append(steps, reviewStep(b, in, plan.Remove, []string{"environment " + name + " removed"}))
			}
			steps = append(steps, compareWorkloads(b, &manifest.Environment{}, m)...)
		default:
			ec.File = h.File
			steps = compareEnv(b, h, m)
			ec.Status = "unchanged"
			for _, st := range steps {
				if st.Action != plan.Unchanged || len(st.Changes) > 0 {
					ec.Status = "changed"
				}
			}
		}
		p.Environments = append(p.Environments, ec)
		p.Steps = append(p.Steps, steps...)
	}
	return p
}

func byName(envs []*manifest.Environment) map[string]*manifest.Environment {
	m := make(map[string]*manifest.Environment, len(envs))
	for _, e := range envs {
		m[e.Name] = e
	}
	return m
}

func reviewStep(env *manifest.Environment, in *manifest.Instance, a plan.Action, causes []string) plan.Step {
	st := plan.Step{ID: env.Name + "/" + in.Ship + "/" + in.Name, Action: a, Env: env.Name, Service: in.Service,
		Instance: in.Name, Ship: in.Ship, SpecHash: in.SpecHash, Causes: causes}
	if a == plan.Create || a == plan.Replace {
		st.Warnings = manifest.Risks(in)
	}
	return st
}

// compareEnv compares the instances of one environment in two revisions.
func compareEnv(b, h *manifest.Environment, m *secret.Matcher) []plan.Step {
	out := reviewBuilds(b, h)
	for _, in := range h.StartOrder(h.Instances()) {
		old := b.Instance(in.Name)
		if old == nil {
			cause := "instance added"
			if b.Service(in.Service) == nil {
				cause = "service " + in.Service + " added"
			}
			out = append(out, reviewStep(h, in, plan.Create, []string{cause}))
			continue
		}
		changes := instanceChanges(b, h, old, in, m)
		st := reviewStep(h, in, plan.Unchanged, nil)
		st.LiveSpecHash = old.SpecHash
		st.Changes = changes
		for _, c := range changes {
			if c.Replaces {
				st.Action = plan.Replace
			}
			st.Causes = append(st.Causes, changeCause(c))
		}
		if st.Action == plan.Replace && old.SpecHash == in.SpecHash && b.Ships[old.Ship].Address() == h.Ships[in.Ship].Address() {
			st.Action = plan.Unchanged // defensive: equal specs never replace
		}
		if st.Action == plan.Replace {
			st.Warnings = manifest.Risks(in)
		}
		out = append(out, st)
	}
	for _, in := range b.StopOrder(b.Instances()) {
		if h.Instance(in.Name) != nil {
			continue
		}
		cause := "instance removed"
		if h.Service(in.Service) == nil {
			cause = "service " + in.Service + " removed"
		}
		out = append(out, reviewStep(b, in, plan.Remove, []string{cause}))
	}
	return append(out, compareWorkloads(b, h, m)...)
}

// workloadStep is the step of a cluster service in a review plan.
func workloadStep(env *manifest.Environment, svc *manifest.Service, a plan.Action, causes []string) plan.Step {
	w := svc.Workload
	return plan.Step{ID: env.Name + "/" + w.Cluster + "/" + svc.Name, Action: a, Env: env.Name, Service: svc.Name,
		Instance: svc.Name, Ship: w.Cluster, SpecHash: w.SpecHash, Causes: causes}
}

// compareWorkloads compares the cluster services of an environment in two
// revisions.
func compareWorkloads(b, h *manifest.Environment, m *secret.Matcher) []plan.Step {
	var out []plan.Step
	for _, svc := range h.Services {
		if svc.Workload == nil {
			continue
		}
		old := b.Service(svc.Name)
		if old == nil || old.Workload == nil {
			out = append(out, workloadStep(h, svc, plan.Create, []string{"service " + svc.Name + " added"}))
			continue
		}
		ow, cw := old.Workload, svc.Workload
		var changes []plan.Change
		add := func(field, o, n string, replaces bool) {
			if o != n {
				changes = append(changes, plan.Change{Field: field, Old: o, New: n, Replaces: replaces})
			}
		}
		oc, cc := b.Clusters[ow.Cluster], h.Clusters[cw.Cluster]
		if oc.Address() != cc.Address() {
			add("cluster", ow.Cluster+" ("+oc.Address()+")", cw.Cluster+" ("+cc.Address()+")", true)
		} else {
			add("cluster", ow.Cluster, cw.Cluster, false)
		}
		add("image", ow.Image, cw.Image, true)
		add("command", shellquote.Join(ow.Command...), shellquote.Join(cw.Command...), true)
		add("mode", ow.Mode, cw.Mode, true)
		add("replicas", strconv.Itoa(ow.Replicas), strconv.Itoa(cw.Replicas), ow.Mode != cw.Mode) // scaled in place
		changes = append(changes, envChanges(ow.Env, cw.Env, svc.Name, m)...)
		op, cp := map[string]manifest.Port{}, map[string]manifest.Port{}
		for _, p := range ow.Ports {
			op[p.Name] = p
		}
		for _, p := range cw.Ports {
			cp[p.Name] = p
		}
		for _, k := range sortedUnion(op, cp) {
			var os, cs string
			if p, ok := op[k]; ok {
				os = portText(p)
			}
			if p, ok := cp[k]; ok {
				cs = portText(p)
			}
			add("ports."+k, os, cs, true)
		}
		changes = append(changes, fieldChanges("limits", manifest.Limits{Memory: ow.MemoryBytes, CPUMillis: ow.CPUMillis}, manifest.Limits{Memory: cw.MemoryBytes, CPUMillis: cw.CPUMillis}, true)...)
		changes = append(changes, fieldChanges("lifecycle.running", ow.Lifecycle["running"], cw.Lifecycle["running"], true)...)
		add("requires", strings.Join(old.Requires, ", "), strings.Join(svc.Requires, ", "), false)
		add("wants_info", strings.Join(old.WantsInfo, ", "), strings.Join(svc.WantsInfo, ", "), false)
		st := workloadStep(h, svc, plan.Unchanged, nil)
		st.LiveSpecHash, st.Changes = ow.SpecHash, changes
		if ow.Replicas != cw.Replicas && cw.Mode == manifest.ModeDeployment {
			st.Action, st.Replicas = plan.Scale, cw.Replicas
		}
		for _, c := range changes {
			if c.Replaces {
				st.Action = plan.Replace
			}
			st.Causes = append(st.Causes, changeCause(c))
		}
		out = append(out, st)
	}
	for _, svc := range b.Services {
		if svc.Workload == nil {
			continue
		}
		if cur := h.Service(svc.Name); cur == nil || cur.Workload == nil {
			out = append(out, workloadStep(b, svc, plan.Remove, []string{"service " + svc.Name + " removed"}))
		}
	}
	return out
}

// changeCause is the one-line cause of a change, without values.
func changeCause(c plan.Change) string {
	s := c.Field + " changed"
	switch {
	case c.Field == "image":
		s = imageCause(c.Old, c.New)
	case c.Old == "" && !c.Sensitive:
		s = c.Field + " added"
	case c.New == "" && !c.Sensitive:
		s = c.Field + " removed"
	}
	if c.Source != "" && c.Source != manifest.SourceFixed {
		s += " (knock-on: injected from " + c.Source + ")"
	}
	return s
}

// instanceChanges lists what differs between two versions of an instance.
func instanceChanges(benv, henv *manifest.Environment, old, cur *manifest.Instance, m *secret.Matcher) []plan.Change {
	var out []plan.Change
	add := func(field, o, n string, replaces bool) {
		if o != n {
			out = append(out, plan.Change{Field: field, Old: o, New: n, Replaces: replaces})
		}
	}
	// A ship is a Docker daemon: renaming it moves nothing, pointing it at
	// another daemon moves every instance on it.
	if oa, ca := benv.Ships[old.Ship].Address(), henv.Ships[cur.Ship].Address(); oa != ca {
		add("ship", old.Ship+" ("+oa+")", cur.Ship+" ("+ca+")", true)
	} else {
		add("ship", old.Ship, cur.Ship, false)
	}
	add("image", old.Image, cur.Image, true)
	add("command", shellquote.Join(old.Command...), shellquote.Join(cur.Command...), true)
	out = append(out, envChanges(old.Env, cur.Env, cur.Service, m)...)
	op, cp := map[string]manifest.Port{}, map[string]manifest.Port{}
	for _, p := range old.Ports {
		op[p.Name] = p
	}
	for _, p := range cur.Ports {
		cp[p.Name] = p
	}
	for _, k := range sortedUnion(op, cp) {
		o, inOld := op[k]
		c, inCur := cp[k]
		var os, cs string
		if inOld {
			os = portText(o)
		}
		if inCur {
			cs = portText(c)
		}
		add("ports."+k, os, cs, true)
	}
	for _, f := range specFields(old.Spec(), cur.Spec()) {
		out = append(out, fieldChanges(f.name, f.old, f.new, true)...)
	}
	for _, state := range sortedUnion(old.Lifecycle, cur.Lifecycle) {
		out = append(out, fieldChanges("lifecycle."+state, old.Lifecycle[state], cur.Lifecycle[state], false)...)
	}
	os, cs := benv.Service(old.Service), henv.Service(cur.Service)
	add("requires", strings.Join(os.Requires, ", "), strings.Join(cs.Requires, ", "), false)
	add("wants_info", strings.Join(os.WantsInfo, ", "), strings.Join(cs.WantsInfo, ", "), false)
	return out
}

// envChanges compares two environments variable by variable. Sensitive
// values are never copied into the change.
func envChanges(old, cur manifest.Env, own string, m *secret.Matcher) []plan.Change {
	names := map[string]bool{}
	for _, v := range old {
		names[v.Name] = true
	}
	for _, v := range cur {
		names[v.Name] = true
	}
	var out []plan.Change
	for _, name := range sortedUnion(names, nil) {
		o, inOld := old.Lookup(name)
		c, inCur := cur.Lookup(name)
		if inOld && inCur && o.Value == c.Value && o.Unset == c.Unset {
			continue
		}
		ch := plan.Change{Field: "env." + name, Replaces: true, Source: c.Source}
		if !inCur {
			ch.Source = o.Source
		}
		if ch.Source == own {
			ch.Source = manifest.SourceFixed // the instance's own service: not a knock-on
		}
		if (inOld && m.Var(o)) || (inCur && m.Var(c)) {
			ch.Sensitive, ch.Added, ch.Removed = true, !inOld, !inCur
		} else {
			ch.Old, ch.New = envText(o, inOld), envText(c, inCur)
		}
		out = append(out, ch)
	}
	return out
}

func envText(v manifest.EnvVar, present bool) string {
	switch {
	case !present:
		return ""
	case v.Unset:
		return "(unset)"
	case v.Value == "":
		return `""`
	}
	return v.Value
}

func compactJSON(v any) string {
	data, _ := json.Marshal(v)
	switch s := string(data); s {
	case "null", "{}", "[]", `""`, "0", "false":
		return ""
	default:
		return s
	}
}

// fieldChanges compares a structured field of two specs: a mapping key by
// key, a list of the same length item by item ([i]), anything else as
// one value; so that a lifecycle change reads "lifecycle.running[0].max_wait:
// 30 → 60", not two whole JSON texts. Sizes read as written (64m).
func fieldChanges(field string, old, cur any, replaces bool) []plan.Change {
	var out []plan.Change
	var walk func(field string, o, c json.RawMessage)
	walk = func(field string, o, c json.RawMessage) {
		ok, ck := objectKeys(o), objectKeys(c)
		// A mapping added or removed as a whole is told key by key too.
		if ok == nil && ck != nil && valueText(field, o) == "" {
			ok, o = []string{}, json.RawMessage("{}")
		}
		if ck == nil && ok != nil && valueText(field, c) == "" {
			ck, c = []string{}, json.RawMessage("{}")
		}
		if ok != nil && ck != nil {
			var om, cm map[string]json.RawMessage
			json.Unmarshal(o, &om)
			json.Unmarshal(c, &cm)
			for _, k := range ck {
				if !slices.Contains(ok, k) {
					ok = append(ok, k)
				}
			}
			for _, k := range ok {
				walk(field+"."+k, om[k], cm[k])
			}
			return
		}
		var ol, cl []json.RawMessage
		if json.Unmarshal(o, &ol) == nil && json.Unmarshal(c, &cl) == nil && ol != nil && cl != nil && len(ol) == len(cl) {
			for i := range ol {
				walk(field+"["+strconv.Itoa(i)+"]", ol[i], cl[i])
			}
			return
		}
		if os, cs := valueText(field, o), valueText(field, c); os != cs {
			out = append(out, plan.Change{Field: field, Old: os, New: cs, Replaces: replaces})
		}
	}
	walk(field, json.RawMessage(compactJSON(old)), json.RawMessage(compactJSON(cur)))
	return out
}

// objectKeys returns the keys of a JSON object in their order, nil when
// raw is not an object.
func objectKeys(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	keys := []string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return keys
}

// valueText writes a JSON value for a plan: strings bare, sizes (memory,
// swap) as a manifest writes them, empty values as nothing, the rest as
// compact JSON as it was.
func valueText(field string, raw json.RawMessage) string {
	switch t := strings.TrimSpace(string(raw)); t {
	case "", "null", "{}", "[]", `""`, "0", "false":
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		if strings.HasSuffix(field, ".memory") || strings.HasSuffix(field, ".swap") || strings.HasSuffix(field, "shm_size") {
			return sizeText(int64(x))
		}
	}
	return string(raw)
}

// sizeText writes a number of bytes as 64m, 2g or 512k when it is a whole
// number of them.
func sizeText(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// reviewBuilds returns a build step for each image of h whose context
// differs from b's: how many files changed, and the context's digest.
func reviewBuilds(b, h *manifest.Environment) []plan.Step {
	var out []plan.Step
	at := map[string]int{}
	for _, svc := range h.Services {
		nb := svc.Build
		if nb == nil {
			continue
		}
		var cause string
		old := b.Service(svc.Name)
		switch {
		case old == nil:
			cause = "service " + svc.Name + " added"
		case old.Build == nil:
			cause = "built from the repository from now on (was " + old.Image + ")"
		case old.Build.Digest == nb.Digest:
			continue
		default:
			cause = changedFiles(build.Changed(old.Build.Files, nb.Files))
		}
		if j, ok := at[svc.Image]; ok {
			alsoRuns(&out[j], svc.Name)
			continue
		}
		st := newBuildStep(h.Name, svc)
		st.ID, st.Causes[0] = h.Name+"/"+nb.Builder+"/build "+svc.Image, cause
		at[svc.Image] = len(out)
		out = append(out, st)
	}
	return out
}
