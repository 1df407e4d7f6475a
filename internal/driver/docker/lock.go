package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// LockImage is the image of lock containers: an empty file system,
// imported on the ship when missing, so that a lock needs no registry.
const LockImage = "maestro-sync/lock:1"

// LockName is the name of the lock container of a key.
func LockName(k lock.Key) string { return "maestro-sync-lock." + k.ID() }

// Mutex is the deploy lock of one key on one ship: a container that is
// never started, created atomically under the lock's name (Docker refuses
// a second container of that name). Its labels name the holder; renewals
// are further never-started containers, whose creation times the ship's
// clock sets, so that expiry does not depend on any client's clock.
type Mutex struct {
	pool   *Pool
	ship   *manifest.Ship
	key    lock.Key
	holder lock.Holder
	ttl    time.Duration
}

// Mutex returns the lock of key on ship, for holder.
func (p *Pool) Mutex(ship *manifest.Ship, key lock.Key, holder lock.Holder, ttl time.Duration) *Mutex {
	if ttl <= 0 {
		ttl = lock.DefaultTTL
	}
	return &Mutex{pool: p, ship: ship, key: key, holder: holder, ttl: ttl}
}

// Where is the ship's address.
func (m *Mutex) Where() string { return m.ship.Address() }

// TryLock takes the lock, taking over an expired one.
func (m *Mutex) TryLock(ctx context.Context) (lock.Held, error) {
	c, err := m.pool.Client(m.ship)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", lock.ErrUnreachable, &HostDownError{Ship: m.ship.Name, Err: err})
	}
	ctx, cancel := context.WithTimeout(ctx, 2*shipTimeout(m.ship))
	defer cancel()
	if err := ensureLockImage(ctx, c); err != nil {
		if client.IsErrConnectionFailed(err) {
			return nil, fmt.Errorf("%w: %w", lock.ErrUnreachable, &HostDownError{Ship: m.ship.Name, Err: err})
		}
		return nil, fmt.Errorf("ship %s: lock image: %w", m.ship.Name, err)
	}
	holder, _ := json.Marshal(m.holder)
	labels := map[string]string{
		label.Lock: m.key.ID(), label.LockEnv: m.key.Env, label.LockHolder: string(holder),
		label.LockTTL: strconv.Itoa(int(m.ttl.Seconds())),
		label.Owner:   m.key.Owner.ID, label.OwnerName: m.key.Owner.Name,
	}
	cfg := &container.Config{Image: LockImage, Cmd: []string{"maestro-sync-lock"}, Labels: labels}
	for attempt := range 5 {
		resp, err := c.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, LockName(m.key))
		if err == nil {
			return &heldLock{m: m, c: c, id: resp.ID}, nil
		}
		if client.IsErrConnectionFailed(err) {
			return nil, fmt.Errorf("%w: %w", lock.ErrUnreachable, &HostDownError{Ship: m.ship.Name, Err: err})
		}
		if !cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("ship %s: create lock: %w", m.ship.Name, err)
		}
		info, id, err := m.read(ctx, c)
		switch {
		case cerrdefs.IsNotFound(err):
			// Released meanwhile: the name stays taken while Docker
			// removes the container.
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
			continue
		case err != nil:
			return nil, err
		case !info.Expired:
			return nil, &lock.LockedError{Info: info}
		}
		// The holder fell silent: remove exactly that lock object (not
		// one created since), then try again.
		if err := m.drop(ctx, c, id, info.Holder.Run); err != nil {
			return nil, fmt.Errorf("ship %s: take over expired lock: %w", m.ship.Name, err)
		}
	}
	info, _, err := m.read(ctx, c)
	if cerrdefs.IsNotFound(err) {
		// Still being released: the caller waits and tries again.
		info.Holder = lock.Holder{Host: "a run releasing it", Run: "-"}
		return nil, &lock.LockedError{Info: info}
	}
	if err != nil {
		return nil, err
	}
	return nil, &lock.LockedError{Info: info}
}

// Info reads the lock; a NotFound error when nobody holds it.
func (m *Mutex) Info(ctx context.Context) (lock.Info, error) {
	c, err := m.pool.Client(m.ship)
	if err != nil {
		return lock.Info{}, &HostDownError{Ship: m.ship.Name, Err: err}
	}
	info, _, err := m.read(ctx, c)
	return info, err
}

// Break removes the lock whoever holds it (lock release --force), and
// its renewals.
func (m *Mutex) Break(ctx context.Context) error {
	c, err := m.pool.Client(m.ship)
	if err != nil {
		return &HostDownError{Ship: m.ship.Name, Err: err}
	}
	info, id, err := m.read(ctx, c)
	if err != nil {
		return err
	}
	return m.drop(ctx, c, id, info.Holder.Run)
}

// drop removes exactly the lock object with that ID (not one created
// since under the name) and the renewals of its run.
func (m *Mutex) drop(ctx context.Context, c *client.Client, id, run string) error {
	if err := c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	m.removeBeats(ctx, c, run)
	return nil
}

