package docker

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// createRouted brings up the first container of a routed instance: it is
// created, started and checked, then added to the proxy's route. It also
// finishes a replacement that was interrupted after its old container
// went: the replacement, still running under its temporary name, is
// checked, routed and renamed.
func (d *Driver) createRouted(ctx context.Context, t *target, progress func(string)) error {
	tmp := live.TempName(t.in.Name, t.in.SpecHash)
	id, err := d.resume(ctx, t, tmp, progress)
	if err != nil {
		return err
	}
	resumed := id != ""
	if !resumed {
		if err := d.checks(ctx, t, "pre-start", "", nil, progress); err != nil {
			return err
		}
		if id, err = d.createContainer(ctx, t, t.in.Name, false, progress); err != nil {
			return err
		}
		if err := d.startAndCheck(ctx, t, id, progress); err != nil {
			d.discard(ctx, t, id)
			return err
		}
	}
	fail := func(err error) error {
		if !resumed {
			d.discard(ctx, t, id)
		}
		return err
	}
	if err := d.probe(ctx, t, id, progress); err != nil {
		return fail(err)
	}
	progress("adding it to the front proxy")
	if _, err := d.serveInstance(ctx, t, progress); err != nil {
		return fail(err)
	}
	if resumed {
		sctx, cancel := short(ctx, t.ship)
		defer cancel()
		t.expect(id, renameEvents)
		if err := t.c.ContainerRename(sctx, id, t.in.Name); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, t.in.Name, err)
		}
	}
	return nil
}

// replaceRouted swaps a routed instance's container with no moment
// without one: the replacement runs beside the old container, passes its
// checks and the route's health check, then the proxy sends new requests
// to it; the old container stops once its requests in flight are done
// (drain). Until the switch, a failure only discards the replacement: the
// old container never stopped serving. An interrupted replacement is
// resumed where it stopped.
func (d *Driver) replaceRouted(ctx context.Context, st plan.Step, t *target, old container.InspectResponse, progress func(string)) error {
	tmp := live.TempName(t.in.Name, t.in.SpecHash)
	id, err := d.resume(ctx, t, tmp, progress)
	if err != nil {
		return err
	}
	resumed := id != ""
	fail := func(err error) error {
		if !resumed {
			progress("rolling back: the old container keeps serving")
			d.discard(ctx, t, id)
		}
		return err
	}
	if !resumed {
		if err := d.checks(ctx, t, "pre-start", "", nil, progress); err != nil {
			return err
		}
		if id, err = d.createContainer(ctx, t, tmp, true, progress); err != nil {
			return err
		}
		if err := d.startAndCheck(ctx, t, id, progress); err != nil {
			return fail(err)
		}
	}
	if err := d.probe(ctx, t, id, progress); err != nil {
		return fail(err)
	}
	wasRunning := old.State != nil && old.State.Running
	if wasRunning {
		if err := d.checks(ctx, t, "pre-stop", old.ID, &old, progress); err != nil {
			return fail(err)
		}
	}
	progress("switching the front proxy to " + tmp)
	proxyID, err := d.serveInstance(ctx, t, progress)
	if err != nil {
		return fail(err)
	}
	// From here the new container serves: a failure no longer rolls back.
	if wasRunning && old.ID != id {
		d.drain(ctx, t, proxyID, old, t.in.Route.Drain, progress)
	}
	progress("stopping the old container")
	if err := d.stop(ctx, t, old.ID, stopTimeout(old)); err != nil {
		return fmt.Errorf("stop old container: %w (the new one serves as %s)", err, tmp)
	}
	if err := d.checks(ctx, t, "stopped", "", &old, progress); err != nil {
		progress("stopped checks failed (ignored): " + err.Error())
	}
	if err := d.keepOld(ctx, t, old, st.Adopt, progress); err != nil {
		return fmt.Errorf("old container: %w (the new one serves as %s)", err, tmp)
	}
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	t.expect(id, renameEvents)
	if err := t.c.ContainerRename(sctx, id, t.in.Name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, t.in.Name, err)
	}
	return nil
}

