package build

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"

	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// repo is a repository with two build contexts and other files.
func repo(hello, log, other string) fstest.MapFS {
	return fstest.MapFS{
		"app/Dockerfile":    {Data: []byte("FROM maestro-test/busybox:1\nARG GREETING=hi\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/hello.txt\"]\n")},
		"app/hello.txt":     {Data: []byte(hello)},
		"app/.dockerignore": {Data: []byte("*.log\n")},
		"app/debug.log":     {Data: []byte(log)},
		"app/bin/run.sh":    {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"worker/Dockerfile": {Data: []byte("FROM maestro-test/busybox:1\n")},
		"README.md":         {Data: []byte(other)},
	}
}

// TestDigest: the digest changes with what the build reads (a file of
// the context, an argument, the target), not with ignored files or files
// outside the context.
func TestDigest(t *testing.T) {
	digest := func(fsys fstest.MapFS, c Context) string {
		t.Helper()
		c.FS = fsys
		d, err := c.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	app := Context{Dir: "app", Args: map[string]string{"GREETING": "hello"}}
	base := digest(repo("v1", "log1", "readme1"), app)
	if !strings.HasPrefix(base, "sha256:") || Tag(base) != "ctx-"+base[7:23] {
		t.Errorf("digest %s, tag %s", base, Tag(base))
	}
	for name, other := range map[string]string{
		"an ignored file":            digest(repo("v1", "log2", "readme1"), app),
		"a file outside the context": digest(repo("v1", "log1", "readme2"), app),
	} {
		if other != base {
			t.Errorf("%s changed the digest", name)
		}
	}
	withArg := app
	withArg.Args = map[string]string{"GREETING": "bye"}
	withTarget := app
	withTarget.Target = "prod"
	for name, other := range map[string]string{
		"a file of the context": digest(repo("v2", "log1", "readme1"), app),
		"an argument":           digest(repo("v1", "log1", "readme1"), withArg),
		"the target":            digest(repo("v1", "log1", "readme1"), withTarget),
		"another context":       digest(repo("v1", "log1", "readme1"), Context{Dir: "worker"}),
	} {
		if other == base {
			t.Errorf("%s did not change the digest", name)
		}
	}
	for _, c := range []Context{{Dir: "../x"}, {Dir: "app", Dockerfile: "../worker/Dockerfile"}, {Dir: "README.md"}, {Dir: "worker", Dockerfile: "Nope"}} {
		c.FS = repo("v1", "", "")
		if _, err := c.Digest(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
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
	c := Context{FS: repo("hello from the build\n", "x", ""), Dir: "app", Args: map[string]string{"GREETING": "bonjour"}}
	digest, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/maestro-test/app:" + Tag(digest)
	var lines []string
	id, err := Build(ctx, cli, c, ref, func(l string) { lines = append(lines, l) })
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

	pushed, err := Push(ctx, cli, ref, registry.AuthConfig{Username: "builder", Password: "build-pw", ServerAddress: reg.Host}, nil)
	if err != nil || !strings.HasPrefix(pushed, "sha256:") {
		t.Fatalf("push: %q %v\n%s", pushed, err, reg.Log())
	}
	if _, err := Push(ctx, cli, ref, registry.AuthConfig{Username: "builder", Password: "wrong", ServerAddress: reg.Host}, nil); err == nil {
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

	broken := Context{FS: fstest.MapFS{"Dockerfile": {Data: []byte("FROM maestro-test/busybox:1\nRUN echo step-one && exit 3\n")}}, Dir: "."}
	_, err = Build(ctx, cli, broken, reg.Host+"/maestro-test/broken:x", nil)
	var be *Error
	if !errors.As(err, &be) || !strings.Contains(be.Msg, "returned a non-zero code: 3") || !strings.Contains(strings.Join(be.Log, "\n"), "step-one") {
		t.Errorf("a broken build: %v", err)
	}
}
