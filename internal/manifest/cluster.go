package manifest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var clusterKeys = []string{"kubeconfig", "context", "namespace", "node_address"}

// dnsLabel is a Kubernetes object name part (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// clusters decodes the clusters section.
func (b *builder) clusters(n *yaml.Node) {
	entries, _ := b.mapping(n, "clusters")
	b.env.Clusters = map[string]*Cluster{}
	for _, c := range entries {
		p := join("clusters", c.Key)
		cf, ok := b.fields(c.V, p, clusterKeys)
		if !ok {
			continue
		}
		cl := &Cluster{Name: c.Key, Namespace: "default"}
		cl.Kubeconfig, _ = b.str(cf, "kubeconfig")
		cl.Context, _ = b.str(cf, "context")
		if ns, ok := b.str(cf, "namespace"); ok {
			cl.Namespace = ns
			if len(ns) > 63 || !dnsLabel.MatchString(ns) {
				b.errorf(cf.byKey("namespace").V, cf.sub("namespace"), "invalid namespace %q: lower-case letters, digits and -, at most 63", ns)
			}
		}
		cl.NodeAddress, _ = b.str(cf, "node_address")
		b.env.Clusters[c.Key] = cl
	}
}

// workload decodes the cluster part of a service: cluster, replicas, mode,
// and the container settings a Deployment needs.
func (b *builder) workload(sd *serviceDraft) {
	sf, svc := sd.f, sd.svc
	w := &Workload{Mode: ModeDeployment, Replicas: 1, Image: svc.Image, Command: []string{}}
	svc.Workload = w
	if sf.has("instances") {
		b.errorf(sf.byKey("instances").K, sf.sub("instances"), "a service runs either on ships (instances) or on a cluster (cluster), not both")
	}
	if len(svc.Name) > 54 || !dnsLabel.MatchString(svc.Name) {
		b.errorf(sf.node, sf.path, "invalid name %q for a cluster service: lower-case letters, digits and -, at most 54 (it names Kubernetes objects)", svc.Name)
	}
	if name, ok := b.str(sf, "cluster"); ok {
		w.Cluster = name
		if _, known := b.env.Clusters[name]; !known {
			b.errorf(sf.byKey("cluster").V, sf.sub("cluster"), "unknown cluster %q (%s)", name, b.clusterList())
		}
	}
	if e, ok := sf.get("command"); ok {
		w.Command = b.argv(e.V, sf.sub("command"))
	}
	if v, ok := b.integer(sf, "replicas"); ok {
		if v < 0 {
			b.errorf(sf.byKey("replicas").V, sf.sub("replicas"), "replicas must not be negative")
		}
		w.Replicas = int(v)
	}
	if m, ok := b.str(sf, "mode"); ok {
		if m != ModeDeployment && m != ModeDaemonSet {
			b.errorf(sf.byKey("mode").V, sf.sub("mode"), "unknown mode %q (deployment or daemonset)", m)
		}
		w.Mode = m
		if m == ModeDaemonSet && sf.has("replicas") {
			b.errorf(sf.byKey("replicas").K, sf.sub("replicas"), "a daemonset runs one pod per node: replicas does not apply")
		}
	}
	w.Ports = mergePorts(sd.ports, nil)
	for _, p := range w.Ports {
		node := sd.portNodes[p.Name]
		path := sf.sub("ports." + p.Name)
		if !dnsLabel.MatchString(p.Name) || len(p.Name) > 15 {
			b.errorf(node, path, "invalid port name %q for a cluster service: lower-case letters, digits and -, at most 15", p.Name)
		}
		if strings.Contains(p.Exposed, "-") {
			b.errorf(node, path, "a cluster service cannot expose a port range")
		}
		if p.External != p.Exposed {
			if lo, hi := portRange(p.External); lo != hi || lo < 30000 || lo > 32767 {
				b.errorf(node, path, "the external port of a cluster service is its node port: one port in 30000-32767, got %s", p.ExternalPort())
			}
		}
	}
	b.exposeSettings(sd, w)
	if sd.limits != nil {
		if e, ok := sd.limits.get("memory"); ok {
			v, err := parseSize(e.V)
			if err != nil || v < 0 {
				b.errorf(e.V, sd.limits.sub("memory"), "invalid memory limit %q", resolve(e.V).Value)
			}
			w.MemoryBytes = v
		}
		if e, ok := sd.limits.get("cpu"); ok {
			v, err := parseCPU(resolve(e.V))
			if err != nil {
				b.errorf(e.V, sd.limits.sub("cpu"), "%v", err)
			}
			w.CPUMillis = v
		}
		if sd.limits.has("swap") {
			b.errorf(sd.limits.byKey("swap").K, sd.limits.sub("swap"), "swap does not apply to a cluster service")
		}
	}
	// Checks: running checks become the readiness probe; only tcp, http
	// and exec (run in the pod) translate.
	probeIn := &Instance{Name: svc.Name, Ports: w.Ports}
	for _, state := range lifecycleStates {
		for i, n := range sd.lifecycle[state] {
			path := fmt.Sprintf("%s.%s[%d]", sf.sub("lifecycle"), state, i)
			c, ok := b.check(n, path, probeIn)
			if !ok {
				continue
			}
			if state == "running" && c.Type != CheckTCP && c.Type != CheckHTTP && c.Type != CheckExec {
				b.errorf(n, path, "a %s check cannot become a readiness probe (tcp, http or exec)", c.Type)
				continue
			}
			if w.Lifecycle == nil {
				w.Lifecycle = map[string][]Check{}
			}
			w.Lifecycle[state] = append(w.Lifecycle[state], c)
		}
	}
	if len(w.Lifecycle["running"]) > 1 {
		b.errorf(sf.byKey("lifecycle").K, sf.sub("lifecycle.running"), "a cluster service has one readiness probe: give one running check")
	}
}

