package diff

import (
	"fmt"
	"slices"
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// computeWorkloads plans the cluster services of env: one step per
// service (create, replace, unchanged or unknown), and the removal of
// workloads that are no longer desired. up maps a service to the step that
// brings it up.
func computeWorkloads(env *manifest.Environment, state *live.State, opts Options) (steps []plan.Step, up map[string]string, removals []plan.Step) {
	up = map[string]string{}
	desiredAt := map[string]string{} // service → cluster address
	for _, svc := range env.Services {
		if w := svc.Workload; w != nil && env.Clusters[w.Cluster] != nil {
			desiredAt[svc.Name] = env.Clusters[w.Cluster].Address()
		}
	}
	selected := func(svc *manifest.Service) bool {
		if opts.Select == nil {
			return true
		}
		return opts.Select(env, &manifest.Instance{Name: svc.Name, Service: svc.Name})
	}
	blocked := map[string]bool{}
	for _, svc := range env.Services {
		w := svc.Workload
		if w == nil || !selected(svc) {
			continue
		}
		cl := env.Clusters[w.Cluster]
		addr := cl.Address()
		st := plan.Step{ID: stepID(env.Name, addr, svc.Name), Env: env.Name, Service: svc.Name, Instance: svc.Name,
			Ship: w.Cluster, Host: addr, SpecHash: w.SpecHash}
		c := clusterOf(state, addr)
		if c == nil || c.Err != nil {
			st.Action = plan.Unknown
			st.Causes = []string{unreachableCluster(c)}
			blocked[svc.Name] = true
			steps = append(steps, st)
			continue
		}
		var mine []*live.Workload
		for i := range c.Workloads {
			if c.Workloads[i].Env() == env.Name && c.Workloads[i].Service() == svc.Name && c.Workloads[i].Ours(opts.Owner) {
				mine = append(mine, &c.Workloads[i])
			}
		}
		var serving, desired *live.Workload
		for _, lw := range mine {
			if lw.Serving {
				serving = lw
			}
			if lw.SpecHash() == w.SpecHash {
				desired = lw
			}
		}
		switch {
		case len(mine) == 0:
			st.Action, st.Causes = plan.Create, []string{"not found"}
		case serving != nil && serving == desired && len(mine) == 1 && len(serving.Drift) > 0:
			// Changed on the cluster since it was applied: applied again.
			st.Action, st.Container, st.LiveSpecHash = plan.Replace, serving.Name, serving.SpecHash()
			for _, d := range serving.Drift {
				st.Causes = append(st.Causes, "drift: "+d)
			}
		case serving != nil && serving == desired && len(mine) == 1 && w.Mode == manifest.ModeDeployment && serving.Replicas != w.Replicas:
			// Only the number of pods differs (the manifest's, or a
			// kubectl scale by hand, whose new pods may not be ready
			// yet): scaled in place; the step waits until they are.
			st.Action, st.Container, st.LiveSpecHash, st.Replicas = plan.Scale, serving.Name, serving.SpecHash(), w.Replicas
			st.Causes = []string{fmt.Sprintf("scale %s %d → %d", svc.Name, serving.Replicas, w.Replicas)}
		case serving != nil && serving == desired && desired.Ready && len(mine) == 1:
			st.Action, st.Container, st.LiveSpecHash = plan.Unchanged, serving.Name, serving.SpecHash()
		case desired != nil && serving == desired && desired.Ready:
			st.Action, st.Container, st.LiveSpecHash = plan.Replace, serving.Name, serving.SpecHash()
			for _, lw := range mine {
				if lw != desired {
					st.Causes = append(st.Causes, "leftover "+strings.ToLower(lw.Kind)+" "+lw.Name+" of an interrupted apply")
				}
			}
		case desired != nil:
			st.Action, st.Container = plan.Replace, desired.Name
			st.Causes = []string{"rollout of " + desired.Name + " not finished"}
			if serving != nil {
				st.LiveSpecHash = serving.SpecHash()
			}
		default:
			cur := serving
			if cur == nil {
				cur = mine[0]
			}
			st.Action, st.Container, st.LiveSpecHash = plan.Replace, cur.Name, cur.SpecHash()
			st.Causes = Causes(workloadSpec(cur), w.Spec())
		}
		if st.Action.Mutates() {
			up[svc.Name] = st.ID
		}
		steps = append(steps, st)
	}
	// Workloads of this environment not desired where they run.
	if state == nil {
		return steps, up, nil
	}
	addrs := make([]string, 0, len(state.Clusters))
	for a, c := range state.Clusters {
		if c.Err == nil {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	for _, addr := range addrs {
		for _, lw := range state.Clusters[addr].Workloads {
			if lw.Env() != env.Name || !lw.Ours(opts.Owner) || desiredAt[lw.Service()] == addr {
				continue
			}
			svc := env.Service(lw.Service())
			if opts.Select != nil && (svc == nil || !selected(svc)) {
				continue
			}
			st := plan.Step{ID: stepID(env.Name, addr, lw.Service()), Action: plan.Remove, Env: env.Name, Service: lw.Service(),
				Instance: lw.Service(), Ship: addr, Host: addr, Container: lw.Name, LiveSpecHash: lw.SpecHash()}
			if cl := clusterNamed(env, addr); cl != "" {
				st.Ship = cl
			}
			_, moved := desiredAt[lw.Service()]
			switch {
			case moved && blocked[lw.Service()]:
				st.Action, st.Causes = plan.Orphan, []string{"moves to a cluster that cannot run it now: kept"}
			case moved:
				st.Causes = []string{"moved to cluster " + env.Service(lw.Service()).Workload.Cluster}
				if id, ok := up[lw.Service()]; ok {
					st.After = []string{id}
				}
			case opts.Prune:
				st.Causes = []string{"no longer in the manifest"}
			default:
				st.Action, st.Causes = plan.Orphan, []string{"no longer in the manifest (use --prune to remove)"}
			}
			if !slices.ContainsFunc(removals, func(o plan.Step) bool { return o.ID == st.ID }) {
				removals = append(removals, st)
			}
		}
	}
	return steps, up, removals
}

func clusterOf(state *live.State, addr string) *live.Cluster {
	if state == nil {
		return nil
	}
	return state.Clusters[addr]
}

func clusterNamed(env *manifest.Environment, addr string) string {
	for name, c := range env.Clusters {
		if c.Address() == addr {
			return name
		}
	}
	return ""
}

func unreachableCluster(c *live.Cluster) string {
	if c == nil || c.Err == nil {
		return "cluster not observed"
	}
	return "cluster unreachable: " + c.Err.Error()
}

// workloadSpec reads the spec summary a workload was created with.
func workloadSpec(w *live.Workload) *manifest.Spec { return parseSpec(w.Annotations[label.Spec]) }
