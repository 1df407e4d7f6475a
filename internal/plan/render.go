package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

var symbols = map[Action]string{
	Create: "+", Replace: "~", Remove: "-", Conflict: "!", Orphan: "?", Unknown: "?", Unchanged: "=", Bake: "⏸", Build: "⚒", Scale: "↕",
}

var colors = map[Action]string{
	Create: "\x1b[32m", Replace: "\x1b[33m", Remove: "\x1b[31m", Conflict: "\x1b[31;1m", Orphan: "\x1b[36m", Unknown: "\x1b[35m",
}

const reset = "\x1b[0m"

// TextOptions control the text form.
type TextOptions struct {
	// Color adds ANSI colours (for a terminal).
	Color bool
	// Unchanged lists unchanged instances too.
	Unchanged bool
}

// WriteText writes the plan in its stable text form: per environment, one
// line per step with its causes indented below, then a summary line.
func (p *Plan) WriteText(w io.Writer, opt TextOptions) error {
	var b strings.Builder
	env := ""
	width := 0
	for _, st := range p.Steps {
		width = max(width, len(st.Instance))
	}
	status := map[string]EnvChange{}
	for _, ec := range p.Environments {
		status[ec.Name] = ec
	}
	header := func(name string) {
		if env != "" {
			b.WriteByte('\n')
		}
		env = name
		fmt.Fprintf(&b, "environment %s", name)
		if ec, ok := status[name]; ok && ec.Status != "changed" {
			fmt.Fprintf(&b, " (%s)", ec.Status)
		}
		b.WriteByte('\n')
	}
	if p.Owner != "" {
		fmt.Fprintf(&b, "owner %s\n\n", p.Owner)
	}
	for _, ec := range p.Environments {
		switch ec.Status {
		case "invalid":
			header(ec.Name)
			for _, e := range ec.Errors {
				fmt.Fprintf(&b, "  %s\n", e)
			}
		case RolledBack:
			header(ec.Name)
			fmt.Fprintf(&b, "  %s\n", ec.Note)
		case Paused:
			header(ec.Name)
			fmt.Fprintf(&b, "  paused: nothing is changed until it is resumed; %d change(s) wait\n", len(ec.Pending))
			for _, st := range ec.Pending {
				fmt.Fprintf(&b, "    %s %s on %s: %s\n", st.Action, st.Instance, st.Ship, strings.Join(st.Causes, "; "))
			}
		}
	}
	for _, st := range p.Steps {
		if st.Action == Unchanged && !opt.Unchanged && len(st.Changes) == 0 {
			continue
		}
		if st.Env != env {
			header(st.Env)
		}
		line := fmt.Sprintf("  %s %-*s  %-9s", symbols[st.Action], width, st.Instance, st.Action)
		where := "on " + st.Ship
		if st.Service != "" {
			where = st.Service + " " + where
		}
		switch st.Action {
		case Bake:
			where = st.Service
		case Build:
			where = "on " + st.Ship
		}
		line += " " + where
		if opt.Color && colors[st.Action] != "" {
			line = colors[st.Action] + line + reset
		}
		b.WriteString(line)
		b.WriteByte('\n')
		for _, c := range details(st) {
			fmt.Fprintf(&b, "      %s\n", c)
		}
	}
	s := p.Summary()
	if env != "" {
		b.WriteByte('\n')
	}
	b.WriteString("Plan: ")
	if s.Build > 0 {
		fmt.Fprintf(&b, "%d to build, ", s.Build)
	}
	fmt.Fprintf(&b, "%d to create, %d to replace, %d to remove, %d unchanged", s.Create, s.Replace, s.Remove, s.Unchanged)
	if s.Scale > 0 {
		fmt.Fprintf(&b, ", %d to scale", s.Scale)
	}
	for _, extra := range []struct {
		n    int
		what string
	}{{s.Conflict, "conflicting"}, {s.Orphan, "orphaned (use --prune to remove)"}, {s.Unknown, "on unreachable ships"}, {s.Invalid, "invalid environment(s)"}} {
		if extra.n > 0 {
			fmt.Fprintf(&b, ", %d %s", extra.n, extra.what)
		}
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// details returns the lines that explain a step: its changes with values
// when known, else its causes.
func details(st Step) []string {
	var out []string
	for _, w := range st.Warnings {
		out = append(out, "⚠ "+w)
	}
	if len(st.Changes) == 0 {
		return append(out, st.Causes...)
	}
	for _, c := range st.Changes {
		// A value of several lines keeps them, indented under its field.
		out = append(out, strings.ReplaceAll(c.Text(), "\n", "\n        "))
	}
	return out
}

// String returns the text form without colours.
func (p *Plan) String() string {
	var b strings.Builder
	_ = p.WriteText(&b, TextOptions{})
	return b.String()
}

// document is the JSON form of a plan.
type document struct {
	Version      int         `json:"version"`
	Revision     string      `json:"revision,omitempty"`
	Owner        string      `json:"owner,omitempty"`
	Desired      string      `json:"desired,omitempty"`
	Prune        bool        `json:"prune,omitempty"`
	Things       []string    `json:"things,omitempty"`
	WithDeps     bool        `json:"with_dependencies,omitempty"`
	Base         string      `json:"base,omitempty"`
	Summary      Summary     `json:"summary"`
	Environments []EnvChange `json:"environments,omitempty"`
	Steps        []Step      `json:"steps"`
}

// jsonVersion is the version of the JSON schema; it changes only when a
// field changes meaning or goes away.
const jsonVersion = 1

// WriteJSON writes the plan as indented JSON with a summary.
func (p *Plan) WriteJSON(w io.Writer) error {
	steps := p.Steps
	if steps == nil {
		steps = []Step{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(document{Version: jsonVersion, Revision: p.Revision, Owner: p.Owner, Desired: p.Desired, Prune: p.Prune, Things: p.Things, WithDeps: p.WithDeps, Base: p.Base, Summary: p.Summary(), Environments: p.Environments, Steps: steps})
}

// ReadJSON reads a plan written by WriteJSON.
func ReadJSON(r io.Reader) (*Plan, error) {
	var d document
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if d.Version != jsonVersion {
		return nil, fmt.Errorf("read plan: version %d, this maestro-sync reads version %d", d.Version, jsonVersion)
	}
	return &Plan{Revision: d.Revision, Owner: d.Owner, Desired: d.Desired, Prune: d.Prune, Things: d.Things, WithDeps: d.WithDeps, Base: d.Base, Environments: d.Environments, Steps: d.Steps}, nil
}
