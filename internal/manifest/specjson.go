package manifest

import (
	"encoding/json"
	"slices"
	"strconv"
)

// appendJSON appends to b the text encoding/json writes for s, without
// reflection. It handles the specs of instances on ships; false (and b
// unchanged) when s holds a workload's or a routed instance's fields,
// which are left to encoding/json. When env is not nil, the env written is
// env.List(), not s.Env.
func (s *Spec) appendJSON(b []byte, env Env) ([]byte, bool) {
	if s.Mode != "" || s.Replicas != 0 || len(s.Probe) > 0 || s.Proxy != nil || s.Expose != nil || s.Ingress != nil {
		return b, false
	}
	b = append(b, `{"v":`...)
	b = appendJSONString(b, s.Version)
	b = append(b, `,"image":`...)
	b = appendJSONString(b, s.Image)
	b = append(b, `,"command":`...)
	b = appendJSONStrings(b, s.Command)
	b = append(b, `,"env":`...)
	if env != nil {
		b = appendJSONEnv(b, env)
	} else {
		b = appendJSONStrings(b, s.Env)
	}
	b = append(b, `,"hostname":`...)
	b = appendJSONString(b, s.Hostname)
	b = append(b, `,"ports":`...)
	ports, err := s.Ports.MarshalJSON()
	if err != nil {
		return b, false
	}
	b = append(b, ports...)
	b = append(b, `,"volumes":`...)
	if s.Volumes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, v := range s.Volumes {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"source":`...)
			b = appendJSONString(b, v.Source)
			b = append(b, `,"target":`...)
			b = appendJSONString(b, v.Target)
			if v.Mode != "" {
				b = append(b, `,"mode":`...)
				b = appendJSONString(b, v.Mode)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"container_volumes":`...)
	b = appendJSONStrings(b, s.ContainerVolumes)
	b = append(b, `,"volumes_from":`...)
	b = appendJSONStrings(b, s.VolumesFrom)
	b = append(b, `,"links":`...)
	b = appendJSONMap(b, s.Links)
	b = append(b, `,"user":`...)
	b = appendJSONString(b, s.User)
	b = append(b, `,"privileged":`...)
	b = strconv.AppendBool(b, s.Privileged)
	b = append(b, `,"cap_add":`...)
	b = appendJSONStrings(b, s.CapAdd)
	b = append(b, `,"cap_drop":`...)
	b = appendJSONStrings(b, s.CapDrop)
	b = append(b, `,"extra_hosts":`...)
	b = appendJSONMap(b, s.ExtraHosts)
	b = append(b, `,"net":`...)
	b = appendJSONString(b, s.Net)
	b = append(b, `,"restart":{"name":`...)
	b = appendJSONString(b, s.Restart.Name)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(s.Restart.MaxRetries), 10)
	b = append(b, `},"dns":`...)
	b = appendJSONStrings(b, s.DNS)
	b = append(b, `,"stop_timeout":`...)
	b = strconv.AppendInt(b, int64(s.StopTimeout), 10)
	b = append(b, `,"limits":{`...)
	first := true
	for _, l := range [...]struct {
		key string
		v   int64
	}{{"memory", s.Limits.Memory}, {"swap", s.Limits.Swap}, {"cpu", s.Limits.CPUShares}, {"cpu_millis", s.Limits.CPUMillis}} {
		if l.v == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, l.key...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, l.v, 10)
	}
	b = append(b, `},"log_driver":`...)
	b = appendJSONString(b, s.LogDriver)
	b = append(b, `,"log_opt":`...)
	b = appendJSONMap(b, s.LogOpt)
	b = append(b, `,"workdir":`...)
	b = appendJSONString(b, s.Workdir)
	b = append(b, `,"security_opt":`...)
	b = appendJSONStrings(b, s.SecurityOpt)
	b = append(b, `,"ulimits":`...)
	if s.Ulimits == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, u := range s.Ulimits {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, u.Name)
			b = append(b, `,"soft":`...)
			b = strconv.AppendInt(b, u.Soft, 10)
			b = append(b, `,"hard":`...)
			b = strconv.AppendInt(b, u.Hard, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"labels":`...)
	b = appendJSONMap(b, s.Labels)
	return append(b, '}'), true
}

// appendJSONString appends s as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	if plainJSON(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendJSONEnv appends env.List() as encoding/json writes it.
func appendJSONEnv(b []byte, env Env) []byte {
	b = append(b, '[')
	for i, v := range env {
		if i > 0 {
			b = append(b, ',')
		}
		if !plainJSON(v.Name) || !v.Unset && !plainJSON(v.Value) {
			if v.Unset {
				b = appendJSONString(b, v.Name)
			} else {
				b = appendJSONString(b, v.Name+"="+v.Value)
			}
			continue
		}
		b = append(b, '"')
		b = append(b, v.Name...)
		if !v.Unset {
			b = append(b, '=')
			b = append(b, v.Value...)
		}
		b = append(b, '"')
	}
	return append(b, ']')
}

// appendJSONStrings appends a list of strings as encoding/json writes it.
func appendJSONStrings(b []byte, list []string) []byte {
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONMap appends a map of strings as encoding/json writes it, keys
// sorted.
func appendJSONMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}
