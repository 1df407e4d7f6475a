package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/docker-credential-helpers/client"
	helpercreds "github.com/docker/docker-credential-helpers/credentials"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"golang.org/x/sync/singleflight"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Auth resolves registry credentials as MaestroNG does: the manifest's
// registries section first, then the Docker client configuration
// (~/.docker/config.json), read by Docker's own configuration package:
// its auths entries, and its credential helpers (credHelpers per
// registry, credsStore for the rest: docker-credential-<name> programs
// on PATH, such as the ECR, GCR and ACR ones), asked at each pull so that
// short-lived tokens are fresh. Credentials never appear in errors or
// logs.
type Auth struct {
	cf *configfile.ConfigFile
}

// LoadAuth reads a Docker client configuration file; a missing file gives
// an empty configuration.
func LoadAuth(path string) (*Auth, error) {
	cf := configfile.New(path)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Auth{cf: cf}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	// The decoder's error may quote the file: say only where it is.
	if err := cf.LoadFromReader(io.LimitReader(f, 4<<20)); err != nil {
		return nil, fmt.Errorf("docker config %s: invalid JSON", path)
	}
	return &Auth{cf: cf}, nil
}

// fromConfig returns the Docker configuration's credentials for a
// registry host: from its credential helper when one is configured, as
// the docker CLI does, else from its auths entries.
func (a *Auth) fromConfig(host string) (registry.AuthConfig, bool, error) {
	if a == nil || a.cf == nil {
		return registry.AuthConfig{}, false, nil
	}
	key := host
	if host == "docker.io" || host == "index.docker.io" {
		key = hubConfigKey
	}
	helper := a.cf.CredentialHelpers[key]
	if helper == "" {
		helper = a.cf.CredentialsStore
	}
	out := registry.AuthConfig{ServerAddress: host}
	if helper != "" {
		creds, err := client.Get(quietProgram("docker-credential-"+helper), key)
		switch {
		case helpercreds.IsErrCredentialsNotFound(err):
			return out, false, nil
		case err != nil:
			// The helper's own words may hold anything: name it only.
			return out, false, fmt.Errorf("the Docker credential helper %s for %s failed", helper, host)
		case creds.Username == "<token>":
			out.IdentityToken = creds.Secret // the helpers' way to pass a token
		default:
			out.Username, out.Password = creds.Username, creds.Secret
		}
		return out, creds.Secret != "", nil
	}
	ac, err := credentials.NewFileStore(a.cf).Get(key)
	if err != nil {
		return out, false, nil
	}
	out.Username, out.Password, out.IdentityToken, out.RegistryToken = ac.Username, ac.Password, ac.IdentityToken, ac.RegistryToken
	return out, ac.Username != "" || ac.IdentityToken != "" || ac.RegistryToken != "", nil
}

// hubConfigKey is Docker Hub's key in a Docker configuration.
const hubConfigKey = "https://index.docker.io/v1/"

// quietProgram runs a credential helper with its standard error kept from
// ours (it could hold a secret, and ours may be a daemon's log).
func quietProgram(name string) client.ProgramFunc {
	return func(args ...string) client.Program {
		return &helperCmd{cmd: exec.Command(name, args...)}
	}
}

type helperCmd struct{ cmd *exec.Cmd }

// Output runs the helper; its standard error goes nowhere.
func (h *helperCmd) Output() ([]byte, error) { return h.cmd.Output() }

// Input sets what the helper reads.
func (h *helperCmd) Input(in io.Reader) { h.cmd.Stdin = in }

// registryHost returns host[:port] of a registry URL or bare host.
func registryHost(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Host
	}
	return strings.TrimSuffix(s, "/")
}

// credentials returns the encoded credentials for pulling ref, or "".
func (a *Auth) credentials(env *manifest.Environment, ref string) (string, error) {
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
	if !found {
		var err error
		if ac, found, err = a.fromConfig(host); err != nil {
			return "", err
		}
	}
	if !found {
		return "", nil
	}
	enc, err := registry.EncodeAuthConfig(ac)
	if err != nil {
		return "", nil
	}
	return enc, nil
}

// imageCache makes sure images are present, pulling each image at most once
// at a time per ship.
type imageCache struct {
	auth  *Auth
	group singleflight.Group
}

func newImageCache(auth *Auth) *imageCache { return &imageCache{auth: auth} }

// ensure makes sure the ship has the image ref, pulling it when it is
// missing (always, with refresh), and returns what the ship has under ref.
func (ic *imageCache) ensure(ctx context.Context, t *target, ref string, refresh bool, progress func(string)) (image.InspectResponse, error) {
	key := t.ship.Address() + "|" + ref
	v, err, _ := ic.group.Do(key, func() (any, error) {
		inspect := func() (image.InspectResponse, error) {
			sctx, cancel := short(ctx, t.ship)
			defer cancel()
			return t.c.ImageInspect(sctx, ref)
		}
		if !refresh {
			info, err := inspect()
			if err == nil {
				return info, nil
			}
			if !cerrdefs.IsNotFound(err) {
				return nil, fmt.Errorf("inspect image %s: %w", ref, err)
			}
		}
		progress("pulling image " + ref)
		if err := ic.pull(ctx, t, ref); err != nil {
			return nil, err
		}
		info, _ := inspect() // pulled: what it says is only recorded
		return info, nil
	})
	if err != nil {
		return image.InspectResponse{}, err
	}
	return v.(image.InspectResponse), nil
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
	creds, err := ic.auth.credentials(t.env, ref)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	rc, err := t.c.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: creds})
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
