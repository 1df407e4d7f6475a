package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
)

// inspectable is a lock that can be read and broken (both drivers' locks).
type inspectable interface {
	lock.Mutex
	Info(ctx context.Context) (lock.Info, error)
	Break(ctx context.Context) error
}

func newLock(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Show or release the deploy locks of environments",
		Long: `Every apply and every run of the daemon holds a deploy lock per
environment (of its owner) on each ship and cluster of the environment: a
never-started container maestro-sync-lock.<key> on a ship, a Lease
maestro-sync-lock-<key> in a cluster namespace. It names its holder (host,
pid, run), is renewed while held, and expires once its holder has been
silent for its TTL, so a killed apply never blocks deploys for long.`,
	}
	var force bool
	status := &cobra.Command{
		Use:   "status [PATH]",
		Short: "List the deploy locks held on the environments' ships and clusters",
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachLock(cmd, args, func(ctx context.Context, m inspectable, info lock.Info, w *tabwriter.Writer) error {
				state := "held"
				if info.Expired {
					state = "expired"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\tsince %s\t%s\n", info.Env, m.Where(), info.Holder, state,
					info.Acquired.Local().Format(time.DateTime), info.Owner)
				return nil
			})
		},
	}
	release := &cobra.Command{
		Use:   "release [PATH]",
		Short: "Remove expired deploy locks (--force: any lock, whoever holds it)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachLock(cmd, args, func(ctx context.Context, m inspectable, info lock.Info, w *tabwriter.Writer) error {
				if !info.Expired && !force {
					return fmt.Errorf("%s on %s is held by %s, renewed %s ago: it is alive; use --force to take the lock away from it",
						info.Env, m.Where(), info.Holder, time.Since(info.Renewed).Round(time.Second))
				}
				if err := m.Break(ctx); err != nil {
					return fmt.Errorf("%s on %s: %w", info.Env, m.Where(), err)
				}
				fmt.Fprintf(w, "%s\t%s\treleased (was held by %s)\n", info.Env, m.Where(), info.Holder)
				return nil
			})
		},
	}
	release.Flags().BoolVar(&force, "force", false, "release locks whose holder is alive too")
	cmd.AddCommand(status, release)
	return cmd
}

// eachLock calls f for every lock held on the environments of PATH.
func (g *globals) eachLock(cmd *cobra.Command, args []string, f func(context.Context, inspectable, lock.Info, *tabwriter.Writer) error) error {
	s, err := g.session(cmd, args)
	if err != nil {
		return err
	}
	defer s.close()
	ctx := cmd.Context()
	places := reconcile.Places(s.owner, s.repo.Environments)
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	defer w.Flush()
	var errs []error
	seen := map[string]bool{}
	n := 0
	for _, m := range s.hosts.Mutexes(s.repo.Environments, places, lock.Self()) {
		im, ok := m.(inspectable)
		if !ok {
			continue
		}
		info, err := im.Info(ctx)
		switch {
		case cerrdefs.IsNotFound(err) || apierrors.IsNotFound(err):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", m.Where(), err))
			continue
		}
		if id := info.Env + "\x00" + m.Where(); seen[id] {
			continue
		} else {
			seen[id] = true
		}
		n++
		if err := f(ctx, im, info, w); err != nil {
			errs = append(errs, err)
		}
	}
	if n == 0 && len(errs) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "no deploy lock is held (owner %s)\n", s.owner)
	}
	if len(errs) > 0 {
		w.Flush()
		for _, err := range errs {
			fmt.Fprintf(cmd.ErrOrStderr(), "ERROR: %v\n", err)
		}
		return exitCode(1)
	}
	return nil
}
