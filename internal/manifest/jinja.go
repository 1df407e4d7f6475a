package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// The template engine is gonja, brought closer to Python's Jinja2 (what
// MaestroNG renders with) where MaestroNG files rely on it:
//
//   - a list or dict given a name with set is one shared object, so that
//     append, extend, insert, pop, remove and update change it from any
//     scope, a for loop's included (MaestroNG's zookeeper+kafka example
//     builds ZOOKEEPER_SERVER_IDS so);
//   - a dict literal keeps its insertion order in keys(), values(),
//     items() and update();
//   - str.replace takes its optional count, and str.split() with no
//     separator splits on runs of whitespace;
//   - str.lstrip(), rstrip() and strip() with no argument strip
//     whitespace, and rsplit takes its maxsplit;
//   - dictsort sorts dict literals too, the format filter formats as
//     Python's % does, and round rounds half to even, as Python's round.

// jinjaSets are the control structures: gonja's, with set replaced.
var jinjaSets = sync.OnceValue(func() *exec.ControlStructureSet {
	cs := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{})
	cs.Update(builtins.ControlStructures)
	inner, _ := builtins.ControlStructures.Get("set")
	_ = cs.Replace("set", func(p, args *parser.Parser) (nodes.ControlStructure, error) {
		name := ""
		if t := args.Current(tokens.Name); t != nil && args.Peek(tokens.Assign) != nil {
			name = t.Val
		}
		node, err := inner(p, args)
		if err != nil {
			return nil, err
		}
		cs, ok := node.(exec.ControlStructure)
		if !ok || name == "" {
			return node, nil
		}
		return &sharedSet{ControlStructure: cs, name: name}, nil
	})
	return cs
})

// sharedSet is {% set name = expr %} keeping a list or dict as one
// value that every scope sees, as Python's objects are.
type sharedSet struct {
	exec.ControlStructure
	name string
}

func (s *sharedSet) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	if err := s.ControlStructure.Execute(r, tag); err != nil {
		return err
	}
	v, ok := r.Environment.Context.Get(s.name)
	if _, shared := v.(*exec.Value); !ok || shared {
		return nil
	}
	if val := exec.ToValue(v); val.IsList() || val.IsDict() {
		r.Environment.Context.Set(s.name, val)
	}
	return nil
}

// jinjaMethods are gonja's methods with the Python behaviour above.
var jinjaMethods = sync.OnceValue(func() exec.Methods {
	m := builtins.Methods
	m.Str = extendMethods(m.Str, strMethodNames, map[string]exec.Method[string]{
		"replace": strReplace,
		"split":   strSplit,
		"rsplit":  strRSplit,
		"strip":   strStrip(strings.Trim),
		"lstrip":  strStrip(strings.TrimLeft),
		"rstrip":  strStrip(strings.TrimRight),
	})
	m.List = extendMethods(m.List, listMethodNames, map[string]exec.Method[[]any]{
		"extend": listExtend,
		"insert": listInsert,
		"pop":    listPop,
		"remove": listRemove,
		"index":  listIndex,
		"count":  listCount,
	})
	m.Dict = extendMethods(m.Dict, dictMethodNames, map[string]exec.Method[map[string]any]{
		"keys":   func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) { return dictView(self, a, 0) },
		"values": func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) { return dictView(self, a, 1) },
		"items":  func(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) { return dictView(self, a, 2) },
		"update": dictUpdate,
	})
	return m
})

// The names of gonja's own methods, kept beside the ones above.
var (
	strMethodNames = []string{"capitalize", "capwords", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find",
		"format", "format_map", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isprintable",
		"isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
		"rfind", "rjust", "rpartition", "splitlines", "startswith", "swapcase", "title", "upper", "zfill"}
	listMethodNames = []string{"append", "reverse", "copy"}
	dictMethodNames = []string{"get", "pop", "setdefault", "copy", "clear"}
)

func extendMethods[I any](base *exec.MethodSet[I], keep []string, add map[string]exec.Method[I]) *exec.MethodSet[I] {
	all := map[string]exec.Method[I]{}
	for _, name := range keep {
		if m, ok := base.Get(name); ok {
			all[name] = m
		}
	}
	for name, m := range add {
		all[name] = m
	}
	return exec.NewMethodSet(all)
}

// jinjaFilters are gonja's filters with dictsort for dict literals.
var jinjaFilters = sync.OnceValue(func() *exec.FilterSet {
	f := exec.NewFilterSet(map[string]exec.FilterFunction{})
	f.Update(builtins.Filters)
	_ = f.Replace("dictsort", filterDictSort)
	_ = f.Replace("format", filterFormat)
	_ = f.Replace("round", filterRound)
	return f
})

