package manifest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/maestro-sync/maestro-sync/internal/label"
)

var (
	topKeys       = []string{"__maestro", "name", "registries", "ship_defaults", "ships", "ship_provider", "clusters", "services", "audit", "proxy"}
	defaultedKeys = []string{"docker_port", "socket_path", "ssh_tunnel", "docker_host", "ssh_key", "context", "api_version", "timeout", "tls", "tls_cert", "tls_key", "tls_verify", "tls_ca_cert", "ssl_version"}
	shipKeys      = append([]string{"ip", "endpoint"}, defaultedKeys...)
	serviceKeys   = []string{"image", "instances", "omit", "env", "envfile", "requires", "wants_info", "lifecycle", "limits", "ports", "cluster", "replicas", "mode", "command", "proxy", "rollout", "build", "expose", "ingress"}
	instanceKeys  = []string{"ship", "image", "command", "cmd", "ports", "env", "envfile", "volumes", "container_volumes",
		"volumes_from", "links", "username", "privileged", "cap_add", "cap_drop", "extra_hosts", "net", "restart", "dns",
		"stop_timeout", "limits", "log_driver", "log_opt", "lxc_conf", "workdir", "security_opt", "ulimits", "labels", "lifecycle", "proxy"}
	limitKeys  = []string{"memory", "swap", "cpu"}
	logDrivers = []string{"json-file", "local", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "gcplogs", "logentries", "etwlogs", "none"}
)

// containerName is Docker's rule for container names.
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// builder decodes one environment file.
type builder struct {
	*decoder
	fsys fs.FS
	dir  string
	opts Options

	env          *Environment
	shipDefaults *fields
	services     []*serviceDraft
}

// serviceDraft is a service while it is being decoded.
type serviceDraft struct {
	svc       *Service
	f         *fields
	env       *envMap
	ports     []Port
	portNodes map[string]*yaml.Node
	limits    *fields
	lifecycle map[string][]*yaml.Node
	instances []*instanceDraft
	// route is the service's proxy key, and routeNode where it is.
	route         *Route
	routeNode     *yaml.Node
	routePortNode *yaml.Node
	// depLinks caches the service's link variables as its dependents see
	// them, from ships [0] and from clusters [1].
	depLinks [2][]EnvVar
	// ownLinks and depLinkList are the service's link variables as its
	// own containers and its dependents' containers on ships see them.
	ownLinks, depLinkList *linkList
}

// schemaOne reports whether a schema value is 1 as MaestroNG compares it
// (Python's == 1): the integer 1, the float 1.0, or true.
func schemaOne(v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode {
		return false
	}
	switch v.ShortTag() {
	case "!!int":
		var i int64
		return v.Decode(&i) == nil && i == 1
	case "!!float":
		var f float64
		return yaml11Float.MatchString(v.Value) && v.Decode(&f) == nil && f == 1
	case "!!bool":
		b, _ := parseBool(v)
		return b
	case "!!str":
		return v.Style == 0 && (strings.EqualFold(v.Value, "yes") || strings.EqualFold(v.Value, "on"))
	}
	return false
}

// instanceDraft is an instance while it is being decoded.
type instanceDraft struct {
	in        *Instance
	f         *fields
	env       *envMap
	portNodes map[string]*yaml.Node // where each port is defined
	// routeNode is where the instance's own proxy key is, if any.
	routeNode *yaml.Node
}

func (b *builder) build(root *yaml.Node) *Environment {
	f, ok := b.fields(root, "", topKeys)
	if !ok {
		return nil
	}
	env := &Environment{Schema: 1, Ships: map[string]*Ship{}, Services: []*Service{}}
	b.env = env
	if e, ok := f.get("__maestro"); ok {
		if mf, ok := b.mapping(e.V, "__maestro"); ok {
			for _, m := range mf {
				switch m.Key {
				case "schema":
					if !schemaOne(resolve(m.V)) {
						env.Schema = 2
					}
				case "labels":
					b.envLabels(m)
				}
			}
		}
	}
	if e, ok := b.required(f, "name", "environment name"); ok {
		env.Name, _ = b.scalar(e.V, "name", "a string")
		env.nameLine, env.nameCol = e.K.Line, e.K.Column
	}
	if e, ok := f.get("ship_provider"); ok {
		if s, ok := b.scalar(e.V, "ship_provider", "a string"); ok && s != "static" {
			b.errorf(e.V, "ship_provider", "unknown ship provider %q (available: static)", s)
		}
	}
	b.registries(f)
	b.proxySettings(f)
	if e, ok := f.get("ship_defaults"); ok {
		b.shipDefaults, _ = b.fields(e.V, "ship_defaults", append(slices.Clone(defaultedKeys), "ssh_timeout"))
	}
	if e, ok := f.get("clusters"); ok {
		b.clusters(e.V)
	}
	if len(env.Clusters) > 0 && !f.has("ships") {
		// An environment of cluster services only needs no ships.
	} else if e, ok := b.required(f, "ships", "ships section"); ok {
		b.ships(e.V)
	}
	if e, ok := f.get("services"); ok {
		b.servicesSection(e.V)
	}
	b.routeClashes()
	b.audit(f)
	b.resolve()
	return env
}

