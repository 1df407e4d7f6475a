package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// hasTemplate reports whether src contains Jinja2 syntax.
func hasTemplate(src []byte) bool {
	return bytes.Contains(src, []byte("{{")) || bytes.Contains(src, []byte("{%")) || bytes.Contains(src, []byte("{#"))
}

// fsLoader resolves template names (include, import, extends) relative to
// the manifest's directory, as MaestroNG's FileSystemLoader(base_dir) does.
type fsLoader struct {
	fsys    fs.FS
	dir     string
	rootID  string
	rootSrc []byte
	reads   int
}

// maxTemplateReads bounds includes, so that a template including itself
// fails instead of recursing forever.
const maxTemplateReads = 200

func (l *fsLoader) Read(name string) (io.Reader, error) {
	l.reads++
	if l.reads > maxTemplateReads {
		return nil, fmt.Errorf("more than %d template reads: is a template including itself?", maxTemplateReads)
	}
	if name == l.rootID {
		return bytes.NewReader(l.rootSrc), nil
	}
	if _, err := l.Resolve(name); err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(l.fsys, path.Join(l.dir, name))
	if err != nil {
		return nil, fmt.Errorf("template %q not found", name)
	}
	return bytes.NewReader(data), nil
}

// Resolve checks a template name; names stay relative to the manifest's
// directory (Read joins them), as Jinja2's FileSystemLoader does.
func (l *fsLoader) Resolve(name string) (string, error) {
	if name == l.rootID {
		return name, nil
	}
	if strings.HasPrefix(name, "/") || !fs.ValidPath(path.Join(l.dir, name)) || !fs.ValidPath(name) {
		return "", fmt.Errorf("template %q is outside the repository", name)
	}
	return name, nil
}

func (l *fsLoader) Inherit(string) (loaders.Loader, error) { return l, nil }

var silenceGonja sync.Once

var (
	// templatePos finds a position in a template engine error.
	templatePos = regexp.MustCompile(`Line[=:] ?(\d+),? Col[=:] ?(\d+)`)
	// templateLine finds a line number when no column is given.
	templateLine = regexp.MustCompile(`(?i)\bline[: =]+(\d+)`)
	// Messages of the template engine, reworded.
	filterMissing  = regexp.MustCompile(`filter '([^']*)' not found`)
	includeMissing = regexp.MustCompile(`unable to load template '([^']*)'.*: (template "[^"]*" (?:not found|is outside the repository))`)
	unclosedBlock  = regexp.MustCompile(`Unable to parse controlStructure "(\w+)": Unexpected EOF, expected tag ([\w ]+)`)
	parsePosition  = regexp.MustCompile(`\s*\(Line: \d+ Col: \d+, near "[^"]*"\)\.?`)
	// pythonError is an error the engine raises as Python would, named
	// by its exception (ZeroDivisionError: division by zero).
	pythonError = regexp.MustCompile(`\b[A-Z][A-Za-z]*Error: .*|integer too large: .*|repetition larger than .*`)
)

var (
	// includedAt finds an include in a template engine error: the
	// included file, then (after the include's own position) the error
	// in it.
	includedAt = regexp.MustCompile(`IncludeControlStructure\(Filename='([^']*)'[^)]*\): `)
	// innerLine finds the first line number of the rest of an error.
	innerLine = regexp.MustCompile(`(?:at line |Line[=:] ?)(\d+)`)
	// extendsTag finds a template's {% extends %}.
	extendsTag = regexp.MustCompile(`\{%-?\s*extends\s+["']([^"']+)["']`)
	// blockAt finds a block's position in a template engine error.
	blockAt = regexp.MustCompile(`BlockControlStructure\([^)]*\): `)
)

