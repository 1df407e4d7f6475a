package kube

import "testing"

// TestSplitPath: the object a write names, at the server's root or behind
// a path prefix (a proxy such as Rancher's), and paths of no namespaced
// object.
func TestSplitPath(t *testing.T) {
	for path, want := range map[string][4]string{
		"/api/v1/namespaces/shop/configmaps/web-env-1a":                         {"shop", "configmaps", "web-env-1a", ""},
		"/api/v1/namespaces/shop/configmaps":                                    {"shop", "configmaps", "", ""},
		"/apis/apps/v1/namespaces/shop/deployments/web-1a/scale":                {"shop", "deployments", "web-1a", "scale"},
		"/k8s/clusters/c-x/apis/apps/v1/namespaces/shop/deployments/web-1a":     {"shop", "deployments", "web-1a", ""},
		"/k8s/clusters/c-x/api/v1/namespaces/api/services/apis":                 {"api", "services", "apis", ""},
		"/api/v1/namespaces/shop":                                               {},
		"/apis/coordination.k8s.io/v1/namespaces/shop/leases/maestro-sync-lock": {"shop", "leases", "maestro-sync-lock", ""},
		"/version": {},
	} {
		ns, resource, name, sub := splitPath(path)
		if got := [4]string{ns, resource, name, sub}; got != want {
			t.Errorf("splitPath(%q) = %q, want %q", path, got, want)
		}
	}
}