func (b *builder) registries(f *fields) {
	e, ok := f.get("registries")
	if !ok {
		return
	}
	entries, _ := b.mapping(e.V, "registries")
	for _, r := range entries {
		p := join("registries", r.Key)
		rf, ok := b.fields(r.V, p, []string{"registry", "username", "password", "email", "retry"})
		if !ok {
			continue
		}
		reg := &Registry{Name: r.Key, Retry: Retry{Attempts: 3}}
		if e, ok := b.required(rf, "registry", "registry URL"); ok {
			reg.URL, _ = b.scalar(e.V, rf.sub("registry"), "a URL")
		}
		reg.Username, _ = b.str(rf, "username")
		reg.Password, _ = b.str(rf, "password")
		reg.Email, _ = b.str(rf, "email")
		if e, ok := rf.get("retry"); ok {
			if tf, ok := b.fields(e.V, rf.sub("retry"), []string{"attempts", "when"}); ok {
				if v, ok := b.integer(tf, "attempts"); ok {
					reg.Retry.Attempts = int(v)
				}
				if w, ok := tf.get("when"); ok {
					if seq := resolve(w.V); seq.Kind == yaml.SequenceNode {
						for i, c := range seq.Content {
							if v, ok := b.intNode(c, fmt.Sprintf("%s[%d]", tf.sub("when"), i)); ok {
								reg.Retry.When = append(reg.Retry.When, int(v))
							}
						}
					} else {
						b.errorf(w.V, tf.sub("when"), "expected a list of HTTP status codes, got %s", kindName(w.V))
					}
				}
			}
		}
		if env := b.env; env.Registries == nil {
			env.Registries = map[string]*Registry{}
		}
		b.env.Registries[r.Key] = reg
	}
}

func (b *builder) ships(n *yaml.Node) {
	entries, _ := b.mapping(n, "ships")
	for _, s := range entries {
		p := join("ships", s.Key)
		sf, ok := b.fields(s.V, p, shipKeys)
		if !ok {
			continue
		}
		// pick returns where a defaultable key is set: the ship, else
		// ship_defaults (whole values, not merged).
		pick := func(key string) *fields {
			if !sf.has(key) && b.shipDefaults != nil && b.shipDefaults.has(key) {
				return b.shipDefaults
			}
			return sf
		}
		ship := &Ship{Name: s.Key, Timeout: 5}
		if e, ok := b.required(sf, "ip", "ship ip"); ok {
			ship.IP, _ = b.scalar(e.V, sf.sub("ip"), "an address")
		}
		ship.Endpoint = ship.IP
		if v, ok := b.str(sf, "endpoint"); ok {
			ship.Endpoint = v
		}
		ship.TLS, _ = b.boolean(pick("tls"), "tls")
		ship.TLSVerify, _ = b.boolean(pick("tls_verify"), "tls_verify")
		ship.DockerPort = 2375
		if ship.TLS {
			ship.DockerPort = 2376
		}
		if v, ok := b.integer(pick("docker_port"), "docker_port"); ok {
			if v < 1 || v > 65535 {
				e, _ := pick("docker_port").get("docker_port")
				b.errorf(e.V, sf.sub("docker_port"), "port %d is out of range 1-65535", v)
			}
			ship.DockerPort = int(v)
		}
		if v, ok := b.str(pick("socket_path"), "socket_path"); ok {
			ship.SocketPath = v
			if !strings.HasPrefix(v, "/") {
				e, _ := pick("socket_path").get("socket_path")
				b.errorf(e.V, sf.sub("socket_path"), "socket path %q must be absolute", v)
			}
		}
		if v, ok := b.str(pick("api_version"), "api_version"); ok && v != "auto" {
			ship.APIVersion = v
		}
		if v, ok := b.number(pick("timeout"), "timeout"); ok {
			ship.Timeout = v
		}
		ship.TLSCACert, _ = b.str(pick("tls_ca_cert"), "tls_ca_cert")
		ship.TLSCert, _ = b.str(pick("tls_cert"), "tls_cert")
		ship.TLSKey, _ = b.str(pick("tls_key"), "tls_key")
		ship.SSLVersion, _ = b.str(pick("ssl_version"), "ssl_version")
		if tf := pick("ssh_tunnel"); tf.has("ssh_tunnel") {
			if e, ok := tf.get("ssh_tunnel"); ok {
				ship.SSHTunnel = b.sshTunnel(e.V, tf.sub("ssh_tunnel"), s.Key)
			}
		}
		if v, ok := b.str(pick("docker_host"), "docker_host"); ok {
			e, _ := pick("docker_host").get("docker_host")
			u, err := url.Parse(v)
			switch {
			case err != nil || u.Scheme != "ssh" || u.Hostname() == "":
				b.errorf(e.V, sf.sub("docker_host"), "docker_host must be an ssh://[user@]host[:port][/socket] URL, as DOCKER_HOST; for a local socket or TCP use socket_path, or endpoint and docker_port")
			case u.User != nil && func() bool { _, set := u.User.Password(); return set }():
				b.errorf(e.V, sf.sub("docker_host"), "docker_host must not hold a password: use a key (ssh_key, or the SSH agent)")
			}
			ship.DockerHost = v
		}
		ship.SSHKey, _ = b.str(pick("ssh_key"), "ssh_key")
		ship.Context, _ = b.str(pick("context"), "context")
		b.env.Ships[s.Key] = ship
	}
}