// resume returns the ID of a replacement of this spec left running by an
// interrupted apply under the temporary name, to carry on with it; a
// replacement of another spec, or one that stopped, is removed. It
// returns "" when there is nothing to resume.
func (d *Driver) resume(ctx context.Context, t *target, tmp string, progress func(string)) (string, error) {
	sctx, cancel := short(ctx, t.ship)
	info, err := t.c.ContainerInspect(sctx, tmp)
	cancel()
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", tmp, err)
	}
	if err := d.ours(info, t.env.Name, tmp); err != nil {
		return "", err
	}
	if info.State != nil && info.State.Running && info.Config.Labels[label.SpecHash] == t.in.SpecHash {
		progress("resuming the interrupted replacement " + tmp)
		return info.ID, nil
	}
	d.discard(ctx, t, info.ID)
	return "", nil
}

// unroute takes a container that served through the proxy out of its
// slot before it stops, and waits for its requests in flight for its
// route's drain time. A container the proxy never served is left as is.
func (d *Driver) unroute(ctx context.Context, t *target, info container.InspectResponse, progress func(string)) error {
	up := upstreamOf(info)
	if up == "" {
		return nil
	}
	var r proxyRoute
	_ = json.Unmarshal([]byte(info.Config.Labels[label.Route]), &r)
	drain := time.Duration(min(max(r.Drain, 0), 3600)) * time.Second
	progress("taking it out of the front proxy")
	proxyID, err := d.withProxy(ctx, t, progress, false, func(rt *routeTable) bool {
		if !rt.serves(up) {
			return false
		}
		rt.unserve(up)
		return true
	})
	if err != nil {
		return err
	}
	if proxyID != "" {
		d.drain(ctx, t, proxyID, info, drain, progress)
	}
	return nil
}

