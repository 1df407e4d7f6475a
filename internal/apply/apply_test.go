package apply

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/plan"
)

type failing map[string]bool // instance → fails

func (f failing) Apply(_ context.Context, st plan.Step, progress func(string)) error {
	progress("working")
	if f[st.Instance] {
		return errors.New("boom")
	}
	return nil
}

func TestRunStatuses(t *testing.T) {
	p := &plan.Plan{Steps: []plan.Step{
		{ID: "a", Action: plan.Create, Instance: "a"},
		{ID: "b", Action: plan.Create, Instance: "b", After: []string{"a"}},
		{ID: "c", Action: plan.Replace, Instance: "c"},
		{ID: "d", Action: plan.Unchanged, Instance: "d"},
	}}
	var mu sync.Mutex
	final := map[string]Status{}
	res := Run(context.Background(), p, failing{"a": true}, Options{Concurrency: 2, Progress: func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Done {
			final[e.Step.Instance] = e.Status
		}
	}})
	want := map[string]Status{"a": Failed, "b": Aborted, "c": Succeeded}
	for k, v := range want {
		if final[k] != v {
			t.Errorf("%s: %s, want %s", k, final[k], v)
		}
	}
	if len(res.Outcomes) != 3 || res.Failed() != 2 {
		t.Fatalf("outcomes: %+v", res.Outcomes)
	}
	b := res.Outcomes[1]
	if !b.Aborted || !errors.Is(b.Err, ErrAborted) {
		t.Errorf("b: %+v", b)
	}
	if errors.Is(res.Outcomes[0].Err, ErrAborted) {
		t.Error("a failed; it was not aborted")
	}
	if err := res.Err(); err == nil || errors.Is(err, ErrAborted) {
		t.Errorf("Err() = %v: want a's failure only", err)
	}

	// A cancelled run aborts what has not started.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = Run(ctx, p, failing{}, Options{})
	for _, o := range res.Outcomes {
		if !o.Aborted || !errors.Is(o.Err, ErrAborted) || !errors.Is(o.Err, context.Canceled) {
			t.Errorf("%s after cancel: %+v", o.Step.Instance, o)
		}
	}
}