func (b *builder) sshTunnel(n *yaml.Node, p, ship string) *SSHTunnel {
	tf, ok := b.fields(n, p, []string{"user", "key", "port", "socket"})
	if !ok {
		return nil
	}
	t := &SSHTunnel{Port: 22}
	t.User, _ = b.str(tf, "user")
	t.Key, _ = b.str(tf, "key")
	for key, v := range map[string]string{"user": t.User, "key": t.Key} {
		if v == "" {
			b.errorf(n, join(p, key), "missing SSH %s for the tunnel of ship %s", key, ship)
		}
	}
	if v, ok := b.integer(tf, "port"); ok {
		t.Port = int(v)
	}
	if v, ok := b.str(tf, "socket"); ok {
		if !strings.HasPrefix(v, "/") {
			se, _ := tf.get("socket")
			b.errorf(se.V, tf.sub("socket"), "socket must be the absolute path of the Docker socket on ship %s, e.g. /var/run/docker.sock", ship)
		}
		t.Socket = v
	}
	return t
}

// servicesSection decodes the services, in parallel: each is decoded on
// its own (it reads the ships and settings decoded before it, and nothing
// of another service), and the problems found are reported in the order
// of the services, as one pass over them would have.
func (b *builder) servicesSection(n *yaml.Node) {
	entries, _ := b.mapping(n, "services")
	drafts := make([]*serviceDraft, len(entries))
	reports := make([]*decoder, len(entries))
	eachParallel(len(entries), func(i int) {
		sb := b.part()
		drafts[i] = sb.service(entries[i])
		reports[i] = sb.decoder
	})
	b.adopt(reports...)
	for _, sd := range drafts {
		if sd != nil {
			b.services = append(b.services, sd)
			b.env.Services = append(b.env.Services, sd.svc)
		}
	}
}

// part returns a builder of the same environment whose problems are its
// own, for one of several parts of the environment decoded at once; b
// adopts them afterwards, in the order of the parts.
func (b *builder) part() *builder {
	p := *b
	p.decoder = &decoder{file: b.file, rendered: b.rendered, strict: b.strict, parent: b.decoder}
	return &p
}

func (b *builder) service(s entry) *serviceDraft {
	p := join("services", s.Key)
	sf, ok := b.fields(s.V, p, serviceKeys)
	if !ok {
		return nil
	}
	svc := &Service{Name: s.Key, Requires: []string{}, WantsInfo: []string{}, Instances: []*Instance{}}
	sd := &serviceDraft{svc: svc, f: sf, env: &envMap{}}
	be, built := sf.get("build")
	if built && !sf.has("image") {
		// The image of a build without one stays on its builder.
	} else if e, ok := b.required(sf, "image", "image"); ok {
		if svc.Image, ok = b.scalar(e.V, sf.sub("image"), "an image name"); ok {
			if err := checkImage(svc.Image); err != nil {
				b.errorf(e.V, sf.sub("image"), "%v", err)
			}
		}
	}
	if built {
		b.imageBuild(sd, be)
	}
	svc.Omit, _ = b.boolean(sf, "omit")
	if v, ok := b.stringList(sf, "requires"); ok {
		svc.Requires = v
	}
	if v, ok := b.stringList(sf, "wants_info"); ok {
		svc.WantsInfo = v
	}
	// Service env: env files, then env, then the two fixed variables.
	if e, ok := sf.get("envfile"); ok {
		b.envSources(e.V, sf.sub("envfile"), sd.env)
	}
	if e, ok := sf.get("env"); ok {
		b.env_(e.V, sf.sub("env"), sd.env)
	}
	sd.env.set(EnvVar{Name: "MAESTRO_ENVIRONMENT_NAME", Value: b.env.Name, Source: SourceFixed})
	sd.env.set(EnvVar{Name: "SERVICE_NAME", Value: s.Key, Source: SourceFixed})
	sd.ports, sd.portNodes = b.ports(sf)
	if e, ok := sf.get("limits"); ok {
		sd.limits, _ = b.fields(e.V, sf.sub("limits"), limitKeys)
	}
	sd.lifecycle = b.lifecycleNodes(sf)
	if sf.has("cluster") {
		if sf.has("proxy") {
			b.errorf(sf.byKey("proxy").K, sf.sub("proxy"), "proxy applies to services on ships: a cluster service is reached through its Kubernetes Service")
		}
		b.workload(sd)
		b.checkBuild(sd)
		return sd
	}
	for _, key := range []string{"replicas", "mode", "expose", "ingress"} {
		if sf.has(key) {
			b.errorf(sf.byKey(key).K, sf.sub(key), "%s applies to a cluster service: set cluster, or use instances", key)
		}
	}
	if sf.has("command") {
		// MaestroNG ignores a service-level command: so do ships.
		b.warnf(sf.byKey("command").K, sf.sub("command"), "a service-level command applies to cluster services only and is ignored here: give it per instance")
	}
	e, ok := b.required(sf, "instances", "instances (a mapping of instance name to settings), or cluster")
	if !ok && !sf.has("instances") {
		return sd
	}
	b.route(sd)
	b.rollout(sd)
	instances, _ := b.mapping(e.V, sf.sub("instances"))
	for _, ie := range instances {
		if id := b.instance(sd, ie); id != nil {
			b.routeInstance(sd, id)
			sd.instances = append(sd.instances, id)
			svc.Instances = append(svc.Instances, id.in)
		}
	}
	b.checkBuild(sd)
	return sd
}