// templateError turns a template engine error into a located message: a
// line and column of the manifest (src), and the message. An error in an
// included file is at the include, naming the file and its line; an error
// in the template a manifest extends is at the {% extends %}, naming that
// file and line, and one in a block of the manifest at its line.
func templateError(err error, src []byte) (line, col int, msg string) {
	msg = err.Error()
	if m := templatePos.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		col, _ = strconv.Atoi(m[2])
	} else if m := templateLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	where := ""
	if ext := extendsTag.FindSubmatchIndex(src); ext != nil {
		// The engine runs the extended template: its positions are that
		// file's, except within a block the manifest defines.
		if bs := blockAt.FindAllStringIndex(msg, -1); bs != nil {
			line, col = 0, 1
			if m := innerLine.FindStringSubmatch(msg[bs[len(bs)-1][1]:]); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
		} else {
			where = string(src[ext[2]:ext[3]])
			if line > 0 {
				where += ":" + strconv.Itoa(line)
			}
			line = 1 + bytes.Count(src[:ext[0]], []byte("\n"))
			col = ext[0] - bytes.LastIndexByte(src[:ext[0]], '\n')
		}
	}
	if inc := includedAt.FindAllStringSubmatchIndex(msg, -1); inc != nil {
		last := inc[len(inc)-1]
		rest := msg[last[1]:]
		if !strings.HasPrefix(rest, "unable to load template") || strings.Contains(rest, "failed to parse template") {
			where = msg[last[2]:last[3]]
			if m := innerLine.FindStringSubmatch(rest); m != nil {
				where += ":" + m[1]
			}
		}
	}
	defer func() {
		if where != "" {
			msg = where + ": " + msg
		}
	}()
	switch {
	case filterMissing.MatchString(msg):
		msg = fmt.Sprintf("unknown filter %q", filterMissing.FindStringSubmatch(msg)[1])
	case includeMissing.MatchString(msg):
		m := includeMissing.FindStringSubmatch(msg)
		msg = fmt.Sprintf("include %q: %s", m[1], strings.TrimPrefix(m[2], fmt.Sprintf("template %q ", m[1])))
	case pythonError.MatchString(msg):
		msg = pythonError.FindString(msg)
	case unclosedBlock.MatchString(msg):
		m := unclosedBlock.FindStringSubmatch(msg)
		msg = fmt.Sprintf("{%% %s %%} block is never closed (expected %s before the end of the file)", m[1], strings.ReplaceAll(m[2], " or ", ", "))
	default:
		msg = parsePosition.ReplaceAllString(msg, "")
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "Unable to") {
			msg = msg[i+2:]
		}
		msg = strings.TrimPrefix(msg, "unable to execute template: ")
		if strings.HasPrefix(msg, "failed to parse template") {
			if i := strings.Index(msg, "': "); i >= 0 {
				msg = msg[i+3:]
			}
		}
	}
	return line, max(col, 1), strings.ReplaceAll(msg, "\n", " ")
}

// envReference finds references to process environment variables in a
// template, with whether a default filter follows.
var envReference = regexp.MustCompile(`env(?:\.(\w+)|\[\s*['"](\w+)['"]\s*\])(\s*\|\s*default\b)?`)

// envTest matches a test of whether a variable is set, after it.
var envTest = regexp.MustCompile(`^\s+is\s+(not\s+)?(defined|undefined|none)\b`)

// undefinedEnv reports, as warnings, references to environment variables
// that are not set and have no default: they render as empty strings.
func (d *decoder) undefinedEnv(src []byte, environ map[string]string) {
	for i, line := range strings.Split(string(src), "\n") {
		for _, m := range envReference.FindAllStringSubmatchIndex(line, -1) {
			name := ""
			if m[2] >= 0 {
				name = line[m[2]:m[3]]
			} else {
				name = line[m[4]:m[5]]
			}
			if _, set := environ[name]; set || m[6] >= 0 || name == "get" || envTest.MatchString(line[m[1]:]) {
				continue
			}
			if !strings.Contains(line[:m[0]], "{{") && !strings.Contains(line[:m[0]], "{%") {
				continue
			}
			d.errs = append(d.errs, &Error{File: d.file, Line: i + 1, Col: m[0] + 1, Severity: SeverityWarning,
				Msg: fmt.Sprintf("template: env.%s is not set and has no default: it renders as an empty string", name)})
		}
	}
}

