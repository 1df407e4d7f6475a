package kube_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

func TestLeaseLock(t *testing.T) {
	cp := kubetest.Start(t)
	ns := cp.Namespace(t, "lock")
	cp.Kubectl(t, "create", "namespace", ns)
	cl := &manifest.Cluster{Name: "kc", Kubeconfig: cp.Kubeconfig, Namespace: ns}
	pool := kube.NewPool()
	ctx := context.Background()
	key := lock.Key{Owner: owner.New("git.example.com/acme/locks"), Env: "alpha"}
	first := lock.Holder{Host: "ci-1", PID: 11, Run: "run1"}
	second := lock.Holder{Host: "laptop", PID: 22, Run: "run2"}

	h1, err := pool.Mutex(cl, key, first, 3*time.Second).TryLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Mutex(cl, key, second, 3*time.Second).TryLock(ctx)
	var le *lock.LockedError
	if !errors.As(err, &le) || le.Info.Holder != first || !strings.Contains(err.Error(), "locked by ci-1 pid 11 run run1") {
		t.Fatalf("second TryLock: %v", err)
	}
	for range 3 {
		time.Sleep(1500 * time.Millisecond)
		if err := h1.Renew(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Mutex(cl, key, second, 3*time.Second).TryLock(ctx); !errors.As(err, &le) {
		t.Fatalf("after renewals: %v", err)
	}
	// The holder falls silent (kill -9): the Lease is taken over after
	// its duration, and the old holder can neither renew nor release it.
	time.Sleep(4 * time.Second)
	h2, err := pool.Mutex(cl, key, second, 3*time.Second).TryLock(ctx)
	if err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	if err := h1.Renew(ctx); !errors.Is(err, lock.ErrLost) {
		t.Errorf("renewing a lost lease: %v", err)
	}
	if err := h1.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := pool.Mutex(cl, key, first, 0).Info(ctx)
	if err != nil || info.Holder != second {
		t.Fatalf("after the old holder's unlock: %+v %v", info, err)
	}
	if err := h2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Mutex(cl, key, first, 0).Info(ctx); err == nil {
		t.Error("the lease is still there after Unlock")
	}
}