// drain waits until the proxy has no connection left to the replaced
// container old, for up to limit. The proxy closes idle connections to a
// container after 2 s and opens none to one that left its slot, so the
// connections left are its requests in flight.
func (d *Driver) drain(ctx context.Context, t *target, proxyID string, old container.InspectResponse, limit time.Duration, progress func(string)) {
	var ip, port string
	if old.NetworkSettings != nil && old.NetworkSettings.Networks[ProxyNetwork] != nil {
		ip = old.NetworkSettings.Networks[ProxyNetwork].IPAddress
	}
	if old.Config != nil {
		_, port, _ = strings.Cut(old.Config.Labels[label.Upstream], ":")
	}
	if ip == "" || port == "" {
		return // it was not behind the proxy
	}
	deadline := time.Now().Add(limit)
	e := &execer{c: t.c, id: proxyID}
	said := false
	for {
		n, err := connections(ctx, t, e, ip, port)
		switch {
		case err != nil:
			progress("cannot count the proxy's connections (" + err.Error() + "): not draining")
			return
		case n == 0:
			return
		case time.Now().After(deadline):
			progress(fmt.Sprintf("drain: %d connections still open after %s: stopping anyway", n, limit))
			return
		case !said:
			progress(fmt.Sprintf("draining: %d connections open", n))
			said = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// connections counts the proxy's established TCP connections to ip:port,
// read from its /proc/net/tcp and tcp6.
func connections(ctx context.Context, t *target, e *execer, ip, port string) (int, error) {
	ctx, cancel := short(ctx, t.ship)
	defer cancel()
	_, out, err := e.Exec(ctx, []string{"cat", "/proc/net/tcp", "/proc/net/tcp6"})
	if err != nil {
		return 0, err
	}
	want, err := netip.ParseAddr(ip)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0, err
	}
	return countEstablished(out, want, p), nil
}

// countEstablished counts the sockets of a /proc/net/tcp{,6} listing in
// state ESTABLISHED whose remote end is addr:port.
func countEstablished(listing string, addr netip.Addr, port int) int {
	n := 0
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "01" {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[2], ":")
		if !ok {
			continue
		}
		pp, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(pp) != port {
			continue
		}
		if a, ok := procAddr(hexAddr); ok && a.Unmap() == addr.Unmap() {
			n++
		}
	}
	return n
}

// procAddr decodes an address of /proc/net/tcp: 4-byte words in host
// (little-endian) order.
func procAddr(h string) (netip.Addr, bool) {
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, false
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, ok := netip.AddrFromSlice(raw)
	return a, ok
}

// upstreamOf is the proxy upstream a container serves as, or "".
func upstreamOf(info container.InspectResponse) string {
	if info.Config == nil {
		return ""
	}
	return info.Config.Labels[label.Upstream]
}

// Stop stops the instance's running container ct as Pool.Stop does; a
// container behind the front proxy first leaves it and drains, so that
// no request is cut short.
func (d *Driver) Stop(ctx context.Context, r Ref, ct *Container, progress func(string)) error {
	if ct.Labels[label.Upstream] != "" {
		ship, c, err := d.pool.refClient(r)
		if err != nil {
			return err
		}
		t := &target{env: r.Env, in: r.In, ship: ship, c: c, own: d.pool.own(ship)}
		sctx, cancel := short(ctx, ship)
		info, err := c.ContainerInspect(sctx, ct.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("inspect %s: %w", r.In.Name, err)
		}
		if err := d.unroute(ctx, t, info, progress); err != nil {
			return err
		}
	}
	return d.pool.Stop(ctx, r, ct, progress)
}

// Restart replaces the instance's running container ct by a new one. A
// routed instance is swapped through the front proxy, as apply replaces
// it, and never stops serving; it returns false for any other instance,
// which the caller stops and starts.
func (d *Driver) Restart(ctx context.Context, r Ref, ct *Container, progress func(string)) (bool, error) {
	if r.In.Route == nil || ct == nil || !ct.Running {
		return false, nil
	}
	st := plan.Step{Action: plan.Replace, Env: r.Env.Name, Instance: r.In.Name, Ship: r.In.Ship, Container: ct.ID, Causes: []string{"restart"}}
	return true, d.Apply(ctx, st, progress)
}

// Reuse starts the instance's existing stopped container again, as
// MaestroNG's start --reuse does, instead of replacing it: only when it is
// ours and was made from the instance's current spec (MaestroNG reused it
// whatever the manifest said). It runs the pre-start and running checks,
// and a routed instance goes back into its slot once healthy. It returns
// false, having done nothing, when the container cannot be reused.
func (d *Driver) Reuse(ctx context.Context, r Ref, progress func(string)) (bool, error) {
	ship, c, err := d.pool.refClient(r)
	if err != nil {
		return false, err
	}
	t := &target{env: r.Env, in: r.In, ship: ship, c: c, own: d.pool.own(ship)}
	sctx, cancel := short(ctx, ship)
	info, err := c.ContainerInspect(sctx, r.In.Name)
	cancel()
	switch {
	case cerrdefs.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect %s: %w", r.In.Name, err)
	case info.State == nil || info.State.Running || info.Config == nil || info.Config.Labels[label.SpecHash] != r.In.SpecHash:
		return false, nil
	}
	if err := d.ours(info, r.Env.Name, r.In.Name); err != nil {
		return false, err
	}
	if err := d.checks(ctx, t, "pre-start", "", nil, progress); err != nil {
		return true, err
	}
	if err := d.startAndCheck(ctx, t, info.ID, progress); err != nil {
		return true, err
	}
	if r.In.Route == nil {
		return true, nil
	}
	if err := d.probe(ctx, t, info.ID, progress); err != nil {
		return true, err
	}
	progress("adding it to the front proxy")
	_, err = d.serveInstance(ctx, t, progress)
	return true, err
}

// serveInstance puts the instance's own upstream (its container under
// the instance's network alias) in its slot of the ship's proxy, creating
// or upgrading the proxy when needed, and returns the proxy's ID.
func (d *Driver) serveInstance(ctx context.Context, t *target, progress func(string)) (string, error) {
	route := routeOf(d.Owner.ID, t.env.Name, t.in)
	return d.withProxy(ctx, t, progress, true, func(rt *routeTable) bool { rt.serve(route, t.in.Name, upstream(t.in)); return true })
}
