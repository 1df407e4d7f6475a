package manifest

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

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
	p, err := l.Resolve(name)
	if err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(l.fsys, p)
	if err != nil {
		return nil, fmt.Errorf("template %q not found", name)
	}
	return bytes.NewReader(data), nil
}

func (l *fsLoader) Resolve(name string) (string, error) {
	if name == l.rootID {
		return name, nil
	}
	p := path.Join(l.dir, name)
	if strings.HasPrefix(name, "/") || !fs.ValidPath(p) {
		return "", fmt.Errorf("template %q is outside the repository", name)
	}
	return p, nil
}

func (l *fsLoader) Inherit(string) (loaders.Loader, error) { return l, nil }

var silenceGonja sync.Once

// templateLine finds the line number in a gonja error message.
var templateLine = regexp.MustCompile(`(?i)\bline[: =]+(\d+)`)

// templateNoise strips gonja's internal details from an error message.
var templateNoise = regexp.MustCompile(`(?s)^(unable to execute template: |failed to parse template '.*?': )`)

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
	var buf bytes.Buffer
	tpl, err := exec.NewTemplate(loader.rootID, gonja.DefaultConfig, loader, gonja.DefaultEnvironment)
	if err == nil {
		err = tpl.Execute(&buf, exec.NewContext(map[string]any{"env": env}))
	}
	if err != nil {
		msg := templateNoise.ReplaceAllString(err.Error(), "")
		if m := templateLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		return nil, line, fmt.Errorf("template: %s", strings.ReplaceAll(msg, "\n", " "))
	}
	if bytes.HasSuffix(src, []byte("\n")) && !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	return buf.Bytes(), 0, nil
}

// RenderTemplate returns the text of a manifest after Jinja2 rendering and
// before YAML parsing: what line numbers of errors marked as rendered refer
// to.
func RenderTemplate(fsys fs.FS, src Source, environ map[string]string) ([]byte, error) {
	if !hasTemplate(src.Data) {
		return src.Data, nil
	}
	out, line, err := render(fsys, path.Dir(src.Name), src.Data, environ)
	if err != nil && line > 0 {
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	return out, err
}
