package diff

import (
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// ownedBy stamps an owner on a container.
func ownedBy(c live.Container, owner, name string) live.Container {
	c.Labels[label.Owner] = owner
	c.Labels[label.OwnerName] = name
	c.ID = containerID(owner, c.ID)
	return c
}

// Two repositories deploy an environment of the same name to one engine:
// each owner's plan, prune included, sees only its own containers.
func TestComputeScopedByOwner(t *testing.T) {
	shop := loadEnv(t, shopManifest)
	legacy := loadEnv(t, legacyManifest)
	state := observed(h1, h2)
	for _, in := range shop.Instances() {
		put(state, shop.Ships[in.Ship].Address(), ownedBy(driverContainer(in, shop.Name), "repoA", "github.com/acme/a"))
	}
	// Repository B's environment "legacy" is not in A's repository.
	for _, in := range legacy.Instances() {
		put(state, h1, ownedBy(driverContainer(in, legacy.Name), "repoB", "github.com/acme/b"))
	}
	// Repository B also has a "shop" with an instance A no longer has.
	extra := ownedBy(driverContainer(shop.Instance("web-1"), shop.Name), "repoB", "github.com/acme/b")
	extra.Name, extra.Labels[label.Instance] = "web-9", "web-9"
	put(state, h2, extra)
	// A container started by hand with copied labels, under another name.
	copied := ownedBy(driverContainer(shop.Instance("api-1"), shop.Name), "repoA", "github.com/acme/a")
	copied.Name, copied.ID = "api-1-debug", containerID("debug")
	put(state, h1, copied)

	p := Compute([]*manifest.Environment{shop}, state, Options{Owner: "repoA", Prune: true, PruneEnvs: true})
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := p.Summary(); s.Changes() != 0 || s.Unchanged != len(shop.Instances()) {
		t.Errorf("owner A plans changes to what is not its own:\n%s", p)
	}
	// B's view of the same engine: its legacy environment is its own, A's
	// shop is invisible except where B needs a name.
	p = Compute([]*manifest.Environment{legacy}, state, Options{Owner: "repoB", Prune: true, PruneEnvs: true})
	if s := p.Summary(); s.Changes() != 1 || s.Remove != 1 || p.Mutating()[0].Instance != "web-9" {
		t.Errorf("owner B: want only the removal of its own web-9:\n%s", p)
	}

	// A name held by another owner is a conflict that names it.
	other := loadEnv(t, strings.Replace(legacyManifest, "old-1:", "db-1:", 1))
	p = Compute([]*manifest.Environment{other}, state, Options{Owner: "repoB"})
	var conflict *plan.Step
	for i := range p.Steps {
		if p.Steps[i].Action == plan.Conflict {
			conflict = &p.Steps[i]
		}
	}
	if conflict == nil || !strings.Contains(strings.Join(conflict.Causes, ""), "github.com/acme/a") {
		t.Errorf("want a conflict naming the other owner:\n%s", p)
	}
}

// Containers made before owners existed are taken over, unchanged, by the
// owner that applies their environment, but never pruned as an unknown
// environment: nothing says whose they are.
func TestComputeTakesOverContainersWithoutOwner(t *testing.T) {
	shop := loadEnv(t, shopManifest)
	legacy := loadEnv(t, legacyManifest)
	state := deploy(observed(h1, h2), shop, legacy)
	p := Compute([]*manifest.Environment{shop}, state, Options{Owner: "repoA", Prune: true, PruneEnvs: true})
	if s := p.Summary(); s.Changes() != 0 || s.Unchanged != len(shop.Instances()) {
		t.Errorf("want every container taken over without a change, and no prune of legacy:\n%s", p)
	}
}

// An environment held (its lock is another run's) is neither planned nor
// pruned as missing from the repository.
func TestComputeHold(t *testing.T) {
	shop := loadEnv(t, shopManifest)
	changed := loadEnv(t, strings.Replace(shopManifest, "postgres:16.1", "postgres:16.2", 1))
	state := deploy(observed(h1, h2), shop)
	p := Compute([]*manifest.Environment{changed}, state, Options{Prune: true, PruneEnvs: true, Hold: map[string]bool{"shop": true}})
	if len(p.Steps) != 0 {
		t.Errorf("a held environment is planned:\n%s", p)
	}
	if p := Compute([]*manifest.Environment{changed}, state, Options{Prune: true, PruneEnvs: true}); p.Summary().Replace == 0 {
		t.Errorf("without Hold the change is planned:\n%s", p)
	}
}

// The live plan marks what reaches beyond a container, as the review does.
func TestComputeWarnings(t *testing.T) {
	env := loadEnv(t, strings.Replace(shopManifest, "      db-1: {ship: s1}", "      db-1: {ship: s1, privileged: true}", 1))
	p := Compute([]*manifest.Environment{env}, observed(h1, h2), Options{})
	for _, st := range p.Steps {
		if want := st.Instance == "db-1"; (len(st.Warnings) > 0) != want {
			t.Errorf("%s: warnings %q", st.Instance, st.Warnings)
		}
	}
	if !strings.Contains(p.String(), "⚠ privileged container") {
		t.Errorf("text plan:\n%s", p)
	}
}
