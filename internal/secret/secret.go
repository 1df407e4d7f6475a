// Package secret decides which environment values are sensitive, so that
// plans, logs, errors and the status API can show that a value changed
// without showing the value.
package secret

import (
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// DefaultPatterns are the name fragments that make a variable sensitive.
var DefaultPatterns = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH", "CERT", "DSN"}

// Matcher tells sensitive variables apart.
type Matcher struct {
	patterns []string
}

// New returns a matcher for the given name fragments (case-insensitive);
// nil or empty means DefaultPatterns.
func New(patterns []string) *Matcher {
	if len(patterns) == 0 {
		patterns = DefaultPatterns
	}
	m := &Matcher{}
	for _, p := range patterns {
		if p = strings.TrimSpace(p); p != "" {
			m.patterns = append(m.patterns, strings.ToUpper(p))
		}
	}
	return m
}

// Name reports whether a variable name looks secret.
func (m *Matcher) Name(name string) bool {
	upper := strings.ToUpper(name)
	for _, p := range m.patterns {
		if strings.Contains(upper, p) {
			return true
		}
	}
	return false
}

// Var reports whether a variable is sensitive: its name looks secret, or
// its value came from an env file or (through a template) from the
// process environment.
func (m *Matcher) Var(v manifest.EnvVar) bool {
	return v.FromFile || v.FromEnv || m.Name(v.Name)
}

// Redacted is what is shown instead of a sensitive value.
const Redacted = "(sensitive)"
