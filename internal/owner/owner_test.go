package owner

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/acme/deploy.git", "github.com/acme/deploy"},
		{"https://user:s3cret@GitHub.com/acme/deploy", "github.com/acme/deploy"},
		{"https://github.com:443/acme/deploy/", "github.com/acme/deploy"},
		{"ssh://git@github.com:22/acme/deploy.git", "github.com/acme/deploy"},
		{"git@github.com:acme/deploy.git", "github.com/acme/deploy"},
		{"github.com:acme/deploy", "github.com/acme/deploy"},
		{"ssh://git@gitlab.example.com:2222/~team/infra.git", "gitlab.example.com/team/infra"},
		{"http://127.0.0.1:8080/git/repo.git", "127.0.0.1/git/repo"},
		{"file:///srv/git/repo.git", "/srv/git/repo"},
		{"/srv/git/repo.git/", "/srv/git/repo"},
	} {
		if got := NormalizeURL(tc.in); got != tc.want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFromRemote(t *testing.T) {
	a := FromRemote("https://tok@github.com/acme/deploy.git", "")
	b := FromRemote("git@github.com:acme/deploy.git", ".")
	if a != b {
		t.Errorf("https and ssh forms differ: %+v, %+v", a, b)
	}
	if a.Name != "github.com/acme/deploy" || len(a.ID) != 16 {
		t.Errorf("owner %+v", a)
	}
	sub := FromRemote("git@github.com:acme/deploy.git", "apps/")
	if sub.Name != "github.com/acme/deploy//apps" || sub.ID == a.ID {
		t.Errorf("sub-path owner %+v", sub)
	}
	if FromRemote("https://github.com/acme/other", "").ID == a.ID {
		t.Error("two repositories share an ID")
	}
}

func TestDetect(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed: ", err)
	}
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if err := os.MkdirAll(filepath.Join(dir, "apps", "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	noRemote, err := Detect(dir)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if noRemote.Name != filepath.ToSlash(real) {
		t.Errorf("without a remote: %q, want the checkout's path %q", noRemote.Name, real)
	}
	git("remote", "add", "upstream", "https://example.com/other.git")
	git("remote", "add", "origin", "https://bot:token@github.com/acme/deploy.git")
	root, err := Detect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := FromRemote("git@github.com:acme/deploy.git", ""); root != want {
		t.Errorf("Detect(root) = %+v, want %+v (origin wins; the daemon following it agrees)", root, want)
	}
	sub, err := Detect(filepath.Join(dir, "apps"))
	if err != nil {
		t.Fatal(err)
	}
	if sub.Name != "github.com/acme/deploy//apps" {
		t.Errorf("Detect(apps) = %q", sub.Name)
	}
	outside, err := Detect(t.TempDir())
	if err != nil || outside.Name == "" || outside.ID == root.ID {
		t.Errorf("outside a checkout: %+v, %v", outside, err)
	}
}
