// Package sourcetest provides real Git servers for tests, on loopback:
//
//   - NewRepo makes a bare repository with the git CLI, and a work tree that
//     Commit (or CommitSigned, Tag) commits in and pushes from;
//   - ServeHTTP / NewHTTPServer serve it with `git http-backend` (CGI), with
//     optional basic auth, and can be stopped and started again on the same
//     address;
//   - ServeSSH / NewSSHServer run OpenSSH's sshd with its own host key,
//     client key and known_hosts file;
//   - NewGPGKey makes an OpenPGP key with gpg to sign commits.
//
// Everything lives in temporary directories and is stopped by t.Cleanup.
// The tools come from Debian packages: git, openssh-server (sshd) and gnupg
// (gpg); a missing tool fails the test with the package to install, it is
// never skipped.
package sourcetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Delete as the content of a file in Commit's map removes the file.
const Delete = "\x00delete\x00"

// Repo is a bare repository and the work tree that pushes to it.
type Repo struct {
	// Bare is the bare repository that the servers serve.
	Bare string
	// Work is the work tree that commits are made in.
	Work string
	// Branch receives the commits: "main", the bare repository's HEAD.
	Branch string

	mu sync.Mutex // serializes the git commands of the work tree
}

// NewRepo makes an empty bare repository (whose HEAD is "main") and a work
// tree whose origin it is. Nothing is committed yet.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	need(t, "git", "git")
	dir := t.TempDir()
	r := &Repo{Bare: filepath.Join(dir, "repo.git"), Work: filepath.Join(dir, "work"), Branch: "main"}
	run(t, dir, nil, "git", "init", "-q", "--bare", "-b", r.Branch, r.Bare)
	run(t, dir, nil, "git", "init", "-q", "-b", r.Branch, r.Work)
	r.Git(t, "remote", "add", "origin", r.Bare)
	return r
}

// Git runs git in the work tree and returns its trimmed output.
func (r *Repo) Git(t testing.TB, args ...string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return run(t, r.Work, nil, "git", args...)
}

// Commit writes the files (path → content; Delete removes the file; parent
// directories are created), commits everything with the message, pushes to
// the bare repository's branch and returns the full commit hash. A commit
// without changes is allowed.
func (r *Repo) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	return r.commit(t, nil, files, msg)
}

// CommitSigned is Commit with an OpenPGP signature by key.
func (r *Repo) CommitSigned(t testing.TB, key *GPGKey, files map[string]string, msg string) string {
	t.Helper()
	return r.commit(t, key, files, msg)
}

func (r *Repo) commit(t testing.TB, key *GPGKey, files map[string]string, msg string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, content := range files {
		p := filepath.Join(r.Work, filepath.FromSlash(name))
		if content == Delete {
			if err := os.Remove(p); err != nil {
				t.Fatalf("sourcetest: %v", err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("sourcetest: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("sourcetest: %v", err)
		}
	}
	run(t, r.Work, nil, "git", "add", "-A")
	args := []string{"commit", "-q", "--allow-empty", "-m", msg}
	var env []string
	if key != nil {
		env = []string{"GNUPGHOME=" + key.Home}
		args = append([]string{"-c", "gpg.program=gpg", "-c", "user.signingkey=" + key.Fingerprint}, append(args, "-S")...)
	}
	run(t, r.Work, env, "git", args...)
	run(t, r.Work, nil, "git", "push", "-q", "origin", "HEAD:refs/heads/"+r.Branch)
	return run(t, r.Work, nil, "git", "rev-parse", "HEAD")
}

// Tag tags rev (a commit of the work tree, e.g. "HEAD"), annotated or
// lightweight, and pushes the tag.
func (r *Repo) Tag(t testing.TB, name, rev string, annotated bool) {
	t.Helper()
	args := []string{"tag", name, rev}
	if annotated {
		args = []string{"tag", "-a", "-m", "tag " + name, name, rev}
	}
	r.Git(t, args...)
	r.Git(t, "push", "-q", "origin", "refs/tags/"+name)
}

// Env is the environment of the git commands: isolated from the user's and
// system's git configuration, with a fixed identity and no prompts.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, append([]string{
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Maestro Test",
		"GIT_AUTHOR_EMAIL=test@maestro-sync.invalid",
		"GIT_COMMITTER_NAME=Maestro Test",
		"GIT_COMMITTER_EMAIL=test@maestro-sync.invalid",
	}, extra...)...)
}

// run runs a command in dir and returns its trimmed standard output; it
// fails the test, with the output, when the command fails.
func run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = Env(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sourcetest: %s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// need fails the test when a program is missing, naming the Debian package
// that provides it.
func need(t testing.TB, program, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("sourcetest: %s is missing: install Debian's %s (apt-get install %s; `make test` does it via scripts/docker-setup.sh)", program, pkg, pkg)
	}
	return p
}
