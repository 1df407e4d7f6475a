package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryVersion is the CNCF Distribution registry that
// scripts/docker-setup.sh builds from the Go module proxy.
const RegistryVersion = "v3.1.2"

// Registry is a CNCF Distribution registry started for one test, on
// 127.0.0.1 (which Docker engines treat as an insecure registry, so plain
// HTTP works), with htpasswd authentication and storage in a temporary
// directory.
type Registry struct {
	Host     string // 127.0.0.1:port
	User     string
	Password string

	config string // a docker CLI configuration directory logged in to it
	log    *SyncBuffer
}

// RegistryBinary returns the path of the registry built by
// scripts/docker-setup.sh.
func RegistryBinary() (string, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "maestro-sync", "registry", "registry-"+RegistryVersion)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("no CNCF Distribution registry at %s: %s", bin, setupHint)
	}
	return bin, nil
}

// StartRegistry starts a registry that wants user and password, stopped
// at the end of the test.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	bin, err := RegistryBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	secret := make([]byte, 16)
	rand.Read(secret)
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: maestro-test
    path: %s
`, filepath.Join(dir, "data"), host, hex.EncodeToString(secret), filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Registry{Host: host, User: user, Password: password, config: filepath.Join(dir, "docker"), log: &SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not answer on %s: %v\n%s", host, err, r.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	login := exec.Command("docker", "--config", r.config, "--host", DefaultHost, "login", "--username", user, "--password-stdin", host)
	login.Stdin = strings.NewReader(password)
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("docker login %s: %v\n%s\n%s", host, err, out, r.log)
	}
	return r
}

// Push pushes image (of the default engine) to the registry as name:tag
// and returns the reference pulled from the registry.
func (r *Registry) Push(t testing.TB, image, name, tag string) string {
	t.Helper()
	ref := r.Host + "/" + name + ":" + tag
	before := r.pushes(name, tag)
	for _, args := range [][]string{{"tag", image, ref}, {"push", "--quiet", ref}, {"rmi", ref}} {
		cmd := exec.Command("docker", append([]string{"--config", r.config, "--host", DefaultHost}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The log trails the answers: wait for the push's last line, so that
	// what a test counts next is its own.
	if !r.Eventually(func() bool { return r.pushes(name, tag) > before }) {
		t.Fatalf("the registry did not log the push of %s", ref)
	}
	return ref
}

// pushes counts the completed uploads of the manifest name:tag.
func (r *Registry) pushes(name, tag string) int {
	put := "http.request.method=PUT http.request.remoteaddr="
	uri := "http.request.uri=/v2/" + name + "/manifests/" + tag + " "
	n := 0
	for _, l := range strings.Split(r.log.String(), "\n") {
		if strings.Contains(l, `msg="response completed"`) && strings.Contains(l, put) && strings.Contains(l, uri) {
			n++
		}
	}
	return n
}

// AuthFailures counts the requests the registry refused for wrong
// credentials (not the challenges that precede every authenticated one).
func (r *Registry) AuthFailures() int {
	return strings.Count(r.log.String(), `msg="user failed to authenticate"`)
}

// Authorized counts the requests the registry served to user.
func (r *Registry) Authorized(user string) int {
	return strings.Count(r.log.String(), `msg="authorized request" auth.user.name=`+user+" ")
}

// Eventually waits, up to 10 seconds, until cond holds, and reports
// whether it did: the registry's log, which AuthFailures and Authorized
// count, trails its answers.
func (r *Registry) Eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// Log returns what the registry logged.
func (r *Registry) Log() string { return r.log.String() }

// SyncBuffer is a bytes.Buffer that a process writes while a test reads
// it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
