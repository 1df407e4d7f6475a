// Package lock is the deploy lock: one per owner and environment, held on
// every ship and cluster a run changes, so that two runs (two `apply`
// processes, or `apply` and the daemon, on any machines) never act on one
// environment at once. The lock objects live on the targets themselves —
// a never-started container on a Docker ship, a coordination.k8s.io Lease
// in a cluster namespace — and name their holder. A holder renews its
// locks while it runs; a lock whose holder fell silent (kill -9, a lost
// machine) expires after its TTL and is then taken over.
//
// The drivers implement Mutex; this package acquires a set of them in a
// stable order, renews them and releases them.
package lock

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/maestro-sync/maestro-sync/internal/owner"
)

// DefaultTTL is how long a lock outlives its holder's last renewal.
const DefaultTTL = 30 * time.Second

// Key identifies a lock: an owner's environment.
type Key struct {
	Owner owner.Owner
	Env   string
}

// ID is a short digest of the key, used in lock object names.
func (k Key) ID() string {
	sum := sha256.Sum256([]byte(k.Owner.ID + "\x00" + k.Env))
	return hex.EncodeToString(sum[:8])
}

func (k Key) String() string {
	if k.Owner.Name == "" {
		return "environment " + k.Env
	}
	return "environment " + k.Env + " of " + k.Owner.Name
}

// Holder says who holds a lock.
type Holder struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Run distinguishes two runs of one process.
	Run string `json:"run"`
}

// Self returns the holder identity of this process for a new run: a
// random run ID tells two runs of one process apart.
func Self() Holder {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return Holder{Host: host, PID: os.Getpid(), Run: hex.EncodeToString(b)}
}

func (h Holder) String() string {
	return h.Host + " pid " + strconv.Itoa(h.PID) + " run " + h.Run
}

// Info describes a held lock.
type Info struct {
	Key Key `json:"-"`
	// Env and Owner are the key, readable.
	Env   string `json:"env"`
	Owner string `json:"owner"`
	// Where is the ship or cluster address the lock object lives on.
	Where  string `json:"where"`
	Holder Holder `json:"holder"`
	// Acquired is when the lock was taken; Renewed when its holder last
	// renewed it; Expires when it expires unless renewed (all as the
	// target's clock tells).
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	Expires  time.Time `json:"expires"`
	// Expired is true when the holder fell silent for longer than the
	// TTL: the next run takes the lock over.
	Expired bool `json:"expired"`
}

// LockedError is returned when another holder has the lock.
type LockedError struct {
	Info Info
}

func (e *LockedError) Error() string {
	i := e.Info
	if i.Acquired.IsZero() {
		return fmt.Sprintf("%s is locked by %s on %s", i.Key, i.Holder, i.Where)
	}
	return fmt.Sprintf("%s is locked by %s on %s since %s (expires %s unless renewed); see maestro-sync lock status",
		i.Key, i.Holder, i.Where, i.Acquired.UTC().Format(time.RFC3339), i.Expires.UTC().Format(time.RFC3339))
}

// ErrUnreachable marks a TryLock error of a target that cannot be
// reached: the run skips its lock, since it cannot change that target
// either. Every other error stops the run.
var ErrUnreachable = errors.New("unreachable")

// ErrLost is the cause of a run's context when one of its locks was taken
// over or removed while it ran.
var ErrLost = errors.New("deploy lock lost")

// Mutex is one lock object on one target.
type Mutex interface {
	// Where is the target's address (stable across runs: it orders
	// acquisition).
	Where() string
	// TryLock takes the lock, or takes it over when it expired. It
	// returns a *LockedError when another holder has it.
	TryLock(ctx context.Context) (Held, error)
}

// Held is a lock this process holds.
type Held interface {
	// Renew extends the lock; an error wrapping ErrLost means it is no
	// longer ours.
	Renew(ctx context.Context) error
	// Unlock releases the lock.
	Unlock(ctx context.Context) error
}

// Options tune Acquire.
type Options struct {
	// Wait is how long to wait for locks held by others (0: fail at once).
	Wait time.Duration
	// Retry is the pause between attempts while waiting (default 1 s).
	Retry time.Duration
	// Renew is the interval between renewals (default a third of
	// DefaultTTL).
	Renew time.Duration
	// Waiting, when set, is told once per holder that the run waits.
	Waiting func(err *LockedError)
}

