package manifest

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// graph is the dependency graph between services. An edge S → D means S
// depends on D: D starts first and stops last. Edges come from requires and
// from volumes_from between services; wants_info adds none.
type graph struct {
	deps       map[string][]string // direct dependencies, sorted
	dependents map[string][]string // direct dependents, sorted
	requires   map[string][]string // requires edges only (for link variables)
	edges      map[[2]string]edge
}

// edge tells where a dependency was declared.
type edge struct {
	node *yaml.Node
	path string
}

func (g *graph) addEdge(from, to string, e edge) {
	if !slices.Contains(g.deps[from], to) {
		g.deps[from] = append(g.deps[from], to)
	}
	if _, ok := g.edges[[2]string{from, to}]; !ok {
		g.edges[[2]string{from, to}] = e
	}
}

// finish sorts the edges and builds the reverse ones.
func (g *graph) finish() {
	g.dependents = map[string][]string{}
	for from, tos := range g.deps {
		slices.Sort(tos)
		for _, to := range tos {
			g.dependents[to] = append(g.dependents[to], from)
		}
	}
	for _, v := range g.dependents {
		slices.Sort(v)
	}
}

// cycles returns each dependency cycle once, as a path that starts and ends
// with the same service, e.g. [a b c a].
func (g *graph) cycles(order []string) [][]string {
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var out [][]string
	seen := map[string]bool{}
	var visit func(s string)
	visit = func(s string) {
		state[s] = onStack
		stack = append(stack, s)
		deps := slices.Clone(g.deps[s])
		slices.Sort(deps)
		for _, d := range deps {
			switch state[d] {
			case unvisited:
				visit(d)
			case onStack:
				i := slices.Index(stack, d)
				cycle := append(slices.Clone(stack[i:]), d)
				key := canonicalCycle(cycle)
				if !seen[key] {
					seen[key] = true
					out = append(out, cycle)
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[s] = done
	}
	for _, s := range order {
		if state[s] == unvisited {
			visit(s)
		}
	}
	return out
}

// canonicalCycle names a cycle independently of where it was entered.
func canonicalCycle(c []string) string {
	ring := c[:len(c)-1]
	best := 0
	for i := range ring {
		if ring[i] < ring[best] {
			best = i
		}
	}
	return strings.Join(append(slices.Clone(ring[best:]), ring[:best]...), ",")
}

// closure returns the transitive requires of s (not s itself), sorted.
func (g *graph) closure(s string) []string {
	return g.reach(s, g.requires)
}

func (g *graph) reach(s string, edges map[string][]string) []string {
	seen := map[string]bool{s: true}
	var out []string
	var walk func(string)
	walk = func(x string) {
		for _, d := range edges[x] {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				walk(d)
			}
		}
	}
	walk(s)
	slices.Sort(out)
	return out
}

// Dependencies returns every service that service depends on, directly or
// not, sorted.
func (e *Environment) Dependencies(service string) []string {
	return e.graph.reach(service, e.graph.deps)
}

// Dependents returns every service that depends on service, directly or
// not, sorted.
func (e *Environment) Dependents(service string) []string {
	return e.graph.reach(service, e.graph.dependents)
}

// StartOrder orders instances so that dependencies come first. It works in
// passes, as MaestroNG does: each pass takes, in name order, every instance
// whose dependencies within the given set are already placed.
func (e *Environment) StartOrder(instances []*Instance) []*Instance {
	return flatten(e.Levels(instances, false))
}

// StopOrder orders instances so that dependents come first.
func (e *Environment) StopOrder(instances []*Instance) []*Instance {
	return flatten(e.Levels(instances, true))
}

// Levels groups instances into waves: every instance of a wave depends only
// on instances of earlier waves (within the given set). Instances of one
// wave can start concurrently.
func (e *Environment) Levels(instances []*Instance, reverse bool) [][]*Instance {
	edges := e.graph.deps
	if reverse {
		edges = e.graph.dependents
	}
	pending := slices.Clone(instances)
	slices.SortFunc(pending, func(a, b *Instance) int { return strings.Compare(a.Name, b.Name) })
	inSet := map[string]bool{}
	for _, in := range pending {
		inSet[in.Service] = true
	}
	placed := map[string]int{} // service → instances still to place
	for _, in := range pending {
		placed[in.Service]++
	}
	var levels [][]*Instance
	for len(pending) > 0 {
		var level, rest []*Instance
		for _, in := range pending {
			ready := true
			for _, d := range e.graph.reach(in.Service, edges) {
				if inSet[d] && placed[d] > 0 {
					ready = false
					break
				}
			}
			if ready {
				level = append(level, in)
			} else {
				rest = append(rest, in)
			}
		}
		if len(level) == 0 {
			// Unreachable for a validated environment (no cycles).
			level, rest = rest, nil
		}
		for _, in := range level {
			placed[in.Service]--
		}
		levels = append(levels, level)
		pending = rest
	}
	return levels
}

func flatten(levels [][]*Instance) []*Instance {
	var out []*Instance
	for _, l := range levels {
		out = append(out, l...)
	}
	return out
}

// DepTree writes the dependency tree of the given services (all when none
// are given), sorted by name, in MaestroNG's deptree format. With recursive
// false, a dependency already shown in a service's tree is not repeated.
func (e *Environment) DepTree(w io.Writer, services []string, recursive bool) {
	if len(services) == 0 {
		for _, s := range e.Services {
			services = append(services, s.Name)
		}
	}
	services = sortedSet(services)
	for i, s := range services {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, s)
		shown := map[string]bool{}
		e.depTree(w, s, " ", shown, recursive)
	}
}

func (e *Environment) depTree(w io.Writer, s, indent string, shown map[string]bool, recursive bool) {
	var deps []string
	for _, d := range e.graph.deps[s] {
		if recursive || !shown[d] {
			deps = append(deps, d)
		}
	}
	for i, d := range deps {
		last := i == len(deps)-1
		branch, next := "+- ", "|  "
		if last {
			branch, next = "\\- ", "   "
		}
		fmt.Fprintf(w, "%s%s%s\n", indent, branch, d)
		shown[d] = true
		e.depTree(w, d, indent+next, shown, recursive)
	}
}
