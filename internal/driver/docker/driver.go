// Package docker is the Docker driver: it connects to ships (unix socket,
// TCP with TLS, SSH tunnel), observes the containers on them, and carries
// out plan steps immutably — a replacement is created, started and checked
// before the old container goes, and a failed replacement leaves the old
// one running.
package docker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/maestro-sync/maestro-sync/internal/health"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// Driver carries out plan steps on Docker ships. It implements
// apply.Target.
type Driver struct {
	pool     *Pool
	images   *imageCache
	envs     map[string]*manifest.Environment
	revision string
	// Owner is stamped on every container created, and only containers
	// of that owner (or of none, made before owners existed) are replaced
	// or removed.
	Owner owner.Owner
	// RefreshImages pulls every image even when the ship has it.
	RefreshImages bool
	// CheckInterval is the pause between attempts of lifecycle checks.
	CheckInterval time.Duration
	// LockTTL is how long the lock of a ship's front proxy routes
	// outlives a holder that fell silent (0: lock.DefaultTTL).
	LockTTL time.Duration

	// built maps the images this run's build steps pushed to their
	// registry digests.
	builtMu sync.Mutex
	built   map[string]string
}

// NewDriver returns a driver for the steps of envs.
func NewDriver(pool *Pool, envs []*manifest.Environment, revision string, auth *Auth) *Driver {
	d := &Driver{pool: pool, envs: map[string]*manifest.Environment{}, revision: revision, images: newImageCache(auth), CheckInterval: time.Second,
		built: map[string]string{}}
	for _, e := range envs {
		d.envs[e.Name] = e
	}
	return d
}

// Apply carries out one step.
func (d *Driver) Apply(ctx context.Context, st plan.Step, progress func(string)) error {
	switch st.Action {
	case plan.Create:
		return d.create(ctx, st, progress)
	case plan.Replace:
		return d.replace(ctx, st, progress)
	case plan.Remove:
		return d.remove(ctx, st, progress)
	case plan.Bake:
		return d.bake(ctx, st, progress)
	case plan.Build:
		return d.build(ctx, st, progress)
	}
	return fmt.Errorf("the docker driver cannot %s", st.Action)
}

// target is what a step needs: the instance, its ship and the client.
type target struct {
	env  *manifest.Environment
	in   *manifest.Instance
	ship *manifest.Ship
	c    *client.Client
	// own records the ship's events the step's actions are to send.
	own *ownActions
	// image is the reference the instance's new container runs.
	image string
}

func (d *Driver) target(st plan.Step) (*target, error) {
	env := d.envs[st.Env]
	if env == nil && st.Action == plan.Remove {
		// An environment no longer in the repository: its container is
		// reached through any loaded ship with the same address.
		return d.hostTarget(st)
	}
	if env == nil {
		return nil, fmt.Errorf("environment %s is not loaded", st.Env)
	}
	t := &target{env: env, in: env.Instance(st.Instance)}
	if t.in != nil {
		t.image = d.image(st, t.in)
	}
	shipName := st.Ship
	if t.in != nil && st.Action != plan.Remove {
		shipName = t.in.Ship
	}
	t.ship = env.Ships[shipName]
	if t.ship == nil {
		t.ship = shipAt(st.Host, env)
	}
	if t.ship == nil {
		return nil, fmt.Errorf("no ship of environment %s has address %s", st.Env, st.Host)
	}
	c, err := d.pool.Client(t.ship)
	if err != nil {
		return nil, err
	}
	t.c, t.own = c, d.pool.own(t.ship)
	return t, nil
}

// hostTarget is the target of a removal in an environment that is not
// loaded: no instance, and a ship of another environment at the address.
func (d *Driver) hostTarget(st plan.Step) (*target, error) {
	names := make([]string, 0, len(d.envs))
	for n := range d.envs {
		names = append(names, n)
	}
	slices.Sort(names)
	envs := make([]*manifest.Environment, len(names))
	for i, n := range names {
		envs[i] = d.envs[n]
	}
	s := shipAt(st.Host, envs...)
	if s == nil {
		return nil, fmt.Errorf("environment %s: no loaded ship has address %s", st.Env, st.Host)
	}
	c, err := d.pool.Client(s)
	if err != nil {
		return nil, err
	}
	return &target{env: &manifest.Environment{Name: st.Env}, ship: s, c: c, own: d.pool.own(s)}, nil
}

