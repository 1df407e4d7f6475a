// Package build builds images from a repository's own files: the digest
// of a build context (its files after .dockerignore, the Dockerfile, the
// build arguments and the target), the context as a tar stream read from
// a snapshot (never from a working tree that may change under it), and
// the build and the push through the Docker Engine API.
//
// The digest names what a build produces: the same context builds once,
// and a commit that does not touch it builds nothing.
package build

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
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

// Digest returns the digest of what c builds: "sha256:HEX".
func (c Context) Digest() (string, error) {
	files, err := c.files()
	if err != nil {
		return "", err
	}
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
	dir := path.Clean(c.Dir)
	for _, f := range files {
		if f.mode.IsDir() {
			fmt.Fprintf(h, "dir %d:%s\x00", len(f.name), f.name)
			continue
		}
		fmt.Fprintf(h, "file %d:%s %o %d\x00", len(f.name), f.name, f.mode.Perm()&0o111, f.size)
		r, err := c.FS.Open(path.Join(dir, f.name))
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Tag is the image tag of a context digest: "ctx-" and 16 hex digits.
func Tag(digest string) string {
	return "ctx-" + strings.TrimPrefix(digest, "sha256:")[:16]
}

// WriteTar writes c's files as the tar stream the Engine API builds from.
func (c Context) WriteTar(w io.Writer) error {
	files, err := c.files()
	if err != nil {
		return err
	}
	dir := path.Clean(c.Dir)
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
			continue
		}
		r, err := c.FS.Open(path.Join(dir, f.name))
		if err != nil {
			return err
		}
		_, err = io.CopyN(tw, r, f.size)
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return tw.Close()
}

// Error is a failed build, with the last lines of its output.
type Error struct {
	Msg string
	Log []string
}

func (e *Error) Error() string {
	if len(e.Log) == 0 {
		return "build failed: " + e.Msg
	}
	return fmt.Sprintf("build failed: %s\n%s", e.Msg, strings.Join(e.Log, "\n"))
}

// Build builds c on the engine as ref (repository:tag), streaming each
// output line to progress, and returns the image ID. A failed build is an
// *Error with the last LogLines lines.
func Build(ctx context.Context, cli client.APIClient, c Context, ref string, progress func(string)) (string, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.WriteTar(pw)) }()
	defer pr.Close()
	args := make(map[string]*string, len(c.Args))
	for k, v := range c.Args {
		args[k] = &v
	}
	resp, err := cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: c.dockerfile(), BuildArgs: args, Target: c.Target,
		Remove: true, ForceRemove: true, PullParent: false,
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	defer resp.Body.Close()
	var tail []string
	var id string
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(resp.Body, 256<<20)))
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", &Error{Msg: err.Error(), Log: tail}
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		for _, line := range strings.Split(strings.TrimRight(m.Stream, "\n"), "\n") {
			if line = strings.TrimRight(line, "\r"); line == "" {
				continue
			}
			tail = append(tail, line)
			if len(tail) > LogLines {
				tail = tail[1:]
			}
			if progress != nil {
				progress(line)
			}
		}
		if m.Error != nil {
			return "", &Error{Msg: m.Error.Message, Log: tail}
		}
	}
	if id == "" {
		inspect, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			return "", &Error{Msg: "the engine gave no image: " + err.Error(), Log: tail}
		}
		id = inspect.ID
	}
	return id, nil
}

// Push pushes ref to its registry with the credentials (empty: none)
// and returns the digest the registry gave the image.
func Push(ctx context.Context, cli client.APIClient, ref string, auth registry.AuthConfig, progress func(string)) (string, error) {
	encoded, err := registry.EncodeAuthConfig(auth)
	if err != nil {
		return "", err
	}
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: encoded})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	defer rc.Close()
	var digest string
	dec := json.NewDecoder(io.LimitReader(rc, 64<<20))
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("push %s: %s", ref, m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
		if progress != nil && m.Status != "" {
			progress(strings.TrimSpace(m.ID + " " + m.Status))
		}
	}
	if digest == "" {
		return "", fmt.Errorf("push %s: the registry gave no digest", ref)
	}
	return digest, nil
}