func (b *builder) clusterList() string {
	if len(b.env.Clusters) == 0 {
		return "no clusters are defined"
	}
	return "clusters: " + strings.Join(sortedKeys(b.env.Clusters), ", ")
}

// parseCPU reads a Kubernetes CPU quantity: cores (1, 0.5) or millicores
// (500m).
func parseCPU(n *yaml.Node) (int64, error) {
	s := n.Value
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v <= 0 {
			return 0, fmt.Errorf("invalid cpu %q: expected cores (0.5) or millicores (500m)", s)
		}
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("invalid cpu %q: expected cores (0.5) or millicores (500m)", s)
	}
	return int64(f*1000 + 0.5), nil
}

// workloadEnv finishes a workload's environment: the service env, the
// fixed variables and the link variables.
func (b *builder) workloadEnv(sd *serviceDraft, services map[string]*serviceDraft, warned map[string]bool) {
	w := sd.svc.Workload
	cl := b.env.Clusters[w.Cluster]
	if cl == nil {
		return
	}
	m := sd.env.clone()
	_, tag := ParseImage(w.Image)
	m.set(EnvVar{Name: "CONTAINER_NAME", Value: sd.svc.Name, Source: SourceFixed})
	m.set(EnvVar{Name: "CONTAINER_HOST_ADDRESS", Value: DNSName(sd.svc.Name, cl), Source: SourceFixed})
	m.set(EnvVar{Name: "DOCKER_IMAGE", Value: w.Image, Source: SourceFixed})
	m.set(EnvVar{Name: "DOCKER_TAG", Value: tag, Source: SourceFixed})
	b.applyLinks(m, sd, services, true, warned)
	w.Env = m.env()
	w.SpecHash = w.Spec().Placed().Hash()
}

// linkServices returns the services whose link variables sd gets: the
// transitive requires and the direct wants_info.
func (b *builder) linkServices(sd *serviceDraft) []string {
	infos := b.env.graph.closure(sd.svc.Name)
	for _, w := range sd.svc.WantsInfo {
		if !slices.Contains(infos, w) && w != sd.svc.Name {
			infos = append(infos, w)
		}
	}
	slices.Sort(infos)
	return infos
}
