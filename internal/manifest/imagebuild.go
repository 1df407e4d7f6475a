package manifest

import (
	"io/fs"
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/maestro-sync/maestro-sync/internal/build"
)

// buildKeys are the keys of a service's build section.
var buildKeys = []string{"context", "dockerfile", "args", "target", "builder"}

// Build is how a service's image is built from the repository's own files
// (a maestro-sync extension): the image is Repository:build.Tag(Digest),
// so that it changes exactly when what the build reads changes.
type Build struct {
	// Context is the context directory's path in the repository;
	// Dockerfile the Dockerfile's path relative to it.
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
	// Args are the build arguments. They are not shown in plans, and build
	// output hides the values of those named like secrets, but an image
	// records them in its history: they are no place for a secret.
	Args   map[string]string `json:"-"`
	Target string            `json:"target,omitempty"`
	// Builder is the ship the image is built on.
	Builder string `json:"builder"`
	// Repository is the image's repository. Push tells whether the image
	// is pushed there: the repository names a registry host. Without one
	// the image stays on the builder, which must be the only ship of the
	// service.
	Repository string `json:"repository"`
	Push       bool   `json:"push"`
	// Digest is the context's digest (see build.Context.Sum).
	Digest string `json:"digest"`
	// Files indexes the context's files, to tell how many a change
	// touched.
	Files build.Index `json:"-"`
	// FS holds the repository's files the context is read from.
	FS fs.FS `json:"-"`
}

// Image returns the reference of the image the build produces.
func (b *Build) Image() string { return b.Repository + ":" + build.Tag(b.Digest) }

// BuildContext returns what the build streams to the engine.
func (b *Build) BuildContext() build.Context {
	return build.Context{FS: b.FS, Dir: b.Context, Dockerfile: b.Dockerfile, Args: b.Args, Target: b.Target}
}

// localRepository is the repository of images built for services whose
// image names none: they stay on the ship that builds them.
const localRepository = "maestro-sync.local/"

// repoName is what Docker accepts as a repository path component.
var repoName = regexp.MustCompile(`[^a-z0-9._-]+`)

// registryOf returns the registry host an image repository names, or "".
func registryOf(repo string) string {
	first, _, hasSlash := strings.Cut(repo, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return ""
}

// imageBuild decodes a service's build section; the service's image, if
// given, is the repository to tag (and push) the image in.
func (b *builder) imageBuild(sd *serviceDraft, be entry) {
	p := sd.f.sub("build")
	bd := &Build{Dockerfile: "Dockerfile", FS: unlocked(b.fsys)}
	var ctxNode, dfNode *yaml.Node
	if v := resolve(be.V); v.Kind == yaml.ScalarNode {
		// build: DIR, as in compose.
		bd.Context, ctxNode = v.Value, v
	} else {
		f, ok := b.fields(be.V, p, buildKeys)
		if !ok {
			return
		}
		e, ok := b.required(f, "context", "build context (a directory of the repository)")
		if !ok {
			return
		}
		if bd.Context, ok = b.scalar(e.V, f.sub("context"), "a directory"); !ok {
			return
		}
		ctxNode = e.V
		if v, ok := b.str(f, "dockerfile"); ok {
			bd.Dockerfile, dfNode = v, f.byKey("dockerfile").V
		}
		if args, ok := b.stringMap(f, "args"); ok {
			bd.Args = args
		}
		bd.Target, _ = b.str(f, "target")
		if v, ok := b.str(f, "builder"); ok {
			bd.Builder = v
			if _, known := b.env.Ships[v]; !known {
				e, _ := f.get("builder")
				b.errorf(e.V, f.sub("builder"), "unknown ship %q (%s)", v, b.shipList())
			}
		}
	}
	if strings.HasPrefix(bd.Context, "/") {
		b.errorf(ctxNode, p, "build context %s is outside the repository: give a directory relative to %s", bd.Context, b.displayDir())
		return
	}
	bd.Context = path.Join(b.dir, bd.Context)
	if !fs.ValidPath(bd.Context) {
		b.errorf(ctxNode, p, "build context %s is outside the repository", resolve(ctxNode).Value)
		return
	}
	if st, err := fs.Stat(b.fsys, bd.Context); err != nil || !st.IsDir() {
		b.errorf(ctxNode, p, "build context %s is not a directory of the repository", bd.Context)
		return
	}
	// The sum reads the files through the load's file system, which reads
	// one file at a time while manifests and services load in parallel.
	bc := bd.BuildContext()
	bc.FS = b.fsys
	sum, err := bc.Sum()
	if err != nil {
		if dfNode != nil && strings.Contains(err.Error(), "dockerfile") {
			ctxNode, p = dfNode, join(p, "dockerfile")
		}
		b.errorf(ctxNode, p, "%v", err)
		return
	}
	bd.Digest, bd.Files = sum.Digest, sum.Files

	svc := sd.svc
	if e, ok := sd.f.get("image"); ok && svc.Image != "" {
		repo, _ := ParseImage(svc.Image)
		if repo != svc.Image || strings.Contains(svc.Image, "@") {
			b.errorf(e.V, sd.f.sub("image"), "image %s sets a tag: a built service's image is the repository its builds are tagged in (the tag is the build context's digest)", svc.Image)
			return
		}
		bd.Repository, bd.Push = svc.Image, registryOf(svc.Image) != ""
	} else {
		bd.Repository = localRepository + repoName.ReplaceAllString(strings.ToLower(b.env.Name), "-")
	}
	svc.Build = bd
	svc.Image = bd.Image()
}

// checkBuild checks, once the instances are known, where a service's
// image is built and that every ship that runs it can get it.
func (b *builder) checkBuild(sd *serviceDraft) {
	bd := sd.svc.Build
	if bd == nil {
		return
	}
	p := sd.f.sub("build")
	be := sd.f.byKey("build")
	if sd.svc.Workload != nil {
		if bd.Builder == "" {
			b.errorf(be.K, p, "a cluster service is built on a ship: name it with build.builder")
		}
		if !bd.Push {
			b.errorf(be.K, p, "a cluster service's image must be pushed: set image to a repository of a registry (registry.example.com/team/%s)", sd.svc.Name)
		}
		return
	}
	for _, id := range sd.instances {
		if id.f.has("image") {
			e := id.f.byKey("image")
			b.errorf(e.K, id.f.sub("image"), "an instance of a built service runs the service's build: remove its image")
		}
	}
	if bd.Builder == "" && len(sd.instances) > 0 {
		bd.Builder = sd.instances[0].in.Ship
	}
	if bd.Push {
		return
	}
	builder := b.env.Ships[bd.Builder]
	for _, id := range sd.instances {
		if s := b.env.Ships[id.in.Ship]; s != nil && builder != nil && s.Address() != builder.Address() {
			b.errorf(be.K, p, "instance %s runs on ship %s, not on the builder %s: set image to a repository of a registry (registry.example.com/team/%s) so that every ship pulls the build", id.in.Name, id.in.Ship, bd.Builder, sd.svc.Name)
			return
		}
	}
}

// displayDir is the manifest's directory as the user sees it.
func (b *builder) displayDir() string {
	if b.dir == "" || b.dir == "." {
		return "the repository's root"
	}
	return b.dir
}
