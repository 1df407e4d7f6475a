package dockertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatal(err)
	}
}

// TestStartShips runs a web server on each of three ships, all publishing the
// same host port, and checks that each answers on its own ship's IP and that
// the ships do not see each other's containers.
func TestStartShips(t *testing.T) {
	start := time.Now()
	ships := StartShips(t, 3)
	t.Logf("started %d ships in %s", len(ships), time.Since(start).Round(time.Millisecond))

	for _, s := range ships {
		if !strings.HasPrefix(s.Host, "unix://") || s.Socket == "" || s.IP == "" {
			t.Fatalf("ship %s: incomplete %+v", s.Name, s)
		}
		got := s.Docker(t, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
		for _, img := range Images {
			if !strings.Contains(got, img) {
				t.Errorf("ship %s: image %s not loaded; images:\n%s", s.Name, img, got)
			}
		}
		s.Docker(t, "run", "-d", "--name", "web-"+s.Name, "-p", "8080:8080", Busybox1,
			"sh", "-c", "mkdir -p /tmp/www && echo "+s.Name+" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")
	}

	for _, s := range ships {
		if got := httpGet(t, "http://"+net.JoinHostPort(s.IP, "8080")+"/"); got != s.Name {
			t.Errorf("ship %s: http://%s:8080/ answered %q, want %q", s.Name, s.IP, got, s.Name)
		}
		_, subnet, err := net.ParseCIDR(s.Subnet)
		if err != nil {
			t.Fatal(err)
		}
		if ip := s.Docker(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web-"+s.Name); !subnet.Contains(net.ParseIP(ip)) {
			t.Errorf("ship %s: container address %s not in %s", s.Name, ip, s.Subnet)
		}
		names := strings.Fields(s.Docker(t, "ps", "-a", "--format", "{{.Names}}"))
		if want := []string{"web-" + s.Name}; !slices.Equal(names, want) {
			t.Errorf("ship %s: containers %q, want %q (ships must be isolated)", s.Name, names, want)
		}
	}

	ships[0].RemoveAll(t)
	if got := ships[0].Docker(t, "ps", "-aq"); got != "" {
		t.Errorf("ship %s: containers left after RemoveAll: %q", ships[0].Name, got)
	}
	if got := ships[1].Docker(t, "ps", "-q"); got == "" {
		t.Errorf("ship %s: RemoveAll on %s removed its containers too", ships[1].Name, ships[0].Name)
	}
}

// TestShared checks that Shared starts ships once, grows to a larger n, and
// that the two test images differ.
func TestShared(t *testing.T) {
	two := Shared(t, 2)
	three := Shared(t, 3)
	if len(two) != 2 || len(three) != 3 {
		t.Fatalf("got %d and %d ships, want 2 and 3", len(two), len(three))
	}
	for i := range two {
		if two[i] != three[i] {
			t.Errorf("ship %d restarted by Shared: %s then %s", i, two[i].Host, three[i].Host)
		}
	}
	if again := Shared(t, 1); again[0] != two[0] {
		t.Errorf("Shared(1) returned another ship %s, want %s", again[0].Host, two[0].Host)
	}

	s := three[2]
	id1 := s.Docker(t, "image", "inspect", "-f", "{{.Id}}", Busybox1)
	id2 := s.Docker(t, "image", "inspect", "-f", "{{.Id}}", Busybox2)
	if id1 == id2 {
		t.Errorf("%s and %s have the same ID %s", Busybox1, Busybox2, id1)
	}
	for img, want := range map[string]string{Busybox1: "1", Busybox2: "2"} {
		if got := s.Docker(t, "run", "--rm", img, "cat", "/etc/maestro-test-version"); got != want {
			t.Errorf("%s: /etc/maestro-test-version = %q, want %q", img, got, want)
		}
	}
	s.Docker(t, "run", "-d", "--name", "left-behind", Busybox1, "sleep", "600")
}

// TestSharedCleaned runs after TestShared: the container it left must be gone.
func TestSharedCleaned(t *testing.T) {
	for _, s := range Shared(t, 3) {
		if got := s.Docker(t, "ps", "-aq"); got != "" {
			t.Errorf("ship %s: containers left by the previous test: %q", s.Name, got)
		}
	}
}

// httpGet fetches url, retrying for a while as the server may still be starting,
// and returns the trimmed body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		body, err := get(ctx, url)
		if err == nil {
			return body
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

func get(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	// Straight to the ship, whatever HTTP_PROXY says.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// TestRegistry: the registry wants its credentials, keeps what is pushed
// and counts the refused logins.
func TestRegistry(t *testing.T) {
	r := StartRegistry(t, "alice", "pw-1")
	ref := r.Push(t, Busybox1, "maestro-test/busybox", "1")
	resp, err := http.Get("http://" + r.Host + "/v2/maestro-test/busybox/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous manifest request: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+r.Host+"/v2/maestro-test/busybox/manifests/1", nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	req.SetBasicAuth("alice", "pw-1")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s is not in the registry: %v %v\n%s", ref, resp, err, r.Log())
	}
	resp.Body.Close()
	before := r.AuthFailures()
	req.SetBasicAuth("alice", "wrong")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %v %v", resp, err)
	}
	resp.Body.Close()
	if !r.Eventually(func() bool { return r.AuthFailures() == before+1 }) {
		t.Errorf("auth failures %d, want %d\n%s", r.AuthFailures(), before+1, r.Log())
	}
}
