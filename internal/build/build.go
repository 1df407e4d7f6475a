// Package build describes images built from a repository's own files:
// the digest of a build context (its files after .dockerignore, the
// Dockerfile, the build arguments and the target), an index of its files
// to tell how many changed, and the context as the tar stream the Docker
// Engine API builds from, read from a snapshot and checked against the
// digest as it is written (a working tree that changed under it fails the
// build instead of giving an image another content's tag).
//
// The digest names what a build produces: the same context builds once,
// and a commit that does not touch it builds nothing. The package does no
// network I/O: the Docker driver builds and pushes.
package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Bounds of a build context: a repository is untrusted input.
const (
	// MaxContextSize bounds the bytes of a context's files.
	MaxContextSize = 512 << 20
	// MaxContextFiles bounds their number.
	MaxContextFiles = 100_000
	// LogLines is how many of a build's last output lines are kept.
	LogLines = 50
)

// Context is what an image is built from.
type Context struct {
	// FS holds the repository's files (a snapshot).
	FS fs.FS
	// Dir is the context directory in FS ("." for the root).
	Dir string
	// Dockerfile is its path relative to Dir (default "Dockerfile").
	Dockerfile string
	// Args are the build arguments; Target the stage to build ("" for
	// the last).
	Args   map[string]string
	Target string
}

func (c Context) dockerfile() string {
	if c.Dockerfile == "" {
		return "Dockerfile"
	}
	return c.Dockerfile
}

// file is one file of a context.
type file struct {
	name string // relative to the context directory, slash-separated
	mode fs.FileMode
	size int64
}

