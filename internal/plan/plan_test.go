package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/<name>.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

const (
	hostA = "tcp://10.0.0.1:2375"
	hostB = "tcp://10.0.0.2:2375"
)

// livePlan is a plan against live state with a step of every action, over
// two environments, with ordering edges.
func livePlan() *Plan {
	id := func(env, host, name string) string { return env + "/" + host + "/" + name }
	return &Plan{
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Desired:  "5f0c2b9e8d7a6b5c4d3e2f1a0b9c8d7e",
		Prune:    true,
		Steps: []Step{
			{ID: id("shop", hostA, "api-1.next-cd4a6af0"), Action: Remove, Env: "shop", Service: "api", Instance: "api-1.next-cd4a6af0",
				Ship: "s1", Host: hostA, Container: "c0ffee000001", LiveSpecHash: "cd4a6af04503236930db494759c966ec",
				Causes: []string{"leftover replacement container of an interrupted apply"}},
			{ID: id("shop", hostA, "db-1"), Action: Create, Env: "shop", Service: "db", Instance: "db-1", Ship: "s1", Host: hostA,
				SpecHash: "a854b919a64fa9e64090a9f9e45c25a1", Causes: []string{"not found"}},
			{ID: id("shop", hostB, "data-1"), Action: Unchanged, Env: "shop", Service: "data", Instance: "data-1", Ship: "s2", Host: hostB,
				SpecHash: "822e2592b3132cf562c0f2122d746091", Container: "c0ffee000002", LiveSpecHash: "822e2592b3132cf562c0f2122d746091"},
			{ID: id("shop", hostA, "api-1"), Action: Replace, Env: "shop", Service: "api", Instance: "api-1", Ship: "s1", Host: hostA,
				SpecHash: "cd4a6af04503236930db494759c966ec", Container: "c0ffee000003", LiveSpecHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
				Causes: []string{"image tag 1.2 → 1.3", "env DOCKER_IMAGE changed", "env DOCKER_TAG changed", "env FOO changed"},
				After:  []string{id("shop", hostA, "api-1.next-cd4a6af0"), id("shop", hostA, "db-1")}},
			{ID: id("shop", hostB, "api-2"), Action: Unknown, Env: "shop", Service: "api", Instance: "api-2", Ship: "s2", Host: hostB,
				SpecHash: "614c79971c72bd30791a951619691152", Causes: []string{"ship unreachable: dial tcp 10.0.0.2:2375: i/o timeout"}},
			{ID: id("shop", hostA, "web-1"), Action: Conflict, Env: "shop", Service: "web", Instance: "web-1", Ship: "s1", Host: hostA,
				SpecHash: "1c5bcc488a98cd80d347d35046b0f00f", Container: "beef00000004",
				Causes: []string{"a container named web-1 exists without maestro-sync labels; it is left alone"}},
			{ID: id("shop", hostA, "cache-1"), Action: Orphan, Env: "shop", Service: "cache", Instance: "cache-1", Ship: "s1", Host: hostA,
				Container: "c0ffee000005", LiveSpecHash: "77777777777777777777777777777777",
				Causes: []string{"no longer in the manifest (use --prune to remove)"}},
			{ID: id("shop", hostA, "worker-9"), Action: Remove, Env: "shop", Service: "worker", Instance: "worker-9", Ship: "s1", Host: hostA,
				Container: "c0ffee000006", LiveSpecHash: "88888888888888888888888888888888",
				Causes: []string{"no longer in the manifest"}},
			{ID: id("billing", hostA, "inv-1"), Action: Replace, Env: "billing", Service: "invoice", Instance: "inv-1", Ship: "b1", Host: hostA,
				SpecHash: "99999999999999999999999999999999", Container: "c0ffee000007", LiveSpecHash: "99999999999999999999999999999998",
				Causes: []string{"container is exited"}},
			{ID: id("legacy", hostA, "old-1"), Action: Remove, Env: "legacy", Service: "old", Instance: "old-1", Ship: hostA, Host: hostA,
				Container: "c0ffee000008", LiveSpecHash: "66666666666666666666666666666666",
				Causes: []string{"environment legacy is no longer in the repository"}},
		},
	}
}

