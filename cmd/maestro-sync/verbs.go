package main

// MaestroNG's verbs on services or instances: status, start, stop, restart,
// clean, pull and logs. The Docker operations are in
// internal/driver/docker (ops.go); start creates containers through the
// same plan and driver as apply. This file picks the instances, wires the
// operations to a play and prints one row per instance (§7.5 of the
// MaestroNG reference).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
)

// verbKind is what sets the verbs apart in picking instances.
type verbKind struct {
	name string
	// reverse: -d adds dependents, and the play runs dependents first.
	reverse bool
	// needExpand: service names need -s (or -a), and no things need -a.
	needExpand bool
	// omitted: with no things, services with omit: true are included.
	omitted bool
	// mutates: the verb changes containers, so it holds the deploy locks
	// of the environments it acts on.
	mutates bool
}

var (
	kindStatus  = verbKind{name: "status", omitted: true}
	kindStart   = verbKind{name: "start", mutates: true}
	kindStop    = verbKind{name: "stop", reverse: true, needExpand: true, mutates: true}
	kindKill    = verbKind{name: "kill", reverse: true, needExpand: true, mutates: true}
	kindRestart = verbKind{name: "restart", reverse: true, needExpand: true, mutates: true}
	kindClean   = verbKind{name: "clean", mutates: true}
	kindPull    = verbKind{name: "pull"}
)

// verbFlags are the THING arguments and the flags that pick instances.
type verbFlags struct {
	things          []string
	concurrency     int
	withDeps        bool
	ignoreDeps      bool
	expand          bool
	all             bool
	containerFilter string
	shipFilter      string
	// reuse starts an existing stopped container of the current spec
	// again instead of replacing it (start and restart).
	reuse bool
}

func (f *verbFlags) register(cmd *cobra.Command, k verbKind) {
	fl := cmd.Flags()
	fl.IntVarP(&f.concurrency, "concurrency", "c", 0, "how many instances are acted on at once (0: no limit)")
	what := "dependencies"
	if k.reverse {
		what = "dependents"
	}
	fl.BoolVarP(&f.withDeps, "with-dependencies", "d", false, "also act on the "+what+" of the given services or instances")
	fl.BoolVarP(&f.ignoreDeps, "ignore-dependencies", "i", false, "do not wait for "+what+"; with no THING, do not add them")
	fl.StringVarP(&f.containerFilter, "container-filter", "C", "", "only instances whose name matches this glob")
	fl.StringVarP(&f.shipFilter, "ship-filter", "S", "", "only instances on ships whose name matches this glob")
	if k.needExpand {
		fl.BoolVarP(&f.expand, "expand-services", "s", false, "accept service names (all their instances)")
		fl.BoolVarP(&f.all, "all", "a", false, "act on every service when no THING is given (implies -s)")
	}
}

// pick resolves the THING arguments to instances, in the order of the
// play: dependencies first, or dependents first for a reverse verb.
func (f *verbFlags) pick(envs []*manifest.Environment, k verbKind) ([]docker.Ref, error) {
	for _, p := range []string{f.containerFilter, f.shipFilter} {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("invalid filter %q: %w", p, err)
		}
	}
	chosen := map[*manifest.Environment]map[string]bool{}
	add := func(env *manifest.Environment, ins ...*manifest.Instance) {
		if chosen[env] == nil {
			chosen[env] = map[string]bool{}
		}
		for _, in := range ins {
			chosen[env][in.Name] = true
		}
	}
	withDeps := f.withDeps
	if len(f.things) == 0 {
		if k.needExpand && !f.all {
			return nil, fmt.Errorf("No services or containers specified for %s, and --all not set.", k.name) //nolint:staticcheck // MaestroNG's message
		}
		withDeps = !f.ignoreDeps
		for _, env := range envs {
			for _, svc := range env.Services {
				if !svc.Omit || k.omitted {
					add(env, svc.Instances...)
				}
			}
		}
	}
	expand := !k.needExpand || f.expand || f.all
	for _, thing := range f.things {
		found := false
		for _, env := range envs {
			if in := env.Instance(thing); in != nil {
				add(env, in)
				found = true
			} else if svc := env.Service(thing); svc != nil {
				if !expand {
					return nil, fmt.Errorf("%s is a service but --expand-services was not specified", thing)
				}
				add(env, svc.Instances...)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s is neither a service nor an instance", thing)
		}
	}
	var refs []docker.Ref
	for _, env := range envs {
		names := chosen[env]
		if len(names) == 0 {
			continue
		}
		if withDeps {
			services := map[string]bool{}
			for _, in := range env.Instances() {
				if names[in.Name] {
					services[in.Service] = true
				}
			}
			for svc := range services {
				more := env.Dependencies(svc)
				if k.reverse {
					more = env.Dependents(svc)
				}
				for _, m := range more {
					add(env, env.Service(m).Instances...)
				}
			}
		}
		var list []*manifest.Instance
		for _, in := range env.Instances() {
			if names[in.Name] && glob(f.containerFilter, in.Name) && glob(f.shipFilter, in.Ship) {
				list = append(list, in)
			}
		}
		if k.reverse {
			list = env.StopOrder(list)
		} else {
			list = env.StartOrder(list)
		}
		for _, in := range list {
			refs = append(refs, docker.Ref{Env: env, In: in})
		}
	}
	return refs, nil
}

