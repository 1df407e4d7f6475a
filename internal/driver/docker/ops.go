package docker

// This file holds the operations behind MaestroNG's verbs (status, start,
// stop, restart, clean, pull, logs) on single instances, and the play that
// runs one of them over several instances in dependency order. A verb only
// ever acts on the container that carries the instance's owner labels: a
// container holding the name without them is reported, never touched.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/health"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// Ref is one instance of an environment: what a verb acts on.
type Ref struct {
	Env *manifest.Environment
	In  *manifest.Instance
	// Owner is the ID of the owner acting; a container of another owner
	// holding the instance's name is foreign.
	Owner string
}

// Ship returns the ship the instance runs on.
func (r Ref) Ship() *manifest.Ship { return r.Env.Ships[r.In.Ship] }

// String returns env/instance.
func (r Ref) String() string { return r.Env.Name + "/" + r.In.Name }

// Container is a container as its ship reports it.
type Container struct {
	ID    string
	Name  string
	Image string // the image reference it was created from
	// ImageID is the ID of the image it runs ("sha256:...").
	ImageID string
	// State is Docker's state: created, running, exited, ...
	State      string
	Running    bool
	StartedAt  time.Time // zero when never started
	FinishedAt time.Time // zero when never stopped
	Labels     map[string]string
	// Ports maps the instance's port names to the host ports bound (or,
	// when not running, the ports of the manifest).
	Ports map[string]string
	// Health is the state of its own Docker HEALTHCHECK (starting,
	// healthy, unhealthy), "" when it has none.
	Health string

	tty bool
}

// SpecHash returns the spec hash the container was created with.
func (c *Container) SpecHash() string { return c.Labels[label.SpecHash] }

// Revision returns the source revision the container was created from.
func (c *Container) Revision() string { return c.Labels[label.Revision] }

// Observed is what holds an instance's name on its ship.
type Observed struct {
	// Container is the instance's container: it carries the instance's
	// owner labels. Nil when there is none.
	Container *Container
	// Foreign is a container that holds the instance's name without
	// being the instance's (no maestro-sync labels, or those of another
	// environment or instance). It is never touched.
	Foreign *Container
}

// HostDownError is returned when a ship's daemon cannot be reached.
type HostDownError struct {
	Ship string
	Err  error
}

func (e *HostDownError) Error() string { return "ship " + e.Ship + ": " + e.Err.Error() }
func (e *HostDownError) Unwrap() error { return e.Err }

// IsHostDown reports whether err says a ship could not be reached.
func IsHostDown(err error) bool {
	var hd *HostDownError
	return errors.As(err, &hd)
}

// client returns the ship's client, or a HostDownError.
func (p *Pool) refClient(r Ref) (*manifest.Ship, *client.Client, error) {
	ship := r.Ship()
	if ship == nil {
		return nil, nil, fmt.Errorf("%s: ship %s is not in environment %s", r.In.Name, r.In.Ship, r.Env.Name)
	}
	c, err := p.Client(ship)
	if err != nil {
		return ship, nil, &HostDownError{Ship: ship.Name, Err: err}
	}
	return ship, c, nil
}

// Inspect tells what holds the instance's name on its ship. An error means
// the ship could not be asked (a HostDownError when it is unreachable).
func (p *Pool) Inspect(ctx context.Context, r Ref) (Observed, error) {
	ship, c, err := p.refClient(r)
	if err != nil {
		return Observed{}, err
	}
	sctx, cancel := short(ctx, ship)
	defer cancel()
	info, err := c.ContainerInspect(sctx, r.In.Name)
	switch {
	case cerrdefs.IsNotFound(err):
		return Observed{}, nil
	case err != nil:
		if ctx.Err() != nil {
			return Observed{}, ctx.Err()
		}
		return Observed{}, &HostDownError{Ship: ship.Name, Err: fmt.Errorf("inspect %s: %w", r.In.Name, err)}
	}
	if info.Name != "/"+r.In.Name {
		// Docker also resolves ID prefixes: this is another container.
		return Observed{}, nil
	}
	ct := fromInspect(info, r.In)
	if o := ct.Labels[label.Owner]; ct.Labels[label.Env] != r.Env.Name || ct.Labels[label.Instance] != r.In.Name || o != "" && o != r.Owner {
		return Observed{Foreign: ct}, nil
	}
	return Observed{Container: ct}, nil
}