// reviewPlan is a plan between two revisions, with environments of every
// status (the invalid one with errors) and changes of every kind.
func reviewPlan() *Plan {
	return &Plan{
		Base:     "main",
		Revision: "feature/bump-api",
		Environments: []EnvChange{
			{Name: "broken/manifest.yml", File: "broken/manifest.yml", Status: "invalid", Errors: []string{
				"broken/manifest.yml:4:3: ships.s1.ip: missing ship ip",
				"broken/manifest.yml:9:7: services.web.instances.web-1.ship: unknown ship s9 (ships: s1)",
			}},
			{Name: "billing", File: "billing/manifest.yml", Status: "changed"},
			{Name: "cart", File: "cart/manifest.yml", Status: "added"},
			{Name: "legacy", File: "legacy/manifest.yml", Status: "removed"},
			{Name: "shop", File: "shop/manifest.yml", Status: "changed"},
			{Name: "static", File: "static/manifest.yml", Status: "unchanged"},
		},
		Steps: []Step{
			{ID: "billing/b1/inv-1", Action: Replace, Env: "billing", Service: "invoice", Instance: "inv-1", Ship: "b1",
				Causes: []string{"image tag 3 → 4", "env.DB_PASSWORD changed", "env.DOCKER_IMAGE changed", "env.DOCKER_TAG changed"},
				Changes: []Change{
					{Field: "image", Old: "billing/invoice:3", New: "billing/invoice:4", Replaces: true},
					{Field: "env.DB_PASSWORD", Sensitive: true, Replaces: true},
					{Field: "env.DOCKER_IMAGE", Old: "billing/invoice:3", New: "billing/invoice:4", Source: "maestro", Replaces: true},
					{Field: "env.DOCKER_TAG", Old: "3", New: "4", Source: "maestro", Replaces: true},
				}},
			{ID: "cart/c1/store-1", Action: Create, Env: "cart", Service: "store", Instance: "store-1", Ship: "c1", Causes: []string{"environment cart added"}},
			{ID: "cart/c1/cart-1", Action: Create, Env: "cart", Service: "cart", Instance: "cart-1", Ship: "c1", Causes: []string{"environment cart added"}},
			{ID: "legacy/l1/old-1", Action: Remove, Env: "legacy", Service: "old", Instance: "old-1", Ship: "l1", Causes: []string{"environment legacy removed"}},
			{ID: "shop/s1/db-1", Action: Replace, Env: "shop", Service: "db", Instance: "db-1", Ship: "s1",
				Causes: []string{"env.DB_DB_1_PG_PORT changed", "ports.pg changed"},
				Changes: []Change{
					{Field: "env.DB_DB_1_PG_PORT", Old: "5432", New: "15432", Source: "maestro", Replaces: true},
					{Field: "ports.pg", Old: "5432:5432/tcp", New: "5432:15432/tcp", Replaces: true},
				}},
			{ID: "shop/s1/api-1", Action: Replace, Env: "shop", Service: "api", Instance: "api-1", Ship: "s1",
				Causes: []string{"env.DB_DB_1_PG_PORT changed (knock-on: injected from db)", "env.FOO added", "env.LOG_LEVEL removed", "limits changed", "lifecycle.running added"},
				Changes: []Change{
					{Field: "env.DB_DB_1_PG_PORT", Old: "5432", New: "15432", Source: "db", Replaces: true},
					{Field: "env.FOO", New: `""`, Replaces: true},
					{Field: "env.LOG_LEVEL", Old: "info", Replaces: true},
					{Field: "limits", Old: `{"memory":268435456}`, New: `{"memory":536870912}`, Replaces: true},
					{Field: "lifecycle.running", New: `[{"type":"tcp","port":"http","max_wait":180}]`},
				}},
			{ID: "shop/s2/web-1", Action: Unchanged, Env: "shop", Service: "web", Instance: "web-1", Ship: "s2",
				Causes:  []string{"requires changed"},
				Changes: []Change{{Field: "requires", Old: "api", New: "api, db"}}},
			{ID: "shop/s2/mon-1", Action: Unchanged, Env: "shop", Service: "mon", Instance: "mon-1", Ship: "s2"},
			{ID: "shop/s2/cache-1", Action: Create, Env: "shop", Service: "cache", Instance: "cache-1", Ship: "s2", Causes: []string{"service cache added"}},
			{ID: "shop/s2/gone-1", Action: Remove, Env: "shop", Service: "gone", Instance: "gone-1", Ship: "s2", Causes: []string{"service gone removed"}},
			{ID: "static/s1/www-1", Action: Unchanged, Env: "static", Service: "www", Instance: "www-1", Ship: "s1"},
		},
	}
}

