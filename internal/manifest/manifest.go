package manifest

import (
	"encoding/json"
	"slices"
	"strings"
)

// Repo is the desired state of a whole GitOps repository: one Environment
// per manifest file.
type Repo struct {
	// Environments holds the valid environments, sorted by file.
	Environments []*Environment `json:"environments"`
	// Diagnostics holds every error and warning of every file.
	Diagnostics Errors `json:"-"`
	// Invalid lists the files whose environment did not validate; nothing
	// of them is in Environments.
	Invalid []string `json:"-"`
	// Partial holds, by file in Invalid, what could still be read of its
	// environment: its name and labels. A file that did not decode that
	// far has no entry.
	Partial map[string]Partial `json:"-"`
}

// Partial is what could be read of an invalid environment.
type Partial struct {
	// Name is the environment's name ("" when it did not decode).
	Name string
	// Labels are its labels (__maestro.labels); LabelsOK is false when
	// they did not decode, so that which daemon it belongs to is unknown.
	Labels   map[string]string
	LabelsOK bool
}

// Err returns the error-level diagnostics as Errors, or nil when every
// environment is valid.
func (r *Repo) Err() error {
	var es Errors
	for _, d := range r.Diagnostics {
		if d.Severity == SeverityError {
			es = append(es, d)
		}
	}
	if len(es) == 0 {
		return nil
	}
	return es
}

// Warnings returns the warning-level diagnostics.
func (r *Repo) Warnings() Errors {
	var ws Errors
	for _, d := range r.Diagnostics {
		if d.Severity == SeverityWarning {
			ws = append(ws, d)
		}
	}
	return ws
}

// Environment is one MaestroNG environment file, fully resolved.
type Environment struct {
	Name string `json:"name"`
	// File is the manifest's path as the user sees it.
	File string `json:"file"`
	// Path is the manifest's path in the tree it was loaded from (for the
	// daemon, relative to --path): what shards select by, and what the
	// drivers record on the objects they create.
	Path string `json:"-"`
	// Schema is __maestro.schema: 1 (legacy volume direction) or 2.
	Schema     int                  `json:"schema"`
	Registries map[string]*Registry `json:"registries,omitempty"`
	Ships      map[string]*Ship     `json:"ships"`
	// Clusters are Kubernetes clusters (a maestro-sync extension).
	Clusters map[string]*Cluster `json:"clusters,omitempty"`
	// Services in file order.
	Services []*Service `json:"services"`
	Audit    []Auditor  `json:"audit,omitempty"`
	// Revision, when set, is the source revision the environment was
	// loaded from, when not the run's: an environment pinned to an
	// earlier revision by a rollback. Drivers record it on what they
	// create.
	Revision string `json:"revision,omitempty"`
	// Proxy configures the front proxy of the environment's ships.
	Proxy Proxy `json:"proxy"`
	// Labels are the environment's own labels (__maestro.labels, a
	// maestro-sync extension): daemons select their environments by them
	// (run --environment-selector).
	Labels map[string]string `json:"labels,omitempty"`

	graph             *graph
	nameLine, nameCol int
	labelsBad         bool
}

