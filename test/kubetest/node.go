package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node is a real node of the control plane: a kubelet with its own
// containerd (test/kube/node-start.sh), beside kwok's fake nodes. Its pods
// really run, from images made offline and imported into its containerd
// (maestro-test/pause:1, maestro-test/busybox:1, maestro-test/web:1 at
// start; ImportImage for more), and its readiness probes really probe.
//
// The node is tainted (Taint), so that pods of other tests never land on
// it; the pods of a namespace made by Namespace run there and only there.
// Pods reach the host at IP (the node's bridge address), and the apiserver
// through ForwardAPIServer: there is no kube-proxy, so Service ClusterIPs
// route nowhere; the apiserver's service proxy
// (/api/v1/namespaces/NS/services/NAME:PORT/proxy/) follows a Service's
// endpoints to its pods.
type Node struct {
	// Name is the Node's name, IP its InternalIP (the address of its
	// bridge on this host), Subnet the pods' /24.
	Name, IP, Subnet string
	// Containerd is the socket of the node's containerd (ctr --address).
	Containerd string
	// Taint is the key of the node's NoSchedule taint.
	Taint string

	cp   *ControlPlane
	lock *os.File // machine-wide flock: one real node at a time
}

// nodeLockTimeout bounds the wait for another test binary's node.
const nodeLockTimeout = 10 * time.Minute

// StartNode returns the real node of the package's control plane, starting
// it on first use (about 10 s). It is stopped by Main, before the control
// plane. Only one real node runs on a machine at a time (its bridge and the
// sysctls the kubelet sets are machine-wide): StartNode waits up to 10
// minutes for another test binary's node to stop. It fails the test when
// the node cannot start; it never skips.
func (cp *ControlPlane) StartNode(t testing.TB) *Node {
	t.Helper()
	cp.nodeMu.Lock()
	defer cp.nodeMu.Unlock()
	if cp.node == nil && cp.nodeErr == nil {
		cp.node, cp.nodeErr = cp.startNode(t)
	}
	if cp.nodeErr != nil {
		t.Fatal(cp.nodeErr)
	}
	return cp.node
}

func (cp *ControlPlane) startNode(t testing.TB) (*Node, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("kubetest: a real node needs root (the kubelet and containerd)")
	}
	scripts, err := ScriptDir()
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(cp.Bin), "kube-node.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for waited := time.Duration(0); ; waited += time.Second {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if waited == 0 {
			t.Logf("kubetest: another test binary runs the real node; waiting for it (at most %s)", nodeLockTimeout)
		}
		if waited >= nodeLockTimeout {
			lock.Close()
			return nil, fmt.Errorf("kubetest: the real node's lock is still held after %s", nodeLockTimeout)
		}
		time.Sleep(time.Second)
	}
	began := time.Now()
	cmd := exec.Command(filepath.Join(scripts, "node-start.sh"), cp.Dir)
	cmd.Env = append(os.Environ(), "MAESTRO_KUBE_BIN="+cp.Bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// node-start.sh stopped what it started and restored the host.
		lock.Close()
		return nil, fmt.Errorf("kubetest: test/kube/node-start.sh %s: %v\n%s", cp.Dir, err, tail(out, 60))
	}
	t.Logf("kubetest: real node started in %s", time.Since(began).Round(100*time.Millisecond))
	env, err := readEnv(filepath.Join(cp.Dir, "node", "env"))
	n := &Node{cp: cp, lock: lock, Name: env["MAESTRO_NODE_NAME"], IP: env["MAESTRO_NODE_IP"], Subnet: env["MAESTRO_NODE_SUBNET"],
		Containerd: env["MAESTRO_NODE_CONTAINERD"], Taint: env["MAESTRO_NODE_TAINT"]}
	if err == nil && (n.Name == "" || n.IP == "" || n.Containerd == "") {
		err = fmt.Errorf("kubetest: incomplete %s/node/env: %v", cp.Dir, env)
	}
	if err != nil {
		return nil, errors.Join(err, n.stop())
	}
	return n, nil
}

