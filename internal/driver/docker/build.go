package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	dbuild "github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/maestro-sync/maestro-sync/internal/build"
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
	if err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	defer resp.Body.Close()
	var tail []string
	var id string
	fail := func(msg string) error {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			msg = cause.Error()
		}
		e := &build.Error{Msg: msg, Log: tail}
		c.Locate(e)
		return e
	}
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