// Service returns the named service, or nil.
func (e *Environment) Service(name string) *Service {
	for _, s := range e.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Instance returns the named instance (container), or nil.
func (e *Environment) Instance(name string) *Instance {
	for _, s := range e.Services {
		for _, in := range s.Instances {
			if in.Name == name {
				return in
			}
		}
	}
	return nil
}

// Instances returns every instance of every service, in file order.
func (e *Environment) Instances() []*Instance {
	var out []*Instance
	for _, s := range e.Services {
		out = append(out, s.Instances...)
	}
	return out
}

// ShipNames returns the ship names, sorted.
func (e *Environment) ShipNames() []string {
	return sortedKeys(e.Ships)
}

// Registry is an entry of the registries section.
type Registry struct {
	Name     string `json:"name"`
	URL      string `json:"registry"`
	Username string `json:"username,omitempty"`
	Password string `json:"-"`
	Email    string `json:"email,omitempty"`
	Retry    Retry  `json:"retry"`
}

// Retry is a registry's retry policy for login and pull.
type Retry struct {
	Attempts int   `json:"attempts"`
	When     []int `json:"when,omitempty"`
}

// Ship is a Docker host.
type Ship struct {
	Name string `json:"name"`
	// IP is the address that peers use to reach the ship's containers.
	IP string `json:"ip"`
	// Endpoint is the address of the Docker daemon (defaults to IP).
	Endpoint   string     `json:"endpoint"`
	DockerPort int        `json:"docker_port"`
	SocketPath string     `json:"socket_path,omitempty"`
	SSHTunnel  *SSHTunnel `json:"ssh_tunnel,omitempty"`
	// DockerHost is an ssh:// URL, as DOCKER_HOST: the daemon is reached
	// through the system ssh client running `docker system dial-stdio`
	// on the ship. SSHKey is the private key it uses ("" for the agent
	// and the ssh configuration).
	DockerHost string `json:"docker_host,omitempty"`
	SSHKey     string `json:"ssh_key,omitempty"`
	// Context names a docker CLI context (docker context ls) whose
	// Docker endpoint the ship is.
	Context    string `json:"context,omitempty"`
	APIVersion string `json:"api_version,omitempty"`
	// Timeout is the Docker client timeout in seconds.
	Timeout    float64 `json:"timeout"`
	TLS        bool    `json:"tls,omitempty"`
	TLSVerify  bool    `json:"tls_verify,omitempty"`
	TLSCACert  string  `json:"tls_ca_cert,omitempty"`
	TLSCert    string  `json:"tls_cert,omitempty"`
	TLSKey     string  `json:"tls_key,omitempty"`
	SSLVersion string  `json:"ssl_version,omitempty"`
}

// Address returns a string that identifies the Docker daemon the ship
// connects to, so that two ships (even of different environments) pointing
// at the same daemon can be recognised.
func (s *Ship) Address() string {
	switch {
	case s.Context != "":
		return "context://" + s.Context
	case s.DockerHost != "":
		return s.DockerHost
	case s.SSHTunnel != nil:
		if s.SSHTunnel.Socket != "" {
			return "ssh://" + s.SSHTunnel.User + "@" + s.Endpoint + ":" + itoa(s.SSHTunnel.Port) + s.SSHTunnel.Socket
		}
		return "ssh://" + s.SSHTunnel.User + "@" + s.Endpoint + ":" + itoa(s.SSHTunnel.Port) + "/" + itoa(s.DockerPort)
	case s.SocketPath != "":
		return "unix://" + s.SocketPath
	default:
		return "tcp://" + s.Endpoint + ":" + itoa(s.DockerPort)
	}
}

// SSHTunnel reaches a ship's Docker daemon through SSH.
type SSHTunnel struct {
	User string `json:"user"`
	Key  string `json:"key"`
	Port int    `json:"port"`
	// Socket is the Docker socket on the ship the tunnel ends at, as
	// DOCKER_HOST=ssh:// reaches it; "" ends it at the ship's loopback
	// TCP port docker_port (MaestroNG's tunnel).
	Socket string `json:"socket,omitempty"`
}

// Service is a MaestroNG service: an image and its instances.
type Service struct {
	Name      string   `json:"name"`
	Image     string   `json:"image"`
	Omit      bool     `json:"omit,omitempty"`
	Requires  []string `json:"requires"`
	WantsInfo []string `json:"wants_info"`
	// Instances in file order (none for a cluster service).
	Instances []*Instance `json:"instances"`
	// Workload is set instead of Instances for a service that runs on a
	// Kubernetes cluster.
	Workload *Workload `json:"workload,omitempty"`
	// Dependencies is the sorted set of services this one depends on for
	// ordering: requires plus the services of volumes_from containers.
	Dependencies []string `json:"-"`
	// Rollout, when set, replaces the instances in batches, each watched
	// for a while before the next (a maestro-sync extension).
	Rollout *Rollout `json:"rollout,omitempty"`
	// Build, when set, builds the service's image from the repository
	// (a maestro-sync extension); Image is then what it builds.
	Build *Build `json:"build,omitempty"`
}

// Cluster is a Kubernetes cluster and the namespace maestro-sync deploys to.
type Cluster struct {
	Name string `json:"name"`
	// Kubeconfig is a kubeconfig file; empty means the in-cluster
	// configuration, then KUBECONFIG or ~/.kube/config.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	// Namespace is created if missing.
	Namespace string `json:"namespace"`
	// NodeAddress is an address of the cluster's nodes that ships can
	// reach: ship-side dependants of a cluster service get it, with the
	// service's node ports, as the service's address.
	NodeAddress string `json:"node_address,omitempty"`
}

// Address identifies the cluster and namespace, as Ship.Address identifies
// a Docker daemon: kube://<kubeconfig>#<context>/<namespace>.
func (c *Cluster) Address() string {
	return "kube://" + c.Kubeconfig + "#" + c.Context + "/" + c.Namespace
}

// Workload modes.
const (
	ModeDeployment = "deployment"
	ModeDaemonSet  = "daemonset"
)

// Workload is a service deployed on a Kubernetes cluster: a Deployment (or
// DaemonSet), an immutable ConfigMap with its env and a Service.
type Workload struct {
	Cluster string `json:"cluster"`
	// Mode is deployment or daemonset.
	Mode     string   `json:"mode"`
	Replicas int      `json:"replicas"`
	Image    string   `json:"image"`
	Command  []string `json:"command"`
	Env      Env      `json:"env"`
	// Ports are named container ports; an External port is the Service's
	// node port ("" for a ClusterIP-only port).
	Ports PortList `json:"ports"`
	// MemoryBytes and CPUMillis are the container's limits (0: none).
	MemoryBytes int64 `json:"memory,omitempty"`
	CPUMillis   int64 `json:"cpu_millis,omitempty"`
	// Lifecycle holds the checks; running checks become the readiness
	// probe.
	Lifecycle map[string][]Check `json:"lifecycle,omitempty"`
	// Expose and Ingress reach the service from outside the cluster.
	Expose  *Expose  `json:"expose,omitempty"`
	Ingress *Ingress `json:"ingress,omitempty"`
	// SpecHash covers everything that shapes the pods, and how they are
	// reached.
	SpecHash string `json:"spec_hash"`
}

// DNSName is the in-cluster name of a cluster service.
func DNSName(service string, c *Cluster) string {
	return service + "." + c.Namespace + ".svc"
}

// Instance is one container of a service, with everything resolved: service
// defaults merged, env injected, specs parsed.
type Instance struct {
	Name    string `json:"name"`
	Service string `json:"-"`
	Ship    string `json:"ship"`
	// Image is the effective image reference, verbatim.
	Image   string   `json:"image"`
	Command []string `json:"command"`
	// Ports sorted by name.
	Ports PortList `json:"ports"`
	Env   Env      `json:"env"`
	// Hostname is the instance name unless net is set.
	Hostname string `json:"hostname,omitempty"`
	// Volumes are bind mounts, sorted by target.
	Volumes []Bind `json:"volumes,omitempty"`
	// ContainerVolumes are anonymous volume targets, sorted.
	ContainerVolumes []string          `json:"container_volumes,omitempty"`
	VolumesFrom      []string          `json:"volumes_from,omitempty"`
	Links            map[string]string `json:"links,omitempty"`
	User             string            `json:"username,omitempty"`
	Privileged       bool              `json:"privileged,omitempty"`
	CapAdd           []string          `json:"cap_add,omitempty"`
	CapDrop          []string          `json:"cap_drop,omitempty"`
	// ExtraHosts maps host names to addresses, ship references resolved.
	ExtraHosts  map[string]string `json:"extra_hosts,omitempty"`
	Net         string            `json:"net,omitempty"`
	Restart     RestartPolicy     `json:"restart"`
	DNS         []string          `json:"dns,omitempty"`
	StopTimeout int               `json:"stop_timeout"`
	Limits      Limits            `json:"limits"`
	LogDriver   string            `json:"log_driver,omitempty"`
	LogOpt      map[string]string `json:"log_opt,omitempty"`
	Workdir     string            `json:"workdir,omitempty"`
	SecurityOpt []string          `json:"security_opt,omitempty"`
	Ulimits     []Ulimit          `json:"ulimits,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Lifecycle maps a state (running, stopped, pre-start, pre-stop) to its
	// checks: the service's checks followed by the instance's.
	Lifecycle map[string][]Check `json:"lifecycle,omitempty"`
	// Route, when set, puts the instance behind its ship's front proxy.
	Route *Route `json:"proxy,omitempty"`
	// SpecHash is a digest of everything that shapes the container.
	SpecHash string `json:"spec_hash"`

	line, col int
}

// Port returns the named port, or nil.
func (in *Instance) Port(name string) *Port { return in.Ports.byName(name) }

// Port is a named port of an instance. Exposed is the container side,
// External the host side, both as "N[-M]/proto".
type Port struct {
	Name       string `json:"-"`
	Exposed    string `json:"exposed"`
	External   string `json:"external"`
	ExternalIP string `json:"external_ip"`
}

// Protocol returns "tcp" or "udp".
func (p Port) Protocol() string { return protoOf(p.Exposed) }

// ExposedPort returns the exposed port number or range without protocol.
func (p Port) ExposedPort() string { return stripProto(p.Exposed) }

// ExternalPort returns the external port number or range without protocol.
func (p Port) ExternalPort() string { return stripProto(p.External) }

// ExternalRange returns the first and last external port numbers; 0, 0
// for a random host port.
func (p Port) ExternalRange() (lo, hi int) { return portRange(p.External) }

// PortList is a list of ports sorted by name; it renders as a JSON object.
type PortList []Port

// MarshalJSON renders the ports as {"name": {...}}, in name order.
func (pl PortList) MarshalJSON() ([]byte, error) {
	if out, ok := pl.plainJSON(); ok {
		return out, nil
	}
	return pl.generalJSON()
}

// generalJSON is MarshalJSON's text written through encoding/json for
// every name and port.
func (pl PortList) generalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range pl {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.Name)
		v, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// plainJSON is MarshalJSON's text when no string needs escaping in JSON
// (encoding/json's escaping, HTML characters included); false otherwise.
func (pl PortList) plainJSON() ([]byte, bool) {
	n := 2
	for _, p := range pl {
		for _, s := range [...]string{p.Name, p.Exposed, p.External, p.ExternalIP} {
			if !plainJSON(s) {
				return nil, false
			}
			n += len(s)
		}
		n += len(`,"":{"exposed":"","external":"","external_ip":""}`)
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, p := range pl {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, p.Name...)
		out = append(out, `":{"exposed":"`...)
		out = append(out, p.Exposed...)
		out = append(out, `","external":"`...)
		out = append(out, p.External...)
		out = append(out, `","external_ip":"`...)
		out = append(out, p.ExternalIP...)
		out = append(out, `"}`...)
	}
	return append(out, '}'), true
}