// jinjaEnvironment is gonja's default environment with the behaviour
// above and the given context.
func jinjaEnvironment(ctx *exec.Context) *exec.Environment {
	env := *gonja.DefaultEnvironment
	env.Context = ctx
	env.ControlStructures = jinjaSets()
	env.Methods = jinjaMethods()
	env.Filters = jinjaFilters()
	return &env
}

func strReplace(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
	var old, repl string
	count := -1
	if err := a.Take(
		exec.PositionalArgument("old", nil, exec.StringArgument(&old)),
		exec.PositionalArgument("new", nil, exec.StringArgument(&repl)),
		exec.PositionalArgument("count", exec.AsValue(-1), exec.IntArgument(&count)),
	); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	return strings.Replace(self, old, repl, count), nil
}

func strSplit(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
	sep, maxsplit, err := splitArgs(a)
	if err != nil {
		return nil, err
	}
	return pySplit(self, sep, maxsplit), nil
}

// splitArgs takes str.split's and str.rsplit's arguments: sep (nil for
// runs of whitespace, never empty) and maxsplit (-1: no limit).
func splitArgs(a *exec.VarArgs) (*exec.Value, int, error) {
	sep := exec.AsValue(nil)
	maxsplit := -1
	if err := a.Take(
		exec.PositionalArgument("sep", exec.AsValue(nil), func(v *exec.Value) error { sep = v; return nil }),
		exec.PositionalArgument("maxsplit", exec.AsValue(-1), exec.IntArgument(&maxsplit)),
	); err != nil {
		return nil, 0, exec.ErrInvalidCall(err)
	}
	if !sep.IsNil() && sep.String() == "" {
		return nil, 0, exec.ErrInvalidCall(errors.New("empty separator"))
	}
	return sep, maxsplit, nil
}

// pySplit is Python's str.split.
func pySplit(self string, sep *exec.Value, maxsplit int) []string {
	if !sep.IsNil() {
		if maxsplit < 0 {
			return strings.Split(self, sep.String())
		}
		return strings.SplitN(self, sep.String(), maxsplit+1)
	}
	// Runs of whitespace, none at either end, at most maxsplit.
	var out []string
	rest := strings.TrimLeft(self, pyWhitespace)
	for rest != "" {
		if maxsplit >= 0 && len(out) == maxsplit {
			out = append(out, rest)
			break
		}
		i := strings.IndexAny(rest, pyWhitespace)
		if i < 0 {
			out = append(out, rest)
			break
		}
		out = append(out, rest[:i])
		rest = strings.TrimLeft(rest[i:], pyWhitespace)
	}
	return out
}

// setList replaces the list a method was called on.
func setList(self *exec.Value, list []any) { *self = *exec.AsValue(list) }

func listExtend(list []any, self *exec.Value, a *exec.VarArgs) (any, error) {
	var items *exec.Value
	if err := a.Take(exec.PositionalArgument("iterable", nil, func(v *exec.Value) error { items = v; return nil })); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	out := slices.Clone(list)
	// Iterate hands out a list's elements and a dict's keys as keys.
	items.Iterate(func(_, _ int, k, _ *exec.Value) bool {
		out = append(out, k.Interface())
		return true
	}, func() {})
	setList(self, out)
	return exec.None, nil
}

func listInsert(list []any, self *exec.Value, a *exec.VarArgs) (any, error) {
	var i int
	var x *exec.Value
	if err := a.Take(
		exec.PositionalArgument("index", nil, exec.IntArgument(&i)),
		exec.PositionalArgument("object", nil, func(v *exec.Value) error { x = v; return nil }),
	); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	n := len(list)
	if i < 0 {
		i = max(i+n, 0)
	}
	i = min(i, n)
	setList(self, slices.Insert(slices.Clone(list), i, x.Interface()))
	return exec.None, nil
}

func listPop(list []any, self *exec.Value, a *exec.VarArgs) (any, error) {
	i := -1
	if err := a.Take(exec.PositionalArgument("index", exec.AsValue(-1), exec.IntArgument(&i))); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	n := len(list)
	if n == 0 {
		return nil, errors.New("pop from empty list")
	}
	if i < 0 {
		i += n
	}
	if i < 0 || i >= n {
		return nil, errors.New("pop index out of range")
	}
	x := list[i]
	setList(self, slices.Delete(slices.Clone(list), i, i+1))
	return x, nil
}

