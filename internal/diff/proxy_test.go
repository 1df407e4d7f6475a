package diff

import (
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// A replacement that must stop the old container first (a fixed host
// port it holds) says so; one behind the front proxy does not.
func TestDowntimeWarning(t *testing.T) {
	state := deployed(t, shopManifest)
	change(t, state, "api-1", func(c *live.Container) { c.Ports = []string{"0.0.0.0:18080/tcp"} })
	change(t, state, "api-2", func(c *live.Container) { c.Ports = []string{"0.0.0.0:18080/tcp"} })
	envs := loadEnvs(t, edit(t, "LOG_LEVEL: info", "LOG_LEVEL: debug"))
	p := Compute(envs, state, Options{})
	for _, st := range p.Steps {
		if st.Instance == "api-1" && !strings.Contains(strings.Join(st.Warnings, "\n"), "downtime: host ports clash (18080/tcp)") {
			t.Errorf("api-1 replacement warnings %q", st.Warnings)
		}
	}
	routed := loadEnvs(t, edit(t, "LOG_LEVEL: info", "LOG_LEVEL: debug", "    limits: {memory: 256m}\n", "    limits: {memory: 256m}\n    proxy: {}\n"))
	for _, st := range Compute(routed, state, Options{}).Steps {
		if st.Service == "api" && strings.Contains(strings.Join(st.Warnings, "\n"), "downtime") {
			t.Errorf("a routed replacement warns %q", st.Warnings)
		}
	}
}

// A routed replacement of the desired spec, left running by an interrupted
// apply, is resumed (not removed as a leftover); kept containers are
// neither drift nor leftovers.
func TestRoutedLeftoversAndKept(t *testing.T) {
	text := edit(t, "    limits: {memory: 256m}\n", "    limits: {memory: 256m}\n    proxy: {}\n")
	state := deployed(t, text)
	next := loadEnvs(t, strings.Replace(text, "LOG_LEVEL: info", "LOG_LEVEL: debug", 1))
	in := next[0].Instance("api-1")
	tmp := driverContainer(in, "shop")
	tmp.Name, tmp.ID = live.TempName(in.Name, in.SpecHash), containerID("tmp")
	put(state, h1, tmp)
	old := loadEnvs(t, text)[0].Instance("web-1")
	kept := driverContainer(old, "shop")
	kept.Name, kept.ID, kept.State = live.KeptName(old.Name, old.SpecHash), containerID("kept"), "exited"
	put(state, h2, kept)
	p := Compute(next, state, Options{Prune: true})
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, st := range p.Steps {
		switch {
		case st.Instance == tmp.Name || st.Instance == kept.Name:
			t.Errorf("planned %s %s: %v", st.Action, st.Instance, st.Causes)
		case st.Instance == "api-1" && st.Action != plan.Replace:
			t.Errorf("api-1: %s", st.Action)
		case st.Instance == "web-1" && st.Action != plan.Unchanged:
			t.Errorf("web-1 with a kept container: %s %v", st.Action, st.Causes)
		}
	}
}
