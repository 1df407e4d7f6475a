package manifest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const routedEnv = `__maestro: {schema: 2}
name: shop
ships:
  vm1: {ip: 10.0.0.1}
  vm2: {ip: 10.0.0.2}
proxy: {image: registry.example.com/caddy:2.11, http: 8000}
services:
  web:
    image: shop/web:1.4
    ports: {http: "80:8080", metrics: "9100/udp"}
    proxy: {hosts: [Shop.Example.com., www.example.com], path: /shop, health: /healthz, drain: 45, health_timeout: 1m}
    instances:
      web-1: {ship: vm1}
      web-2: {ship: vm2}
  db:
    image: postgres:16
    ports: {pg: 5432}
    instances:
      db-1: {ship: vm1}
`

func TestProxyKeys(t *testing.T) {
	env := mustEnv(t, routedEnv)
	if env.Proxy != (Proxy{Image: "registry.example.com/caddy:2.11", HTTP: 8000}) {
		t.Errorf("proxy settings %+v", env.Proxy)
	}
	r := env.Instance("web-2").Route
	if r == nil {
		t.Fatal("web-2 is not routed")
	}
	want := Route{Hosts: []string{"shop.example.com", "www.example.com"}, Port: "http", Path: "/shop", Health: "/healthz",
		HealthTimeout: time.Minute, Drain: 45 * time.Second, TLS: "off"}
	if !slices.Equal(r.Hosts, want.Hosts) || r.Port != want.Port || r.Path != want.Path || r.Health != want.Health ||
		r.HealthTimeout != want.HealthTimeout || r.Drain != want.Drain || r.TLS != want.TLS {
		t.Errorf("route %+v, want %+v", *r, want)
	}
	if env.Instance("db-1").Route != nil || !env.Routed() {
		t.Errorf("db-1 routed %v, environment routed %v", env.Instance("db-1").Route, env.Routed())
	}
	// Defaults, as Kamal's: /up, 30 s.
	def := mustEnv(t, `__maestro: {schema: 2}
name: shop
ships: {vm1: {ip: 10.0.0.1}}
services:
  web:
    image: shop/web:1.4
    ports: {http: 8080}
    proxy: {}
    instances: {web-1: {ship: vm1}}
`)
	if env := def; env.Proxy != (Proxy{Image: DefaultProxyImage, HTTP: 80}) {
		t.Errorf("default proxy settings %+v", env.Proxy)
	}
	if r := def.Instance("web-1").Route; r == nil || r.Port != "http" || r.Path != "/" || r.Health != "/up" || r.Drain != 30*time.Second || len(r.Hosts) != 0 {
		t.Errorf("default route %+v", r)
	}
}

// A route is part of the spec, so a change of it reaches the proxy; an
// environment without routes keeps the hashes it had before routes
// existed.
func TestProxySpecHash(t *testing.T) {
	plain := `__maestro: {schema: 2}
name: shop
ships: {vm1: {ip: 10.0.0.1}}
services:
  web:
    image: shop/web:1.4
    ports: {http: 8080}
    instances: {web-1: {ship: vm1}}
`
	before := hashOf(t, plain)
	if again := hashOf(t, plain+"proxy: {http: 8080}\n"); again != before {
		t.Errorf("proxy settings alone changed the hash of an unrouted instance")
	}
	routed := hashOf(t, strings.Replace(plain, "    ports: {http: 8080}\n", "    ports: {http: 8080}\n    proxy: {hosts: [a.test]}\n", 1))
	other := hashOf(t, strings.Replace(plain, "    ports: {http: 8080}\n", "    ports: {http: 8080}\n    proxy: {hosts: [b.test]}\n", 1))
	if routed == before || other == routed {
		t.Errorf("hashes: unrouted %s, a.test %s, b.test %s", before, routed, other)
	}
}

func TestRolloutKeys(t *testing.T) {
	env := mustEnv(t, strings.Replace(routedEnv, "    instances:\n      web-1", "    rollout: {batch: 25%, bake: 1m}\n    instances:\n      web-1", 1))
	r := env.Service("web").Rollout
	if r == nil || r.Percent != 25 || r.Bake != time.Minute {
		t.Fatalf("rollout %+v", r)
	}
	for n, want := range map[int]int{1: 1, 2: 1, 4: 1, 5: 2, 8: 2, 9: 3} {
		if got := r.Size(n); got != want {
			t.Errorf("25%% of %d instances: batches of %d, want %d", n, got, want)
		}
	}
	if got := (Rollout{Batch: 3}).Size(10); got != 3 {
		t.Errorf("batch 3 of 10: %d", got)
	}
}

// TestInstanceProxy: an instance's proxy key replaces the keys it sets of
// the service's route and sets its route apart; an instance may be routed
// when its service is not; and an instance route that claims what another
// route of its ship claims is an error at the instance's key.
func TestInstanceProxy(t *testing.T) {
	env := mustEnv(t, strings.Replace(routedEnv, "      web-2: {ship: vm2}", "      web-2: {ship: vm2, proxy: {hosts: [beta.example.com], drain: 5s}}", 1))
	web1, web2 := env.Instance("web-1").Route, env.Instance("web-2").Route
	if web1 == nil || web1.Own || !slices.Equal(web1.Hosts, []string{"shop.example.com", "www.example.com"}) {
		t.Errorf("web-1 route %+v, want the service's", web1)
	}
	if web2 == nil || !web2.Own || !slices.Equal(web2.Hosts, []string{"beta.example.com"}) || web2.Drain != 5*time.Second ||
		web2.Path != "/shop" || web2.Health != "/healthz" || web2.HealthTimeout != time.Minute {
		t.Errorf("web-2 route %+v, want beta.example.com with the service's other keys and drain 5s", web2)
	}
	db := mustEnv(t, strings.Replace(routedEnv, "      db-1: {ship: vm1}", "      db-1: {ship: vm1, proxy: {hosts: [db.example.com]}}", 1)).Instance("db-1").Route
	if db == nil || db.Port != "pg" || db.Path != "/" || !db.Own {
		t.Errorf("db-1 route %+v, want its own with the defaults", db)
	}

	repo := loadText(t, strings.Replace(routedEnv, "      db-1: {ship: vm1}", "      db-1: {ship: vm1, proxy: {hosts: [www.example.com], path: /shop}}", 1))
	errs := messages(repo, SeverityError)
	if len(errs) != 1 || !strings.Contains(errs[0], "manifest.yml:19:25:") ||
		!strings.Contains(errs[0], "services.db.instances.db-1.proxy: instance db-1 routes host www.example.com, path /shop on ship vm1, as service web does") {
		t.Errorf("errors: %q", errs)
	}
}
