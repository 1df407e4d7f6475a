package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
)

// InventoryName is the name of the ConfigMap listing the objects an
// owner's environment applied in one namespace:
// maestro-sync-inventory-<env>-<owner ID> (without the owner part for
// objects made before owners existed). An environment name that is not a
// valid object name part is lower-cased, its other characters replaced by
// -, and a digest of the name appended.
func InventoryName(owner, env string) string {
	if owner != "" {
		return envInventoryName(env) + "-" + owner
	}
	return envInventoryName(env)
}

func envInventoryName(env string) string {
	name := strings.ToLower(env)
	name = invalidName.ReplaceAllString(name, "-")
	name = strings.Trim(name, "-.")
	if name != env {
		sum := sha256.Sum256([]byte(env))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	return "maestro-sync-inventory-" + name
}

var invalidName = regexp.MustCompile(`[^a-z0-9.-]+`)

// objRef identifies an object in an inventory, written as cli-utils writes
// its inventory keys: <namespace>_<name>_<group>_<kind>. Its value is the
// service the object belongs to.
type objRef struct {
	Namespace, Name, Group, Kind string
}

func (r objRef) String() string { return r.Namespace + "_" + r.Name + "_" + r.Group + "_" + r.Kind }

func parseRef(s string) (objRef, bool) {
	parts := strings.Split(s, "_")
	if len(parts) != 4 || parts[1] == "" || parts[3] == "" {
		return objRef{}, false
	}
	return objRef{Namespace: parts[0], Name: parts[1], Group: parts[2], Kind: parts[3]}, true
}

func refOf(ns, kind, name string) objRef {
	group := ""
	switch kind {
	case KindDeployment, KindDaemonSet:
		group = "apps"
	case KindIngress:
		group = "networking.k8s.io"
	}
	return objRef{Namespace: ns, Name: name, Group: group, Kind: kind}
}

// readInventory reads the objects recorded in an environment's
// inventory, by service.
func readInventory(ctx context.Context, c kubernetes.Interface, ns, owner, env string) (map[string][]objRef, error) {
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, InventoryName(owner, env), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	if !isInventory(cm, owner, env) {
		return nil, nil
	}
	out := map[string][]objRef{}
	for k, v := range cm.Data {
		if r, ok := parseRef(k); ok && r.Namespace == ns {
			out[v] = append(out[v], r)
		}
	}
	return out, nil
}

func isInventory(cm *corev1.ConfigMap, owner, env string) bool {
	return cm.Labels[label.Inventory] == "true" && cm.Labels[label.Env] == env && cm.Labels[label.Owner] == owner
}

// invChange is one service's change to an inventory.
type invChange struct {
	service   string
	add, drop []objRef
	// origin, when set, are the environment's manifest path and labels
	// to record (annotations label.File and label.EnvLabels).
	origin map[string]string
	done   chan error
}

// originOf is what an inventory records of env's origin (see
// live.OriginRecord): which daemon's shard it was in once its file is gone.
func originOf(env *manifest.Environment) map[string]string {
	return live.OriginRecord(env.Path, env.Labels)
}

// invQueue batches the changes of concurrent steps to one inventory: the
// first caller writes, for everyone, every change queued while the
// previous write was in flight (a group commit), so that steps do not
// queue up behind one another's read-modify-write.
type invQueue struct {
	mu      sync.Mutex
	pending []*invChange
	busy    bool
}

func (d *Driver) inventoryQueue(cl *manifest.Cluster, env string) *invQueue {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := cl.Address() + "/" + env
	if d.invQueues[key] == nil {
		d.invQueues[key] = &invQueue{}
	}
	return d.invQueues[key]
}

// updateInventory sets the objects of one service in the environment's
// inventory: add are recorded, drop are forgotten. It returns once the
// change is written. Concurrent updates by other processes are merged by
// retrying on conflict; the ConfigMap is created on first use and deleted
// once empty.
func (d *Driver) updateInventory(ctx context.Context, c kubernetes.Interface, cl *manifest.Cluster, env, service string, add, drop []objRef, origin map[string]string) error {
	if len(add) == 0 && len(drop) == 0 {
		return nil
	}
	q := d.inventoryQueue(cl, env)
	mine := &invChange{service: service, add: add, drop: drop, origin: origin, done: make(chan error, 1)}
	q.mu.Lock()
	q.pending = append(q.pending, mine)
	if q.busy {
		q.mu.Unlock()
		return <-mine.done
	}
	q.busy = true
	for {
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		err := writeInventory(context.WithoutCancel(ctx), c, cl.Namespace, d.Owner, env, batch)
		for _, ch := range batch {
			ch.done <- err
		}
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.busy = false
			q.mu.Unlock()
			return <-mine.done
		}
	}
}

// writeInventory applies a batch of changes to the inventory ConfigMap.
func writeInventory(ctx context.Context, c kubernetes.Interface, ns string, own owner.Owner, env string, batch []*invChange) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name := InventoryName(own.ID, env)
	cms := c.CoreV1().ConfigMaps(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		switch {
		case create:
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels: map[string]string{label.Env: env, label.Inventory: "true"}}}
			if !own.IsZero() {
				cm.Labels[label.Owner] = own.ID
				cm.Annotations = map[string]string{label.OwnerName: own.Name}
			}
		case err != nil:
			return err
		case !isInventory(cm, own.ID, env):
			return fmt.Errorf("configmap %s exists and is not maestro-sync's inventory of environment %s: left alone", name, env)
		}
		data := maps.Clone(cm.Data)
		if data == nil {
			data = map[string]string{}
		}
		annotations := maps.Clone(cm.Annotations)
		for _, ch := range batch {
			for k, v := range ch.origin {
				if annotations == nil {
					annotations = map[string]string{}
				}
				annotations[k] = v
			}
		}
		for _, ch := range batch {
			for _, r := range ch.drop {
				if data[r.String()] == ch.service {
					delete(data, r.String())
				}
			}
			for _, r := range ch.add {
				data[r.String()] = ch.service
			}
		}
		switch {
		case maps.Equal(data, cm.Data) && maps.Equal(annotations, cm.Annotations) && !create:
			return nil
		case len(data) == 0 && create:
			return nil
		case len(data) == 0:
			return cms.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cm.ResourceVersion}})
		case create:
			cm.Data, cm.Annotations = data, annotations
			_, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), name, err)
			}
			return err
		}
		cm.Data, cm.Annotations = data, annotations
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update inventory %s: %w", name, err)
	}
	return nil
}