// emptyPlan is a plan with nothing to do.
func emptyPlan() *Plan {
	return &Plan{Revision: "abc", Steps: []Step{
		{ID: "shop/" + hostA + "/db-1", Action: Unchanged, Env: "shop", Service: "db", Instance: "db-1", Ship: "s1", Host: hostA},
	}}
}

func TestWriteText(t *testing.T) {
	tests := []struct {
		name string
		p    *Plan
		opt  TextOptions
	}{
		{"live", livePlan(), TextOptions{}},
		{"live-unchanged", livePlan(), TextOptions{Unchanged: true}},
		{"live-color", livePlan(), TextOptions{Color: true}},
		{"review", reviewPlan(), TextOptions{}},
		{"review-unchanged", reviewPlan(), TextOptions{Unchanged: true}},
		{"empty", emptyPlan(), TextOptions{}},
		{"nothing", &Plan{}, TextOptions{Unchanged: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.p.WriteText(&b, tc.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, "text-"+tc.name, b.Bytes())
			if !tc.opt.Color {
				if s := tc.p.String(); !tc.opt.Unchanged && s != b.String() {
					t.Errorf("String() differs from WriteText")
				}
				if bytes.Contains(b.Bytes(), []byte("\x1b[")) {
					t.Error("colours without Color")
				}
			}
		})
	}
	// Colour changes nothing but the escape codes.
	var plain, color bytes.Buffer
	p := livePlan()
	_ = p.WriteText(&plain, TextOptions{})
	_ = p.WriteText(&color, TextOptions{Color: true})
	stripped := color.String()
	for _, c := range colors {
		stripped = strings.ReplaceAll(stripped, c, "")
	}
	stripped = strings.ReplaceAll(stripped, reset, "")
	if stripped != plain.String() {
		t.Errorf("coloured text without escapes differs:\n%s", cmp.Diff(plain.String(), stripped))
	}
}

func TestWriteJSON(t *testing.T) {
	for name, p := range map[string]*Plan{"live": livePlan(), "review": reviewPlan(), "nothing": {}} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, "json-"+name, b.Bytes())
			var doc map[string]any
			if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			if doc["version"] != float64(1) {
				t.Errorf("version %v", doc["version"])
			}
			if _, ok := doc["steps"].([]any); !ok {
				t.Errorf("steps is %T, want a list (never null)", doc["steps"])
			}
		})
	}
}

