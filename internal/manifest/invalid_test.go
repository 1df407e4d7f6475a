package manifest_test

// The invalid corpus: every directory under testdata/invalid holds one
// environment (or, for the multi-file cases, a small repository) broken in
// one main way, and expected.txt holds every diagnostic the loader prints
// for it, errors and warnings, one per line. Regenerate the golden files
// with
//
//	go test ./internal/manifest/ -run 'Invalid' -update
//
// then read the diff: a golden file records what a user sees.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// -update rewrites the golden files. The flag is defined only when no other
// test file of the package has defined it already.
var _ = func() bool {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files of testdata/invalid")
	}
	return true
}()

// update reports whether -update was given.
func update() bool {
	b, _ := strconv.ParseBool(flag.Lookup("update").Value.String())
	return b
}

const invalidDir = "testdata/invalid"

// minInvalidCases is the least number of cases the corpus must keep.
const minInvalidCases = 45

// invalidEnviron is the process environment the templates of the corpus
// see, both through Options.Environ and through the CLI.
var invalidEnviron = map[string]string{
	"DEPLOY_TAG": "1.25",
	"HOME":       "/home/deployer",
	"USER":       "deployer",
}

// invalidCase is one directory of the corpus.
type invalidCase struct {
	name   string // directory name, e.g. 18-unknown-ship
	dir    string // path from the package directory
	strict bool   // the name ends in -strict: load with Options{Strict: true}
}

func invalidCases(t *testing.T) []invalidCase {
	t.Helper()
	entries, err := os.ReadDir(invalidDir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []invalidCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cases = append(cases, invalidCase{
			name:   e.Name(),
			dir:    filepath.Join(invalidDir, e.Name()),
			strict: strings.HasSuffix(e.Name(), "-strict"),
		})
	}
	if len(cases) < minInvalidCases {
		t.Fatalf("testdata/invalid has %d cases, want at least %d", len(cases), minInvalidCases)
	}
	return cases
}