// plainJSON reports whether encoding/json writes s between quotes as it is.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainJSONByte[s[i]] {
			return false
		}
	}
	return true
}

// plainJSONByte tells the bytes encoding/json writes in a string as they
// are: printable ASCII but the quote, the backslash and the characters it
// escapes for HTML.
var plainJSONByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// UnmarshalJSON reads the form MarshalJSON writes.
func (pl *PortList) UnmarshalJSON(data []byte) error {
	var m map[string]Port
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*pl = make(PortList, 0, len(m))
	for _, name := range sortedKeys(m) {
		p := m[name]
		p.Name = name
		*pl = append(*pl, p)
	}
	return nil
}

// Bind is a bind mount (or, for a source that is not a path, a named volume).
type Bind struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Mode is passed verbatim ("rw", "ro", "ro,Z"); empty means rw.
	Mode string `json:"mode,omitempty"`
}

// RestartPolicy is a Docker restart policy.
type RestartPolicy struct {
	Name       string `json:"name"`
	MaxRetries int    `json:"retries"`
}

// Limits are resource limits. Zero means unlimited.
type Limits struct {
	// Memory and Swap are in bytes.
	Memory int64 `json:"memory,omitempty"`
	Swap   int64 `json:"swap,omitempty"`
	// CPUShares is Docker's relative CPU weight.
	CPUShares int64 `json:"cpu,omitempty"`
	// CPUMillis is a Kubernetes CPU limit in thousandths of a core.
	CPUMillis int64 `json:"cpu_millis,omitempty"`
}