func fromInspect(info container.InspectResponse, in *manifest.Instance) *Container {
	ct := &Container{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/"), ImageID: info.Image}
	if info.Config != nil {
		ct.Image = info.Config.Image
		ct.Labels = info.Config.Labels
		ct.tty = info.Config.Tty
	}
	if info.State != nil {
		ct.State = info.State.Status
		ct.Running = info.State.Running
		ct.StartedAt = dockerTime(info.State.StartedAt)
		ct.FinishedAt = dockerTime(info.State.FinishedAt)
		if info.State.Health != nil && info.State.Health.Status != container.NoHealthcheck {
			ct.Health = info.State.Health.Status
		}
	}
	ct.Ports = boundPorts(info, in)
	return ct
}

// dockerTime parses a Docker timestamp; Docker's "unset" (year 1) and
// garbage give the zero time.
func dockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// Stop stops the instance's running container ct: it runs the pre-stop
// checks, stops the container giving it the instance's stop_timeout, then
// runs the stopped checks. The container is kept.
func (p *Pool) Stop(ctx context.Context, r Ref, ct *Container, progress func(string)) error {
	ship, c, err := p.refClient(r)
	if err != nil {
		return err
	}
	ht := health.Target{Name: r.In.Name, Host: ship.IP, Ports: ct.Ports, Env: r.In.Env.List(), Exec: &execer{c: c, id: ct.ID}}
	if checks := r.In.Lifecycle["pre-stop"]; len(checks) > 0 {
		progress("checking pre-stop")
		if err := health.Run(ctx, checks, ht, health.Options{}); err != nil {
			return fmt.Errorf("pre-stop checks failed: %w", err)
		}
	}
	progress("stopping service")
	timeout := r.In.StopTimeout
	sctx, cancel := context.WithTimeout(ctx, shipTimeout(ship)+time.Duration(timeout)*time.Second)
	p.expect(ship, ct.ID, stopEvents)
	err = c.ContainerStop(sctx, ct.ID, container.StopOptions{Timeout: &timeout})
	cancel()
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: %w", shortID(ct.ID), err)
	}
	if checks := r.In.Lifecycle["stopped"]; len(checks) > 0 {
		progress("checking stopped")
		ht.Exec = nil
		if err := health.Run(ctx, checks, ht, health.Options{}); err != nil {
			return fmt.Errorf("stopped checks failed: %w", err)
		}
	}
	return nil
}

