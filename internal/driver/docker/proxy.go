package docker

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
)

// The front proxy. Every ship that hosts a routed service (the manifest's
// proxy key) runs one Caddy container, ProxyName, that publishes the
// public HTTP port and reaches the routed containers over ProxyNetwork by
// a network alias of each. It is configured through the Docker API only:
// the route table and the Caddy configuration computed from it are copied
// into the container, and Caddy reloads them gracefully (its listener
// stays open, requests in flight finish) through its admin API, which
// listens inside the container only. The table is changed under a lock on
// the ship, since environments of several owners may share the proxy.
const (
	ProxyName    = "maestro-sync-proxy"
	ProxyNetwork = "maestro-sync"
	// ProxyVolume keeps the proxy's certificates across its containers.
	ProxyVolume  = "maestro-sync-proxy-data"
	proxyData    = "/data"
	proxyDir     = "/etc/maestro-sync"
	proxyTable   = proxyDir + "/routes.json"
	proxyConfig  = proxyDir + "/caddy.json"
	maxTableSize = 4 << 20
)

// proxyLock is the lock of a ship's route table.
var proxyLock = lock.Key{Owner: owner.Owner{ID: "front-proxy", Name: "maestro-sync"}, Env: "front-proxy"}

// hostBinding is the bridge driver's option of the default address of
// published ports.
const hostBinding = "com.docker.network.bridge.host_binding_ipv4"

var dnsUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// upstream is where the proxy reaches an instance's container: a network
// alias unique to the instance and spec, and the routed port.
func upstream(in *manifest.Instance) string {
	name := strings.Trim(dnsUnsafe.ReplaceAllString(strings.ToLower(in.Name), "-"), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return "ms-" + name + "-" + in.SpecHash[:12] + ":" + in.Port(in.Route.Port).ExposedPort()
}

// alias is the network alias of an upstream.
func alias(up string) string { a, _, _ := strings.Cut(up, ":"); return a }

// routeOf is the route of an instance on its ship, without upstreams. Its
// key is owner/environment/service.
func routeOf(ownerID, env string, in *manifest.Instance) proxyRoute {
	key := ownerID + "/" + env + "/" + in.Service
	if in.Route.Own {
		key += "/" + in.Name
	}
	r := proxyRoute{Key: key, Hosts: in.Route.Hosts, Path: in.Route.Path, Drain: int(in.Route.Drain / time.Second)}
	if in.Route.TLS != manifest.TLSOff {
		r.TLS = in.Route.TLS
	}
	return r
}

// proxySpec is a digest of the proxy container's settings.
func proxySpec(p manifest.Proxy) string {
	s := p.Image + "\x00" + strconv.Itoa(p.HTTP)
	if p.HTTPS != 0 {
		s += "\x00" + strconv.Itoa(p.HTTPS)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// withProxy runs fn on the ship's route table under the ship's proxy
// lock; when fn reports a change, the table and the Caddy configuration
// are written into the proxy and reloaded. A reload that fails leaves the
// proxy on its previous configuration, and the previous table is written
// back. With ensure, the proxy is created, started or upgraded first;
// without, a ship with no running proxy is left alone. It returns the
// proxy container's ID ("" when left alone).
func (d *Driver) withProxy(ctx context.Context, t *target, progress func(string), ensure bool, fn func(rt *routeTable) bool) (string, error) {
	lctx, release, err := d.lockProxy(ctx, t)
	if err != nil {
		return "", err
	}
	defer release()
	var id string
	if ensure {
		id, err = d.ensureProxy(lctx, t, progress)
	} else {
		id, err = runningProxy(lctx, t)
	}
	if err != nil || id == "" {
		return "", err
	}
	rt, err := readTable(lctx, t, id)
	if err != nil {
		return "", err
	}
	before := routeTable{Routes: clone(rt.Routes)}
	if !fn(&rt) {
		return id, nil
	}
	// Caddy reloads only when its configuration changes (a route or a
	// slot comes or goes): a reload opens the listening socket anew, and
	// a connection arriving at that moment may be reset. Emptied slots are
	// dropped then, and not before.
	reload := !bytes.Equal(caddyJSON(before), caddyJSON(rt))
	if reload {
		rt.compact()
	}
	if err := writeTable(lctx, t, id, rt); err != nil {
		return "", err
	}
	if !reload {
		return id, nil
	}
	if err := reloadProxy(lctx, t, id); err != nil {
		if werr := writeTable(context.WithoutCancel(ctx), t, id, before); werr != nil {
			err = errors.Join(err, werr)
		}
		return "", err
	}
	return id, nil
}

// lockProxy takes the ship's proxy lock, which serialises every change
// of its container and its route table across processes.
func (d *Driver) lockProxy(ctx context.Context, t *target) (context.Context, func(), error) {
	m := d.pool.Mutex(t.ship, proxyLock, lock.Self(), d.LockTTL)
	lctx, held, err := lock.Acquire(ctx, []lock.Mutex{m}, lock.Options{Wait: 5 * time.Minute, Retry: 100 * time.Millisecond})
	if err != nil {
		return nil, nil, fmt.Errorf("front proxy of ship %s: %w", t.ship.Name, err)
	}
	return lctx, func() { _ = held.Release(context.WithoutCancel(ctx)) }, nil
}

// retireProxy removes the ship's proxy container once no container on
// the ship, of any environment or owner and kept ones included, is routed
// through it: a ship that no longer hosts a routed service has no public
// port held by maestro-sync. The network stays (it holds nothing, and a
// deploy may be joining it).
func (d *Driver) retireProxy(ctx context.Context, t *target, progress func(string)) error {
	lctx, release, err := d.lockProxy(ctx, t)
	if err != nil {
		return err
	}
	defer release()
	sctx, cancel := short(lctx, t.ship)
	defer cancel()
	routed, err := t.c.ContainerList(sctx, container.ListOptions{All: true, Limit: 1, Filters: filters.NewArgs(filters.Arg("label", label.Upstream))})
	if err != nil {
		return fmt.Errorf("list routed containers: %w", err)
	}
	if len(routed) > 0 {
		return nil
	}
	info, err := t.c.ContainerInspect(sctx, ProxyName)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect front proxy: %w", err)
	}
	if info.Config == nil || info.Config.Labels[label.Role] != "proxy" {
		return nil // a container of that name that is not ours
	}
	progress("removing the front proxy: no routed container is left on the ship")
	return d.removeContainer(lctx, t, info.ID, true)
}

// runningProxy returns the ID of the ship's proxy when it runs, or "".
func runningProxy(ctx context.Context, t *target) (string, error) {
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	info, err := t.c.ContainerInspect(sctx, ProxyName)
	switch {
	case cerrdefs.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("inspect front proxy: %w", err)
	case info.Config == nil || info.Config.Labels[label.Role] != "proxy" || info.State == nil || !info.State.Running:
		return "", nil
	}
	return info.ID, nil
}

func clone(rs []proxyRoute) []proxyRoute {
	out := make([]proxyRoute, len(rs))
	for i, r := range rs {
		r.Hosts = append([]string(nil), r.Hosts...)
		slots := make(map[string]string, len(r.Slots))
		for k, v := range r.Slots {
			slots[k] = v
		}
		r.Slots = slots
		out[i] = r
	}
	return out
}

// ensureProxy makes sure the proxy network and container exist, run and
// match the environment's proxy settings, and returns the container's ID.
// A proxy that was removed is recreated with the routes of the routed
// containers running on the ship; one whose settings changed is replaced
// (the public port is closed for about a second).
func (d *Driver) ensureProxy(ctx context.Context, t *target, progress func(string)) (string, error) {
	if err := d.ensureNetwork(ctx, t); err != nil {
		return "", err
	}
	want := proxySpec(t.env.Proxy)
	sctx, cancel := short(ctx, t.ship)
	info, err := t.c.ContainerInspect(sctx, ProxyName)
	cancel()
	switch {
	case cerrdefs.IsNotFound(err):
		progress("starting the front proxy")
		rt, err := liveTable(ctx, t)
		if err != nil {
			return "", err
		}
		return d.createProxy(ctx, t, rt, progress)
	case err != nil:
		return "", fmt.Errorf("inspect front proxy: %w", err)
	case info.Config == nil || info.Config.Labels[label.Role] != "proxy":
		return "", fmt.Errorf("ship %s: a container maestro-sync did not make holds the front proxy's name %s: left alone", t.ship.Name, ProxyName)
	case info.Config.Labels[label.ProxySpec] != want:
		rt, err := readTable(ctx, t, info.ID)
		if err != nil {
			return "", err
		}
		// The proxy belongs to the ship: environments that share it
		// must agree on its settings.
		mine := d.Owner.ID + "/" + t.env.Name + "/"
		for _, r := range rt.Routes {
			if !strings.HasPrefix(r.Key, mine) {
				return "", fmt.Errorf("ship %s: the front proxy runs %s on port %s for other environments, and environment %s asks for %s on ports http %d, https %d: give every environment of the ship the same proxy settings",
					t.ship.Name, info.Config.Image, hostPortOf(info), t.env.Name, t.env.Proxy.Image, t.env.Proxy.HTTP, t.env.Proxy.HTTPS)
			}
		}
		progress("upgrading the front proxy (its image or ports changed): its port closes for a moment")
		if err := d.stop(ctx, t, info.ID, 10); err != nil {
			return "", err
		}
		if err := d.removeContainer(ctx, t, info.ID, true); err != nil {
			return "", err
		}
		return d.createProxy(ctx, t, rt, progress)
	case !info.State.Running:
		progress("starting the front proxy")
		sctx, cancel := slow(ctx, t.ship)
		err := t.c.ContainerStart(sctx, info.ID, container.StartOptions{})
		cancel()
		if err != nil {
			return "", fmt.Errorf("start front proxy: %w", err)
		}
		return info.ID, waitProxy(ctx, t, info.ID)
	}
	return info.ID, nil
}

// ensureNetwork creates the proxy network when the ship has none. Docker
// does not refuse two networks of one name created at once, so creations
// are serialised here, and duplicates another process made at the same
// moment are removed but the oldest.
func (d *Driver) ensureNetwork(ctx context.Context, t *target) error {
	d.pool.netMu.Lock()
	defer d.pool.netMu.Unlock()
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	_, err := t.c.NetworkInspect(sctx, ProxyNetwork, network.InspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "ambiguous") {
		return fmt.Errorf("inspect network %s: %w", ProxyNetwork, err)
	}
	if cerrdefs.IsNotFound(err) {
		// Published ports of a user-defined network bind where the
		// network's option says, not where dockerd --ip does for the
		// default bridge: the proxy's public port binds where every
		// other published port of the ship binds.
		opts := map[string]string{}
		if def, err := t.c.NetworkInspect(sctx, "bridge", network.InspectOptions{}); err == nil {
			if ip := def.Options[hostBinding]; ip != "" {
				opts[hostBinding] = ip
			}
		}
		_, err = t.c.NetworkCreate(sctx, ProxyNetwork, network.CreateOptions{Driver: "bridge", Options: opts, Labels: map[string]string{label.Role: "proxy"}})
		if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("create network %s: %w", ProxyNetwork, err)
		}
	}
	list, err := t.c.NetworkList(sctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", ProxyNetwork), filters.Arg("label", label.Role+"=proxy"))})
	if err != nil {
		return fmt.Errorf("list networks %s: %w", ProxyNetwork, err)
	}
	list = slices.DeleteFunc(list, func(n network.Summary) bool { return n.Name != ProxyNetwork })
	slices.SortFunc(list, func(a, b network.Summary) int { return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID)) })
	for _, n := range list[min(1, len(list)):] {
		if err := t.c.NetworkRemove(sctx, n.ID); err != nil {
			return fmt.Errorf("remove duplicate network %s (%s): %w", ProxyNetwork, n.ID[:12], err)
		}
	}
	return nil
}

