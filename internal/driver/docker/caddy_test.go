package docker

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouteTable(t *testing.T) {
	var rt routeTable
	web := proxyRoute{Key: "o/e/web", Hosts: []string{"shop.test"}, Path: "/", Drain: 30}
	rt.put(web, "ms-web-1-a:80", "")
	rt.put(web, "ms-web-2-a:80", "")
	rt.put(proxyRoute{Key: "o/e/api", Path: "/api", Drain: 5}, "ms-api-1-a:80", "")
	// A swap replaces one upstream by another in one change.
	rt.put(web, "ms-web-1-b:80", "ms-web-1-a:80")
	if got, want := rt.route("o/e/web").Upstreams, []string{"ms-web-1-b:80", "ms-web-2-a:80"}; !slices.Equal(got, want) {
		t.Errorf("upstreams after the swap: %v, want %v", got, want)
	}
	if !rt.serves("ms-api-1-a:80") || rt.serves("ms-web-1-a:80") {
		t.Errorf("serves: %+v", rt)
	}
	// A route left without upstreams goes.
	rt.drop("ms-api-1-a:80")
	if rt.route("o/e/api") != nil || len(rt.Routes) != 1 {
		t.Errorf("route without upstreams kept: %+v", rt)
	}
	// Settings follow the latest put; put without settings keeps them.
	rt.put(proxyRoute{Key: "o/e/web", Hosts: []string{"www.test"}, Path: "/", Drain: 1}, "", "")
	rt.put(proxyRoute{Key: "o/e/web"}, "", "ms-web-2-a:80")
	if r := rt.route("o/e/web"); r == nil || !slices.Equal(r.Hosts, []string{"www.test"}) || r.Drain != 1 || len(r.Upstreams) != 1 {
		t.Errorf("route after settings change: %+v", r)
	}
}

func TestCaddyJSON(t *testing.T) {
	rt := routeTable{Routes: []proxyRoute{
		{Key: "o/e/any", Path: "/", Drain: 10, Upstreams: []string{"a:80"}},
		{Key: "o/e/api", Hosts: []string{"shop.test"}, Path: "/api/", Drain: 60, Upstreams: []string{"b:80", "c:80"}},
		{Key: "o/e/web", Hosts: []string{"shop.test"}, Path: "/", Drain: 5, Upstreams: []string{"d:80"}},
	}}
	var cfg struct {
		Admin struct{ Listen string }
		Apps  struct {
			HTTP struct {
				GracePeriod string `json:"grace_period"`
				Servers     map[string]struct {
					Listen []string
					Routes []struct {
						ID     string `json:"@id"`
						Match  []map[string][]string
						Handle []struct {
							Handler   string
							Upstreams []struct{ Dial string }
						}
					}
				}
			}
		}
	}
	if err := json.Unmarshal(caddyJSON(rt), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "localhost:2019" || cfg.Apps.HTTP.GracePeriod != "1m0s" {
		t.Errorf("admin %q, grace period %q", cfg.Admin.Listen, cfg.Apps.HTTP.GracePeriod)
	}
	srv := cfg.Apps.HTTP.Servers["maestro-sync"]
	var got []string
	for _, r := range srv.Routes {
		got = append(got, r.ID)
	}
	// Hosts before none, longer paths first, the 404 last.
	if want := []string{"maestro-sync:o/e/api", "maestro-sync:o/e/web", "maestro-sync:o/e/any", ""}; !slices.Equal(got, want) {
		t.Errorf("route order %v, want %v", got, want)
	}
	if diff := cmp.Diff([]map[string][]string{{"host": {"shop.test"}, "path": {"/api", "/api/*"}}}, srv.Routes[0].Match); diff != "" {
		t.Errorf("api matcher (-want +got):\n%s", diff)
	}
	if srv.Routes[2].Match != nil {
		t.Errorf("a route of every host and path matches %v", srv.Routes[2].Match)
	}
	if h := srv.Routes[0].Handle[0]; h.Handler != "reverse_proxy" || len(h.Upstreams) != 2 || h.Upstreams[1].Dial != "c:80" {
		t.Errorf("api handler %+v", h)
	}
	if srv.Routes[3].Handle[0].Handler != "static_response" {
		t.Errorf("last route %+v", srv.Routes[3])
	}
}