func glob(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

// waits is the play's dependency waiting: none with -i.
func (f *verbFlags) waits(refs []docker.Ref, k verbKind) [][]int {
	if f.ignoreDeps {
		return make([][]int, len(refs))
	}
	return docker.Waits(refs, k.reverse)
}

// verbRun is what every verb works with.
type verbRun struct {
	cmd   *cobra.Command
	ctx   context.Context
	repo  *manifest.Repo
	pool  *docker.Pool
	refs  []docker.Ref
	owner owner.Owner
	table *table
}

// prepare loads the manifests named by PATH or -f, picks the instances and
// opens the pool. The caller closes the pool and cancels the context.
func (g *globals) prepare(cmd *cobra.Command, args []string, f *verbFlags, k verbKind) (*verbRun, context.CancelFunc, error) {
	pathArgs, things := splitPath(g, args)
	f.things = things
	own, err := g.identity(pathArgs)
	if err != nil {
		return nil, nil, err
	}
	repo, err := g.load(cmd, pathArgs)
	if err != nil {
		return nil, nil, err
	}
	report(cmd.ErrOrStderr(), repo)
	refs, err := f.pick(repo.Environments, k)
	if err != nil {
		return nil, nil, err
	}
	for i := range refs {
		refs[i].Owner = own.ID
	}
	ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt)
	v := &verbRun{cmd: cmd, ctx: ctx, repo: repo, pool: g.newPool(), refs: refs, owner: own}
	if !k.mutates {
		return v, func() { v.pool.Close(); cancel() }, nil
	}
	// The verb changes containers: it holds the deploy locks of its
	// environments, as apply does, so that it never races a run.
	var envs []*manifest.Environment
	for _, r := range refs {
		if !slices.Contains(envs, r.Env) {
			envs = append(envs, r.Env)
		}
	}
	places := reconcile.Places(own, envs)
	hosts := &reconcile.Hosts{Docker: v.pool, Kube: kube.NewPool(), Owner: own}
	lctx, held, err := lock.Acquire(ctx, hosts.Mutexes(envs, places, lock.Self()), lock.Options{Wait: 5 * time.Minute,
		Waiting: func(e *lock.LockedError) { fmt.Fprintf(cmd.ErrOrStderr(), "waiting up to 5m0s: %v\n", e) }})
	if err != nil {
		v.pool.Close()
		cancel()
		return nil, nil, err
	}
	v.ctx = lctx
	return v, func() { _ = held.Release(ctx); v.pool.Close(); hosts.Kube.Close(); cancel() }, nil
}

// finish ends a verb: errors on stderr, exit status 1 when there are any
// (aborted tasks included) or when an environment did not validate.
func (v *verbRun) finish(errs []error) error {
	n := 0
	for _, err := range errs {
		if err != nil && !errors.Is(err, docker.ErrAborted) {
			fmt.Fprintf(v.cmd.ErrOrStderr(), "ERROR: %v\n", err)
			n++
		}
	}
	if n > 0 || len(v.repo.Invalid) > 0 || aborted(errs) {
		return exitCode(1)
	}
	return nil
}

func aborted(errs []error) bool {
	for _, err := range errs {
		if errors.Is(err, docker.ErrAborted) {
			return true
		}
	}
	return false
}

// containerField is "<tag>:<id7>", or "-" without a container.
func containerField(r docker.Ref, c *docker.Container) string {
	if c == nil {
		return "-"
	}
	_, tag := manifest.ParseImage(r.In.Image)
	return tag + ":" + short7(c.ID)
}

// short7 is the first 7 characters of an ID, without "sha256:".
func short7(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(7, len(id))]
}

