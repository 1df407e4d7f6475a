package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const labelledEnv = `__maestro:
  schema: 2
  labels: {shard: a, team.example.com/owner: web}
name: shop
ships: {s: {ip: 10.0.0.1}}
services:
  web: {image: nginx, instances: {web-1: {ship: s}}}
`

func TestEnvironmentLabels(t *testing.T) {
	env := mustEnv(t, labelledEnv)
	want := map[string]string{"shard": "a", "team.example.com/owner": "web"}
	if diff := cmp.Diff(want, env.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if env.Schema != 2 {
		t.Errorf("schema = %d, want 2 (labels beside schema)", env.Schema)
	}
	if env := mustEnv(t, "name: x\nships: {}\n"); env.Labels != nil {
		t.Errorf("labels without __maestro.labels = %v, want nil", env.Labels)
	}
}

func TestEnvironmentLabelsInvalid(t *testing.T) {
	for _, tc := range []struct{ labels, want string }{
		{`[a, b]`, "manifest.yml:1:21: __maestro.labels: expected a mapping, got a list"},
		{`{"bad key!": x}`, `__maestro.labels.bad key!: invalid label key "bad key!"`},
		{`{shard: "not valid!"}`, `__maestro.labels.shard: invalid label value "not valid!"`},
		{`{shard: {a: b}}`, "__maestro.labels.shard: expected a string, got a mapping"},
	} {
		t.Run(tc.labels, func(t *testing.T) {
			repo := loadText(t, "__maestro: {labels: "+tc.labels+"}\nname: x\nships: {}\n")
			wantErrors(t, repo, tc.want)
			p, ok := repo.Partial["manifest.yml"]
			if !ok || p.Name != "x" || p.LabelsOK {
				t.Errorf("partial = %+v, %v; want the name x and labels not OK", p, ok)
			}
		})
	}
}

func TestPartialOfInvalidEnvironment(t *testing.T) {
	// Valid labels, broken elsewhere: the name and labels are still known.
	repo := loadText(t, "__maestro: {labels: {shard: b}}\nname: x\nships: {}\nservices: {web: {instances: {w: {ship: nowhere}}}}\n")
	if len(repo.Invalid) != 1 {
		t.Fatalf("invalid = %v, want the file", repo.Invalid)
	}
	want := Partial{Name: "x", Labels: map[string]string{"shard": "b"}, LabelsOK: true}
	if diff := cmp.Diff(want, repo.Partial["manifest.yml"]); diff != "" {
		t.Errorf("partial (-want +got):\n%s", diff)
	}
	// Broken YAML: nothing is known.
	repo = loadText(t, "name: [x\n")
	if _, ok := repo.Partial["manifest.yml"]; ok || len(repo.Invalid) != 1 {
		t.Errorf("broken YAML: partial %v, invalid %v; want no partial, the file invalid", repo.Partial, repo.Invalid)
	}
}