func (c invalidCase) load(t *testing.T) *manifest.Repo {
	t.Helper()
	repo, err := manifest.Load(os.DirFS(c.dir), manifest.Options{
		Prefix:  c.name + "/",
		Environ: invalidEnviron,
		Strict:  c.strict,
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return repo
}

func (c invalidCase) golden(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.dir, "expected.txt"))
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	return splitLines(string(data))
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// diagLine is FILE:LINE:COL: rest, where FILE has no spaces.
var diagLine = regexp.MustCompile(`^(\S+?):(\d+):(\d+): (.+)$`)

// leaks are signs of a Go internal reaching the user: a panic, a stack, a
// Go type name or value dump, or a formatting mistake.
var leaks = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\bpanic`),
	regexp.MustCompile(`(?i)\bgoroutine`),
	regexp.MustCompile(`\*yaml\.Node`),
	regexp.MustCompile(`\*?\b(yaml|fs|os|exec|manifest|gonja|netip|strconv|reflect|runtime)\.[A-Z]\w*`),
	regexp.MustCompile(`\bmap\[|\[\]string\b|\binterface ?\{\}|\bnil pointer\b|\bruntime error\b`),
	regexp.MustCompile(`&\{|<Token\[\w*\]?|\b\w+ControlStructure\(`),
	regexp.MustCompile(`%!`),
	regexp.MustCompile(`0x[0-9a-f]{6,}`),
}

// knownLeaks lists, per case, the leaks the loader is known to print today
// (see the report of the corpus). A fixed leak must be removed from here, so
// that this list stays the list of open problems.
var knownLeaks = map[string][]string{}

// checkNoLeak reports leaks in line that are not known for the case, and
// records the known ones it met in seen.
func checkNoLeak(t *testing.T, name, line string, seen map[string]bool) {
	t.Helper()
	for _, re := range leaks {
		for _, m := range re.FindAllString(line, -1) {
			if slices.Contains(knownLeaks[name], m) {
				seen[m] = true
				continue
			}
			t.Errorf("diagnostic leaks a Go internal (%q): %s", m, line)
		}
	}
}

// checkKnownLeaks fails when a leak listed in knownLeaks is gone.
func checkKnownLeaks(t *testing.T, name string, seen map[string]bool) {
	t.Helper()
	for _, m := range knownLeaks[name] {
		if !seen[m] {
			t.Errorf("known leak %q no longer printed: remove it from knownLeaks", m)
		}
	}
}

// TestInvalidCorpus loads each case and compares all its diagnostics with
// expected.txt.
func TestInvalidCorpus(t *testing.T) {
	for _, c := range invalidCases(t) {
		t.Run(c.name, func(t *testing.T) {
			repo := c.load(t)
			var got []string
			for _, d := range repo.Diagnostics {
				got = append(got, d.Error())
			}

			if !repo.Diagnostics.HasErrors() {
				t.Errorf("no error-level diagnostic; the case is not invalid")
			}
			if repo.Err() == nil {
				t.Errorf("Repo.Err() is nil")
			}
			if len(repo.Invalid) == 0 {
				t.Errorf("Repo.Invalid is empty")
			}
			seen := map[string]bool{}
			for _, d := range repo.Diagnostics {
				line := d.Error()
				if !strings.HasPrefix(d.File, c.name+"/") {
					t.Errorf("file %q is not relative to the case as loaded (%s/...): %s", d.File, c.name, line)
				}
				if _, err := os.Stat(filepath.Join(invalidDir, filepath.FromSlash(d.File))); err != nil {
					t.Errorf("diagnostic names a file that does not exist: %s", line)
				}
				if d.Line == 0 {
					// A whole-file problem: FILE: message.
					if !strings.HasPrefix(line, d.File+": ") || d.Col != 0 {
						t.Errorf("whole-file diagnostic not of the form FILE: message: %s", line)
					}
				} else {
					m := diagLine.FindStringSubmatch(line)
					if m == nil || m[1] != d.File {
						t.Errorf("diagnostic not of the form FILE:LINE:COL: message: %s", line)
					} else if l, _ := strconv.Atoi(m[2]); l <= 0 || l != d.Line {
						t.Errorf("bad line in %s", line)
					} else if col, _ := strconv.Atoi(m[3]); col <= 0 {
						t.Errorf("bad column in %s", line)
					}
				}
				if strings.TrimSpace(d.Msg) == "" {
					t.Errorf("empty message: %s", line)
				}
				checkNoLeak(t, c.name, line, seen)
			}
			checkKnownLeaks(t, c.name, seen)

			golden := filepath.Join(c.dir, "expected.txt")
			if update() {
				text := strings.Join(got, "\n")
				if text != "" {
					text += "\n"
				}
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := c.golden(t)
			if d := lineDiff(want, got); d != "" {
				t.Errorf("diagnostics differ from %s (-want +got):\n%s", golden, d)
			}
		})
	}
}

// lineDiff returns a simple diff of two lists of lines, or "" when equal.
func lineDiff(want, got []string) string {
	if strings.Join(want, "\n") == strings.Join(got, "\n") {
		return ""
	}
	var b strings.Builder
	// Longest common subsequence, for a readable diff of short lists.
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			fmt.Fprintf(&b, "  %s\n", want[i])
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&b, "- %s\n", want[i])
			i++
		default:
			fmt.Fprintf(&b, "+ %s\n", got[j])
			j++
		}
	}
	return b.String()
}

// TestInvalidCorpusGoldenFiles checks the corpus itself: every case has a
// manifest and a non-empty expected.txt.
func TestInvalidCorpusGoldenFiles(t *testing.T) {
	for _, c := range invalidCases(t) {
		var manifests int
		err := filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (d.Name() == "manifest.yml" || d.Name() == "manifest.yaml") {
				manifests++
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if manifests == 0 {
			t.Errorf("%s: no manifest.yml", c.name)
		}
		if !update() && len(c.golden(t)) == 0 {
			t.Errorf("%s: expected.txt is empty", c.name)
		}
	}
}

// TestInvalidHostPortOnDifferentIPsIsValid is the valid neighbour of the
// host-port-clash cases: the same host port and protocol bound on two
// different addresses of one ship does not clash.
func TestInvalidHostPortOnDifferentIPsIsValid(t *testing.T) {
	const text = `name: shop
ships:
  vm1: {ip: 10.0.0.1}
services:
  dns:
    image: coredns/coredns:1.11.1
    instances:
      dns-1:
        ship: vm1
        ports:
          dns: {exposed: 53/udp, external: [10.0.0.1, 53/udp]}
      dns-2:
        ship: vm1
        ports:
          dns: {exposed: 53/udp, external: [10.0.0.2, 53/udp]}
      dns-3:
        ship: vm1
        ports:
          dns: {exposed: 53/tcp, external: [10.0.0.1, 53/tcp]}
`
	fsys := fstest.MapFS{"manifest.yml": {Data: []byte(text)}}
	repo, err := manifest.Load(fsys, manifest.Options{Environ: invalidEnviron})
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Diagnostics) != 0 {
		t.Fatalf("want no diagnostics, got:\n%v", repo.Diagnostics)
	}
	if len(repo.Environments) != 1 || len(repo.Environments[0].Instances()) != 3 {
		t.Fatalf("want 1 environment with 3 instances, got %+v", repo.Environments)
	}
}

// TestInvalidCLI runs `maestro-sync validate` on each case, as a user
// would from testdata/invalid: it must exit 1 and print the golden lines.
func TestInvalidCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the CLI")
	}
	cases := invalidCases(t)
	bin := filepath.Join(t.TempDir(), "maestro-sync")
	// Static, as the Dockerfile and the e2e and kube tests build it: one
	// compile serves all.
	build := exec.Command("go", "build", "-o", bin, "github.com/maestro-sync/maestro-sync/cmd/maestro-sync")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var env []string
	for k, v := range invalidEnviron {
		env = append(env, k+"="+v)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"validate"}
			if c.strict {
				args = append(args, "--strict")
			}
			args = append(args, c.name)
			cmd := exec.Command(bin, args...)
			cmd.Dir = invalidDir
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("maestro-sync %s: want exit status 1, got %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout is not empty:\n%s", stdout.String())
			}
			printed := splitLines(stderr.String())
			for _, want := range c.golden(t) {
				found := false
				for _, line := range printed {
					if line == want {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("stderr lacks the golden line\n  %s\nstderr:\n%s", want, stderr.String())
				}
			}
			seen := map[string]bool{}
			for _, line := range printed {
				checkNoLeak(t, c.name, line, seen)
			}
			checkKnownLeaks(t, c.name, seen)
		})
	}
}
