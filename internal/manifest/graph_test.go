package manifest

// §7.1 (dependency graph), §7.2 (ordering of a selection) and §7.4
// (deptree) of the MaestroNG reference, as the loader provides them.

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func instancesOf(env *Environment, services ...string) []*Instance {
	var out []*Instance
	for _, s := range services {
		out = append(out, env.Service(s).Instances...)
	}
	return out
}

func levelNames(levels [][]*Instance) [][]string {
	out := make([][]string, len(levels))
	for i, l := range levels {
		out[i] = names(l)
	}
	return out
}

// The verified example of §7.2: start order of everything, and stop order
// of zk with its dependents (-d zk).
func TestOrderExample(t *testing.T) {
	env := exampleEnv(t)
	all := env.Instances()
	if got, want := names(env.StartOrder(all)), []string{"mon-1", "zk-1", "zk-2", "db-1", "kafka-1", "web-1"}; !cmp.Equal(got, want) {
		t.Errorf("StartOrder = %q, want %q", got, want)
	}
	if diff := cmp.Diff([][]string{{"mon-1", "zk-1", "zk-2"}, {"db-1", "kafka-1"}, {"web-1"}}, levelNames(env.Levels(all, false))); diff != "" {
		t.Errorf("Levels (-want +got):\n%s", diff)
	}

	// stop -d zk: zk plus its dependents, dependents first.
	sel := instancesOf(env, append([]string{"zk"}, env.Dependents("zk")...)...)
	if got, want := names(env.StopOrder(sel)), []string{"web-1", "db-1", "kafka-1", "zk-1", "zk-2"}; !cmp.Equal(got, want) {
		t.Errorf("StopOrder(-d zk) = %q, want %q", got, want)
	}
	if diff := cmp.Diff([][]string{{"web-1"}, {"db-1", "kafka-1"}, {"zk-1", "zk-2"}}, levelNames(env.Levels(sel, true))); diff != "" {
		t.Errorf("Levels reverse (-want +got):\n%s", diff)
	}
	// Stopping everything: mon has no dependents and no dependencies
	// (wants_info adds no edge), so it goes in the first wave.
	if got, want := names(env.StopOrder(all)), []string{"mon-1", "web-1", "db-1", "kafka-1", "zk-1", "zk-2"}; !cmp.Equal(got, want) {
		t.Errorf("StopOrder(all) = %q, want %q", got, want)
	}
}

// The transitive dependencies and dependents (§7.1), used to extend a
// selection with -d.
func TestDependenciesAndDependents(t *testing.T) {
	env := exampleEnv(t)
	tests := []struct {
		service          string
		deps, dependents []string
		direct           []string
	}{
		{"web", []string{"db", "kafka", "zk"}, nil, []string{"db", "kafka"}},
		{"kafka", []string{"zk"}, []string{"web"}, []string{"zk"}},
		{"db", []string{"zk"}, []string{"web"}, []string{"zk"}},
		{"zk", nil, []string{"db", "kafka", "web"}, nil},
		// wants_info is not an ordering edge either way.
		{"mon", nil, nil, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.deps, env.Dependencies(tt.service)); diff != "" {
			t.Errorf("Dependencies(%s) (-want +got):\n%s", tt.service, diff)
		}
		if diff := cmp.Diff(tt.dependents, env.Dependents(tt.service)); diff != "" {
			t.Errorf("Dependents(%s) (-want +got):\n%s", tt.service, diff)
		}
		if diff := cmp.Diff(tt.direct, env.Service(tt.service).Dependencies); diff != "" {
			t.Errorf("%s.Dependencies (-want +got):\n%s", tt.service, diff)
		}
	}
}

// Ordering only considers dependencies within the given set, transitively
// (web waits for zk through kafka and db even when they are not selected).
// Without them, only the named containers are ordered.
func TestOrderWithinSelection(t *testing.T) {
	env := exampleEnv(t)
	tests := []struct {
		name  string
		sel   []string
		start []string
		stop  []string
	}{
		{"transitive through unselected services", []string{"web-1", "zk-2"}, []string{"zk-2", "web-1"}, []string{"web-1", "zk-2"}},
		{"independent", []string{"mon-1", "kafka-1"}, []string{"kafka-1", "mon-1"}, []string{"kafka-1", "mon-1"}},
		{"one", []string{"db-1"}, []string{"db-1"}, []string{"db-1"}},
		{"none", nil, nil, nil},
		// the selection's order does not matter
		{"unsorted input", []string{"zk-2", "web-1", "zk-1", "db-1"}, []string{"zk-1", "zk-2", "db-1", "web-1"}, []string{"web-1", "db-1", "zk-1", "zk-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sel []*Instance
			for _, n := range tt.sel {
				sel = append(sel, env.Instance(n))
			}
			if got := names(env.StartOrder(sel)); !cmp.Equal(got, tt.start) && !(len(got) == 0 && len(tt.start) == 0) {
				t.Errorf("StartOrder = %q, want %q", got, tt.start)
			}
			if got := names(env.StopOrder(sel)); !cmp.Equal(got, tt.stop) && !(len(got) == 0 && len(tt.stop) == 0) {
				t.Errorf("StopOrder = %q, want %q", got, tt.stop)
			}
		})
	}
}