func TestReadJSON(t *testing.T) {
	for name, p := range map[string]*Plan{"live": livePlan(), "review": reviewPlan(), "nothing": {}, "options": {
		Revision: "r", Desired: "d", Prune: true, Things: []string{"web", "api-1"}, WithDeps: true, Base: "b",
	}} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSON(&b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(p, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	for name, in := range map[string]string{
		"version 2":        `{"version": 2, "steps": []}`,
		"no version":       `{"steps": []}`,
		"not json":         `version: 1`,
		"wrong type":       `{"version": "1"}`,
		"steps not a list": `{"version": 1, "steps": {}}`,
		"empty":            ``,
	} {
		t.Run(name, func(t *testing.T) {
			p, err := ReadJSON(strings.NewReader(in))
			if err == nil {
				t.Fatalf("read %q: %+v, want an error", in, p)
			}
			if !strings.HasPrefix(err.Error(), "read plan: ") {
				t.Errorf("error %q", err)
			}
		})
	}
	_, err := ReadJSON(strings.NewReader(`{"version": 2, "steps": []}`))
	if want := "read plan: version 2, this maestro-sync reads version 1"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestWriteMarkdown(t *testing.T) {
	tests := []struct {
		name string
		p    *Plan
		opt  MarkdownOptions
	}{
		{"live", livePlan(), MarkdownOptions{Title: "maestro-sync plan: deploy 0123456"}},
		{"review", reviewPlan(), MarkdownOptions{Title: "maestro-sync plan: main..feature/bump-api"}},
		{"empty", emptyPlan(), MarkdownOptions{}},
		{"invalid-only", &Plan{Environments: []EnvChange{{Name: "x/manifest.yml", Status: "invalid", Errors: []string{"x/manifest.yml:1:1: bad"}}}}, MarkdownOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.p.WriteMarkdown(&b, tc.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, "markdown-"+tc.name, b.Bytes())
			if !strings.HasPrefix(b.String(), Marker+"\n") {
				t.Error("no marker first")
			}
		})
	}
}

// longPlan has services services of 3 instances, each replaced with a few
// changes.
func longPlan(services int) *Plan {
	p := &Plan{Revision: "r2", Base: "r1", Environments: []EnvChange{{Name: "big", Status: "changed"}}}
	for s := range services {
		for i := range 3 {
			name := fmt.Sprintf("svc%03d-%d", s, i)
			p.Steps = append(p.Steps, Step{ID: "big/s1/" + name, Action: Replace, Env: "big", Service: fmt.Sprintf("svc%03d", s), Instance: name, Ship: "s1",
				Changes: []Change{
					{Field: "image", Old: fmt.Sprintf("acme/svc%03d:1.0", s), New: fmt.Sprintf("acme/svc%03d:1.1", s), Replaces: true},
					{Field: "env.LOG_LEVEL", Old: "info", New: "debug", Replaces: true},
				}})
		}
	}
	return p
}

func TestWriteMarkdownTruncated(t *testing.T) {
	for _, limit := range []int{2000, 5000, 20000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var b bytes.Buffer
			p := longPlan(100)
			if err := p.WriteMarkdown(&b, MarkdownOptions{Title: "big", MaxBytes: limit}); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if len(out) > limit {
				t.Errorf("%d bytes, want at most %d", len(out), limit)
			}
			shown := strings.Count(out, "<details><summary>")
			if shown == 0 || shown == 100 {
				t.Fatalf("%d sections shown", shown)
			}
			note := fmt.Sprintf("> **Truncated:** %d more section(s) not shown. Run `maestro-sync plan` locally for the full plan.\n", 100-shown)
			if !strings.HasSuffix(out, note) {
				t.Errorf("does not end with %q:\n...%s", note, out[max(0, len(out)-300):])
			}
			// Every section shown is complete.
			if strings.Count(out, "</details>") != shown {
				t.Errorf("%d sections closed, %d opened", strings.Count(out, "</details>"), shown)
			}
			// The summary is never truncated.
			if !strings.Contains(out, "**Plan:** 0 to create, 300 to replace, 0 to remove, 0 unchanged.") {
				t.Error("no summary line")
			}
		})
	}
	t.Run("golden", func(t *testing.T) {
		var b bytes.Buffer
		if err := longPlan(12).WriteMarkdown(&b, MarkdownOptions{MaxBytes: 3000}); err != nil {
			t.Fatal(err)
		}
		if b.Len() > 3000 {
			t.Errorf("%d bytes, want at most 3000", b.Len())
		}
		golden(t, "markdown-truncated", b.Bytes())
	})
	// The default bound is 60,000 bytes.
	var b bytes.Buffer
	if err := longPlan(1000).WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := b.Len(); n > 60000 || n < 50000 || !strings.Contains(b.String(), "> **Truncated:**") {
		t.Errorf("default bound: %d bytes", n)
	}
	// A plan that fits is not truncated.
	b.Reset()
	if err := longPlan(3).WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Truncated") || strings.Count(b.String(), "<details><summary>") != 3 {
		t.Errorf("small plan:\n%s", b.String())
	}
}

