package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The policy denies a privileged container in validate, plan and apply,
// with the key's location; the review plan marks it with ⚠ even when no
// policy denies it.
func TestPolicyGate(t *testing.T) {
	dir := t.TempDir()
	const manifest = "__maestro: {schema: 2}\nname: ops\nships: {s1: {ip: 10.0.0.1}}\nservices:\n  agent:\n    image: agent:%s\n    instances:\n      agent-1: {ship: s1%s}\n"
	write := func(rel, text string) { t.Helper(); writeFile(t, dir, rel, text) }
	write("base/ops/manifest.yml", strings.NewReplacer("%s", "1").Replace(strings.Replace(manifest, "%s}", "}", 1)))
	write("head/ops/manifest.yml", strings.Replace(strings.Replace(manifest, "%s", "2", 1), "%s", ", privileged: true", 1))
	write("policy.yml", "deny: [privileged, docker_socket]\n")
	policy := filepath.Join(dir, "policy.yml")

	for format := range reviewFormats {
		out, stderr, code := cli(t, "plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", format)
		if code != 2 || !strings.Contains(out, "privileged container") || format != "json" && !strings.Contains(out, "⚠") {
			t.Errorf("%s review without a policy: exit %d\n%s%s", format, code, out, stderr)
		}
		out, stderr, code = cli(t, "plan", "--policy", policy, "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", format)
		if code != 1 || !strings.Contains(out+stderr, "privileged: a privileged container (denied by the policy)") {
			t.Errorf("%s review with the policy: exit %d\n%s%s", format, code, out, stderr)
		}
	}
	head := filepath.Join(dir, "head")
	for _, args := range [][]string{{"validate", head}, {"plan", head}, {"apply", head}} {
		out, stderr, code := cli(t, append([]string{"--policy", policy}, args...)...)
		if code != 1 || !strings.Contains(stderr, "ops/manifest.yml:8:") || !strings.Contains(stderr, "denied by the policy") {
			t.Errorf("%s with the policy: exit %d\n%s%s", args[0], code, out, stderr)
		}
	}
	write("bad.yml", "deny: [everything]\n")
	if _, stderr, code := cli(t, "--policy", filepath.Join(dir, "bad.yml"), "validate", head); code != 1 || !strings.Contains(stderr, `unknown rule "everything"`) {
		t.Errorf("a bad policy: exit %d %s", code, stderr)
	}
}