// TestDepTree covers the deptree format of §7.4.
func TestDepTree(t *testing.T) {
	example := exampleEnv(t)
	deep := mustEnv(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  a: {image: x, requires: [c, b], instances: {}}
  b: {image: x, requires: [d], instances: {}}
  c: {image: x, requires: [e], instances: {}}
  d: {image: x, requires: [e], wants_info: [f], instances: {}}
  e: {image: x, instances: {}}
  f: {image: x, instances: {}}
`)
	volumes := envOf(t, loadFixture(t, "volumes_from_dependency"))
	tests := []struct {
		name      string
		env       *Environment
		services  []string
		recursive bool
		want      string
	}{
		{"verified example", example, []string{"web"}, false, "web\n +- db\n |  \\- zk\n \\- kafka\n"},
		{"recursive shows duplicates", example, []string{"web"}, true, "web\n +- db\n |  \\- zk\n \\- kafka\n    \\- zk\n"},
		{"all services, sorted, a blank line between", example, nil, false,
			"db\n \\- zk\n\nkafka\n \\- zk\n\nmon\n\nweb\n +- db\n |  \\- zk\n \\- kafka\n\nzk\n"},
		{"given services are sorted and deduplicated", example, []string{"zk", "kafka", "zk"}, false, "kafka\n \\- zk\n\nzk\n"},
		{"indentation", deep, []string{"a"}, false, "a\n +- b\n |  \\- d\n |     \\- e\n \\- c\n"},
		{"indentation, recursive", deep, []string{"a"}, true, "a\n +- b\n |  \\- d\n |     \\- e\n \\- c\n    \\- e\n"},
		// wants_info is not shown
		{"wants_info not shown", deep, []string{"d"}, false, "d\n \\- e\n"},
		// volumes_from edges are shown
		{"volumes_from edge", volumes, []string{"myservice"}, false, "myservice\n \\- mydata\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			tt.env.DepTree(&b, tt.services, tt.recursive)
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("DepTree (-want +got):\n%s\ngot:\n%s", diff, b.String())
			}
		})
	}
}

// §7.1: wants_info adds no ordering edge; requires and volumes_from do,
// both ways (B5); a cycle is an error (B3) and a valid environment always
// has an order.
func TestGraphEdges(t *testing.T) {
	env := mustEnv(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  app:
    image: x
    wants_info: [metrics]
    instances: {app-1: {ship: s, volumes_from: data-1}}
  data: {image: x, instances: {data-1: {ship: s}}}
  metrics: {image: x, requires: [app], instances: {metrics-1: {ship: s}}}
`)
	// metrics requires app and app wants_info metrics: no cycle, since
	// wants_info is no edge.
	if got := names(env.StartOrder(env.Instances())); !cmp.Equal(got, []string{"data-1", "app-1", "metrics-1"}) {
		t.Errorf("StartOrder = %q", got)
	}
	if got := names(env.StopOrder(env.Instances())); !cmp.Equal(got, []string{"metrics-1", "app-1", "data-1"}) {
		t.Errorf("StopOrder = %q", got)
	}
	// app gets metrics' variables through wants_info; metrics gets app's
	// through requires. volumes_from gives none.
	if _, ok := env.Instance("app-1").Env.Get("METRICS_INSTANCES"); !ok {
		t.Error("app-1 lacks METRICS_INSTANCES")
	}
	if _, ok := env.Instance("app-1").Env.Get("DATA_INSTANCES"); ok {
		t.Error("app-1 has DATA_INSTANCES from volumes_from")
	}
	if _, ok := env.Instance("metrics-1").Env.Get("APP_APP_1_HOST"); !ok {
		t.Error("metrics-1 lacks APP_APP_1_HOST")
	}
}

// A cycle is reported once per cycle, each located at an edge of it, and
// also when it runs through a volumes_from edge.
func TestCycleReports(t *testing.T) {
	repo := loadText(t, `name: test
ships: {s: {ip: 1.2.3.4}}
services:
  a: {image: x, requires: [b], instances: {}}
  b: {image: x, requires: [a], instances: {}}
  c: {image: x, requires: [d], instances: {}}
  d: {image: x, requires: [c, a], instances: {}}
`)
	wantErrors(t, repo, "dependency cycle: a → b → a", "dependency cycle: c → d → c")
	if errs := messages(repo, SeverityError); len(errs) != 2 {
		t.Errorf("errors = %q, want the two cycles once each", errs)
	}
}
