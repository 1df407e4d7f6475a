package manifest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity tells whether a Diagnostic makes its environment invalid.
type Severity int

const (
	// SeverityError makes the environment invalid: nothing of it is deployed.
	SeverityError Severity = iota
	// SeverityWarning is reported but does not stop the environment, unless
	// Options.Strict turns warnings into errors.
	SeverityWarning
)

// Error is one problem found in a manifest, located by file, line, column and
// the YAML path of the offending key.
type Error struct {
	File string // path as the user sees it, e.g. apps/shop/manifest.yml
	Line int    // 1-based; 0 when the problem concerns the whole file
	Col  int    // 1-based
	Path string // YAML path, e.g. services.web.instances.www-1.ship
	Msg  string
	// Severity is SeverityError or SeverityWarning.
	Severity Severity
	// Rendered is true when Line and Col point into the output of the
	// template, whose lines differ from the source file.
	Rendered bool
}

// Error formats the problem as FILE:LINE:COL: yaml.path: message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Rendered {
		b.WriteString(" (line of the rendered template; see `maestro-sync render -o template`)")
	}
	return b.String()
}

// Errors is a list of problems, sorted by file and position. It implements
// error so that a list of problems can be returned as one.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual problems.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// HasErrors reports whether any problem has SeverityError.
func (es Errors) HasErrors() bool {
	return slices.ContainsFunc(es, func(e *Error) bool { return e.Severity == SeverityError })
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}
