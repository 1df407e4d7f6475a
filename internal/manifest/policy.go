package manifest

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The rules a Policy can deny.
const (
	RulePrivileged   = "privileged"    // privileged: true
	RuleHostNetwork  = "host_network"  // net: host
	RuleDockerSocket = "docker_socket" // a bind mount of the Docker socket
	RuleHostPaths    = "host_paths"    // a bind mount of a host path outside allowed_host_paths
)

var policyRules = []string{RulePrivileged, RuleHostNetwork, RuleDockerSocket, RuleHostPaths}

// Policy says what the containers of environments may not do. It is the
// operator's (given with --policy), not the repository's: a committer
// cannot loosen it. Each denial is a located error of the environment.
type Policy struct {
	// Deny lists the rules that apply to every environment.
	Deny []string `yaml:"deny"`
	// AllowedHostPaths are the host directories bind mounts may come
	// from when host_paths is denied.
	AllowedHostPaths []string `yaml:"allowed_host_paths"`
	// Environments replace Deny and AllowedHostPaths for one environment
	// (by name); a field left out keeps the default.
	Environments map[string]EnvPolicy `yaml:"environments"`
}

// EnvPolicy is the policy of one environment.
type EnvPolicy struct {
	Deny             *[]string `yaml:"deny"`
	AllowedHostPaths *[]string `yaml:"allowed_host_paths"`
}

// ParsePolicy reads a policy file; errors name the file and line.
func ParsePolicy(name string, data []byte) (*Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	check := func(where string, rules []string, paths []string) error {
		for _, r := range rules {
			if !slices.Contains(policyRules, r) {
				return fmt.Errorf("%s: %sdeny: unknown rule %q (rules: %s)", name, where, r, strings.Join(policyRules, ", "))
			}
		}
		for _, hp := range paths {
			if !path.IsAbs(hp) {
				return fmt.Errorf("%s: %sallowed_host_paths: %q is not an absolute path", name, where, hp)
			}
		}
		return nil
	}
	if err := check("", p.Deny, p.AllowedHostPaths); err != nil {
		return nil, err
	}
	for env, ep := range p.Environments {
		var rules, paths []string
		if ep.Deny != nil {
			rules = *ep.Deny
		}
		if ep.AllowedHostPaths != nil {
			paths = *ep.AllowedHostPaths
		}
		if err := check("environments."+env+".", rules, paths); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

// forEnv returns the rules denied and the host paths allowed in env.
func (p *Policy) forEnv(env string) (deny, allowed []string) {
	deny, allowed = p.Deny, p.AllowedHostPaths
	if ep, ok := p.Environments[env]; ok {
		if ep.Deny != nil {
			deny = *ep.Deny
		}
		if ep.AllowedHostPaths != nil {
			allowed = *ep.AllowedHostPaths
		}
	}
	return deny, allowed
}

// IsDockerSocket reports whether a host path is the Docker engine's
// socket (which gives whoever mounts it the whole host).
func IsDockerSocket(source string) bool {
	p := path.Clean(source)
	return p == "/var/run/docker.sock" || p == "/run/docker.sock" || path.Base(p) == "docker.sock"
}

// underAny reports whether p is one of dirs or below one of them.
func underAny(p string, dirs []string) bool {
	p = path.Clean(p)
	for _, d := range dirs {
		d = path.Clean(d)
		if p == d || d == "/" || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// sensitiveHostPaths are host directories whose bind mount gives a
// container much of the host.
var sensitiveHostPaths = []string{"/", "/etc", "/root", "/proc", "/sys", "/dev", "/boot", "/var/run", "/run", "/var/lib/docker", "/usr", "/bin", "/sbin", "/lib", "/lib64"}

// Risks lists what an instance does that reaches beyond its container:
// privileged, the host's network, the Docker socket, a bind mount of a
// system directory of the host. A review plan marks them even when the
// policy allows them.
func Risks(in *Instance) []string {
	var out []string
	if in.Privileged {
		out = append(out, "privileged container")
	}
	if in.Net == "host" {
		out = append(out, "the host's network (net: host)")
	}
	for _, b := range in.Volumes {
		switch {
		case IsDockerSocket(b.Source):
			out = append(out, "the Docker socket mounted ("+b.Source+" → "+b.Target+"): full control of the host")
		case slices.Contains(sensitiveHostPaths, path.Clean(b.Source)):
			out = append(out, "host path "+b.Source+" mounted at "+b.Target)
		}
	}
	return out
}

// policy checks an instance against the loader's policy, with errors at
// the keys that break it.
func (b *builder) policy(f *fields, in *Instance) {
	if b.opts.Policy == nil {
		return
	}
	deny, allowed := b.opts.Policy.forEnv(b.env.Name)
	denied := func(rule string) bool { return slices.Contains(deny, rule) }
	const why = " (denied by the policy%s)"
	where := ""
	if _, ok := b.opts.Policy.Environments[b.env.Name]; ok {
		where = " of environment " + b.env.Name
	}
	if in.Privileged && denied(RulePrivileged) {
		b.errorf(f.byKey("privileged").V, f.sub("privileged"), "a privileged container"+why, where)
	}
	if in.Net == "host" && denied(RuleHostNetwork) {
		b.errorf(f.byKey("net").V, f.sub("net"), "the host's network"+why, where)
	}
	if e, ok := f.get("volumes"); ok && resolve(e.V).Kind == yaml.MappingNode {
		entries, _ := b.mapping(e.V, f.sub("volumes"))
		for _, ve := range entries {
			for _, bind := range in.Volumes {
				if bind.Source != ve.Key && bind.Target != ve.Key {
					continue
				}
				p := join(f.sub("volumes"), ve.Key)
				switch {
				case IsDockerSocket(bind.Source) && denied(RuleDockerSocket):
					b.errorf(ve.K, p, "the Docker socket %s gives the container the whole host"+why, bind.Source, where)
				case denied(RuleHostPaths) && !underAny(bind.Source, allowed):
					b.errorf(ve.K, p, "host path %s is outside the allowed host paths (%s)"+why, bind.Source, strings.Join(allowed, ", "), where)
				}
				break
			}
		}
	}
}
