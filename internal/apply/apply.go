// Package apply carries out a plan: it runs every step that changes
// something once the steps it depends on have succeeded, with a limit on
// how many run at once, and skips the dependents of a failed step. How a
// step is done is up to the Target (the Docker or Kubernetes driver).
package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// Target carries out one step. progress reports what it is doing now
// ("pulling image", "checking http://..."). An error must leave the
// instance as it was before the step (a failed replacement restores the old
// container).
type Target interface {
	Apply(ctx context.Context, step plan.Step, progress func(state string)) error
}

// Options tune Run.
type Options struct {
	// Concurrency limits how many steps run at once; 0 means no limit.
	Concurrency int
	// Progress, when set, receives every state change of every step. It
	// is called from several goroutines, one call at a time.
	Progress func(Event)
}

// Status is where a step stands.
type Status int

const (
	// Waiting: for the steps it runs after, or for a slot.
	Waiting Status = iota
	// Running: the target is carrying it out; Event.State says what it
	// does now.
	Running
	// Succeeded, Failed and Aborted are final. An aborted step was not
	// run: a step it depends on failed, or the run was cancelled.
	Succeeded
	Failed
	Aborted
)

func (s Status) String() string {
	switch s {
	case Waiting:
		return "waiting"
	case Running:
		return "running"
	case Succeeded:
		return "done"
	case Failed:
		return "failed"
	case Aborted:
		return "aborted"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// ErrAborted is wrapped by the error of every aborted step.
var ErrAborted = errors.New("not run")

// Event is a state change of one step.
type Event struct {
	Step   plan.Step
	Status Status
	// State is what the step does now, in words ("pulling image", …).
	State   string
	Elapsed time.Duration
	// Done is true for the final event of a step; Err is its error.
	Done bool
	Err  error
}

// Outcome is what happened to one step.
type Outcome struct {
	Step     plan.Step
	Err      error
	Aborted  bool // not run because a step it depends on failed, or cancelled
	Duration time.Duration
}

// Result is the outcome of every mutating step, in plan order. It is
// complete even when steps failed.
type Result struct {
	Outcomes []Outcome
}

// Err joins the errors of the failed steps (aborted steps excluded), or
// returns nil when every step succeeded.
func (r *Result) Err() error {
	var errs []error
	for _, o := range r.Outcomes {
		if o.Err != nil && !o.Aborted {
			errs = append(errs, o.Err)
		}
	}
	return errors.Join(errs...)
}

// Failed counts the steps that failed or were aborted.
func (r *Result) Failed() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Err != nil {
			n++
		}
	}
	return n
}

// Run carries out the mutating steps of p on t.
func Run(ctx context.Context, p *plan.Plan, t Target, opts Options) *Result {
	steps := p.Mutating()
	res := &Result{Outcomes: make([]Outcome, len(steps))}
	done := make(map[string]chan struct{}, len(steps))
	index := make(map[string]int, len(steps))
	for i, st := range steps {
		done[st.ID] = make(chan struct{})
		index[st.ID] = i
	}
	var sem chan struct{}
	if opts.Concurrency > 0 {
		sem = make(chan struct{}, opts.Concurrency)
	}
	var mu sync.Mutex // serialises Progress calls
	emit := func(e Event) {
		if opts.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		opts.Progress(e)
	}
	var wg sync.WaitGroup
	for i, st := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[st.ID])
			out := &res.Outcomes[i]
			out.Step = st
			emit(Event{Step: st, Status: Waiting, State: "waiting"})
			for _, dep := range st.After {
				ch, ok := done[dep]
				if !ok {
					continue // not a step of this run
				}
				select {
				case <-ch:
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
				if d := res.Outcomes[index[dep]]; d.Err != nil {
					out.Err, out.Aborted = fmt.Errorf("%s: %w: %s failed", st.Instance, ErrAborted, d.Step.Instance), true
					emit(Event{Step: st, Status: Aborted, State: "aborted", Done: true, Err: out.Err})
					return
				}
			}
			if sem != nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
				}
			}
			if err := ctx.Err(); err != nil {
				out.Err, out.Aborted = fmt.Errorf("%s: %w: %w", st.Instance, ErrAborted, err), true
				emit(Event{Step: st, Status: Aborted, State: "aborted", Done: true, Err: out.Err})
				return
			}
			start := time.Now()
			err := t.Apply(ctx, st, func(state string) {
				emit(Event{Step: st, Status: Running, State: state, Elapsed: time.Since(start)})
			})
			out.Duration = time.Since(start)
			status := Succeeded
			if err != nil {
				out.Err = fmt.Errorf("%s %s on %s: %w", st.Action, st.Instance, st.Ship, err)
				status = Failed
			}
			emit(Event{Step: st, Status: status, State: status.String(), Elapsed: out.Duration, Done: true, Err: out.Err})
		}()
	}
	wg.Wait()
	return res
}
