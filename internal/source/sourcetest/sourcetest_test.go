package sourcetest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/source/sourcetest"
)

// clone clones url with the git CLI and returns the content of file.
func clone(t *testing.T, url, file string, env ...string) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "-q", url, dir)
	cmd.Env = sourcetest.Env(env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return string(out), err
	}
	data, err := os.ReadFile(filepath.Join(dir, file))
	return string(data), err
}

func TestRepoAndHTTP(t *testing.T) {
	repo := sourcetest.NewRepo(t)
	c1 := repo.Commit(t, map[string]string{"a.txt": "one", "d/b.txt": "two"}, "first")
	c2 := repo.Commit(t, map[string]string{"a.txt": sourcetest.Delete, "c.txt": "three"}, "second")
	if len(c1) != 40 || len(c2) != 40 || c1 == c2 {
		t.Fatalf("commits %q %q", c1, c2)
	}
	if got := repo.Git(t, "ls-tree", "-r", "--name-only", "main"); got != "c.txt\nd/b.txt" {
		t.Fatalf("tree of main:\n%s", got)
	}

	srv := sourcetest.NewHTTPServer(t, repo, "alice", "s3cret")
	authURL := strings.Replace(srv.URL, "http://", "http://alice:s3cret@", 1)
	if got, err := clone(t, authURL, "c.txt"); err != nil || got != "three" {
		t.Fatalf("clone with auth: %q, %v", got, err)
	}
	if srv.Checks() == 0 || srv.Fetches() == 0 {
		t.Fatalf("checks %d, fetches %d", srv.Checks(), srv.Fetches())
	}
	if out, err := clone(t, srv.URL, "c.txt"); err == nil {
		t.Fatalf("clone without auth succeeded: %s", out)
	}

	srv.Stop()
	if _, err := clone(t, authURL, "c.txt"); err == nil {
		t.Fatal("clone from a stopped server succeeded")
	}
	srv.Start(t)
	if got, err := clone(t, authURL, "c.txt"); err != nil || got != "three" {
		t.Fatalf("clone after restart: %q, %v", got, err)
	}
}

func TestSSH(t *testing.T) {
	repo := sourcetest.NewRepo(t)
	repo.Commit(t, map[string]string{"a.txt": "one"}, "first")
	url, key, knownHosts := sourcetest.ServeSSH(t, repo)
	ssh := "GIT_SSH_COMMAND=ssh -F /dev/null -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + knownHosts
	if got, err := clone(t, url, "a.txt", ssh); err != nil || got != "one" {
		t.Fatalf("clone over ssh: %q, %v", got, err)
	}
}

func TestGPG(t *testing.T) {
	key := sourcetest.NewGPGKey(t, "Signer")
	if len(key.Fingerprint) != 40 || !strings.Contains(key.Armored, "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Fatalf("key %+v", key)
	}
	repo := sourcetest.NewRepo(t)
	c := repo.CommitSigned(t, key, map[string]string{"a.txt": "one"}, "signed")
	if sig := repo.Git(t, "cat-file", "commit", c); !strings.Contains(sig, "BEGIN PGP SIGNATURE") {
		t.Fatalf("commit is not signed:\n%s", sig)
	}
}
