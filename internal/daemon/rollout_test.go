package daemon

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// The status and the metrics follow the bake steps of a staged rollout.
func TestRolloutProgress(t *testing.T) {
	d := &Daemon{metrics: NewMetrics()}
	d.status.Environments = []EnvStatus{{Name: "shop", State: "synced"}}
	bake := func(batch int) plan.Step {
		return plan.Step{ID: "shop/rollout/web/1", Action: plan.Bake, Env: "shop", Service: "web",
			Gate: &plan.Gate{Batch: batch, Batches: 3, Instances: []string{"web-1"}, Bake: "5s"}}
	}
	d.rolloutProgress(apply.Event{Step: bake(1), Status: apply.Running})
	es := d.Status().Environments[0]
	if es.State != "progressing" || len(es.Rollouts) != 1 || es.Rollouts[0] != (RolloutStatus{Service: "web", Batch: 1, Batches: 3, State: "baking"}) {
		t.Fatalf("while baking: %+v", es)
	}
	d.rolloutProgress(apply.Event{Step: bake(1), Done: true, Status: apply.Succeeded})
	d.rolloutProgress(apply.Event{Step: bake(2), Done: true, Status: apply.Failed, Err: errors.New("web-3 failed 3s into the bake")})
	rs := d.Status().Environments[0].Rollouts[0]
	if rs.Batch != 2 || rs.State != "failed" || !strings.Contains(rs.Error, "web-3") {
		t.Errorf("after a failed bake: %+v", rs)
	}
	if got := testutil.ToFloat64(d.metrics.rolloutBatch.WithLabelValues("shop", "web")); got != 2 {
		t.Errorf("rollout batch metric %v", got)
	}
	if got := testutil.ToFloat64(d.metrics.rolloutFailed.WithLabelValues("shop", "web")); got != 1 {
		t.Errorf("rollout failed metric %v", got)
	}
}
