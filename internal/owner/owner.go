// Package owner names the source an environment comes from. Every object
// maestro-sync creates carries its owner's identity, and every decision
// (plan, prune, the MaestroNG verbs, the deploy lock) is scoped by it, so
// that two repositories, or two sub-paths of one repository, deploying to
// the same Docker engine or Kubernetes namespace never touch each other's
// objects, even when their environments share a name.
//
// The identity is derived from the Git repository: its remote URL without
// scheme, credentials, port and ".git", so that the https and ssh forms of
// one repository agree, plus the sub-path the manifests are loaded from.
// The CLI on a checkout and the daemon following that repository arrive at
// the same identity.
package owner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
)

// Owner is the identity of a source of environments.
type Owner struct {
	// Name is the readable identity, such as github.com/acme/deploy or
	// github.com/acme/deploy//apps.
	Name string `json:"name"`
	// ID is a short digest of Name: a valid Docker label and Kubernetes
	// label value, stored on every object.
	ID string `json:"id"`
}

// New returns the owner with the given readable name.
func New(name string) Owner {
	sum := sha256.Sum256([]byte(name))
	return Owner{Name: name, ID: hex.EncodeToString(sum[:8])}
}

// String returns the readable name.
func (o Owner) String() string { return o.Name }

// IsZero reports whether the owner is unset.
func (o Owner) IsZero() bool { return o.ID == "" }

// FromRemote returns the owner of the manifests under sub (a slash path
// relative to the repository root, "" or "." for the root) of the
// repository at remote.
func FromRemote(remote, sub string) Owner {
	name := NormalizeURL(remote)
	sub = strings.Trim(path.Clean("/"+filepath.ToSlash(sub)), "/")
	if sub != "" {
		name += "//" + sub
	}
	return New(name)
}

// NormalizeURL reduces a Git remote URL to host/path: no scheme,
// credentials, port, trailing slash or ".git", the host in lower case.
// https://user:token@GitHub.com/acme/deploy.git,
// ssh://git@github.com:22/acme/deploy and git@github.com:acme/deploy.git
// all give github.com/acme/deploy. A local path stays a cleaned path.
func NormalizeURL(remote string) string {
	remote = strings.TrimSpace(remote)
	var host, p string
	switch {
	case strings.Contains(remote, "://"):
		u, err := url.Parse(remote)
		if err != nil {
			return strip(redactUserinfo(remote))
		}
		if u.Scheme == "file" {
			return strip(path.Clean(u.Path))
		}
		host, p = u.Hostname(), u.Path
	case isSCP(remote):
		// [user@]host:path, as git and ssh read it.
		hp, rest, _ := strings.Cut(remote, ":")
		if i := strings.LastIndex(hp, "@"); i >= 0 {
			hp = hp[i+1:]
		}
		host, p = hp, rest
	default:
		return strip(path.Clean(filepath.ToSlash(remote)))
	}
	p = strings.TrimPrefix(strings.TrimPrefix(p, "/"), "~")
	p = strings.Trim(path.Clean("/"+p), "/")
	return strip(strings.ToLower(host) + "/" + p)
}

// isSCP reports whether s is the scp-like form [user@]host:path (a colon
// before any slash, and not a Windows drive letter).
func isSCP(s string) bool {
	colon := strings.Index(s, ":")
	slash := strings.Index(s, "/")
	return colon > 1 && (slash < 0 || colon < slash)
}

func strip(s string) string {
	s = strings.TrimRight(s, "/")
	return strings.TrimSuffix(s, ".git")
}

func redactUserinfo(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
		rest = rest[at+1:]
	}
	return scheme + "://" + rest
}

// Detect returns the owner of the manifests in dir: the remote of the Git
// checkout that holds dir (origin, else the first remote by name) plus
// dir's path inside the checkout; without a remote, the checkout's
// absolute path; outside any checkout, dir's absolute path.
func Detect(dir string) (Owner, error) { return detect(dir, true) }

// DetectRoot returns the owner of the whole repository that holds dir, as
// Detect of its root would: the owner of a single manifest file loaded
// from it (-f).
func DetectRoot(dir string) (Owner, error) { return detect(dir, false) }

func detect(dir string, withSub bool) (Owner, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Owner{}, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return New(filepath.ToSlash(abs)), nil
	}
	if err != nil {
		return Owner{}, fmt.Errorf("owner of %s: %w", dir, err)
	}
	root := abs
	if wt, err := repo.Worktree(); err == nil {
		root = wt.Filesystem.Root()
		if real, err := filepath.EvalSymlinks(root); err == nil {
			root = real
		}
	}
	sub, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(sub, "..") || !withSub {
		sub = ""
	}
	remotes, err := repo.Remotes()
	if err != nil {
		return Owner{}, fmt.Errorf("owner of %s: %w", dir, err)
	}
	slices.SortFunc(remotes, func(a, b *git.Remote) int {
		switch {
		case a.Config().Name == "origin":
			return -1
		case b.Config().Name == "origin":
			return 1
		}
		return strings.Compare(a.Config().Name, b.Config().Name)
	})
	for _, r := range remotes {
		if urls := r.Config().URLs; len(urls) > 0 {
			return FromRemote(urls[0], sub), nil
		}
	}
	return FromRemote(filepath.ToSlash(root), sub), nil
}