// files lists the context's regular files and directories in lexical
// order, without those .dockerignore excludes (but never the Dockerfile
// and .dockerignore themselves, as Docker sends them).
func (c Context) files() ([]file, error) {
	dir := path.Clean(c.Dir)
	if !fs.ValidPath(dir) {
		return nil, fmt.Errorf("build context %q is outside the repository", c.Dir)
	}
	if df := path.Clean(c.dockerfile()); df == ".." || strings.HasPrefix(df, "../") || path.IsAbs(df) {
		return nil, fmt.Errorf("dockerfile %q is outside the build context %s", c.dockerfile(), c.Dir)
	}
	if _, err := fs.Stat(c.FS, path.Join(dir, c.dockerfile())); err != nil {
		return nil, fmt.Errorf("no dockerfile %s in the build context %s", c.dockerfile(), c.Dir)
	}
	var pm *patternmatcher.PatternMatcher
	if f, err := c.FS.Open(path.Join(dir, ".dockerignore")); err == nil {
		patterns, err := ignorefile.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s/.dockerignore: %w", c.Dir, err)
		}
		if pm, err = patternmatcher.New(patterns); err != nil {
			return nil, fmt.Errorf("%s/.dockerignore: %w", c.Dir, err)
		}
	}
	var out []file
	var total int64
	err := fs.WalkDir(c.FS, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if dir == "." {
			rel = p
		}
		if rel == "" || rel == "." {
			return nil
		}
		keep := rel == c.dockerfile() || rel == ".dockerignore"
		if pm != nil && !keep {
			excluded, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if excluded {
				if d.IsDir() && !pm.Exclusions() {
					return fs.SkipDir
				}
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() && !info.Mode().IsRegular() {
			return nil // symlinks, devices: not part of a context read from Git
		}
		total += info.Size()
		if len(out) >= MaxContextFiles || total > MaxContextSize {
			return fmt.Errorf("build context %s is larger than %d files or %d MiB", c.Dir, MaxContextFiles, MaxContextSize>>20)
		}
		out = append(out, file{name: rel, mode: info.Mode(), size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Index maps each file of a context (slash-separated, relative to the
// context directory) to a short digest of its mode and content. Two
// indexes tell how many files a change touched.
type Index map[string]string

// Changed counts the files added, removed or changed from old to cur.
func Changed(old, cur Index) int {
	n := 0
	for name, sum := range cur {
		if old[name] != sum {
			n++
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			n++
		}
	}
	return n
}

// Sum is what a context digests to.
type Sum struct {
	// Digest is "sha256:HEX" over the files, the Dockerfile's name, the
	// arguments and the target.
	Digest string
	// Files indexes the context's files.
	Files Index
}

// Digest returns the digest of what c builds: "sha256:HEX".
func (c Context) Digest() (string, error) {
	s, err := c.Sum()
	return s.Digest, err
}

// Sum digests c and indexes its files.
func (c Context) Sum() (Sum, error) {
	files, err := c.files()
	if err != nil {
		return Sum{}, err
	}
	d := c.newDigester()
	idx := make(Index, len(files))
	for _, f := range files {
		if f.mode.IsDir() {
			d.dir(f)
			continue
		}
		r, err := c.FS.Open(path.Join(path.Clean(c.Dir), f.name))
		if err != nil {
			return Sum{}, err
		}
		sum, err := d.file(f, r)
		r.Close()
		if err != nil {
			return Sum{}, fmt.Errorf("%s: %w", f.name, err)
		}
		idx[f.name] = sum
	}
	return Sum{Digest: d.sum(), Files: idx}, nil
}

// digester computes a context's digest file by file.
type digester struct {
	h hash.Hash
}

func (c Context) newDigester() *digester {
	h := sha256.New()
	fmt.Fprintf(h, "maestro-sync build context v1\x00dockerfile %s\x00target %s\x00", c.dockerfile(), c.Target)
	keys := make([]string, 0, len(c.Args))
	for k := range c.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "arg %d:%s=%d:%s\x00", len(k), k, len(c.Args[k]), c.Args[k])
	}
	return &digester{h: h}
}

func (d *digester) dir(f file) { fmt.Fprintf(d.h, "dir %d:%s\x00", len(f.name), f.name) }

// file adds a file's header and content (exactly f.size bytes from r) and
// returns the file's own short digest, for the index.
func (d *digester) file(f file, r io.Reader) (string, error) {
	exec := f.mode.Perm() & 0o111
	fmt.Fprintf(d.h, "file %d:%s %o %d\x00", len(f.name), f.name, exec, f.size)
	own := sha256.New()
	fmt.Fprintf(own, "%o\x00", exec)
	n, err := io.Copy(io.MultiWriter(d.h, own), io.LimitReader(r, f.size+1))
	if err == nil && n != f.size {
		err = ErrMoved
	}
	return hex.EncodeToString(own.Sum(nil)[:8]), err
}

func (d *digester) sum() string { return "sha256:" + hex.EncodeToString(d.h.Sum(nil)) }

// ErrMoved is the error of a context whose files changed while they were
// read: what was built would not be what the digest names.
var ErrMoved = errors.New("the build context changed while it was read")

// Tag is the image tag of a context digest: "ctx-" and 16 hex digits.
func Tag(digest string) string {
	return "ctx-" + strings.TrimPrefix(digest, "sha256:")[:16]
}

// WriteTar writes c's files as the tar stream the Engine API builds from.
// When want is not empty, the files must still digest to it: if they do
// not, WriteTar fails with ErrMoved before it ends the stream, so that the
// engine builds nothing from it.
func (c Context) WriteTar(w io.Writer, want string) error {
	files, err := c.files()
	if err != nil {
		return err
	}
	dir := path.Clean(c.Dir)
	d := c.newDigester()
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: int64(f.mode.Perm()), Size: f.size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if f.mode.IsDir() {
			hdr.Name, hdr.Typeflag, hdr.Size, hdr.Mode = f.name+"/", tar.TypeDir, 0, 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if f.mode.IsDir() {
			d.dir(f)
			continue
		}
		r, err := c.FS.Open(path.Join(dir, f.name))
		if err != nil {
			return err
		}
		_, err = d.file(f, io.TeeReader(io.LimitReader(r, f.size), tw))
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if want != "" && d.sum() != want {
		return ErrMoved
	}
	return tw.Close()
}

// Error is a failed build, with the last lines of its output. File and
// Line locate it in the repository when the engine named a line of the
// Dockerfile (or the step that failed).
type Error struct {
	File string
	Line int
	Msg  string
	Log  []string
}

func (e *Error) Error() string {
	msg := "build failed: " + e.Msg
	if e.File != "" && e.Line > 0 {
		msg = fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	}
	if len(e.Log) == 0 {
		return msg
	}
	return msg + "\n" + strings.Join(e.Log, "\n")
}

// parseError is how the engine names a line of a Dockerfile it cannot
// parse; stepLine how the classic builder announces each instruction.
var (
	parseError = regexp.MustCompile(`(?i)dockerfile parse error (?:on )?line (\d+)`)
	stepLine   = regexp.MustCompile(`^Step (\d+)/\d+ : `)
)

// Locate sets e's File to the Dockerfile's path in the repository and its
// Line to the line the engine's message names, or else to the line of
// the instruction the build was running when it failed.
func (c Context) Locate(e *Error) {
	name := path.Join(path.Clean(c.Dir), c.dockerfile())
	e.File = name
	if m := parseError.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		return
	}
	step := 0
	for _, l := range e.Log {
		if m := stepLine.FindStringSubmatch(l); m != nil {
			step, _ = strconv.Atoi(m[1])
		}
	}
	data, err := fs.ReadFile(c.FS, name)
	if step == 0 || err != nil {
		return
	}
	if lines := InstructionLines(data); step <= len(lines) {
		e.Line = lines[step-1]
	}
}

// escapeDirective is the parser directive that changes a Dockerfile's
// line continuation character.
var escapeDirective = regexp.MustCompile("^#\\s*escape\\s*=\\s*([\\\\`])\\s*$")

// InstructionLines returns the line (from 1) where each instruction of a
// Dockerfile starts, in order: blank and comment lines are not
// instructions, and a line ending in the escape character continues the
// instruction on the next line.
func InstructionLines(dockerfile []byte) []int {
	escape := `\`
	var out []int
	directives, continued := true, false
	for i, line := range strings.Split(string(dockerfile), "\n") {
		t := strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if directives {
			if m := escapeDirective.FindStringSubmatch(t); m != nil {
				escape = m[1]
				continue
			}
			if !strings.HasPrefix(t, "#") || t == "#" {
				directives = false
			}
		}
		if t == "" || strings.HasPrefix(t, "#") {
			continue // inside an instruction too, as Docker reads it
		}
		if !continued {
			out = append(out, i+1)
		}
		continued = strings.HasSuffix(t, escape)
	}
	return out
}

// MaxIndexLabel bounds an encoded index: a larger one is not kept (the
// plan then cannot tell how many files changed, only that some did).
const MaxIndexLabel = 256 << 10

// Encode returns the index as a label value: its lines "DIGEST PATH"
// sorted by path, gzipped and base64-encoded; "" when that is longer than
// MaxIndexLabel.
func (ix Index) Encode() string {
	names := make([]string, 0, len(ix))
	for n := range ix {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	enc := base64.NewEncoder(base64.StdEncoding, &buf)
	zw := gzip.NewWriter(enc)
	for _, n := range names {
		fmt.Fprintf(zw, "%s %s\n", ix[n], n)
	}
	zw.Close()
	enc.Close()
	if buf.Len() > MaxIndexLabel {
		return ""
	}
	return buf.String()
}

// DecodeIndex reads what Encode wrote; the label of an image is
// untrusted, so the text it inflates to is bounded.
func DecodeIndex(s string) (Index, error) {
	if len(s) > MaxIndexLabel {
		return nil, errors.New("index too large")
	}
	zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, strings.NewReader(s)))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, err
	}
	ix := Index{}
	for line := range strings.Lines(string(data)) {
		sum, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok || len(ix) >= MaxContextFiles {
			return nil, errors.New("invalid index")
		}
		ix[name] = sum
	}
	return ix, nil
}