// ports decodes a ports section, and tells where each port is defined.
func (b *builder) ports(f *fields) ([]Port, map[string]*yaml.Node) {
	e, ok := f.get("ports")
	if !ok {
		return nil, nil
	}
	entries, _ := b.mapping(e.V, f.sub("ports"))
	var out []Port
	nodes := map[string]*yaml.Node{}
	for _, pe := range entries {
		if p, ok := b.parsePort(pe.Key, pe.V, join(f.sub("ports"), pe.Key)); ok {
			out = append(out, p)
			nodes[pe.Key] = pe.V
		}
	}
	return out, nodes
}

// lifecycleNodes returns the check nodes of a lifecycle section by state.
func (b *builder) lifecycleNodes(f *fields) map[string][]*yaml.Node {
	e, ok := f.get("lifecycle")
	if !ok {
		return nil
	}
	entries, _ := b.mapping(e.V, f.sub("lifecycle"))
	out := map[string][]*yaml.Node{}
	for _, st := range entries {
		p := join(f.sub("lifecycle"), st.Key)
		if !slices.Contains(lifecycleStates, st.Key) {
			b.warnf(st.K, p, "unknown lifecycle state %q is ignored (states: %s)", st.Key, strings.Join(lifecycleStates, ", "))
			continue
		}
		v := resolve(st.V)
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.SequenceNode {
			b.errorf(v, p, "expected a list of checks, got %s", kindName(v))
			continue
		}
		out[st.Key] = v.Content
	}
	return out
}

func (b *builder) instance(sd *serviceDraft, ie entry) *instanceDraft {
	p := join(sd.f.sub("instances"), ie.Key)
	f, ok := b.fields(ie.V, p, instanceKeys)
	if !ok {
		return nil
	}
	in := &Instance{Name: ie.Key, Service: sd.svc.Name, Image: sd.svc.Image, StopTimeout: 10, Restart: RestartPolicy{Name: "no"},
		Command: []string{}, Ports: PortList{}, line: ie.K.Line, col: ie.K.Column}
	id := &instanceDraft{in: in, f: f}
	if !containerName.MatchString(ie.Key) {
		b.errorf(ie.K, p, "invalid instance name %q: a container name must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters at least)", ie.Key)
	}
	if e, ok := b.required(f, "ship", "ship"); ok {
		if name, ok := b.scalar(e.V, f.sub("ship"), "a ship name"); ok {
			in.Ship = name
			if _, known := b.env.Ships[name]; !known {
				b.errorf(e.K, f.sub("ship"), "unknown ship %q (%s)", name, b.shipList())
			}
		}
	}
	if v, ok := b.str(f, "image"); ok {
		in.Image = v
		if err := checkImage(v); err != nil {
			e, _ := f.get("image")
			b.errorf(e.V, f.sub("image"), "%v", err)
		}
	}
	b.command(f, in)
	ports, nodes := b.ports(f)
	in.Ports = mergePorts(sd.ports, ports)
	id.portNodes = map[string]*yaml.Node{}
	for name, n := range sd.portNodes {
		id.portNodes[name] = n
	}
	for name, n := range nodes {
		id.portNodes[name] = n
	}
	b.volumes(f, in)
	if v, ok := b.stringList(f, "volumes_from"); ok {
		in.VolumesFrom = sortedSet(v)
	}
	if v, ok := b.stringMap(f, "links"); ok {
		in.Links = v
		for name, alias := range v {
			if alias == "" {
				in.Links[name] = name
			}
		}
	}
	in.User, _ = b.str(f, "username")
	in.Privileged, _ = b.boolean(f, "privileged")
	in.CapAdd, _ = b.stringList(f, "cap_add")
	in.CapDrop, _ = b.stringList(f, "cap_drop")
	b.extraHosts(f, in)
	in.Net, _ = b.str(f, "net")
	if in.Net == "" {
		in.Hostname = in.Name
	}
	b.policy(f, in)
	if e, ok := f.get("restart"); ok {
		in.Restart, _ = b.parseRestart(e.V, f.sub("restart"))
	}
	in.DNS, _ = b.stringList(f, "dns")
	if v, ok := b.integer(f, "stop_timeout"); ok {
		if v < 0 {
			e, _ := f.get("stop_timeout")
			b.errorf(e.V, f.sub("stop_timeout"), "stop_timeout must not be negative")
		}
		in.StopTimeout = int(v)
	}
	b.limits(sd, f, in)
	b.logging(f, in)
	in.Workdir, _ = b.str(f, "workdir")
	in.SecurityOpt, _ = b.stringList(f, "security_opt")
	b.ulimits(f, in)
	b.labels(f, in)
	if f.has("lxc_conf") {
		e := f.byKey("lxc_conf")
		b.warnf(e.K, f.sub("lxc_conf"), "lxc_conf is not supported by Docker since 1.10 and is ignored")
	}
	b.lifecycle(sd, f, in)

	// Instance env: the service env, then instance env files, then the
	// instance env, then the fixed container variables.
	id.env = sd.env.clone()
	if e, ok := f.get("envfile"); ok {
		b.envSources(e.V, f.sub("envfile"), id.env)
	}
	if e, ok := f.get("env"); ok {
		b.env_(e.V, f.sub("env"), id.env)
	}
	_, tag := ParseImage(in.Image)
	id.env.set(EnvVar{Name: "CONTAINER_NAME", Value: in.Name, Source: SourceFixed})
	if ship := b.env.Ships[in.Ship]; ship != nil {
		id.env.set(EnvVar{Name: "CONTAINER_HOST_ADDRESS", Value: ship.IP, Source: SourceFixed})
	}
	id.env.set(EnvVar{Name: "DOCKER_IMAGE", Value: in.Image, Source: SourceFixed})
	id.env.set(EnvVar{Name: "DOCKER_TAG", Value: tag, Source: SourceFixed})
	return id
}