func newStatus(g *globals) *cobra.Command {
	var (
		f           verbFlags
		full, hosts bool
		output      string
	)
	cmd := &cobra.Command{
		Use:   "status [PATH] [THING...]",
		Short: "Show the state of the containers of services or instances",
		Long: `status prints one line per instance: its container (<tag>:<id>), whether it
runs and for how long, "outdated" when its spec differs from the manifest,
and the revision it was applied from. With no THING every service is
shown, omit: true ones included. -F (-o wide) also shows the image, the
owner and whether each port answers; -o json prints every instance as a
JSON object. Names are never cut: the columns are as wide as the longest
name. The exit status is 0 even when containers are down.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "text":
			case "wide":
				full = true
			case "json":
			default:
				return fmt.Errorf("-o %q: text, wide or json", output)
			}
			v, done, err := g.prepare(cmd, args, &f, kindStatus)
			if err != nil {
				return err
			}
			defer done()
			if output == "json" {
				infos := make([]instanceStatus, len(v.refs))
				docker.Play(v.ctx, make([][]int, len(v.refs)), f.concurrency, func(ctx context.Context, i int) error {
					infos[i] = v.statusOf(ctx, i)
					return nil
				})
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			}
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindStatus, hosts)
			lines := make([][]string, len(v.refs))
			docker.Play(v.ctx, make([][]int, len(v.refs)), f.concurrency, func(ctx context.Context, i int) error {
				lines[i] = v.status(ctx, i, full)
				return nil
			})
			for _, l := range lines {
				v.table.print(l...)
			}
			return nil
		},
	}
	f.register(cmd, kindStatus)
	cmd.Flags().BoolVarP(&full, "full", "F", false, "also show the image and whether each port answers")
	cmd.Flags().BoolVarP(&hosts, "show-hosts", "H", false, "show the ship's ip instead of its name")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, wide (as -F) or json")
	return cmd
}

// instanceStatus is an instance's state as status -o json prints it.
type instanceStatus struct {
	Env       string    `json:"env"`
	Service   string    `json:"service"`
	Instance  string    `json:"instance"`
	Ship      string    `json:"ship"`
	Host      string    `json:"host"`
	State     string    `json:"state"` // running, exited, missing, host down
	Container string    `json:"container,omitempty"`
	Image     string    `json:"image,omitempty"`
	ImageID   string    `json:"image_id,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Health    string    `json:"health,omitempty"`
	Outdated  bool      `json:"outdated"`
	Revision  string    `json:"revision,omitempty"`
	Owner     string    `json:"owner,omitempty"`
	// Foreign names a container of another owner holding the name.
	Foreign string `json:"foreign,omitempty"`
	Error   string `json:"error,omitempty"`
}

// statusOf observes refs[i].
func (v *verbRun) statusOf(ctx context.Context, i int) instanceStatus {
	r := v.refs[i]
	s := instanceStatus{Env: r.Env.Name, Service: r.In.Service, Instance: r.In.Name, Ship: r.In.Ship, Host: r.Ship().IP, State: "missing"}
	obs, err := v.pool.Inspect(ctx, r)
	if err != nil {
		s.State, s.Error = "host down", err.Error()
		return s
	}
	if f := obs.Foreign; f != nil {
		s.Foreign = f.ID
	}
	c := obs.Container
	if c == nil {
		return s
	}
	s.Container, s.Image, s.ImageID, s.Health = c.ID, c.Image, c.ImageID, c.Health
	s.State, s.Since = "exited", c.FinishedAt
	if c.Running {
		s.State, s.Since = "running", c.StartedAt
	}
	s.Outdated = c.SpecHash() != r.In.SpecHash
	s.Revision, s.Owner = c.Revision(), c.Labels[label.OwnerName]
	return s
}

// status returns the status row of refs[i] and, with full, the lines
// below it.
func (v *verbRun) status(ctx context.Context, i int, full bool) []string {
	r := v.refs[i]
	obs, err := v.pool.Inspect(ctx, r)
	if err != nil {
		return []string{v.table.line(i, "-", "host down", red)}
	}
	c := obs.Container
	if c == nil {
		state := "down"
		if f := obs.Foreign; f != nil {
			state += ", foreign container " + short7(f.ID) + " holds the name"
			if name := f.Labels[label.OwnerName]; name != "" && f.Labels[label.Owner] != v.owner.ID {
				state += " (owner " + name + ")"
			}
		}
		return []string{v.table.line(i, "-", state, red)}
	}
	var state string
	col := green
	if c.Running {
		state = "running" + forTime(c.StartedAt, time.Now())
		if c.Health != "" {
			state += ", " + c.Health
		}
		if c.Health == "unhealthy" {
			col = red
		}
	} else {
		state, col = "down"+forTime(c.FinishedAt, time.Now()), red
	}
	if c.SpecHash() != r.In.SpecHash {
		state += ", outdated"
	}
	if rev := c.Revision(); rev != "" {
		state += ", revision " + rev
	}
	out := []string{v.table.line(i, containerField(r, c), state, col)}
	if !full {
		return out
	}
	out = append(out, fmt.Sprintf("     image %s (%s)", c.Image, short7(c.ImageID)))
	if name := c.Labels[label.OwnerName]; name != "" {
		out = append(out, "     owner "+name)
	} else {
		out = append(out, "     owner none (made before owners; "+v.owner.Name+" takes it over)")
	}
	for _, p := range r.In.Ports {
		host := r.Ship().IP
		if p.ExternalIP != "" && p.ExternalIP != "0.0.0.0" {
			host = p.ExternalIP
		}
		port := c.Ports[p.Name]
		if port == "" {
			port = p.ExternalPort()
		}
		up := "down"
		if docker.PortUp(ctx, host, port, p.Protocol()) {
			up = "up"
		}
		out = append(out, fmt.Sprintf("     >> %15s: %9s is %s", p.Name, port, up))
	}
	return out
}

func newStart(g *globals) *cobra.Command {
	var (
		f       verbFlags
		refresh bool
	)
	cmd := &cobra.Command{
		Use:   "start [PATH] [THING...]",
		Short: "Start the containers of services or instances",
		Long: `start creates the containers that are missing and replaces stopped ones by
new containers (as apply does: pull when needed, create, start, running
checks), in dependency order, at most -c at a time. A running container is
left as it is, even when the manifest changed (use restart or apply). With
--reuse, a stopped container made from the manifest's current spec is
started again as it is (MaestroNG's --reuse; one of another spec is still
replaced). With no THING, every service but omit: true ones is started,
with what they require.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, done, err := g.prepare(cmd, args, &f, kindStart)
			if err != nil {
				return err
			}
			defer done()
			auth, err := docker.LoadAuth(dockerConfigPath())
			if err != nil {
				return err
			}
			drv := docker.NewDriver(v.pool, v.repo.Environments, g.rev(), auth)
			drv.Owner = v.owner
			drv.RefreshImages = refresh
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindStart, false)
			return v.finish(v.start(v.ctx, drv, g.rev(), f))
		},
	}
	f.register(cmd, kindStart)
	cmd.Flags().BoolVarP(&refresh, "refresh-images", "r", false, "pull the image of every container created, even when the ship has it")
	cmd.Flags().BoolVar(&f.reuse, "reuse", false, "start a stopped container of the current spec again instead of replacing it")
	cmd.MarkFlagsMutuallyExclusive("refresh-images", "reuse")
	return cmd
}

// start starts v.refs: it plans with diff, keeps the start steps and runs
// them with apply. Rows of running containers show how long they run.
func (v *verbRun) start(ctx context.Context, drv *docker.Driver, revision string, f verbFlags) []error {
	errs := make([]error, len(v.refs))
	row := map[string]int{}
	envs := map[*manifest.Environment]bool{}
	for i, r := range v.refs {
		if f.reuse {
			reused, err := drv.Reuse(ctx, r, func(s string) { v.table.set(i, "-", s+"...", none) })
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("%s: %w", r.In.Name, err)
				v.table.set(i, "-", "failed!", red)
				continue
			case reused:
				v.showStarted(ctx, i)
				continue
			}
		}
		row[r.Env.Name+"/"+r.In.Name] = i
		envs[r.Env] = true
	}
	var list []*manifest.Environment
	for _, env := range v.repo.Environments {
		if envs[env] {
			list = append(list, env)
		}
	}
	state := v.pool.Observe(ctx, list)
	p := diff.Compute(list, state, diff.Options{Revision: revision, Owner: v.owner.ID, Select: func(env *manifest.Environment, in *manifest.Instance) bool {
		_, ok := row[env.Name+"/"+in.Name]
		return ok
	}})
	sp := docker.StartSteps(p, state, f.ignoreDeps)
	starting := map[int]bool{}
	for _, st := range sp.Steps {
		starting[row[st.Env+"/"+st.Instance]] = true
	}
	for _, st := range p.Steps {
		i, ok := row[st.Env+"/"+st.Instance]
		if !ok || starting[i] {
			continue
		}
		switch st.Action {
		case plan.Unknown:
			errs[i] = fmt.Errorf("%s: %s", st.Instance, strings.Join(st.Causes, "; "))
			v.table.set(i, "-", "host down", red)
		case plan.Conflict:
			errs[i] = fmt.Errorf("%s: %s", st.Instance, strings.Join(st.Causes, "; "))
			v.table.set(i, "-", "failed!", red)
		default:
			v.showUp(ctx, i)
		}
	}
	res := apply.Run(ctx, sp, drv, apply.Options{Concurrency: f.concurrency, Progress: func(e apply.Event) {
		i := row[e.Step.Env+"/"+e.Step.Instance]
		switch {
		case !e.Done:
			v.table.set(i, "-", e.State+"...", none)
		case e.Err == nil:
			v.showStarted(ctx, i)
		case e.Status == apply.Aborted:
			v.table.set(i, "-", "aborted!", red)
		default:
			v.table.set(i, "-", "failed!", red)
		}
	}})
	for _, o := range res.Outcomes {
		i := row[o.Step.Env+"/"+o.Step.Instance]
		switch {
		case o.Aborted:
			errs[i] = fmt.Errorf("%w: %w", docker.ErrAborted, o.Err)
		case o.Err != nil:
			errs[i] = o.Err
		}
	}
	return errs
}

// showUp shows a container start leaves alone.
func (v *verbRun) showUp(ctx context.Context, i int) {
	r := v.refs[i]
	obs, err := v.pool.Inspect(ctx, r)
	switch {
	case err != nil:
		v.table.set(i, "-", "host down", red)
	case obs.Container == nil:
		v.table.set(i, "-", "down", red)
	default:
		state := "up" + forTime(obs.Container.StartedAt, time.Now())
		if obs.Container.SpecHash() != r.In.SpecHash {
			state += ", outdated"
		}
		v.table.set(i, containerField(r, obs.Container), state, blue)
	}
}

func (v *verbRun) showStarted(ctx context.Context, i int) {
	obs, _ := v.pool.Inspect(ctx, v.refs[i])
	v.table.set(i, containerField(v.refs[i], obs.Container), "started", green)
}

func newStop(g *globals) *cobra.Command {
	var f verbFlags
	cmd := &cobra.Command{
		Use:   "stop [PATH] [THING...]",
		Short: "Stop the containers of instances (dependents first)",
		Long: `stop stops the running containers of the given instances (service names
need -s, every service needs -a), dependents first, giving each its
stop_timeout. An instance behind the front proxy leaves it first and
drains its requests in flight. The containers are kept: start replaces
them, clean removes them. Failures are shown but do not change the exit
status.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, done, err := g.prepare(cmd, args, &f, kindStop)
			if err != nil {
				return err
			}
			defer done()
			drv := docker.NewDriver(v.pool, v.repo.Environments, g.rev(), nil)
			drv.Owner = v.owner
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindStop, false)
			docker.Play(v.ctx, f.waits(v.refs, kindStop), f.concurrency, func(ctx context.Context, i int) error {
				_ = v.stop(ctx, drv, i) // failures are shown, and not fatal (MaestroNG)
				return nil
			})
			return v.finish(nil)
		},
	}
	f.register(cmd, kindStop)
	return cmd
}