// Ulimit is a resource ulimit.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Auditor is an entry of the audit section. Auditors are parsed and
// validated; Options keeps the type-specific settings as strings.
type Auditor struct {
	Type         string            `json:"type"`
	Level        string            `json:"level"`
	IgnoreErrors bool              `json:"ignore_errors,omitempty"`
	Options      map[string]string `json:"-"`
}

// MarshalJSON shows the auditor's settings without its credentials.
func (a Auditor) MarshalJSON() ([]byte, error) {
	type plain Auditor
	opts := map[string]string{}
	for k, v := range a.Options {
		if k == "token" || k == "password" || k == "headers" {
			v = "(sensitive)"
		}
		opts[k] = v
	}
	return json.Marshal(struct {
		plain
		Options map[string]string `json:"options,omitempty"`
	}{plain(a), opts})
}

// EnvVar is one environment variable of a container.
type EnvVar struct {
	Name  string
	Value string
	// Unset is true for a YAML null: Docker receives the bare name.
	Unset bool
	// FromFile is true when the value came from an env file. Such values
	// are treated as sensitive.
	FromFile bool
	// FromEnv is true when the value carries a value of the process
	// environment that a template copied in (taint, as Terraform's
	// sensitive): such values are sensitive too.
	FromEnv bool
	// Source tells where an injected variable comes from: the name of the
	// service whose link variables it is, or "maestro" for the fixed
	// container variables. It is empty for the user's own variables.
	Source string
}

