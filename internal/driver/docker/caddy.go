package docker

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// routeTable is the front proxy's state: what each routed service of
// every environment on the ship is reached by, and which containers serve
// it. It is kept in the proxy container (proxyTable), and the proxy's
// Caddy configuration is computed from it.
type routeTable struct {
	Routes []proxyRoute `json:"routes"`
}

// proxyRoute is one routed service on a ship.
type proxyRoute struct {
	// Key is owner/environment/service.
	Key   string   `json:"key"`
	Hosts []string `json:"hosts,omitempty"`
	Path  string   `json:"path"`
	// Drain is how long requests in flight to a replaced container may
	// take, in seconds.
	Drain int `json:"drain"`
	// Upstreams are the containers serving the route, as alias:port on
	// the proxy network.
	Upstreams []string `json:"upstreams"`
}

// route returns the route of key, or nil.
func (rt *routeTable) route(key string) *proxyRoute {
	for i := range rt.Routes {
		if rt.Routes[i].Key == key {
			return &rt.Routes[i]
		}
	}
	return nil
}

// serves reports whether upstream serves any route.
func (rt *routeTable) serves(upstream string) bool {
	for _, r := range rt.Routes {
		if slices.Contains(r.Upstreams, upstream) {
			return true
		}
	}
	return false
}

// put sets the route's settings from r, adds the upstream add and drops
// the upstream drop (either may be ""). A route left without upstreams
// is removed.
func (rt *routeTable) put(r proxyRoute, add, drop string) {
	cur := rt.route(r.Key)
	if cur == nil {
		rt.Routes = append(rt.Routes, proxyRoute{Key: r.Key})
		cur = &rt.Routes[len(rt.Routes)-1]
	}
	if r.Path != "" {
		cur.Hosts, cur.Path, cur.Drain = r.Hosts, r.Path, r.Drain
	}
	ups := slices.DeleteFunc(slices.Clone(cur.Upstreams), func(u string) bool { return u == drop || u == add })
	if add != "" {
		ups = append(ups, add)
	}
	slices.Sort(ups)
	cur.Upstreams = ups
	rt.compact()
}

// drop removes the upstream from every route.
func (rt *routeTable) drop(upstream string) {
	for i := range rt.Routes {
		rt.Routes[i].Upstreams = slices.DeleteFunc(rt.Routes[i].Upstreams, func(u string) bool { return u == upstream })
	}
	rt.compact()
}

// compact removes routes without upstreams and sorts the rest by key.
func (rt *routeTable) compact() {
	rt.Routes = slices.DeleteFunc(rt.Routes, func(r proxyRoute) bool { return len(r.Upstreams) == 0 })
	slices.SortFunc(rt.Routes, func(a, b proxyRoute) int { return cmp.Compare(a.Key, b.Key) })
}

// Caddy's JSON configuration, the subset maestro-sync writes.
type (
	caddyConfig struct {
		Admin struct {
			Listen string `json:"listen"`
		} `json:"admin"`
		Apps struct {
			HTTP caddyHTTP `json:"http"`
		} `json:"apps"`
	}
	caddyHTTP struct {
		GracePeriod string                 `json:"grace_period,omitempty"`
		Servers     map[string]caddyServer `json:"servers"`
	}
	caddyServer struct {
		Listen         []string     `json:"listen"`
		Routes         []caddyRoute `json:"routes"`
		AutomaticHTTPS struct {
			Disable bool `json:"disable"`
		} `json:"automatic_https"`
	}
	caddyRoute struct {
		ID       string           `json:"@id,omitempty"`
		Match    []map[string]any `json:"match,omitempty"`
		Handle   []map[string]any `json:"handle"`
		Terminal bool             `json:"terminal"`
	}
)

// proxyHTTPPort is where Caddy serves HTTP inside the proxy container.
const proxyHTTPPort = 80

// proxyAdmin is where Caddy's admin API listens, inside the proxy
// container only.
const proxyAdmin = "localhost:2019"

// caddyJSON is the proxy's Caddy configuration for the table: one route
// per routed service, the most specific first (with hosts before without,
// longer paths before shorter), and a 404 for every other request.
// Requests whose upstream cannot be reached are retried on the route's
// other upstreams for a few seconds, so that a container that just
// stopped costs no request.
func caddyJSON(rt routeTable) []byte {
	var cfg caddyConfig
	cfg.Admin.Listen = proxyAdmin
	drain := 0
	routes := slices.Clone(rt.Routes)
	slices.SortStableFunc(routes, func(a, b proxyRoute) int {
		if (len(a.Hosts) > 0) != (len(b.Hosts) > 0) {
			if len(a.Hosts) > 0 {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(len(b.Path), len(a.Path)); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	srv := caddyServer{Listen: []string{":" + strconv.Itoa(proxyHTTPPort)}}
	srv.AutomaticHTTPS.Disable = true
	for _, r := range routes {
		drain = max(drain, r.Drain)
		match := map[string]any{}
		if len(r.Hosts) > 0 {
			match["host"] = r.Hosts
		}
		if p := strings.TrimSuffix(r.Path, "/"); p != "" {
			match["path"] = []string{p, p + "/*"}
		}
		ups := make([]map[string]string, len(r.Upstreams))
		for i, u := range r.Upstreams {
			ups[i] = map[string]string{"dial": u}
		}
		cr := caddyRoute{
			ID: "maestro-sync:" + r.Key,
			Handle: []map[string]any{{
				"handler":   "reverse_proxy",
				"upstreams": ups,
				"load_balancing": map[string]any{
					"selection_policy": map[string]string{"policy": "round_robin"},
					"try_duration":     "5s",
					"try_interval":     "100ms",
				},
				"health_checks": map[string]any{
					"passive": map[string]any{"fail_duration": "2s"},
				},
			}},
			Terminal: true,
		}
		if len(match) > 0 {
			cr.Match = []map[string]any{match}
		}
		srv.Routes = append(srv.Routes, cr)
	}
	srv.Routes = append(srv.Routes, caddyRoute{
		Handle:   []map[string]any{{"handler": "static_response", "status_code": 404, "body": "no route\n"}},
		Terminal: true,
	})
	cfg.Apps.HTTP.Servers = map[string]caddyServer{"maestro-sync": srv}
	if drain > 0 {
		cfg.Apps.HTTP.GracePeriod = (time.Duration(drain) * time.Second).String()
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic("docker: caddy config: " + err.Error()) // plain values only
	}
	return data
}
