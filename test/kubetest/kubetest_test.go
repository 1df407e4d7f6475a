package kubetest

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) { Main(m) }

func TestControlPlane(t *testing.T) {
	cp := Start(t)
	if again := Start(t); again != cp {
		t.Fatal("Start did not return the shared control plane")
	}
	if v := cp.Kubectl(t, "version", "-o", "json"); !strings.Contains(v, `"gitVersion"`) {
		t.Fatalf("kubectl version: %s", v)
	}
	n := cp.CreateNode(t, "kubetest-extra", map[string]string{"pool": "extra"})
	if n.Labels["pool"] != "extra" {
		t.Errorf("node labels: %v", n.Labels)
	}
	ns := cp.Namespace(t, "kubetest")
	ctx := context.Background()
	cp.Kubectl(t, "create", "namespace", ns)
	cp.Kubectl(t, "-n", ns, "create", "serviceaccount", "reader")
	cp.Kubectl(t, "-n", ns, "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps")
	cp.Kubectl(t, "-n", ns, "create", "rolebinding", "reader", "--role=cm-reader", "--serviceaccount="+ns+":reader")
	path := cp.WriteKubeconfig(t, "reader", cp.Token(t, ns, "reader"))
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c := kubernetes.NewForConfigOrDie(cfg)
	if _, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the ServiceAccount may list configmaps: %v", err)
	}
	if _, err := c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("the ServiceAccount may list secrets: RBAC is not enforced")
	}
}