// find returns the index of the first element equal to x, as Python's ==.
func find(list []any, x *exec.Value) int {
	for i, e := range list {
		if exec.ToValue(e).EqualValueTo(x) {
			return i
		}
	}
	return -1
}

func listRemove(list []any, self *exec.Value, a *exec.VarArgs) (any, error) {
	var x *exec.Value
	if err := a.Take(exec.PositionalArgument("value", nil, func(v *exec.Value) error { x = v; return nil })); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	i := find(list, x)
	if i < 0 {
		return nil, errors.New("list.remove(x): x not in list")
	}
	setList(self, slices.Delete(slices.Clone(list), i, i+1))
	return exec.None, nil
}

func listIndex(list []any, _ *exec.Value, a *exec.VarArgs) (any, error) {
	var x *exec.Value
	if err := a.Take(exec.PositionalArgument("value", nil, func(v *exec.Value) error { x = v; return nil })); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	i := find(list, x)
	if i < 0 {
		return nil, fmt.Errorf("%s is not in list", x.String())
	}
	return i, nil
}

func listCount(list []any, _ *exec.Value, a *exec.VarArgs) (any, error) {
	var x *exec.Value
	if err := a.Take(exec.PositionalArgument("value", nil, func(v *exec.Value) error { x = v; return nil })); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	n := 0
	for _, e := range list {
		if exec.ToValue(e).EqualValueTo(x) {
			n++
		}
	}
	return n, nil
}

// dictPairs returns a dict's pairs in their order: a dict literal's as
// written (and updated), a Go map's sorted by key.
func dictPairs(v *exec.Value) []*exec.Pair {
	if d, ok := v.Interface().(*exec.Dict); ok {
		return d.Pairs
	}
	var out []*exec.Pair
	for _, k := range v.Keys() {
		item, _ := v.GetItem(k.Interface())
		out = append(out, &exec.Pair{Key: k, Value: item})
	}
	return out
}

// dictView is keys() (0), values() (1) or items() (2) in the dict's order.
func dictView(self *exec.Value, a *exec.VarArgs, what int) (any, error) {
	if err := a.Take(); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	var out []any
	for _, p := range dictPairs(self) {
		switch what {
		case 0:
			out = append(out, p.Key.Interface())
		case 1:
			out = append(out, p.Value.Interface())
		default:
			out = append(out, exec.Tuple{p.Key, p.Value})
		}
	}
	return out, nil
}

// dictUpdate is dict.update: existing keys keep their place, new ones go
// last; the dict the method was called on changes.
func dictUpdate(_ map[string]any, self *exec.Value, a *exec.VarArgs) (any, error) {
	if len(a.Args) > 1 {
		return nil, exec.ErrInvalidCall(errors.New("update expected at most 1 argument"))
	}
	pairs := slices.Clone(dictPairs(self))
	set := func(k, v *exec.Value) {
		for i, p := range pairs {
			if p.Key.EqualValueTo(k) {
				pairs[i] = &exec.Pair{Key: p.Key, Value: v}
				return
			}
		}
		pairs = append(pairs, &exec.Pair{Key: k, Value: v})
	}
	if len(a.Args) == 1 {
		other := a.Args[0]
		if !other.IsDict() {
			return nil, exec.ErrInvalidCall(fmt.Errorf("update expected a dict, got %s", other.String()))
		}
		for _, p := range dictPairs(other) {
			set(p.Key, p.Value)
		}
	}
	keys := make([]string, 0, len(a.KwArgs))
	for k := range a.KwArgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		set(exec.AsValue(k), a.KwArgs[k])
	}
	*self = *exec.AsValue(&exec.Dict{Pairs: pairs})
	return exec.None, nil
}

