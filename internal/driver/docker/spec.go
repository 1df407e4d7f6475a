package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
)

// config is everything needed to create an instance's container.
type config struct {
	Config *container.Config
	Host   *container.HostConfig
	Net    *network.NetworkingConfig
}

// containerConfig turns a resolved instance into Docker's create request.
// Every instance key reaches Docker; the owner labels record the spec.
func containerConfig(env *manifest.Environment, revision string, own owner.Owner, in *manifest.Instance) config {
	envName := env.Name
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
	if !own.IsZero() {
		labels[label.Owner] = own.ID
		labels[label.OwnerName] = own.Name
	}
	for k, v := range live.OriginRecord(env.Path, env.Labels) {
		if v != "" { // a container records no empty label
			labels[k] = v
		}
	}
	if in.Route != nil {
		route, _ := json.Marshal(routeOf(own.ID, envName, in))
		labels[label.Upstream] = upstream(in)
		labels[label.Route] = string(route)
	}
	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for _, p := range in.Ports {
		// Every address is left to the daemon's default binding address
		// (dockerd --ip, 0.0.0.0 unless configured).
		ip := p.ExternalIP
		if ip == "0.0.0.0" {
			ip = ""
		}
		routed := in.Route != nil && in.Route.Port == p.Name
		for _, b := range portBindings(p) {
			if routed {
				// The public port is the proxy's: the routed port is
				// published on a random host port, for the checks.
				b.host = ""
			}
			exposed[b.port] = struct{}{}
			bindings[b.port] = append(bindings[b.port], nat.PortBinding{HostIP: ip, HostPort: b.host})
		}
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
	out := config{Config: cfg, Host: host}
	if in.Route != nil && len(in.Links) == 0 {
		// A routed container lives on the proxy's network alone, under
		// its upstream alias (legacy links need the default bridge: a
		// routed container with links joins the proxy network as well).
		host.NetworkMode = container.NetworkMode(ProxyNetwork)
		out.Net = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			ProxyNetwork: {Aliases: []string{alias(upstream(in))}},
		}}
	}
	return out
}

type portBinding struct {
	port nat.Port
	host string
}

// portBindings publishes a port as Docker accepts it. The daemon refuses a
// container port range ("invalid port specification"), so a range is
// published port by port on the host range of the same size, as docker run
// -p does. A single container port may take a host range (Docker picks a
// free port in it).
func portBindings(p manifest.Port) []portBinding {
	lo, hi := hostRange(p.ExposedPort())
	hlo, hhi := hostRange(p.ExternalPort())
	if hi == lo || hhi-hlo != hi-lo { // other sizes are rejected by the manifest
		return []portBinding{{port: nat.Port(p.Exposed), host: p.ExternalPort()}}
	}
	out := make([]portBinding, 0, hi-lo+1)
	for i := 0; i <= hi-lo; i++ {
		out = append(out, portBinding{port: nat.Port(strconv.Itoa(lo+i) + "/" + p.Protocol()), host: strconv.Itoa(hlo + i)})
	}
	return out
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
