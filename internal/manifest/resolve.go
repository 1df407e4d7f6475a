package manifest

import (
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// resolve runs the checks and steps that need the whole environment:
// references between services and instances, the dependency graph, link
// variables, host port clashes and spec hashes.
func (b *builder) resolve() {
	instances := map[string]*instanceDraft{}
	services := map[string]*serviceDraft{}
	for _, sd := range b.services {
		services[sd.svc.Name] = sd
		for _, id := range sd.instances {
			if prev, dup := instances[id.in.Name]; dup {
				b.errorf(id.f.node, sd.f.sub("instances")+"."+id.in.Name, "instance %q is already defined in service %q (line %d): instance names are container names and must be unique", id.in.Name, prev.in.Service, prev.in.line)
				continue
			}
			instances[id.in.Name] = id
		}
	}
	b.warnEnvNameClashes()

	g := &graph{deps: map[string][]string{}, requires: map[string][]string{}, edges: map[[2]string]edge{}}
	serviceNames := make([]string, 0, len(b.services))
	for _, sd := range b.services {
		serviceNames = append(serviceNames, sd.svc.Name)
	}
	for _, sd := range b.services {
		name := sd.svc.Name
		for _, key := range [...]string{"requires", "wants_info"} {
			list := sd.svc.Requires
			if key == "wants_info" {
				list = sd.svc.WantsInfo
			}
			for i, dep := range list {
				n := b.listNode(sd.f, key, i)
				if _, ok := services[dep]; !ok {
					b.errorf(n, sd.f.sub(key), "unknown service %q (services: %s)", dep, strings.Join(sortedSet(serviceNames), ", "))
					continue
				}
				if key == "requires" {
					g.addEdge(name, dep, edge{n, sd.f.sub("requires")})
					g.requires[name] = append(g.requires[name], dep)
				}
			}
		}
	}
	b.volumesFrom(instances, g)
	if cycles := g.cycles(serviceNames); len(cycles) > 0 {
		for _, c := range cycles {
			from, to := c[len(c)-2], c[len(c)-1]
			edge := g.edges[[2]string{from, to}]
			if len(c) == 2 {
				b.errorf(edge.node, edge.path, "dependency cycle: %s requires itself", from)
				continue
			}
			b.errorf(edge.node, edge.path, "dependency cycle: %s", strings.Join(c, " → "))
		}
	}
	if b.errs.HasErrors() {
		return
	}
	g.finish()
	b.env.graph = g
	for _, sd := range b.services {
		sd.svc.Dependencies = g.deps[sd.svc.Name]
	}
	b.injectLinks(services)
	b.checkHostPorts()
}

// listNode returns the node of element i of a list field, or the field's
// key when the value is a single string.
func (b *builder) listNode(f *fields, key string, i int) *yaml.Node {
	e := f.byKey(key)
	if v := resolve(e.V); v.Kind == yaml.SequenceNode && i < len(v.Content) {
		return v.Content[i]
	}
	return e.V
}

// warnEnvNameClashes warns when two names turn into the same variable name
// part (e.g. a-b and a.b both become A_B).
func (b *builder) warnEnvNameClashes() {
	seen := map[string]string{}
	for _, sd := range b.services {
		svc := ToEnv(sd.svc.Name)
		if prev, ok := seen[svc]; ok && prev != sd.svc.Name {
			b.warnf(sd.f.node, sd.f.path, "services %q and %q share the variable prefix %s_: their injected variables overwrite each other", prev, sd.svc.Name, svc)
		}
		seen[svc] = sd.svc.Name
		inst := make(map[string]string, len(sd.instances))
		for _, id := range sd.instances {
			name := ToEnv(id.in.Name)
			if prev, ok := inst[name]; ok && prev != id.in.Name {
				b.warnf(id.f.node, id.f.path, "instances %q and %q share the variable name part %s: their injected variables overwrite each other", prev, id.in.Name, name)
			}
			inst[name] = id.in.Name
		}
	}
}

// volumesFrom checks volumes_from references: a known container on the same
// ship, without overlapping volumes. Each adds a dependency edge between
// the two services (none within one service).
func (b *builder) volumesFrom(instances map[string]*instanceDraft, g *graph) {
	for _, sd := range b.services {
		for _, id := range sd.instances {
			in := id.in
			if len(in.VolumesFrom) == 0 {
				continue
			}
			e := id.f.byKey("volumes_from")
			p := id.f.sub("volumes_from")
			for _, other := range in.VolumesFrom {
				od, ok := instances[other]
				switch {
				case other == in.Name:
					b.errorf(e.V, p, "%s cannot take volumes from itself", in.Name)
					continue
				case !ok:
					b.errorf(e.V, p, "unknown container %q to get volumes from", other)
					continue
				case od.in.Ship != in.Ship:
					b.errorf(e.V, p, "%s (ship %s) and %s (ship %s) must be on the same ship for volumes_from", other, od.in.Ship, in.Name, in.Ship)
					continue
				}
				if clash := intersect(volumeTargets(in), volumeTargets(od.in)); len(clash) > 0 {
					b.errorf(e.V, p, "volume conflicts between %s and %s: %s", in.Name, other, strings.Join(clash, ", "))
				}
				if od.in.Service != in.Service {
					g.addEdge(in.Service, od.in.Service, edge{e.V, p})
				}
			}
		}
	}
}

func volumeTargets(in *Instance) []string {
	out := slices.Clone(in.ContainerVolumes)
	for _, v := range in.Volumes {
		out = append(out, v.Target)
	}
	return sortedSet(out)
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// injectLinks writes MaestroNG's link variables into every instance's env
// (for its own service with internal ports, the transitive requires and the
// direct wants_info services without them) and computes its spec hash.
//
// Services are done in parallel, in two passes: each service's link lists
// first, which its dependents read, then the environments of its
// containers. The warnings of each service are kept apart and reported in
// the order of the services, as one pass over them would have.
func (b *builder) injectLinks(services map[string]*serviceDraft) {
	clusters := slices.ContainsFunc(b.services, func(sd *serviceDraft) bool { return sd.svc.Workload != nil })
	eachParallel(len(b.services), func(i int) {
		sd := b.services[i]
		b.linkLists(sd)
		if clusters {
			b.depLinkVars(sd, true)
		}
	})
	reports := make([]*decoder, len(b.services))
	eachParallel(len(b.services), func(i int) {
		sd := b.services[i]
		sb := b.part()
		reports[i] = sb.decoder
		warned := map[string]bool{}
		if sd.svc.Workload != nil {
			sb.workloadEnv(sd, services, warned)
			return
		}
		// Every instance of a service gets the same link variables.
		links := sb.shipLinks(sd, services)
		for _, id := range sd.instances {
			id.in.Env = sb.linkEnv(id.env, sd, links, warned)
			id.in.SpecHash = SpecHash(id.in)
		}
	})
	b.adopt(reports...)
}

// linkSet is the link variables of a service's containers, prepared once
// for all of them.
type linkSet struct {
	// vars are the variables in the order applyLinks writes them, and
	// prev the index in vars of the previous variable of the same name,
	// or -1. Both are nil when no two variables share a name.
	vars []EnvVar
	prev []int
	// final is the last variable of each name, sorted by name.
	final Env
}

// linkList is the link variables of one service as one consumer sees
// them.
type linkList struct {
	vars []EnvVar // in the order linkVars returns them
	// sorted is the last variable of each name, sorted by name; dups
	// tells that two variables of vars share a name.
	sorted Env
	dups   bool
}

func newLinkList(vars []EnvVar) *linkList {
	l := &linkList{vars: vars}
	sorted := slices.Clone(vars)
	slices.SortStableFunc(sorted, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	l.sorted = sorted[:0]
	for i := range sorted {
		if i+1 < len(sorted) && sorted[i+1].Name == sorted[i].Name {
			l.dups = true
			continue // the last one wins
		}
		l.sorted = append(l.sorted, sorted[i])
	}
	return l
}

// shipLinks returns the link variables of the containers of sd, a service
// on ships: what serviceLinkVars gives, merged from the lists of the
// service and its dependencies, each sorted once.
func (b *builder) shipLinks(sd *serviceDraft, services map[string]*serviceDraft) *linkSet {
	own, _ := b.linkLists(sd)
	dups := own.dups
	lists := []Env{own.sorted}
	deps := b.linkServices(sd)
	for _, dep := range deps {
		if dep != sd.svc.Name {
			_, dl := b.linkLists(services[dep])
			lists = append(lists, dl.sorted)
			dups = dups || dl.dups
		}
	}
	final := mergeEnvs(func(EnvVar, EnvVar, int) { dups = true }, lists...)
	if dups {
		vars := slices.Clone(own.vars)
		for _, dep := range deps {
			if dep != sd.svc.Name {
				_, dl := b.linkLists(services[dep])
				vars = append(vars, dl.vars...)
			}
		}
		return newLinkSet(vars)
	}
	return &linkSet{final: final}
}

// linkLists returns sd's link variables for its own containers and for
// its dependents' (without internal ports), on ships; computed once.
func (b *builder) linkLists(sd *serviceDraft) (own, dep *linkList) {
	if sd.ownLinks == nil {
		o, d := linkVarLists(sd, b.env, false)
		sd.ownLinks, sd.depLinkList = newLinkList(o), newLinkList(d)
	}
	return sd.ownLinks, sd.depLinkList
}

// mergeEnvs merges lists sorted by name, each holding a name once, into
// one: of the variables of one name, the one of the latest list wins. tie,
// when not nil, is called at each variable v of list i that displaces
// prev, a variable of an earlier list.
func mergeEnvs(tie func(prev, v EnvVar, i int), lists ...Env) Env {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make(Env, 0, n)
	var buf [8]Env
	lists = append(buf[:0], lists...) // the heads of the lists not merged yet
	for {
		// The least name at the head of a list.
		name, any := "", false
		for _, l := range lists {
			if len(l) > 0 && (!any || l[0].Name < name) {
				name, any = l[0].Name, true
			}
		}
		if !any {
			return out
		}
		var win EnvVar
		found := false
		for i, l := range lists {
			if len(l) == 0 || l[0].Name != name {
				continue
			}
			if found && tie != nil {
				tie(win, l[0], i)
			}
			win, found = l[0], true
			lists[i] = l[1:]
		}
		out = append(out, win)
	}
}

func newLinkSet(vars []EnvVar) *linkSet {
	ls := &linkSet{vars: vars, prev: make([]int, len(vars))}
	last := make(map[string]int, len(vars))
	for i, v := range vars {
		ls.prev[i] = -1
		if j, ok := last[v.Name]; ok {
			ls.prev[i] = j
		}
		last[v.Name] = i
	}
	ls.final = make(Env, len(last))
	for i, name := range sortedKeys(last) {
		ls.final[i] = vars[last[name]]
	}
	return ls
}

// linkEnv returns the environment of a container whose variables before
// the links are m, once the links are written over them: what applyLinks
// and envMap.env give, with the same warnings, without copying the links
// into m.
func (b *builder) linkEnv(m *envMap, sd *serviceDraft, ls *linkSet, warned map[string]bool) Env {
	// With no two link variables of one name, a link variable overwrites
	// only the one of its name in m: the merge below finds them.
	unique := ls.vars == nil
	for i, v := range ls.vars {
		var prev EnvVar
		ok := true
		if j := ls.prev[i]; j >= 0 {
			prev = ls.vars[j]
		} else {
			prev, ok = m.get(v.Name)
		}
		b.warnOverwrite(sd, prev, ok, v, warned)
	}
	// The variables of the container: its service's, its own over them,
	// the links over both.
	return mergeEnvs(func(prev, v EnvVar, i int) {
		if i == 2 && unique {
			b.warnOverwrite(sd, prev, true, v, warned)
		}
	}, m.baseEnv(), m.own(), ls.final)
}

// applyLinks writes the link variables sd's containers get into m in
// MaestroNG's order: the service's own first, then its dependencies' (so
// that a dependency's variable wins a clash of names), over the user's
// variables. Every overwrite that changes a value is a warning, once per
// service and variable; values are never shown (they may be secrets).
func (b *builder) applyLinks(m *envMap, sd *serviceDraft, services map[string]*serviceDraft, onCluster bool, warned map[string]bool) {
	b.setLinks(m, sd, b.serviceLinkVars(sd, services, onCluster), warned)
}

// serviceLinkVars returns the link variables sd's containers get, in the
// order applyLinks writes them.
func (b *builder) serviceLinkVars(sd *serviceDraft, services map[string]*serviceDraft, onCluster bool) []EnvVar {
	vars := linkVars(sd, b.env, true, onCluster)
	for _, dep := range b.linkServices(sd) {
		if dep != sd.svc.Name {
			vars = append(vars, b.depLinkVars(services[dep], onCluster)...)
		}
	}
	return vars
}

// depLinkVars returns the link variables of sd as a dependency sees them
// (without internal ports), computed once per service and place.
func (b *builder) depLinkVars(sd *serviceDraft, onCluster bool) []EnvVar {
	i := 0
	if onCluster {
		i = 1
	}
	if sd.depLinks[i] == nil {
		sd.depLinks[i] = linkVars(sd, b.env, false, onCluster)
		if sd.depLinks[i] == nil {
			sd.depLinks[i] = []EnvVar{}
		}
	}
	return sd.depLinks[i]
}

// setLinks writes the link variables vars of sd's containers into m, as
// applyLinks describes.
func (b *builder) setLinks(m *envMap, sd *serviceDraft, vars []EnvVar, warned map[string]bool) {
	for _, v := range vars {
		prev, ok := m.get(v.Name)
		b.warnOverwrite(sd, prev, ok, v, warned)
		m.set(v)
	}
}

// warnOverwrite warns, once per service and variable, when the link
// variable v overwrites prev (present when ok) with another value.
func (b *builder) warnOverwrite(sd *serviceDraft, prev EnvVar, ok bool, v EnvVar, warned map[string]bool) {
	if ok && !prev.Unset && prev.Value != v.Value && prev.Source != v.Source && !warned[sd.svc.Name+"\x00"+v.Name] {
		warned[sd.svc.Name+"\x00"+v.Name] = true
		was := "the env variable of the manifest"
		switch prev.Source {
		case "":
		case SourceFixed:
			was = "maestro-sync's own variable"
		default:
			was = "the link variable of service " + prev.Source
		}
		b.warnf(sd.f.node, sd.f.path, "%s: the link variable of service %s overwrites %s with another value, as in MaestroNG: rename a service or instance to keep both",
			v.Name, v.Source, was)
	}
}

// linkVars returns the link variables of the service sd. internal
// adds the _INTERNAL_PORT variables (a service's own). onCluster tells
// where the consumer runs: a cluster service is reached by its Service DNS
// name from the cluster, and from ships by the cluster's node address and
// node ports when the cluster declares them.
func linkVars(sd *serviceDraft, env *Environment, internal, onCluster bool) []EnvVar {
	own, dep := linkVarLists(sd, env, onCluster)
	if internal {
		return own
	}
	return dep
}

// linkVarLists returns the link variables of the service sd with the
// _INTERNAL_PORT variables (own) and without them (dep), which share their
// strings.
func linkVarLists(sd *serviceDraft, env *Environment, onCluster bool) (own, dep []EnvVar) {
	add := func(v EnvVar, internal bool) {
		own = append(own, v)
		if !internal {
			dep = append(dep, v)
		}
	}
	svc := ToEnv(sd.svc.Name)
	src := sd.svc.Name
	if w := sd.svc.Workload; w != nil {
		cl := env.Clusters[w.Cluster]
		if cl == nil {
			return nil, nil
		}
		prefix := svc + "_" + svc + "_"
		host, nodePorts := DNSName(sd.svc.Name, cl), false
		if !onCluster && cl.NodeAddress != "" {
			host, nodePorts = cl.NodeAddress, true
		}
		add(EnvVar{Name: prefix + "HOST", Value: host, Source: src}, false)
		for _, p := range w.Ports {
			port := p.ExposedPort()
			if nodePorts && p.External != p.Exposed {
				port = p.ExternalPort()
			}
			name := prefix + ToEnv(p.Name)
			add(EnvVar{Name: name + "_PORT", Value: port, Source: src}, false)
			add(EnvVar{Name: name + "_INTERNAL_PORT", Value: p.ExposedPort(), Source: src}, true)
		}
		add(EnvVar{Name: svc + "_INSTANCES", Value: sd.svc.Name, Source: src}, false)
		return own, dep
	}
	nDep, nPorts := 1, 0
	for _, peer := range sd.instances {
		nDep += 1 + len(peer.in.Ports)
		nPorts += len(peer.in.Ports)
	}
	own, dep = make([]EnvVar, 0, nDep+nPorts), make([]EnvVar, 0, nDep)
	names := make([]string, 0, len(sd.instances))
	for _, peer := range sd.instances {
		in := peer.in
		names = append(names, in.Name)
		prefix := svc + "_" + ToEnv(in.Name) + "_"
		if ship := env.Ships[in.Ship]; ship != nil {
			add(EnvVar{Name: prefix + "HOST", Value: ship.IP, Source: src}, false)
		}
		for _, p := range in.Ports {
			name := prefix + ToEnv(p.Name)
			add(EnvVar{Name: name + "_PORT", Value: p.ExternalPort(), Source: src}, false)
			add(EnvVar{Name: name + "_INTERNAL_PORT", Value: p.ExposedPort(), Source: src}, true)
		}
	}
	slices.Sort(names)
	add(EnvVar{Name: svc + "_INSTANCES", Value: strings.Join(names, ","), Source: src}, false)
	return own, dep
}

// checkHostPorts reports two instances that bind the same host address,
// port and protocol on one Docker host: each binding against the first
// earlier one it clashes with.
func (b *builder) checkHostPorts() {
	type hostProto struct{ host, proto string }
	byHost := map[hostProto]*hostBindings{}
	for _, sd := range b.services {
		for _, id := range sd.instances {
			in := id.in
			ship := b.env.Ships[in.Ship]
			if ship == nil || in.Net == "host" || strings.HasPrefix(in.Net, "container:") {
				continue
			}
			key := ship.Address()
			for _, p := range in.Ports {
				lo, hi := portRange(p.External)
				if lo == 0 || in.Route != nil && in.Route.Port == p.Name {
					continue // a random host port (the routed port's is)
				}
				ip, _ := netip.ParseAddr(p.ExternalIP)
				nb := hostBinding{in, p, ip, lo, hi}
				hp := hostProto{key, p.Protocol()}
				hb := byHost[hp]
				if hb == nil {
					hb = &hostBindings{byPort: map[int]int{}}
					byHost[hp] = hb
				}
				if ob, clash := hb.clash(nb); clash {
					path := id.f.sub("ports." + p.Name)
					if own, ok := id.f.get("ports"); !ok || !slices.ContainsFunc(resolve(own.V).Content, func(k *yaml.Node) bool { return k.Value == p.Name }) {
						path = sd.f.sub("ports." + p.Name) // inherited from the service
					}
					b.errorf(id.portNodes[p.Name], path, "%s: host port %s:%s/%s on ship %s is also bound by %s (port %s)", in.Name, p.ExternalIP, p.ExternalPort(), p.Protocol(), in.Ship, ob.in.Name, ob.port.Name)
				}
				hb.add(nb)
			}
		}
	}
}

// hostBinding is a host port range bound by an instance.
type hostBinding struct {
	in     *Instance
	port   Port
	ip     netip.Addr
	lo, hi int
}

// hostBindings are the bindings of one host and protocol, in the order
// they were added, indexed by port when they span few ports.
type hostBindings struct {
	all []hostBinding
	// byPort maps a port to the last link in chain of the narrow
	// bindings that span it; each link leads to the one before.
	byPort map[int]int
	chain  []portLink
	wide   []int // indices in all of the bindings of more ports
}

// portLink is a narrow binding spanning a port, and the link of the
// binding before it that spans the port (-1: none).
type portLink struct{ binding, prev int }

// narrowPorts is the most ports a binding spans to be indexed by port.
const narrowPorts = 64

// clash returns the first binding added that nb clashes with: an
// overlapping port range on the same address, or where either binds
// every address.
func (h *hostBindings) clash(nb hostBinding) (hostBinding, bool) {
	first := -1
	check := func(i int) {
		ob := h.all[i]
		if first >= 0 && i >= first || ob.lo > nb.hi || nb.lo > ob.hi {
			return
		}
		if ob.ip != nb.ip && !ob.ip.IsUnspecified() && !nb.ip.IsUnspecified() {
			return
		}
		first = i
	}
	if nb.lo <= nb.hi && nb.hi-nb.lo < narrowPorts {
		for port := nb.lo; port <= nb.hi; port++ {
			if l, ok := h.byPort[port]; ok {
				for ; l >= 0; l = h.chain[l].prev {
					check(h.chain[l].binding)
				}
			}
		}
		for _, i := range h.wide {
			check(i)
		}
	} else {
		for i := range h.all {
			check(i)
		}
	}
	if first < 0 {
		return hostBinding{}, false
	}
	return h.all[first], true
}

func (h *hostBindings) add(nb hostBinding) {
	i := len(h.all)
	h.all = append(h.all, nb)
	if nb.hi-nb.lo >= narrowPorts || nb.hi < nb.lo {
		h.wide = append(h.wide, i)
		return
	}
	for port := nb.lo; port <= nb.hi; port++ {
		prev, ok := h.byPort[port]
		if !ok {
			prev = -1
		}
		h.chain = append(h.chain, portLink{binding: i, prev: prev})
		h.byPort[port] = len(h.chain) - 1
	}
}
