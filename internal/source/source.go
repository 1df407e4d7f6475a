// Package source provides the desired state's files: a Git revision (of a
// local repository or a remote one fetched into a cache) or a local
// directory, as a Snapshot with its revision, commit time and files.
package source

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Snapshot is the content of the repository at one revision.
type Snapshot struct {
	// Revision is the commit hash, or for a directory a digest of its
	// manifests.
	Revision string
	// Time is the commit time (zero for a directory).
	Time time.Time
	// Subject is the first line of the commit message, and Author the
	// commit author's name (both bounded, without control characters;
	// empty for a directory).
	Subject, Author string
	// Files holds the repository's files (below the configured sub-path).
	Files fs.FS
}

// Local is a Git repository on this machine, such as the working copy a
// CI job runs in.
type Local struct {
	repo *git.Repository
	// root is the work tree's root; sub the path below it that holds the
	// manifests.
	root, sub string
}

// OpenLocal opens the Git repository that contains dir. Revisions are read
// from dir's path inside it.
func OpenLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	l := &Local{repo: repo}
	if wt, err := repo.Worktree(); err == nil {
		l.root = wt.Filesystem.Root()
	}
	if l.root != "" {
		root, _ := filepath.EvalSymlinks(l.root)
		real, _ := filepath.EvalSymlinks(abs)
		if rel, err := filepath.Rel(root, real); err == nil && !strings.HasPrefix(rel, "..") {
			l.sub = filepath.ToSlash(rel)
		}
	}
	return l, nil
}

// Head returns the commit checked out, and whether the work tree's files
// below the manifests' path differ from it (uncommitted changes).
func (l *Local) Head() (string, bool, error) {
	ref, err := l.repo.Head()
	if err != nil {
		return "", false, fmt.Errorf("HEAD: %w", err)
	}
	wt, err := l.repo.Worktree()
	if err != nil {
		return ref.Hash().String(), false, nil // a bare repository
	}
	status, err := wt.Status()
	if err != nil {
		return "", false, fmt.Errorf("status: %w", err)
	}
	all := l.sub == "" || l.sub == "."
	prefix := strings.TrimSuffix(l.sub, "/") + "/"
	for path, st := range status {
		if (all || strings.HasPrefix(path, prefix)) && (st.Worktree != git.Unmodified || st.Staging != git.Unmodified) {
			return ref.Hash().String(), true, nil
		}
	}
	return ref.Hash().String(), false, nil
}

// Snapshot reads a revision: a branch, a tag, a commit hash (or a prefix),
// or an expression such as HEAD~1.
func (l *Local) Snapshot(rev string) (*Snapshot, error) {
	hash, err := l.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("revision %q: %w", rev, err)
	}
	commit, err := l.repo.CommitObject(*hash)
	if err != nil {
		return nil, fmt.Errorf("revision %q: %w", rev, err)
	}
	return snapshotOf(commit, l.sub)
}

// snapshotOf makes the snapshot of a commit, below sub.
func snapshotOf(commit *object.Commit, sub string) (*Snapshot, error) {
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit.Hash, err)
	}
	files, err := newTreeFS(tree, sub, commit.Committer.When)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit.Hash.String()[:12], err)
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(commit.Message), "\n")
	return &Snapshot{Revision: commit.Hash.String(), Time: commit.Committer.When, Files: files,
		Subject: Printable(subject, maxSubject), Author: Printable(commit.Author.Name, maxAuthor)}, nil
}

// Bounds of the commit details a snapshot carries: they come from whoever
// can push, and reach logs, the status API and notifications.
const (
	maxSubject = 200
	maxAuthor  = 100
)

// Printable returns s without control characters, cut to n runes (an
// ellipsis marks the cut): text from a commit or a client, made fit for a
// log, a status page or a notification.
func Printable(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		if n == 0 {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			continue
		}
		b.WriteRune(r)
		n--
	}
	return b.String()
}

// Dir returns a snapshot of a directory of this machine, read through
// RootFS: nothing outside it, no FIFO or device, no file over the limit.
func Dir(dir string) (*Snapshot, error) {
	files, err := RootFS(dir)
	if err != nil {
		return nil, err
	}
	return &Snapshot{Files: files}, nil
}
