package docker

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dbuild "github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"golang.org/x/sync/errgroup"

	"github.com/maestro-sync/maestro-sync/internal/build"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/secret"
)

// buildImage builds c on the engine as ref (repository:tag) with the
// labels, streaming each output line to progress, and returns the image
// ID. The context is streamed from c's files and must still digest to
// want. A failed build is a *build.Error with the last build.LogLines
// lines, located in the Dockerfile when the engine says where.
func buildImage(ctx context.Context, cli client.APIClient, c build.Context, want, ref string, labels map[string]string, progress func(string)) (string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr, pw := io.Pipe()
	go func() {
		err := c.WriteTar(pw, want)
		if err != nil {
			cancel(err) // the engine must not build a partial context
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	args := make(map[string]*string, len(c.Args))
	for k, v := range c.Args {
		args[k] = &v
	}
	resp, err := cli.ImageBuild(ctx, pr, dbuild.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: c.Dockerfile, BuildArgs: args, Target: c.Target, Labels: labels,
		Remove: true, ForceRemove: true, PullParent: false, Version: dbuild.BuilderV1,
	})
	if cause := context.Cause(ctx); errors.Is(cause, build.ErrMoved) {
		return "", cause
	}
	var tail []string
	fail := func(msg string) error {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			msg = cause.Error()
		}
		e := &build.Error{Msg: msg, Log: tail}
		c.Locate(e)
		return e
	}
	if err != nil {
		if ctx.Err() == nil && client.IsErrConnectionFailed(err) {
			return "", fmt.Errorf("build %s: %w", ref, err)
		}
		// The engine refused the context (a Dockerfile it cannot parse).
		return "", fail(strings.TrimPrefix(err.Error(), "Error response from daemon: "))
	}
	defer resp.Body.Close()
	var id string
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(resp.Body, 256<<20)))
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fail(err.Error())
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
			if len(tail) > build.LogLines {
				tail = tail[1:]
			}
			progress(line)
		}
		if m.Error != nil {
			return "", fail(m.Error.Message)
		}
	}
	if cause := context.Cause(ctx); cause != nil {
		return "", fail(cause.Error())
	}
	if id == "" {
		inspect, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			return "", fail("the engine gave no image: " + err.Error())
		}
		id = inspect.ID
	}
	return id, nil
}

// pushImage pushes ref to its registry with the encoded credentials
// ("" for none) and returns the digest the registry gave the image.
func pushImage(ctx context.Context, cli client.APIClient, ref, auth string, progress func(string)) (string, error) {
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
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
		if m.Status != "" {
			progress(strings.TrimSpace(m.ID + " " + m.Status))
		}
	}
	if digest == "" {
		return "", fmt.Errorf("push %s: the registry gave no digest", ref)
	}
	return digest, nil
}

// imageMemo remembers what observing images found, since a built image's
// reference names its content: a registry's digest for a reference (for a
// while: the registry may lose it), and the file index of an image ID
// (for good: an ID names its content).
type imageMemo struct {
	mu      sync.Mutex
	digests map[string]memoDigest
	indexes map[string]build.Index
}

type memoDigest struct {
	digest string
	at     time.Time
}

// digestMemoTTL is how long a registry's digest of a reference is
// trusted without asking again.
const digestMemoTTL = 10 * time.Minute

func (m *imageMemo) digest(ref string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.digests[ref]; ok && time.Since(d.at) < digestMemoTTL {
		return d.digest
	}
	return ""
}

func (m *imageMemo) setDigest(ref, digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.digests == nil {
		m.digests = map[string]memoDigest{}
	}
	m.digests[ref] = memoDigest{digest, time.Now()}
}

func (m *imageMemo) index(id string) (build.Index, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ix, ok := m.indexes[id]
	return ix, ok
}

func (m *imageMemo) setIndex(id string, ix build.Index) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.indexes == nil {
		m.indexes = map[string]build.Index{}
	}
	if len(m.indexes) > 4096 {
		clear(m.indexes)
	}
	m.indexes[id] = ix
}