// stop stops the node and restores the host (test/kube/node-stop.sh), then
// lets another test binary's node start.
func (n *Node) stop() error {
	defer n.lock.Close()
	scripts, err := ScriptDir()
	if err != nil {
		return err
	}
	began := time.Now()
	out, err := exec.Command(filepath.Join(scripts, "node-stop.sh"), n.cp.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("test/kube/node-stop.sh %s: %v\n%s", n.cp.Dir, err, out)
	}
	took := time.Since(began)
	fmt.Fprintf(os.Stderr, "kubetest: real node stopped in %s\n", took.Round(100*time.Millisecond))
	if took > 20*time.Second {
		fmt.Fprintf(os.Stderr, "%s", out) // where the time went
	}
	return nil
}

// NamespaceAnnotations are the annotations that run a namespace's pods on
// the node: the apiserver's PodNodeSelector admission plugin gives them a
// node selector of the node's host name, PodTolerationRestriction a
// toleration of its taint.
func (n *Node) NamespaceAnnotations() map[string]string {
	return map[string]string{
		"scheduler.alpha.kubernetes.io/node-selector":      "kubernetes.io/hostname=" + n.Name,
		"scheduler.alpha.kubernetes.io/defaultTolerations": fmt.Sprintf(`[{"key":%q,"operator":"Exists","effect":"NoSchedule"}]`, n.Taint),
	}
}

// Namespace creates a namespace whose pods run on the node, and deletes it
// (waiting for its pods to go, at most a minute) when the test ends.
func (n *Node) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: n.NamespaceAnnotations()}}
	if _, err := n.cp.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { n.deleteNamespace(t, name) })
	return name
}

// deleteNamespace deletes a namespace and waits until its pods are gone
// from the node, so that the next test (or the node's stop) finds it idle.
func (n *Node) deleteNamespace(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := n.cp.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", name, err)
		return
	}
	for {
		pods, err := n.cp.Client.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Logf("kubetest: pods of namespace %s still there after a minute", name)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ImportImage makes an image of the directory rootfs (its only layer;
// owners and modes kept) with config as the image's runtime config (a JSON
// object: Entrypoint, Cmd, Env, User, WorkingDir...), and imports it into
// the node's containerd as ref (test/kube/node-image.sh). Pods run it with
// imagePullPolicy IfNotPresent. It returns the image ID.
func (n *Node) ImportImage(t testing.TB, ref, rootfs, config string) string {
	t.Helper()
	scripts, err := ScriptDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(scripts, "node-image.sh"), n.cp.Dir, ref, rootfs, config).CombinedOutput()
	if err != nil {
		t.Fatalf("kubetest: node-image.sh %s: %v\n%s", ref, err, out)
	}
	return string(trimNL(out))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// ForwardAPIServer listens on the node's address (a free port) and
// forwards each connection to the apiserver on loopback, as kube-proxy
// would forward the kubernetes Service's ClusterIP: a pod with
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT set to the address
// returned reaches the apiserver with its in-cluster configuration (the
// apiserver's certificate names the node's address). Closed when the test
// ends.
func (n *Node) ForwardAPIServer(t testing.TB) (host, port string) {
	t.Helper()
	server, err := url.Parse(n.cp.Server)
	if err != nil {
		t.Fatal(err)
	}
	apiPort := server.Port()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.IP, "0"))
	if err != nil {
		t.Fatalf("kubetest: listen on the node's address: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if add && conns == nil {
			return false
		}
		if add {
			conns[c] = true
		} else if conns != nil {
			delete(conns, c)
		}
		return true
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", apiPort), 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				if !track(c, true) || !track(up, true) {
					return
				}
				defer track(c, false)
				defer track(up, false)
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	h, p, _ := net.SplitHostPort(ln.Addr().String())
	return h, p
}