// render renders a manifest as a Jinja2 template with one variable, env.
func render(fsys fs.FS, dir string, src []byte, environ map[string]string) (out []byte, line int, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, line, err = nil, 0, fmt.Errorf("template: cannot render: %v", r)
		}
	}()
	silenceGonja.Do(func() { gonja.SetLoggerOutput(io.Discard) })
	loader := &fsLoader{fsys: fsys, dir: dir, rootID: "\x00manifest", rootSrc: src}
	env := make(map[string]any, len(environ))
	for k, v := range environ {
		env[k] = v
	}
	budget := &renderBudget{deadline: time.Now().Add(RenderTimeout)}
	buf := &boundedWriter{budget: budget}
	tpl, err := exec.NewTemplate(loader.rootID, gonja.DefaultConfig, loader, budget.environment())
	if err == nil {
		err = budget.run(func() error { return tpl.Execute(buf, exec.NewContext(map[string]any{"env": env})) })
	}
	if be := (*budgetError)(nil); errors.As(err, &be) || err != nil && strings.Contains(err.Error(), budgetMark) {
		// Over a bound: say which, where the template was when known.
		line, col, msg := templateError(err, src)
		if be != nil {
			msg = be.msg
		} else if i := strings.Index(msg, budgetMark); i >= 0 {
			msg = msg[i+len(budgetMark):]
		}
		return nil, line, &locatedError{line: line, col: col, msg: "template: " + msg}
	}
	if err != nil {
		line, col, msg := templateError(err, src)
		return nil, line, &locatedError{line: line, col: col, msg: "template: " + msg}
	}
	out = buf.buf.Bytes()
	if bytes.HasSuffix(src, []byte("\n")) && !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, 0, nil
}

// locatedError is an error at a line and column of a template.
type locatedError struct {
	line, col int
	msg       string
}

func (e *locatedError) Error() string { return e.msg }

// RenderTemplate returns the text of a manifest after Jinja2 rendering and
// before YAML parsing: what line numbers of errors marked as rendered refer
// to.
func RenderTemplate(fsys fs.FS, src Source, environ map[string]string) ([]byte, error) {
	if src.Err != nil {
		return nil, fmt.Errorf("cannot read the manifest: %w", src.Err)
	}
	if !hasTemplate(src.Data) {
		return src.Data, nil
	}
	out, line, err := render(fsys, path.Dir(src.Name), src.Data, environ)
	if err != nil && line > 0 {
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	return out, err
}

// The bounds of one template render: a manifest is written by whoever can
// commit, and a loop that never ends or a text that never stops growing
// must end in an error for its environment, not take the daemon down.
const (
	// MaxRenderedSize bounds the text a template renders to.
	MaxRenderedSize = 8 << 20
	// MaxLoopItems bounds the numbers range() hands out in one render
	// (the loops of a render, nested ones included).
	MaxLoopItems = 100_000
)

// RenderTimeout bounds the time of one render.
var RenderTimeout = 10 * time.Second

// budgetError is a render that went over a bound.
type budgetError struct{ msg string }

// budgetMark starts the text of a budgetError, so that it is recognised
// after gonja turned it into text.
const budgetMark = "over a bound: "

func (e *budgetError) Error() string { return budgetMark + e.msg }

// renderBudget counts what a render used.
type renderBudget struct {
	deadline time.Time
	items    atomic.Int64
}

func (b *renderBudget) check() error {
	if time.Now().After(b.deadline) {
		return &budgetError{fmt.Sprintf("rendering took longer than %s: the template was stopped", RenderTimeout)}
	}
	return nil
}

// environment is the templates' environment (jinjaEnvironment) with a
// bounded range().
func (b *renderBudget) environment() *exec.Environment {
	ctx := gonja.DefaultContext.Inherit()
	ctx.Set("range", b.rangeFunc)
	return jinjaEnvironment(ctx)
}

// rangeFunc is Python's range, materialised, within the budget.
func (b *renderBudget) rangeFunc(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
	start, stop, step := 0, 0, 1
	ints := make([]int, len(params.Args))
	for i, a := range params.Args {
		if !a.IsInteger() {
			return nil, exec.ErrInvalidCall(errors.New("expected signature is [start, ]stop[, step] where all arguments are integers"))
		}
		ints[i] = a.Integer()
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return nil, exec.ErrInvalidCall(errors.New("expected signature is [start, ]stop[, step] where all arguments are integers"))
	}
	if step == 0 {
		return nil, exec.ErrInvalidCall(errors.New("step cannot be 0"))
	}
	n := 0
	if step > 0 && stop > start {
		n = (stop - start + step - 1) / step
	} else if step < 0 && start > stop {
		n = (start - stop - step - 1) / -step
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	if n < 0 || n > MaxLoopItems || b.items.Add(int64(n)) > MaxLoopItems {
		return nil, &budgetError{fmt.Sprintf("the loops of this template go over %d items in all (range)", MaxLoopItems)}
	}
	out := make([]int, n)
	for i := range out {
		out[i] = start + i*step
	}
	return out, nil
}

// run runs a render, giving up on it at the deadline; a render that does
// not stop then (it stops at its next write or range) is left to finish
// in the background.
func (b *renderBudget) run(render func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("cannot render: %v", r)
			}
		}()
		done <- render()
	}()
	timer := time.NewTimer(time.Until(b.deadline) + 100*time.Millisecond)
	defer timer.Stop()
	select {
	case err := <-done:
		var be *budgetError
		if errors.As(err, &be) {
			return be
		}
		return err
	case <-timer.C:
		return &budgetError{fmt.Sprintf("rendering took longer than %s: the template was stopped", RenderTimeout)}
	}
}