// shipList names the known ships for an error message.
func (b *builder) shipList() string {
	if len(b.env.Ships) == 0 {
		return "no ships are defined"
	}
	return "ships: " + strings.Join(b.env.ShipNames(), ", ")
}

// mergePorts overlays instance ports on service ports by name, in fresh
// values, and sorts them by name.
func mergePorts(service, instance []Port) PortList {
	out := PortList{}
	for _, p := range service {
		if !slices.ContainsFunc(instance, func(q Port) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	out = append(out, instance...)
	slices.SortFunc(out, func(a, b Port) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (b *builder) command(f *fields, in *Instance) {
	key := "command"
	if !f.has("command") && f.has("cmd") {
		key = "cmd"
		b.warnf(f.byKey("cmd").K, f.sub("cmd"), "cmd is deprecated: use command")
	}
	e, ok := f.get(key)
	if !ok {
		return
	}
	in.Command = b.argv(e.V, f.sub(key))
}

// argv decodes a command: a string split as MaestroNG splits it (Python's
// shlex.split), or a list.
func (b *builder) argv(n *yaml.Node, p string) []string {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
		words, err := shlexSplit(n.Value)
		if err != nil {
			b.errorf(n, p, "cannot split command %q as MaestroNG does (Python's shlex.split): %v", n.Value, err)
		}
		return words
	}
	v, _ := b.stringListNode(n, p)
	return v
}

func (b *builder) volumes(f *fields, in *Instance) {
	binds := map[string]Bind{}
	if e, ok := f.get("volumes"); ok {
		entries, _ := b.mapping(e.V, f.sub("volumes"))
		for _, ve := range entries {
			p := join(f.sub("volumes"), ve.Key)
			bind, ok := b.volume(ve, p)
			if !ok {
				continue
			}
			if prev, dup := binds[bind.Target]; dup {
				b.errorf(ve.K, p, "%s is mounted twice (also from %s)", bind.Target, prev.Source)
				continue
			}
			binds[bind.Target] = bind
			in.Volumes = append(in.Volumes, bind)
		}
		slices.SortFunc(in.Volumes, func(a, b Bind) int { return strings.Compare(a.Target, b.Target) })
	}
	if cv, ok := b.stringList(f, "container_volumes"); ok {
		e := f.byKey("container_volumes")
		for _, t := range sortedSet(cv) {
			target, err := cleanTarget(t)
			if err != nil {
				b.errorf(e.V, f.sub("container_volumes"), "%v", err)
				continue
			}
			if _, clash := binds[target]; clash {
				b.errorf(e.V, f.sub("container_volumes"), "conflict in %s between bind-mounted volume and container-only volume on %s", in.Name, target)
				continue
			}
			in.ContainerVolumes = append(in.ContainerVolumes, target)
		}
		in.ContainerVolumes = sortedSet(in.ContainerVolumes)
	}
}

// volume decodes one volumes entry. Schema 2: host path → target or
// {target, mode}. Schema 1: container path → host path.
func (b *builder) volume(ve entry, p string) (Bind, bool) {
	v := resolve(ve.V)
	var bind Bind
	switch {
	case b.env.Schema == 1 && v.Kind == yaml.ScalarNode && !isNull(v):
		bind = Bind{Source: v.Value, Target: ve.Key}
	case b.env.Schema == 1:
		b.errorf(v, p, "invalid volume: schema 1 maps a container path to a host path string, got %s (set __maestro.schema: 2 for host path → target)", kindName(v))
		return bind, false
	case v.Kind == yaml.ScalarNode && !isNull(v):
		bind = Bind{Source: ve.Key, Target: v.Value}
	case v.Kind == yaml.MappingNode:
		vf, ok := b.fields(v, p, []string{"target", "mode"})
		if !ok {
			return bind, false
		}
		e, ok := b.required(vf, "target", "volume target")
		if !ok {
			return bind, false
		}
		target, _ := b.scalar(e.V, vf.sub("target"), "a container path")
		bind = Bind{Source: ve.Key, Target: target, Mode: "rw"}
		if m, ok := b.str(vf, "mode"); ok {
			bind.Mode = m
		}
	default:
		b.errorf(v, p, "invalid volume: expected a container path or {target, mode}, got %s", kindName(v))
		return bind, false
	}
	var err error
	if bind.Target, err = cleanTarget(bind.Target); err != nil {
		b.errorf(v, p, "%v", err)
		return bind, false
	}
	if err := checkSource(bind.Source); err != nil {
		b.errorf(ve.K, p, "%v", err)
		return bind, false
	}
	return bind, true
}

func (b *builder) extraHosts(f *fields, in *Instance) {
	e, ok := f.get("extra_hosts")
	if !ok {
		return
	}
	entries, _ := b.mapping(e.V, f.sub("extra_hosts"))
	in.ExtraHosts = map[string]string{}
	for _, he := range entries {
		p := join(f.sub("extra_hosts"), he.Key)
		v := resolve(he.V)
		switch v.Kind {
		case yaml.ScalarNode:
			if _, err := netip.ParseAddr(v.Value); err != nil && v.Value != "host-gateway" {
				b.errorf(v, p, "invalid address %q for extra host %s", v.Value, he.Key)
				continue
			}
			in.ExtraHosts[he.Key] = v.Value
		case yaml.MappingNode:
			hf, _ := b.fields(v, p, []string{"ship"})
			if hf == nil {
				continue
			}
			if se, ok := b.required(hf, "ship", "ship name"); ok {
				name, _ := b.scalar(se.V, hf.sub("ship"), "a ship name")
				ship, known := b.env.Ships[name]
				if !known {
					b.errorf(se.V, hf.sub("ship"), "unknown ship %q (%s)", name, b.shipList())
					continue
				}
				in.ExtraHosts[he.Key] = ship.IP
			}
		default:
			b.errorf(v, p, "expected an address or {ship: name}, got %s", kindName(v))
		}
	}
}

func (b *builder) limits(sd *serviceDraft, f *fields, in *Instance) {
	var inst *fields
	if e, ok := f.get("limits"); ok {
		inst, _ = b.fields(e.V, f.sub("limits"), limitKeys)
	}
	for _, key := range limitKeys {
		lf := inst
		if lf == nil || !lf.has(key) {
			lf = sd.limits
		}
		if lf == nil {
			continue
		}
		e, ok := lf.get(key)
		if !ok {
			continue
		}
		switch key {
		case "memory", "swap":
			v, err := parseSize(e.V)
			if err == nil && v < 0 && key == "memory" {
				err = fmt.Errorf("memory limit %s must not be negative", resolve(e.V).Value)
			}
			if err != nil {
				b.errorf(e.V, lf.sub(key), "%v", err)
				continue
			}
			if key == "memory" {
				in.Limits.Memory = v
			} else {
				in.Limits.Swap = v
			}
		case "cpu":
			if v, ok := b.intNode(e.V, lf.sub(key)); ok {
				in.Limits.CPUShares = v
			}
		}
	}
	if in.Limits.Swap > 0 && in.Limits.Memory > 0 && in.Limits.Swap < in.Limits.Memory {
		n := f.node
		if k, ok := b.keyOf(f.node); ok {
			n = k
		}
		b.errorf(n, f.sub("limits.swap"), "swap (memory+swap in Docker's terms) %d must be at least the memory limit %d", in.Limits.Swap, in.Limits.Memory)
	}
}

func (b *builder) logging(f *fields, in *Instance) {
	if e, ok := f.get("log_driver"); ok {
		if d, ok := b.scalar(e.V, f.sub("log_driver"), "a log driver name"); ok {
			if !slices.Contains(logDrivers, d) {
				b.errorf(e.V, f.sub("log_driver"), "unknown log driver %q (choose one of %s)", d, strings.Join(logDrivers, ", "))
			}
			in.LogDriver = d
		}
	}
	e, ok := f.get("log_opt")
	if !ok {
		return
	}
	if in.LogDriver == "" {
		b.warnf(e.K, f.sub("log_opt"), "log_opt without log_driver is ignored")
		return
	}
	entries, ok := b.mapping(e.V, f.sub("log_opt"))
	if !ok {
		return
	}
	in.LogOpt = map[string]string{}
	for _, o := range entries {
		v := resolve(o.V)
		if v.Kind != yaml.ScalarNode {
			b.errorf(v, join(f.sub("log_opt"), o.Key), "expected a string, got %s", kindName(v))
			continue
		}
		in.LogOpt[o.Key], _ = envString(v)
	}
}

func (b *builder) ulimits(f *fields, in *Instance) {
	e, ok := f.get("ulimits")
	if !ok {
		return
	}
	entries, _ := b.mapping(e.V, f.sub("ulimits"))
	for _, ue := range entries {
		p := join(f.sub("ulimits"), ue.Key)
		u := Ulimit{Name: ue.Key}
		v := resolve(ue.V)
		if v.Kind == yaml.MappingNode {
			uf, ok := b.fields(v, p, []string{"soft", "hard"})
			if !ok {
				continue
			}
			soft, okS := b.integer(uf, "soft")
			hard, okH := b.integer(uf, "hard")
			switch {
			case okS && okH:
				u.Soft, u.Hard = soft, hard
			case okS:
				u.Soft, u.Hard = soft, soft
			case okH:
				u.Soft, u.Hard = hard, hard
			default:
				b.errorf(v, p, "a ulimit needs soft and/or hard")
				continue
			}
			if u.Soft > u.Hard {
				b.errorf(v, p, "soft limit %d is above hard limit %d", u.Soft, u.Hard)
				continue
			}
		} else {
			n, ok := b.intNode(v, p)
			if !ok {
				continue
			}
			u.Soft, u.Hard = n, n
		}
		in.Ulimits = append(in.Ulimits, u)
	}
	slices.SortFunc(in.Ulimits, func(a, b Ulimit) int { return strings.Compare(a.Name, b.Name) })
}

func (b *builder) labels(f *fields, in *Instance) {
	e, ok := f.get("labels")
	if !ok {
		return
	}
	v := resolve(e.V)
	switch v.Kind {
	case yaml.SequenceNode:
		names, _ := b.stringListNode(v, f.sub("labels"))
		in.Labels = map[string]string{}
		for _, n := range names {
			in.Labels[n] = ""
		}
	case yaml.MappingNode:
		in.Labels, _ = b.stringMap(f, "labels")
	default:
		b.errorf(v, f.sub("labels"), "invalid labels: expected a list or a mapping, got %s", kindName(v))
		return
	}
	for k := range in.Labels {
		if strings.HasPrefix(k, label.Prefix) {
			b.errorf(v, f.sub("labels"), "label %q uses the prefix %s, which maestro-sync reserves for its own labels", k, label.Prefix)
		}
	}
}

// envLabels decodes __maestro.labels, the environment's own labels, with
// Kubernetes' rules for label keys and values, so that a label selector
// can select them.
func (b *builder) envLabels(m entry) {
	const p = "__maestro.labels"
	entries, ok := b.mapping(m.V, p)
	if !ok {
		b.env.labelsBad = true
		return
	}
	out := make(map[string]string, len(entries))
	for _, en := range entries {
		path := join(p, en.Key)
		v, ok := b.scalar(en.V, path, "a string")
		if !ok {
			b.env.labelsBad = true
			continue
		}
		if errs := validation.IsQualifiedName(en.Key); len(errs) > 0 {
			b.errorf(en.K, path, "invalid label key %q: %s", en.Key, strings.Join(errs, "; "))
			b.env.labelsBad = true
			continue
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			b.errorf(en.V, path, "invalid label value %q: %s", v, strings.Join(errs, "; "))
			b.env.labelsBad = true
			continue
		}
		out[en.Key] = v
	}
	if len(out) > 0 {
		b.env.Labels = out
	}
}

// envMap is an environment being built: later sets override earlier ones.
type envMap struct {
	// base is the map this one was cloned from, shared and no longer
	// changed; vals are the variables set since, which win over it, in the
	// order they were first set. index finds them by name once there are
	// more than a few.
	base  *envMap
	vals  []EnvVar
	index map[string]int
	// sorted caches env() of a base.
	sorted Env
}

// envIndexFrom is the number of variables from which an envMap indexes
// them by name; below it, a scan is faster than a map.
const envIndexFrom = 16

// find returns the position of name in m.vals, or -1.
func (m *envMap) find(name string) int {
	if m.index != nil {
		if i, ok := m.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range m.vals {
		if m.vals[i].Name == name {
			return i
		}
	}
	return -1
}

func (m *envMap) set(v EnvVar) {
	if i := m.find(v.Name); i >= 0 {
		m.vals[i] = v
		return
	}
	m.vals = append(m.vals, v)
	switch {
	case m.index != nil:
		m.index[v.Name] = len(m.vals) - 1
	case len(m.vals) > envIndexFrom:
		m.index = make(map[string]int, 2*len(m.vals))
		for i := range m.vals {
			m.index[m.vals[i].Name] = i
		}
	}
}

// get returns the variable name, and whether it is set.
func (m *envMap) get(name string) (EnvVar, bool) {
	if i := m.find(name); i >= 0 {
		return m.vals[i], true
	}
	if m.base != nil {
		return m.base.get(name)
	}
	return EnvVar{}, false
}

// clone returns a map holding m's variables. It shares them with m,
// which must not be changed afterwards (a service's env is complete before
// its instances clone it).
func (m *envMap) clone() *envMap {
	if len(m.vals) == 0 && m.base != nil {
		return &envMap{base: m.base}
	}
	return &envMap{base: m}
}

// own returns the variables set since the base, sorted by name.
func (m *envMap) own() Env {
	own := append(make(Env, 0, len(m.vals)), m.vals...)
	slices.SortFunc(own, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return own
}

// baseEnv returns env() of the base, computed once; nil without a base.
func (m *envMap) baseEnv() Env {
	if m.base == nil {
		return nil
	}
	if m.base.sorted == nil {
		m.base.sorted = m.base.env()
	}
	return m.base.sorted
}

// env returns the variables sorted by name.
func (m *envMap) env() Env {
	if m.base == nil {
		return m.own()
	}
	return mergeEnvs(nil, m.baseEnv(), m.own())
}

// envSources applies env file sources: a path, a (nested) list of them, or
// a mapping of values. Later sources win.
// env_ applies an env key. A mapping is the usual form; like MaestroNG,
// which hands env to the same code as envfile, a file path or a list of
// sources works too, with a warning that envfile says it better.
func (b *builder) env_(n *yaml.Node, p string, m *envMap) {
	if v := resolve(n); v.Kind == yaml.ScalarNode || v.Kind == yaml.SequenceNode {
		if !isNull(v) {
			b.warnf(n, p, "env given as %s is read as env file sources, as MaestroNG does: write it as envfile", kindName(v))
		}
	}
	b.envSources(n, p, m)
}

func (b *builder) envSources(n *yaml.Node, p string, m *envMap) {
	n = resolve(n)
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		b.envFile(n, p, m)
	case n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			b.envSources(c, fmt.Sprintf("%s[%d]", p, i), m)
		}
	case n.Kind == yaml.MappingNode:
		b.envMapping(n, p, m)
	}
}

func (b *builder) envFile(n *yaml.Node, p string, m *envMap) {
	name := n.Value
	var data []byte
	var err error
	switch {
	case strings.HasPrefix(name, "/") && b.opts.ReadFile != nil:
		data, err = b.opts.ReadFile(name)
	case strings.HasPrefix(name, "/"):
		err = fmt.Errorf("absolute path is outside the repository")
	default:
		full := path.Join(b.dir, name)
		if !fs.ValidPath(full) {
			err = fmt.Errorf("path is outside the repository")
			break
		}
		data, err = fs.ReadFile(b.fsys, full)
	}
	if err != nil {
		b.errorf(n, p, "env file %s: %v", name, unwrapPathError(err))
		return
	}
	vars, err := parseEnvFile(name, data)
	if err != nil {
		b.errorf(n, p, "%v", err)
		return
	}
	for _, v := range vars {
		m.set(v)
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// envMapping applies a mapping of env values.
func (b *builder) envMapping(n *yaml.Node, p string, m *envMap) {
	entries, _ := b.mapping(n, p)
	for _, e := range entries {
		ep := join(p, e.Key)
		if e.Key == "" || strings.Contains(e.Key, "=") {
			b.errorf(e.K, ep, "invalid environment variable name %q", e.Key)
			continue
		}
		v := resolve(e.V)
		switch v.Kind {
		case yaml.ScalarNode:
			s, set := envString(v)
			if v.ShortTag() == "!!str" && v.Style == 0 && isYAML11Bool(v.Value) {
				b.warnf(v, ep, "%q is passed as the string %q; MaestroNG (YAML 1.1) passed an unquoted %s as %s", v.Value, v.Value, v.Value, yaml11BoolText(v.Value))
			}
			if v.ShortTag() == "!!str" && v.Style == 0 && sexagesimal.MatchString(v.Value) {
				b.warnf(v, ep, "%q is passed as the string %q; MaestroNG (YAML 1.1) read an unquoted %s as a base-60 number: quote it to make the meaning clear", v.Value, v.Value, v.Value)
			}
			m.set(EnvVar{Name: e.Key, Value: s, Unset: !set})
		case yaml.SequenceNode:
			var parts []string
			if b.flattenEnvList(v, ep, &parts) {
				m.set(EnvVar{Name: e.Key, Value: strings.Join(parts, " ")})
			}
		default:
			b.errorf(v, ep, "expected a string, a number or a list, got %s", kindName(v))
		}
	}
}

func isYAML11Bool(s string) bool {
	switch s {
	case "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

func yaml11BoolText(s string) string {
	switch strings.ToLower(s) {
	case "yes", "on":
		return "True"
	}
	return "False"
}

// audit decodes the audit section: notification settings, validated but
// kept as strings.
func (b *builder) audit(f *fields) {
	e, ok := f.get("audit")
	if !ok {
		return
	}
	seq := resolve(e.V)
	if seq.Kind != yaml.SequenceNode {
		b.errorf(seq, "audit", "expected a list of auditors, got %s", kindName(seq))
		return
	}
	required := map[string][]string{"log": {"file"}, "http": {"endpoint"}, "exec": {"script"}, "slack": {"channel", "token"}, "hipchat": {"room", "token"}}
	for i, c := range seq.Content {
		p := fmt.Sprintf("audit[%d]", i)
		entries, ok := b.mapping(c, p)
		if !ok {
			continue
		}
		a := Auditor{Level: "info", Options: map[string]string{}}
		for _, ae := range entries {
			v := resolve(ae.V)
			switch ae.Key {
			case "type":
				a.Type = v.Value
			case "level":
				a.Level = v.Value
			case "ignore_errors":
				// Never an error, as in MaestroNG (which took only the
				// boolean true): true, yes or on, quoted or not, in any
				// case, mean true; anything else false.
				switch strings.ToLower(v.Value) {
				case "true", "yes", "on":
					a.IgnoreErrors = v.Kind == yaml.ScalarNode
				}
			default:
				if v.Kind == yaml.ScalarNode {
					a.Options[ae.Key], _ = envString(v)
					continue
				}
				var raw any
				if err := v.Decode(&raw); err == nil {
					js, _ := json.Marshal(raw)
					a.Options[ae.Key] = string(js)
				}
			}
		}
		req, known := required[a.Type]
		switch {
		case a.Type == "":
			b.errorf(c, join(p, "type"), "missing required auditor type")
			continue
		case !known:
			b.errorf(c, join(p, "type"), "unknown auditor type %q (types: %s)", a.Type, strings.Join(sortedKeys(required), ", "))
			continue
		case a.Level != "info" && a.Level != "debug":
			b.errorf(c, join(p, "level"), "unknown level %q (info or debug)", a.Level)
		}
		for _, k := range req {
			if _, ok := a.Options[k]; !ok {
				b.errorf(c, join(p, k), "missing required %s for a %s auditor", k, a.Type)
			}
		}
		b.env.Audit = append(b.env.Audit, a)
	}
}

func sortedSet(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
