package plan

import (
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
)

// MarkdownOptions control the Markdown form.
type MarkdownOptions struct {
	// Title heads the document, e.g. "maestro-sync plan: main..feature".
	Title string
	// MaxBytes bounds the output (GitHub comments hold 65,536
	// characters); details past it are left out with a note. 0 means
	// 60,000.
	MaxBytes int
}

// Marker starts every Markdown plan, so that a CI job can find and update
// its previous comment instead of adding a new one.
const Marker = "<!-- maestro-sync plan -->"

// WriteMarkdown writes the plan for a pull-request comment: a summary
// table per environment, then collapsible details per service. Sensitive
// values never appear.
func (p *Plan) WriteMarkdown(w io.Writer, opt MarkdownOptions) error {
	limit := opt.MaxBytes
	if limit <= 0 {
		limit = 60000
	}
	var head strings.Builder
	head.WriteString(Marker + "\n")
	if opt.Title != "" {
		fmt.Fprintf(&head, "### %s\n\n", opt.Title)
	}
	s := p.Summary()
	extra := ""
	for _, x := range []struct {
		n    int
		what string
	}{{s.Scale, "to scale"}, {s.Conflict, "conflicting"}, {s.Orphan, "orphaned"}, {s.Unknown, "on unreachable ships"}} {
		if x.n > 0 {
			extra += fmt.Sprintf(", %d %s", x.n, x.what)
		}
	}
	builds := ""
	if s.Build > 0 {
		builds = fmt.Sprintf("%d to build, ", s.Build)
	}
	if s.Changes() == 0 && s.Build == 0 && extra == "" && !p.hasInvalid() {
		head.WriteString("**No changes.** Every instance stays as it is.\n\n")
	} else {
		fmt.Fprintf(&head, "**Plan:** %s%d to create, %d to replace, %d to remove, %d unchanged%s.\n\n", builds, s.Create, s.Replace, s.Remove, s.Unchanged, extra)
	}
	head.WriteString("| Environment | Status | Create | Replace | Remove | Unchanged |\n|---|---|--:|--:|--:|--:|\n")
	envs := p.envList()
	for i, ec := range envs {
		if head.Len() > limit/2 {
			fmt.Fprintf(&head, "| … | %d more environment(s) | | | | |\n", len(envs)-i)
			break
		}
		c := p.countEnv(ec.Name)
		fmt.Fprintf(&head, "| %s | %s | %d | %d | %d | %d |\n", mdCode(ec.Name), statusText(ec.Status), c.Create, c.Replace, c.Remove, c.Unchanged)
	}
	head.WriteString("\n")
	var warned []string
	for _, st := range p.Steps {
		for _, w := range st.Warnings {
			warned = append(warned, fmt.Sprintf("- ⚠ %s/%s: %s", mdCode(st.Env), mdCode(st.Instance), mdEscape(w)))
		}
	}
	if len(warned) > 0 {
		head.WriteString("**Reaches beyond its container** (check that this is intended):\n\n")
		for i, w := range warned {
			if i == 20 {
				fmt.Fprintf(&head, "- … and %d more\n", len(warned)-i)
				break
			}
			head.WriteString(w + "\n")
		}
		head.WriteString("\n")
	}

	var sections []string
	for _, ec := range p.envList() {
		if ec.Status == "invalid" {
			var b strings.Builder
			fmt.Fprintf(&b, "<details open><summary>❌ <b>%s</b>: invalid manifest</summary>\n\n```\n", htmlName(ec.Name))
			for _, e := range ec.Errors {
				b.WriteString(e + "\n")
			}
			b.WriteString("```\n</details>\n\n")
			sections = append(sections, b.String())
			continue
		}
		for _, svc := range p.services(ec.Name) {
			sections = append(sections, p.serviceSection(ec.Name, svc))
		}
	}
	var b strings.Builder
	b.WriteString(head.String())
	for i, sec := range sections {
		if b.Len()+len(sec) > limit-200 {
			fmt.Fprintf(&b, "> **Truncated:** %d more section(s) not shown. Run `maestro-sync plan` locally for the full plan.\n", len(sections)-i)
			break
		}
		b.WriteString(sec)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func statusText(s string) string {
	switch s {
	case "added":
		return "🆕 added"
	case "removed":
		return "🗑️ removed"
	case "changed":
		return "✏️ changed"
	case "invalid":
		return "❌ invalid"
	}
	return "unchanged"
}

func (p *Plan) hasInvalid() bool {
	for _, ec := range p.Environments {
		if ec.Status == "invalid" {
			return true
		}
	}
	return false
}

// envList returns the environments of the plan: its EnvChange list, or
// one entry per environment of the steps.
func (p *Plan) envList() []EnvChange {
	if len(p.Environments) > 0 {
		return p.Environments
	}
	var out []EnvChange
	seen := map[string]bool{}
	for _, st := range p.Steps {
		if !seen[st.Env] {
			seen[st.Env] = true
			out = append(out, EnvChange{Name: st.Env, Status: "changed"})
		}
	}
	return out
}

func (p *Plan) countEnv(env string) Summary {
	sub := &Plan{}
	for _, st := range p.Steps {
		if st.Env == env {
			sub.Steps = append(sub.Steps, st)
		}
	}
	return sub.Summary()
}

// services returns the services of an environment with steps worth
// showing, in plan order.
func (p *Plan) services(env string) []string {
	var out []string
	for _, st := range p.Steps {
		if st.Env != env || (st.Action == Unchanged && len(st.Changes) == 0) {
			continue
		}
		if len(out) == 0 || out[len(out)-1] != st.Service {
			found := false
			for _, s := range out {
				found = found || s == st.Service
			}
			if !found {
				out = append(out, st.Service)
			}
		}
	}
	return out
}

// serviceSection is the collapsible details of a service: one row per
// group of instances with the same action and the same changes (an image
// bump over 40 instances is one row), each change field by field.
func (p *Plan) serviceSection(env, svc string) string {
	var steps []Step
	for _, st := range p.Steps {
		if st.Env == env && st.Service == svc {
			steps = append(steps, st)
		}
	}
	count := (&Plan{Steps: steps}).Summary()
	var parts []string
	for _, x := range []struct {
		n    int
		what string
	}{{count.Build, "to build"}, {count.Create, "to create"}, {count.Replace, "to replace"}, {count.Scale, "to scale"}, {count.Remove, "to remove"},
		{count.Conflict, "conflicting"}, {count.Orphan, "orphaned"}, {count.Unknown, "on unreachable ships"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "settings changed, no container replaced")
	}
	groups := groupSteps(steps)
	if len(groups) == 1 && len(groups[0].steps) > 1 && len(groups[0].steps[0].Changes) > 0 {
		// What every instance of the service gets, in the summary.
		c := groups[0].steps[0].Changes[0]
		detail := strings.Join(strings.Fields(c.Detail()), " ") // one line: a blank line would end the <summary>
		parts[0] += fmt.Sprintf(" (%s: %s on %d instances)", html.EscapeString(c.Field), html.EscapeString(detail), len(groups[0].steps))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<details><summary><code>%s</code> · service <b>%s</b>: %s</summary>\n\n", htmlName(env), htmlName(svc), strings.Join(parts, ", "))
	b.WriteString("| Instance | Ship | Action | Why |\n|---|---|---|---|\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s |\n", instancesCell(g.steps), shipsCell(g.steps), symbols[g.steps[0].Action], g.steps[0].Action, strings.Join(g.lines, "<br>"))
	}
	b.WriteString("\n</details>\n\n")
	return b.String()
}

// stepGroup is steps with the same action and the same reasons.
type stepGroup struct {
	steps []Step
	lines []string
}

// groupSteps groups the steps worth showing by action and reasons, in
// the order each group first appears.
func groupSteps(steps []Step) []stepGroup {
	var out []stepGroup
	index := map[string]int{}
	for _, st := range steps {
		if st.Action == Unchanged && len(st.Changes) == 0 {
			continue
		}
		var lines []string
		for _, w := range st.Warnings {
			lines = append(lines, "⚠ **"+mdEscape(w)+"**")
		}
		for _, c := range st.Changes {
			lines = append(lines, mdCode(c.Field)+": "+mdEscape(c.Detail()))
		}
		if len(st.Changes) == 0 {
			for _, c := range st.Causes {
				lines = append(lines, mdEscape(c))
			}
		}
		key := string(st.Action) + "\x00" + strings.Join(lines, "\x00")
		if i, ok := index[key]; ok {
			out[i].steps = append(out[i].steps, st)
			continue
		}
		index[key] = len(out)
		out = append(out, stepGroup{steps: []Step{st}, lines: lines})
	}
	return out
}

// maxNamed bounds the names a grouped row lists.
const maxNamed = 4

// instancesCell names the instances of a group: all of a few, else the
// first ones and how many.
func instancesCell(steps []Step) string {
	var names []string
	for i, st := range steps {
		if i == maxNamed && len(steps) > maxNamed+1 {
			names = append(names, fmt.Sprintf("… %d instances in all", len(steps)))
			break
		}
		names = append(names, mdCode(st.Instance))
	}
	return strings.Join(names, ", ")
}

// shipsCell names the ships of a group, once each.
func shipsCell(steps []Step) string {
	var ships []string
	for _, st := range steps {
		if s := mdEscape(st.Ship); !slices.Contains(ships, s) {
			ships = append(ships, s)
		}
	}
	if len(ships) > maxNamed+1 {
		return strings.Join(ships[:maxNamed], ", ") + fmt.Sprintf(", … %d ships", len(ships))
	}
	return strings.Join(ships, ", ")
}

// htmlName writes a name inside raw HTML (a <summary> line).
func htmlName(s string) string {
	return html.EscapeString(strings.ReplaceAll(s, "`", "'"))
}

// mdCode writes a name as a code span that cannot break a table row.
func mdCode(s string) string {
	return "`" + strings.NewReplacer("`", "'", "|", `\|`, "\n", " ").Replace(s) + "`"
}

// mdEscape keeps text from breaking a table or being read as Markdown or
// HTML.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "`", "'", "*", `\*`, "_", `\_`, "\r", "", "\n", "<br>")
	return r.Replace(s)
}