// Kill kills the instance's running container ct at once (SIGKILL, no
// pre-stop checks and no stop timeout), then runs the stopped checks, as
// MaestroNG's kill does. The container is kept.
func (p *Pool) Kill(ctx context.Context, r Ref, ct *Container, progress func(string)) error {
	ship, c, err := p.refClient(r)
	if err != nil {
		return err
	}
	progress("killing the service")
	sctx, cancel := short(ctx, ship)
	p.expect(ship, ct.ID, killEvents)
	err = c.ContainerKill(sctx, ct.ID, "KILL")
	cancel()
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("kill %s: %w", shortID(ct.ID), err)
	}
	// Docker answers once the signal is sent: wait until it stopped.
	for deadline := time.Now().Add(shipTimeout(ship)); ; {
		sctx, cancel := short(ctx, ship)
		info, err := c.ContainerInspect(sctx, ct.ID)
		cancel()
		if cerrdefs.IsNotFound(err) || err == nil && (info.State == nil || !info.State.Running) {
			break
		}
		if err != nil {
			return fmt.Errorf("inspect %s: %w", shortID(ct.ID), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still runs %s after it was killed", shortID(ct.ID), shipTimeout(ship))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if checks := r.In.Lifecycle["stopped"]; len(checks) > 0 {
		progress("checking stopped")
		ht := health.Target{Name: r.In.Name, Host: ship.IP, Ports: ct.Ports, Env: r.In.Env.List()}
		if err := health.Run(ctx, checks, ht, health.Options{}); err != nil {
			return fmt.Errorf("failed killed lifecycle checks: %w", err)
		}
	}
	return nil
}

// Remove removes the instance's stopped container ct with its anonymous
// volumes. It fails, rather than kill it, when the container runs.
func (p *Pool) Remove(ctx context.Context, r Ref, ct *Container) error {
	ship, c, err := p.refClient(r)
	if err != nil {
		return err
	}
	sctx, cancel := short(ctx, ship)
	defer cancel()
	p.expect(ship, ct.ID, destroyEvents)
	if err := c.ContainerRemove(sctx, ct.ID, container.RemoveOptions{RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", shortID(ct.ID), err)
	}
	return nil
}

// ImageID returns the ID of the image the ship holds under the instance's
// image reference, or "" when it holds none.
func (p *Pool) ImageID(ctx context.Context, r Ref) (string, error) {
	ship, c, err := p.refClient(r)
	if err != nil {
		return "", err
	}
	sctx, cancel := short(ctx, ship)
	defer cancel()
	img, err := c.ImageInspect(sctx, r.In.Image)
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ship %s: inspect image %s: %w", ship.Name, r.In.Image, err)
	}
	return img.ID, nil
}

// LogOptions tune Logs.
type LogOptions struct {
	// Follow streams new lines until ctx is done. When the container
	// stops, Logs waits for the instance's container to run again (a
	// restart or a replacement) and follows it.
	Follow bool
	// Tail is the number of last lines to print ("" or "all": every line).
	Tail string
	// Poll is the pause before looking again for a restarted container
	// when Docker's event stream fails while following; default 1s.
	Poll time.Duration
}

// ErrNotRunning is returned by Logs when the instance has no container.
var ErrNotRunning = errors.New("is not running!")

// Logs copies the logs of the instance's container to stdout and stderr.
// Without Follow it prints what the container logged so far (even when
// stopped); with Follow it streams until ctx is done. It returns an error
// wrapping ErrNotRunning when the instance has no container.
func (p *Pool) Logs(ctx context.Context, r Ref, opts LogOptions, stdout, stderr io.Writer) error {
	_, c, err := p.refClient(r)
	if err != nil {
		return err
	}
	obs, err := p.Inspect(ctx, r)
	if err != nil {
		return err
	}
	if obs.Container == nil {
		return fmt.Errorf("%s %w", r.In.Name, ErrNotRunning)
	}
	tail := opts.Tail
	if tail == "" {
		tail = "all"
	}
	ct := obs.Container
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail, Follow: opts.Follow && ct.Running}
	if !lo.Follow {
		// A log is a stream: it is not bounded by the ship's timeout.
		return copyLogs(ctx, c, ct.ID, lo, ct.tty, stdout, stderr)
	}
	for {
		// A stream is not bounded by the ship's timeout.
		if err := copyLogs(ctx, c, ct.ID, lo, ct.tty, stdout, stderr); err != nil && ctx.Err() == nil {
			return err
		}
		// The stream ended: the container stopped. Wait for the
		// instance's container to start again (Docker's event stream
		// says when), then follow its new lines.
		next, err := p.nextStart(ctx, c, r, ct, opts.Poll)
		if err != nil {
			return nil // ctx is done
		}
		last := ct
		ct = next
		// A restarted container's log goes on after its old lines (those
		// logged before it last stopped); a new container's is printed
		// whole.
		lo.Tail, lo.Since = "all", ""
		if ct.ID == last.ID && !ct.FinishedAt.IsZero() {
			lo.Since = ct.FinishedAt.Format(time.RFC3339Nano)
		}
	}
}

// nextStart waits until the instance runs a container other than last,
// or last again after it stopped: subscribed to Docker's start events of
// the name before each look, so that no start goes unseen; should the
// event stream fail, it looks again after the pause (a second by
// default). It returns ctx's error when ctx is done.
func (p *Pool) nextStart(ctx context.Context, c *client.Client, r Ref, last *Container, pause time.Duration) (*Container, error) {
	if pause <= 0 {
		pause = time.Second
	}
	for {
		ectx, cancel := context.WithCancel(ctx)
		msgs, errs := c.Events(ectx, events.ListOptions{Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)), filters.Arg("container", r.In.Name),
			filters.Arg("event", string(events.ActionStart)))})
		obs, err := p.Inspect(ctx, r)
		if err == nil && obs.Container != nil && obs.Container.Running &&
			(obs.Container.ID != last.ID || obs.Container.StartedAt.After(last.StartedAt)) {
			cancel()
			return obs.Container, nil
		}
		select {
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		case <-msgs:
		case <-errs:
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
		cancel()
	}
}

func copyLogs(ctx context.Context, c *client.Client, id string, lo container.LogsOptions, tty bool, stdout, stderr io.Writer) error {
	rc, err := c.ContainerLogs(ctx, id, lo)
	if err != nil {
		return fmt.Errorf("logs %s: %w", shortID(id), err)
	}
	defer rc.Close()
	if tty {
		_, err = io.Copy(stdout, rc)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, rc)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("logs %s: %w", shortID(id), err)
	}
	return nil
}

// Pull pulls the instance's image on its ship, with the registry
// credentials of the environment or the Docker configuration, even when the
// ship has it (as MaestroNG's pull does). Pulls of one image on one ship
// that overlap are done once.
func (d *Driver) Pull(ctx context.Context, r Ref, progress func(string)) error {
	ship, c, err := d.pool.refClient(r)
	if err != nil {
		return err
	}
	t := &target{env: r.Env, in: r.In, ship: ship, c: c, own: d.pool.own(ship)}
	if _, err := d.images.ensure(ctx, t, t.in.Image, true, progress); err != nil {
		return fmt.Errorf("ship %s: %w", ship.Name, err)
	}
	return nil
}

