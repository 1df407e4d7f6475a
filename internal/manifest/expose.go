package manifest

import (
	"strconv"
	"strings"
)

// Keys of a cluster service's expose and ingress sections.
var (
	exposeKeys  = []string{"type", "ports"}
	ingressKeys = []string{"hosts", "path", "port", "tls_secret", "class"}
)

// Service types expose accepts.
const (
	ExposeLoadBalancer = "LoadBalancer"
	ExposeNodePort     = "NodePort"
	ExposeClusterIP    = "ClusterIP"
)

// Expose is how a cluster service's Service is reached from outside the
// cluster (a maestro-sync extension).
type Expose struct {
	// Type is the Service's type: LoadBalancer, NodePort or ClusterIP.
	Type string `json:"type"`
	// Ports maps port names to the Service's port numbers, where they
	// differ from the container's (a load balancer on 80 for a container
	// on 8080).
	Ports map[string]int `json:"ports,omitempty"`
}

// Ingress routes HTTP requests for hosts and a path to a cluster
// service, through a networking.k8s.io/v1 Ingress that targets the
// service's stable Service (so it follows the blue/green switch).
type Ingress struct {
	// Hosts are the host names (none: every host).
	Hosts []string `json:"hosts,omitempty"`
	// Path is a path prefix, "/" by default.
	Path string `json:"path"`
	// Port is the name of the service's port requests go to.
	Port string `json:"port"`
	// TLSSecret names a Secret of the namespace with the certificate for
	// the hosts ("" for plain HTTP); Class the ingress class ("" for the
	// cluster's default).
	TLSSecret string `json:"tls_secret,omitempty"`
	Class     string `json:"class,omitempty"`
}

// exposeSettings decodes a cluster service's expose and ingress keys.
func (b *builder) exposeSettings(sd *serviceDraft, w *Workload) {
	sf := sd.f
	if e, ok := sf.get("expose"); ok {
		p := sf.sub("expose")
		if f, ok := b.fields(e.V, p, exposeKeys); ok {
			x := &Expose{Type: ExposeLoadBalancer}
			if t, ok := b.str(f, "type"); ok {
				switch {
				case strings.EqualFold(t, ExposeLoadBalancer):
					x.Type = ExposeLoadBalancer
				case strings.EqualFold(t, ExposeNodePort):
					x.Type = ExposeNodePort
				case strings.EqualFold(t, ExposeClusterIP):
					x.Type = ExposeClusterIP
				default:
					b.errorf(f.byKey("type").V, f.sub("type"), "unknown Service type %q (LoadBalancer, NodePort or ClusterIP)", t)
				}
			}
			if ports, ok := b.stringMap(f, "ports"); ok {
				x.Ports = map[string]int{}
				for _, name := range sortedKeys(ports) {
					path := join(f.sub("ports"), name)
					n, err := strconv.Atoi(ports[name])
					switch {
					case w.Ports.byName(name) == nil:
						b.errorf(f.byKey("ports").V, path, "unknown port %q (%s)", name, w.Ports.names())
					case err != nil || n < 1 || n > 65535:
						b.errorf(f.byKey("ports").V, path, "the Service's port must be a number from 1 to 65535, got %q", ports[name])
					default:
						x.Ports[name] = n
					}
				}
			}
			// The Service's port numbers must differ (of one protocol).
			seen := map[string]string{}
			for _, port := range w.Ports {
				n := port.ExposedPort()
				if v, ok := x.Ports[port.Name]; ok {
					n = strconv.Itoa(v)
				}
				key := n + "/" + port.Protocol()
				if other, dup := seen[key]; dup {
					b.errorf(e.K, p, "ports %s and %s would both be the Service's port %s", other, port.Name, key)
				}
				seen[key] = port.Name
			}
			if x.Type == ExposeClusterIP {
				for _, port := range w.Ports {
					if port.External != port.Exposed {
						b.errorf(e.K, p, "port %s has a node port: a ClusterIP Service has none", port.Name)
					}
				}
			}
			if len(w.Ports) == 0 {
				b.errorf(e.K, p, "a service without ports cannot be exposed")
			}
			w.Expose = x
		}
	}
	if e, ok := sf.get("ingress"); ok {
		p := sf.sub("ingress")
		f, ok := b.fields(e.V, p, ingressKeys)
		if !ok {
			return
		}
		in := &Ingress{Path: "/"}
		in.Hosts, _ = b.hosts(f)
		if v, ok := b.str(f, "path"); ok {
			if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t\n?#") {
				b.errorf(f.byKey("path").V, f.sub("path"), "a path prefix starts with / and has no spaces, ? or #, got %q", v)
			}
			in.Path = v
		}
		in.Port, _ = b.str(f, "port")
		switch {
		case len(w.Ports) == 0:
			b.errorf(e.K, p, "a service without ports cannot have an ingress")
		case in.Port == "" && len(w.Ports) > 1:
			b.errorf(e.K, p, "the service has several ports: name the one requests go to with port (%s)", w.Ports.names())
		case in.Port == "":
			in.Port = w.Ports[0].Name
		case w.Ports.byName(in.Port) == nil:
			b.errorf(f.byKey("port").V, f.sub("port"), "unknown port %q (%s)", in.Port, w.Ports.names())
		}
		for _, key := range []string{"tls_secret", "class"} {
			if v, ok := b.str(f, key); ok && (len(v) > 253 || !hostName.MatchString(v) || strings.HasPrefix(v, "*")) {
				b.errorf(f.byKey(key).V, f.sub(key), "invalid %s %q: a Kubernetes object name (lower-case letters, digits, - and .)", key, v)
			}
		}
		in.TLSSecret, _ = b.str(f, "tls_secret")
		in.Class, _ = b.str(f, "class")
		if in.TLSSecret != "" && len(in.Hosts) == 0 {
			b.errorf(f.byKey("tls_secret").K, f.sub("tls_secret"), "tls_secret needs hosts: the certificate is for them")
		}
		w.Ingress = in
	}
}

// byName returns the named port, or nil.
func (l PortList) byName(name string) *Port {
	for i := range l {
		if l[i].Name == name {
			return &l[i]
		}
	}
	return nil
}

// names lists the port names for a message.
func (l PortList) names() string {
	if len(l) == 0 {
		return "the service has no ports"
	}
	names := make([]string, len(l))
	for i, p := range l {
		names[i] = p.Name
	}
	return "ports: " + strings.Join(names, ", ")
}
