package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"github.com/spf13/cobra"

	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

var kindRollback = verbKind{name: "rollback", omitted: true, mutates: true}

func newRollback(g *globals) *cobra.Command {
	var (
		f       verbFlags
		release bool
		to      string
		reason  string
		srv     serverFlags
	)
	cmd := &cobra.Command{
		Use:   "rollback [PATH] [THING...]",
		Short: "Swap routed instances back to their previous container, through the front proxy",
		Long: `rollback swaps each routed instance (a service with proxy:) back to the
container it ran before its last replacement, kept stopped for this: the
kept container starts, passes the route's health check, the front proxy
sends new requests to it, and the current container drains, stops and is
kept in its turn. Nothing is pulled or built, so it takes about a second
per instance.

The environment is then held on the rollback: plan, apply and the daemon
plan nothing for it (the plan says it is rolled back) until its source
moves to another revision. rollback --release lifts the hold at once.

rollback ENV --to COMMIT asks a running daemon (at --server, with its API
token) to deploy the environment as it was at that earlier commit, every
service of it, immutably as any deploy, and to hold it there (its status
is pinned) until maestro-sync resume ENV or a new commit on the branch.
The pin outlives daemon restarts.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to != "" {
				if len(args) != 1 {
					return fmt.Errorf("rollback --to takes one environment name, got %d arguments", len(args))
				}
				q := url.Values{"to": {to}}
				if reason != "" {
					q.Set("reason", reason)
				}
				var hold struct{ Revision string }
				if err := srv.post(cmd, "/api/v1/environments/"+url.PathEscape(args[0])+"/rollback?"+q.Encode(), &hold); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "environment %s: the daemon deploys it as of %s and holds it there; maestro-sync resume %s lifts the pin\n", args[0], shortRevision(hold.Revision), args[0])
				return nil
			}
			v, done, err := g.prepare(cmd, args, &f, kindRollback)
			if err != nil {
				return err
			}
			defer done()
			drv := docker.NewDriver(v.pool, v.repo.Environments, g.rev(), nil)
			drv.Owner = v.owner
			if release {
				return v.release(drv)
			}
			var refs []docker.Ref
			for _, r := range v.refs {
				if r.In.Route != nil {
					refs = append(refs, r)
				}
			}
			if len(refs) == 0 {
				return fmt.Errorf("no routed instance (a service with proxy:) among the ones given")
			}
			v.refs = refs
			v.table = newTable(cmd.OutOrStdout(), v.refs, kindRollback, false)
			rolled := map[*manifest.Environment]map[string]*manifest.Ship{}
			to := map[*manifest.Environment]string{}
			var mu sync.Mutex
			errs := docker.Play(v.ctx, f.waits(v.refs, kindRollback), f.concurrency, func(ctx context.Context, i int) error {
				r := v.refs[i]
				_, rev, err := drv.Rollback(ctx, r, func(s string) { v.table.set(i, "-", s+"...", none) })
				if err != nil {
					v.table.set(i, "-", "failed: "+err.Error(), red)
					return fmt.Errorf("%s: %w", r.In.Name, err)
				}
				v.table.set(i, "-", "rolled back to "+shortRevision(rev), green)
				mu.Lock()
				if rolled[r.Env] == nil {
					rolled[r.Env] = map[string]*manifest.Ship{}
				}
				rolled[r.Env][r.In.Ship] = r.Env.Ships[r.In.Ship]
				to[r.Env] = rev
				mu.Unlock()
				return nil
			})
			// Hold each environment rolled back (even in part) until its
			// source moves on.
			for env, ships := range rolled {
				k := lock.Key{Owner: v.owner, Env: env.Name}
				for _, name := range sortedShips(ships) {
					if err := drv.MarkRollback(v.ctx, ships[name], k, diff.Digest([]*manifest.Environment{env}), g.rev(), to[env]); err != nil {
						errs = append(errs, fmt.Errorf("environment %s: %w", env.Name, err))
					}
				}
			}
			return v.finish(errs)
		},
	}
	f.register(cmd, kindRollback)
	cmd.Flags().BoolVar(&release, "release", false, "lift the hold of a rollback on the environments: the next apply deploys the source again")
	cmd.Flags().StringVar(&to, "to", "", "ask the daemon to deploy ENV as of this earlier commit and hold it there")
	cmd.Flags().StringVar(&reason, "reason", "", "with --to: why, shown in the status (at most 200 characters)")
	srv.register(cmd)
	return cmd
}

// release removes the rollback markers of the environments of the refs.
func (v *verbRun) release(drv *docker.Driver) error {
	var errs []error
	seen := map[string]bool{}
	for _, r := range v.refs {
		if seen[r.Env.Name] {
			continue
		}
		seen[r.Env.Name] = true
		k := lock.Key{Owner: v.owner, Env: r.Env.Name}
		for _, name := range r.Env.ShipNames() {
			if err := drv.ReleaseRollback(v.ctx, r.Env.Ships[name], k); err != nil {
				errs = append(errs, fmt.Errorf("environment %s, ship %s: %w", r.Env.Name, name, err))
			}
		}
		fmt.Fprintf(v.cmd.OutOrStdout(), "environment %s: released; the next apply deploys its source\n", r.Env.Name)
	}
	return v.finish(errs)
}

func sortedShips(m map[string]*manifest.Ship) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func shortRevision(r string) string {
	if r == "" {
		return "the previous container"
	}
	return r[:min(12, len(r))]
}
