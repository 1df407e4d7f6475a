package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Options control loading.
type Options struct {
	// Environ is the process environment that templates see as env.
	Environ map[string]string
	// Strict turns warnings (such as unknown keys) into errors.
	Strict bool
	// DenyExecChecks makes every exec lifecycle check an error: the
	// daemon runs a repository's checks with its own credentials at hand,
	// and only trusts a committer with that when told to.
	DenyExecChecks bool
	// Policy, when set, denies what containers may not do (privileged,
	// the host's network, the Docker socket, host paths).
	Policy *Policy
	// Prefix is prepended to file names in Environment.File and in errors,
	// so that they read as the user gave them (e.g. "apps/").
	Prefix string
	// ReadFile reads files given by absolute path (env files, and a
	// manifest given with -f). When nil, absolute paths are refused: a
	// GitOps repository must be self-contained.
	ReadFile func(name string) ([]byte, error)
}

// ManifestNames are the file names that hold an environment.
var ManifestNames = []string{"manifest.yml", "manifest.yaml"}

// Load finds every manifest.yml and manifest.yaml under the root of fsys
// and loads each as one environment. The error is non-nil only when the
// tree cannot be read or holds no manifest; problems inside manifests are
// in Repo.Diagnostics.
func Load(fsys fs.FS, opts Options) (*Repo, error) {
	files, err := Find(fsys)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no %s found under %s", strings.Join(ManifestNames, " or "), displayRoot(opts.Prefix))
	}
	return LoadFiles(fsys, files, opts)
}

// Find returns the paths of the manifests under the root of fsys, sorted.
// Directories whose names start with a dot are skipped.
func Find(fsys fs.FS) ([]string, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if !d.IsDir() && slices.Contains(ManifestNames, d.Name()) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find manifests: %w", err)
	}
	return files, nil
}

func displayRoot(prefix string) string {
	if prefix == "" {
		return "."
	}
	return prefix
}

// LoadFiles loads the named manifests of fsys.
func LoadFiles(fsys fs.FS, names []string, opts Options) (*Repo, error) {
	srcs, err := ReadSources(fsys, names)
	if err != nil {
		return nil, err
	}
	return LoadSources(fsys, srcs, opts), nil
}

// ReadSources reads the named manifests of fsys. A manifest that cannot
// be read (over the size limit of the file system, a link out of the
// repository) comes back with its Err set: it is an invalid environment of
// its own, and the others load.
func ReadSources(fsys fs.FS, names []string) ([]Source, error) {
	srcs := make([]Source, 0, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		srcs = append(srcs, Source{Name: name, Data: data, Err: err})
	}
	return srcs, nil
}

// Source is the text of one manifest. Name is its path in the fs.FS, which
// sets the directory that env files and includes are relative to. A Source
// with Display set shows that name in errors instead (e.g. "<stdin>").
type Source struct {
	Name    string
	Display string
	Data    []byte
	// Err is why the manifest could not be read.
	Err error
}

// LoadSources loads manifests whose text is already read. The manifests
// load in parallel, reading fsys (and Options.ReadFile) one at a time.
func LoadSources(fsys fs.FS, srcs []Source, opts Options) *Repo {
	loads := make([]loaded, len(srcs))
	fsys, opts = serialized(fsys, opts)
	eachParallel(len(srcs), func(i int) { loads[i] = loadSource(fsys, srcs[i], opts) })
	return assemble(loads)
}

// loaded is one manifest's environment as loaded on its own, before the
// checks between environments.
type loaded struct {
	file string // as shown
	// env is nil when the manifest did not validate; partial is then
	// what could still be read of it (its name, its labels), if any.
	env     *Environment
	partial *Environment
	diags   Errors
}

// loadSource loads one manifest on its own.
func loadSource(fsys fs.FS, src Source, opts Options) loaded {
	l := loaded{file: displayName(src, opts)}
	if src.Err != nil {
		l.diags = Errors{&Error{File: l.file, Msg: "cannot read the manifest: " + src.Err.Error()}}
		return l
	}
	env, diags := loadOne(fsys, src, opts)
	l.diags = diags
	switch {
	case env != nil && !diags.HasErrors():
		l.env = env
	case env != nil:
		l.partial = env
	}
	return l
}

// assemble makes the repository of manifests loaded on their own: the
// checks between environments run on them together.
func assemble(loads []loaded) *Repo {
	repo := &Repo{}
	for _, l := range loads {
		repo.Diagnostics = append(repo.Diagnostics, l.diags...)
		if l.env == nil {
			repo.Invalid = append(repo.Invalid, l.file)
			if l.partial != nil {
				repo.partial(l.file, l.partial)
			}
			continue
		}
		repo.Environments = append(repo.Environments, l.env)
	}
	repo.crossCheck()
	repo.Diagnostics.sort()
	slices.SortFunc(repo.Environments, func(a, b *Environment) int { return strings.Compare(a.File, b.File) })
	slices.Sort(repo.Invalid)
	return repo
}

