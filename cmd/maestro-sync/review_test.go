package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var updateReview = flag.Bool("update-review", false, "rewrite the golden files of the review tests")

// cli runs maestro-sync in-process and returns stdout, stderr and the exit
// status.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	var ec exitCode
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ec):
		return out.String(), errOut.String(), int(ec)
	default:
		return out.String(), errOut.String() + err.Error(), 1
	}
}

var reviewFormats = map[string]string{"text": "txt", "markdown": "md", "json": "json"}

// The secret values used in testdata/review/secret-change.
var secretValues = []string{"hunter2-OLD-pw", "correct-horse-NEW-pw", "sk_live_OLDSECRETVALUE", "sk_live_NEWSECRETVALUE", "a,b,c", "base-token-value", "head-token-value"}

func TestReviewGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/review/*")
	if err != nil || len(cases) < 8 {
		t.Fatalf("want at least 8 review cases, got %d (%v)", len(cases), err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var exits []int
			for format, ext := range reviewFormats {
				out, stderr, code := cli(t, "plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", format)
				exits = append(exits, code)
				golden := filepath.Join(dir, "expected."+ext)
				if *updateReview {
					if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update-review)", err)
				}
				if diff := cmp.Diff(string(want), out); diff != "" {
					t.Errorf("%s output differs (-want +got):\n%s\nstderr: %s", format, diff, stderr)
				}
				if format == "json" {
					var doc map[string]any
					if err := json.Unmarshal([]byte(out), &doc); err != nil {
						t.Errorf("json output does not parse: %v", err)
					}
				}
				for _, secret := range secretValues {
					if strings.Contains(out, secret) || strings.Contains(stderr, secret) {
						t.Errorf("%s output shows the secret value %q", format, secret)
					}
				}
			}
			for _, c := range exits[1:] {
				if c != exits[0] {
					t.Fatalf("exit codes differ between formats: %v", exits)
				}
			}
			exitFile := filepath.Join(dir, "expected.exit")
			if *updateReview {
				_ = os.WriteFile(exitFile, []byte(strings.TrimSpace(string(rune('0'+exits[0])))+"\n"), 0o644)
				return
			}
			want, _ := os.ReadFile(exitFile)
			if got := string(rune('0'+exits[0])) + "\n"; got != string(want) {
				t.Errorf("exit status %q, want %q", got, want)
			}
		})
	}
}

// TestReviewExitCodes pins the meaning of the exit codes on three cases.
func TestReviewExitCodes(t *testing.T) {
	for dir, want := range map[string]int{"no-change": 0, "image-bump": 2, "invalid-head": 1} {
		_, _, code := cli(t, "plan", "--base-dir", "testdata/review/"+dir+"/base", "--head-dir", "testdata/review/"+dir+"/head")
		if code != want {
			t.Errorf("%s: exit %d, want %d", dir, code, want)
		}
	}
}

// TestReviewSecretsNeverShown checks every format of the secret case for
// each secret value, and that the change itself is reported.
func TestReviewSecretsNeverShown(t *testing.T) {
	for format := range reviewFormats {
		out, stderr, code := cli(t, "plan", "--base-dir", "testdata/review/secret-change/base", "--head-dir", "testdata/review/secret-change/head", "-o", format)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2", format, code)
		}
		for _, s := range secretValues {
			if strings.Contains(out+stderr, s) {
				t.Errorf("%s: the secret value %q is shown", format, s)
			}
		}
		for _, name := range []string{"DB_PASSWORD", "STRIPE_KEY", "FEATURE_FLAGS"} {
			if !strings.Contains(out, name) {
				t.Errorf("%s: the change of %s is not reported", format, name)
			}
		}
		if format != "json" && !strings.Contains(out, "changed (sensitive value hidden)") {
			t.Errorf("%s: no (sensitive value hidden) marker", format)
		}
		if !strings.Contains(out, "www.shop.example.com") {
			t.Errorf("%s: a value that is not sensitive should be shown", format)
		}
	}
	// A custom pattern makes PUBLIC_URL sensitive too.
	out, _, _ := cli(t, "plan", "--base-dir", "testdata/review/secret-change/base", "--head-dir", "testdata/review/secret-change/head", "--secret-pattern", "URL,PASSWORD")
	if strings.Contains(out, "www.shop.example.com") {
		t.Errorf("--secret-pattern URL did not hide PUBLIC_URL:\n%s", out)
	}
}

// TestReviewGitRevisions builds a repository with two commits and plans
// between them by revision.
func TestReviewGitRevisions(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	copyTree(t, "testdata/review/env-knock-on/base", filepath.Join(dir, "deploy"))
	git("init", "-q")
	git("add", "-A")
	git("commit", "-qm", "base")
	if err := os.RemoveAll(filepath.Join(dir, "deploy")); err != nil {
		t.Fatal(err)
	}
	copyTree(t, "testdata/review/env-knock-on/head", filepath.Join(dir, "deploy"))
	git("add", "-A")
	git("commit", "-qm", "head")

	out, stderr, code := cli(t, "plan", "--base", "HEAD~1", "--head", "HEAD", filepath.Join(dir, "deploy"))
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"env.LOG_LEVEL: info → debug", "env.DB_DB_1_PG_PORT: 5432 → 15432 (knock-on: injected from db)", "~ web-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The same revision on both sides changes nothing.
	if _, _, code := cli(t, "plan", "--base", "HEAD", "--head", "HEAD", filepath.Join(dir, "deploy")); code != 0 {
		t.Errorf("HEAD..HEAD: exit %d, want 0", code)
	}
	// Without --head the files on disk are the head.
	if out, _, code := cli(t, "plan", "--base", "HEAD~1", filepath.Join(dir, "deploy")); code != 2 || !strings.Contains(out, "working tree") && !strings.Contains(out, "LOG_LEVEL") {
		t.Errorf("HEAD~1..working tree: exit %d\n%s", code, out)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A pull request's head is untrusted: its templates must not read the CI
// job's environment (tokens, secrets) into a plan that is posted publicly.
func TestReviewTemplatesSeeNoProcessEnvironment(t *testing.T) {
	leaks := map[string]string{
		"MAESTRO_SYNC_GITLAB_TOKEN": "glpat-leaked-gitlab-token",
		"CI_JOB_TOKEN":              "ci-job-token-value",
		"DEPLOY_SECRET":             "deploy-secret-value",
		"PLAIN_SETTING":             "plain-setting-value",
	}
	for k, v := range leaks {
		t.Setenv(k, v)
	}
	t.Setenv("APP_RELEASE", "release-42")
	dir := t.TempDir()
	write := func(rel, text string) { t.Helper(); writeFile(t, dir, rel, text) }
	const manifest = `__maestro: {schema: 2}
name: shop
ships:
  vm1: {ip: 10.0.0.1}
services:
  web:
    image: shop/web:1.3
    env:
      LOG_LEVEL: %s
    instances:
      web-1: {ship: vm1}
`
	write("base/shop/manifest.yml", strings.Replace(manifest, "%s", "info", 1))
	write("head/shop/manifest.yml", strings.Replace(manifest, "%s",
		`"{{ env.MAESTRO_SYNC_GITLAB_TOKEN }}{{ env.PLAIN_SETTING }}{% for k, v in env.items() %}{{ k }}={{ v }};{% endfor %}/{{ env.APP_RELEASE }}"`, 1))
	for format := range reviewFormats {
		out, stderr, code := cli(t, "plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", format)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (a change); stderr: %s", format, code, stderr)
		}
		for name, value := range leaks {
			if strings.Contains(out, value) || strings.Contains(stderr, value) {
				t.Errorf("%s output shows the value of %s from the process environment:\n%s", format, name, out)
			}
		}
		if strings.Contains(out, "release-42") {
			t.Errorf("%s output shows APP_RELEASE, which --template-env did not allow", format)
		}
		// Allowed by name or by prefix, a variable is read by the template,
		// and its value is tainted: sensitive in every format.
		for _, allow := range []string{"APP_RELEASE", "APP_*"} {
			out, _, _ = cli(t, "plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", format, "--template-env", allow)
			if strings.Contains(out, "release-42") {
				t.Errorf("%s with --template-env %s shows the value read from the environment:\n%s", format, allow, out)
			}
			for name, value := range leaks {
				if strings.Contains(out, value) {
					t.Errorf("%s with --template-env %s shows %s", format, allow, name)
				}
			}
		}
	}
	// The allowed variable did reach the template: the head's spec differs.
	hash := func(args ...string) string {
		out, _, _ := cli(t, append([]string{"plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", "json"}, args...)...)
		var doc struct {
			Steps []struct {
				SpecHash string `json:"spec_hash"`
			} `json:"steps"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Steps) != 1 {
			t.Fatalf("json plan: %v\n%s", err, out)
		}
		return doc.Steps[0].SpecHash
	}
	if hash() == hash("--template-env", "APP_RELEASE") {
		t.Error("--template-env APP_RELEASE did not reach the template")
	}
}

func TestDaemonTemplatesNeverSeeCredentials(t *testing.T) {
	t.Setenv("MAESTRO_SYNC_WEBHOOK_SECRET", "hook-secret")
	t.Setenv("GIT_TOKEN", "git-token")
	t.Setenv("MAESTRO_VAR_REGION", "eu-1")
	f := &runFlags{gitPassEnv: "GIT_TOKEN"}
	got := templateEnviron([]string{"MAESTRO_*", "GIT_TOKEN"}, f.credential)
	want := map[string]string{}
	for k, v := range environ() {
		if strings.HasPrefix(k, "MAESTRO_") && !strings.HasPrefix(k, "MAESTRO_SYNC_") {
			want[k] = v
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("template environment (-want +got):\n%s", diff)
	}
	if got["MAESTRO_VAR_REGION"] != "eu-1" {
		t.Errorf("an allowed variable is missing: %v", got)
	}
}

// Symbolic links out of the repository are refused in working-tree mode:
// an include or an env file linked to a host file shows nothing of it.
func TestLinksOutOfTheRepositoryAreRefused(t *testing.T) {
	hostname, err := os.ReadFile("/etc/hostname")
	if err != nil || len(strings.TrimSpace(string(hostname))) < 3 {
		hostname = []byte("localhost-not-found")
	}
	dir := t.TempDir()
	for _, side := range []string{"base", "head"} {
		if err := os.MkdirAll(filepath.Join(dir, side, "shop"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const base = "__maestro: {schema: 2}\nname: shop\nships: {vm1: {ip: 10.0.0.1}}\nservices:\n  web:\n    image: web:1\n    env: {LOG_LEVEL: info}\n    instances: {web-1: {ship: vm1}}\n"
	if err := os.WriteFile(filepath.Join(dir, "base", "shop", "manifest.yml"), []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	head := strings.Replace(base, "env: {LOG_LEVEL: info}", "env: {LOG_LEVEL: \"{% include 'host.txt' %}\"}\n    envfile: passwd.env", 1)
	if err := os.WriteFile(filepath.Join(dir, "head", "shop", "manifest.yml"), []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "head", "shop", "host.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "head", "shop", "passwd.env")); err != nil {
		t.Fatal(err)
	}
	for format := range reviewFormats {
		out, stderr, code := cli(t, "plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", format)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1 (the head is invalid)\n%s%s", format, code, out, stderr)
		}
		for _, leak := range []string{strings.TrimSpace(string(hostname)), "root:", "/bin/"} {
			if strings.Contains(out+stderr, leak) {
				t.Errorf("%s output shows %q from outside the repository:\n%s%s", format, leak, out, stderr)
			}
		}
	}
	out, stderr, code := cli(t, "render", filepath.Join(dir, "head"))
	if code != 1 || strings.Contains(out+stderr, "root:") || strings.Contains(out+stderr, strings.TrimSpace(string(hostname))) {
		t.Errorf("render: exit %d\n%s%s", code, out, stderr)
	}
}

// writeFile writes text to dir/rel, creating the directories.
func writeFile(t *testing.T, dir, rel, text string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReviewLargeImageBump: the Markdown review plan of an image bump over
// 600 instances in 40 services (with a memory limit and a lifecycle
// change in two of them) groups the instances of each service into one
// row, names every service, shows changed fields one by one, and fits a
// GitHub comment (65,536 characters).
func TestReviewLargeImageBump(t *testing.T) {
	dir := "testdata/review-large/image-bump-600"
	out, stderr, code := cli(t, "plan", "--base-dir", filepath.Join(dir, "base"), "--head-dir", filepath.Join(dir, "head"), "-o", "markdown")
	if code != 2 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden := filepath.Join(dir, "expected.md")
	if *updateReview {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-review)", err)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Errorf("markdown differs (-want +got):\n%s", diff)
	}
	if n := len([]rune(out)); n > 65536 {
		t.Errorf("%d characters: over GitHub's comment limit", n)
	}
	for i := range 40 {
		if svc := fmt.Sprintf("service <b>svc%02d</b>: 15 to replace", i); !strings.Contains(out, svc) {
			t.Errorf("the plan does not name %q", svc)
		}
	}
	for _, want := range []string{"`limits.memory`: 64m → 128m", "`lifecycle.running[0].max_wait`: 30 → 60", "… 15 instances in all"} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q", want)
		}
	}
	if strings.Contains(out, "Truncated") {
		t.Errorf("the plan is truncated")
	}
}
