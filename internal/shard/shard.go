// Package shard selects the environments of one daemon when several
// daemons split a repository between them (run --environments,
// --environment-selector): by the path of their manifest, with globs, and
// by their labels (__maestro.labels), with a Kubernetes label selector.
//
// A daemon loads every manifest of the repository, so that the checks
// between environments (names, containers on a ship) still hold, and then
// acts on its shard only. Environments of the repository outside the
// shard are not its business: never planned, locked, reported or pruned.
// An environment whose file is gone is pruned by the daemons whose shard
// selects the file and labels its objects recorded when they were created
// (label.File, label.EnvLabels).
package shard

import (
	"fmt"
	pathpkg "path"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Shard is a selection of environments. The nil Shard selects every
// environment.
type Shard struct {
	// Globs select manifests by their path (relative to the daemon's
	// --path, "/" separated; "**" crosses directories): a manifest is
	// selected when a glob matches its path or a directory above it.
	// None: any path.
	Globs []string
	// Selector selects environments by their labels; nil: any labels.
	Selector labels.Selector
}

// ParseGlobs checks path globs; empty ones are dropped.
func ParseGlobs(globs []string) ([]string, error) {
	var out []string
	for _, g := range globs {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if strings.HasPrefix(g, "/") {
			return nil, fmt.Errorf("glob %q: paths are relative to --path, without a leading /", g)
		}
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("glob %q: invalid pattern (unclosed [ or {, or a trailing \\)", g)
		}
		out = append(out, g)
	}
	return out, nil
}

// ParseSelector parses a label selector ("shard=a", "team in (web,api)",
// "!legacy"); "" selects nothing, so the result is nil.
func ParseSelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", s, err)
	}
	return sel, nil
}

// New returns the shard of the given globs and selector, or nil when
// both are empty (every environment).
func New(globs []string, selector labels.Selector) *Shard {
	if len(globs) == 0 && selector == nil {
		return nil
	}
	return &Shard{Globs: slices.Clone(globs), Selector: selector}
}

// Match reports whether the environment of the manifest at path, with
// those labels, is in the shard.
func (s *Shard) Match(path string, lbls map[string]string) bool {
	if s == nil {
		return true
	}
	return s.matchPath(path) && (s.Selector == nil || s.Selector.Matches(labels.Set(lbls)))
}

func (s *Shard) matchPath(path string) bool {
	if len(s.Globs) == 0 {
		return true
	}
	for _, g := range s.Globs {
		// The manifest, or a directory above it: "apps/eu" selects
		// apps/eu/shop/manifest.yml.
		for p := path; p != "." && p != "/" && p != ""; p = pathpkg.Dir(p) {
			if ok, _ := doublestar.Match(g, p); ok {
				return true
			}
		}
	}
	return false
}

// Prunes reports whether the shard prunes an environment that is no
// longer in the repository, whose objects recorded the manifest's path
// and labels (ok false: they recorded none). Without a shard every
// environment of the owner is pruned; a shard prunes only environments
// it selects as recorded, so two daemons with disjoint shards never prune
// each other's.
func (s *Shard) Prunes(path string, lbls map[string]string, ok bool) bool {
	if s == nil {
		return true
	}
	return ok && s.Match(path, lbls)
}

// String describes the shard: "environments=GLOB,GLOB selector=SEL", or
// "" for every environment.
func (s *Shard) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	if len(s.Globs) > 0 {
		parts = append(parts, "environments="+strings.Join(s.Globs, ","))
	}
	if s.Selector != nil {
		parts = append(parts, "selector="+s.Selector.String())
	}
	return strings.Join(parts, " ")
}

// SelectorString is the selector as text ("" without one).
func (s *Shard) SelectorString() string {
	if s == nil || s.Selector == nil {
		return ""
	}
	return s.Selector.String()
}

// View is a repository as one shard sees it.
type View struct {
	// Repo holds the environments of the shard, its invalid files (and
	// those whose labels could not be read, which may be its own) and
	// their diagnostics.
	Repo *manifest.Repo
	// Others are the names of the environments of the repository outside
	// the shard, valid or not: they are not "no longer in the
	// repository", and nothing of them is changed.
	Others map[string]bool
	// Outside are the valid environments of the repository outside the
	// shard.
	Outside []*manifest.Environment
}

// Split divides a loaded repository (every manifest of it, so that the
// checks between environments hold) into the shard's part and the names
// of the others. An invalid file is the shard's when its path and labels
// match, or when its path matches and its labels could not be read.
func (s *Shard) Split(repo *manifest.Repo) View {
	if s == nil {
		return View{Repo: repo}
	}
	mine := &manifest.Repo{}
	v := View{Repo: mine, Others: map[string]bool{}}
	files := map[string]bool{}
	for _, env := range repo.Environments {
		if s.Match(env.Path, env.Labels) {
			mine.Environments = append(mine.Environments, env)
			files[env.File] = true
		} else {
			v.Others[env.Name] = true
			v.Outside = append(v.Outside, env)
		}
	}
	for _, file := range repo.Invalid {
		p, known := repo.Partial[file]
		path := file
		switch {
		case !s.matchPath(path):
		case known && p.LabelsOK && (s.Selector == nil || s.Selector.Matches(labels.Set(p.Labels))):
			fallthrough
		case !known || !p.LabelsOK:
			// Ours, or perhaps ours: it stalls here, and while it is
			// invalid no environment is pruned as gone.
			mine.Invalid = append(mine.Invalid, file)
			files[file] = true
			if known {
				if mine.Partial == nil {
					mine.Partial = map[string]manifest.Partial{}
				}
				mine.Partial[file] = p
			}
			continue
		}
		if known && p.Name != "" {
			v.Others[p.Name] = true
		}
	}
	for _, d := range repo.Diagnostics {
		if files[d.File] {
			mine.Diagnostics = append(mine.Diagnostics, d)
		}
	}
	return v
}
