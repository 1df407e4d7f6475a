package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/go-connections/nat"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// keepOld keeps a replaced routed container stopped under its kept name
// (live.KeptName), with no restart policy so that a restart of the ship
// does not bring it back, for a rollback; kept containers beyond the
// route's keep are removed, oldest first. With keep 0 it is removed.
func (d *Driver) keepOld(ctx context.Context, t *target, old container.InspectResponse, adopted bool, progress func(string)) error {
	hash := ""
	if old.Config != nil {
		hash = old.Config.Labels[label.SpecHash]
	}
	if t.in.Route.Keep == 0 || adopted || hash == "" {
		progress("removing the old container")
		return d.removeContainer(ctx, t, old.ID, !adopted)
	}
	progress("keeping the old container stopped for a rollback")
	name := live.KeptName(t.in.Name, hash)
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	if prev, err := t.c.ContainerInspect(sctx, name); err == nil && prev.ID != old.ID {
		// A container kept earlier of the same spec gives way.
		if err := d.ours(prev, t.env.Name, name); err != nil {
			return err
		}
		if err := d.removeContainer(ctx, t, prev.ID, true); err != nil {
			return err
		}
	}
	t.expect(old.ID, updateEvents)
	if _, err := t.c.ContainerUpdate(sctx, old.ID, noRestart); err != nil {
		return fmt.Errorf("keep old container: %w", err)
	}
	t.expect(old.ID, renameEvents)
	if err := t.c.ContainerRename(sctx, old.ID, name); err != nil {
		return fmt.Errorf("keep old container as %s: %w", name, err)
	}
	return d.pruneKept(ctx, t, t.in.Route.Keep)
}

// noRestart takes a kept container's restart policy away, so that an
// engine restart leaves it stopped.
var noRestart = container.UpdateConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled}}