// stop stops the container of refs[i] if it runs. The error says why it
// could not.
func (v *verbRun) stop(ctx context.Context, drv *docker.Driver, i int) error {
	return v.halt(ctx, i, "stopped", drv.Stop)
}

// halt stops the running container of refs[i] with do (a stop or a kill)
// and shows the row as done; a container that does not run is shown down.
func (v *verbRun) halt(ctx context.Context, i int, done string, do func(context.Context, docker.Ref, *docker.Container, func(string)) error) error {
	r := v.refs[i]
	obs, err := v.pool.Inspect(ctx, r)
	if err != nil {
		v.table.set(i, "-", "host down", red)
		return err
	}
	c := obs.Container
	if c == nil || !c.Running {
		v.table.set(i, containerField(r, c), "down", blue)
		return nil
	}
	cf := containerField(r, c)
	if err := do(ctx, r, c, func(s string) { v.table.set(i, cf, s+"...", none) }); err != nil {
		v.table.set(i, cf, "failed: "+err.Error(), red)
		return err
	}
	v.table.set(i, cf, done, green)
	return nil
}

func newKill(g *globals) *cobra.Command {
	var f verbFlags
	cmd := &cobra.Command{
		Use:   "kill [PATH] [THING...]",
		Short: "Kill the containers of instances (dependents first)",
		Long: `kill kills the running containers of the given instances at once (SIGKILL:
no pre-stop checks, no stop_timeout), dependents first, then runs their
stopped checks, as MaestroNG's kill does. Service names need -s, every
service needs -a. The containers are kept: start replaces them, clean
removes them. Failures are shown but do not change the exit status.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, done, err := g.prepare(cmd, args, &f, kindKill)
			if err != nil {
				return err
			}
			defer done()
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindKill, false)
			docker.Play(v.ctx, f.waits(v.refs, kindKill), f.concurrency, func(ctx context.Context, i int) error {
				_ = v.halt(ctx, i, "killed", v.pool.Kill) // failures are shown, and not fatal (MaestroNG)
				return nil
			})
			return v.finish(nil)
		},
	}
	f.register(cmd, kindKill)
	return cmd
}

func newRestart(g *globals) *cobra.Command {
	var (
		f                    verbFlags
		refresh, onlyChanged bool
		stepDelay, ssDelay   int
	)
	cmd := &cobra.Command{
		Use:   "restart [PATH] [THING...]",
		Short: "Stop the containers of instances and start new ones",
		Long: `restart stops each instance's container and starts it again as start does
(a new container from the manifest), dependents first. Service names need
-s, every service needs -a. Rolling restart: -c 1 --step-delay N. An
instance behind the front proxy is swapped instead, as apply replaces it:
the new container serves before the old one drains and stops.
--only-if-changed skips instances whose container already runs the
manifest's spec and the ship's image.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, done, err := g.prepare(cmd, args, &f, kindRestart)
			if err != nil {
				return err
			}
			defer done()
			auth, err := docker.LoadAuth(dockerConfigPath())
			if err != nil {
				return err
			}
			drv := docker.NewDriver(v.pool, v.repo.Environments, g.rev(), auth)
			drv.Owner = v.owner
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindRestart, false)
			errs := docker.Play(v.ctx, f.waits(v.refs, kindRestart), f.concurrency, func(ctx context.Context, i int) error {
				return v.restart(ctx, drv, i, restartOptions{refresh, onlyChanged, f.reuse, stepDelay, ssDelay, g.rev()})
			})
			return v.finish(errs)
		},
	}
	f.register(cmd, kindRestart)
	cmd.Flags().BoolVarP(&refresh, "refresh-images", "r", false, "pull the image before stopping")
	cmd.Flags().BoolVar(&f.reuse, "reuse", false, "start the stopped container again instead of a new one, when it has the current spec (no swap through the front proxy)")
	cmd.MarkFlagsMutuallyExclusive("refresh-images", "reuse")
	cmd.Flags().BoolVar(&onlyChanged, "only-if-changed", false, "skip instances whose running container matches the manifest and the ship's image")
	cmd.Flags().IntVar(&stepDelay, "step-delay", 0, "seconds to wait before restarting each instance but the first")
	cmd.Flags().IntVar(&ssDelay, "stop-start-delay", 0, "seconds to wait between stop and start")
	return cmd
}

