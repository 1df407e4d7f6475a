package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
)

// selection is what THING arguments and -d/-i pick.
type selection struct {
	things   []string
	withDeps bool
}

func (s *selection) flags(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&s.withDeps, "with-dependencies", "d", false, "also act on the dependencies of the given services or instances")
}

// resolve checks the THING arguments against the loaded environments and
// returns the instance filter for diff (nil when no thing is given).
func (s *selection) resolve(envs []*manifest.Environment) (func(*manifest.Environment, *manifest.Instance) bool, error) {
	if len(s.things) == 0 {
		return nil, nil
	}
	chosen := map[string]bool{} // env/instance
	for _, thing := range s.things {
		found := false
		for _, env := range envs {
			// An instance name wins over a service name, as in MaestroNG.
			var services []string
			if in := env.Instance(thing); in != nil {
				services = append(services, in.Service)
				chosen[env.Name+"/"+in.Name] = true
				found = true
			} else if svc := env.Service(thing); svc != nil {
				services = append(services, svc.Name)
				for _, in := range svc.Instances {
					chosen[env.Name+"/"+in.Name] = true
				}
				chosen[env.Name+"/"+svc.Name] = svc.Workload != nil
				found = true
			}
			if !s.withDeps {
				continue
			}
			for _, svc := range services {
				for _, dep := range env.Dependencies(svc) {
					for _, in := range env.Service(dep).Instances {
						chosen[env.Name+"/"+in.Name] = true
					}
					if env.Service(dep).Workload != nil {
						chosen[env.Name+"/"+dep] = true
					}
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("%s is neither a service nor an instance", thing)
		}
	}
	return func(env *manifest.Environment, in *manifest.Instance) bool { return chosen[env.Name+"/"+in.Name] }, nil
}

// session is a loaded repository and the hosts it deploys to.
type session struct {
	owner owner.Owner
	// whole is true when every environment under PATH was loaded (not -f).
	whole bool
	repo  *manifest.Repo
	hosts *reconcile.Hosts
}

// session loads the manifests and names their owner. Invalid
// environments are reported on stderr and left out.
func (g *globals) session(cmd *cobra.Command, args []string) (*session, error) {
	own, err := g.identity(args)
	if err != nil {
		return nil, err
	}
	repo, err := g.load(cmd, args)
	if err != nil {
		return nil, err
	}
	report(cmd.ErrOrStderr(), repo)
	hosts := &reconcile.Hosts{Docker: g.newPool(), Kube: kube.NewPool(), Owner: own}
	return &session{owner: own, whole: g.wholeTree(args), repo: repo, hosts: hosts}, nil
}

func (s *session) close() { s.hosts.Docker.Close(); s.hosts.Kube.Close() }

// request is the reconcile request of the selection.
func (s *session) request(revision string, prune, adopt bool, sel *selection) (reconcile.Request, error) {
	filter, err := sel.resolve(s.repo.Environments)
	if err != nil {
		return reconcile.Request{}, err
	}
	return reconcile.Request{
		Owner: s.owner, Envs: s.repo.Environments, Invalid: invalidEnvs(s.repo), Revision: revision,
		Prune: prune, PruneEnvs: prune && s.whole, Adopt: adopt, Select: filter, Things: sel.things, WithDeps: sel.withDeps,
	}, nil
}

func newPlan(g *globals) *cobra.Command {
	var (
		output, out       string
		prune, all, adopt bool
		sel               selection
		rev               review
	)
	cmd := &cobra.Command{
		Use:   "plan [PATH] [THING...]",
		Short: "Show what apply would change on the ships",
		Long: `plan compares the manifests with what runs on the ships and prints the
steps apply would take, each with its causes. It changes nothing.

With --base (and --head) it compares two revisions of the local Git
repository instead, or with --base-dir (and --head-dir) two directories,
without touching any ship: what a pull request would change, with the
fields that differ. Sensitive values are never shown.

Exit status: 0 when nothing would change and every ship and cluster was
observed; 2 when something would change; 1 on any problem, whatever else
would change: an unreachable ship or cluster, an invalid environment, a
conflict (a name held by a container that is not ours).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rev.enabled() {
				path := "."
				if len(args) > 0 {
					path = args[0]
				}
				p, invalid, err := rev.run(g, cmd.ErrOrStderr(), path)
				if err != nil {
					return err
				}
				if err := writePlan(cmd, p, output, out, all); err != nil {
					return err
				}
				switch {
				case invalid:
					return exitCode(1)
				case p.Summary().Changes() > 0:
					return exitCode(2)
				}
				return nil
			}
			pathArgs, things := splitPath(g, args)
			sel.things = things
			s, err := g.session(cmd, pathArgs)
			if err != nil {
				return err
			}
			defer s.close()
			req, err := s.request(g.rev(), prune, adopt, &sel)
			if err != nil {
				return err
			}
			p, _ := reconcile.Plan(cmd.Context(), s.hosts, req)
			if err := writePlan(cmd, p, output, out, all); err != nil {
				return err
			}
			switch {
			case p.Summary().Problems() > 0:
				return exitCode(1)
			case p.Summary().Changes() > 0:
				return exitCode(2)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or markdown")
	cmd.Flags().StringVar(&out, "out", "", "write the plan to this file")
	cmd.Flags().BoolVar(&prune, "prune", false, "plan the removal of containers no longer in the manifests")
	cmd.Flags().BoolVar(&adopt, "adopt", false, "plan the takeover of containers without maestro-sync labels holding an instance's name (MaestroNG's)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "list unchanged instances too")
	sel.flags(cmd)
	rev.flags(cmd)
	return cmd
}

// writePlan writes a plan in the chosen format to stdout or to a file.
func writePlan(cmd *cobra.Command, p *plan.Plan, output, out string, all bool) error {
	w := cmd.OutOrStdout()
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	switch output {
	case "json":
		return p.WriteJSON(w)
	case "text":
		return p.WriteText(w, plan.TextOptions{Color: isTerminal(w), Unchanged: all})
	case "markdown", "md":
		title := "maestro-sync plan"
		if p.Base != "" {
			title += fmt.Sprintf(": %s → %s", p.Base, p.Revision)
		}
		return p.WriteMarkdown(w, plan.MarkdownOptions{Title: title})
	}
	return fmt.Errorf("unknown output format %q (text, json or markdown)", output)
}

func newApply(g *globals) *cobra.Command {
	var (
		concurrency    int
		prune, adopt   bool
		refresh        bool
		sel            selection
		planFile       string
		rolloutTimeout time.Duration
		lockTimeout    time.Duration
		lockTTL        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply [PATH] [THING...]",
		Short: "Make the ships run what the manifests describe",
		Long: `apply plans like plan and carries the plan out: missing containers are
created, changed ones replaced immutably (the new container is started and
checked before the old one is removed; if it fails, the old one keeps
running), and with --prune containers no longer in the manifests are
removed. THING limits the run to services or instances (-d adds their
dependencies). Instances start in dependency order, at most -c at a time.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pathArgs, things := splitPath(g, args)
			sel.things = things
			var saved *plan.Plan
			if planFile != "" {
				if len(things) > 0 || prune || adopt {
					return fmt.Errorf("--plan applies the saved plan's own selection: give no THING, no --prune and no --adopt")
				}
				f, err := os.Open(planFile)
				if err != nil {
					return err
				}
				saved, err = plan.ReadJSON(f)
				f.Close()
				if err != nil {
					return err
				}
				if saved.Base != "" {
					return fmt.Errorf("%s is a plan between two revisions, not against live state: it cannot be applied", planFile)
				}
				sel.things, sel.withDeps, prune = saved.Things, saved.WithDeps, saved.Prune
				for _, st := range saved.Steps {
					adopt = adopt || st.Adopt
				}
			}
			ctx := cmd.Context()
			s, err := g.session(cmd, pathArgs)
			if err != nil {
				return err
			}
			defer s.close()
			req, err := s.request(g.rev(), prune, adopt, &sel)
			if err != nil {
				return err
			}
			if s.hosts.Auth, err = docker.LoadAuth(dockerConfigPath()); err != nil {
				return err
			}
			s.hosts.RefreshImages, s.hosts.RolloutTimeout, s.hosts.LockTTL = refresh, rolloutTimeout, lockTTL
			w := cmd.OutOrStdout()
			prog := newProgress(w)
			req.Concurrency, req.Progress = concurrency, prog.event
			req.Holder, req.LockWait = lock.Self(), lockTimeout
			req.Waiting = func(e *lock.LockedError) {
				fmt.Fprintf(cmd.ErrOrStderr(), "waiting up to %s: %v\n", lockTimeout, e)
			}
			errStale := errors.New("stale plan")
			req.Review = func(p *plan.Plan) error {
				if saved != nil {
					if reasons := diff.Stale(saved, p); len(reasons) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "ERROR: refusing to apply %s: it no longer matches what would be done now:\n", planFile)
						for _, r := range reasons {
							fmt.Fprintf(cmd.ErrOrStderr(), "  - %s\n", r)
						}
						fmt.Fprintln(cmd.ErrOrStderr(), "Plan again and review the new plan.")
						return errStale
					}
				}
				return p.WriteText(w, plan.TextOptions{Color: isTerminal(w)})
			}
			out, err := reconcile.Apply(ctx, s.hosts, req)
			switch {
			case errors.Is(err, errStale):
				return exitCode(1)
			case err != nil:
				return err
			}
			p, res := out.Plan, out.Apply
			for _, o := range res.Outcomes {
				if o.Err != nil && !o.Aborted {
					fmt.Fprintf(cmd.ErrOrStderr(), "ERROR: %v\n", o.Err)
				}
			}
			fmt.Fprintf(w, "Applied %d step(s), %d failed.\n", len(res.Outcomes)-res.Failed(), res.Failed())
			if problems := p.Summary().Problems(); problems > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "ERROR: %d problem(s) left unsolved (see the plan): conflicts, unreachable ships or clusters, invalid environments\n", problems)
			}
			if res.Failed() > 0 || p.Summary().Problems() > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&concurrency, "concurrency", "c", 8, "how many steps run at once (0: no limit)")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove containers no longer in the manifests")
	cmd.Flags().BoolVar(&adopt, "adopt", false, "take over containers without maestro-sync labels holding an instance's name (MaestroNG's): each is replaced immutably, the new one checked before the old one goes")
	cmd.Flags().BoolVarP(&refresh, "refresh-images", "r", false, "pull every image, even when the ship has it, and replace the containers whose tag now names another image")
	cmd.Flags().DurationVar(&rolloutTimeout, "rollout-timeout", kube.DefaultRolloutTimeout, "how long a cluster service's new pods may take to become available")
	cmd.Flags().DurationVar(&lockTTL, "lock-ttl", lock.DefaultTTL, "how long the deploy locks outlive this run if it is killed")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", 5*time.Minute, "how long to wait for the deploy lock another run holds (0: fail at once)")
	cmd.Flags().StringVar(&planFile, "plan", "", "apply this saved plan (plan -o json --out FILE), refusing if the manifests or the live state changed since")
	sel.flags(cmd)
	return cmd
}

// splitPath separates an optional leading PATH from THING arguments.
func splitPath(g *globals, args []string) (path, things []string) {
	if len(args) > 0 && g.file == "" && isPath(args[0]) {
		return args[:1], args[1:]
	}
	return nil, args
}

func dockerConfigPath() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker", "config.json")
}

// isTerminal reports whether w is a terminal (for colours and in-place
// progress).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && f != nil && term.IsTerminal(int(f.Fd()))
}
