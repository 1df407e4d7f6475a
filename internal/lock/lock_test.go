package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeMutex struct {
	where string
	mu    *sync.Mutex
	log   *[]string
	err   func() error // the TryLock error now
	lost  bool
}

func (m *fakeMutex) Where() string { return m.where }

func (m *fakeMutex) TryLock(context.Context) (Held, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		if err := m.err(); err != nil {
			return nil, err
		}
	}
	*m.log = append(*m.log, "lock "+m.where)
	return m, nil
}

func (m *fakeMutex) Renew(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lost {
		return fmt.Errorf("%s: %w", m.where, ErrLost)
	}
	return nil
}

func (m *fakeMutex) Unlock(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	*m.log = append(*m.log, "unlock "+m.where)
	return nil
}

func TestAcquire(t *testing.T) {
	var mu sync.Mutex
	var log []string
	held := &LockedError{Info: Info{Key: Key{Env: "shop"}, Where: "b", Holder: Holder{Host: "ci", PID: 7, Run: "r"}}}
	busyUntil := time.Now().Add(300 * time.Millisecond)
	a := &fakeMutex{where: "a", mu: &mu, log: &log}
	b := &fakeMutex{where: "b", mu: &mu, log: &log, err: func() error {
		if time.Now().Before(busyUntil) {
			return held
		}
		return nil
	}}
	down := &fakeMutex{where: "c", mu: &mu, log: &log, err: func() error { return fmt.Errorf("%w: refused", ErrUnreachable) }}

	// Without waiting: refused, and nothing stays locked.
	_, _, err := Acquire(context.Background(), []Mutex{b, a, down}, Options{})
	var le *LockedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "locked by ci pid 7 run r") {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	if got := strings.Join(log, ","); got != "lock a,unlock a" {
		t.Errorf("all or nothing: %s", got)
	}
	log = nil
	mu.Unlock()

	// Waiting: taken once free, in address order, the unreachable one
	// skipped.
	waits := 0
	ctx, set, err := Acquire(context.Background(), []Mutex{b, a, down}, Options{Wait: 5 * time.Second, Retry: 50 * time.Millisecond, Renew: 20 * time.Millisecond,
		Waiting: func(*LockedError) { waits++ }})
	if err != nil {
		t.Fatal(err)
	}
	if waits != 1 {
		t.Errorf("told of the wait %d times, want once per holder", waits)
	}
	// A lost lock cancels the run.
	mu.Lock()
	b.lost = true
	mu.Unlock()
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), ErrLost) {
			t.Errorf("cause %v", context.Cause(ctx))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lost lock did not cancel the run")
	}
	if err := set.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(log, ","); !strings.HasPrefix(got, "lock a,unlock a") || !strings.HasSuffix(got, "lock a,lock b,unlock b,unlock a") {
		t.Errorf("log: %s", got)
	}
}