// SourceFixed is the Source of the fixed container variables
// (CONTAINER_NAME, DOCKER_IMAGE, ...).
const SourceFixed = "maestro"

// Env is a container environment, sorted by name.
type Env []EnvVar

// Get returns the value of name and whether it is set.
func (e Env) Get(name string) (string, bool) {
	i, ok := slices.BinarySearchFunc(e, name, func(v EnvVar, n string) int { return strings.Compare(v.Name, n) })
	if !ok || e[i].Unset {
		return "", false
	}
	return e[i].Value, true
}

// Lookup returns the variable called name.
func (e Env) Lookup(name string) (EnvVar, bool) {
	i, ok := slices.BinarySearchFunc(e, name, func(v EnvVar, n string) int { return strings.Compare(v.Name, n) })
	if !ok {
		return EnvVar{}, false
	}
	return e[i], true
}

// List returns the environment in Docker's KEY=VALUE form (a bare KEY for
// an unset variable), sorted by name.
func (e Env) List() []string {
	// One string holds every entry; the entries are slices of it.
	n := 0
	for _, v := range e {
		n += len(v.Name)
		if !v.Unset {
			n += 1 + len(v.Value)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range e {
		b.WriteString(v.Name)
		if !v.Unset {
			b.WriteByte('=')
			b.WriteString(v.Value)
		}
	}
	all := b.String()
	out := make([]string, len(e))
	at := 0
	for i, v := range e {
		end := at + len(v.Name)
		if !v.Unset {
			end += 1 + len(v.Value)
		}
		out[i] = all[at:end]
		at = end
	}
	return out
}

// MarshalJSON renders the environment as {"NAME": "value"}; an unset
// variable is null.
func (e Env) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range e {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(v.Name)
		b.Write(k)
		b.WriteByte(':')
		if v.Unset {
			b.WriteString("null")
			continue
		}
		val, _ := json.Marshal(v.Value)
		b.Write(val)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
