package build

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/maestro-sync/maestro-sync/internal/build/buildtest"
)

// TestDigest: the digest changes with what the build reads (a file of
// the context, an argument, the target), not with ignored files or files
// outside the context.
func TestDigest(t *testing.T) {
	digest := func(fsys fstest.MapFS, c Context) string {
		t.Helper()
		c.FS = fsys
		d, err := c.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	app := Context{Dir: "app", Args: map[string]string{"GREETING": "hello"}}
	base := digest(buildtest.Repo("v1", "log1", "readme1"), app)
	if !strings.HasPrefix(base, "sha256:") || Tag(base) != "ctx-"+base[7:23] {
		t.Errorf("digest %s, tag %s", base, Tag(base))
	}
	for name, other := range map[string]string{
		"an ignored file":            digest(buildtest.Repo("v1", "log2", "readme1"), app),
		"a file outside the context": digest(buildtest.Repo("v1", "log1", "readme2"), app),
	} {
		if other != base {
			t.Errorf("%s changed the digest", name)
		}
	}
	withArg := app
	withArg.Args = map[string]string{"GREETING": "bye"}
	withTarget := app
	withTarget.Target = "prod"
	for name, other := range map[string]string{
		"a file of the context": digest(buildtest.Repo("v2", "log1", "readme1"), app),
		"an argument":           digest(buildtest.Repo("v1", "log1", "readme1"), withArg),
		"the target":            digest(buildtest.Repo("v1", "log1", "readme1"), withTarget),
		"another context":       digest(buildtest.Repo("v1", "log1", "readme1"), Context{Dir: "worker"}),
	} {
		if other == base {
			t.Errorf("%s did not change the digest", name)
		}
	}
	for _, c := range []Context{{Dir: "../x"}, {Dir: "app", Dockerfile: "../worker/Dockerfile"}, {Dir: "README.md"}, {Dir: "worker", Dockerfile: "Nope"}} {
		c.FS = buildtest.Repo("v1", "", "")
		if _, err := c.Digest(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestIndex: Changed counts files added, removed and edited, and an
// executable bit.
func TestIndex(t *testing.T) {
	sum := func(fsys fstest.MapFS) Sum {
		t.Helper()
		s, err := Context{FS: fsys, Dir: "app"}.Sum()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := buildtest.Repo("v1", "", "")
	cur := buildtest.Repo("v2", "", "")
	cur["app/new.txt"] = &fstest.MapFile{Data: []byte("new")}
	delete(cur, "app/.dockerignore")
	cur["app/bin/run.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o644}
	a, b := sum(old), sum(cur)
	if n := Changed(a.Files, b.Files); n != 5 {
		t.Errorf("changed files: %d, want 5 (hello.txt, new.txt, .dockerignore, debug.log no longer ignored, bin/run.sh)", n)
	}
	if n := Changed(a.Files, sum(buildtest.Repo("v1", "", "other")).Files); n != 0 {
		t.Errorf("a file outside the context: %d changed", n)
	}
}

// TestWriteTarChecksTheDigest: a context whose files changed since it was
// digested is not streamed whole.
func TestWriteTarChecksTheDigest(t *testing.T) {
	fsys := buildtest.Repo("v1", "", "")
	c := Context{FS: fsys, Dir: "app"}
	want, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteTar(&buf, want); err != nil || buf.Len() == 0 {
		t.Fatalf("an unchanged context: %v, %d bytes", err, buf.Len())
	}
	fsys["app/hello.txt"] = &fstest.MapFile{Data: []byte("v2")}
	if err := c.WriteTar(&bytes.Buffer{}, want); !errors.Is(err, ErrMoved) {
		t.Errorf("a changed context: %v", err)
	}
}

// TestLocate: a build error names the Dockerfile's line the engine named,
// or the line of the instruction that was running.
func TestLocate(t *testing.T) {
	df := "# escape=`\n\nFROM base\n# a comment\nRUN echo a `\n  # inside\n  && echo b\n\nCOPY x /x\nRUN exit 3\n"
	if got := InstructionLines([]byte(df)); !slices.Equal(got, []int{3, 5, 9, 10}) {
		t.Errorf("instruction lines %v", got)
	}
	c := Context{FS: fstest.MapFS{"app/Dockerfile": {Data: []byte(df)}}, Dir: "app"}
	for _, tc := range []struct {
		e    Error
		line int
	}{
		{Error{Msg: "dockerfile parse error line 7: unknown instruction: RUNN"}, 7},
		{Error{Msg: "The command '/bin/sh -c exit 3' returned a non-zero code: 3", Log: []string{"Step 1/4 : FROM base", "Step 4/4 : RUN exit 3", " ---> Running in 1"}}, 10},
		{Error{Msg: "no such host"}, 0},
	} {
		c.Locate(&tc.e)
		if tc.e.File != "app/Dockerfile" || tc.e.Line != tc.line {
			t.Errorf("%s: located at %s:%d, want line %d", tc.e.Msg, tc.e.File, tc.e.Line, tc.line)
		}
		if tc.line > 0 && !strings.HasPrefix(tc.e.Error(), "app/Dockerfile:") {
			t.Errorf("error %q", tc.e.Error())
		}
	}
}

// TestIndexLabel: an index survives its label form.
func TestIndexLabel(t *testing.T) {
	s, err := Context{FS: buildtest.Repo("v1", "", ""), Dir: "app"}.Sum()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeIndex(s.Files.Encode())
	if err != nil || len(back) != len(s.Files) || Changed(back, s.Files) != 0 {
		t.Errorf("decoded %v (%v), want %v", back, err, s.Files)
	}
	if _, err := DecodeIndex("not base64 gzip"); err == nil {
		t.Errorf("garbage decoded")
	}
}