// ObserveImages records in state the images of the built services of
// envs: whether each image a manifest names is built yet (in its registry,
// asked through the builder's engine with the pull credentials; or on the
// builder for a local image), and the file index of each image their
// containers run now, so that a plan can tell how many files changed.
func (p *Pool) ObserveImages(ctx context.Context, envs []*manifest.Environment, state *live.State, auth *Auth) {
	type want struct {
		env  *manifest.Environment
		ship *manifest.Ship
		ref  string
		b    *manifest.Build
	}
	wants := map[string]want{}
	type running struct {
		ship *manifest.Ship
		ref  string
		id   string
	}
	var runs []running
	for _, env := range envs {
		for _, svc := range env.Services {
			b := svc.Build
			if b == nil || env.Ships[b.Builder] == nil {
				continue
			}
			if _, ok := wants[svc.Image]; !ok {
				wants[svc.Image] = want{env, env.Ships[b.Builder], svc.Image, b}
			}
			for _, in := range svc.Instances {
				ship := env.Ships[in.Ship]
				h := state.Host(ship.Address())
				if h == nil {
					continue
				}
				for _, c := range h.Containers {
					if c.Name == in.Name && c.Env() == env.Name && c.ImageID != "" {
						ref, _, _ := strings.Cut(c.Image, "@")
						if ref != svc.Image {
							runs = append(runs, running{ship, ref, c.ImageID})
						}
					}
				}
			}
		}
	}
	if len(wants) == 0 {
		return
	}
	var mu sync.Mutex
	images := map[string]*live.Image{}
	var g errgroup.Group
	g.SetLimit(8)
	for _, w := range wants {
		g.Go(func() error {
			img := p.observeImage(ctx, w.env, w.ship, w.ref, w.b, auth)
			mu.Lock()
			images[w.ref] = img
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	// Then what the running images were built from (an image only
	// running, not wanted, is not known to be where instances get it).
	for _, r := range runs {
		g.Go(func() error {
			ix := p.imageIndex(ctx, r.ship, r.id)
			mu.Lock()
			defer mu.Unlock()
			if images[r.ref] == nil {
				images[r.ref] = &live.Image{}
			}
			if ix != nil {
				images[r.ref].Files = ix
			}
			return nil
		})
	}
	_ = g.Wait()
	state.Images = images
}

// observeImage tells whether a built service's image exists where its
// instances get it.
func (p *Pool) observeImage(ctx context.Context, env *manifest.Environment, builder *manifest.Ship, ref string, b *manifest.Build, auth *Auth) *live.Image {
	if b.Push {
		if d := p.memo.digest(ref); d != "" {
			return &live.Image{Present: true, Digest: d}
		}
	}
	c, err := p.Client(builder)
	if err != nil {
		return &live.Image{Err: err}
	}
	sctx, cancel := short(ctx, builder)
	defer cancel()
	if !b.Push {
		info, err := c.ImageInspect(sctx, ref)
		switch {
		case cerrdefs.IsNotFound(err):
			return &live.Image{}
		case err != nil:
			return &live.Image{Err: fmt.Errorf("inspect %s on %s: %w", ref, builder.Name, err)}
		}
		return &live.Image{Present: true, Files: indexOf(info)}
	}
	creds, err := auth.credentials(env, ref)
	if err != nil {
		return &live.Image{Err: err}
	}
	di, err := c.DistributionInspect(sctx, ref, creds)
	if err != nil {
		if registryNotFound(err) {
			return &live.Image{}
		}
		return &live.Image{Err: fmt.Errorf("ask the registry of %s: %w", ref, err)}
	}
	d := string(di.Descriptor.Digest)
	p.memo.setDigest(ref, d)
	return &live.Image{Present: true, Digest: d}
}

// registryNotFound reports whether the engine's error says the registry
// has no such manifest.
func registryNotFound(err error) bool {
	msg := strings.ToLower(err.Error())
	return cerrdefs.IsNotFound(err) || strings.Contains(msg, "manifest unknown") || strings.Contains(msg, "not found")
}

// imageIndex returns the file index the image with that ID was built
// from, or nil.
func (p *Pool) imageIndex(ctx context.Context, ship *manifest.Ship, id string) build.Index {
	if ix, ok := p.memo.index(id); ok {
		return ix
	}
	c, err := p.Client(ship)
	if err != nil {
		return nil
	}
	sctx, cancel := short(ctx, ship)
	defer cancel()
	info, err := c.ImageInspect(sctx, id)
	if err != nil {
		return nil
	}
	ix := indexOf(info)
	p.memo.setIndex(id, ix)
	return ix
}

// indexOf reads the file index an image was built from off its label;
// nil when it has none, or one that does not decode.
func indexOf(info image.InspectResponse) build.Index {
	if info.Config == nil || info.Config.Labels[label.ContextIndex] == "" {
		return nil
	}
	ix, err := build.DecodeIndex(info.Config.Labels[label.ContextIndex])
	if err != nil {
		return nil
	}
	return ix
}

// build carries out a build step: the image is built on the builder ship
// from the context as the snapshot holds it (checked against the digest
// the plan was made from), pushed when its repository names a registry,
// and remembered for the steps that run it.
func (d *Driver) build(ctx context.Context, st plan.Step, progress func(string)) error {
	env := d.envs[st.Env]
	if env == nil || st.Build == nil {
		return fmt.Errorf("environment %s is not loaded", st.Env)
	}
	var b *manifest.Build
	for _, svc := range env.Services {
		if svc.Build != nil && svc.Image == st.Build.Image {
			b = svc.Build // the first service that runs it builds it, as planned
			break
		}
	}
	if b == nil || b.Digest != st.Build.Digest {
		return fmt.Errorf("build %s: the plan's context is not the loaded one: plan again", st.Build.Image)
	}
	ship := env.Ships[b.Builder]
	if ship == nil {
		return fmt.Errorf("build %s: no builder ship %s", st.Build.Image, b.Builder)
	}
	c, err := d.pool.Client(ship)
	if err != nil {
		return err
	}
	ref := st.Build.Image
	labels := map[string]string{label.ContextDigest: b.Digest}
	if ix := b.Files.Encode(); ix != "" {
		labels[label.ContextIndex] = ix
	}
	progress(fmt.Sprintf("building %s on %s from %s", ref, ship.Name, b.Context))
	redact := secretArgs(b.Args)
	if _, err := buildImage(ctx, c, b.BuildContext(), b.Digest, ref, labels, func(l string) { progress(redact.Replace(l)) }); err != nil {
		var be *build.Error
		if errors.As(err, &be) {
			be.Msg = redact.Replace(be.Msg)
			for i := range be.Log {
				be.Log[i] = redact.Replace(be.Log[i])
			}
		}
		return err
	}
	if !b.Push {
		return nil
	}
	creds, err := d.images.auth.credentials(env, ref)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	progress("pushing " + ref)
	digest, err := pushImage(ctx, c, ref, creds, progress)
	if err != nil {
		return err
	}
	d.pool.memo.setDigest(ref, digest)
	d.builtMu.Lock()
	d.built[ref] = digest
	d.builtMu.Unlock()
	progress("pushed " + ref + "@" + digest)
	return nil
}

// Pushed returns the registry digest a build step of this run pushed ref
// with, or "".
func (d *Driver) Pushed(ref string) string {
	d.builtMu.Lock()
	defer d.builtMu.Unlock()
	return d.built[ref]
}

// image returns the reference a step's container runs: pinned by the
// digest its build pushed in this run, or the plan observed; else the
// instance's image.
func (d *Driver) image(st plan.Step, in *manifest.Instance) string {
	digest := d.Pushed(in.Image)
	switch {
	case digest != "":
		return in.Image + "@" + digest
	case st.Image != "":
		return st.Image
	}
	return in.Image
}

// pinned is what a container created from ref (the ship has it as info)
// records it runs: ref when it is pinned by a digest, else the image's
// registry digest (repository@sha256:…) when it came from a registry,
// else its ID.
func pinned(ref string, info image.InspectResponse) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	repo, _ := manifest.ParseImage(ref)
	for _, rd := range info.RepoDigests {
		if r, _, _ := strings.Cut(rd, "@"); r == repo {
			return rd
		}
	}
	return info.ID
}

// secretArgs replaces the values of build arguments whose names look
// secret (TOKEN, PASSWORD, …) in what a build prints, which reaches
// logs, the status and notifications.
func secretArgs(args map[string]string) *strings.Replacer {
	m := secret.New(nil)
	var names []string
	for k, v := range args {
		if len(v) >= 4 && m.Name(k) {
			names = append(names, k)
		}
	}
	// The longest first: a secret that starts another must not leave
	// the other's end shown.
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(len(args[b])-len(args[a]), strings.Compare(a, b)) })
	var pairs []string
	for _, k := range names {
		pairs = append(pairs, args[k], "<"+k+" hidden>")
	}
	return strings.NewReplacer(pairs...)
}
