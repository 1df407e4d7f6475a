package manifest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Route is how the front proxy of a ship reaches a service's instances: a
// maestro-sync extension (the service key proxy). A routed instance's
// replacement runs beside the old container, the proxy switches new
// requests to it once it is healthy, and the old container stops only
// once its requests are done.
type Route struct {
	// Hosts are the host names routed to the service; none means any
	// host the other routes of the ship do not claim.
	Hosts []string `json:"hosts,omitempty"`
	// Port is the name of the instance port the proxy forwards to.
	Port string `json:"port"`
	// Path is the path prefix routed, "/" for all.
	Path string `json:"path"`
	// Health is the HTTP path that must answer 2xx or 3xx before the
	// proxy sends requests to a new container.
	Health string `json:"health"`
	// HealthTimeout bounds how long a new container may take to become
	// healthy.
	HealthTimeout time.Duration `json:"health_timeout"`
	// Drain is how long requests in flight to a replaced container may
	// take to finish before it is stopped.
	Drain time.Duration `json:"drain"`
	// TLS is "off" (plain HTTP), "auto" (HTTPS with certificates from
	// ACME: Let's Encrypt, then ZeroSSL) or "internal" (HTTPS with
	// certificates of the proxy's own CA). With HTTPS, plain HTTP requests
	// are redirected to it.
	TLS string `json:"tls"`
	// Own is set when the instance has a proxy key of its own: its
	// route is apart from the service's in the proxy. It is part of the
	// spec, so that an instance that takes a route of its own (or gives
	// it up) is swapped onto it.
	Own bool `json:"own,omitempty"`
	// Keep is how many previous containers of each instance are kept
	// stopped after a replacement, for maestro-sync rollback. It does not
	// shape the container: it is left out of the spec.
	Keep int `json:"-"`
}

// Proxy is an environment's front proxy settings (the top-level key
// proxy): the container maestro-sync runs on each ship that hosts a routed
// service.
type Proxy struct {
	// Image is the proxy's image: Caddy 2, with busybox for the
	// checks run inside it.
	Image string `json:"image"`
	// HTTP is the host port where the proxy serves plain HTTP.
	HTTP int `json:"http"`
	// HTTPS is the host port where the proxy serves HTTPS, for the
	// routes with tls; 0 when it serves none.
	HTTPS int `json:"https,omitempty"`
}

// TLS modes of a route.
const (
	TLSOff      = "off"
	TLSAuto     = "auto"
	TLSInternal = "internal"
)

// Proxy defaults.
const (
	DefaultProxyImage    = "caddy:2"
	DefaultProxyHTTP     = 80
	defaultHealth        = "/up"
	defaultHealthTimeout = 30 * time.Second
	defaultDrain         = 30 * time.Second
	maxDrain             = time.Hour
	maxRouteHosts        = 100
	defaultKeep          = 1
	maxKeep              = 5
)

