package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// specVersion is hashed with every spec, so that a change to what the hash
// covers is a deliberate, visible event.
const specVersion = "maestro-sync/spec/v1"

// Spec is what shapes a container: the input of SpecHash. Lifecycle
// checks are left out: they gate a deployment but do not change the
// container.
type Spec struct {
	Version          string            `json:"v"`
	Image            string            `json:"image"`
	Command          []string          `json:"command"`
	Env              []string          `json:"env"`
	Hostname         string            `json:"hostname"`
	Ports            PortList          `json:"ports"`
	Volumes          []Bind            `json:"volumes"`
	ContainerVolumes []string          `json:"container_volumes"`
	VolumesFrom      []string          `json:"volumes_from"`
	Links            map[string]string `json:"links"`
	User             string            `json:"user"`
	Privileged       bool              `json:"privileged"`
	CapAdd           []string          `json:"cap_add"`
	CapDrop          []string          `json:"cap_drop"`
	ExtraHosts       map[string]string `json:"extra_hosts"`
	Net              string            `json:"net"`
	Restart          RestartPolicy     `json:"restart"`
	DNS              []string          `json:"dns"`
	StopTimeout      int               `json:"stop_timeout"`
	Limits           Limits            `json:"limits"`
	LogDriver        string            `json:"log_driver"`
	LogOpt           map[string]string `json:"log_opt"`
	Workdir          string            `json:"workdir"`
	SecurityOpt      []string          `json:"security_opt"`
	Ulimits          []Ulimit          `json:"ulimits"`
	Labels           map[string]string `json:"labels"`
	// Kubernetes workloads only.
	Mode     string  `json:"mode,omitempty"`
	Replicas int     `json:"replicas,omitempty"`
	Probe    []Check `json:"probe,omitempty"`
	// Proxy is the route of an instance behind the front proxy.
	Proxy *Route `json:"proxy,omitempty"`
	// Expose and Ingress are how a workload is reached from outside.
	Expose  *Expose  `json:"expose,omitempty"`
	Ingress *Ingress `json:"ingress,omitempty"`
}

// SpecHash returns a digest of everything that shapes the instance's
// container. It is stable across key order, comments and formatting of the
// manifest, since it is computed from resolved, sorted values. The result
// is 32 hex characters, short enough for a Kubernetes label value.
func SpecHash(in *Instance) string {
	s := in.spec(false)
	env := in.Env
	if env == nil {
		env = Env{} // Env.List gives an empty list, not nil
	}
	var buf [4096]byte
	data, ok := s.appendJSON(buf[:0], env)
	if !ok {
		return in.Spec().Hash()
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// Spec returns what shapes the instance's container, in canonical order.
func (in *Instance) Spec() Spec { return in.spec(true) }

// spec is Spec, with Env left out unless env is set.
func (in *Instance) spec(env bool) Spec {
	var list []string
	if env {
		list = in.Env.List()
	}
	volumes := make([]Bind, len(in.Volumes))
	for i, v := range in.Volumes {
		if v.Mode == "" {
			v.Mode = "rw" // the same bind as an explicit rw
		}
		volumes[i] = v
	}
	return Spec{
		Version: specVersion, Image: in.Image, Command: in.Command, Env: list, Hostname: in.Hostname,
		Ports: in.Ports, Volumes: volumes, ContainerVolumes: in.ContainerVolumes, VolumesFrom: in.VolumesFrom,
		Links: in.Links, User: in.User, Privileged: in.Privileged, CapAdd: sortedSet(in.CapAdd), CapDrop: sortedSet(in.CapDrop),
		ExtraHosts: in.ExtraHosts, Net: in.Net, Restart: in.Restart, DNS: in.DNS, StopTimeout: in.StopTimeout,
		Limits: in.Limits, LogDriver: in.LogDriver, LogOpt: in.LogOpt, Workdir: in.Workdir, SecurityOpt: in.SecurityOpt,
		Ulimits: in.Ulimits, Labels: in.Labels, Proxy: in.Route,
	}
}

// Hash returns the digest of s: 32 hex characters.
func (s Spec) Hash() string {
	var buf [4096]byte
	data, ok := s.appendJSON(buf[:0], nil)
	if !ok {
		var err error
		if data, err = json.Marshal(s); err != nil {
			// Every field is a plain value: Marshal cannot fail.
			panic("manifest: hash spec: " + err.Error())
		}
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// Summary returns s with every env value replaced by a short digest, so
// that it can be stored on a live object (to tell later what changed)
// without copying secrets.
func (s Spec) Summary() Spec {
	env := make([]string, len(s.Env))
	for i, kv := range s.Env {
		name, value, set := strings.Cut(kv, "=")
		if !set {
			env[i] = name
			continue
		}
		sum := sha256.Sum256([]byte(kv))
		env[i] = name + "=" + EnvDigestPrefix + hex.EncodeToString(sum[:6])
		_ = value
	}
	s.Env = env
	return s
}

// EnvDigestPrefix starts an env value that Summary replaced by a digest.
const EnvDigestPrefix = "sha256:"

// Placed returns s without what only says how many pods run and where:
// the replicas of a Deployment, which scale in place instead of rolling
// out a new one. A workload's spec hash is Placed's.
func (s Spec) Placed() Spec {
	s.Replicas = 0
	return s
}

// Spec returns what shapes a workload's pods, in canonical order. Its
// running checks are part of it: they become the readiness probe.
func (w *Workload) Spec() Spec {
	return Spec{
		Version: specVersion, Image: w.Image, Command: w.Command, Env: w.Env.List(), Ports: w.Ports,
		Limits: Limits{Memory: w.MemoryBytes, CPUMillis: w.CPUMillis},
		Mode:   w.Mode, Replicas: w.Replicas, Probe: w.Lifecycle["running"], Expose: w.Expose, Ingress: w.Ingress,
	}
}
