package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks a parsed YAML document and collects every problem it meets,
// each located by line, column and YAML path.
type decoder struct {
	file     string
	rendered bool
	strict   bool
	errs     Errors
	seen     map[string]bool // de-duplicates problems met twice through aliases
	// keys pairs value nodes with their key nodes, in the order mappings
	// were decoded, to locate "missing key" errors (see keyOf).
	keys []nodeKey
	// parent is the decoder of the whole environment when this one
	// decodes a part of it (builder.part); it is not changed meanwhile.
	parent *decoder
}

// nodeKey is a value node of a mapping and its key node.
type nodeKey struct{ v, k *yaml.Node }

// keyOf returns the key node of the value node n, as the mapping decoded
// last that holds n gave it.
func (d *decoder) keyOf(n *yaml.Node) (*yaml.Node, bool) {
	for ; d != nil; d = d.parent {
		for i := len(d.keys) - 1; i >= 0; i-- {
			if d.keys[i].v == n {
				return d.keys[i].k, true
			}
		}
	}
	return nil, false
}

// adopt takes the problems and mapping keys the decoders of parts of the
// environment found, in the order of the parts, as if d had found them.
func (d *decoder) adopt(parts ...*decoder) {
	n := 0
	for _, p := range parts {
		n += len(p.keys)
	}
	d.keys = slices.Grow(d.keys, n)
	for _, p := range parts {
		for _, e := range p.errs {
			d.keep(e)
		}
		d.keys = append(d.keys, p.keys...)
	}
}

func (d *decoder) report(sev Severity, n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...), Severity: sev, Rendered: d.rendered}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.keep(e)
}

// keep adds e to the problems found, unless the same one was found
// before.
func (d *decoder) keep(e *Error) {
	key := e.Error()
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	if d.seen[key] {
		return
	}
	d.seen[key] = true
	d.errs = append(d.errs, e)
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.report(SeverityError, n, path, format, args...)
}

func (d *decoder) warnf(n *yaml.Node, path, format string, args ...any) {
	d.report(SeverityWarning, n, path, format, args...)
}

// entry is one key/value pair of a YAML mapping.
type entry struct {
	Key  string
	K, V *yaml.Node
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		}
		return fmt.Sprintf("the string %q", n.Value)
	}
	return "a document"
}

// mapping returns the entries of a mapping node in order, with YAML merge
// keys (<<) applied and duplicate keys reported. A null node is an empty
// mapping. ok is false when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, path string) (entries []entry, ok bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return nil, false
	}
	// Duplicate keys are found by a scan of entries in a small mapping,
	// by index in a large one.
	var index map[string]int
	if len(n.Content) > 32 {
		index = make(map[string]int, len(n.Content)/2)
	}
	find := func(key string) (int, bool) {
		if index != nil {
			j, ok := index[key]
			return j, ok
		}
		for j := range entries {
			if entries[j].Key == key {
				return j, true
			}
		}
		return 0, false
	}
	if len(n.Content) > 0 {
		entries = make([]entry, 0, len(n.Content)/2)
	}
	var merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		rk := resolve(k)
		if rk.Kind != yaml.ScalarNode {
			d.errorf(k, path, "mapping keys must be scalars, got %s", kindName(k))
			continue
		}
		if rk.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeEntries(v, path)...)
			continue
		}
		key := rk.Value
		if j, dup := find(key); dup {
			d.errorf(k, join(path, key), "duplicate key %q (first defined at line %d)", key, entries[j].K.Line)
			continue
		}
		if index != nil {
			index[key] = len(entries)
		}
		entries = append(entries, entry{Key: key, K: k, V: v})
		d.keys = append(d.keys, nodeKey{resolve(v), k})
	}
	for _, e := range merged {
		if _, exists := find(e.Key); !exists {
			if index != nil {
				index[e.Key] = len(entries)
			}
			entries = append(entries, e)
		}
	}
	return entries, true
}

