package source_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/source"
	"github.com/maestro-sync/maestro-sync/internal/source/sourcetest"
)

// recorder records the remote operations reported to GitOptions.Observe.
type recorder struct {
	mu   sync.Mutex
	ops  []string
	errs []error
}

func (r *recorder) observe(op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d < 0 {
		op += "(negative duration)"
	}
	r.ops = append(r.ops, op)
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

// take returns the operations recorded since the last call, and forgets
// the errors.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops, r.errs = nil, nil
	return ops
}

func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

var (
	checkOnly     = []string{"check"}
	checkAndFetch = []string{"check", "fetch"}
)

func newGit(t *testing.T, opts source.GitOptions) (*source.Git, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts.Observe = rec.observe
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	g, err := source.NewGit(opts)
	if err != nil {
		t.Fatalf("NewGit: %v", err)
	}
	return g, rec
}

func fetch(t *testing.T, g *source.Git) *source.Snapshot {
	t.Helper()
	snap, err := g.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return snap
}

func read(t *testing.T, fsys fs.FS, name string) string {
	t.Helper()
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(data)
}

// packs returns the sizes of the pack files of the cache, oldest first.
func packs(t *testing.T, cache string) []int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(cache, "*", "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	type pack struct {
		mod  time.Time
		size int64
	}
	var list []pack
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, pack{fi.ModTime(), fi.Size()})
	}
	slices.SortFunc(list, func(a, b pack) int { return a.mod.Compare(b.mod) })
	var sizes []int64
	for _, p := range list {
		sizes = append(sizes, p.size)
	}
	return sizes
}

// bulk returns n files of 1 KiB of random (incompressible) content, under
// dir, so that a full clone is much larger than one changed file.
func bulk(dir string, n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		b := make([]byte, 512)
		rand.Read(b)
		files[fmt.Sprintf("%s/f%03d.txt", dir, i)] = hex.EncodeToString(b)
	}
	return files
}

func commitTime(t *testing.T, repo *sourcetest.Repo, rev string) time.Time {
	t.Helper()
	when, err := time.Parse(time.RFC3339, repo.Git(t, "show", "-s", "--format=%cI", rev))
	if err != nil {
		t.Fatal(err)
	}
	return when
}

// TestGitFetchesOnlyNewCommits: the first Fetch clones; a Fetch without a
// new commit only lists the remote ref; a new commit is fetched
// incrementally (a small new pack) and its files are visible, while the
// previous snapshot still shows the previous content.
func TestGitFetchesOnlyNewCommits(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	files := bulk("bulk", 200)
	files["app.yml"] = "version: 1\n"
	files["deploy/web.yml"] = "web: 1\n"
	c1 := repo.Commit(t, files, "first")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	cache := t.TempDir()
	g, rec := newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache})

	s1 := fetch(t, g)
	if diff := cmp.Diff(checkAndFetch, rec.take()); diff != "" {
		t.Errorf("first Fetch: ops (-want +got):\n%s", diff)
	}
	if s1.Revision != c1 {
		t.Errorf("revision %s, want %s", s1.Revision, c1)
	}
	if want := commitTime(t, repo, c1); !s1.Time.Equal(want) {
		t.Errorf("time %v, want %v", s1.Time, want)
	}
	if err := fstest.TestFS(s1.Files, "app.yml", "deploy/web.yml", "bulk/f000.txt", "bulk/f199.txt"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s1.Files, "app.yml"); got != "version: 1\n" {
		t.Errorf("app.yml = %q", got)
	}
	first := packs(t, cache)
	if len(first) != 1 {
		t.Fatalf("packs after the clone: %v", first)
	}

	fetchesBefore := srv.Fetches()
	s2 := fetch(t, g)
	if diff := cmp.Diff(checkOnly, rec.take()); diff != "" {
		t.Errorf("Fetch without a new commit: ops (-want +got):\n%s", diff)
	}
	if s2.Revision != c1 || srv.Fetches() != fetchesBefore {
		t.Errorf("revision %s (want %s), pack requests %d (want %d)", s2.Revision, c1, srv.Fetches(), fetchesBefore)
	}

	c2 := repo.Commit(t, map[string]string{"app.yml": "version: 2\n", "deploy/db.yml": "db: 1\n"}, "second: bump\x1b[31m app\n\nthe body")
	s3 := fetch(t, g)
	if s3.Subject != "second: bump[31m app" || s3.Author != "Maestro Test" {
		t.Errorf("commit subject %q and author %q", s3.Subject, s3.Author)
	}
	if diff := cmp.Diff(checkAndFetch, rec.take()); diff != "" {
		t.Errorf("Fetch of a new commit: ops (-want +got):\n%s", diff)
	}
	if s3.Revision != c2 {
		t.Errorf("revision %s, want %s", s3.Revision, c2)
	}
	if got := read(t, s3.Files, "app.yml"); got != "version: 2\n" {
		t.Errorf("app.yml = %q", got)
	}
	if got := read(t, s3.Files, "deploy/db.yml"); got != "db: 1\n" {
		t.Errorf("deploy/db.yml = %q", got)
	}
	if got := read(t, s1.Files, "app.yml"); got != "version: 1\n" {
		t.Errorf("the first snapshot changed: app.yml = %q", got)
	}
	after := packs(t, cache)
	if len(after) != 2 || after[1]*20 > after[0] {
		t.Errorf("pack sizes %v: want a second pack much smaller than the clone's (an incremental fetch)", after)
	}
	t.Logf("pack sizes: clone %d bytes, incremental %d bytes", after[0], after[1])
}

