package docker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"golang.org/x/sync/errgroup"

	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Observe lists the containers of every ship of envs, one list call per
// Docker daemon, concurrently. A daemon that cannot be reached is recorded
// with its error; the others are still observed.
func (p *Pool) Observe(ctx context.Context, envs []*manifest.Environment) *live.State {
	return p.observe(ctx, envs, false)
}

// list lists the ship's containers, inspecting the running instance
// containers for their drift, but for those whose drift kept knows.
// complete is false when an inspection failed (that container's drift is
// unknown): good for this run, not to be kept.
func (p *Pool) list(ctx context.Context, ship *manifest.Ship, kept func(id string) ([]string, bool)) (_ []live.Container, complete bool, _ error) {
	c, err := p.Client(ship)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, shipTimeout(ship))
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, false, fmt.Errorf("ship %s: list containers: %w", ship.Name, err)
	}
	out := make([]live.Container, 0, len(list))
	for _, s := range list {
		lc := live.Container{ID: s.ID, Image: s.Image, State: s.State, Created: time.Unix(s.Created, 0), Labels: s.Labels, Health: listHealth(s.Status), ImageID: s.ImageID}
		if len(s.Names) > 0 {
			lc.Name = strings.TrimPrefix(s.Names[0], "/")
			for _, n := range s.Names {
				// Linked containers also list "/other/alias" names; the
				// container's own name has a single slash.
				if strings.Count(n, "/") == 1 {
					lc.Name = strings.TrimPrefix(n, "/")
				}
			}
		}
		for _, pt := range s.Ports {
			if pt.PublicPort != 0 {
				lc.Ports = append(lc.Ports, fmt.Sprintf("%s:%d/%s", pt.IP, pt.PublicPort, pt.Type))
			}
		}
		out = append(out, lc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	// The configuration of each running instance container, for drift
	// that leaves its labels as they were.
	var g errgroup.Group
	g.SetLimit(8)
	var partial atomic.Bool
	for i := range out {
		lc := &out[i]
		if !inspected(*lc) {
			continue
		}
		if kept != nil {
			if d, ok := kept(lc.ID); ok {
				lc.Drift = d
				continue
			}
		}
		g.Go(func() error {
			info, err := c.ContainerInspect(ctx, lc.ID)
			switch {
			case err == nil:
				lc.Drift = drift(info)
			case !cerrdefs.IsNotFound(err):
				partial.Store(true) // its drift is unknown
			}
			return nil // gone since the list: the next run sees it
		})
	}
	_ = g.Wait()
	return out, !partial.Load(), nil
}

// inspected reports whether a list inspects the container for its drift:
// a running instance container.
func inspected(lc live.Container) bool {
	return lc.State == "running" && lc.Owned() && lc.Name == lc.Instance()
}

// shipTimeout is the ship's Docker client timeout (5 s by default).
func shipTimeout(ship *manifest.Ship) time.Duration {
	if ship.Timeout <= 0 {
		return 5 * time.Second
	}
	return time.Duration(ship.Timeout * float64(time.Second))
}

// listHealth reads the HEALTHCHECK state from a container list's status
// text ("Up 5 minutes (healthy)", "Up 2 seconds (health: starting)").
func listHealth(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return "healthy"
	case strings.HasSuffix(status, "(unhealthy)"):
		return "unhealthy"
	case strings.HasSuffix(status, "(health: starting)"):
		return "starting"
	}
	return ""
}