// With many environments, the summary table alone may pass MaxBytes.
func TestWriteMarkdownBoundWithManyEnvironments(t *testing.T) {
	p := &Plan{}
	for e := range 200 {
		env := fmt.Sprintf("environment-%03d", e)
		p.Environments = append(p.Environments, EnvChange{Name: env, Status: "changed"})
		p.Steps = append(p.Steps, Step{ID: env + "/s/x-1", Action: Create, Env: env, Service: "x", Instance: "x-1", Ship: "s", Causes: []string{"instance added"}})
	}
	var b bytes.Buffer
	if err := p.WriteMarkdown(&b, MarkdownOptions{MaxBytes: 4000}); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 4000 {
		t.Errorf("BUG: MaxBytes 4000 gives %d bytes: the per-environment summary table is never truncated", b.Len())
	}
}

func TestMarkdownEscapesNames(t *testing.T) {
	p := &Plan{Steps: []Step{{ID: "e/s/x-1", Action: Replace, Env: "e", Service: "svc|<b>*x*_y_`z`", Instance: "x-1", Ship: "ship|<i>`1`*_",
		Causes: []string{"env A|B changed <script>"},
	}, {ID: "e/s/x-2", Action: Replace, Env: "e", Service: "svc|<b>*x*_y_`z`", Instance: "x-2", Ship: "s",
		Changes: []Change{{Field: "env.A`B", Old: "<old>", New: "*new*|_x_", Replaces: true}},
	}}}
	var b bytes.Buffer
	if err := p.WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, raw := range []string{"<b>*x*", "<i>", "<script>", "<old>", "*new*", "`z`", "`1`", "A`B"} {
		if strings.Contains(out, raw) {
			t.Errorf("output holds %q unescaped:\n%s", raw, out)
		}
	}
	for _, want := range []string{
		"| `x-1` | ship\\|&lt;i&gt;'1'\\*\\_ | ~ replace | env A\\|B changed &lt;script&gt; |",
		"| `x-2` | s | ~ replace | `env.A'B`: &lt;old&gt; → \\*new\\*\\|\\_x\\_ |",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no row %q in:\n%s", want, out)
		}
	}
	// Every table row keeps its five cell borders.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| `x-") {
			if n := strings.Count(line, "|") - strings.Count(line, `\|`); n != 5 {
				t.Errorf("row with %d unescaped |: %s", n, line)
			}
		}
	}
}

// Variable and port names are free text in a manifest (an env name only
// may not hold "="); in the code span of a table cell a | still ends the
// cell.
func TestMarkdownEscapesFieldNames(t *testing.T) {
	p := &Plan{Steps: []Step{{ID: "e/s/x-1", Action: Replace, Env: "e", Service: "x", Instance: "x-1", Ship: "s",
		Changes: []Change{{Field: "env.A|B", Old: "1", New: "2", Replaces: true}},
	}}}
	var b bytes.Buffer
	if err := p.WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "| `x-1`") {
			if n := strings.Count(line, "|") - strings.Count(line, `\|`); n != 5 {
				t.Errorf("BUG: change field env.A|B breaks the table row: %d cell borders, want 5: %s", n, line)
			}
			return
		}
	}
	t.Fatalf("no row for x-1:\n%s", b.String())
}

// A section whose steps change nothing and carry no changes (a conflict,
// an orphan, an unreachable ship) does not claim that settings changed.
func TestMarkdownSectionSummaryOfInertSteps(t *testing.T) {
	var b bytes.Buffer
	if err := livePlan().WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		for _, svc := range []string{"web", "cache"} {
			if strings.Contains(line, "service <b>"+svc+"</b>") && strings.Contains(line, "settings changed") {
				t.Errorf("BUG: service %s, whose only step is a conflict or an orphan, is summarised as %q", svc, line)
			}
		}
	}
}

// Inside the HTML summary line of a section Markdown is not interpreted,
// so a name there needs HTML escaping only: a Markdown backslash escape
// shows as a backslash.
func TestMarkdownSummaryLineEscaping(t *testing.T) {
	p := &Plan{Steps: []Step{{ID: "e/s/x-1", Action: Create, Env: "e", Service: "my_service", Instance: "x-1", Ship: "s"}}}
	var b bytes.Buffer
	if err := p.WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "service <b>my_service</b>") {
		line := b.String()[strings.Index(b.String(), "<details>"):]
		line = line[:strings.Index(line, "\n")]
		t.Errorf("BUG: service my_service shows as %q in the <summary> line (raw HTML, where \\_ is not an escape)", line)
	}
}