// filterDictSort is Jinja2's dictsort: (key, value) pairs sorted by key
// or value, case-insensitively unless case_sensitive.
func filterDictSort(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	caseSensitive, by, reverse := false, "key", false
	if err := params.Take(
		exec.KeywordArgument("case_sensitive", exec.AsValue(false), func(v *exec.Value) error { caseSensitive = v.IsTrue(); return nil }),
		exec.KeywordArgument("by", exec.AsValue("key"), exec.StringArgument(&by)),
		exec.KeywordArgument("reverse", exec.AsValue(false), func(v *exec.Value) error { reverse = v.IsTrue(); return nil }),
	); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	if by != "key" && by != "value" {
		return exec.AsValue(errors.New("You can only sort by either 'key' or 'value'"))
	}
	if !in.IsDict() {
		return exec.AsValue(fmt.Errorf("dictsort expects a dict, got %s", in.String()))
	}
	pairs := slices.Clone(dictPairs(in))
	sortKey := func(p *exec.Pair) *exec.Value {
		v := p.Key
		if by == "value" {
			v = p.Value
		}
		if v.IsString() && !caseSensitive {
			return exec.AsValue(strings.ToLower(v.String()))
		}
		return v
	}
	slices.SortStableFunc(pairs, func(x, y *exec.Pair) int {
		a, b := sortKey(x), sortKey(y)
		c := 0
		switch {
		case a.IsNumber() && b.IsNumber():
			c = cmp.Compare(a.Float(), b.Float())
		default:
			c = cmp.Compare(a.String(), b.String())
		}
		if reverse {
			return -c
		}
		return c
	})
	out := make([]any, len(pairs))
	for i, p := range pairs {
		out[i] = exec.Tuple{p.Key, p.Value}
	}
	return exec.AsValue(out)
}

// pyWhitespace is what Python's str methods strip and split at.
const pyWhitespace = " \t\n\r\v\f"

// strStrip is str.strip, lstrip or rstrip: whitespace, or the characters
// given.
func strStrip(trim func(string, string) string) exec.Method[string] {
	return func(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
		chars := exec.AsValue(nil)
		if err := a.Take(exec.PositionalArgument("chars", exec.AsValue(nil), func(v *exec.Value) error { chars = v; return nil })); err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		if chars.IsNil() {
			return trim(self, pyWhitespace), nil
		}
		return trim(self, chars.String()), nil
	}
}

// strRSplit is str.rsplit: at most maxsplit splits, from the right.
func strRSplit(self string, _ *exec.Value, a *exec.VarArgs) (any, error) {
	sep, maxsplit, err := splitArgs(a)
	if err != nil {
		return nil, err
	}
	if maxsplit < 0 {
		return pySplit(self, sep, maxsplit), nil
	}
	var out []string
	rest := self
	if sep.IsNil() {
		// Runs of whitespace from the right; what is left keeps its
		// leading whitespace.
		rest = strings.TrimRight(rest, pyWhitespace)
		for rest != "" && len(out) < maxsplit {
			i := strings.LastIndexAny(rest, pyWhitespace)
			out = append(out, rest[i+1:])
			rest = strings.TrimRight(rest[:max(i, 0)], pyWhitespace)
		}
		if rest != "" {
			out = append(out, rest)
		}
		slices.Reverse(out)
		return out, nil
	}
	for len(out) < maxsplit {
		i := strings.LastIndex(rest, sep.String())
		if i < 0 {
			break
		}
		out = append(out, rest[i+len(sep.String()):])
		rest = rest[:i]
	}
	out = append(out, rest)
	slices.Reverse(out)
	return out, nil
}

// filterFormat is Jinja2's format filter: Python's printf-style %, with
// the arguments as a tuple, or the keyword arguments as a mapping.
func filterFormat(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var out string
	var err error
	switch {
	case len(params.Args) > 0 && len(params.KwArgs) > 0:
		err = errors.New("can't handle positional and keyword arguments at the same time")
	case len(params.KwArgs) > 0:
		mapping := make(map[string]any, len(params.KwArgs))
		for k, v := range params.KwArgs {
			mapping[k] = v
		}
		out, err = exec.PercentFormat(in.String(), exec.AsValue(mapping))
	default:
		out, err = exec.PercentFormatArgs(in.String(), params.Args)
	}
	if err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(out)
}

// filterRound is Jinja2's round: common rounds half to even, as Python's
// round does (on the exact binary value), floor and ceil as named.
func filterRound(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	precision, method := 0, "common"
	if err := params.Take(
		exec.KeywordArgument("precision", exec.AsValue(0), exec.IntArgument(&precision)),
		exec.KeywordArgument("method", exec.AsValue("common"), exec.StringArgument(&method)),
	); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	v := in.Float()
	factor := math.Pow(10, float64(precision))
	switch method {
	case "common":
		r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', precision, 64), 64)
		return exec.AsValue(r)
	case "floor":
		return exec.AsValue(math.Floor(v*factor) / factor)
	case "ceil":
		return exec.AsValue(math.Ceil(v*factor) / factor)
	}
	return exec.AsValue(fmt.Errorf("method must be common, floor or ceil, got %q", method))
}