// Set is the locks a run holds.
type Set struct {
	held   []Held
	stop   context.CancelFunc
	wg     sync.WaitGroup
	cancel context.CancelCauseFunc
}

// Acquire takes every lock of ms (the first by address alone, then the
// others at once; see tryAll), waiting
// up to opts.Wait for locks others hold. It returns a context derived from
// ctx that is cancelled (with cause ErrLost) if a lock is lost while held,
// and the Set to Release. Targets that cannot be reached are skipped: a
// run cannot change them either.
func Acquire(ctx context.Context, ms []Mutex, opts Options) (context.Context, *Set, error) {
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Renew <= 0 {
		opts.Renew = DefaultTTL / 3
	}
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(a, b Mutex) int {
		switch {
		case a.Where() < b.Where():
			return -1
		case a.Where() > b.Where():
			return 1
		}
		return 0
	})
	deadline := time.Now().Add(opts.Wait)
	told := map[Holder]bool{}
	for {
		held, err := tryAll(ctx, ms)
		if err == nil {
			runCtx, cancel := context.WithCancelCause(ctx)
			s := &Set{held: held, cancel: cancel}
			s.renew(runCtx, opts.Renew)
			return runCtx, s, nil
		}
		var le *LockedError
		if !errors.As(err, &le) || !time.Now().Before(deadline) {
			return ctx, nil, err
		}
		if opts.Waiting != nil && !told[le.Info.Holder] {
			told[le.Info.Holder] = true
			opts.Waiting(le)
		}
		select {
		case <-ctx.Done():
			return ctx, nil, context.Cause(ctx)
		case <-time.After(min(opts.Retry, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// tryAll takes every lock or none. The first lock (in address order) is
// taken alone: two runs that want the same locks meet there, and the one
// that loses goes no further. The others are then taken at once, since a
// fleet of ships far away would otherwise be locked one round trip after
// the other.
func tryAll(ctx context.Context, ms []Mutex) ([]Held, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	held := make([]Held, len(ms))
	errs := make([]error, len(ms))
	held[0], errs[0] = ms[0].TryLock(ctx)
	if errs[0] == nil || errors.Is(errs[0], ErrUnreachable) {
		var g errgroup.Group
		g.SetLimit(tryLimit)
		for i := 1; i < len(ms); i++ {
			g.Go(func() error {
				held[i], errs[i] = ms[i].TryLock(ctx)
				return nil
			})
		}
		_ = g.Wait()
	}
	var taken []Held
	var first error
	for i, err := range errs {
		switch {
		case err == nil && held[i] != nil:
			taken = append(taken, held[i])
		case err != nil && !errors.Is(err, ErrUnreachable) && first == nil:
			first = err // nothing will change where it is unreachable either
		}
	}
	if first != nil {
		release(ctx, taken)
		return nil, first
	}
	return taken, nil
}

// tryLimit bounds the locks taken or released at once.
const tryLimit = 16

// release releases the locks in the reverse order of acquisition: every
// one but the first at once, then the first.
func release(ctx context.Context, held []Held) error {
	if len(held) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	errs := make([]error, len(held))
	var g errgroup.Group
	g.SetLimit(tryLimit)
	for i := len(held) - 1; i >= 1; i-- {
		g.Go(func() error {
			errs[i] = held[i].Unlock(ctx)
			return nil
		})
	}
	_ = g.Wait()
	errs[0] = held[0].Unlock(ctx)
	slices.Reverse(errs)
	return errors.Join(errs...)
}

// renew renews every lock each interval until Release; a lost lock cancels
// the run.
func (s *Set) renew(ctx context.Context, every time.Duration) {
	ctx, s.stop = context.WithCancel(ctx)
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, h := range s.held {
				rctx, cancel := context.WithTimeout(ctx, every)
				err := h.Renew(rctx)
				cancel()
				if errors.Is(err, ErrLost) {
					s.cancel(err)
					return
				}
			}
		}
	})
}

// Release stops the renewals and releases every lock, even when the
// run's context is cancelled.
func (s *Set) Release(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.stop()
	s.wg.Wait()
	err := release(ctx, s.held)
	s.cancel(nil)
	return err
}