type restartOptions struct {
	refresh, onlyChanged, reuse bool
	stepDelay, ssDelay          int
	revision                    string
}

func (v *verbRun) restart(ctx context.Context, drv *docker.Driver, i int, o restartOptions) error {
	r := v.refs[i]
	if o.refresh {
		if err := drv.Pull(ctx, r, func(s string) { v.table.set(i, "-", s+"...", none) }); err != nil {
			v.table.set(i, "-", "failed!", red)
			return fmt.Errorf("%s: %w", r.In.Name, err)
		}
	}
	if o.onlyChanged {
		obs, err := v.pool.Inspect(ctx, r)
		if err != nil {
			v.table.set(i, "-", "host down", red)
			return fmt.Errorf("%s: %w", r.In.Name, err)
		}
		if c := obs.Container; c != nil && c.Running && c.SpecHash() == r.In.SpecHash {
			id, err := v.pool.ImageID(ctx, r)
			if err != nil {
				v.table.set(i, containerField(r, c), "failed!", red)
				return fmt.Errorf("%s: %w", r.In.Name, err)
			}
			if id == c.ImageID {
				v.table.set(i, containerField(r, c), "up to date", blue)
				return nil
			}
		}
	}
	if i > 0 && o.stepDelay > 0 {
		v.table.set(i, "-", fmt.Sprintf("waiting %ds before restart...", o.stepDelay), none)
		if err := sleep(ctx, o.stepDelay); err != nil {
			return err
		}
	}
	if r.In.Route != nil && !o.reuse {
		// Behind the front proxy, a restart is a swap: the new container
		// serves before the old one stops.
		obs, err := v.pool.Inspect(ctx, r)
		if err != nil {
			v.table.set(i, "-", "host down", red)
			return fmt.Errorf("%s: %w", r.In.Name, err)
		}
		cf := containerField(r, obs.Container)
		swapped, err := drv.Restart(ctx, r, obs.Container, func(s string) { v.table.set(i, cf, s+"...", none) })
		if err != nil {
			v.table.set(i, cf, "failed: "+err.Error(), red)
			return fmt.Errorf("%s: %w", r.In.Name, err)
		}
		if swapped {
			v.showUp(ctx, i)
			return nil
		}
	}
	if err := v.stop(ctx, drv, i); err != nil {
		return fmt.Errorf("%s: %w", r.In.Name, err)
	}
	if o.ssDelay > 0 {
		v.table.set(i, "-", fmt.Sprintf("waiting %ds before starting...", o.ssDelay), none)
		if err := sleep(ctx, o.ssDelay); err != nil {
			return err
		}
	}
	// Start as start does, for this instance alone: it is down now, so
	// the plan replaces (or creates) its container.
	one := &verbRun{cmd: v.cmd, ctx: ctx, repo: v.repo, pool: v.pool, refs: v.refs[i : i+1], owner: v.owner, table: v.table.sub(i)}
	errs := one.start(ctx, drv, o.revision, verbFlags{ignoreDeps: true, reuse: o.reuse})
	return errs[0]
}