// shipAt returns the first ship of envs (in ship name order) whose Docker
// daemon has the address, or nil.
func shipAt(addr string, envs ...*manifest.Environment) *manifest.Ship {
	for _, env := range envs {
		for _, name := range env.ShipNames() {
			if s := env.Ships[name]; s.Address() == addr {
				return s
			}
		}
	}
	return nil
}

// short bounds a short request by the ship's timeout.
func short(ctx context.Context, ship *manifest.Ship) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, shipTimeout(ship))
}

// slow bounds container creation and start, which a busy daemon (many
// containers starting at once) can take much longer than the ship's
// request timeout to answer: six times that timeout, and at least a minute.
func slow(ctx context.Context, ship *manifest.Ship) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(time.Minute, 6*shipTimeout(ship)))
}

func (d *Driver) create(ctx context.Context, st plan.Step, progress func(string)) error {
	t, err := d.target(st)
	if err != nil {
		return err
	}
	if t.in == nil {
		return fmt.Errorf("instance %s is not in environment %s", st.Instance, st.Env)
	}
	if t.in.Route != nil {
		return d.createRouted(ctx, t, progress)
	}
	if err := d.checks(ctx, t, "pre-start", "", nil, progress); err != nil {
		return err
	}
	id, err := d.createContainer(ctx, t, t.in.Name, false, progress)
	if err != nil {
		return err
	}
	if err := d.startAndCheck(ctx, t, id, progress); err != nil {
		d.discard(ctx, t, id)
		return err
	}
	return nil
}

// replace swaps the live container for a new one. Without a host port
// clash the new one runs beside the old one until it passed its checks;
// with one, the old one is stopped first and started again if the new one
// fails.
func (d *Driver) replace(ctx context.Context, st plan.Step, progress func(string)) error {
	t, err := d.target(st)
	if err != nil {
		return err
	}
	if t.in == nil {
		return fmt.Errorf("instance %s is not in environment %s", st.Instance, st.Env)
	}
	sctx, cancel := short(ctx, t.ship)
	old, err := t.c.ContainerInspect(sctx, st.Container)
	cancel()
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("container %s is gone since the plan was made: plan again", shortID(st.Container))
		}
		return fmt.Errorf("inspect %s: %w", st.Instance, err)
	}
	if st.Adopt {
		if err := adoptable(old, t.in.Name); err != nil {
			return err
		}
	} else if err := d.ours(old, st.Env, t.in.Name); err != nil {
		return err
	}
	if t.in.Route != nil && !portsClash(old, t.in) {
		return d.replaceRouted(ctx, st, t, old, progress)
	}
	if err := d.checks(ctx, t, "pre-start", "", nil, progress); err != nil {
		return err
	}
	tmp := live.TempName(t.in.Name, t.in.SpecHash)
	id, err := d.createContainer(ctx, t, tmp, true, progress)
	if err != nil {
		return err
	}
	wasRunning := old.State != nil && old.State.Running
	// stopOld stops the old container after its pre-stop checks; its
	// stopped checks only report.
	stopOld := func() error {
		if wasRunning {
			if err := d.checks(ctx, t, "pre-stop", old.ID, &old, progress); err != nil {
				return err
			}
		}
		if err := d.stop(ctx, t, old.ID, stopTimeout(old)); err != nil {
			return fmt.Errorf("stop old container: %w", err)
		}
		if err := d.checks(ctx, t, "stopped", "", &old, progress); err != nil {
			progress("stopped checks failed (ignored): " + err.Error())
		}
		return nil
	}
	clash := portsClash(old, t.in)
	if t.in.Route == nil {
		// A service that leaves the front proxy: the old container
		// leaves its slot before it stops.
		if err := d.unroute(ctx, t, old, progress); err != nil {
			d.discard(ctx, t, id)
			return err
		}
	}
	if clash {
		progress("downtime: host ports clash, so the old container stops first")
		if err := stopOld(); err != nil {
			d.discard(ctx, t, id)
			return err
		}
	}
	if err := d.startAndCheck(ctx, t, id, progress); err != nil {
		progress("rolling back")
		d.discard(ctx, t, id)
		if clash && wasRunning {
			if rerr := d.restart(ctx, t, old.ID); rerr != nil {
				return fmt.Errorf("%w; and restarting the old container failed: %v", err, rerr)
			}
		}
		return err
	}
	if t.in.Route != nil {
		// A routed instance whose other ports clash: the proxy follows
		// the new container.
		if _, err := d.serveInstance(ctx, t, progress); err != nil {
			return fmt.Errorf("%w (the new one runs as %s)", err, tmp)
		}
	}
	if !clash {
		progress("stopping the old container")
		if err := stopOld(); err != nil {
			d.discard(ctx, t, id)
			return err
		}
	}
	progress("removing the old container")
	// An adopted container's anonymous volumes are not ours: they stay.
	if err := d.removeContainer(ctx, t, old.ID, !st.Adopt); err != nil {
		return fmt.Errorf("remove old container: %w (the new one runs as %s)", err, tmp)
	}
	sctx, cancel = short(ctx, t.ship)
	defer cancel()
	t.expect(id, renameEvents)
	if err := t.c.ContainerRename(sctx, id, t.in.Name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, t.in.Name, err)
	}
	if t.in.Route != nil || upstreamOf(old) == "" {
		return nil
	}
	// It left the front proxy: its kept containers, which only a rollback
	// through the proxy could use, go, and so does the proxy when nothing
	// else on the ship is routed.
	if err := d.pruneKept(ctx, t, 0); err != nil {
		return err
	}
	return d.retireProxy(ctx, t, progress)
}

