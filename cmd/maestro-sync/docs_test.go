package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/maestro-sync/maestro-sync/internal/plan"
)

// TestReviewWorkflowsParse checks the CI workflows of docs/review.md: they
// are valid YAML of the expected shape, run validate and a Markdown plan
// between revisions, and find their previous comment by the plan's marker.
func TestReviewWorkflowsParse(t *testing.T) {
	data, err := os.ReadFile("../../docs/review.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) != 2 {
		t.Fatalf("want 2 yaml blocks (GitHub Actions, GitLab CI), got %d", len(blocks))
	}
	for i, b := range blocks {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(b[1]), &doc); err != nil {
			t.Fatalf("block %d does not parse: %v", i, err)
		}
		text := b[1]
		for _, want := range []string{"maestro-sync validate --strict", "maestro-sync plan --base", "-o markdown", plan.Marker} {
			if !strings.Contains(text, want) {
				t.Errorf("block %d lacks %q", i, want)
			}
		}
	}
	var gh struct {
		On   map[string]any `yaml:"on"`
		Jobs map[string]struct {
			Steps []map[string]any `yaml:"steps"`
		} `yaml:"jobs"`
		Permissions map[string]string `yaml:"permissions"`
	}
	if err := yaml.Unmarshal([]byte(blocks[0][1]), &gh); err != nil {
		t.Fatal(err)
	}
	if _, ok := gh.On["pull_request"]; !ok || gh.Permissions["pull-requests"] != "write" || len(gh.Jobs["plan"].Steps) < 5 {
		t.Errorf("GitHub workflow shape: %+v", gh)
	}
	var gl map[string]struct {
		Script []string `yaml:"script"`
		Rules  []any    `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(blocks[1][1]), &gl); err != nil {
		t.Fatal(err)
	}
	job, ok := gl["maestro-sync-plan"]
	if !ok || len(job.Script) < 4 || len(job.Rules) == 0 {
		t.Errorf("GitLab job shape: %+v", gl)
	}
}
