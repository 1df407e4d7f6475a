package diff

import (
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// TestPruneGoneByShard: an environment no longer in the repository is
// pruned only by the shard that selects the origin its containers
// recorded, and an environment of another shard is never pruned.
func TestPruneGoneByShard(t *testing.T) {
	removed := func(p *plan.Plan) []string {
		var out []string
		for _, st := range p.Mutating() {
			out = append(out, st.Env+"/"+st.Instance)
		}
		return out
	}
	state := func(file string) *live.State {
		s := deployed(t, shopManifest, legacyManifest)
		change(t, s, "old-1", func(c *live.Container) {
			if file != "" {
				c.Labels[label.File] = file
				c.Labels[label.EnvLabels] = `{"shard":"a"}`
			}
		})
		return s
	}
	shardA := func(path string, labels map[string]string, ok bool) bool {
		return ok && path == "legacy/manifest.yml" && labels["shard"] == "a"
	}
	shardB := func(path string, labels map[string]string, ok bool) bool { return ok && labels["shard"] == "b" }
	envs := loadEnvs(t, shopManifest)
	for _, tc := range []struct {
		name string
		file string
		opts Options
		want int
	}{
		{"shard a prunes what it recorded", "legacy/manifest.yml", Options{PruneGone: shardA}, 1},
		{"shard b leaves a's alone", "legacy/manifest.yml", Options{PruneGone: shardB}, 0},
		{"no record: no shard prunes", "", Options{PruneGone: shardA}, 0},
		{"no shard prunes as before", "", Options{}, 1},
		{"another shard's environment is not gone", "legacy/manifest.yml", Options{PruneGone: shardA, Others: map[string]bool{"legacy": true}}, 0},
		{"another shard's environment, without shards", "", Options{Others: map[string]bool{"legacy": true}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Prune, tc.opts.PruneEnvs = true, true
			got := removed(Compute(envs, state(tc.file), tc.opts))
			if len(got) != tc.want {
				t.Errorf("removes %v, want %d step(s)", got, tc.want)
			}
			for _, r := range got {
				if r != "legacy/old-1" {
					t.Errorf("removes %s, want only legacy/old-1", r)
				}
			}
		})
	}
}
