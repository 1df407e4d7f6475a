package manifest

import (
	"strings"
	"testing"
	"testing/fstest"
)

const riskyManifest = `__maestro: {schema: 2}
name: ops
ships: {s1: {ip: 10.0.0.1}}
services:
  agent:
    image: agent:1
    instances:
      agent-1:
        ship: s1
        privileged: true
        net: host
        volumes:
          /var/run/docker.sock: /var/run/docker.sock
          /: /host
          /srv/data: /data
`

func TestPolicy(t *testing.T) {
	load := func(p *Policy) *Repo {
		return LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(riskyManifest)}}, Options{Policy: p})
	}
	if err := load(nil).Err(); err != nil {
		t.Fatalf("without a policy: %v", err)
	}
	pol, err := ParsePolicy("policy.yml", []byte("deny: [privileged, host_network, docker_socket, host_paths]\nallowed_host_paths: [/srv]\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = load(pol).Err()
	if err == nil {
		t.Fatal("the policy denies nothing")
	}
	msg := err.Error()
	for _, want := range []string{
		"manifest.yml:10:21: services.agent.instances.agent-1.privileged: a privileged container (denied by the policy)",
		"manifest.yml:11:14: services.agent.instances.agent-1.net: the host's network (denied by the policy)",
		"manifest.yml:13:11: services.agent.instances.agent-1.volumes./var/run/docker.sock: the Docker socket",
		"manifest.yml:14:11: services.agent.instances.agent-1.volumes./: host path / is outside the allowed host paths (/srv)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "/srv/data") {
		t.Errorf("an allowed host path is denied:\n%s", msg)
	}
	// An environment of its own rules.
	pol, err = ParsePolicy("policy.yml", []byte("deny: [privileged]\nenvironments:\n  ops: {deny: []}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := load(pol).Err(); err != nil {
		t.Errorf("the environment's own rules allow it: %v", err)
	}
	if _, err := ParsePolicy("policy.yml", []byte("deny: [root]\n")); err == nil || !strings.Contains(err.Error(), `unknown rule "root"`) {
		t.Errorf("unknown rule: %v", err)
	}
	if _, err := ParsePolicy("policy.yml", []byte("denny: [privileged]\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("unknown key: %v", err)
	}
	in := load(nil).Environments[0].Instance("agent-1")
	if r := Risks(in); len(r) != 4 {
		t.Errorf("risks: %q", r)
	}
}

// A YAML alias does not get a volume past the policy.
func TestPolicyThroughAnAlias(t *testing.T) {
	text := `__maestro: {schema: 2}
name: ops
ships: {s1: {ip: 10.0.0.1}}
x-volumes: &vols
  /var/run/docker.sock: /var/run/docker.sock
services:
  agent:
    image: agent:1
    instances:
      agent-1: {ship: s1, volumes: *vols}
`
	pol, err := ParsePolicy("policy.yml", []byte("deny: [docker_socket]\n"))
	if err != nil {
		t.Fatal(err)
	}
	repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(text)}}, Options{Policy: pol})
	if err := repo.Err(); err == nil || !strings.Contains(err.Error(), "Docker socket") {
		t.Errorf("err = %v", err)
	}
}