// TestGitRestartReusesCache: a new Git value on the same cache directory
// (a restart) does not clone again; later commits are fetched
// incrementally.
func TestGitRestartReusesCache(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, bulk("bulk", 100), "first")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	cache := t.TempDir()
	g1, _ := newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache})
	fetch(t, g1)
	fetchesBefore := srv.Fetches()

	g2, rec := newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache})
	s := fetch(t, g2)
	if diff := cmp.Diff(checkOnly, rec.take()); diff != "" {
		t.Errorf("Fetch after a restart: ops (-want +got):\n%s", diff)
	}
	if s.Revision != c1 || srv.Fetches() != fetchesBefore || len(packs(t, cache)) != 1 {
		t.Errorf("revision %s (want %s), pack requests %d (want %d), packs %v", s.Revision, c1, srv.Fetches(), fetchesBefore, packs(t, cache))
	}

	c2 := repo.Commit(t, map[string]string{"bulk/f000.txt": "changed"}, "second")
	s = fetch(t, g2)
	if diff := cmp.Diff(checkAndFetch, rec.take()); diff != "" {
		t.Errorf("Fetch of a new commit: ops (-want +got):\n%s", diff)
	}
	if p := packs(t, cache); s.Revision != c2 || len(p) != 2 || p[1]*20 > p[0] {
		t.Errorf("revision %s (want %s), pack sizes %v", s.Revision, c2, p)
	}
}

// TestGitSubPath: the snapshot holds the files below Path; a missing path
// is an error naming it.
func TestGitSubPath(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	repo.Commit(t, map[string]string{"README": "x", "deploy/prod/app.yml": "app", "deploy/prod/sub/db.yml": "db"}, "first")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")

	g, _ := newGit(t, source.GitOptions{URL: srv.URL, Path: "deploy/prod/"})
	s := fetch(t, g)
	if err := fstest.TestFS(s.Files, "app.yml", "sub/db.yml"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(s.Files, "README"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("README outside the sub-path: %v", err)
	}
	if !strings.Contains(g.String(), "path deploy/prod") {
		t.Errorf("String() = %q", g.String())
	}

	g, _ = newGit(t, source.GitOptions{URL: srv.URL, Path: "nope"})
	if _, err := g.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing sub-path: %v", err)
	}
}

