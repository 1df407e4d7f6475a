package manifest

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// portAtom is one side of a port spec: a port or range, with an optional
// lower-case protocol.
var portAtom = regexp.MustCompile(`^([0-9]+)(?:-([0-9]+))?(/(?:tcp|udp))?$`)

// sexagesimal matches what YAML 1.1 (and so MaestroNG) reads as a base-60
// integer: an unquoted "22:22" was the number 1342 there.
var sexagesimal = regexp.MustCompile(`^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$`)

const anyAddress = "0.0.0.0"

// normalizePortAtom checks one side of a port spec and appends /tcp when no
// protocol is given. external allows port 0 (a random host port).
func normalizePortAtom(s string, external bool) (string, error) {
	m := portAtom.FindStringSubmatch(s)
	if m == nil {
		return "", fmt.Errorf("invalid port %q: expected <port>, <p1>-<p2> or <port>/{tcp,udp}", s)
	}
	lo, err := strconv.Atoi(m[1])
	minPort := 1
	if external {
		minPort = 0
	}
	if err != nil || lo < minPort || lo > 65535 {
		return "", fmt.Errorf("invalid port %q: %s is out of range %d-65535", s, m[1], minPort)
	}
	if m[2] != "" {
		hi, err := strconv.Atoi(m[2])
		if err != nil || hi < 1 || hi > 65535 {
			return "", fmt.Errorf("invalid port %q: %s is out of range 1-65535", s, m[2])
		}
		if hi < lo {
			return "", fmt.Errorf("invalid port %q: range %d-%d is inverted", s, lo, hi)
		}
	}
	if m[3] == "" {
		return s + "/tcp", nil
	}
	return s, nil
}

func protoOf(atom string) string {
	if _, p, ok := strings.Cut(atom, "/"); ok {
		return p
	}
	return "tcp"
}

func stripProto(atom string) string {
	p, _, _ := strings.Cut(atom, "/")
	return p
}

// portRange returns the first and last port of an atom such as 80/tcp or
// 1234-1236/udp.
func portRange(atom string) (lo, hi int) {
	num := stripProto(atom)
	a, b, isRange := strings.Cut(num, "-")
	lo, _ = strconv.Atoi(a)
	hi = lo
	if isRange {
		hi, _ = strconv.Atoi(b)
	}
	return lo, hi
}

// parsePort parses a port spec in any of MaestroNG's forms: an integer, a
// string "exposed[:external]", or {exposed, external} where external may be
// [host_ip, port]. warn receives notes about YAML 1.1 readings.
func (d *decoder) parsePort(name string, n *yaml.Node, path string) (Port, bool) {
	n = resolve(n)
	p := Port{Name: name, ExternalIP: anyAddress}
	fail := func(node *yaml.Node, err error) (Port, bool) {
		d.errorf(node, path, "%v", err)
		return Port{}, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			var v int64
			if err := n.Decode(&v); err != nil {
				return fail(n, fmt.Errorf("invalid port spec %q", n.Value))
			}
			atom, err := normalizePortAtom(strconv.FormatInt(v, 10), false)
			if err != nil {
				return fail(n, err)
			}
			p.Exposed, p.External = atom, atom
			return p, true
		case "!!str":
			return d.parsePortString(p, n, path)
		}
	case yaml.MappingNode:
		return d.parsePortMap(p, n, path)
	}
	return fail(n, fmt.Errorf("invalid port spec: expected a port number, \"exposed:external\" or {exposed, external}, got %s", kindName(n)))
}

func (d *decoder) parsePortString(p Port, n *yaml.Node, path string) (Port, bool) {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 && sexagesimal.MatchString(n.Value) {
		d.warnf(n, path, "%q is read as the port spec %q; MaestroNG (YAML 1.1) read an unquoted %s as a base-60 number: quote it to make the meaning clear", n.Value, n.Value, n.Value)
	}
	parts := strings.Split(n.Value, ":")
	var err error
	switch len(parts) {
	case 1:
		if p.Exposed, err = normalizePortAtom(parts[0], false); err == nil {
			p.External = p.Exposed
		}
	case 2:
		if p.Exposed, err = normalizePortAtom(parts[0], false); err != nil {
			break
		}
		if p.External, err = normalizePortAtom(parts[1], true); err != nil {
			break
		}
		if protoOf(p.Exposed) != protoOf(p.External) {
			err = fmt.Errorf("mismatched protocols between %s and %s", p.Exposed, p.External)
		} else {
			err = checkRanges(p)
		}
	default:
		err = fmt.Errorf("invalid port spec %q: expected \"exposed\" or \"exposed:external\" (container side first, e.g. \"80:8080\")", n.Value)
	}
	if err != nil {
		d.errorf(n, path, "%v", err)
		return Port{}, false
	}
	return p, true
}

func (d *decoder) parsePortMap(p Port, n *yaml.Node, path string) (Port, bool) {
	f, ok := d.fields(n, path, []string{"exposed", "external"})
	if !ok {
		return Port{}, false
	}
	exp, okE := f.get("exposed")
	ext, okX := f.get("external")
	if !okE || !okX {
		d.errorf(n, path, "invalid port spec: a port mapping needs both \"exposed\" and \"external\"")
		return Port{}, false
	}
	atom := func(v *yaml.Node, path string, external bool) (string, bool) {
		v = resolve(v)
		if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!int" && v.ShortTag() != "!!str") {
			d.errorf(v, path, "invalid port spec: expected a port, got %s", kindName(v))
			return "", false
		}
		s, err := normalizePortAtom(v.Value, external)
		if err != nil {
			d.errorf(v, path, "%v", err)
			return "", false
		}
		return s, true
	}
	var good bool
	if p.Exposed, good = atom(exp.V, f.sub("exposed"), false); !good {
		return Port{}, false
	}
	xv := resolve(ext.V)
	if xv.Kind == yaml.SequenceNode {
		if len(xv.Content) != 2 {
			d.errorf(xv, f.sub("external"), "invalid port spec: external as a list must be [host_ip, port], got %d elements", len(xv.Content))
			return Port{}, false
		}
		ipNode := resolve(xv.Content[0])
		addr, err := netip.ParseAddr(ipNode.Value)
		if ipNode.Kind != yaml.ScalarNode || err != nil {
			d.errorf(ipNode, f.sub("external")+"[0]", "invalid host IP %q", ipNode.Value)
			return Port{}, false
		}
		p.ExternalIP = addr.String()
		xv = xv.Content[1]
	}
	if p.External, good = atom(xv, f.sub("external"), true); !good {
		return Port{}, false
	}
	if err := checkRanges(p); err != nil {
		d.errorf(n, path, "%v", err)
		return Port{}, false
	}
	return p, true
}

// checkRanges rejects what Docker refuses: a container port range published
// on a host range of another size, or on a single host port.
func checkRanges(p Port) error {
	elo, ehi := portRange(p.Exposed)
	xlo, xhi := portRange(p.External)
	if ehi > elo && xhi-xlo != ehi-elo {
		return fmt.Errorf("container range %s needs a host range of the same size, got %s", stripProto(p.Exposed), stripProto(p.External))
	}
	return nil
}