func sleep(ctx context.Context, seconds int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(seconds) * time.Second):
		return nil
	}
}

func newClean(g *globals) *cobra.Command {
	var f verbFlags
	cmd := &cobra.Command{
		Use:   "clean [PATH] [THING...]",
		Short: "Remove the stopped containers of services or instances",
		Long: `clean removes the stopped containers of the given services or instances
(every service when none is given), dependencies first. Running containers
are skipped.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, done, err := g.prepare(cmd, args, &f, kindClean)
			if err != nil {
				return err
			}
			defer done()
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindClean, false)
			errs := docker.Play(v.ctx, docker.Waits(v.refs, false), f.concurrency, func(ctx context.Context, i int) error {
				return v.clean(ctx, i)
			})
			return v.finish(errs)
		},
	}
	f.register(cmd, kindClean)
	return cmd
}

func (v *verbRun) clean(ctx context.Context, i int) error {
	r := v.refs[i]
	obs, err := v.pool.Inspect(ctx, r)
	if err != nil {
		v.table.set(i, "-", "host down", red)
		return fmt.Errorf("%s: %w", r.In.Name, err)
	}
	c := obs.Container
	switch {
	case c == nil:
		v.table.set(i, "-", "absent", blue)
		return nil
	case c.Running:
		v.table.set(i, containerField(r, c), "skipped", red)
		return nil
	}
	id7 := short7(c.ID)
	v.table.set(i, id7, "removing container "+id7+"...", none)
	if err := v.pool.Remove(ctx, r, c); err != nil {
		v.table.set(i, id7, "failed!", red)
		return fmt.Errorf("%s: %w", r.In.Name, err)
	}
	v.table.set(i, id7, "removed", green)
	return nil
}

func newPull(g *globals) *cobra.Command {
	var f verbFlags
	cmd := &cobra.Command{
		Use:   "pull [PATH] [THING...]",
		Short: "Pull the images of services or instances on their ships",
		Long: `pull pulls the image of each given instance on its ship (every service
when none is given), even when the ship has it, with the credentials of
the manifest's registries or of the Docker configuration.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, done, err := g.prepare(cmd, args, &f, kindPull)
			if err != nil {
				return err
			}
			defer done()
			auth, err := docker.LoadAuth(dockerConfigPath())
			if err != nil {
				return err
			}
			drv := docker.NewDriver(v.pool, v.repo.Environments, g.rev(), auth)
			drv.Owner = v.owner
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindPull, false)
			errs := docker.Play(v.ctx, f.waits(v.refs, kindPull), f.concurrency, func(ctx context.Context, i int) error {
				r := v.refs[i]
				if err := drv.Pull(ctx, r, func(s string) { v.table.set(i, "-", s+"...", none) }); err != nil {
					if docker.IsHostDown(err) {
						v.table.set(i, "-", "host down", red)
					} else {
						v.table.set(i, "-", "failed!", red)
					}
					return fmt.Errorf("%s: %w", r.In.Name, err)
				}
				v.table.set(i, "-", "done", green)
				return nil
			})
			return v.finish(errs)
		},
	}
	f.register(cmd, kindPull)
	return cmd
}

