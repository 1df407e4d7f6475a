package manifest

import (
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Lifecycle states, in the order an instance goes through them.
var lifecycleStates = []string{"pre-start", "running", "pre-stop", "stopped"}

// Check types.
const (
	CheckTCP   = "tcp"
	CheckHTTP  = "http"
	CheckExec  = "exec"
	CheckRexec = "rexec"
	CheckSleep = "sleep"
)

var checkKeys = map[string][]string{
	CheckTCP:   {"type", "port", "max_wait"},
	CheckHTTP:  {"type", "port", "host", "path", "scheme", "method", "match_regex", "max_wait", "requests_options"},
	CheckExec:  {"type", "command", "cmd", "attempts", "envfrom"},
	CheckRexec: {"type", "command", "cmd", "attempts"},
	CheckSleep: {"type", "wait"},
}

// Check is a lifecycle check. Which fields apply depends on Type:
//
//   - tcp: Port (a named TCP port), MaxWait (attempts, default 180).
//   - http: Port (a named port or a number), Host (default the ship's ip),
//     Path (default /), Scheme (http), Method (GET), MatchRegex (else 200
//     only), MaxWait (seconds, default 300), Options (requests_options).
//   - exec: Command run where maestro-sync runs, Attempts (default 180),
//     EnvFrom (env or stdin).
//   - rexec: Command run inside the container, Attempts (default 180).
//   - sleep: Wait seconds.
type Check struct {
	Type       string            `json:"type"`
	Port       string            `json:"port,omitempty"`
	Host       string            `json:"host,omitempty"`
	Path       string            `json:"path,omitempty"`
	Scheme     string            `json:"scheme,omitempty"`
	Method     string            `json:"method,omitempty"`
	MatchRegex string            `json:"match_regex,omitempty"`
	MaxWait    int               `json:"max_wait,omitempty"`
	Attempts   int               `json:"attempts,omitempty"`
	Command    []string          `json:"command,omitempty"`
	EnvFrom    string            `json:"envfrom,omitempty"`
	Wait       int               `json:"wait,omitempty"`
	Options    map[string]string `json:"requests_options,omitempty"`
}

// lifecycle builds an instance's checks: the service's checks of each state
// followed by the instance's own (never leaking to other instances).
func (b *builder) lifecycle(sd *serviceDraft, f *fields, in *Instance) {
	own := b.lifecycleNodes(f)
	add := func(state string, of *fields, nodes []*yaml.Node) {
		for i, n := range nodes {
			p := of.sub("lifecycle") + "." + state + "[" + strconv.Itoa(i) + "]"
			if c, ok := b.check(n, p, in); ok {
				if in.Lifecycle == nil {
					in.Lifecycle = map[string][]Check{}
				}
				in.Lifecycle[state] = append(in.Lifecycle[state], c)
			}
		}
	}
	for _, state := range lifecycleStates {
		add(state, sd.f, sd.lifecycle[state]) // the service's checks first
		add(state, f, own[state])
	}
}

func (b *builder) check(n *yaml.Node, p string, in *Instance) (Check, bool) {
	entries, ok := b.mapping(n, p)
	if !ok {
		return Check{}, false
	}
	var typ string
	for _, e := range entries {
		if e.Key == "type" {
			typ = resolve(e.V).Value
		}
	}
	known, ok := checkKeys[typ]
	if !ok {
		if typ == "" {
			b.errorf(n, join(p, "type"), "missing required check type (types: %s)", strings.Join(sortedKeys(checkKeys), ", "))
		} else {
			b.errorf(n, join(p, "type"), "unknown check type %q (types: %s)", typ, strings.Join(sortedKeys(checkKeys), ", "))
		}
		return Check{}, false
	}
	if typ == CheckExec && b.opts.DenyExecChecks {
		b.errorf(n, join(p, "type"), "an exec check runs its command on the deployer, where the daemon's credentials are: maestro-sync run refuses it unless started with --allow-exec-checks (rexec runs a command inside the container instead)")
		return Check{}, false
	}
	f, _ := b.fields(n, p, known)
	c := Check{Type: typ}
	good := true
	intOr := func(key string, def int) int {
		if v, ok := b.integer(f, key); ok {
			if v < 0 {
				b.errorf(f.byKey(key).V, f.sub(key), "%s must not be negative", key)
				good = false
			}
			return int(v)
		}
		return def
	}
	// MaestroNG's retrying checks take `attempts or 180`: 0 is the
	// default too.
	attemptsOr := func(key string) int {
		if v := intOr(key, 180); v != 0 {
			return v
		}
		return 180
	}
	switch typ {
	case CheckTCP:
		c.MaxWait = attemptsOr("max_wait")
		good = b.checkPort(f, in, &c, false) && good
	case CheckHTTP:
		c.MaxWait = intOr("max_wait", 300)
		good = b.checkPort(f, in, &c, true) && good
		c.Host, _ = b.str(f, "host")
		c.Path = "/"
		if v, ok := b.str(f, "path"); ok {
			c.Path = v
			if !strings.HasPrefix(v, "/") {
				c.Path = "/" + v
			}
		}
		c.Scheme = "http"
		if v, ok := b.str(f, "scheme"); ok {
			c.Scheme = strings.ToLower(v)
			if c.Scheme != "http" && c.Scheme != "https" {
				b.errorf(f.byKey("scheme").V, f.sub("scheme"), "unknown scheme %q (http or https)", v)
				good = false
			}
		}
		c.Method = "GET"
		if v, ok := b.str(f, "method"); ok {
			c.Method = strings.ToUpper(v)
		}
		if v, ok := b.str(f, "match_regex"); ok {
			if _, err := regexp.Compile(v); err != nil {
				b.errorf(f.byKey("match_regex").V, f.sub("match_regex"), "bad regex %q: %v (Go RE2 syntax: no lookarounds or backreferences)", v, unwrapRegexpError(err))
				good = false
			}
			c.MatchRegex = v
		}
		if e, ok := f.get("requests_options"); ok {
			c.Options, _ = b.stringMap(f, "requests_options")
			for k := range c.Options {
				if k != "verify" && k != "timeout" {
					b.warnf(e.V, join(f.sub("requests_options"), k), "requests option %q is ignored (supported: timeout, verify)", k)
				}
			}
		}
	case CheckExec, CheckRexec:
		c.Attempts = attemptsOr("attempts")
		key := "command"
		if !f.has(key) && f.has("cmd") {
			key = "cmd"
		}
		if e, ok := b.required(f, key, "command"); ok {
			c.Command = b.argv(e.V, f.sub(key))
			if len(c.Command) == 0 {
				b.errorf(e.V, f.sub(key), "command must not be empty")
				good = false
			}
		} else {
			good = false
		}
		if typ == CheckExec {
			c.EnvFrom = "env"
			if v, ok := b.str(f, "envfrom"); ok {
				if v != "env" && v != "stdin" {
					b.errorf(f.byKey("envfrom").V, f.sub("envfrom"), "envfrom must be env or stdin, got %q", v)
					good = false
				}
				c.EnvFrom = v
			}
		}
	case CheckSleep:
		if _, ok := b.required(f, "wait", "wait (seconds)"); ok {
			c.Wait = intOr("wait", 0)
		} else {
			good = false
		}
	}
	return c, good
}

// checkPort resolves a check's port: a named port of the instance (TCP), or
// for http also a literal number.
func (b *builder) checkPort(f *fields, in *Instance, c *Check, numberOK bool) bool {
	e, ok := b.required(f, "port", "port")
	if !ok {
		return false
	}
	name, ok := b.scalar(e.V, f.sub("port"), "a port name")
	if !ok {
		return false
	}
	c.Port = name
	if p := in.Port(name); p != nil {
		if p.Protocol() != "tcp" {
			b.errorf(e.V, f.sub("port"), "port %s of %s is not TCP", name, in.Name)
			return false
		}
		if strings.Contains(p.ExternalPort(), "-") {
			b.errorf(e.V, f.sub("port"), "port %s of %s is a range; a check needs a single port", name, in.Name)
			return false
		}
		return true
	}
	if n, err := strconv.Atoi(name); err == nil && numberOK && n > 0 && n < 65536 {
		return true
	}
	names := make([]string, len(in.Ports))
	for i, p := range in.Ports {
		names[i] = p.Name
	}
	b.errorf(e.V, f.sub("port"), "port %s is not defined by %s (ports: %s)", name, in.Name, strings.Join(names, ", "))
	return false
}

// unwrapRegexpError returns the reason of a regexp error without the
// pattern, which the caller already shows.
func unwrapRegexpError(err error) string {
	if se, ok := err.(*syntax.Error); ok {
		return string(se.Code)
	}
	return err.Error()
}