func displayName(src Source, opts Options) string {
	if src.Display != "" {
		return src.Display
	}
	return opts.Prefix + src.Name
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// loadOne loads one environment file. It returns a nil Environment when the
// file could not be decoded at all.
func loadOne(fsys fs.FS, src Source, opts Options) (*Environment, Errors) {
	d := &decoder{file: displayName(src, opts), strict: opts.Strict}
	dir := path.Dir(src.Name)
	text := src.Data
	if hasTemplate(text) {
		d.undefinedEnv(text, opts.Environ)
		out, line, err := render(fsys, dir, text, opts.Environ)
		if err != nil {
			e := &Error{File: d.file, Line: line, Col: 1, Msg: err.Error()}
			var le *locatedError
			if errors.As(err, &le) {
				e.Col = le.col
			}
			d.errs = append(d.errs, e)
			return nil, d.errs
		}
		d.rendered = bytes.Contains(text, []byte("{%")) || bytes.Contains(text, []byte("{#")) || bytes.Count(out, []byte("\n")) != bytes.Count(text, []byte("\n"))
		text = out
	}
	var doc yaml.Node
	var err error
	if parsed, ok := splitParse(text); ok {
		doc = *parsed
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(text))
		err = dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if err == nil {
			var extra yaml.Node
			if dec.Decode(&extra) == nil {
				d.errorf(&extra, "", "a manifest holds one YAML document; this file has more (remove the --- separator)")
				return nil, d.errs
			}
		}
	}
	if err != nil {
		e := &Error{File: d.file, Msg: err.Error(), Rendered: d.rendered}
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			e.Msg = te.Errors[0]
		}
		if m := yamlLine.FindStringSubmatch(e.Msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Col = 1
			e.Msg = "invalid YAML: " + m[2]
			if lines := bytes.Split(text, []byte("\n")); e.Line <= len(lines) && bytes.Contains(leadingSpace(lines[e.Line-1]), []byte("\t")) {
				e.Msg += " (tabs are not allowed for indentation in YAML: use spaces)"
			}
		} else {
			e.Msg = "invalid YAML: " + strings.TrimPrefix(e.Msg, "yaml: ")
		}
		return nil, append(d.errs, e)
	}
	if len(doc.Content) == 0 {
		d.errorf(nil, "", "the file is empty: expected a mapping with name, ships and services")
		return nil, d.errs
	}
	if n, msg := checkAliases(doc.Content[0]); n != nil {
		d.errorf(n, "", "%s", msg)
		return nil, d.errs
	}
	b := &builder{decoder: d, fsys: fsys, dir: dir, opts: opts}
	env := b.build(doc.Content[0])
	if env != nil {
		env.File = d.file
		env.Path = src.Name
		taint(env, taintedValues(src.Data, opts.Environ))
	}
	if opts.Strict {
		for _, e := range d.errs {
			e.Severity = SeverityError
		}
	}
	return env, d.errs
}

// crossCheck finds problems between environments: duplicate names, and
// two environments placing a container of the same name on one Docker host.
func (r *Repo) crossCheck() {
	byName := map[string]*Environment{}
	names := map[string]int{}
	for _, env := range r.Environments {
		names[env.Name]++
	}
	type placed struct {
		env  *Environment
		ship string
	}
	byContainer := map[string]placed{}
	var keep []*Environment
	for _, env := range r.Environments {
		bad := false
		if names[env.Name] > 1 {
			var others []string
			for _, o := range r.Environments {
				if o != env && o.Name == env.Name {
					others = append(others, o.File)
				}
			}
			r.Diagnostics = append(r.Diagnostics, &Error{File: env.File, Line: env.nameLine, Col: env.nameCol, Path: "name",
				Msg: fmt.Sprintf("duplicate environment name %q (also in %s)", env.Name, strings.Join(others, ", "))})
			bad = true
		}
		byName[env.Name] = env
		if bad {
			r.Invalid = append(r.Invalid, env.File)
			r.partial(env.File, env)
			continue
		}
		for _, in := range env.Instances() {
			ship := env.Ships[in.Ship]
			key := ship.Address() + "/" + in.Name
			if other, dup := byContainer[key]; dup && other.env != env {
				r.Diagnostics = append(r.Diagnostics, &Error{File: env.File, Line: in.line, Col: in.col, Path: "services." + in.Service + ".instances." + in.Name,
					Msg: fmt.Sprintf("container name %q on ship %s (%s) is also used by environment %q in %s", in.Name, in.Ship, ship.Address(), other.env.Name, other.env.File)})
				bad = true
			} else if !dup {
				byContainer[key] = placed{env, in.Ship}
			}
		}
		if bad {
			r.Invalid = append(r.Invalid, env.File)
			r.partial(env.File, env)
			continue
		}
		keep = append(keep, env)
	}
	r.Environments = keep
}

// partial records what could be read of the invalid environment of file.
func (r *Repo) partial(file string, env *Environment) {
	if r.Partial == nil {
		r.Partial = map[string]Partial{}
	}
	r.Partial[file] = Partial{Name: env.Name, Labels: env.Labels, LabelsOK: !env.labelsBad}
}

func leadingSpace(line []byte) []byte {
	return line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
}
