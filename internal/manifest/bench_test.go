package manifest

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// genRepo generates a repository of envs environments holding services
// services in all, each with two instances, ports, env and dependencies on
// a few base services.
func genRepo(envs, services int) fstest.MapFS {
	fsys := fstest.MapFS{}
	per := services / envs
	for e := range envs {
		var b strings.Builder
		fmt.Fprintf(&b, "__maestro: {schema: 2}\nname: env%d\nships:\n", e)
		for s := range 4 {
			fmt.Fprintf(&b, "  ship%d: {ip: 10.0.%d.%d, docker_port: 2376}\n", s, e, s+1)
		}
		b.WriteString("services:\n")
		for s := range per {
			fmt.Fprintf(&b, "  svc%d:\n    image: registry.example.com/team/svc%d:1.%d\n", s, s, s)
			if s >= 5 {
				fmt.Fprintf(&b, "    requires: [svc%d, svc%d]\n    wants_info: [svc%d]\n", s%5, (s+1)%5, s-1)
			}
			fmt.Fprintf(&b, "    env:\n      LOG_LEVEL: info\n      JAVA_OPTS: [-Xmx256m, -Dsvc=%d]\n", s)
			fmt.Fprintf(&b, "    ports:\n      http: \"8080:%d\"\n      admin: {exposed: 9000, external: [127.0.0.1, %d]}\n", 10000+s, 20000+s)
			b.WriteString("    lifecycle:\n      running: [{type: http, port: http, path: /health}]\n")
			b.WriteString("    limits: {memory: 256m, cpu: 512}\n    instances:\n")
			for i := range 2 {
				fmt.Fprintf(&b, "      e%d-svc%d-%d:\n        ship: ship%d\n        volumes: {/srv/svc%d/%d: /data}\n        restart: on-failure:3\n", e, s, i, (s+i)%4, s, i)
			}
		}
		fsys[fmt.Sprintf("env%d/manifest.yml", e)] = &fstest.MapFile{Data: []byte(b.String())}
	}
	return fsys
}

// BenchmarkLoad loads a generated repository of 1,000 services with two
// instances each.
func BenchmarkLoad(b *testing.B) {
	for _, envs := range []int{1, 10} {
		fsys := genRepo(envs, 1000)
		b.Run(fmt.Sprintf("1000svc-2inst-%denv", envs), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				repo, err := Load(fsys, Options{})
				if err != nil || repo.Err() != nil {
					b.Fatalf("load: %v %v", err, repo.Err())
				}
				if n := len(repo.Environments); n != envs {
					b.Fatalf("got %d environments", n)
				}
			}
		})
	}
}