// TestGitRefs: branches, lightweight and annotated tags (peeled to their
// commit) and pinned commits; a pinned commit is fetched once and never
// checked again, not even after a restart.
func TestGitRefs(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"v": "1"}, "one")
	repo.Tag(t, "v1", c1, false)
	c2 := repo.Commit(t, map[string]string{"v": "2"}, "two")
	repo.Tag(t, "v2", c2, true)
	repo.Git(t, "push", "-q", "origin", c1+":refs/heads/old")
	c3 := repo.Commit(t, map[string]string{"v": "3"}, "three")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")

	for _, tc := range []struct{ ref, want string }{
		{"", c3},
		{"main", c3},
		{"refs/heads/main", c3},
		{"old", c1},
		{"tags/v1", c1},
		{"refs/tags/v1", c1},
		{"v1", c1}, // no such branch: the tag
		{"tags/v2", c2},
		{c2, c2},
		{strings.ToUpper(c1), c1},
	} {
		g, _ := newGit(t, source.GitOptions{URL: srv.URL, Ref: tc.ref})
		s, err := g.Fetch(t.Context())
		if err != nil {
			t.Errorf("ref %q: %v", tc.ref, err)
			continue
		}
		if s.Revision != tc.want || read(t, s.Files, "v") != read(t, fetchRev(t, repo, tc.want), "v") {
			t.Errorf("ref %q: revision %s, want %s", tc.ref, s.Revision, tc.want)
		}
	}

	// Pinned: fetched once; no remote operation afterwards, nor after a
	// restart, while the branch moves on.
	cache := t.TempDir()
	g, rec := newGit(t, source.GitOptions{URL: srv.URL, Ref: c2, CacheDir: cache})
	fetch(t, g)
	if diff := cmp.Diff([]string{"fetch"}, rec.take()); diff != "" {
		t.Errorf("first Fetch of a pinned commit: ops (-want +got):\n%s", diff)
	}
	// The server does not send commits by hash (git's default): the
	// branches and tags were fetched instead.
	if all, _ := filepath.Glob(filepath.Join(cache, "*", "refs", "maestro", "all", "heads", "main")); len(all) != 1 {
		t.Errorf("pinned, server refusing hashes: branches not fetched")
	}
	repo.Commit(t, map[string]string{"v": "4"}, "four")
	if s := fetch(t, g); s.Revision != c2 {
		t.Errorf("pinned: revision %s, want %s", s.Revision, c2)
	}
	g, rec = newGit(t, source.GitOptions{URL: srv.URL, Ref: c2, CacheDir: cache})
	srv.Stop() // no server needed
	if s := fetch(t, g); s.Revision != c2 {
		t.Errorf("pinned after restart: revision %s, want %s", s.Revision, c2)
	}
	if ops := rec.take(); len(ops) != 0 {
		t.Errorf("pinned commit in the cache: remote operations %v", ops)
	}
	srv.Start(t)

	// A server that sends commits by hash: only the pinned commit is
	// fetched, not every branch and tag.
	repo.Git(t, "--git-dir", repo.Bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
	cache = t.TempDir()
	g, rec = newGit(t, source.GitOptions{URL: srv.URL, Ref: c1, CacheDir: cache})
	if s := fetch(t, g); s.Revision != c1 || read(t, s.Files, "v") != "1" {
		t.Errorf("pinned, by hash: revision %s, want %s", s.Revision, c1)
	}
	if diff := cmp.Diff([]string{"fetch"}, rec.take()); diff != "" {
		t.Errorf("pinned, by hash: ops (-want +got):\n%s", diff)
	}
	if all, _ := filepath.Glob(filepath.Join(cache, "*", "refs", "maestro", "all")); len(all) != 0 {
		t.Errorf("pinned, by hash: all refs were fetched: %v", all)
	}

	// A remote HEAD that is no symbolic ref (detached) is the branch at
	// its commit; go-git cannot list a remote whose detached HEAD no
	// branch points at: the error says to set a ref.
	detached := sourcetest.NewRepo(t)
	d1 := detached.Commit(t, map[string]string{"v": "d1"}, "one")
	detached.Git(t, "push", "-q", "origin", d1+":refs/heads/old")
	detached.Commit(t, map[string]string{"v": "d2"}, "two")
	detached.Git(t, "--git-dir", detached.Bare, "update-ref", "--no-deref", "HEAD", d1)
	detachedSrv := sourcetest.NewHTTPServer(t, detached, "", "")
	g, _ = newGit(t, source.GitOptions{URL: detachedSrv.URL})
	if s := fetch(t, g); s.Revision != d1 || read(t, s.Files, "v") != "d1" {
		t.Errorf("detached HEAD: revision %s, want %s", s.Revision, d1)
	}
	detached.Git(t, "push", "-q", "origin", ":refs/heads/old")
	g, _ = newGit(t, source.GitOptions{URL: detachedSrv.URL})
	if _, err := g.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "set a ref") {
		t.Errorf("detached HEAD without a branch: %v", err)
	}

	// An empty repository has nothing to serve.
	emptySrv := sourcetest.NewHTTPServer(t, sourcetest.NewRepo(t), "", "")
	g, _ = newGit(t, source.GitOptions{URL: emptySrv.URL})
	if _, err := g.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty repository: %v", err)
	}

	for _, ref := range []string{"nope", "tags/nope", strings.Repeat("ab", 20)} {
		g, _ := newGit(t, source.GitOptions{URL: srv.URL, Ref: ref})
		if _, err := g.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), ref) {
			t.Errorf("ref %q: error %v, want one naming the ref", ref, err)
		}
	}
}