func (d *Driver) remove(ctx context.Context, st plan.Step, progress func(string)) error {
	t, err := d.target(st)
	if err != nil {
		return err
	}
	progress("stopping")
	sctx, cancel := short(ctx, t.ship)
	info, err := t.c.ContainerInspect(sctx, st.Container)
	cancel()
	if cerrdefs.IsNotFound(err) {
		return nil // already gone
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", st.Instance, err)
	}
	if err := d.ours(info, st.Env, st.Instance); err != nil {
		return err
	}
	if err := d.unroute(ctx, t, info, progress); err != nil {
		return err
	}
	if err := d.stop(ctx, t, info.ID, stopTimeout(info)); err != nil {
		return err
	}
	progress("removing")
	if err := d.removeContainer(ctx, t, info.ID, true); err != nil {
		return err
	}
	if upstreamOf(info) == "" {
		return nil
	}
	return d.retireProxy(ctx, t, progress)
}

// createContainer makes sure the image is there and creates the container.
func (d *Driver) createContainer(ctx context.Context, t *target, name string, temporary bool, progress func(string)) (string, error) {
	img := cmp.Or(t.image, t.in.Image)
	info, err := d.images.ensure(ctx, t, img, d.RefreshImages, progress)
	if err != nil {
		return "", err
	}
	progress("creating " + name)
	cfg := containerConfig(t.env, cmp.Or(t.env.Revision, d.revision), d.Owner, t.in)
	cfg.Config.Image = img
	if pin := pinned(img, info); pin != "" {
		cfg.Config.Labels[label.Image] = pin
	}
	if t.in.Route != nil {
		if err := d.ensureNetwork(ctx, t); err != nil {
			return "", err
		}
	}
	sctx, cancel := slow(ctx, t.ship)
	defer cancel()
	resp, err := t.c.ContainerCreate(sctx, cfg.Config, cfg.Host, cfg.Net, nil, name)
	if cerrdefs.IsConflict(err) && temporary {
		// A leftover of an interrupted apply with the same spec, if it
		// is ours: its labels are read again before it goes.
		if info, ierr := t.c.ContainerInspect(sctx, name); ierr == nil && d.ours(info, t.env.Name, name) == nil {
			t.expect(info.ID, removeEvents)
			if rerr := t.c.ContainerRemove(sctx, info.ID, container.RemoveOptions{RemoveVolumes: true, Force: true}); rerr == nil {
				resp, err = t.c.ContainerCreate(sctx, cfg.Config, cfg.Host, cfg.Net, nil, name)
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil && temporary {
			// Cancelled (SIGTERM) while dockerd created it: the
			// container may exist with no one to know its ID. A
			// temporary one of ours goes, as a failed one would.
			d.discardNamed(ctx, t, name)
		}
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	if cfg.Net == nil && t.in.Route != nil {
		if err := d.connectProxy(ctx, t, resp.ID); err != nil {
			d.discard(ctx, t, resp.ID)
			return "", err
		}
	}
	return resp.ID, nil
}

// ours checks, right before a destructive call, that an inspected
// container is still the one the step means: the environment's and the
// driver's owner's (or made before owners existed), under the name
// maestro-sync gives it (name, the instance's or a replacement's). A
// container whose labels were copied onto another name, or that changed
// hands since the plan, is left alone.
func (d *Driver) ours(info container.InspectResponse, env, name string) error {
	var labels map[string]string
	if info.Config != nil {
		labels = info.Config.Labels
	}
	lc := live.Container{Name: strings.TrimPrefix(info.Name, "/"), Labels: labels}
	switch {
	case lc.Name != name:
		return fmt.Errorf("container %s is now named %s: left alone; plan again", shortID(info.ID), lc.Name)
	case lc.Env() != env || !lc.Ours(d.Owner.ID):
		who := lc.OwnerName()
		if who == "" {
			who = "no owner"
		}
		return fmt.Errorf("container %s (%s) is not environment %s's of %s (labels: environment %q, owner %s): left alone",
			lc.Name, shortID(info.ID), env, d.Owner, lc.Env(), who)
	}
	return nil
}

// adoptable checks, right before a container without maestro-sync labels
// is replaced (apply --adopt), that it still holds the instance's name and
// still has no maestro-sync labels.
func adoptable(info container.InspectResponse, name string) error {
	lc := live.Container{Name: strings.TrimPrefix(info.Name, "/")}
	if info.Config != nil {
		lc.Labels = info.Config.Labels
	}
	switch {
	case lc.Name != name:
		return fmt.Errorf("container %s is now named %s: left alone; plan again", shortID(info.ID), lc.Name)
	case lc.Owned():
		return fmt.Errorf("container %s (%s) carries maestro-sync labels since the plan: left alone; plan again", lc.Name, shortID(info.ID))
	}
	return nil
}

// startAndCheck starts a container, waits until it runs and runs its
// running checks. The error carries the checks' output and the
// container's last log lines.
func (d *Driver) startAndCheck(ctx context.Context, t *target, id string, progress func(string)) error {
	progress("starting")
	sctx, cancel := slow(ctx, t.ship)
	err := t.c.ContainerStart(sctx, id, container.StartOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	info, err := d.waitRunning(ctx, t, id)
	if err != nil {
		return d.withLogs(ctx, t, id, err)
	}
	if err := d.runningChecks(ctx, t, id, info, progress); err != nil {
		return err
	}
	return d.waitHealthy(ctx, t, id, info, progress)
}

// runningChecks runs the instance's running checks on its started
// container.
func (d *Driver) runningChecks(ctx context.Context, t *target, id string, info container.InspectResponse, progress func(string)) error {
	checks := t.in.Lifecycle["running"]
	if len(checks) == 0 {
		return nil
	}
	ht := health.Target{Name: t.in.Name, Host: t.ship.IP, Ports: boundPorts(info, t.in), Env: t.in.Env.List(), Exec: &execer{c: t.c, id: id}}
	for _, c := range checks {
		progress("checking " + health.Describe(c, ht))
	}
	alive := func(ctx context.Context) error {
		sctx, cancel := short(ctx, t.ship)
		defer cancel()
		info, err := t.c.ContainerInspect(sctx, id)
		if err != nil {
			return err
		}
		if !info.State.Running {
			return fmt.Errorf("container exited with code %d", info.State.ExitCode)
		}
		return nil
	}
	if err := health.Run(ctx, checks, ht, health.Options{Interval: d.CheckInterval, Alive: alive}); err != nil {
		return d.withLogs(ctx, t, id, fmt.Errorf("running checks failed: %w", err))
	}
	return nil
}

// checks runs the instance's checks of one lifecycle state. For pre-stop
// and stopped checks, info is the container concerned (its bound ports and
// its exec target); id is "" when no container exists yet.
func (d *Driver) checks(ctx context.Context, t *target, state, id string, info *container.InspectResponse, progress func(string)) error {
	checks := t.in.Lifecycle[state]
	if len(checks) == 0 {
		return nil
	}
	ht := health.Target{Name: t.in.Name, Host: t.ship.IP, Ports: map[string]string{}, Env: t.in.Env.List()}
	for _, p := range t.in.Ports {
		ht.Ports[p.Name] = p.ExternalPort()
	}
	if info != nil {
		ht.Ports = boundPorts(*info, t.in)
	}
	if id != "" {
		ht.Exec = &execer{c: t.c, id: id}
	}
	progress("checking " + state)
	if err := health.Run(ctx, checks, ht, health.Options{Interval: d.CheckInterval}); err != nil {
		return fmt.Errorf("%s checks failed: %w", state, err)
	}
	return nil
}

// waitHealthy waits, when the container has a Docker HEALTHCHECK of its
// own (in its image or its spec), until Docker reports it healthy: an
// unhealthy container fails as a failed running check does, with the last
// output of its health check. The wait is bounded by what Docker needs to
// decide (start period, then retries intervals) plus a margin.
func (d *Driver) waitHealthy(ctx context.Context, t *target, id string, info container.InspectResponse, progress func(string)) error {
	if info.State == nil || info.State.Health == nil || info.State.Health.Status == container.NoHealthcheck {
		return nil
	}
	hc := &container.HealthConfig{}
	if info.Config != nil && info.Config.Healthcheck != nil {
		hc = info.Config.Healthcheck
	}
	or := func(v, def time.Duration) time.Duration {
		if v <= 0 {
			return def
		}
		return v
	}
	interval, timeout := or(hc.Interval, 30*time.Second), or(hc.Timeout, 30*time.Second)
	retries := hc.Retries
	if retries <= 0 {
		retries = 3
	}
	limit := hc.StartPeriod + time.Duration(retries+1)*(interval+timeout) + 10*time.Second
	progress("waiting for the container's HEALTHCHECK")
	deadline := time.Now().Add(limit)
	pause := 100 * time.Millisecond
	for {
		sctx, cancel := short(ctx, t.ship)
		info, err := t.c.ContainerInspect(sctx, id)
		cancel()
		if err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		switch {
		case info.State == nil || !info.State.Running:
			return d.withLogs(ctx, t, id, errors.New("the container stopped while its HEALTHCHECK was starting"))
		case info.State.Health == nil:
			return nil
		case info.State.Health.Status == container.Healthy:
			return nil
		case info.State.Health.Status == container.Unhealthy:
			return fmt.Errorf("the container's HEALTHCHECK reports it unhealthy%s", lastHealthOutput(info.State.Health))
		case time.Now().After(deadline):
			return fmt.Errorf("the container's HEALTHCHECK is still starting after %s%s", limit.Round(time.Second), lastHealthOutput(info.State.Health))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// lastHealthOutput is the last output of a HEALTHCHECK, bounded, to end
// an error with.
func lastHealthOutput(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	last := h.Log[len(h.Log)-1]
	out := strings.TrimSpace(lastLines(last.Output, 3))
	if len(out) > 500 {
		out = out[:500] + "…"
	}
	return fmt.Sprintf(" (last check: exit code %d: %q)", last.ExitCode, out)
}

// waitRunning waits until the container runs (about 5 s, as MaestroNG).
func (d *Driver) waitRunning(ctx context.Context, t *target, id string) (container.InspectResponse, error) {
	var info container.InspectResponse
	for range 11 {
		sctx, cancel := short(ctx, t.ship)
		var err error
		info, err = t.c.ContainerInspect(sctx, id)
		cancel()
		if err != nil {
			return info, fmt.Errorf("inspect: %w", err)
		}
		if info.State.Running {
			return info, nil
		}
		if info.State.Status == "exited" || info.State.Status == "dead" {
			return info, fmt.Errorf("container exited with code %d", info.State.ExitCode)
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return info, fmt.Errorf("container did not start within 5s (state %s)", info.State.Status)
}

// withLogs appends the container's last log lines to err.
func (d *Driver) withLogs(ctx context.Context, t *target, id string, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shipTimeout(t.ship))
	defer cancel()
	rc, lerr := t.c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "10"})
	if lerr != nil {
		return err
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 8<<10))
	// The log lines reach errors, the status API and notifications: the
	// instance's env values are hidden in them.
	logs := strings.TrimSpace(health.Redact(t.in.Env.List(), out.String()))
	if logs == "" {
		return err
	}
	return fmt.Errorf("%w\nlast log lines of %s:\n%s", err, t.in.Name, indent(logs))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// stop stops a container, giving it timeout seconds before it is killed.
func (d *Driver) stop(ctx context.Context, t *target, id string, timeout int) error {
	sctx, cancel := context.WithTimeout(ctx, shipTimeout(t.ship)+time.Duration(timeout)*time.Second)
	defer cancel()
	t.expect(id, stopEvents)
	if err := t.c.ContainerStop(sctx, id, container.StopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: %w", shortID(id), err)
	}
	return nil
}

// removeContainer removes a container, with its anonymous volumes when
// volumes is set (only for containers maestro-sync created).
func (d *Driver) removeContainer(ctx context.Context, t *target, id string, volumes bool) error {
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	t.expect(id, removeEvents)
	if err := t.c.ContainerRemove(sctx, id, container.RemoveOptions{RemoveVolumes: volumes, Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", shortID(id), err)
	}
	return nil
}

// discard removes a container that failed, even when ctx is cancelled: a
// rollback must finish.
// discardNamed removes the container of that name when it is ours, even
// when ctx is cancelled. dockerd may finish a create whose request was
// cancelled a moment later, so a missing container is looked for again
// for a second.
func (d *Driver) discardNamed(ctx context.Context, t *target, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*shipTimeout(t.ship))
	defer cancel()
	for range 5 {
		info, err := t.c.ContainerInspect(ctx, name)
		switch {
		case err == nil:
			if d.ours(info, t.env.Name, name) == nil {
				t.expect(info.ID, removeEvents)
				_ = t.c.ContainerRemove(ctx, info.ID, container.RemoveOptions{RemoveVolumes: true, Force: true})
			}
			return
		case !cerrdefs.IsNotFound(err):
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *Driver) discard(ctx context.Context, t *target, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*shipTimeout(t.ship))
	defer cancel()
	t.expect(id, removeEvents)
	_ = t.c.ContainerRemove(ctx, id, container.RemoveOptions{RemoveVolumes: true, Force: true})
}

// restart starts the old container again after a failed replacement, even
// when ctx is cancelled.
func (d *Driver) restart(ctx context.Context, t *target, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*shipTimeout(t.ship))
	defer cancel()
	return t.c.ContainerStart(ctx, id, container.StartOptions{})
}

func stopTimeout(info container.InspectResponse) int {
	if info.Config != nil && info.Config.StopTimeout != nil {
		return *info.Config.StopTimeout
	}
	return 10
}

// boundPorts maps the instance's port names to the host ports actually
// bound (a random host port is only known once the container runs).
func boundPorts(info container.InspectResponse, in *manifest.Instance) map[string]string {
	out := map[string]string{}
	for _, p := range in.Ports {
		out[p.Name] = p.ExternalPort()
		if info.NetworkSettings == nil {
			continue
		}
		if b := info.NetworkSettings.Ports[nat.Port(p.Exposed)]; len(b) > 0 && b[0].HostPort != "" {
			out[p.Name] = b[0].HostPort
		}
	}
	return out
}

// portsClash reports whether the new instance binds a host port the old
// container holds, so that both cannot run at once.
func portsClash(old container.InspectResponse, in *manifest.Instance) bool {
	if in.Net == "host" || (old.HostConfig != nil && old.HostConfig.NetworkMode == "host") {
		return true
	}
	if old.HostConfig == nil {
		return false
	}
	for oldPort, binds := range old.HostConfig.PortBindings {
		for _, ob := range binds {
			olo, ohi := hostRange(ob.HostPort)
			if olo == 0 {
				continue
			}
			for _, p := range in.Ports {
				if p.Protocol() != oldPort.Proto() || in.Route != nil && p.Name == in.Route.Port {
					continue
				}
				lo, hi := hostRange(p.ExternalPort())
				if lo == 0 || lo > ohi || olo > hi {
					continue
				}
				if sameAddress(ob.HostIP, p.ExternalIP) {
					return true
				}
			}
		}
	}
	return false
}

func hostRange(s string) (int, int) {
	a, b, isRange := strings.Cut(s, "-")
	lo, _ := strconv.Atoi(a)
	if !isRange {
		return lo, lo
	}
	hi, _ := strconv.Atoi(b)
	return lo, hi
}

func sameAddress(a, b string) bool {
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	if a == "" || b == "" || errA != nil || errB != nil {
		return true
	}
	return pa == pb || pa.IsUnspecified() || pb.IsUnspecified()
}

func shortID(id string) string { return id[:min(12, len(id))] }

// execer runs commands inside a container for rexec checks.
type execer struct {
	c  *client.Client
	id string
}

func (e *execer) Exec(ctx context.Context, cmd []string) (int, string, error) {
	created, err := e.c.ContainerExecCreate(ctx, e.id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, "", err
	}
	att, err := e.c.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, "", err
	}
	// Closing the connection is what interrupts a read when ctx ends.
	stop := context.AfterFunc(ctx, att.Close)
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, io.LimitReader(att.Reader, 64<<10))
	stop()
	att.Close()
	// The output ends just before the process does: the first polls
	// come quickly.
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		info, err := e.c.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return -1, out.String(), err
		}
		if !info.Running {
			return info.ExitCode, out.String(), nil
		}
		select {
		case <-ctx.Done():
			return -1, out.String(), ctx.Err()
		case <-time.After(pause):
		}
	}
}