// read reads the lock object and its renewals, with the ship's clock.
func (m *Mutex) read(ctx context.Context, c *client.Client) (lock.Info, string, error) {
	info := lock.Info{Key: m.key, Env: m.key.Env, Owner: m.key.Owner.Name, Where: m.ship.Address()}
	ct, err := c.ContainerInspect(ctx, LockName(m.key))
	if err != nil {
		return info, "", err
	}
	if ct.Config == nil || ct.Config.Labels[label.Lock] != m.key.ID() {
		return info, "", fmt.Errorf("ship %s: container %s is not a maestro-sync lock", m.ship.Name, LockName(m.key))
	}
	l := ct.Config.Labels
	_ = json.Unmarshal([]byte(l[label.LockHolder]), &info.Holder)
	ttl := time.Duration(atoi(l[label.LockTTL])) * time.Second
	if ttl <= 0 {
		ttl = lock.DefaultTTL
	}
	info.Acquired, _ = time.Parse(time.RFC3339Nano, ct.Created)
	info.Renewed = info.Acquired
	beats, err := m.beats(ctx, c, info.Holder.Run)
	if err != nil {
		return info, "", fmt.Errorf("ship %s: list lock renewals: %w", m.ship.Name, err)
	}
	for _, b := range beats {
		if t := time.Unix(b.Created, 0); t.After(info.Renewed) {
			info.Renewed = t
		}
	}
	info.Expires = info.Renewed.Add(ttl)
	now, err := shipNow(ctx, c)
	if err != nil {
		return info, "", fmt.Errorf("ship %s: %w", m.ship.Name, err)
	}
	info.Expired = now.After(info.Expires)
	return info, ct.ID, nil
}

// beats lists the renewals of the lock by one run.
func (m *Mutex) beats(ctx context.Context, c *client.Client, run string) ([]container.Summary, error) {
	return c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", label.LockBeat+"="+m.key.ID()), filters.Arg("label", label.LockHolder+"="+run))})
}

func (m *Mutex) removeBeats(ctx context.Context, c *client.Client, run string) {
	beats, err := m.beats(ctx, c, run)
	if err != nil {
		return
	}
	for _, b := range beats {
		_ = c.ContainerRemove(ctx, b.ID, container.RemoveOptions{Force: true})
	}
}

// heldLock is a lock this process holds on a ship.
type heldLock struct {
	m     *Mutex
	c     *client.Client
	id    string
	beats int
}

// Renew checks that the lock object is still ours and records a renewal.
func (h *heldLock) Renew(ctx context.Context) error {
	_, err := h.c.ContainerInspect(ctx, h.id)
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("ship %s: %s: %w (removed by someone else)", h.m.ship.Name, h.m.key, lock.ErrLost)
	}
	if err != nil {
		return err // the ship is unreachable: try again later
	}
	h.beats++
	name := h.beatName(h.beats)
	cfg := &container.Config{Image: LockImage, Cmd: []string{"maestro-sync-lock"},
		Labels: map[string]string{label.LockBeat: h.m.key.ID(), label.LockHolder: h.m.holder.Run}}
	if _, err := h.c.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, name); err != nil {
		return fmt.Errorf("ship %s: renew lock: %w", h.m.ship.Name, err)
	}
	if h.beats > 1 {
		_ = h.c.ContainerRemove(ctx, h.beatName(h.beats-1), container.RemoveOptions{Force: true})
	}
	return nil
}

// beatName names the n-th renewal of this holder's run.
func (h *heldLock) beatName(n int) string {
	return LockName(h.m.key) + ".renew-" + h.m.holder.Run + "-" + strconv.Itoa(n)
}

// Unlock removes the renewals and the lock object.
func (h *heldLock) Unlock(ctx context.Context) error {
	h.m.removeBeats(ctx, h.c, h.m.holder.Run)
	if err := h.c.ContainerRemove(ctx, h.id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("ship %s: release lock: %w", h.m.ship.Name, err)
	}
	return nil
}

// ensureLockImage imports the empty lock image when the ship lacks it.
func ensureLockImage(ctx context.Context, c *client.Client) error {
	if _, err := c.ImageInspect(ctx, LockImage); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return err
	}
	empty := bytes.NewReader(make([]byte, 1024)) // an empty tar archive
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: empty, SourceName: "-"}, LockImage, image.ImportOptions{})
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if _, ierr := c.ImageInspect(ctx, LockImage); ierr == nil {
		return nil // imported, here or by a concurrent run
	}
	if err == nil {
		err = fmt.Errorf("%s is missing after its import", LockImage)
	}
	return err
}

// shipNow is the ship's clock.
func shipNow(ctx context.Context, c *client.Client) (time.Time, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the clock: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, info.SystemTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the clock: %q: %w", info.SystemTime, err)
	}
	return t, nil
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