// mergeEntries returns the entries a merge key (<<) brings in: one mapping
// or a list of mappings, earlier ones winning.
func (d *decoder) mergeEntries(v *yaml.Node, path string) []entry {
	v = resolve(v)
	var sources []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{v}
	case yaml.SequenceNode:
		sources = v.Content
	default:
		d.errorf(v, path, "a merge key (<<) needs a mapping or a list of mappings, got %s", kindName(v))
		return nil
	}
	var out []entry
	seen := map[string]bool{}
	for _, s := range sources {
		es, ok := d.mapping(s, path)
		if !ok {
			continue
		}
		for _, e := range es {
			if !seen[e.Key] {
				seen[e.Key] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// fields is a mapping whose keys are known in advance.
type fields struct {
	path    string
	node    *yaml.Node
	entries []entry
	// index finds entries by key in a large mapping; a small one is
	// scanned.
	index map[string]int
}

// fields decodes a mapping with known keys; unknown keys are warnings,
// except keys starting with "_" or "x-" at places where extras are allowed.
func (d *decoder) fields(n *yaml.Node, path string, known []string) (*fields, bool) {
	entries, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	f := &fields{path: path, node: resolve(n), entries: entries}
	if len(entries) > 16 {
		f.index = make(map[string]int, len(entries))
	}
	for i, e := range entries {
		if f.index != nil {
			f.index[e.Key] = i
		}
		if !slices.Contains(known, e.Key) && !(path == "" && (strings.HasPrefix(e.Key, "_") || strings.HasPrefix(e.Key, "x-"))) {
			msg := fmt.Sprintf("unknown key %q is ignored", e.Key)
			if d.strict {
				msg = fmt.Sprintf("unknown key %q", e.Key)
			}
			if s := suggest(e.Key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.warnf(e.K, join(path, e.Key), "%s", msg)
		}
	}
	return f, true
}

// find returns the entry of key.
func (f *fields) find(key string) (entry, bool) {
	if f.index != nil {
		i, ok := f.index[key]
		if !ok {
			return entry{}, false
		}
		return f.entries[i], true
	}
	for _, e := range f.entries {
		if e.Key == key {
			return e, true
		}
	}
	return entry{}, false
}

// byKey returns the entry of key, or the zero entry.
func (f *fields) byKey(key string) entry {
	e, _ := f.find(key)
	return e
}

func (f *fields) get(key string) (entry, bool) {
	e, ok := f.find(key)
	if ok && isNull(e.V) {
		return e, false
	}
	return e, ok
}

func (f *fields) has(key string) bool {
	_, ok := f.find(key)
	return ok
}

// sub returns the YAML path of a key of f.
func (f *fields) sub(key string) string { return join(f.path, key) }

// scalar returns the text of a non-null scalar.
func (d *decoder) scalar(n *yaml.Node, path, what string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.errorf(n, path, "expected %s, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// str decodes a string field; numbers are taken as their text.
func (d *decoder) str(f *fields, key string) (string, bool) {
	e, ok := f.get(key)
	if !ok {
		return "", false
	}
	s, ok := d.scalar(e.V, f.sub(key), "a string")
	return s, ok
}

// required reports a missing key.
func (d *decoder) required(f *fields, key, what string) (entry, bool) {
	e, ok := f.get(key)
	if !ok {
		n := f.node
		if k, found := d.keyOf(f.node); found {
			n = k
		}
		if f.has(key) {
			n = e.K
		}
		d.errorf(n, f.sub(key), "missing required %s", what)
	}
	return e, ok
}

// boolean decodes a boolean, accepting YAML 1.1 spellings (yes/no/on/off)
// as MaestroNG did.
func (d *decoder) boolean(f *fields, key string) (bool, bool) {
	e, ok := f.get(key)
	if !ok {
		return false, false
	}
	v := resolve(e.V)
	b, ok := parseBool(v)
	if !ok {
		if _, plain := parseBool(&yaml.Node{Kind: yaml.ScalarNode, Value: v.Value}); plain && v.Kind == yaml.ScalarNode {
			d.errorf(e.V, f.sub(key), "expected true or false, got the quoted string %q: remove the quotes", v.Value)
		} else {
			d.errorf(e.V, f.sub(key), "expected true or false, got %s", kindName(e.V))
		}
	}
	return b, ok
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "true", "yes", "on":
		return true, n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0
	case "false", "no", "off":
		return false, n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0
	}
	return false, false
}

// integer decodes an integer; digit strings are accepted as MaestroNG's
// int() conversion does.
func (d *decoder) integer(f *fields, key string) (int64, bool) {
	e, ok := f.get(key)
	if !ok {
		return 0, false
	}
	return d.intNode(e.V, f.sub(key))
}

func (d *decoder) intNode(n *yaml.Node, path string) (int64, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!str") {
		var v int64
		if err := n.Decode(&v); err == nil {
			return v, true
		}
		if v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64); err == nil {
			return v, true
		}
	}
	d.errorf(n, path, "expected an integer, got %s", kindName(n))
	return 0, false
}

// number decodes an integer or a decimal number.
func (d *decoder) number(f *fields, key string) (float64, bool) {
	e, ok := f.get(key)
	if !ok {
		return 0, false
	}
	n := resolve(e.V)
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64); err == nil {
			return v, true
		}
	}
	d.errorf(n, f.sub(key), "expected a number, got %s", kindName(n))
	return 0, false
}

// stringList decodes a string or a list of strings; a single string is a
// one-element list.
func (d *decoder) stringList(f *fields, key string) ([]string, bool) {
	e, ok := f.get(key)
	if !ok {
		return nil, false
	}
	return d.stringListNode(e.V, f.sub(key))
}

func (d *decoder) stringListNode(n *yaml.Node, path string) ([]string, bool) {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return nil, true
		}
		return []string{n.Value}, true
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		good := true
		for i, c := range n.Content {
			s, ok := d.scalar(c, fmt.Sprintf("%s[%d]", path, i), "a string")
			if ok {
				out = append(out, s)
			}
			good = good && ok
		}
		return out, good
	}
	d.errorf(n, path, "expected a string or a list of strings, got %s", kindName(n))
	return nil, false
}