// kept lists the instance's kept containers, the one that stopped
// serving last first.
func (d *Driver) kept(ctx context.Context, t *target) ([]container.InspectResponse, error) {
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	list, err := t.c.ContainerList(sctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", label.Instance+"="+t.in.Name), filters.Arg("label", label.Env+"="+t.env.Name))})
	if err != nil {
		return nil, fmt.Errorf("list kept containers of %s: %w", t.in.Name, err)
	}
	var out []container.InspectResponse
	for _, c := range list {
		lc := live.Container{Labels: c.Labels}
		if len(c.Names) > 0 {
			lc.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		if !lc.Kept() || !lc.Ours(d.Owner.ID) {
			continue
		}
		info, err := t.c.ContainerInspect(sctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", lc.Name, err)
		}
		out = append(out, info)
	}
	finished := func(i container.InspectResponse) time.Time {
		if i.State == nil {
			return time.Time{}
		}
		t, _ := time.Parse(time.RFC3339Nano, i.State.FinishedAt)
		return t
	}
	slices.SortFunc(out, func(a, b container.InspectResponse) int {
		if c := finished(b).Compare(finished(a)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// pruneKept removes the kept containers of the instance beyond keep.
func (d *Driver) pruneKept(ctx context.Context, t *target, keep int) error {
	list, err := d.kept(ctx, t)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list[min(keep, len(list)):] {
		errs = append(errs, d.removeContainer(ctx, t, c.ID, true))
	}
	return errors.Join(errs...)
}

// Rollback swaps a routed instance back to its newest kept container,
// through the proxy and with no pull or build: the kept container starts,
// passes the route's health check, the proxy switches to it, and the
// current container drains, stops and is kept in its turn. It returns the
// revisions rolled back from and to.
func (d *Driver) Rollback(ctx context.Context, r Ref, progress func(string)) (from, to string, err error) {
	ship, c, err := d.pool.refClient(r)
	if err != nil {
		return "", "", err
	}
	t := &target{env: r.Env, in: r.In, ship: ship, c: c, own: d.pool.own(ship)}
	if t.in.Route == nil {
		return "", "", fmt.Errorf("%s is not behind the front proxy (proxy:): only routed instances keep their previous container", t.in.Name)
	}
	sctx, cancel := short(ctx, t.ship)
	cur, err := t.c.ContainerInspect(sctx, t.in.Name)
	cancel()
	if err != nil {
		return "", "", fmt.Errorf("inspect %s: %w", t.in.Name, err)
	}
	if err := d.ours(cur, t.env.Name, t.in.Name); err != nil {
		return "", "", err
	}
	list, err := d.kept(ctx, t)
	if err != nil {
		return "", "", err
	}
	if len(list) == 0 {
		return "", "", fmt.Errorf("%s has no kept container to roll back to (keep: 0, or no replacement since it was created)", t.in.Name)
	}
	prev := list[0]
	prevName := strings.TrimPrefix(prev.Name, "/")
	if err := d.ours(prev, t.env.Name, prevName); err != nil {
		return "", "", err
	}
	from, to = cur.Config.Labels[label.Revision], prev.Config.Labels[label.Revision]
	prevUp, curUp := prev.Config.Labels[label.Upstream], cur.Config.Labels[label.Upstream]
	var route proxyRoute
	if json.Unmarshal([]byte(prev.Config.Labels[label.Route]), &route) != nil || prevUp == "" {
		return "", "", fmt.Errorf("%s carries no route labels: it cannot be swapped in through the proxy", prevName)
	}

	// The kept container starts while the proxy's lock is taken and its
	// table read: the switch waits for the health check only.
	progress("starting " + prevName)
	ready := make(chan error, 1)
	go func() { ready <- d.startKept(ctx, t, prev.ID, prevUp, progress) }()
	var startErr error
	waited := false
	proxyID, err := d.withProxy(ctx, t, progress, true, func(rt *routeTable) bool {
		waited, startErr = true, <-ready
		if startErr != nil {
			return false
		}
		progress("switching the front proxy to " + prevName)
		rt.serve(route, t.in.Name, prevUp)
		return true
	})
	if !waited {
		startErr = <-ready
	}
	if startErr != nil || err != nil {
		d.restop(ctx, t, prev.ID)
		if startErr != nil {
			return "", "", fmt.Errorf("%s: %w", prevName, startErr)
		}
		return "", "", err
	}
	// It serves: its restart policy comes back (a kept container has
	// none).
	if policy := restartPolicy(prev); policy.Name != container.RestartPolicyDisabled {
		sctx, cancel = short(ctx, t.ship)
		t.expect(prev.ID, updateEvents)
		_, err = t.c.ContainerUpdate(sctx, prev.ID, container.UpdateConfig{RestartPolicy: policy})
		cancel()
		if err != nil {
			return from, to, fmt.Errorf("restore the restart policy of %s: %w", prevName, err)
		}
	}
	if curUp != "" {
		d.drain(ctx, t, proxyID, cur, t.in.Route.Drain, progress)
	}
	progress("stopping " + t.in.Name)
	if err := d.stop(ctx, t, cur.ID, stopTimeout(cur)); err != nil {
		return from, to, err
	}
	sctx, cancel = short(ctx, t.ship)
	defer cancel()
	keptName := live.KeptName(t.in.Name, cur.Config.Labels[label.SpecHash])
	t.expect(cur.ID, updateEvents)
	if _, err := t.c.ContainerUpdate(sctx, cur.ID, noRestart); err != nil {
		return from, to, fmt.Errorf("keep %s: %w", t.in.Name, err)
	}
	t.expect(cur.ID, renameEvents)
	if err := t.c.ContainerRename(sctx, cur.ID, keptName); err != nil {
		return from, to, fmt.Errorf("keep %s as %s: %w", t.in.Name, keptName, err)
	}
	t.expect(prev.ID, renameEvents)
	if err := t.c.ContainerRename(sctx, prev.ID, t.in.Name); err != nil {
		return from, to, fmt.Errorf("rename %s to %s: %w", prevName, t.in.Name, err)
	}
	return from, to, nil
}

// startKept starts a kept container and waits until it answers its
// route's health check.
func (d *Driver) startKept(ctx context.Context, t *target, id, upstream string, progress func(string)) error {
	sctx, cancel := slow(ctx, t.ship)
	err := t.c.ContainerStart(sctx, id, container.StartOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	running, err := d.waitRunning(ctx, t, id)
	if err != nil {
		return err
	}
	_, portName, _ := strings.Cut(upstream, ":")
	return d.probeAt(ctx, t, id, hostPort(running, portName), progress)
}

// restop stops a kept container again after a failed rollback.
func (d *Driver) restop(ctx context.Context, t *target, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*shipTimeout(t.ship))
	defer cancel()
	timeout := 1
	t.expect(id, stopEvents)
	_ = t.c.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout})
	t.expect(id, updateEvents)
	_, _ = t.c.ContainerUpdate(ctx, id, noRestart)
}

// restartPolicy is the restart policy a container's spec asks for (a kept
// container has none while it is kept).
func restartPolicy(info container.InspectResponse) container.RestartPolicy {
	var spec manifest.Spec
	if info.Config == nil || json.Unmarshal([]byte(info.Config.Labels[label.Spec]), &spec) != nil || spec.Restart.Name == "" {
		return container.RestartPolicy{Name: container.RestartPolicyDisabled}
	}
	return container.RestartPolicy{Name: container.RestartPolicyMode(spec.Restart.Name), MaximumRetryCount: spec.Restart.MaxRetries}
}

// hostPort is the host port a running container's TCP port is published
// on, or "".
func hostPort(info container.InspectResponse, port string) string {
	if info.NetworkSettings == nil {
		return ""
	}
	if b := info.NetworkSettings.Ports[nat.Port(port+"/tcp")]; len(b) > 0 {
		return b[0].HostPort
	}
	return ""
}

// Rollback markers: after a rollback, the environment is held on what it
// was rolled back to while its source desires what it was rolled back
// from, so that
// the next reconcile does not undo the rollback. A marker is a container
// that never starts (like a lock), named after the owner's environment,
// on each ship where the environment was rolled back.

// RollbackName is the name of an environment's rollback marker.
func RollbackName(k lock.Key) string { return "maestro-sync-rollback." + k.ID() }

// MarkRollback records on the ship that the environment of the key was
// rolled back from its desired state of digest (revision from) to the
// revision to.
func (d *Driver) MarkRollback(ctx context.Context, ship *manifest.Ship, k lock.Key, digest, from, to string) error {
	c, err := d.pool.Client(ship)
	if err != nil {
		return err
	}
	sctx, cancel := slow(ctx, ship)
	defer cancel()
	if err := ensureLockImage(sctx, c); err != nil {
		return err
	}
	data, _ := json.Marshal(live.Rollback{Env: k.Env, Digest: digest, From: from, To: to, At: time.Now().UTC()})
	labels := map[string]string{label.Rollback: string(data), label.Owner: k.Owner.ID, label.OwnerName: k.Owner.Name}
	name := RollbackName(k)
	if err := c.ContainerRemove(sctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("replace rollback marker: %w", err)
	}
	if _, err := c.ContainerCreate(sctx, &container.Config{Image: LockImage, Labels: labels, Cmd: []string{"rollback"}}, nil, nil, nil, name); err != nil {
		return fmt.Errorf("rollback marker: %w", err)
	}
	return nil
}

// ReleaseRollback removes the environment's rollback marker from the ship.
func (d *Driver) ReleaseRollback(ctx context.Context, ship *manifest.Ship, k lock.Key) error {
	c, err := d.pool.Client(ship)
	if err != nil {
		return err
	}
	sctx, cancel := short(ctx, ship)
	defer cancel()
	if err := c.ContainerRemove(sctx, RollbackName(k), container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("release rollback marker: %w", err)
	}
	return nil
}

// bake watches a batch of a staged rollout for the gate's time: every
// container of the batch must keep running, without restarting, and keep
// answering its route's health path (three failures in a row fail it).
// When one does not, the whole batch is swapped back to the containers it
// replaced (as rollback does) and the error names the instance and why;
// the rollout's later batches, which run after this step, never start.
func (d *Driver) bake(ctx context.Context, st plan.Step, progress func(string)) error {
	env := d.envs[st.Env]
	if env == nil || st.Gate == nil {
		return fmt.Errorf("bake %s: environment %s is not loaded", st.Instance, st.Env)
	}
	wait, err := time.ParseDuration(st.Gate.Bake)
	if err != nil {
		return fmt.Errorf("bake %s: %w", st.Instance, err)
	}
	var batch []*watched
	for _, name := range st.Gate.Instances {
		in := env.Instance(name)
		if in == nil || in.Route == nil {
			return fmt.Errorf("bake %s: %s is not a routed instance of environment %s", st.Instance, name, env.Name)
		}
		ship := env.Ships[in.Ship]
		c, err := d.pool.Client(ship)
		if err != nil {
			return err
		}
		t := &target{env: env, in: in, ship: ship, c: c, own: d.pool.own(ship)}
		sctx, cancel := short(ctx, ship)
		info, err := c.ContainerInspect(sctx, in.Name)
		cancel()
		if err != nil {
			return fmt.Errorf("bake: inspect %s: %w", in.Name, err)
		}
		batch = append(batch, &watched{t: t, id: info.ID, restarts: info.RestartCount})
	}
	progress(fmt.Sprintf("baking batch %d/%d (%s) for %s", st.Gate.Batch, st.Gate.Batches, strings.Join(st.Gate.Instances, ", "), wait))
	start := time.Now()
	deadline := start.Add(wait)
	client := healthClient(2 * time.Second)
	var failed *watched
	var why error
	for failed == nil {
		for _, w := range batch {
			if err := w.check(ctx, client); err != nil {
				w.misses++
				if w.misses >= 3 || errors.Is(err, errGone) {
					failed, why = w, err
					break
				}
			} else {
				w.misses = 0
			}
		}
		if failed != nil || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(500*time.Millisecond, time.Until(deadline)+time.Millisecond)):
		}
	}
	if failed == nil {
		return nil
	}
	err = fmt.Errorf("%s failed %s into the bake of batch %d/%d of %s: %w", failed.t.in.Name, time.Since(start).Round(100*time.Millisecond),
		st.Gate.Batch, st.Gate.Batches, st.Service, d.withLogs(ctx, failed.t, failed.id, why))
	progress("rolling back batch " + strconv.Itoa(st.Gate.Batch) + ": " + why.Error())
	var errs []error
	for _, w := range batch {
		// A rollback must finish even when the run is cancelled.
		rctx := context.WithoutCancel(ctx)
		if _, _, rerr := d.Rollback(rctx, Ref{Env: env, In: w.t.in, Owner: d.Owner.ID}, progress); rerr != nil {
			errs = append(errs, fmt.Errorf("roll back %s: %w", w.t.in.Name, rerr))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; and the batch could not be rolled back in full: %w", err, errors.Join(errs...))
	}
	return fmt.Errorf("%w; batch %d was swapped back to its previous containers and the rollout stops", err, st.Gate.Batch)
}

// watched is a container of a batch being baked.
type watched struct {
	t        *target
	id       string
	restarts int
	// misses counts the health checks failed in a row.
	misses int
}

// errGone marks a batch container that stopped, restarted or was
// replaced: it fails the bake at once.
var errGone = errors.New("container gone")

// check looks at a baked container once: still the same, running, never
// restarted, and answering its route's health path with 2xx or 3xx.
func (w *watched) check(ctx context.Context, client *http.Client) error {
	t := w.t
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	info, err := t.c.ContainerInspect(sctx, w.id)
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: removed", errGone)
	case err != nil:
		return err
	case info.State == nil || !info.State.Running:
		code := 0
		if info.State != nil {
			code = info.State.ExitCode
		}
		return fmt.Errorf("%w: the container exited with code %d", errGone, code)
	case info.RestartCount != w.restarts:
		return fmt.Errorf("%w: the container restarted %d times", errGone, info.RestartCount-w.restarts)
	}
	if err := healthGet(sctx, client, t, boundPorts(info, t.in)[t.in.Route.Port]); err != nil {
		return fmt.Errorf("health check GET %s: %w", t.in.Route.Health, err)
	}
	return nil
}
