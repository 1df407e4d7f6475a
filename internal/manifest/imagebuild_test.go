package manifest

import (
	"strings"
	"testing"
)

const builtEnv = `__maestro: {schema: 2}
name: Shop
ships:
  vm1: {ip: 10.0.0.1}
  vm2: {ip: 10.0.0.2}
services:
  web:
    image: registry.example.com:5000/shop/web
    build:
      context: app
      args: {VERSION: "{{ 1 + 1 }}"}
    instances:
      web-1: {ship: vm1}
      web-2: {ship: vm2}
  worker:
    build: {context: ./app/, args: {VERSION: "2"}}
    instances:
      worker-1: {ship: vm2}
  tool:
    build: {context: tool, dockerfile: build/Containerfile, target: prod, builder: vm2}
    instances:
      tool-1: {ship: vm2}
`

// TestBuildKey: a built service's image is its repository tagged with the
// context's digest, which changes with the files the build reads and
// nothing else; its builder is its first instance's ship unless named;
// without a registry the image is local to the builder.
func TestBuildKey(t *testing.T) {
	files := func(hello, readme string) []string {
		return []string{"app/Dockerfile", "FROM base\nCOPY hello /\n", "app/hello", hello, "README.md", readme,
			"tool/build/Containerfile", "FROM base AS prod\n"}
	}
	env := mustEnv(t, builtEnv, files("v1", "r1")...)
	web, worker, tool := env.Service("web"), env.Service("worker"), env.Service("tool")
	if web.Build == nil || !web.Build.Push || web.Build.Builder != "vm1" || web.Build.Context != "app" || web.Build.Args["VERSION"] != "2" {
		t.Fatalf("web's build: %+v", web.Build)
	}
	if want := "registry.example.com:5000/shop/web:ctx-" + web.Build.Digest[7:23]; web.Image != want || env.Instance("web-2").Image != want {
		t.Errorf("web's image %s (web-2 %s), want %s", web.Image, env.Instance("web-2").Image, want)
	}
	if v, _ := env.Instance("web-1").Env.Get("DOCKER_IMAGE"); v != web.Image {
		t.Errorf("DOCKER_IMAGE %q", v)
	}
	// The same context, arguments and Dockerfile: the same build.
	if worker.Build.Push || worker.Build.Builder != "vm2" || worker.Build.Digest != web.Build.Digest ||
		worker.Image != "maestro-sync.local/shop:"+strings.SplitN(web.Image, ":", 3)[2] {
		t.Errorf("worker's build %+v, image %s", worker.Build, worker.Image)
	}
	if tool.Build.Builder != "vm2" || tool.Build.Dockerfile != "build/Containerfile" || tool.Build.Target != "prod" || len(tool.Build.Files) != 1 {
		t.Errorf("tool's build %+v", tool.Build)
	}

	readme := mustEnv(t, builtEnv, files("v1", "r2")...)
	if readme.Instance("web-1").SpecHash != env.Instance("web-1").SpecHash {
		t.Errorf("a file outside the context changed the spec")
	}
	code := mustEnv(t, builtEnv, files("v2", "r1")...)
	if code.Instance("web-1").SpecHash == env.Instance("web-1").SpecHash || code.Instance("tool-1").SpecHash != env.Instance("tool-1").SpecHash {
		t.Errorf("a file of app/ changed web %v, tool %v", code.Instance("web-1").SpecHash != env.Instance("web-1").SpecHash,
			code.Instance("tool-1").SpecHash != env.Instance("tool-1").SpecHash)
	}
}
