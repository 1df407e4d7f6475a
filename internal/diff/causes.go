package diff

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Causes says what differs between the spec a container was created from
// (old, as stored on it; nil when unknown) and the desired spec. Env values
// are never shown, only the names of the variables that changed.
func Causes(old *manifest.Spec, desired manifest.Spec) []string {
	if old == nil {
		return []string{"spec hash differs (the container carries no spec summary)"}
	}
	cur := desired.Summary()
	var out []string
	if old.Image != cur.Image {
		out = append(out, imageCause(old.Image, cur.Image))
	}
	if !slices.Equal(old.Command, cur.Command) {
		out = append(out, "command changed")
	}
	out = append(out, envCauses(old.Env, cur.Env)...)
	out = append(out, portCauses(old.Ports, cur.Ports)...)
	for _, f := range specFields(*old, cur) {
		if !sameJSON(f.old, f.new) {
			out = append(out, f.name+" changed")
		}
	}
	if len(out) == 0 {
		out = append(out, "spec hash differs")
	}
	return out
}

// field is one generic field of two specs.
type field struct {
	name     string
	old, new any
}

// specFields pairs the fields of two specs other than image, command, env
// and ports, which are compared in detail.
func specFields(old, cur manifest.Spec) []field {
	return []field{
		{"hostname", old.Hostname, cur.Hostname},
		{"volumes", old.Volumes, cur.Volumes},
		{"container_volumes", old.ContainerVolumes, cur.ContainerVolumes},
		{"volumes_from", old.VolumesFrom, cur.VolumesFrom},
		{"links", old.Links, cur.Links},
		{"username", old.User, cur.User},
		{"privileged", old.Privileged, cur.Privileged},
		{"cap_add", old.CapAdd, cur.CapAdd},
		{"cap_drop", old.CapDrop, cur.CapDrop},
		{"extra_hosts", old.ExtraHosts, cur.ExtraHosts},
		{"net", old.Net, cur.Net},
		{"restart", old.Restart, cur.Restart},
		{"dns", old.DNS, cur.DNS},
		{"stop_timeout", old.StopTimeout, cur.StopTimeout},
		{"limits", old.Limits, cur.Limits},
		{"log_driver", old.LogDriver, cur.LogDriver},
		{"log_opt", old.LogOpt, cur.LogOpt},
		{"workdir", old.Workdir, cur.Workdir},
		{"security_opt", old.SecurityOpt, cur.SecurityOpt},
		{"ulimits", old.Ulimits, cur.Ulimits},
		{"labels", old.Labels, cur.Labels},
		{"mode", old.Mode, cur.Mode},
		{"replicas", old.Replicas, cur.Replicas},
		{"readiness probe", old.Probe, cur.Probe},
	}
}

func imageCause(old, cur string) string {
	oldRepo, oldTag := manifest.ParseImage(old)
	curRepo, curTag := manifest.ParseImage(cur)
	if oldRepo == curRepo {
		return fmt.Sprintf("image tag %s → %s", oldTag, curTag)
	}
	return fmt.Sprintf("image %s → %s", old, cur)
}

// envCauses compares two env lists of KEY=digest entries.
func envCauses(old, cur []string) []string {
	if out, ok := sortedEnvCauses(old, cur); ok {
		return out
	}
	return envCausesByMaps(old, cur)
}

// envCausesByMaps is envCauses through maps, for lists in any order.
func envCausesByMaps(old, cur []string) []string {
	o, c := envMap(old), envMap(cur)
	var out []string
	for _, k := range sortedUnion(o, c) {
		ov, inOld := o[k]
		cv, inCur := c[k]
		switch {
		case !inOld:
			out = append(out, "env "+k+" added")
		case !inCur:
			out = append(out, "env "+k+" removed")
		case ov != cv:
			out = append(out, "env "+k+" changed")
		}
	}
	return out
}

// sortedEnvCauses is envCauses of two lists whose names are strictly
// increasing, as Env.List writes them, by merging them; false when a list
// is not.
func sortedEnvCauses(old, cur []string) ([]string, bool) {
	var out []string
	i, j := 0, 0
	var ok, ck, prevO, prevC string
	for i < len(old) || j < len(cur) {
		var ov, cv string
		if i < len(old) {
			ok, ov = envEntry(old[i])
			if i > 0 && ok <= prevO {
				return nil, false
			}
		}
		if j < len(cur) {
			ck, cv = envEntry(cur[j])
			if j > 0 && ck <= prevC {
				return nil, false
			}
		}
		switch {
		case j == len(cur) || i < len(old) && ok < ck:
			out = append(out, "env "+ok+" removed")
			prevO = ok
			i++
		case i == len(old) || ck < ok:
			out = append(out, "env "+ck+" added")
			prevC = ck
			j++
		default:
			if ov != cv {
				out = append(out, "env "+ok+" changed")
			}
			prevO, prevC = ok, ck
			i++
			j++
		}
	}
	return out, true
}

// envEntry splits a KEY=value entry; an unset variable's value is
// "\x00unset".
func envEntry(kv string) (key, value string) {
	k, v, set := strings.Cut(kv, "=")
	if !set {
		v = "\x00unset"
	}
	return k, v
}

func envMap(list []string) map[string]string {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, set := strings.Cut(kv, "=")
		if !set {
			v = "\x00unset"
		}
		m[k] = v
	}
	return m
}

func portCauses(old, cur manifest.PortList) []string {
	o, c := map[string]manifest.Port{}, map[string]manifest.Port{}
	for _, p := range old {
		o[p.Name] = p
	}
	for _, p := range cur {
		c[p.Name] = p
	}
	var out []string
	for _, k := range sortedUnion(o, c) {
		op, inOld := o[k]
		cp, inCur := c[k]
		switch {
		case !inOld:
			out = append(out, fmt.Sprintf("port %s added (%s)", k, portText(cp)))
		case !inCur:
			out = append(out, fmt.Sprintf("port %s removed", k))
		case op != cp:
			out = append(out, fmt.Sprintf("port %s %s → %s", k, portText(op), portText(cp)))
		}
	}
	return out
}

// portText writes a port as MaestroNG's "exposed:external" with the
// protocol once, and the host address when it is not every address.
func portText(p manifest.Port) string {
	ip := ""
	if p.ExternalIP != "" && p.ExternalIP != "0.0.0.0" {
		ip = p.ExternalIP + ":"
	}
	return fmt.Sprintf("%s:%s%s/%s", p.ExposedPort(), ip, p.ExternalPort(), p.Protocol())
}

func sortedUnion[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sameJSON(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true // equal values have one JSON form
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
