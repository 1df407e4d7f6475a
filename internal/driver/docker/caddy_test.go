package docker

import (
	"encoding/json"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouteTable(t *testing.T) {
	var rt routeTable
	web := proxyRoute{Key: "o/e/web", Hosts: []string{"shop.test"}, Path: "/", Drain: 30}
	rt.serve(web, "web-1", "ms-web-1-a:80")
	rt.serve(web, "web-2", "ms-web-2-a:80")
	rt.serve(proxyRoute{Key: "o/e/api", Path: "/api", Drain: 5}, "api-1", "ms-api-1-a:80")
	before := caddyJSON(rt)
	// A swap puts another container in the instance's slot: Caddy's
	// configuration is unchanged (no reload), only the slot's file.
	rt.serve(web, "web-1", "ms-web-1-b:80")
	if string(caddyJSON(rt)) != string(before) {
		t.Errorf("a swap changed the Caddy configuration")
	}
	files := rt.slotFiles()
	if got := files[slotFile("o/e/web", "web-1")]; got != "ms-web-1-b:80\n" {
		t.Errorf("slot file of web-1: %q", got)
	}
	if !rt.serves("ms-api-1-a:80") || rt.serves("ms-web-1-a:80") {
		t.Errorf("serves: %+v", rt)
	}
	// An emptied slot refuses at once, and stays until the next reload.
	rt.unserve("ms-api-1-a:80")
	if got := rt.slotFiles()[slotFile("o/e/api", "api-1")]; got != refused+"\n" {
		t.Errorf("emptied slot file: %q", got)
	}
	if string(caddyJSON(rt)) != string(before) {
		t.Errorf("emptying a slot changed the Caddy configuration")
	}
	rt.compact()
	if rt.route("o/e/api") != nil || len(rt.Routes) != 1 {
		t.Errorf("route without slots kept: %+v", rt)
	}
	// Settings follow the latest serve.
	rt.serve(proxyRoute{Key: "o/e/web", Hosts: []string{"www.test"}, Path: "/", Drain: 1}, "web-2", "ms-web-2-a:80")
	if r := rt.route("o/e/web"); r == nil || !slices.Equal(r.Hosts, []string{"www.test"}) || r.Drain != 1 || len(r.Slots) != 2 {
		t.Errorf("route after a settings change: %+v", r)
	}
	if slotFile("o/e/web", "web-1") == slotFile("o/f/web", "web-1") || !strings.HasPrefix(slotFile("o/e/web", "web-1"), proxyDir+"/slots/") {
		t.Errorf("slot files of two routes: %s, %s", slotFile("o/e/web", "web-1"), slotFile("o/f/web", "web-1"))
	}
}

func TestCaddyJSON(t *testing.T) {
	rt := routeTable{Routes: []proxyRoute{
		{Key: "o/e/any", Path: "/", Drain: 10, Slots: map[string]string{"a-1": "a:80"}},
		{Key: "o/e/api", Hosts: []string{"shop.test"}, Path: "/api/", Drain: 60, Slots: map[string]string{"c-1": "c:80", "b-1": "b:80"}},
		{Key: "o/e/web", Hosts: []string{"shop.test"}, Path: "/", Drain: 5, Slots: map[string]string{"d-1": "d:80"}},
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
	h := srv.Routes[0].Handle[0]
	if h.Handler != "reverse_proxy" || len(h.Upstreams) != 2 || h.Upstreams[0].Dial != "{file."+slotFile("o/e/api", "b-1")+"}" {
		t.Errorf("api handler %+v", h)
	}
	if srv.Routes[3].Handle[0].Handler != "static_response" {
		t.Errorf("last route %+v", srv.Routes[3])
	}
	if n := len(slices.Collect(maps.Keys(rt.slotFiles()))); n != 4 {
		t.Errorf("%d slot files, want 4", n)
	}
}

func TestCountEstablished(t *testing.T) {
	listing := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:A627 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1610376 1
   1: 030017AC:8006 020017AC:0050 01 00000000:00000000 03:00000E9B 00000000     0        0 0 3
   2: 030017AC:800C 020017AC:0050 06 00000000:00000000 03:00000262 00000000     0        0 0 3
   3: 030017AC:800D 020017AC:0051 01 00000000:00000000 03:00000262 00000000     0        0 0 3
   4: 030017AC:800E 040017AC:0050 01 00000000:00000000 03:00000262 00000000     0        0 0 3
  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF0000030017AC:8010 0000000000000000FFFF0000020017AC:0050 01 00000000:00000000
`
	if n := countEstablished(listing, netip.MustParseAddr("172.23.0.2"), 80); n != 2 {
		t.Errorf("established connections to 172.23.0.2:80: %d, want 2 (one of them IPv4-mapped; TIME_WAIT, other ports and hosts left out)", n)
	}
}

// TestCaddyTLS: routes with TLS move to the HTTPS server and redirect on
// plain HTTP (to the public HTTPS port); internal ones get the internal
// issuer, auto ones Caddy's default (ACME); a table with no TLS route has
// no HTTPS server at all.
func TestCaddyTLS(t *testing.T) {
	var rt routeTable
	rt.serve(proxyRoute{Key: "o/e/shop", Hosts: []string{"shop.test"}, Path: "/", TLS: "auto"}, "shop-1", "a:80")
	rt.serve(proxyRoute{Key: "o/e/admin", Hosts: []string{"admin.test"}, Path: "/", TLS: "internal"}, "admin-1", "b:80")
	rt.serve(proxyRoute{Key: "o/e/plain", Hosts: []string{"plain.test"}, Path: "/"}, "plain-1", "c:80")
	if strings.Contains(string(caddyJSON(rt)), "maestro-sync-tls") {
		t.Errorf("routes with TLS but no HTTPS port got an HTTPS server")
	}
	for _, port := range []int{443, 8443} {
		rt.HTTPS = port
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Listen []string
						Routes []struct {
							ID     string `json:"@id"`
							Handle []map[string]any
						}
					}
				}
				TLS struct {
					Automation struct {
						Policies []struct {
							Subjects []string
							Issuers  []map[string]any
						}
					}
				}
			}
		}
		if err := json.Unmarshal(caddyJSON(rt), &cfg); err != nil {
			t.Fatal(err)
		}
		handlers := func(server string) []string {
			var out []string
			for _, r := range cfg.Apps.HTTP.Servers[server].Routes {
				h := r.Handle[0]["handler"].(string)
				if loc, ok := r.Handle[0]["headers"].(map[string]any); ok {
					h += " " + loc["Location"].([]any)[0].(string)
				}
				out = append(out, strings.TrimPrefix(r.ID, "maestro-sync:")+" "+h)
			}
			return out
		}
		suffix := ""
		if port != 443 {
			suffix = ":8443"
		}
		redirect := " static_response https://{http.request.host}" + suffix + "{http.request.uri}"
		wantPlain := []string{redirect, "o/e/plain reverse_proxy", redirect, " static_response"}
		if diff := cmp.Diff(wantPlain, handlers("maestro-sync")); diff != "" {
			t.Errorf("HTTPS port %d: plain server (-want +got):\n%s", port, diff)
		}
		wantTLS := []string{"o/e/admin reverse_proxy", "o/e/shop reverse_proxy", " static_response"}
		if diff := cmp.Diff(wantTLS, handlers("maestro-sync-tls")); diff != "" {
			t.Errorf("HTTPS port %d: TLS server (-want +got):\n%s", port, diff)
		}
		pol := cfg.Apps.TLS.Automation.Policies
		if len(pol) != 1 || !slices.Equal(pol[0].Subjects, []string{"admin.test"}) || pol[0].Issuers[0]["module"] != "internal" {
			t.Errorf("TLS policies: %+v, want the internal issuer for admin.test only", pol)
		}
	}
}

// TestRouteMove: an instance that takes a route of its own leaves its
// service's route; the other environment's instance of the same name
// stays where it is.
func TestRouteMove(t *testing.T) {
	var rt routeTable
	web := proxyRoute{Key: "o/e/web", Path: "/"}
	rt.serve(web, "web-1", "a:80")
	rt.serve(web, "web-2", "b:80")
	rt.serve(proxyRoute{Key: "o/f/web", Path: "/"}, "web-1", "c:80")
	rt.serve(proxyRoute{Key: "o/e/web/web-1", Hosts: []string{"beta.test"}, Path: "/"}, "web-1", "d:80")
	got := map[string]map[string]string{}
	for _, r := range rt.Routes {
		got[r.Key] = r.Slots
	}
	want := map[string]map[string]string{
		"o/e/web":       {"web-2": "b:80"},
		"o/e/web/web-1": {"web-1": "d:80"},
		"o/f/web":       {"web-1": "c:80"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	// Back to the service's route: the route of its own goes.
	rt.serve(web, "web-1", "e:80")
	if rt.route("o/e/web/web-1") != nil || rt.route("o/e/web").Slots["web-1"] != "e:80" {
		t.Errorf("routes after moving back: %+v", rt.Routes)
	}
}