// boundedWriter collects a render's output up to MaxRenderedSize.
type boundedWriter struct {
	buf    bytes.Buffer
	budget *renderBudget
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > MaxRenderedSize {
		return 0, &budgetError{fmt.Sprintf("the rendered manifest is larger than %d bytes", MaxRenderedSize)}
	}
	if err := w.budget.check(); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

func (w *boundedWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// minTainted is the shortest process environment value that taints: a
// shorter one ("1", "yes") would mark half the manifest.
const minTainted = 4

var (
	bareEnv      = regexp.MustCompile(`\benv\b`)
	templateLoad = regexp.MustCompile(`\{%-?\s*(include|import|from|extends)\b`)
)

// taintedValues returns the process environment values a template may have
// copied into the manifest: those of the variables it names (env.NAME,
// env['NAME']), or every one when it reads env otherwise (env.items(), a
// loop, a filter) or loads other templates.
func taintedValues(src []byte, environ map[string]string) []string {
	if len(environ) == 0 || !hasTemplate(src) {
		return nil
	}
	text := string(src)
	refs := envReference.FindAllStringSubmatch(text, -1)
	all := templateLoad.MatchString(text) || len(bareEnv.FindAllStringIndex(text, -1)) > len(refs)
	var out []string
	add := func(v string) {
		if len(v) >= minTainted {
			out = append(out, v)
		}
	}
	if all {
		for _, v := range environ {
			add(v)
		}
		return out
	}
	for _, m := range refs {
		name := m[1]
		if name == "" {
			name = m[2]
		}
		if v, ok := environ[name]; ok {
			add(v)
		}
	}
	return out
}

// taint marks the env variables whose values carry a tainted value.
func taint(env *Environment, values []string) {
	if len(values) == 0 {
		return
	}
	mark := func(vars Env) {
		for i := range vars {
			for _, t := range values {
				if strings.Contains(vars[i].Value, t) {
					vars[i].FromEnv = true
					break
				}
			}
		}
	}
	for _, svc := range env.Services {
		for _, in := range svc.Instances {
			mark(in.Env)
		}
		if svc.Workload != nil {
			mark(svc.Workload.Env)
		}
	}
}
