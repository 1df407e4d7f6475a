// Package kubetest starts a real Kubernetes control plane for integration
// tests: etcd, kube-apiserver (RBAC, server-side apply, ServiceAccount
// tokens), kube-controller-manager, kube-scheduler and kwok, which fakes the
// nodes and marks scheduled pods Running and Ready. See test/kube/README.md.
// A test that needs pods that really run starts the real node beside them
// (ControlPlane.StartNode: a kubelet with its own containerd).
//
// The binaries are built from the Go module proxy by test/kube/build.sh
// into $MAESTRO_KUBE_BIN (default ~/.cache/maestro-sync/kube-bin); `make
// test` runs it. When they are missing, Start runs it itself (about 10
// minutes on a cold cache) rather than skipping.
//
// One control plane is shared by the tests of a package binary; the
// package's TestMain must call Main:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// Tests isolate themselves by namespace (Namespace). A control plane left
// behind by a killed test binary is stopped by the next Start.
package kubetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Binaries lists what test/kube/build.sh installs into the bin directory.
var Binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok", "kubelet", "pause", "testweb"}

// dirPrefix names the directories of control planes under os.TempDir().
const dirPrefix = "maestro-kubetest-"

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Dir holds its data, logs, PKI and kubeconfig (test/kube/start.sh DIR).
	Dir string
	// Kubeconfig is the admin kubeconfig (group system:masters).
	Kubeconfig string
	// Server is the apiserver URL, https://127.0.0.1:PORT.
	Server string
	// CAFile is the cluster CA certificate.
	CAFile string
	// Bin is the directory of the binaries (kubectl is there).
	Bin string
	// NodeName is the fake node start.sh creates.
	NodeName string
	// Config and Client are the admin's.
	Config *rest.Config
	Client kubernetes.Interface

	lock *os.File // flock held while the control plane runs

	nodeMu  sync.Mutex
	node    *Node // the real node, once StartNode started it
	nodeErr error
}

var shared struct {
	mu   sync.Mutex
	main bool
	cp   *ControlPlane
	err  error
}

// Main runs the tests and stops the shared control plane afterwards. Call
// it from TestMain.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	cp := shared.cp
	shared.cp = nil
	shared.mu.Unlock()
	if cp != nil {
		if cp.node != nil {
			if err := cp.node.stop(); err != nil {
				fmt.Fprintln(os.Stderr, "kubetest:", err)
				if code == 0 {
					code = 1
				}
			}
		}
		if err := cp.stop(code == 0); err != nil {
			fmt.Fprintln(os.Stderr, "kubetest:", err)
			if code == 0 {
				code = 1
			}
		}
		if code != 0 {
			fmt.Fprintf(os.Stderr, "kubetest: control plane logs kept in %s/logs\n", cp.Dir)
		}
	}
	os.Exit(code)
}

// Start returns the control plane shared by the package's tests, starting
// it on first use (about 10 s). It fails the test when the package's
// TestMain does not call Main, or when the control plane cannot start.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("kubetest.Start needs the package's TestMain to call kubetest.Main(m)")
	}
	if shared.cp == nil && shared.err == nil {
		shared.cp, shared.err = start(t)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cp
}

// BinDir is where the binaries are: $MAESTRO_KUBE_BIN, else
// ~/.cache/maestro-sync/kube-bin.
func BinDir() string {
	if d := os.Getenv("MAESTRO_KUBE_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "maestro-sync", "kube-bin")
}

// ScriptDir finds test/kube from the working directory (a package
// directory of the module, as go test runs tests).
func ScriptDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "test", "kube", "start.sh")); err == nil {
			return filepath.Join(dir, "test", "kube"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: test/kube/start.sh not found above the working directory")
		}
		dir = parent
	}
}

func missing(bin string) []string {
	var out []string
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			out = append(out, b)
		}
	}
	return out
}

// Build runs test/kube/build.sh when a binary is missing, one build at a
// time on this machine.
func Build(logf func(string, ...any)) error {
	bin := BinDir()
	if len(missing(bin)) == 0 {
		return nil
	}
	scripts, err := ScriptDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(bin), "kube-build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if m := missing(bin); len(m) > 0 {
		logf("kubetest: %s missing in %s: running test/kube/build.sh (about 10 minutes on a cold Go cache)", strings.Join(m, ", "), bin)
		start := time.Now()
		out, err := exec.Command(filepath.Join(scripts, "build.sh")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubetest: test/kube/build.sh: %v\n%s", err, tail(out, 40))
		}
		logf("kubetest: built in %s", time.Since(start).Round(time.Second))
	}
	return nil
}