// Environment names are free text in a manifest; they must not break the
// summary table or inject HTML.
func TestMarkdownEscapesEnvironmentNames(t *testing.T) {
	name := "shop|eu <prod>"
	p := &Plan{Steps: []Step{{ID: name + "/s/x-1", Action: Create, Env: name, Service: "x", Instance: "x-1", Ship: "s"}}}
	var b bytes.Buffer
	if err := p.WriteMarkdown(&b, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	var row string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| `shop") {
			row = line
		}
	}
	if n := strings.Count(row, "|") - strings.Count(row, `\|`); n != 7 {
		t.Errorf("environment %q breaks the summary row %q: %d cell borders, want 7", name, row, n)
	}
	// Inside a code span <prod> is text, not HTML; elsewhere it must be
	// escaped.
	outside := regexp.MustCompile("`[^`]*`").ReplaceAllString(out, "")
	if strings.Contains(outside, "<prod>") {
		t.Errorf("raw <prod> outside a code span:\n%s", out)
	}
}

func TestMdEscape(t *testing.T) {
	tests := map[string]string{
		"plain-name.1": "plain-name.1",
		"a|b":          `a\|b`,
		"<tag>":        "&lt;tag&gt;",
		"`code`":       "'code'",
		"*bold*":       `\*bold\*`,
		"_it_":         `\_it\_`,
		"two\nlines":   "two<br>lines", // newlines kept in a table cell
		"all |<>`*_":   "all \\|&lt;&gt;'\\*\\_",
	}
	for in, want := range tests {
		if got := mdEscape(in); got != want {
			t.Errorf("mdEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSummary(t *testing.T) {
	got := livePlan().Summary()
	want := Summary{Create: 1, Replace: 2, Remove: 3, Unchanged: 1, Conflict: 1, Orphan: 1, Unknown: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	if got.Changes() != 6 {
		t.Errorf("Changes() = %d, want 6", got.Changes())
	}
	if s := (&Plan{}).Summary(); s != (Summary{}) || s.Changes() != 0 {
		t.Errorf("empty plan: %+v", s)
	}
	// An action nobody knows is counted nowhere.
	if s := (&Plan{Steps: []Step{{Action: "explode"}}}).Summary(); s != (Summary{}) {
		t.Errorf("unknown action: %+v", s)
	}
	// The review plan's counts.
	if diff := cmp.Diff(Summary{Create: 3, Replace: 3, Remove: 2, Unchanged: 3, Invalid: 1}, reviewPlan().Summary()); diff != "" {
		t.Errorf("review summary (-want +got):\n%s", diff)
	}
}

func TestMutating(t *testing.T) {
	var got []string
	for _, st := range livePlan().Mutating() {
		got = append(got, string(st.Action)+" "+st.Instance)
	}
	want := []string{"remove api-1.next-cd4a6af0", "create db-1", "replace api-1", "remove worker-9", "replace inv-1", "remove old-1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mutating (-want +got):\n%s", diff)
	}
	if m := emptyPlan().Mutating(); m != nil {
		t.Errorf("nothing to do: %+v", m)
	}
	for a, want := range map[Action]bool{Create: true, Replace: true, Remove: true, Unchanged: false, Conflict: false, Orphan: false, Unknown: false, "": false} {
		if a.Mutates() != want {
			t.Errorf("%q.Mutates() = %v", a, !want)
		}
	}
}

func TestValidate(t *testing.T) {
	for name, p := range map[string]*Plan{"live": livePlan(), "review": reviewPlan(), "empty": emptyPlan(), "nothing": {}} {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	step := func(id string, a Action, after ...string) Step {
		return Step{ID: id, Action: a, Env: "e", Instance: id, After: after}
	}
	tests := []struct {
		name  string
		steps []Step
		want  string
	}{
		{"duplicate id", []Step{step("a", Create), step("b", Remove), step("a", Remove)}, "step a: duplicate id"},
		{"unknown action", []Step{step("a", "explode")}, `step a: unknown action "explode"`},
		{"empty action", []Step{step("a", "")}, `step a: unknown action ""`},
		{"created twice", []Step{
			{ID: "e/h1/x", Action: Create, Env: "e", Instance: "x"},
			{ID: "e/h2/x", Action: Replace, Env: "e", Instance: "x"},
		}, "step e/h2/x: instance e/x is created twice"},
		{"after a missing step", []Step{step("a", Create, "zz")}, "step a: runs after zz, which is missing or later"},
		{"after a later step", []Step{step("a", Create, "b"), step("b", Create)}, "step a: runs after b, which is missing or later"},
		{"after a step that changes nothing", []Step{step("a", Unchanged), step("b", Create, "a")}, "step b: runs after a, which changes nothing"},
		{"several", []Step{step("a", "explode", "b"), step("b", Orphan), step("c", Remove, "b")},
			"step a: unknown action \"explode\"\nstep a: runs after b, which is missing or later\nstep c: runs after b, which changes nothing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Plan{Steps: tc.steps}).Validate()
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
	// The same instance in two environments, or removed on one host and
	// created on another, is fine.
	ok := &Plan{Steps: []Step{
		{ID: "e/h1/x", Action: Create, Env: "e", Instance: "x"},
		{ID: "f/h1/x", Action: Create, Env: "f", Instance: "x"},
		{ID: "e/h2/x", Action: Remove, Env: "e", Instance: "x", After: []string{"e/h1/x"}},
	}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid plan: %v", err)
	}
	t.Run("after itself", func(t *testing.T) {
		err := (&Plan{Steps: []Step{step("a", Create, "a")}}).Validate()
		if err == nil {
			t.Error("BUG: Validate accepts a step that runs after itself (apply.Run would wait for it forever)")
		}
	})
}

func TestChangeText(t *testing.T) {
	tests := []struct {
		c    Change
		want string
	}{
		{Change{Field: "image", Old: "a:1", New: "a:2", Replaces: true}, "image: a:1 → a:2"},
		{Change{Field: "env.NEW", New: "x", Replaces: true}, "env.NEW: added x"},
		{Change{Field: "env.OLD", Old: "x", Replaces: true}, "env.OLD: removed (was x)"},
		{Change{Field: "env.DB_PASSWORD", Sensitive: true, Replaces: true}, "env.DB_PASSWORD: changed (sensitive value hidden)"},
		{Change{Field: "env.API_KEY", Sensitive: true, Added: true, Replaces: true}, "env.API_KEY: added (sensitive value hidden)"},
		{Change{Field: "env.OLD_KEY", Sensitive: true, Removed: true, Replaces: true}, "env.OLD_KEY: removed (sensitive value hidden)"},
		{Change{Field: "env.DB_DB_1_HOST", Old: "10.0.0.1", New: "10.0.0.2", Source: "db", Replaces: true},
			"env.DB_DB_1_HOST: 10.0.0.1 → 10.0.0.2 (knock-on: injected from db)"},
		{Change{Field: "env.DB_TOKEN", Sensitive: true, Source: "db", Replaces: true},
			"env.DB_TOKEN: changed (sensitive value hidden) (knock-on: injected from db)"},
		{Change{Field: "env.DOCKER_TAG", Old: "1", New: "2", Source: "maestro", Replaces: true}, "env.DOCKER_TAG: 1 → 2"},
		{Change{Field: "lifecycle.running", New: "[...]"}, "lifecycle.running: added [...] (does not replace the container)"},
		{Change{Field: "requires", Old: "a", New: "a, b"}, "requires: a → a, b (does not replace the container)"},
		{Change{Field: "wants_info", Old: "mon"}, "wants_info: removed (was mon) (does not replace the container)"},
	}
	for _, tc := range tests {
		if got := tc.c.Text(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
		if got, want := tc.c.Detail(), strings.TrimPrefix(tc.want, tc.c.Field+": "); got != want {
			t.Errorf("Detail %+v: %q, want %q", tc.c, got, want)
		}
	}
}