func newLogs(g *globals) *cobra.Command {
	var (
		follow bool
		lines  int
	)
	cmd := &cobra.Command{
		Use:   "logs [PATH] INSTANCE",
		Short: "Print the logs of an instance's container",
		Long: `logs prints what the instance's container logged. A service with a single
instance can be named instead. -F follows the log until interrupted, also
across restarts of the instance.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pathArgs, things := splitPath(g, args)
			if len(things) != 1 {
				return fmt.Errorf("logs needs exactly one instance, got %d", len(things))
			}
			repo, err := g.load(cmd, pathArgs)
			if err != nil {
				return err
			}
			report(cmd.ErrOrStderr(), repo)
			r, err := pickOne(repo.Environments, things[0])
			if err != nil {
				return err
			}
			own, err := g.identity(pathArgs)
			if err != nil {
				return err
			}
			r.Owner = own.ID
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer cancel()
			pool := g.newPool()
			defer pool.Close()
			tail := ""
			if lines > 0 {
				tail = strconv.Itoa(lines)
			}
			return pool.Logs(ctx, r, docker.LogOptions{Follow: follow, Tail: tail}, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "F", false, "follow the log until interrupted")
	cmd.Flags().IntVarP(&lines, "lines", "n", 0, "print only the last N lines (0: all)")
	return cmd
}

// pickOne resolves the one instance logs acts on.
func pickOne(envs []*manifest.Environment, thing string) (docker.Ref, error) {
	var found []docker.Ref
	for _, env := range envs {
		if in := env.Instance(thing); in != nil {
			found = append(found, docker.Ref{Env: env, In: in})
		} else if svc := env.Service(thing); svc != nil {
			if len(svc.Instances) != 1 {
				return docker.Ref{}, fmt.Errorf("%s is a service with %d instances: name one of them", thing, len(svc.Instances))
			}
			found = append(found, docker.Ref{Env: env, In: svc.Instances[0]})
		}
	}
	switch len(found) {
	case 0:
		return docker.Ref{}, fmt.Errorf("%s is neither a service nor an instance", thing)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, r := range found {
		names = append(names, r.Env.Name)
	}
	return docker.Ref{}, fmt.Errorf("%s is in several environments (%s): give the manifest's path or -f", thing, strings.Join(names, ", "))
}

// forTime renders how long ago t was as MaestroNG does: " for 5s",
// " for 5m3s", " for 1h2m", " for 2d1h2m"; "" when t is unset or later
// than now.
func forTime(t, now time.Time) string {
	if t.IsZero() || now.Before(t) {
		return ""
	}
	s := int64(now.Sub(t) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf(" for %ds", s)
	case s < 3600:
		return fmt.Sprintf(" for %dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf(" for %dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf(" for %dd%dh%dm", s/86400, s%86400/3600, s%3600/60)
}

// colour of a result.
type colour int

const (
	none colour = iota
	green
	red
	blue
)

func (c colour) wrap(s string) string {
	switch c {
	case green:
		return "\x1b[32;1m" + s + "\x1b[;0m"
	case red:
		return "\x1b[31;1m" + s + "\x1b[;0m"
	case blue:
		return "\x1b[36;m" + s + "\x1b[;0m"
	}
	return s
}

// padded results, as MaestroNG pads them.
var paddedResults = map[string]bool{"stopped": true, "down": true, "removed": true, "absent": true, "skipped": true, "done": true, "host down": true}

// table prints one row per instance. On a terminal every row keeps its
// line, rewritten in place, in colour; otherwise every change is printed
// as a new plain line.
type table struct {
	mu *sync.Mutex
	w  io.Writer
	// live rewrites rows in place (a terminal tall enough for every row);
	// colour paints them (a terminal, and neither NO_COLOR nor
	// --no-color).
	live, colour bool
	iw, vw, sw   int // instance, service and ship column widths
	rows         []rowHead
	offset       int // first row of this (sub)table in the terminal block
	total        int
}

type rowHead struct {
	num                 int
	instance, svc, ship string
}

func newTable(w io.Writer, refs []docker.Ref, k verbKind, showIP bool) *table {
	tty := isTerminal(w) || os.Getenv("ANSICON") != ""
	rows := 0
	if f, ok := w.(*os.File); ok && isTerminal(w) {
		_, rows, _ = term.GetSize(int(f.Fd()))
	}
	t := &table{mu: &sync.Mutex{}, w: w, total: len(refs), colour: tty && !noColor()}
	// Rows are rewritten in place only when all of them fit on the
	// screen: the cursor cannot go above its top.
	t.live = tty && (rows == 0 || len(refs)+1 < rows)
	envs := map[string]bool{}
	for _, r := range refs {
		envs[r.Env.Name] = true
	}
	t.iw, t.vw, t.sw = len("INSTANCE"), len("SERVICE"), len("SHIP")
	for i, r := range refs {
		h := rowHead{num: i + 1, instance: r.In.Name, svc: r.In.Service, ship: r.In.Ship}
		if k.name == "stop" {
			h.num = len(refs) - i
		}
		if len(envs) > 1 {
			h.instance = r.Env.Name + "/" + r.In.Name
		}
		if showIP {
			h.ship = r.Ship().IP
		}
		// Names are never cut: the columns are as wide as the longest.
		t.iw, t.vw, t.sw = max(t.iw, width(h.instance)), max(t.vw, width(h.svc)), max(t.sw, width(h.ship))
		t.rows = append(t.rows, h)
	}
	fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("%3s  %s  %s  %s  %-25s  %-10s", "#", cell("INSTANCE", t.iw), cell("SERVICE", t.vw), cell("SHIP", t.sw), "CONTAINER", "STATUS"), " "))
	if t.live && k.name != "status" {
		for i := range t.rows {
			fmt.Fprintln(w, t.line(i, "", "", none))
		}
	}
	return t
}

// noColorFlag is --no-color.
var noColorFlag bool

// noColor reports whether colour is turned off: --no-color, or NO_COLOR
// set to anything (https://no-color.org).
func noColor() bool { return noColorFlag || os.Getenv("NO_COLOR") != "" }

// width is the number of characters s takes.
func width(s string) int { return utf8.RuneCountInString(s) }

// cell pads s to width characters; it never cuts.
func cell(s string, w int) string {
	return s + strings.Repeat(" ", max(0, w-width(s)))
}

// line renders row i.
func (t *table) line(i int, container, status string, c colour) string {
	h := t.rows[i]
	inst := cell(h.instance, t.iw)
	if paddedResults[status] {
		status = cell(status, 10)
	}
	if t.colour {
		inst = "\x1b[1m" + inst + "\x1b[0m"
		status = c.wrap(status)
	}
	s := fmt.Sprintf("%3d. %s  %s  %s  %-25s  %s", h.num, inst, cell(h.svc, t.vw), cell(h.ship, t.sw), container, status)
	if !t.live {
		s = strings.TrimRight(s, " ")
	}
	return s
}

// set shows a new state of row i.
func (t *table) set(i int, container, status string, c colour) {
	t.mu.Lock()
	defer t.mu.Unlock()
	line := t.line(i, container, status, c)
	if !t.live {
		fmt.Fprintln(t.w, line)
		return
	}
	up := t.total - (t.offset + i)
	fmt.Fprintf(t.w, "\x1b[%dA\r\x1b[2K%s\x1b[%dB\r", up, line, up)
}

// print prints finished lines (status).
func (t *table) print(lines ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range lines {
		fmt.Fprintln(t.w, l)
	}
}

// sub is the table of row i alone, sharing the lines of t.
func (t *table) sub(i int) *table {
	s := *t
	s.rows = t.rows[i : i+1]
	s.offset = t.offset + i
	return &s
}