// PortUp reports whether a TCP connection to host:port succeeds within a
// second. UDP ports are always reported down, as MaestroNG does.
func PortUp(ctx context.Context, host, port, proto string) bool {
	if proto == "udp" || host == "" || port == "" {
		return false
	}
	if lo, _, isRange := strings.Cut(port, "-"); isRange {
		port = lo
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// StartSteps keeps of p what start does: Create steps, and Replace steps
// whose live container does not run (the stopped container is replaced by
// a new one, as MaestroNG's start removes and creates it). A running
// container is left as it is, even when its spec changed; removals are
// dropped. Ordering edges to dropped steps are removed, and every edge
// when ignoreDeps is set.
func StartSteps(p *plan.Plan, state *live.State, ignoreDeps bool) *plan.Plan {
	running := map[string]bool{}
	if state != nil {
		for _, h := range state.Hosts {
			for _, c := range h.Containers {
				if c.Running() {
					running[c.ID] = true
				}
			}
		}
	}
	out := &plan.Plan{Revision: p.Revision}
	kept := map[string]bool{}
	for _, st := range p.Steps {
		switch {
		case st.Action == plan.Create:
		case st.Action == plan.Replace && !running[st.Container]:
		default:
			continue
		}
		kept[st.ID] = true
		out.Steps = append(out.Steps, st)
	}
	for i := range out.Steps {
		st := &out.Steps[i]
		var after []string
		for _, a := range st.After {
			if kept[a] && !ignoreDeps {
				after = append(after, a)
			}
		}
		st.After = after
	}
	return out
}

// Waits returns, for each ref, the indexes of the refs it waits for in a
// play: the instances, within refs and the same environment, of the
// services its service depends on, or with reverse of those that depend on
// it.
func Waits(refs []Ref, reverse bool) [][]int {
	out := make([][]int, len(refs))
	for i, r := range refs {
		var services []string
		if reverse {
			services = r.Env.Dependents(r.In.Service)
		} else {
			services = r.Env.Dependencies(r.In.Service)
		}
		for j, o := range refs {
			if j != i && o.Env == r.Env && slices.Contains(services, o.In.Service) {
				out[i] = append(out[i], j)
			}
		}
	}
	return out
}

// ErrAborted is the error of a play task that was not run because a task
// it waits for failed, or because the play was cancelled.
var ErrAborted = apply.ErrAborted

// Play runs do for every task i in [0, len(after)) once every task in
// after[i] has ended, with at most limit tasks at once (0: no limit). Of
// the tasks ready to run, those earlier in the list go first, so that with
// limit 1 the tasks run in list order (a rolling restart). A task whose
// awaited task failed, or that had not started when ctx ended, is not run:
// its error wraps ErrAborted. Play returns the error of every task once
// all have ended.
func Play(ctx context.Context, after [][]int, limit int, do func(ctx context.Context, i int) error) []error {
	const (
		pending = iota
		started
		ended
	)
	n := len(after)
	errs := make([]error, n)
	state := make([]int, n)
	type result struct {
		i   int
		err error
	}
	finished := make(chan result)
	running, left := 0, n
	end := func(i int, err error) {
		errs[i], state[i] = err, ended
		left--
	}
	for left > 0 {
		// Start what can start and abort what cannot run, in list order,
		// until nothing changes.
		for changed := true; changed; {
			changed = false
			for i := range n {
				if state[i] != pending {
					continue
				}
				if err := ctx.Err(); err != nil {
					end(i, fmt.Errorf("%w: %w", ErrAborted, err))
					changed = true
					continue
				}
				ready := true
				for _, j := range after[i] {
					if state[j] != ended {
						ready = false
					} else if errs[j] != nil {
						end(i, fmt.Errorf("%w: a task it waits for failed", ErrAborted))
						changed, ready = true, false
						break
					}
				}
				if ready && (limit <= 0 || running < limit) {
					state[i] = started
					running++
					go func() { finished <- result{i, do(ctx, i)} }()
				}
			}
		}
		if left == 0 {
			break
		}
		if running == 0 {
			// Tasks wait for each other in a circle: none can run.
			for i := range n {
				if state[i] == pending {
					end(i, fmt.Errorf("%w: circular wait", ErrAborted))
				}
			}
			break
		}
		var cancelled <-chan struct{}
		if ctx.Err() == nil {
			cancelled = ctx.Done()
		}
		select {
		case r := <-finished:
			running--
			end(r.i, r.err)
		case <-cancelled:
		}
	}
	return errs
}
