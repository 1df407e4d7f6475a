package manifest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// TestJinjaCorpus: every template of testdata/jinja/cases.json renders
// as Python's Jinja2 rendered it for MaestroNG (gen.py wrote the file with
// Debian's python3-jinja2), and fails where it failed. A case with files
// renders beside them (include, import, extends), as MaestroNG's
// FileSystemLoader on the manifest's directory reads them.
func TestJinjaCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/jinja/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Env   map[string]string `json:"env"`
		Cases []struct {
			Template string            `json:"template"`
			Files    map[string]string `json:"files"`
			Output   string            `json:"output"`
			Error    string            `json:"error"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &corpus); err != nil {
		t.Fatal(err)
	}
	if len(corpus.Cases) < 200 {
		t.Fatalf("only %d cases", len(corpus.Cases))
	}
	for _, c := range corpus.Cases {
		fsys := fstest.MapFS{}
		for name, text := range c.Files {
			fsys[name] = &fstest.MapFile{Data: []byte(text)}
		}
		out, _, err := render(fsys, ".", []byte(c.Template), corpus.Env)
		switch {
		case c.Error != "":
			if err == nil {
				t.Errorf("%s\n  renders %q; Jinja2: %s", c.Template, out, c.Error)
			}
		case err != nil:
			t.Errorf("%s\n  fails: %v\n  Jinja2: %q", c.Template, err, c.Output)
		case string(out) != c.Output:
			t.Errorf("%s\n  renders %q\n  Jinja2: %q", c.Template, out, c.Output)
		}
	}
}

// TestZookeeperKafkaExample: MaestroNG's own example
// (docs/examples/zookeeper+kafka.yaml) renders as Jinja2 renders it
// (testdata/reference/zookeeper-kafka/gen.py): same YAML document, and
// ZOOKEEPER_SERVER_IDS, built with append in a loop, on each zookeeper
// container.
func TestZookeeperKafkaExample(t *testing.T) {
	dir := "testdata/reference/zookeeper-kafka"
	src, err := os.ReadFile(dir + "/manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(dir + "/jinja2-rendered.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := render(os.DirFS(dir), ".", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("rendered YAML: %v\n%s", err, out)
	}
	if err := yaml.Unmarshal(want, &exp); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exp, got); diff != "" {
		t.Errorf("rendered document (-Jinja2 +maestro-sync):\n%s", diff)
	}
	env := mustEnv(t, string(src))
	for _, name := range []string{"zk-node-1", "zk-node-2", "zk-node-3"} {
		if ids, _ := env.Instance(name).Env.Get("ZOOKEEPER_SERVER_IDS"); ids != "zk-node-1:1,zk-node-2:2,zk-node-3:3" {
			t.Errorf("%s: ZOOKEEPER_SERVER_IDS = %q", name, ids)
		}
	}
}

// TestEnvIsDefinedIsNoWarning: a test of whether a variable is set is
// not a use of an unset variable; a plain use still is.
func TestEnvIsDefinedIsNoWarning(t *testing.T) {
	text := `name: shop
ships: {s1: {ip: 10.0.0.1}}
services:
  web:
    image: web:1
    env:
      A: "{{ 'set' if env.MISSING is defined else 'unset' }}"
      B: "{{ env.OTHER is not defined }}"
      C: "{{ env.GONE }}"
    instances: {web-1: {ship: s1}}
`
	repo := LoadSources(fstest.MapFS{}, []Source{{Name: "manifest.yml", Data: []byte(text)}}, Options{Environ: map[string]string{}})
	env := envOf(t, repo)
	if a, _ := env.Instance("web-1").Env.Get("A"); a != "unset" {
		t.Errorf("A = %q", a)
	}
	warns := messages(repo, SeverityWarning)
	if len(warns) != 1 || !strings.Contains(warns[0], "env.GONE is not set") {
		t.Errorf("warnings %q, want only env.GONE's", warns)
	}
}

// TestTemplateFailuresAreLocated: a template that fails as Python fails
// (a division by zero, a format that does not match its arguments, a
// missing key, an integer over the bound) fails at its line, saying why.
func TestTemplateFailuresAreLocated(t *testing.T) {
	for expr, want := range map[string]string{
		"1 // 0":                     "ZeroDivisionError: integer division or modulo by zero",
		"1 / 0.0":                    "ZeroDivisionError: division by zero",
		"'%s-%s' % ('web',)":         "TypeError: not enough arguments for format string",
		"'%d' % 'x'":                 "TypeError: %d format: a real number is required, not str",
		"'%(port)d' % {'host': 'h'}": "KeyError: 'port'",
		"{'a': 1}.pop('b')":          "KeyError: 'b'",
		"9 ** 387420489":             "integer too large: more than 65536 bits",
		"4 ** (2 ** 62)":             "integer too large: more than 65536 bits", // no overflow of the bound's check
		"'x' * 10 ** 9":              "repetition larger than",
	} {
		src := "name: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a:\n    image: \"{{ " + expr + " }}\"\n"
		_, line, err := render(fstest.MapFS{}, ".", []byte(src), nil)
		if err == nil || line != 5 || !strings.Contains(err.Error(), want) {
			t.Errorf("{{ %s }}: line %d, error %v; want line 5, %q", expr, line, err, want)
		}
	}
}

// TestEndlessMacroRecursionFails: a macro calling itself without end
// fails at once at the line of the call, as Python's RecursionError does,
// not at the render's time limit.
func TestEndlessMacroRecursionFails(t *testing.T) {
	src := "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\nname: x\nships: {s: {ip: 10.0.0.1}}\nservices:\n  a:\n    image: \"{{ f(1) }}\"\n"
	_, line, err := render(fstest.MapFS{}, ".", []byte(src), nil)
	if err == nil || line != 6 || !strings.Contains(err.Error(), "RecursionError: maximum recursion depth exceeded") {
		t.Errorf("line %d, error %v; want line 6, a RecursionError", line, err)
	}
}

// TestTemplateFailuresInOtherFiles: a failure in an included file is at
// the include, naming the file and its line; in the template a manifest
// extends, at the {% extends %}, naming that file and line; in a block
// the manifest defines, at the block's line of the manifest.
func TestTemplateFailuresInOtherFiles(t *testing.T) {
	for _, tc := range []struct {
		src, file, text string
		line            int
		want            string
	}{
		{"a: 1\n{% include 'inc.yml' %}\n", "inc.yml", "x: 1\n\ny: {{ 1 // 0 }}\n", 2, "template: inc.yml:3: ZeroDivisionError"},
		{"a: 1\n{% include 'inc.yml' %}\n", "inc.yml", "x: 1\ny: {{ 1 + }}\n", 2, "template: inc.yml:2: expected either"},
		{"a: 1\n{% include 'inc.yml' %}\n", "inc.yml", "{{ [1] + 'a' }}", 2, `template: inc.yml:1: TypeError: can only concatenate list (not "str") to list`},
		{"a: 1\n{% include 'nope.yml' %}\n", "inc.yml", "", 2, `template: include "nope.yml": not found`},
		{"{% extends 'base.j2' %}\n{% block b %}\n{{ 1 // 0 }}{% endblock %}\n", "base.j2", "x: 1\n\n\n{% block b %}{% endblock %}\n", 3, "template: ZeroDivisionError"},
		{"# env\n{% extends 'base.j2' %}{% block b %}{% endblock %}\n", "base.j2", "x: 1\n\n{{ 'a' - 1 }}\n{% block b %}{% endblock %}\n", 2, "template: base.j2:3: TypeError: unsupported operand type(s) for -: 'str' and 'int'"},
	} {
		fsys := fstest.MapFS{tc.file: {Data: []byte(tc.text)}}
		_, line, err := render(fsys, ".", []byte(tc.src), nil)
		if err == nil || line != tc.line || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q with %s %q: line %d, %v; want line %d, %q", tc.src, tc.file, tc.text, line, err, tc.line, tc.want)
		}
	}
}