// fetchRev reads a revision of the work tree, as the reference.
func fetchRev(t *testing.T, repo *sourcetest.Repo, rev string) fs.FS {
	t.Helper()
	l, err := source.OpenLocal(repo.Work)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Snapshot(rev)
	if err != nil {
		t.Fatal(err)
	}
	return s.Files
}

// TestGitHTTPAuth: basic auth with a password file (user given, trailing
// newline trimmed), a token from a file or an environment variable (user
// "git"); a wrong password fails with an error that does not show it, nor
// does String().
func TestGitHTTPAuth(t *testing.T) {
	const user, pass, token = "alice", "correct-horse-battery", "tok_4b1d2c3e"
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"a": "1"}, "first")
	srv := sourcetest.NewHTTPServer(t, repo, user, pass)
	tokenSrv := sourcetest.NewHTTPServer(t, repo, "git", token)
	dir := t.TempDir()
	file := func(content string) string {
		f, err := os.CreateTemp(dir, "secret")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(content)
		f.Close()
		return f.Name()
	}

	ok := map[string]source.GitOptions{
		"password file":  {URL: srv.URL, Username: user, PasswordFile: file(pass + "\n")},
		"password env":   {URL: srv.URL, Username: user, PasswordEnv: "MAESTRO_TEST_PASSWORD"},
		"token file":     {URL: tokenSrv.URL, PasswordFile: file(token)},
		"token env":      {URL: tokenSrv.URL, PasswordEnv: "MAESTRO_TEST_TOKEN"},
		"URL userinfo":   {URL: strings.Replace(srv.URL, "://", "://"+user+":"+pass+"@", 1)},
		"file over URL ": {URL: strings.Replace(srv.URL, "://", "://"+user+":wrong@", 1), Username: user, PasswordFile: file(pass)},
	}
	t.Setenv("MAESTRO_TEST_PASSWORD", pass)
	t.Setenv("MAESTRO_TEST_TOKEN", token)
	for name, opts := range ok {
		g, _ := newGit(t, opts)
		s, err := g.Fetch(t.Context())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if s.Revision != c1 {
			t.Errorf("%s: revision %s", name, s.Revision)
		}
		if strings.Contains(g.String(), pass) || strings.Contains(g.String(), token) {
			t.Errorf("%s: String() shows a secret: %s", name, g)
		}
	}

	const wrong = "Wr0ng-Pa55word-xyz"
	t.Setenv("MAESTRO_TEST_WRONG", wrong)
	bad := map[string]source.GitOptions{
		"wrong password file": {URL: srv.URL, Username: user, PasswordFile: file(wrong)},
		"wrong password env":  {URL: srv.URL, Username: user, PasswordEnv: "MAESTRO_TEST_WRONG"},
		"wrong URL password":  {URL: strings.Replace(srv.URL, "://", "://"+user+":"+wrong+"@", 1)},
		"wrong URL token":     {URL: strings.Replace(tokenSrv.URL, "://", "://"+wrong+"@", 1)},
		"no credentials":      {URL: srv.URL},
	}
	for name, opts := range bad {
		g, rec := newGit(t, opts)
		_, err := g.Fetch(t.Context())
		if err == nil {
			t.Errorf("%s: Fetch succeeded", name)
			continue
		}
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Errorf("%s: %v, want transport.ErrAuthenticationRequired", name, err)
		}
		msgs := []string{err.Error(), g.String()}
		for _, e := range rec.errors() {
			msgs = append(msgs, e.Error())
		}
		for _, m := range msgs {
			if strings.Contains(m, wrong) || strings.Contains(m, pass) {
				t.Errorf("%s: a secret shows in %q", name, m)
			}
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestGitSSH: ssh with the host key in known_hosts works; another host key
// for the address is refused; InsecureIgnoreHostKey accepts it.
func TestGitSSH(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"deploy/a.yml": "a"}, "first")
	srv := sourcetest.NewSSHServer(t, repo)

	g, rec := newGit(t, source.GitOptions{URL: srv.URL, SSHKeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile, Path: "deploy"})
	s := fetch(t, g)
	if s.Revision != c1 || read(t, s.Files, "a.yml") != "a" {
		t.Errorf("revision %s, want %s", s.Revision, c1)
	}
	if diff := cmp.Diff(checkAndFetch, rec.take()); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	c2 := repo.Commit(t, map[string]string{"deploy/a.yml": "b"}, "second")
	fetch(t, g)
	if s := fetch(t, g); s.Revision != c2 || read(t, s.Files, "a.yml") != "b" {
		t.Errorf("revision %s, want %s", s.Revision, c2)
	}
	if diff := cmp.Diff([]string{"check", "fetch", "check"}, rec.take()); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}

	other := srv.KnownHosts(t, sourcetest.NewHostKey(t))
	g, _ = newGit(t, source.GitOptions{URL: srv.URL, SSHKeyFile: srv.KeyFile, KnownHostsFile: other})
	_, err := g.Fetch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "key mismatch") {
		t.Errorf("unknown host key: %v, want a key mismatch", err)
	}

	g, _ = newGit(t, source.GitOptions{URL: srv.URL, SSHKeyFile: srv.KeyFile, KnownHostsFile: other, InsecureIgnoreHostKey: true})
	if s := fetch(t, g); s.Revision != c2 {
		t.Errorf("insecure: revision %s, want %s", s.Revision, c2)
	}

	// A key the server does not know.
	wrongKey := filepath.Join(t.TempDir(), "id")
	otherSrv := sourcetest.NewSSHServer(t, sourcetest.NewRepo(t))
	data, _ := os.ReadFile(otherSrv.KeyFile)
	os.WriteFile(wrongKey, data, 0o600)
	g, _ = newGit(t, source.GitOptions{URL: srv.URL, SSHKeyFile: wrongKey, KnownHostsFile: srv.KnownHostsFile})
	if _, err := g.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unknown client key: %v", err)
	}

	if _, err := source.NewGit(source.GitOptions{URL: srv.URL, SSHKeyFile: srv.KeyFile, KnownHostsFile: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("NewGit with a missing known_hosts file succeeded")
	}
}

