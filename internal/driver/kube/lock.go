package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// LeaseName is the name of the Lease that locks a key in a namespace.
func LeaseName(k lock.Key) string { return "maestro-sync-lock-" + k.ID() }

// Mutex is the deploy lock of one key in one cluster namespace: a
// coordination.k8s.io Lease, created atomically, renewed by its holder and
// taken over once it expired. Updates carry the resource version read, so
// two takers never both win.
type Mutex struct {
	pool    *Pool
	cluster *manifest.Cluster
	key     lock.Key
	holder  lock.Holder
	ttl     time.Duration
}

// Mutex returns the lock of key in the cluster's namespace, for holder.
func (p *Pool) Mutex(cl *manifest.Cluster, key lock.Key, holder lock.Holder, ttl time.Duration) *Mutex {
	if ttl <= 0 {
		ttl = lock.DefaultTTL
	}
	return &Mutex{pool: p, cluster: cl, key: key, holder: holder, ttl: ttl}
}

// Where is the cluster's address.
func (m *Mutex) Where() string { return m.cluster.Address() }

func (m *Mutex) identity() string {
	b, _ := json.Marshal(m.holder)
	return string(b)
}

func (m *Mutex) lease(now time.Time) *coordinationv1.Lease {
	secs := int32(m.ttl.Seconds())
	id := m.identity()
	t := metav1.NewMicroTime(now)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName(m.key), Namespace: m.cluster.Namespace,
			Labels:      map[string]string{label.Lock: m.key.ID(), label.Owner: m.key.Owner.ID},
			Annotations: map[string]string{label.LockEnv: m.key.Env, label.OwnerName: m.key.Owner.Name}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, AcquireTime: &t, RenewTime: &t},
	}
}

// TryLock takes the Lease, taking over an expired one.
func (m *Mutex) TryLock(ctx context.Context) (lock.Held, error) {
	c, err := m.pool.Client(m.cluster)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster %s: %w", lock.ErrUnreachable, m.cluster.Name, err)
	}
	api := c.CoordinationV1().Leases(m.cluster.Namespace)
	for range 3 {
		created, err := api.Create(ctx, m.lease(time.Now()), metav1.CreateOptions{FieldManager: FieldManager})
		if err == nil {
			return &heldLease{m: m, c: c, uid: created.UID}, nil
		}
		if apierrors.IsNotFound(err) {
			// The namespace does not exist yet: nothing can be running
			// there, and the first apply creates it.
			return &heldLease{m: m, c: c}, nil
		}
		var netErr net.Error
		if errors.As(err, &netErr) {
			return nil, fmt.Errorf("%w: cluster %s: %w", lock.ErrUnreachable, m.cluster.Name, err)
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("cluster %s: create lease: %w", m.cluster.Name, err)
		}
		cur, err := api.Get(ctx, LeaseName(m.key), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cluster %s: read lease: %w", m.cluster.Name, err)
		}
		info := m.info(cur)
		if !info.Expired {
			return nil, &lock.LockedError{Info: info}
		}
		next := m.lease(time.Now())
		next.ResourceVersion = cur.ResourceVersion // only if nobody else took it
		updated, err := api.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cluster %s: take over expired lease: %w", m.cluster.Name, err)
		}
		return &heldLease{m: m, c: c, uid: updated.UID}, nil
	}
	return nil, fmt.Errorf("cluster %s: lease %s keeps changing", m.cluster.Name, LeaseName(m.key))
}

// Info reads the Lease; a NotFound error when nobody holds it.
func (m *Mutex) Info(ctx context.Context) (lock.Info, error) {
	c, err := m.pool.Client(m.cluster)
	if err != nil {
		return lock.Info{}, err
	}
	cur, err := c.CoordinationV1().Leases(m.cluster.Namespace).Get(ctx, LeaseName(m.key), metav1.GetOptions{})
	if err != nil {
		return lock.Info{}, err
	}
	return m.info(cur), nil
}

// Break deletes the Lease whoever holds it.
func (m *Mutex) Break(ctx context.Context) error {
	c, err := m.pool.Client(m.cluster)
	if err != nil {
		return err
	}
	err = c.CoordinationV1().Leases(m.cluster.Namespace).Delete(ctx, LeaseName(m.key), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (m *Mutex) info(l *coordinationv1.Lease) lock.Info {
	info := lock.Info{Key: m.key, Env: m.key.Env, Owner: m.key.Owner.Name, Where: m.cluster.Address()}
	if l.Spec.HolderIdentity != nil {
		_ = json.Unmarshal([]byte(*l.Spec.HolderIdentity), &info.Holder)
	}
	if l.Spec.AcquireTime != nil {
		info.Acquired = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		info.Renewed = l.Spec.RenewTime.Time
	}
	ttl := lock.DefaultTTL
	if l.Spec.LeaseDurationSeconds != nil {
		ttl = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	info.Expires = info.Renewed.Add(ttl)
	info.Expired = time.Now().After(info.Expires)
	return info
}

// heldLease is a Lease this process holds.
type heldLease struct {
	m   *Mutex
	c   kubernetes.Interface
	uid types.UID // "" when the namespace did not exist: nothing to renew
}

// Renew moves the Lease's renew time, if it is still ours.
func (h *heldLease) Renew(ctx context.Context) error {
	if h.uid == "" {
		return nil
	}
	api := h.c.CoordinationV1().Leases(h.m.cluster.Namespace)
	cur, err := api.Get(ctx, LeaseName(h.m.key), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("cluster %s: %s: %w (lease deleted)", h.m.cluster.Name, h.m.key, lock.ErrLost)
	case err != nil:
		return err
	case cur.UID != h.uid || cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != h.m.identity():
		return fmt.Errorf("cluster %s: %s: %w (taken over)", h.m.cluster.Name, h.m.key, lock.ErrLost)
	}
	now := metav1.NewMicroTime(time.Now())
	cur.Spec.RenewTime = &now
	if _, err := api.Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("cluster %s: %s: %w (changed by another holder)", h.m.cluster.Name, h.m.key, lock.ErrLost)
		}
		return err
	}
	return nil
}

// Unlock deletes the Lease, if it is still ours.
func (h *heldLease) Unlock(ctx context.Context) error {
	if h.uid == "" {
		return nil
	}
	api := h.c.CoordinationV1().Leases(h.m.cluster.Namespace)
	cur, err := api.Get(ctx, LeaseName(h.m.key), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster %s: release lease: %w", h.m.cluster.Name, err)
	}
	if cur.UID != h.uid || cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != h.m.identity() {
		return nil // taken over since: no longer ours to release
	}
	uid, rv := cur.UID, cur.ResourceVersion
	err = api.Delete(ctx, LeaseName(h.m.key), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("cluster %s: release lease: %w", h.m.cluster.Name, err)
	}
	return nil
}
