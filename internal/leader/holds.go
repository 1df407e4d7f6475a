package leader

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/maestro-sync/maestro-sync/internal/history"
)

// Holds keeps the operators' holds (pauses, rollback pins) in a ConfigMap
// that every replica reads, so that a new leader keeps them: one key per
// environment (its name in hex, a valid key whatever the name), the hold
// as JSON. Writes are optimistic: a conflict is read and written again.
type Holds struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// Timeout bounds each call (default 10 s).
	Timeout time.Duration
}

// maxHoldsSize bounds what is read back: a ConfigMap holds at most 1 MiB.
const maxHoldsSize = 1 << 20

func (h Holds) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cmp.Or(h.Timeout, 10*time.Second))
}

// Holds returns the holds by environment. A value that cannot be read is
// left out and reported in the error; the others are returned.
func (h Holds) Holds() (map[string]history.Hold, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	cm, err := h.Client.CoreV1().ConfigMaps(h.Namespace).Get(ctx, h.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]history.Hold{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("holds %s/%s: %w", h.Namespace, h.Name, err)
	}
	out := map[string]history.Hold{}
	var bad []error
	size := 0
	for key, v := range cm.Data {
		size += len(v)
		var hold history.Hold
		if size > maxHoldsSize || json.Unmarshal([]byte(v), &hold) != nil || hold.Env == "" || key != holdKey(hold.Env) {
			bad = append(bad, fmt.Errorf("holds %s/%s: key %s is not a hold", h.Namespace, h.Name, key))
			continue
		}
		out[hold.Env] = hold
	}
	return out, errors.Join(bad...)
}

// SetHold stores a hold, replacing the environment's.
func (h Holds) SetHold(hold history.Hold) error {
	data, err := json.Marshal(hold)
	if err != nil {
		return err
	}
	return h.update(func(d map[string]string) { d[holdKey(hold.Env)] = string(data) })
}

// ClearHold removes the environment's hold, if any.
func (h Holds) ClearHold(env string) error {
	return h.update(func(d map[string]string) { delete(d, holdKey(env)) })
}

func holdKey(env string) string { return "env-" + hex.EncodeToString([]byte(env)) }

// update changes the ConfigMap's data, creating it when missing, and
// tries again on a conflict with another writer.
func (h Holds) update(change func(map[string]string)) error {
	ctx, cancel := h.ctx()
	defer cancel()
	api := h.Client.CoreV1().ConfigMaps(h.Namespace)
	for attempt := 0; ; attempt++ {
		cm, err := api.Get(ctx, h.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: h.Name, Namespace: h.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "maestro-sync", "app.kubernetes.io/component": "holds"}}}
			cm.Data = map[string]string{}
			change(cm.Data)
			_, err = api.Create(ctx, cm, metav1.CreateOptions{})
		case err != nil:
			return fmt.Errorf("holds %s/%s: %w", h.Namespace, h.Name, err)
		default:
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			change(cm.Data)
			_, err = api.Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err == nil {
			return nil
		}
		if (!apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err)) || attempt >= 5 {
			return fmt.Errorf("holds %s/%s: %w", h.Namespace, h.Name, err)
		}
	}
}
