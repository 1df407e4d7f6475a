package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"golang.org/x/sync/singleflight"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Auth resolves registry credentials as MaestroNG does: the manifest's
// registries section first, then the Docker client configuration
// (~/.docker/config.json). Credentials never appear in errors or logs.
type Auth struct {
	config map[string]registry.AuthConfig // by registry host
}

// LoadAuth reads a Docker client configuration file; a missing file gives
// an empty configuration. Credential helpers are not supported.
func LoadAuth(path string) (*Auth, error) {
	a := &Auth{config: map[string]registry.AuthConfig{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("docker config %s: invalid JSON", path)
	}
	for key, e := range cfg.Auths {
		ac := registry.AuthConfig{Username: e.Username, Password: e.Password, ServerAddress: key}
		if e.Auth != "" {
			if raw, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
				ac.Username, ac.Password, _ = strings.Cut(string(raw), ":")
			}
		}
		a.config[registryHost(key)] = ac
	}
	return a, nil
}

// registryHost returns host[:port] of a registry URL or bare host.
func registryHost(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Host
	}
	return strings.TrimSuffix(s, "/")
}

// credentials returns the encoded credentials for pulling ref, or "".
func (a *Auth) credentials(env *manifest.Environment, ref string) string {
	repo, _ := manifest.ParseImage(ref)
	host := "index.docker.io"
	first, _, hasSlash := strings.Cut(repo, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		host = first
	}
	var ac registry.AuthConfig
	found := false
	if hasSlash {
		for name, r := range env.Registries {
			h := registryHost(r.URL)
			if name == first || h == first || strings.Split(h, ":")[0] == first {
				ac = registry.AuthConfig{Username: r.Username, Password: r.Password, ServerAddress: r.URL}
				found = r.Username != ""
				host = h
				break
			}
		}
	}
	if !found && a != nil {
		ac, found = a.config[host]
	}
	if !found {
		return ""
	}
	enc, err := registry.EncodeAuthConfig(ac)
	if err != nil {
		return ""
	}
	return enc
}

// imageCache makes sure images are present, pulling each image at most once
// at a time per ship.
type imageCache struct {
	auth  *Auth
	group singleflight.Group
}

func newImageCache(auth *Auth) *imageCache { return &imageCache{auth: auth} }

func (ic *imageCache) ensure(ctx context.Context, t *target, ref string, refresh bool, progress func(string)) error {
	key := t.ship.Address() + "|" + ref
	_, err, _ := ic.group.Do(key, func() (any, error) {
		if !refresh {
			sctx, cancel := short(ctx, t.ship)
			_, err := t.c.ImageInspect(sctx, ref)
			cancel()
			if err == nil {
				return nil, nil
			}
			if !cerrdefs.IsNotFound(err) {
				return nil, fmt.Errorf("inspect image %s: %w", ref, err)
			}
		}
		progress("pulling image " + ref)
		return nil, ic.pull(ctx, t, ref)
	})
	return err
}

func (ic *imageCache) pull(ctx context.Context, t *target, ref string) error {
	attempts := 1
	for _, r := range t.env.Registries {
		if len(r.Retry.When) > 0 && strings.HasPrefix(ref, r.Name+"/") {
			attempts = max(1, r.Retry.Attempts)
		}
	}
	var err error
	for range attempts {
		if err = ic.pullOnce(ctx, t, ref); err == nil || ctx.Err() != nil {
			break
		}
	}
	return err
}

func (ic *imageCache) pullOnce(ctx context.Context, t *target, ref string) error {
	rc, err := t.c.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: ic.auth.credentials(t.env, ref)})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("pull %s: %s", ref, msg.Error)
		}
	}
}