func start(t testing.TB) (*ControlPlane, error) {
	if err := Build(t.Logf); err != nil {
		return nil, err
	}
	scripts, err := ScriptDir()
	if err != nil {
		return nil, err
	}
	sweepStale(scripts)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, err
	}
	cp := &ControlPlane{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), CAFile: filepath.Join(dir, "pki", "ca.crt"), Bin: BinDir(), lock: lock}
	cmd := exec.Command(filepath.Join(scripts, "start.sh"), dir)
	cmd.Env = append(os.Environ(), "MAESTRO_KUBE_BIN="+cp.Bin)
	if os.Getenv("MAESTRO_KUBE_START_TIMEOUT") == "" {
		cmd.Env = append(cmd.Env, "MAESTRO_KUBE_START_TIMEOUT=300") // busy CI machines
	}
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("kubetest: test/kube/start.sh %s: %v\n%s", dir, err, tail(out, 60))
	}
	t.Logf("kubetest: control plane started in %s (%s)", time.Since(began).Round(100*time.Millisecond), dir)
	env, err := readEnv(filepath.Join(dir, "env"))
	if err != nil {
		return nil, errors.Join(err, cp.stop(false))
	}
	cp.Server, cp.NodeName = env["MAESTRO_KUBE_SERVER"], env["MAESTRO_KUBE_NODE_NAME"]
	cp.Config, err = clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err == nil {
		cp.Config.QPS, cp.Config.Burst = 200, 400
		cp.Client, err = kubernetes.NewForConfig(cp.Config)
	}
	if err != nil {
		return nil, errors.Join(err, cp.stop(false))
	}
	return cp, nil
}

func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			env[k] = v
		}
	}
	return env, nil
}

// stop stops the control plane and, when clean, removes its directory.
func (cp *ControlPlane) stop(clean bool) error {
	defer cp.lock.Close()
	scripts, err := ScriptDir()
	if err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(scripts, "stop.sh"), cp.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("test/kube/stop.sh %s: %v\n%s", cp.Dir, err, out)
	}
	if clean {
		return os.RemoveAll(cp.Dir)
	}
	return nil
}

// sweepStale stops the control planes of test binaries that died without
// stopping theirs (a directory whose lock nobody holds and whose pids file
// is still there), and removes the directories of stopped ones (kept for
// their logs after a failure) once they are a day old.
func sweepStale(scripts string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if _, err := os.Stat(filepath.Join(dir, "pids")); err == nil {
				_ = exec.Command(filepath.Join(scripts, "stop.sh"), dir).Run()
				_ = os.RemoveAll(dir)
			} else if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
				_ = os.RemoveAll(dir)
			}
		}
		f.Close()
	}
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kubectl runs kubectl as the admin and returns its standard output. It
// fails the test when kubectl fails.
func (cp *ControlPlane) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := cp.KubectlErr(context.Background(), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// KubectlErr runs kubectl as the admin with stdin, returning its output.
func (cp *ControlPlane) KubectlErr(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(cp.Bin, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

var seq atomic.Int64

// Namespace returns a fresh namespace name (not created) for the test,
// and deletes the namespace when the test ends.
func (cp *ControlPlane) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, seq.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := cp.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

// CreateNode adds a fake node managed by kwok, waits until it is Ready
// and removes it when the test ends.
func (cp *ControlPlane) CreateNode(t testing.TB, name string, labels map[string]string) *corev1.Node {
	t.Helper()
	l := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"}
	for k, v := range labels {
		l[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cp.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	for {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return n
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node %s not Ready after 2 minutes (last error: %v)", name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Token returns a token of the ServiceAccount ns/name (TokenRequest, as
// kubectl create token), valid for an hour.
func (cp *ControlPlane) Token(t testing.TB, ns, name string) string {
	t.Helper()
	exp := int64(3600)
	tr, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of serviceaccount %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// WriteKubeconfig writes a kubeconfig for the control plane that
// authenticates with a bearer token, and returns its path (in the test's
// temporary directory). Its context is called "test".
func (cp *ControlPlane) WriteKubeconfig(t testing.TB, user, token string) string {
	t.Helper()
	ca, err := os.ReadFile(cp.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: %s
current-context: test
`, cp.Server, base64.StdEncoding.EncodeToString(ca), user, token, user)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
