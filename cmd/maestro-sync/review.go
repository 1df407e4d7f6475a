package main

import (
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maestro-sync/maestro-sync/internal/diff"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/secret"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// review holds the flags of a plan between two revisions.
type review struct {
	base, head       string
	baseDir, headDir string
	secrets          []string
	templateEnv      []string
}

func (r *review) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.base, "base", "", "plan between two revisions of the local Git repository: the base revision (e.g. origin/main)")
	f.StringVar(&r.head, "head", "", "the head revision (default: the files on disk)")
	f.StringVar(&r.baseDir, "base-dir", "", "plan between two directories: the base directory")
	f.StringVar(&r.headDir, "head-dir", "", "the head directory (default: PATH)")
	f.StringSliceVar(&r.templateEnv, "template-env", nil, "with --base or --base-dir: "+templateEnvUsage)
	f.StringSliceVar(&r.secrets, "secret-pattern", nil, "name fragments that make an env variable sensitive (default: "+strings.Join(secret.DefaultPatterns, ",")+")")
}

func (r *review) enabled() bool {
	return r.base != "" || r.baseDir != "" || r.head != "" || r.headDir != ""
}

// run computes the plan between base and head; invalid reports whether
// the head has invalid manifests.
func (r *review) run(g *globals, stderr io.Writer, path string) (p *plan.Plan, invalid bool, err error) {
	if r.base != "" && r.baseDir != "" {
		return nil, false, fmt.Errorf("--base and --base-dir exclude each other")
	}
	var baseFS, headFS fs.FS
	var baseName, headName string
	switch {
	case r.base != "" || r.head != "":
		local, err := source.OpenLocal(path)
		if err != nil {
			return nil, false, err
		}
		if r.base == "" {
			return nil, false, fmt.Errorf("--head needs --base")
		}
		snap, err := local.Snapshot(r.base)
		if err != nil {
			return nil, false, err
		}
		baseFS, baseName = snap.Files, shortRev(snap.Revision)
		head, err := source.Dir(path)
		if err != nil {
			return nil, false, err
		}
		headFS, headName = head.Files, "working tree"
		if r.head != "" {
			snap, err := local.Snapshot(r.head)
			if err != nil {
				return nil, false, err
			}
			headFS, headName = snap.Files, shortRev(snap.Revision)
		}
	default:
		if r.baseDir == "" {
			return nil, false, fmt.Errorf("--head-dir needs --base-dir")
		}
		head := path
		if r.headDir != "" {
			head = r.headDir
		}
		baseSnap, err := source.Dir(r.baseDir)
		if err != nil {
			return nil, false, err
		}
		headSnap, err := source.Dir(head)
		if err != nil {
			return nil, false, err
		}
		baseFS, baseName = baseSnap.Files, r.baseDir
		headFS, headName = headSnap.Files, head
	}
	prefix := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(path))+"/", "./")
	if r.baseDir != "" {
		prefix = ""
	}
	// The head is untrusted (anyone may open a pull request): its
	// templates read only the variables the job names.
	pol, err := g.loadPolicy()
	if err != nil {
		return nil, false, err
	}
	opts := manifest.Options{Environ: templateEnviron(r.templateEnv, nil), Strict: g.strict, Prefix: prefix, Policy: pol}
	baseEnvs, baseBad, err := loadTree(baseFS, opts)
	if err != nil {
		return nil, false, fmt.Errorf("base %s: %w", baseName, err)
	}
	if len(baseBad) > 0 {
		fmt.Fprintf(stderr, "warning: the base (%s) has %d invalid environment(s); they count as absent\n", baseName, len(baseBad))
	}
	headEnvs, headBad, err := loadTree(headFS, opts)
	if err != nil {
		return nil, false, fmt.Errorf("head %s: %w", headName, err)
	}
	// An environment whose head file is invalid is reported as invalid,
	// not as removed: its base is left out of the comparison.
	for i := range headBad {
		for j := 0; j < len(baseEnvs); j++ {
			if baseEnvs[j].File == headBad[i].File {
				headBad[i].Name = baseEnvs[j].Name
				baseEnvs = append(baseEnvs[:j], baseEnvs[j+1:]...)
				j--
			}
		}
	}
	p = diff.Revisions(baseEnvs, headEnvs, secret.New(r.secrets))
	p.Base, p.Revision = baseName, headName
	p.Environments = append(headBad, p.Environments...)
	return p, len(headBad) > 0, nil
}

// loadTree loads every manifest of a tree; a tree without manifests is
// empty. Invalid environments come back as EnvChanges with their errors.
func loadTree(fsys fs.FS, opts manifest.Options) ([]*manifest.Environment, []plan.EnvChange, error) {
	names, err := manifest.Find(fsys)
	if err != nil {
		return nil, nil, err
	}
	repo, err := manifest.LoadFiles(fsys, names, opts)
	if err != nil {
		return nil, nil, err
	}
	return repo.Environments, invalidEnvs(repo), nil
}

// invalidEnvs describes the environments of repo that did not validate,
// with their errors, for a plan.
func invalidEnvs(repo *manifest.Repo) []plan.EnvChange {
	var bad []plan.EnvChange
	for _, file := range repo.Invalid {
		ec := plan.EnvChange{Name: file, File: file, Status: "invalid"}
		for _, d := range repo.Diagnostics {
			if d.File == file && d.Severity == manifest.SeverityError {
				ec.Errors = append(ec.Errors, d.Error())
			}
		}
		bad = append(bad, ec)
	}
	return bad
}

func shortRev(rev string) string { return rev[:min(12, len(rev))] }