// createProxy creates and starts the proxy container with the table.
func (d *Driver) createProxy(ctx context.Context, t *target, rt routeTable, progress func(string)) (string, error) {
	p := t.env.Proxy
	if _, err := d.images.ensure(ctx, t, p.Image, d.RefreshImages, progress); err != nil {
		return "", fmt.Errorf("front proxy: %w", err)
	}
	port := nat.Port(strconv.Itoa(proxyHTTPPort) + "/tcp")
	cfg := &container.Config{
		Image: p.Image,
		Cmd:   []string{"caddy", "run", "--config", proxyConfig},
		// Certificates and the internal CA live in the data volume, so
		// that a new proxy container keeps them.
		Env:          []string{"XDG_DATA_HOME=" + proxyData},
		Labels:       map[string]string{label.Role: "proxy", label.ProxySpec: proxySpec(p)},
		ExposedPorts: nat.PortSet{port: {}},
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(ProxyNetwork),
		PortBindings:  nat.PortMap{port: {{HostPort: strconv.Itoa(p.HTTP)}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Mounts:        []mount.Mount{{Type: mount.TypeVolume, Source: ProxyVolume, Target: proxyData}},
	}
	if p.HTTPS != 0 {
		tls := nat.Port(strconv.Itoa(proxyHTTPSPort) + "/tcp")
		cfg.ExposedPorts[tls] = struct{}{}
		host.PortBindings[tls] = []nat.PortBinding{{HostPort: strconv.Itoa(p.HTTPS)}}
	}
	rt.HTTPS = p.HTTPS
	sctx, cancel := slow(ctx, t.ship)
	defer cancel()
	resp, err := t.c.ContainerCreate(sctx, cfg, host, nil, nil, ProxyName)
	if err != nil {
		return "", fmt.Errorf("create front proxy: %w", err)
	}
	if err := writeTable(ctx, t, resp.ID, rt); err != nil {
		d.discard(ctx, t, resp.ID)
		return "", err
	}
	if err := t.c.ContainerStart(sctx, resp.ID, container.StartOptions{}); err != nil {
		d.discard(ctx, t, resp.ID)
		return "", fmt.Errorf("start front proxy (port %d): %w", p.HTTP, err)
	}
	if err := waitProxy(ctx, t, resp.ID); err != nil {
		d.discard(ctx, t, resp.ID)
		return "", err
	}
	return resp.ID, nil
}

// waitProxy waits until the proxy's admin API answers (it loaded its
// configuration), for up to 15 s.
func waitProxy(ctx context.Context, t *target, id string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := reloadProxy(ctx, t, id)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reloadProxy makes Caddy load the configuration file. Caddy keeps its
// listener open across the reload and lets requests in flight on the old
// configuration finish (up to its grace period) before it returns.
func reloadProxy(ctx context.Context, t *target, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*shipTimeout(t.ship)+time.Hour)
	defer cancel()
	e := &execer{c: t.c, id: id}
	code, out, err := e.Exec(ctx, []string{"caddy", "reload", "--config", proxyConfig, "--address", proxyAdmin})
	if err != nil {
		return fmt.Errorf("reload front proxy: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("reload front proxy: exit code %d: %s", code, lastLines(out, 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readTable reads the route table from the proxy container.
func readTable(ctx context.Context, t *target, id string) (routeTable, error) {
	var rt routeTable
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	rc, _, err := t.c.CopyFromContainer(sctx, id, proxyTable)
	if cerrdefs.IsNotFound(err) {
		return rt, nil
	}
	if err != nil {
		return rt, fmt.Errorf("read front proxy routes: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return rt, fmt.Errorf("read front proxy routes: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(tr, maxTableSize))
	if err != nil {
		return rt, fmt.Errorf("read front proxy routes: %w", err)
	}
	if err := json.Unmarshal(data, &rt); err != nil {
		return rt, fmt.Errorf("front proxy routes %s: %w", proxyTable, err)
	}
	return rt, nil
}

// writeTable copies the table, its Caddy configuration and its slot
// files into the proxy container.
func writeTable(ctx context.Context, t *target, id string, rt routeTable) error {
	table, err := json.MarshalIndent(rt, "", "  ")
	if err != nil {
		return err
	}
	files := rt.slotFiles()
	files[proxyTable] = string(table)
	files[proxyConfig] = string(caddyJSON(rt))
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	// Slot files first, the configuration that reads them last.
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")), cmp.Compare(a, b))
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dirs := map[string]bool{}
	for _, name := range names {
		for dir := path.Dir(name); dir != "/" && !dirs[dir]; dir = path.Dir(dir) {
			dirs[dir] = true
		}
	}
	dirList := make([]string, 0, len(dirs))
	for dir := range dirs {
		dirList = append(dirList, dir)
	}
	slices.Sort(dirList) // parents first
	for _, dir := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	for _, name := range names {
		data := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(name, "/"), Mode: 0o644, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	if err := t.c.CopyToContainer(sctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("write front proxy routes: %w", err)
	}
	return nil
}

// liveTable rebuilds the route table from the routed containers running
// on the ship under their instance's name, for a proxy that is created
// while they run.
func liveTable(ctx context.Context, t *target) (routeTable, error) {
	var rt routeTable
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	list, err := t.c.ContainerList(sctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label.Upstream), filters.Arg("status", "running"))})
	if err != nil {
		return rt, fmt.Errorf("list routed containers: %w", err)
	}
	for _, c := range list {
		if len(c.Names) == 0 || strings.TrimPrefix(c.Names[0], "/") != c.Labels[label.Instance] {
			continue
		}
		var r proxyRoute
		if json.Unmarshal([]byte(c.Labels[label.Route]), &r) != nil || r.Key == "" || r.Path == "" {
			continue
		}
		rt.serve(r, c.Labels[label.Instance], c.Labels[label.Upstream])
	}
	return rt, nil
}

// connectProxy attaches a routed container to the proxy network under its
// upstream alias, before it starts.
func (d *Driver) connectProxy(ctx context.Context, t *target, id string) error {
	sctx, cancel := short(ctx, t.ship)
	defer cancel()
	if err := d.ensureNetwork(ctx, t); err != nil {
		return err
	}
	err := t.c.NetworkConnect(sctx, ProxyNetwork, id, &network.EndpointSettings{Aliases: []string{alias(upstream(t.in))}})
	if err != nil {
		return fmt.Errorf("connect to network %s: %w", ProxyNetwork, err)
	}
	return nil
}

// probe waits until the routed port of a running container answers the
// route's health path with 2xx or 3xx, for up to the route's health
// timeout. It connects where the port is published on the ship (a random
// host port: the public port belongs to the proxy).
func (d *Driver) probe(ctx context.Context, t *target, id string, progress func(string)) error {
	sctx, cancel := short(ctx, t.ship)
	info, err := t.c.ContainerInspect(sctx, id)
	cancel()
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return d.probeAt(ctx, t, id, boundPorts(info, t.in)[t.in.Route.Port], progress)
}

// probeAt is probe with the host port known.
func (d *Driver) probeAt(ctx context.Context, t *target, id, port string, progress func(string)) error {
	r := t.in.Route
	if port == "" {
		return fmt.Errorf("proxy health check: port %s is not published", r.Port)
	}
	progress("checking " + r.Health + " before the proxy sends requests")
	client := healthClient(5 * time.Second)
	deadline := time.Now().Add(r.HealthTimeout)
	var last error
	// A container that just started listens within moments: the first
	// attempts come quickly.
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 250*time.Millisecond) {
		err := healthGet(ctx, client, t, port)
		if err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return d.withLogs(ctx, t, id, fmt.Errorf("proxy health check GET %s on port %s: %w (for %s)", r.Health, r.Port, last, r.HealthTimeout))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy health check GET %s: %w (last: %v)", r.Health, ctx.Err(), last)
		case <-time.After(pause):
		}
	}
}

// healthClient is the HTTP client of route health checks: redirects are
// answers, not followed.
func healthClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// healthGet GETs the route's health path once on the ship's host port of
// the instance's container: nil for a 2xx or 3xx answer.
func healthGet(ctx context.Context, client *http.Client, t *target, port string) error {
	url := "http://" + net.JoinHostPort(t.ship.IP, port) + t.in.Route.Health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// hostPortOf is the host port the proxy container publishes its HTTP port
// on, or "?".
func hostPortOf(info container.InspectResponse) string {
	if info.HostConfig != nil {
		if b := info.HostConfig.PortBindings[nat.Port(strconv.Itoa(proxyHTTPPort)+"/tcp")]; len(b) > 0 {
			return b[0].HostPort
		}
	}
	return "?"
}
