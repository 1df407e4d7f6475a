package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// config is everything needed to create an instance's container.
type config struct {
	Config *container.Config
	Host   *container.HostConfig
}

// containerConfig turns a resolved instance into Docker's create request.
// Every instance key reaches Docker; the owner labels record the spec.
func containerConfig(envName, revision string, in *manifest.Instance) config {
	labels := map[string]string{}
	for k, v := range in.Labels {
		labels[k] = v
	}
	summary, _ := json.Marshal(in.Spec().Summary())
	labels[label.Env] = envName
	labels[label.Service] = in.Service
	labels[label.Instance] = in.Name
	labels[label.SpecHash] = in.SpecHash
	labels[label.Spec] = string(summary)
	if revision != "" {
		labels[label.Revision] = revision
	}
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range in.Ports {
		port := nat.Port(p.Exposed)
		exposed[port] = struct{}{}
		// Every address is left to the daemon's default binding address
		// (dockerd --ip, 0.0.0.0 unless configured).
		ip := p.ExternalIP
		if ip == "0.0.0.0" {
			ip = ""
		}
		bindings[port] = append(bindings[port], nat.PortBinding{HostIP: ip, HostPort: p.ExternalPort()})
	}
	cfg := &container.Config{
		Hostname:     in.Hostname,
		User:         in.User,
		Env:          in.Env.List(),
		Image:        in.Image,
		WorkingDir:   in.Workdir,
		Labels:       labels,
		ExposedPorts: exposed,
	}
	if len(in.Command) > 0 {
		cfg.Cmd = in.Command
	}
	stop := in.StopTimeout
	cfg.StopTimeout = &stop
	host := &container.HostConfig{
		PortBindings:  bindings,
		VolumesFrom:   in.VolumesFrom,
		Privileged:    in.Privileged,
		CapAdd:        in.CapAdd,
		CapDrop:       in.CapDrop,
		NetworkMode:   container.NetworkMode(in.Net),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(in.Restart.Name), MaximumRetryCount: in.Restart.MaxRetries},
		DNS:           in.DNS,
		SecurityOpt:   in.SecurityOpt,
	}
	for _, b := range in.Volumes {
		bind := b.Source + ":" + b.Target
		if b.Mode != "" {
			bind += ":" + b.Mode
		}
		host.Binds = append(host.Binds, bind)
	}
	for _, target := range in.ContainerVolumes {
		host.Mounts = append(host.Mounts, mount.Mount{
			Type:   mount.TypeVolume,
			Source: VolumeName(envName, in.Name, target),
			Target: target,
			VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{
				label.Env: envName, label.Service: in.Service, label.Instance: in.Name,
			}},
		})
	}
	for _, name := range sortedKeys(in.Links) {
		host.Links = append(host.Links, name+":"+in.Links[name])
	}
	for _, name := range sortedKeys(in.ExtraHosts) {
		host.ExtraHosts = append(host.ExtraHosts, name+":"+in.ExtraHosts[name])
	}
	host.Memory = in.Limits.Memory
	host.MemorySwap = in.Limits.Swap
	host.CPUShares = in.Limits.CPUShares
	for _, u := range in.Ulimits {
		host.Ulimits = append(host.Ulimits, &units.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if in.LogDriver != "" {
		host.LogConfig = container.LogConfig{Type: in.LogDriver, Config: in.LogOpt}
	}
	return config{Config: cfg, Host: host}
}

var unsafeVolumeChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// VolumeName names the volume that keeps an instance's container_volumes
// path across replacements: ms.<env>.<instance>.<digest of path>.
func VolumeName(env, instance, target string) string {
	sum := sha256.Sum256([]byte(target))
	clean := func(s string) string { return strings.Trim(unsafeVolumeChars.ReplaceAllString(s, "_"), "_.-") }
	return "ms." + clean(env) + "." + clean(instance) + "." + hex.EncodeToString(sum[:4])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