// TestGitSignatures: with a keyring, a commit signed by one of its keys is
// served; an unsigned commit or one signed by another key is ErrUntrusted,
// naming the commit and the reason, and a later trusted commit recovers.
func TestGitSignatures(t *testing.T) {
	t.Parallel()
	trusted := sourcetest.NewGPGKey(t, "Trusted Signer")
	other := sourcetest.NewGPGKey(t, "Other Signer")
	third := sourcetest.NewGPGKey(t, "Third Signer")
	keyring := filepath.Join(t.TempDir(), "keyring.asc")
	if err := os.WriteFile(keyring, []byte(third.Armored+trusted.Armored), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := sourcetest.NewRepo(t)
	c1 := repo.CommitSigned(t, trusted, map[string]string{"a": "1"}, "signed")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	g, rec := newGit(t, source.GitOptions{URL: srv.URL, KeyringFile: keyring})

	if s := fetch(t, g); s.Revision != c1 {
		t.Errorf("revision %s, want %s", s.Revision, c1)
	}

	c2 := repo.Commit(t, map[string]string{"a": "2"}, "unsigned")
	_, err := g.Fetch(t.Context())
	if !errors.Is(err, source.ErrUntrusted) || !strings.Contains(err.Error(), c2) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned commit: %v", err)
	}
	rec.take()
	_, err = g.Fetch(t.Context())
	if !errors.Is(err, source.ErrUntrusted) {
		t.Errorf("unsigned commit, again: %v", err)
	}
	if diff := cmp.Diff(checkOnly, rec.take()); diff != "" {
		t.Errorf("untrusted commit fetched again: ops (-want +got):\n%s", diff)
	}

	c3 := repo.CommitSigned(t, other, map[string]string{"a": "3"}, "signed by another key")
	_, err = g.Fetch(t.Context())
	if !errors.Is(err, source.ErrUntrusted) || !strings.Contains(err.Error(), c3) ||
		!strings.Contains(err.Error(), other.Fingerprint[24:]) || !strings.Contains(err.Error(), "not in the keyring") {
		t.Errorf("commit signed by another key: %v", err)
	}
	t.Logf("%v", err)

	c4 := repo.CommitSigned(t, trusted, map[string]string{"a": "4"}, "signed again")
	if s := fetch(t, g); s.Revision != c4 || read(t, s.Files, "a") != "4" {
		t.Errorf("revision %s, want %s", s.Revision, c4)
	}

	// A pinned commit is verified too.
	g, _ = newGit(t, source.GitOptions{URL: srv.URL, Ref: c3, KeyringFile: keyring})
	if _, err := g.Fetch(t.Context()); !errors.Is(err, source.ErrUntrusted) {
		t.Errorf("pinned untrusted commit: %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.asc")
	os.WriteFile(bad, []byte("not a key"), 0o644)
	if _, err := source.NewGit(source.GitOptions{URL: srv.URL, KeyringFile: bad}); err == nil {
		t.Error("NewGit with an invalid keyring succeeded")
	}
}

// TestGitServerDown: an unreachable server is an error (retryable: the
// next Fetch works once it is back), and the previous snapshot is not
// returned in its place.
func TestGitServerDown(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"a": "1"}, "first")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	srv.Stop()
	g, rec := newGit(t, source.GitOptions{URL: srv.URL})
	if _, err := g.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("first Fetch, server down: %v", err)
	}
	srv.Start(t)
	if s := fetch(t, g); s.Revision != c1 {
		t.Errorf("revision %s, want %s", s.Revision, c1)
	}

	c2 := repo.Commit(t, map[string]string{"a": "2"}, "second")
	srv.Stop()
	rec.take()
	if s, err := g.Fetch(t.Context()); err == nil {
		t.Errorf("Fetch, server down: got %s", s.Revision)
	}
	if errs := rec.errors(); len(errs) != 1 {
		t.Errorf("observed errors %v", errs)
	}
	srv.Start(t)
	if s := fetch(t, g); s.Revision != c2 {
		t.Errorf("revision %s, want %s", s.Revision, c2)
	}
	if diff := cmp.Diff([]string{"check", "check", "fetch"}, rec.take()); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
}

