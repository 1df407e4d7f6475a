package docker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

func TestLockOnShip(t *testing.T) {
	s := dockertest.Shared(t, 1)[0]
	ship := &manifest.Ship{Name: "s1", IP: s.IP, SocketPath: s.Socket, Timeout: 20}
	pool := docker.NewPool()
	defer pool.Close()
	ctx := context.Background()
	key := lock.Key{Owner: owner.New("git.example.com/acme/locks"), Env: "alpha"}
	first := lock.Holder{Host: "ci-1", PID: 11, Run: "run1"}
	second := lock.Holder{Host: "laptop", PID: 22, Run: "run2"}

	h1, err := pool.Mutex(ship, key, first, 3*time.Second).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another holder is refused, and told who holds the lock.
	_, err = pool.Mutex(ship, key, second, 3*time.Second).TryLock(ctx)
	var le *lock.LockedError
	if !errors.As(err, &le) || le.Info.Holder != first || !strings.Contains(err.Error(), "locked by ci-1 pid 11 run run1") {
		t.Fatalf("second TryLock: %v", err)
	}
	// Another environment, or another owner's alpha, is another lock.
	other, err := pool.Mutex(ship, lock.Key{Owner: owner.New("git.example.com/acme/other"), Env: "alpha"}, second, 0).TryLock(ctx)
	if err != nil {
		t.Fatalf("another owner's alpha: %v", err)
	}
	if err := other.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	// Renewals keep the lock past its TTL.
	for range 3 {
		time.Sleep(1500 * time.Millisecond)
		if err := h1.Renew(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Mutex(ship, key, second, 3*time.Second).TryLock(ctx); !errors.As(err, &le) {
		t.Fatalf("after renewals: %v", err)
	}
	// Silence (kill -9 of the holder): after the TTL the lock is taken
	// over, and the silent holder learns it lost the lock.
	time.Sleep(5 * time.Second)
	h2, err := pool.Mutex(ship, key, second, 3*time.Second).TryLock(ctx)
	if err != nil {
		t.Fatalf("taking over an expired lock: %v", err)
	}
	if err := h1.Renew(ctx); !errors.Is(err, lock.ErrLost) {
		t.Errorf("renewing a lost lock: %v", err)
	}
	if err := h2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Mutex(ship, key, first, 0).Info(ctx); err == nil {
		t.Error("the lock is still there after Unlock")
	}
	if out := s.Docker(t, "ps", "-a", "--filter", "label=io.maestro-sync/lock-beat", "--format", "{{.Names}}"); out != "" {
		t.Errorf("renewals left behind: %s", out)
	}

	// Acquire waits for a lock released meanwhile.
	h3, err := pool.Mutex(ship, key, first, 0).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(time.Second)
		_ = h3.Unlock(ctx)
	}()
	waited := false
	start := time.Now()
	_, set, err := lock.Acquire(ctx, []lock.Mutex{pool.Mutex(ship, key, second, 0)}, lock.Options{Wait: 30 * time.Second, Retry: 200 * time.Millisecond,
		Waiting: func(*lock.LockedError) { waited = true }})
	if err != nil || !waited || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("Acquire: %v (waited %v)", err, waited)
	}
	if err := set.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
