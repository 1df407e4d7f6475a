// Package leader runs work only while this process is the leader of its
// replicas: the holder of a coordination.k8s.io Lease, through client-go's
// leader election. Followers wait, ready to take over when the leader's
// lease runs out (it was killed, or its node was lost).
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Config says which Lease the replicas share and who this one is.
type Config struct {
	Client kubernetes.Interface
	// Namespace and Name name the Lease.
	Namespace, Name string
	// Identity names this replica (its pod's name).
	Identity string
	// LeaseDuration is how long followers wait after the last renewal
	// before taking over (default 15 s); the leader renews every
	// LeaseDuration/7 and gives up when it could not renew for 2/3 of it.
	LeaseDuration time.Duration
	// OnLeader is told the identity of each new leader (this one's too).
	OnLeader func(identity string)
	Log      *slog.Logger
}

// ErrLost is returned when this replica lost the lease it held: its work
// was cancelled and another replica may lead now.
var ErrLost = errors.New("leader election: the lease was lost")

// Run campaigns for the lease until ctx ends, and runs lead while this
// replica holds it. It returns nil when ctx ended (releasing the lease if
// held), or ErrLost when the lease was lost while leading: lead's context
// is then cancelled, and Run returns once lead did.
func Run(ctx context.Context, cfg Config, lead func(ctx context.Context)) error {
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// client-go's leader election logs through klog: into our log.
	klog.SetSlogLogger(cfg.Log.With("component", "leader-election"))
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	// client-go starts OnStartedLeading in a goroutine of its own: it
	// may start after Run returned (the lease lost at once), and must
	// then not run lead at all.
	var mu sync.Mutex
	started, over := false, false
	done := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            cfg.Name,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.LeaseDuration * 2 / 3,
		RetryPeriod:     max(cfg.LeaseDuration/7, 100*time.Millisecond),
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				mu.Lock()
				if over {
					mu.Unlock()
					return
				}
				started = true
				mu.Unlock()
				defer close(done)
				cfg.Log.Info("leading", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
				lead(ctx)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				if identity != cfg.Identity {
					cfg.Log.Info("following", "lease", cfg.Namespace+"/"+cfg.Name, "leader", identity)
				}
				if cfg.OnLeader != nil {
					cfg.OnLeader(identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx) // returns when ctx ends, or the lease it held was lost
	mu.Lock()
	over = true
	wait := started
	mu.Unlock()
	if wait {
		<-done // lead returned: nothing of it still runs
	}
	if ctx.Err() == nil {
		// Run only returns early after holding the lease.
		return ErrLost
	}
	return nil
}
