package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
)

// TestInventoryRecordsOrigin: an environment's inventory records its
// manifest's path and labels, updated by the next apply, and observation
// reads them back: a sharded daemon prunes a gone environment by them.
func TestInventoryRecordsOrigin(t *testing.T) {
	ctx := t.Context()
	c := fake.NewClientset()
	own := owner.New("git.example.com/ops/deploy")
	ref := refOf("shop", KindDeployment, "web")
	write := func(env *manifest.Environment) live.Inventory {
		t.Helper()
		if err := writeInventory(ctx, c, "shop", own, "shop", []*invChange{{service: "web", add: []objRef{ref}, origin: originOf(env)}}); err != nil {
			t.Fatal(err)
		}
		cm, err := c.CoreV1().ConfigMaps("shop").Get(ctx, InventoryName(own.ID, "shop"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		invs := inventoriesOf("shop", []*corev1.ConfigMap{cm})
		if len(invs) != 1 {
			t.Fatalf("inventories %+v, want one", invs)
		}
		return invs[0]
	}
	got := write(&manifest.Environment{Name: "shop", Path: "apps/eu/shop/manifest.yml", Labels: map[string]string{"shard": "eu"}})
	want := live.Inventory{Env: "shop", Owner: own.ID, Services: []string{"web"}, File: "apps/eu/shop/manifest.yml", Labels: map[string]string{"shard": "eu"}, HasOrigin: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	// Moved and relabelled: the same objects, a new origin.
	got = write(&manifest.Environment{Name: "shop", Path: "apps/us/shop/manifest.yml"})
	want.File, want.Labels = "apps/us/shop/manifest.yml", nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the move (-want +got):\n%s", diff)
	}
}
