package docker

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"

	"github.com/maestro-sync/maestro-sync/internal/build"
	"github.com/maestro-sync/maestro-sync/internal/build/buildtest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// encodeAuth encodes credentials as the Engine API takes them.
func encodeAuth(t *testing.T, user, password, host string) string {
	t.Helper()
	enc, err := registry.EncodeAuthConfig(registry.AuthConfig{Username: user, Password: password, ServerAddress: host})
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestBuildAndPush builds a context read from a snapshot on a real
// engine, runs it, pushes it to a real registry and pulls it by digest on
// a ship; a broken Dockerfile fails with the build's last lines.
func TestBuildAndPush(t *testing.T) {
	// The builder is a ship (a dockerd with its own bridge); a second ship
	// pulls what it pushed.
	ships := dockertest.StartShips(t, 2)
	builder, ship := ships[0], ships[1]
	reg := dockertest.StartRegistry(t, "builder", "build-pw")
	cli, err := client.NewClientWithOpts(client.WithHost(builder.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	c := build.Context{FS: buildtest.Repo("hello from the build\n", "x", ""), Dir: "app", Args: map[string]string{"GREETING": "bonjour"}}
	digest, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/maestro-test/app:" + build.Tag(digest)
	var lines []string
	id, err := buildImage(ctx, cli, c, digest, ref, nil, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, strings.Join(lines, "\n"))
	}

	if !strings.HasPrefix(id, "sha256:") || len(lines) == 0 {
		t.Errorf("image %q, %d lines of output", id, len(lines))
	}
	out, err := exec.Command("docker", "--host", builder.Host, "run", "--rm", "--network", "none", ref, "sh", "-c", "cat /hello.txt /greeting; ls /").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello from the build\nbonjour\n") || strings.Contains(string(out), "debug.log") {
		t.Errorf("the built image: %v\n%s", err, out)
	}

	pushed, err := pushImage(ctx, cli, ref, encodeAuth(t, "builder", "build-pw", reg.Host), func(string) {})
	if err != nil || !strings.HasPrefix(pushed, "sha256:") {
		t.Fatalf("push: %q %v\n%s", pushed, err, reg.Log())
	}
	if _, err := pushImage(ctx, cli, ref, encodeAuth(t, "builder", "wrong", reg.Host), func(string) {}); err == nil {
		t.Errorf("a push with a wrong password worked")
	}
	// The ship pulls it by digest, as every ship of a service would.
	byDigest := reg.Host + "/maestro-test/app@" + pushed
	cfg := t.TempDir()
	login := exec.Command("docker", "--host", ship.Host, "--config", cfg, "login", "-u", "builder", "--password-stdin", reg.Host)
	login.Stdin = strings.NewReader("build-pw")
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "--host", ship.Host, "--config", cfg, "pull", byDigest).CombinedOutput(); err != nil {
		t.Fatalf("pull %s on the ship: %v\n%s", byDigest, err, out)
	}
	if got := ship.Docker(t, "image", "inspect", "--format", "{{.Id}}", byDigest); strings.TrimSpace(got) != id {
		t.Errorf("the ship pulled %s, built %s", got, id)
	}

	broken := build.Context{FS: fstest.MapFS{"Dockerfile": {Data: []byte("FROM maestro-test/busybox:1\nRUN echo step-one && exit 3\n")}}, Dir: "."}
	_, err = buildImage(ctx, cli, broken, "", reg.Host+"/maestro-test/broken:x", nil, func(string) {})
	var be *build.Error
	if !errors.As(err, &be) || !strings.Contains(be.Msg, "returned a non-zero code: 3") || !strings.Contains(strings.Join(be.Log, "\n"), "step-one") || be.Line != 2 {
		t.Errorf("a broken build: %v", err)
	}
	// A context that no longer digests to what was planned builds nothing.
	moved := build.Context{FS: buildtest.Repo("changed since", "", ""), Dir: "app"}
	if _, err := buildImage(ctx, cli, moved, digest, reg.Host+"/maestro-test/app:moved", nil, func(string) {}); !errors.Is(err, build.ErrMoved) {
		t.Errorf("a moved context: %v", err)
	}
	if _, err := cli.ImageInspect(ctx, reg.Host+"/maestro-test/app:moved"); err == nil {
		t.Errorf("a moved context was built")
	}
}

// TestSecretArgs: what a build prints never shows a build argument whose
// name looks secret; other arguments are left as they are.
func TestSecretArgs(t *testing.T) {
	for range 20 { // map order varies
		r := secretArgs(map[string]string{"NPM_TOKEN": "tok-123456", "API_KEY": "tok-123456-and-more", "VERSION": "1.2.3", "DB_PASSWORD": "pw"})
		got := r.Replace("Step 3/5 : RUN echo tok-123456 1.2.3 tok-123456-and-more")
		if strings.Contains(got, "tok-") || strings.Contains(got, "and-more") || !strings.Contains(got, "<NPM_TOKEN hidden>") ||
			!strings.Contains(got, "<API_KEY hidden>") || !strings.Contains(got, "1.2.3") {
			t.Fatalf("redacted: %q", got)
		}
	}
}
