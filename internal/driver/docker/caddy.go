package docker

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// routeTable is the front proxy's state: what each routed service of
// every environment on the ship is reached by, and which container serves
// each of its instances. It is kept in the proxy container (proxyTable);
// the proxy's Caddy configuration and its slot files are computed from it.
//
// Each instance is a slot of its route: Caddy dials the address written
// in the slot's file (a {file.*} placeholder, read for every request), so
// that a swap rewrites one file and never reloads Caddy. A reload, which
// opens the listening socket anew, happens only when routes or slots come
// or go.
type routeTable struct {
	Routes []proxyRoute `json:"routes"`
	// HTTPS is the ship's public HTTPS port of the proxy, 0 for none:
	// plain HTTP requests for a route with TLS are redirected there.
	HTTPS int `json:"https,omitempty"`
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
	// TLS is the route's manifest.TLSAuto or manifest.TLSInternal, ""
	// for plain HTTP.
	TLS string `json:"tls,omitempty"`
	// Slots maps each instance on the ship to the container serving it,
	// as alias:port on the proxy network; "" while it serves none.
	Slots map[string]string `json:"slots,omitempty"`
}

// refused is what an empty slot's file holds: an address inside the proxy
// container where nothing listens, so that a request tried there fails at
// once and is retried on another slot.
const refused = "127.0.0.1:1"

// route returns the route of key, or nil.
func (rt *routeTable) route(key string) *proxyRoute {
	for i := range rt.Routes {
		if rt.Routes[i].Key == key {
			return &rt.Routes[i]
		}
	}
	return nil
}

// serves reports whether upstream serves any slot.
func (rt *routeTable) serves(upstream string) bool {
	for _, r := range rt.Routes {
		for _, up := range r.Slots {
			if up == upstream {
				return true
			}
		}
	}
	return false
}

// serve sets the route's settings from r and puts upstream in the
// instance's slot. An instance that moves to another route of its
// environment (it takes a proxy key of its own, or gives it up) leaves
// its former one.
func (rt *routeTable) serve(r proxyRoute, instance, upstream string) {
	env := envPrefix(r.Key)
	for i := range rt.Routes {
		if rt.Routes[i].Key != r.Key && envPrefix(rt.Routes[i].Key) == env {
			delete(rt.Routes[i].Slots, instance)
		}
	}
	rt.Routes = slices.DeleteFunc(rt.Routes, func(x proxyRoute) bool {
		return len(x.Slots) == 0 && x.Key != r.Key && envPrefix(x.Key) == env
	})
	cur := rt.route(r.Key)
	if cur == nil {
		rt.Routes = append(rt.Routes, proxyRoute{Key: r.Key})
		cur = &rt.Routes[len(rt.Routes)-1]
	}
	cur.Hosts, cur.Path, cur.Drain, cur.TLS = r.Hosts, r.Path, r.Drain, r.TLS
	if cur.Slots == nil {
		cur.Slots = map[string]string{}
	}
	cur.Slots[instance] = upstream
	slices.SortFunc(rt.Routes, func(a, b proxyRoute) int { return cmp.Compare(a.Key, b.Key) })
}

// envPrefix is the owner/environment/ part of a route key.
func envPrefix(key string) string {
	owner, rest, _ := strings.Cut(key, "/")
	env, _, _ := strings.Cut(rest, "/")
	return owner + "/" + env + "/"
}

// unserve empties every slot that upstream serves.
func (rt *routeTable) unserve(upstream string) {
	for i := range rt.Routes {
		for inst, up := range rt.Routes[i].Slots {
			if up == upstream {
				rt.Routes[i].Slots[inst] = ""
			}
		}
	}
}

// compact removes empty slots, and routes left without slots.
func (rt *routeTable) compact() {
	for i := range rt.Routes {
		for inst, up := range rt.Routes[i].Slots {
			if up == "" {
				delete(rt.Routes[i].Slots, inst)
			}
		}
	}
	rt.Routes = slices.DeleteFunc(rt.Routes, func(r proxyRoute) bool { return len(r.Slots) == 0 })
}

// slotFile is the file holding the address of a slot.
func slotFile(key, instance string) string {
	sum := sha256.Sum256([]byte(key))
	return proxyDir + "/slots/" + hex.EncodeToString(sum[:8]) + "/" + instance
}

// slotFiles are the contents of every slot file of the table.
func (rt *routeTable) slotFiles() map[string]string {
	out := map[string]string{}
	for _, r := range rt.Routes {
		for inst, up := range r.Slots {
			if up == "" {
				up = refused
			}
			out[slotFile(r.Key, inst)] = up + "\n"
		}
	}
	return out
}

// Caddy's JSON configuration, the subset maestro-sync writes.
type (
	caddyConfig struct {
		Admin struct {
			Listen string `json:"listen"`
		} `json:"admin"`
		Apps struct {
			HTTP caddyHTTP `json:"http"`
			TLS  *caddyTLS `json:"tls,omitempty"`
			PKI  any       `json:"pki,omitempty"`
		} `json:"apps"`
	}
	caddyTLS struct {
		Automation struct {
			Policies []caddyTLSPolicy `json:"policies"`
		} `json:"automation"`
	}
	caddyTLSPolicy struct {
		Subjects []string         `json:"subjects"`
		Issuers  []map[string]any `json:"issuers"`
	}
	caddyHTTP struct {
		GracePeriod string                 `json:"grace_period,omitempty"`
		Servers     map[string]caddyServer `json:"servers"`
	}
	caddyServer struct {
		Listen         []string     `json:"listen"`
		Routes         []caddyRoute `json:"routes"`
		AutomaticHTTPS struct {
			Disable          bool `json:"disable,omitempty"`
			DisableRedirects bool `json:"disable_redirects,omitempty"`
		} `json:"automatic_https"`
	}
	caddyRoute struct {
		ID       string           `json:"@id,omitempty"`
		Match    []map[string]any `json:"match,omitempty"`
		Handle   []map[string]any `json:"handle"`
		Terminal bool             `json:"terminal"`
	}
)

