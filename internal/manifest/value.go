package manifest

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	"gopkg.in/yaml.v3"
)

// ParseImage splits an image reference into repository and tag the way
// MaestroNG does: at the last colon, unless what follows it contains a slash
// (then the colon belonged to a registry port). A missing tag is "latest".
func ParseImage(image string) (repo, tag string) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i+1:], "/") {
		return image, "latest"
	}
	return image[:i], image[i+1:]
}

// imageRef is a loose check of an image reference: no whitespace, no
// upper-case repository, and something to pull.
var imageRef = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`)

func checkImage(image string) error {
	repo, tag := ParseImage(image)
	if image == "" {
		return fmt.Errorf("image must not be empty")
	}
	if strings.ContainsAny(image, " \t\n") {
		return fmt.Errorf("invalid image %q: it contains whitespace", image)
	}
	if strings.Contains(repo, "@") {
		// A digest reference: repository@sha256:hex.
		return nil
	}
	if !imageRef.MatchString(repo) || tag == "" {
		return fmt.Errorf("invalid image %q: expected [registry/]repository[:tag] with a lower-case repository", image)
	}
	return nil
}

// ToEnv turns a service, instance or port name into its form in environment
// variable names as MaestroNG does (Python 3's re.sub(r'[^\w]', '_',
// name).upper()): every character but a letter, a number or "_" becomes
// "_" (a combining accent too), then Unicode's full upper case mapping
// applies ("straße" becomes STRASSE, "ﬁ" FI).
func ToEnv(name string) string {
	if s, ok := asciiToEnv(name); ok {
		return s
	}
	ascii := true
	mapped := strings.Map(func(r rune) rune {
		if r >= utf8.RuneSelf {
			ascii = false
		}
		if r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) {
			return r
		}
		return '_'
	}, name)
	if ascii {
		return strings.ToUpper(mapped)
	}
	return cases.Upper(language.Und).String(mapped)
}

// asciiToEnv is ToEnv of an ASCII name, without allocating when the name
// is already in its form; false when name is not ASCII.
func asciiToEnv(name string) (string, bool) {
	same := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= utf8.RuneSelf:
			return "", false
		case c == '_' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
		default:
			same = false
		}
	}
	if same {
		return name, true
	}
	b := make([]byte, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case c == '_' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
		default:
			c = '_'
		}
		b[i] = c
	}
	return string(b), true
}

// parseSize parses a memory or swap size: an integer, or a string of digits
// with an optional k, m or g suffix (powers of 1024).
func parseSize(n *yaml.Node) (int64, error) {
	n = resolve(n)
	if isNull(n) {
		return 0, nil
	}
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		return 0, fmt.Errorf("invalid size: expected a number of bytes or a string such as 512m, got %s", kindName(n))
	}
	if n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err != nil {
			return 0, fmt.Errorf("invalid size %q", n.Value)
		}
		return v, nil
	}
	s := n.Value
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	num := s
	switch last := unicode.ToLower(rune(s[len(s)-1])); {
	case last == 'k':
		mult, num = 1<<10, s[:len(s)-1]
	case last == 'm':
		mult, num = 1<<20, s[:len(s)-1]
	case last == 'g':
		mult, num = 1<<30, s[:len(s)-1]
	case unicode.IsLetter(last):
		return 0, fmt.Errorf("unknown unit suffix %q in %q: use k, m or g", string(s[len(s)-1]), s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: expected an integer with an optional k, m or g suffix", s)
	}
	if v > math.MaxInt64/mult || v < math.MinInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return v * mult, nil
}

var restartNames = []string{"no", "always", "on-failure", "unless-stopped"}

// parseRestart parses a restart policy: "name[:retries]" or
// {name, retries}. maximum_retry_count, which MaestroNG's documentation
// shows, is accepted as a spelling of retries.
func (d *decoder) parseRestart(n *yaml.Node, path string) (RestartPolicy, bool) {
	n = resolve(n)
	rp := RestartPolicy{Name: "no"}
	if isNull(n) {
		return rp, true
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if b, ok := parseBool(n); ok && !b {
			return rp, true // YAML 1.1 `restart: no`
		}
		if n.ShortTag() != "!!str" {
			break
		}
		name, retries, hasRetries := strings.Cut(n.Value, ":")
		rp.Name = name
		if hasRetries {
			r, err := strconv.Atoi(retries)
			if err != nil || r < 0 {
				d.errorf(n, path, "invalid restart policy %q: expected name[:retries], e.g. on-failure:3", n.Value)
				return rp, false
			}
			rp.MaxRetries = r
		}
		return rp, d.checkRestart(rp, n, path)
	case yaml.MappingNode:
		known := []string{"name", "retries", "maximum_retry_count"}
		entries, ok := d.mapping(n, path)
		if !ok {
			return rp, false
		}
		for _, e := range entries {
			if !slices.Contains(known, e.Key) {
				msg := fmt.Sprintf("invalid restart policy: unknown key %q (keys: name, retries)", e.Key)
				if s := suggest(e.Key, known); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				d.errorf(e.K, join(path, e.Key), "%s", msg)
				return rp, false
			}
		}
		f, _ := d.fields(n, path, known)
		if name, ok := d.str(f, "name"); ok {
			rp.Name = name
		}
		key := "retries"
		if !f.has(key) && f.has("maximum_retry_count") {
			key = "maximum_retry_count"
		}
		if r, ok := d.integer(f, key); ok {
			rp.MaxRetries = int(r)
		}
		return rp, d.checkRestart(rp, n, path)
	}
	d.errorf(n, path, "invalid restart policy: expected a string such as on-failure:3 or {name, retries}, got %s", kindName(n))
	return rp, false
}

func (d *decoder) checkRestart(rp RestartPolicy, n *yaml.Node, path string) bool {
	known := false
	for _, r := range restartNames {
		known = known || r == rp.Name
	}
	switch {
	case !known:
		d.errorf(n, path, "invalid restart policy %q: choose one of %s", rp.Name, strings.Join(restartNames, ", "))
	case rp.MaxRetries < 0:
		d.errorf(n, path, "invalid restart policy: retries must not be negative")
	case rp.MaxRetries > 0 && rp.Name != "on-failure":
		d.errorf(n, path, "invalid restart policy: retries only apply to on-failure, not %s", rp.Name)
	default:
		return true
	}
	return false
}

// envString renders a scalar the way the container sees it under
// MaestroNG: Python's str() of the YAML value. ok is false for null.
func envString(n *yaml.Node) (s string, set bool) {
	if n.Style&^yaml.FlowStyle == 0 {
		if ts, ok := pythonTimestamp(n.Value); ok {
			return ts, true
		}
	}
	switch n.ShortTag() {
	case "!!null":
		return "", false
	case "!!bool":
		if b, _ := parseBool(n); b {
			return "True", true
		}
		return "False", true
	case "!!int":
		if strings.HasPrefix(strings.TrimLeft(n.Value, "+-"), "0o") {
			return n.Value, true // not a number in YAML 1.1
		}
		var v int64
		if err := n.Decode(&v); err == nil {
			return strconv.FormatInt(v, 10), true
		}
	case "!!float":
		if !yaml11Float.MatchString(n.Value) {
			return n.Value, true // e.g. 1e3: a string in YAML 1.1
		}
		var v float64
		if err := n.Decode(&v); err == nil {
			return pythonFloat(v), true
		}
	}
	return n.Value, true
}

// yaml11Timestamp is PyYAML's implicit timestamp: a plain scalar that
// matches it is a date or a datetime in MaestroNG.
var yaml11Timestamp = regexp.MustCompile(`^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|` +
	`([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?` +
	`(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?)$`)

// pythonTimestamp renders a YAML 1.1 timestamp as Python's str() of the
// datetime PyYAML makes of it (2001-12-14t21:59:43.10-05:00 becomes
// 2001-12-14 21:59:43.100000-05:00); a date alone is unchanged. ok is
// false for anything else, and for a date PyYAML would refuse.
func pythonTimestamp(s string) (string, bool) {
	m := yaml11Timestamp.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	if m[1] == "" {
		_, err := time.Parse(time.DateOnly, s)
		return s, err == nil
	}
	num := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	year, month, day, hour, minute, second := num(1), num(2), num(3), num(4), num(5), num(6)
	if t := time.Date(year, time.Month(month), day, hour, minute, second, 0, time.UTC); t.Day() != day || t.Hour() != hour || minute > 59 || second > 59 {
		return "", false // out of range: PyYAML fails
	}
	out := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", year, month, day, hour, minute, second)
	if frac := m[7]; frac != "" {
		frac = (frac + "000000")[:6]
		if frac != "000000" {
			out += "." + frac
		}
	}
	switch {
	case m[9] != "":
		h, mins := num(10), num(11)
		sign := m[9]
		switch {
		case h*60+mins >= 24*60:
			return "", false // out of range: PyYAML fails
		case h == 0 && mins == 0:
			sign = "+"
		}
		out += fmt.Sprintf("%s%02d:%02d", sign, h+mins/60, mins%60)
	case m[8] == "Z":
		out += "+00:00"
	}
	return out, true
}

// yaml11Float matches what YAML 1.1 (PyYAML) reads as a float: a dot is
// required and an exponent needs a sign.
var yaml11Float = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9.]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)

// pythonFloat formats f as Python's repr does.
func pythonFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		mant, ex, _ := strings.Cut(e, "e")
		sign := ex[0]
		digits := strings.TrimLeft(ex[1:], "0")
		if len(digits) < 2 {
			digits = strings.Repeat("0", 2-len(digits)) + digits
		}
		return mant + "e" + string(sign) + digits
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// flattenEnvList flattens a (nested) list of scalars and joins it with
// single spaces, as MaestroNG does for list-valued env vars.
func (d *decoder) flattenEnvList(n *yaml.Node, path string, out *[]string) bool {
	good := true
	for i, c := range n.Content {
		c = resolve(c)
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case c.Kind == yaml.SequenceNode:
			good = d.flattenEnvList(c, p, out) && good
		case c.Kind == yaml.ScalarNode && c.ShortTag() != "!!null":
			s, _ := envString(c)
			*out = append(*out, s)
		default:
			d.errorf(c, p, "env list items must be strings or numbers, got %s", kindName(c))
			good = false
		}
	}
	return good
}

// parseEnvFile reads a Docker env file: KEY=value per line, split at the
// first "="; lines starting with # are comments; nothing is trimmed or
// unquoted inside a line.
func parseEnvFile(name string, data []byte) ([]EnvVar, error) {
	var out []EnvVar
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("env file %s:%d: invalid line %q: expected NAME=value", name, i+1, redactLine(line))
		}
		out = append(out, EnvVar{Name: k, Value: v, FromFile: true})
	}
	return out, nil
}

// redactLine shortens a bad env file line so that an error never shows a
// whole secret.
func redactLine(line string) string {
	if len(line) > 12 {
		return line[:12] + "…"
	}
	return line
}

// cleanTarget checks a container path.
func cleanTarget(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("container path %q must be absolute", p)
	}
	return path.Clean(p), nil
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// checkSource checks a bind source: an absolute host path or a volume name.
func checkSource(s string) error {
	if strings.HasPrefix(s, "/") || volumeName.MatchString(s) {
		return nil
	}
	return fmt.Errorf("volume source %q must be an absolute host path or a volume name", s)
}
