package docker

import (
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
)

// TestContainerRecordsOrigin: a container records its manifest's path and
// its environment's labels, outside the spec hash, and live reads them
// back; an environment loaded from no tree records none.
func TestContainerRecordsOrigin(t *testing.T) {
	in := &manifest.Instance{Name: "web-1", Service: "web", Image: "nginx", SpecHash: "abc"}
	env := &manifest.Environment{Name: "shop", Path: "apps/eu/shop/manifest.yml", Labels: map[string]string{"shard": "eu", "team": "web"}}
	cfg := containerConfig(env, "rev", owner.New("o"), in)
	c := live.Container{Labels: cfg.Config.Labels}
	file, labels, ok := c.Origin()
	if !ok || file != "apps/eu/shop/manifest.yml" || labels["shard"] != "eu" || labels["team"] != "web" || len(labels) != 2 {
		t.Errorf("origin = %q %v %v, want the manifest's path and the labels", file, labels, ok)
	}
	if cfg.Config.Labels[label.SpecHash] != "abc" {
		t.Errorf("spec hash label %q, want the instance's", cfg.Config.Labels[label.SpecHash])
	}
	env.Path, env.Labels = "", nil
	cfg = containerConfig(env, "rev", owner.New("o"), in)
	if _, _, ok := (&live.Container{Labels: cfg.Config.Labels}).Origin(); ok {
		t.Errorf("an environment without a path records an origin: %v", cfg.Config.Labels)
	}
}
