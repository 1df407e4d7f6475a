package kube_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
	"github.com/maestro-sync/maestro-sync/test/kubetest"
)

// TestClusterServiceBuilt: a cluster service built from the repository is
// built on its builder ship, pushed to a registry, and its Deployment runs
// the image pinned by the digest the push gave, in the same run.
func TestClusterServiceBuilt(t *testing.T) {
	cp := kubetest.Start(t)
	ship := dockertest.StartShips(t, 1)[0]
	reg := dockertest.StartRegistry(t, "builder", "build-pw")
	ns := cp.Namespace(t, "built")
	dir := t.TempDir()
	files := map[string]string{
		"shop/manifest.yml": fmt.Sprintf(`name: shop
registries:
  reg: {registry: "http://%[1]s", username: builder, password: build-pw}
ships:
  b1: {ip: %[2]s, socket_path: %[3]s, timeout: 30}
clusters:
  kc: {kubeconfig: %[4]s, namespace: %[5]s}
services:
  api:
    image: %[1]s/shop/api
    build: {context: app, builder: b1}
    cluster: kc
    replicas: 1
`, reg.Host, ship.IP, ship.Socket, cp.Kubeconfig, ns),
		"shop/app/Dockerfile": "FROM maestro-test/busybox:1\nCOPY hello /hello\n",
		"shop/app/hello":      "hello\n",
	}
	for name, text := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := runBinary(t, buildBinary(t), 0, "apply", "--rollout-timeout", "2m", dir)
	if !strings.Contains(out, "Applied 2 step(s), 0 failed.") {
		t.Fatalf("apply:\n%s", out)
	}
	deps, err := cp.Client.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(deps.Items) != 1 {
		t.Fatalf("deployments: %v %d", err, len(deps.Items))
	}
	image := deps.Items[0].Spec.Template.Spec.Containers[0].Image
	if !strings.HasPrefix(image, reg.Host+"/shop/api:ctx-") || !strings.Contains(image, "@sha256:") {
		t.Errorf("the deployment runs %q, not its build pinned by digest", image)
	}
}