// proxyHTTPPort and proxyHTTPSPort are where Caddy serves HTTP and HTTPS
// inside the proxy container (Caddy's own defaults).
const (
	proxyHTTPPort  = 80
	proxyHTTPSPort = 443
)

// proxyAdmin is where Caddy's admin API listens, inside the proxy
// container only.
const proxyAdmin = "localhost:2019"

// caddyJSON is the proxy's Caddy configuration for the table: one route
// per routed service, the most specific first (with hosts before without,
// longer paths before shorter), and a 404 for every other request.
// Requests whose slot cannot be reached are retried on the route's other
// slots for a few seconds, so that an empty slot costs no request.
//
// Routes with TLS are served by a second server on the HTTPS port, whose
// host names Caddy gets certificates for (automatic HTTPS: ACME, or its
// own CA for internal ones); on plain HTTP they redirect to it. Caddy
// answers ACME's HTTP challenges on the HTTP server itself.
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
	plain := caddyServer{Listen: []string{":" + strconv.Itoa(proxyHTTPPort)}}
	plain.AutomaticHTTPS.Disable = true
	secure := caddyServer{Listen: []string{":" + strconv.Itoa(proxyHTTPSPort)}}
	secure.AutomaticHTTPS.DisableRedirects = true
	var internal []string
	for _, r := range routes {
		drain = max(drain, r.Drain)
		cr := caddyRoute{ID: "maestro-sync:" + r.Key, Handle: []map[string]any{proxyHandler(r)}, Terminal: true}
		if m := routeMatch(r); m != nil {
			cr.Match = []map[string]any{m}
		}
		if r.TLS == "" || rt.HTTPS == 0 {
			plain.Routes = append(plain.Routes, cr)
			continue
		}
		secure.Routes = append(secure.Routes, cr)
		if r.TLS == manifest.TLSInternal {
			internal = append(internal, r.Hosts...)
		}
		port := ""
		if rt.HTTPS != 443 {
			port = ":" + strconv.Itoa(rt.HTTPS)
		}
		plain.Routes = append(plain.Routes, caddyRoute{
			Match: cr.Match,
			Handle: []map[string]any{{
				"handler":     "static_response",
				"status_code": 308,
				"headers":     map[string][]string{"Location": {"https://{http.request.host}" + port + "{http.request.uri}"}},
			}},
			Terminal: true,
		})
	}
	notFound := caddyRoute{
		Handle:   []map[string]any{{"handler": "static_response", "status_code": 404, "body": "no route\n"}},
		Terminal: true,
	}
	plain.Routes = append(plain.Routes, notFound)
	cfg.Apps.HTTP.Servers = map[string]caddyServer{"maestro-sync": plain}
	if len(secure.Routes) > 0 {
		secure.Routes = append(secure.Routes, notFound)
		cfg.Apps.HTTP.Servers["maestro-sync-tls"] = secure
		// The proxy's own CA is never installed into a trust store.
		cfg.Apps.PKI = map[string]any{"certificate_authorities": map[string]any{"local": map[string]any{"install_trust": false}}}
	}
	if len(internal) > 0 {
		slices.Sort(internal)
		cfg.Apps.TLS = &caddyTLS{}
		cfg.Apps.TLS.Automation.Policies = []caddyTLSPolicy{{Subjects: slices.Compact(internal), Issuers: []map[string]any{{"module": "internal"}}}}
	}
	if drain > 0 {
		cfg.Apps.HTTP.GracePeriod = (time.Duration(drain) * time.Second).String()
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic("docker: caddy config: " + err.Error()) // plain values only
	}
	return data
}

// routeMatch is the Caddy matcher of a route's hosts and path, nil for
// every request.
func routeMatch(r proxyRoute) map[string]any {
	match := map[string]any{}
	if len(r.Hosts) > 0 {
		match["host"] = r.Hosts
	}
	if p := strings.TrimSuffix(r.Path, "/"); p != "" {
		match["path"] = []string{p, p + "/*"}
	}
	if len(match) == 0 {
		return nil
	}
	return match
}

// proxyHandler is the reverse_proxy handler of a route: round robin over
// its slots, each dialled at the address its slot file holds.
func proxyHandler(r proxyRoute) map[string]any {
	insts := make([]string, 0, len(r.Slots))
	for inst := range r.Slots {
		insts = append(insts, inst)
	}
	slices.Sort(insts)
	ups := make([]map[string]string, len(insts))
	for i, inst := range insts {
		ups[i] = map[string]string{"dial": "{file." + slotFile(r.Key, inst) + "}"}
	}
	return map[string]any{
		"handler":   "reverse_proxy",
		"upstreams": ups,
		// Idle connections to a container close soon, so that the
		// connections left to a replaced one are its requests in flight
		// (see drain).
		"transport": map[string]any{"protocol": "http", "keep_alive": map[string]string{"idle_timeout": "2s"}},
		"load_balancing": map[string]any{
			"selection_policy": map[string]string{"policy": "round_robin"},
			"try_duration":     "5s",
			"try_interval":     "10ms",
		},
		"health_checks": map[string]any{
			"passive": map[string]any{"fail_duration": "1s"},
		},
	}
}