// stringMap decodes a mapping of scalars to strings.
func (d *decoder) stringMap(f *fields, key string) (map[string]string, bool) {
	e, ok := f.get(key)
	if !ok {
		return nil, false
	}
	entries, ok := d.mapping(e.V, f.sub(key))
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(entries))
	for _, en := range entries {
		v := resolve(en.V)
		if isNull(v) {
			out[en.Key] = ""
			continue
		}
		if s, ok := d.scalar(v, join(f.sub(key), en.Key), "a string"); ok {
			out[en.Key] = s
		}
	}
	return out, true
}

// join appends a key to a YAML path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// aliases maps names that users of other tools write to the MaestroNG key
// they mean.
var aliases = map[string]string{
	"environment": "env",
	"depends_on":  "requires",
	"depends":     "requires",
	"max_retries": "retries",
	"volume":      "volumes",
	"port":        "ports",
	"user":        "username",
	"working_dir": "workdir",
	"entrypoint":  "command",
}

// suggest returns the known key that key is most likely a typo of, or "".
func suggest(key string, known []string) string {
	lower := strings.ToLower(key)
	best, bestDist := "", -1
	consider := func(candidate, target string) {
		if !slices.Contains(known, target) {
			return
		}
		if d := levenshtein(lower, candidate); bestDist < 0 || d < bestDist {
			best, bestDist = target, d
		}
	}
	for _, k := range known {
		consider(k, k)
	}
	for _, a := range sortedKeys(aliases) {
		consider(a, aliases[a])
	}
	if bestDist < 0 || bestDist > 1+len(lower)/4 {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func itoa(i int) string { return strconv.Itoa(i) }

// maxExpandedNodes bounds a document's size with aliases expanded, so that
// a small file of nested aliases cannot make loading take forever.
const maxExpandedNodes = 2_000_000

// countNodes adds the nodes of the tree under n to count, stopping at the
// first alias.
func countNodes(n *yaml.Node, count int) (int, bool) {
	if n.Kind == yaml.AliasNode {
		return count, true
	}
	count++
	for _, c := range n.Content {
		var aliased bool
		if count, aliased = countNodes(c, count); aliased {
			return count, true
		}
	}
	return count, false
}

// checkAliases returns the first alias that refers to one of its own
// ancestors, or that makes the expanded document too large.
func checkAliases(root *yaml.Node) (*yaml.Node, string) {
	if n, aliased := countNodes(root, 0); !aliased && n <= maxExpandedNodes {
		return nil, "" // a tree without aliases is its own expansion
	}
	size := map[*yaml.Node]int{}
	onPath := map[*yaml.Node]bool{}
	var bad *yaml.Node
	var msg string
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if bad != nil {
			return 0
		}
		if n.Kind == yaml.AliasNode {
			if onPath[n.Alias] {
				bad, msg = n, fmt.Sprintf("alias *%s refers to a node that contains it", n.Value)
				return 0
			}
			return walk(n.Alias)
		}
		if s, ok := size[n]; ok {
			return s
		}
		onPath[n] = true
		s := 1
		for _, c := range n.Content {
			s += walk(c)
			if s > maxExpandedNodes && bad == nil {
				bad, msg = n, fmt.Sprintf("the document has more than %d nodes once aliases are expanded", maxExpandedNodes)
			}
		}
		delete(onPath, n)
		size[n] = s
		return s
	}
	walk(root)
	return bad, msg
}