var (
	routeKeys = []string{"hosts", "port", "path", "health", "health_timeout", "drain", "tls", "keep"}
	proxyKeys = []string{"image", "http", "https"}
	// hostName is a DNS name, optionally with a leading wildcard label.
	hostName = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// routePath is a path prefix the proxy can match literally.
	routePath = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$`)
)

// proxySettings decodes the environment's proxy section.
func (b *builder) proxySettings(f *fields) {
	b.env.Proxy = Proxy{Image: DefaultProxyImage, HTTP: DefaultProxyHTTP}
	e, ok := f.get("proxy")
	if !ok {
		return
	}
	pf, ok := b.fields(e.V, "proxy", proxyKeys)
	if !ok {
		return
	}
	if v, ok := b.str(pf, "image"); ok {
		if err := checkImage(v); err != nil {
			pe, _ := pf.get("image")
			b.errorf(pe.V, pf.sub("image"), "%v", err)
		}
		b.env.Proxy.Image = v
	}
	for _, key := range []string{"http", "https"} {
		v, ok := b.integer(pf, key)
		if !ok {
			continue
		}
		if v < 1 || v > 65535 {
			pe, _ := pf.get(key)
			b.errorf(pe.V, pf.sub(key), "%s must be a port number (1-65535), got %d", key, v)
		}
		if key == "http" {
			b.env.Proxy.HTTP = int(v)
		} else {
			b.env.Proxy.HTTPS = int(v)
		}
	}
	if p := b.env.Proxy; p.HTTP == p.HTTPS {
		pe, _ := pf.get("https")
		b.errorf(pe.V, pf.sub("https"), "https and http are both port %d: they need a port each", p.HTTP)
	}
}

// route decodes a service's proxy key.
func (b *builder) route(sd *serviceDraft) {
	e, ok := sd.f.get("proxy")
	if !ok {
		return
	}
	sd.route, sd.routePortNode = b.parseRoute(e, sd.f.sub("proxy"), nil)
	sd.routeNode = e.K
}

// parseRoute decodes the proxy key e at path p, over base (the service's
// route, for an instance's key: the keys it sets replace the service's)
// or the defaults. It returns nil when e is not a mapping, and the node
// that names the route's port.
func (b *builder) parseRoute(e entry, p string, base *Route) (*Route, *yaml.Node) {
	f, ok := b.fields(e.V, p, routeKeys)
	if !ok {
		return nil, nil
	}
	r := &Route{Path: "/", Health: defaultHealth, HealthTimeout: defaultHealthTimeout, Drain: defaultDrain, TLS: TLSOff, Keep: defaultKeep}
	if base != nil {
		*r = *base
	}
	if hosts, ok := b.hosts(f); ok {
		r.Hosts = hosts
	}
	if v, ok := b.str(f, "port"); ok {
		r.Port = v
	}
	portNode := e.K
	if pe, ok := f.get("port"); ok {
		portNode = pe.V
	}
	for _, key := range []string{"path", "health"} {
		v, ok := b.str(f, key)
		if !ok {
			continue
		}
		if !routePath.MatchString(v) || len(v) > 1024 {
			pe, _ := f.get(key)
			b.errorf(pe.V, f.sub(key), "%s must be a path starting with / (letters, digits and -._~!$&'()+,;=:@%%/), got %q", key, v)
			continue
		}
		if key == "path" {
			r.Path = v
		} else {
			r.Health = v
		}
	}
	if v, ok := b.integer(f, "keep"); ok {
		if v < 0 || v > maxKeep {
			ke, _ := f.get("keep")
			b.errorf(ke.V, f.sub("keep"), "keep must be between 0 and %d, got %d", maxKeep, v)
		}
		r.Keep = int(min(max(v, 0), maxKeep))
	}
	r.HealthTimeout = b.duration(f, "health_timeout", r.HealthTimeout, maxDrain)
	r.Drain = b.duration(f, "drain", r.Drain, maxDrain)
	if v, ok := b.str(f, "tls"); ok {
		if v != TLSOff && v != TLSAuto && v != TLSInternal {
			te, _ := f.get("tls")
			b.errorf(te.V, f.sub("tls"), "tls must be off, auto or internal, got %q", v)
			v = TLSOff
		}
		r.TLS = v
	}
	if r.TLS != TLSOff {
		n, at := e.K, p
		if te, ok := f.get("tls"); ok {
			n, at = te.V, f.sub("tls")
		}
		b.routeTLS(n, at, r.TLS, r.Hosts)
	}
	return r, portNode
}

// routeTLS checks a route's HTTPS: it names its hosts (certificates are
// issued per name), ACME cannot issue wildcards over HTTP, and the proxy
// must have an HTTPS port.
func (b *builder) routeTLS(n *yaml.Node, path, mode string, hosts []string) {
	switch {
	case len(hosts) == 0:
		b.errorf(n, path, "tls: %s needs hosts: certificates are issued for host names", mode)
	case b.env.Proxy.HTTPS == 0:
		b.errorf(n, path, "tls: %s needs the front proxy's HTTPS port: set it at the top level, e.g. proxy: {https: 443}", mode)
	}
	for _, h := range hosts {
		if mode == TLSAuto && strings.HasPrefix(h, "*.") {
			b.errorf(n, path, "tls: auto cannot get a certificate for the wildcard host %q (ACME needs a DNS challenge for it): use tls: internal, or name the hosts", h)
		}
	}
}

// duration decodes a duration given as Go text ("30s", "1m30s") or as a
// number of seconds, between 0 and limit.
func (b *builder) duration(f *fields, key string, def, limit time.Duration) time.Duration {
	e, ok := f.get(key)
	if !ok {
		return def
	}
	s, ok := b.scalar(e.V, f.sub(key), "a duration")
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	switch {
	case err != nil:
		b.errorf(e.V, f.sub(key), "expected a duration such as 30s or 2m, got %q", s)
		return def
	case d < 0 || d > limit:
		b.errorf(e.V, f.sub(key), "%s must be between 0s and %s, got %s", key, limit, d)
		return def
	}
	return d
}

// routeInstance checks a routed instance against its route and sets its
// Route: the port must be one TCP port of the instance, and the instance
// must be on a bridge network the proxy can join.
func (b *builder) routeInstance(sd *serviceDraft, id *instanceDraft) {
	r, node, portNode, p := sd.route, sd.routeNode, sd.routePortNode, sd.f.sub("proxy")
	if e, ok := id.f.get("proxy"); ok {
		p, node = id.f.sub("proxy"), e.K
		if r, portNode = b.parseRoute(e, p, sd.route); r != nil {
			r.Own = true
		}
		id.routeNode = node
	}
	if r == nil {
		return
	}
	in := id.in
	if in.Net != "" && in.Net != "bridge" {
		b.errorf(node, p, "instance %s uses net %q: a routed instance must be on a bridge network, which the proxy joins", in.Name, in.Net)
		return
	}
	rr := *r
	if rr.Port == "" {
		var tcp []string
		for _, port := range in.Ports {
			if port.Protocol() == "tcp" {
				tcp = append(tcp, port.Name)
			}
		}
		switch len(tcp) {
		case 1:
			rr.Port = tcp[0]
		case 0:
			b.errorf(node, join(p, "port"), "instance %s has no TCP port for the proxy to forward to: declare one in ports", in.Name)
			return
		default:
			b.errorf(node, join(p, "port"), "instance %s has %d TCP ports (%s): name the one the proxy forwards to with port",
				in.Name, len(tcp), strings.Join(tcp, ", "))
			return
		}
	}
	port := in.Port(rr.Port)
	switch {
	case port == nil:
		b.errorf(portNode, join(p, "port"), "instance %s has no port %q (ports: %s)", in.Name, rr.Port, strings.Join(in.portNames(), ", "))
		return
	case port.Protocol() != "tcp":
		b.errorf(portNode, join(p, "port"), "port %q of instance %s is %s: the proxy forwards TCP (HTTP) only", rr.Port, in.Name, port.Protocol())
		return
	case strings.Contains(port.ExposedPort(), "-"):
		b.errorf(portNode, join(p, "port"), "port %q of instance %s is a range: the proxy forwards to one port", rr.Port, in.Name)
		return
	}
	in.Route = &rr
}

// portNames lists the instance's port names.
func (in *Instance) portNames() []string {
	names := make([]string, len(in.Ports))
	for i, p := range in.Ports {
		names[i] = p.Name
	}
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

// routeClashes reports two services of the environment that claim the
// same host and path on one ship: the proxy could not tell them apart.
func (b *builder) routeClashes() {
	type claim struct{ ship, host, path string }
	owner := map[claim]string{}
	reported := map[string]bool{}
	for _, sd := range b.services {
		for _, id := range sd.instances {
			r := id.in.Route
			if r == nil {
				continue
			}
			// Instances with the service's route share it; one with its
			// own route is apart.
			name, node, p := sd.svc.Name, sd.routeNode, sd.f.sub("proxy")
			if r.Own {
				name, node, p = "instance "+id.in.Name, id.routeNode, id.f.sub("proxy")
			}
			hosts := r.Hosts
			if len(hosts) == 0 {
				hosts = []string{"*any*"}
			}
			for _, h := range hosts {
				c := claim{id.in.Ship, h, r.Path}
				other, ok := owner[c]
				if !ok {
					owner[c] = name
					continue
				}
				if other == name || reported[name+"\x00"+other+"\x00"+h+"\x00"+c.ship] {
					continue
				}
				reported[name+"\x00"+other+"\x00"+h+"\x00"+c.ship] = true
				what := "host " + h
				if h == "*any*" {
					what = "every host"
				}
				b.errorf(node, p, "%s routes %s, path %s on ship %s, as %s does: give one of them other hosts or another path",
					routeOwner(name), what, r.Path, id.in.Ship, routeOwner(other))
			}
		}
	}
}

// routeOwner names a route's owner in a message: a service, or an
// instance with a route of its own.
func routeOwner(name string) string {
	if strings.HasPrefix(name, "instance ") {
		return name
	}
	return "service " + name
}

// Routed reports whether any instance of the environment is behind the
// front proxy.
func (e *Environment) Routed() bool {
	for _, in := range e.Instances() {
		if in.Route != nil {
			return true
		}
	}
	return false
}

// Rollout is a service's staged rollout (the service key rollout): its
// instances are replaced a batch at a time, and each batch must keep
// running and healthy for Bake before the next one starts; a batch that
// fails is swapped back to its previous containers and the rollout stops.
type Rollout struct {
	// Batch is the number of instances per batch, or, when Percent is
	// set, 0.
	Batch int `json:"batch,omitempty"`
	// Percent is the batch size as a percentage of the instances.
	Percent int           `json:"percent,omitempty"`
	Bake    time.Duration `json:"bake"`
}

// Size returns the batch size for n instances: at least 1.
func (r Rollout) Size(n int) int {
	if r.Percent > 0 {
		return max(1, (n*r.Percent+99)/100)
	}
	return max(1, r.Batch)
}

var rolloutKeys = []string{"batch", "bake"}

// rollout decodes a service's rollout key: it needs the front proxy (a
// failed batch swaps back to the containers the proxy kept).
func (b *builder) rollout(sd *serviceDraft) {
	e, ok := sd.f.get("rollout")
	if !ok {
		return
	}
	p := sd.f.sub("rollout")
	f, ok := b.fields(e.V, p, rolloutKeys)
	if !ok {
		return
	}
	r := &Rollout{Batch: 1}
	if be, ok := f.get("batch"); ok {
		v, _ := b.scalar(be.V, f.sub("batch"), "a number or a percentage")
		if pct, isPct := strings.CutSuffix(strings.TrimSpace(v), "%"); isPct {
			n, err := strconv.Atoi(pct)
			if err != nil || n < 1 || n > 100 {
				b.errorf(be.V, f.sub("batch"), "batch must be a number of instances or a percentage from 1%% to 100%%, got %q", v)
			}
			r.Batch, r.Percent = 0, n
		} else if n, err := strconv.Atoi(v); err != nil || n < 1 {
			b.errorf(be.V, f.sub("batch"), "batch must be a number of instances or a percentage from 1%% to 100%%, got %q", v)
		} else {
			r.Batch = n
		}
	}
	r.Bake = b.duration(f, "bake", 0, maxDrain)
	switch {
	case sd.route == nil:
		b.errorf(e.K, p, "rollout needs proxy: a failed batch is swapped back to its previous containers through the front proxy")
	case sd.route.Keep == 0:
		b.errorf(e.K, p, "rollout needs proxy.keep of 1 or more: a failed batch is swapped back to the containers kept")
	}
	sd.svc.Rollout = r
}

// hosts decodes f's hosts key: DNS names (a leading wildcard label
// allowed), lower-cased without a trailing dot, sorted, at most
// maxRouteHosts.
func (b *builder) hosts(f *fields) ([]string, bool) {
	hosts, ok := b.stringList(f, "hosts")
	if !ok {
		return nil, false
	}
	he, _ := f.get("hosts")
	if len(hosts) > maxRouteHosts {
		b.errorf(he.V, f.sub("hosts"), "at most %d hosts per service", maxRouteHosts)
	}
	var out []string
	for i, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !hostName.MatchString(h) || len(h) > 253 {
			b.errorf(he.V, fmt.Sprintf("%s[%d]", f.sub("hosts"), i), "invalid host name %q", hosts[i])
			continue
		}
		out = append(out, h)
	}
	return sortedSet(out), true
}