// TestGitConcurrent: concurrent Fetch calls are serialized (each new
// commit is downloaded once) while snapshots are read concurrently with
// fetches writing the cache (run with -race).
func TestGitConcurrent(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	repo.Commit(t, map[string]string{"n": "0"}, "c0")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	cache := t.TempDir()
	g, rec := newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache})
	first := fetch(t, g)

	const rounds, workers = 5, 8
	for i := 1; i <= rounds; i++ {
		want := repo.Commit(t, map[string]string{"n": fmt.Sprint(i), fmt.Sprintf("f%d", i): "x"}, "next")
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				s, err := g.Fetch(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				if s.Revision != want {
					t.Errorf("revision %s, want %s", s.Revision, want)
				}
				if got, _ := fs.ReadFile(s.Files, "n"); string(got) != fmt.Sprint(i) {
					t.Errorf("n = %q, want %d", got, i)
				}
				if got, _ := fs.ReadFile(first.Files, "n"); string(got) != "0" {
					t.Errorf("first snapshot: n = %q", got)
				}
			})
		}
		wg.Wait()
	}
	fetches := 0
	for _, op := range rec.take() {
		if op == "fetch" {
			fetches++
		}
	}
	if fetches != 1+rounds {
		t.Errorf("%d fetches, want %d", fetches, 1+rounds)
	}

	// Another value on the same cache (two environments tracking the same
	// repository and ref) uses what the first fetched, and waits for it.
	g2, rec2 := newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache})
	fetch(t, g2)
	want := repo.Commit(t, map[string]string{"n": "next"}, "next")
	fetch(t, g)
	if s := fetch(t, g2); s.Revision != want {
		t.Errorf("second value: revision %s, want %s", s.Revision, want)
	}
	if diff := cmp.Diff([]string{"check", "check"}, rec2.take()); diff != "" {
		t.Errorf("second value: ops (-want +got):\n%s", diff)
	}
	repo.Commit(t, map[string]string{"n": "last"}, "last")
	var wg sync.WaitGroup
	for _, g := range []*source.Git{g, g2, g, g2} {
		wg.Go(func() {
			if _, err := g.Fetch(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestGitContext: a canceled context stops Fetch, also while it waits for
// another Fetch.
func TestGitContext(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	repo.Commit(t, map[string]string{"a": "1"}, "first")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	g, _ := newGit(t, source.GitOptions{URL: srv.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := g.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if s := fetch(t, g); s.Revision == "" {
		t.Error("no revision")
	}
}

// TestGitLocal: local paths and file:// URLs work (go-git serves them
// in-process).
func TestGitLocal(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"a": "1"}, "first")
	for _, url := range []string{repo.Bare, "file://" + repo.Bare} {
		g, rec := newGit(t, source.GitOptions{URL: url})
		if s := fetch(t, g); s.Revision != c1 {
			t.Errorf("%s: revision %s, want %s", url, s.Revision, c1)
		}
		fetch(t, g)
		if diff := cmp.Diff([]string{"check", "fetch", "check"}, rec.take()); diff != "" {
			t.Errorf("%s: ops (-want +got):\n%s", url, diff)
		}
	}
}

func TestNewGitErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("x\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for name, opts := range map[string]source.GitOptions{
		"no URL":             {},
		"two passwords":      {URL: "https://h/r.git", PasswordFile: secret, PasswordEnv: "HOME"},
		"missing file":       {URL: "https://h/r.git", PasswordFile: filepath.Join(dir, "none")},
		"empty file":         {URL: "https://h/r.git", PasswordFile: empty},
		"empty env":          {URL: "https://h/r.git", PasswordEnv: "MAESTRO_TEST_UNSET_VARIABLE"},
		"ssh key for https":  {URL: "https://h/r.git", SSHKeyFile: secret},
		"password for ssh":   {URL: "git@h:r.git", PasswordFile: secret, InsecureIgnoreHostKey: true},
		"invalid ssh key":    {URL: "ssh://git@h/r.git", SSHKeyFile: secret, InsecureIgnoreHostKey: true},
		"missing keyring":    {URL: "https://h/r.git", KeyringFile: filepath.Join(dir, "none")},
		"credentials, local": {URL: dir, PasswordFile: secret},
	} {
		if _, err := source.NewGit(opts); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestGitString(t *testing.T) {
	t.Parallel()
	srv := sourcetest.NewSSHServer(t, sourcetest.NewRepo(t))
	key := srv.KeyFile
	for _, tc := range []struct {
		opts source.GitOptions
		want string
	}{
		{source.GitOptions{URL: "https://user:pa55word@example.com/r.git"}, "https://***@example.com/r.git (ref HEAD)"},
		{source.GitOptions{URL: "https://example.com/r.git", Ref: "tags/v1", Path: "/deploy/"}, "https://example.com/r.git (ref tags/v1, path deploy)"},
		{source.GitOptions{URL: "ssh://git:pa55word@example.com:2222/r.git", Ref: "main", InsecureIgnoreHostKey: true, SSHKeyFile: key}, "ssh://git:***@example.com:2222/r.git (ref main)"},
		{source.GitOptions{URL: "git@example.com:org/r.git", Ref: "main", InsecureIgnoreHostKey: true, SSHKeyFile: key}, "git@example.com:org/r.git (ref main)"},
	} {
		g, err := source.NewGit(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// With RequireFastForward, moving the branch back to an older commit (a
// replay) is refused, also after a restart; moving forward is accepted.
func TestGitRequireFastForward(t *testing.T) {
	repo := sourcetest.NewRepo(t)
	first := repo.Commit(t, map[string]string{"manifest.yml": "name: a\n"}, "first")
	second := repo.Commit(t, map[string]string{"manifest.yml": "name: b\n"}, "second")
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	cache := t.TempDir()
	g, _ := newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache, RequireFastForward: true})
	if snap := fetch(t, g); snap.Revision != second {
		t.Fatalf("revision %s, want %s", snap.Revision, second)
	}
	repo.Git(t, "push", "-f", "origin", first+":refs/heads/main")
	// A new process on the same cache remembers what it accepted.
	g, _ = newGit(t, source.GitOptions{URL: srv.URL, CacheDir: cache, RequireFastForward: true})
	_, err := g.Fetch(t.Context())
	if !errors.Is(err, source.ErrUntrusted) || !strings.Contains(err.Error(), "does not descend from") {
		t.Fatalf("a replayed older commit: %v", err)
	}
	if _, err := g.Fetch(t.Context()); !errors.Is(err, source.ErrUntrusted) {
		t.Fatalf("the refused commit was accepted on the second try: %v", err)
	}
	repo.Git(t, "reset", "-q", "--hard", second)
	third := repo.Commit(t, map[string]string{"manifest.yml": "name: c\n"}, "third")
	if snap := fetch(t, g); snap.Revision != third {
		t.Fatalf("a descendant: revision %s, want %s", snap.Revision, third)
	}
	// Without the option the same move back is followed.
	plain, _ := newGit(t, source.GitOptions{URL: srv.URL})
	fetch(t, plain)
	repo.Git(t, "push", "-f", "origin", first+":refs/heads/main")
	if snap := fetch(t, plain); snap.Revision != first {
		t.Errorf("without the option: %s, want %s", snap.Revision, first)
	}
}

// SSH commit signatures (git's gpg.format ssh) verify against an allowed
// signers file; a commit signed by another key, or unsigned, is refused.
func TestGitSSHSignatures(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatal("ssh-keygen is needed (Debian's openssh-client): ", err)
	}
	dir := t.TempDir()
	key := func(name string) (string, string) {
		p := filepath.Join(dir, name)
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub, err := os.ReadFile(p + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return p, strings.TrimSpace(string(pub))
	}
	good, goodPub := key("deployer")
	forger, _ := key("forger")
	signers := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(signers, []byte("# who may deploy\ndeployer@example.com "+goodPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := sourcetest.NewRepo(t)
	repo.Commit(t, map[string]string{"manifest.yml": "name: a\n"}, "unsigned")
	sign := func(keyFile, msg string) string {
		repo.Git(t, "-c", "gpg.format=ssh", "-c", "user.signingkey="+keyFile, "commit", "-q", "--allow-empty", "-S", "-m", msg)
		repo.Git(t, "push", "-q", "origin", "HEAD:main")
		return repo.Git(t, "rev-parse", "HEAD")
	}
	srv := sourcetest.NewHTTPServer(t, repo, "", "")
	g, _ := newGit(t, source.GitOptions{URL: srv.URL, AllowedSignersFile: signers})
	if _, err := g.Fetch(t.Context()); !errors.Is(err, source.ErrUntrusted) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned: %v", err)
	}
	signed := sign(good, "signed")
	if snap, err := g.Fetch(t.Context()); err != nil || snap.Revision != signed {
		t.Errorf("signed by an allowed key: %v", err)
	}
	sign(forger, "forged")
	if _, err := g.Fetch(t.Context()); !errors.Is(err, source.ErrUntrusted) || !strings.Contains(err.Error(), "not in the allowed signers") {
		t.Errorf("signed by another key: %v", err)
	}
}

// TestLocalHead: the commit checked out, dirty only when a file below the
// manifests' path differs from it.
func TestLocalHead(t *testing.T) {
	t.Parallel()
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"deploy/manifest.yml": "name: a\n", "app/main.go": "package main\n"}, "first")
	head := func(dir string) (string, bool) {
		t.Helper()
		l, err := source.OpenLocal(filepath.Join(repo.Work, dir))
		if err != nil {
			t.Fatal(err)
		}
		rev, dirty, err := l.Head()
		if err != nil {
			t.Fatal(err)
		}
		return rev, dirty
	}
	if rev, dirty := head("deploy"); rev != c1 || dirty {
		t.Errorf("clean: %s %v", rev, dirty)
	}
	os.WriteFile(filepath.Join(repo.Work, "app", "main.go"), []byte("package main // edited\n"), 0o644)
	if _, dirty := head("deploy"); dirty {
		t.Errorf("an edit outside deploy/ makes deploy/ dirty")
	}
	if _, dirty := head("."); !dirty {
		t.Errorf("an edit in the work tree does not make its root dirty")
	}
	os.WriteFile(filepath.Join(repo.Work, "deploy", "new.yml"), []byte("x: 1\n"), 0o644)
	if _, dirty := head("deploy"); !dirty {
		t.Errorf("a new file in deploy/ does not make it dirty")
	}
}
