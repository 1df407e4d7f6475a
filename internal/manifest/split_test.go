package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// sameNodes reports where two node trees differ in anything but comments,
// or "".
func sameNodes(a, b *yaml.Node, path string) string {
	switch {
	case a == nil || b == nil:
		if a != b {
			return path + ": one node is missing"
		}
		return ""
	case a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value || a.Anchor != b.Anchor:
		return fmt.Sprintf("%s: %v %v %q %q %q, in parts %v %v %q %q %q", path, a.Kind, a.Style, a.Tag, a.Value, a.Anchor, b.Kind, b.Style, b.Tag, b.Value, b.Anchor)
	case a.Line != b.Line || a.Column != b.Column:
		return fmt.Sprintf("%s (%q): at %d:%d, in parts at %d:%d", path, a.Value, a.Line, a.Column, b.Line, b.Column)
	case len(a.Content) != len(b.Content):
		return fmt.Sprintf("%s: %d children, in parts %d", path, len(a.Content), len(b.Content))
	case (a.Alias == nil) != (b.Alias == nil):
		return path + ": an alias in one tree only"
	}
	for i := range a.Content {
		if d := sameNodes(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// checkSplit checks that text parsed in n parts is text parsed at once,
// and that it is parsed in parts only when it parses at once. It returns
// whether it was parsed in parts.
func checkSplit(t *testing.T, text []byte, n int) bool {
	t.Helper()
	whole, wholeOK := parseOne(text) // the whole text at once
	parts, partsOK := parseParts(text, n)
	switch {
	case partsOK && !wholeOK:
		t.Fatalf("a text that does not parse at once parsed in parts:\n%s", text)
	case partsOK:
		if d := sameNodes(whole, parts, ""); d != "" {
			t.Fatalf("parsed in parts differs from parsed at once: %s\n%s", d, text)
		}
	}
	return partsOK
}

// TestSplitParseIsTheWholeParse checks the parse in parts against the
// parse at once on manifests it cuts and on ones it must not.
func TestSplitParseIsTheWholeParse(t *testing.T) {
	gen := genRepo(1, 300)["env0/manifest.yml"].Data
	if len(gen) < splitMin {
		t.Fatalf("the generated manifest (%d bytes) is under splitMin", len(gen))
	}
	if _, ok := splitParse(gen); !ok {
		t.Fatal("a large generated manifest is not parsed in parts")
	}
	head := "__maestro: {schema: 2}\nname: x\nships:\n  a: {ip: 10.0.0.1}\n"
	svc := func(i int) string {
		return fmt.Sprintf("  s%d:\n    image: img:%d\n    env: {A: \"x\"}\n    instances:\n      s%d-1: {ship: a}\n", i, i, i)
	}
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(svc(i))
		}
		return b.String()
	}
	cut := []string{
		head + "services:\n" + many(9),
		head + "services:\n" + many(9) + "audit:\n  - type: log\n",
		"services:\n" + many(9) + head,
		head + "services:   \n\n# comment\n" + many(4) + "\n   \n  # indented comment\n" + many(5) + "# last\n",
		strings.ReplaceAll(head+"services:\n"+many(9), "\n", "\r\n"),
		head + "services:\n" + many(4) + "  multi:\n    env: [a,\n      b]\n    cmd: |\n      line one\n\n      line two\n    s: 'quoted\n      more'\n" + many(4),
		head + "services:\n" + many(9)[:len(many(9))-1], // no final line break
	}
	for i, text := range cut {
		if !checkSplit(t, []byte(text), 4) {
			t.Errorf("text %d is not parsed in parts:\n%s", i, text)
		}
	}
	left := []string{
		head + "services:\n" + many(4) + "  a: &x {image: a}\n  b: *x\n",     // an alias between parts
		head + "services:\n" + many(4) + "  a: !!str x\n",                    // a tag
		head + "services:\n" + many(4) + "  <<: {b: {image: b}}\n",           // a merge key
		head + "services: {a: {image: a}}\n",                                 // a flow mapping
		head + "services:\n  - a\n  - b\n",                                   // a list
		head + "services:\n" + many(4) + "---\nname: y\n",                    // two documents
		head + "services:\n" + many(4) + "services:\n" + many(2),             // twice
		head + "services:\n" + many(4) + "  multi:\n    env: [a,\n  b: c]\n", // a flow list cut at the entries' indentation
		head + "services:\n" + many(4) + "    deeper: x\n  s9:\n   odd: 1\n", // bad indentation
		head + "services:\n" + many(4) + "  s: \"open\n  t: x\n" + many(2),   // a quoted scalar cut
		head + "services:\n" + many(4) + "  s:\n\tbad: tab\n",                // a tab
		"%YAML 1.1\n---\n" + head + "services:\n" + many(4),                  // a directive
		head + "x: [a,\nservices:\n" + many(4) + "]\n",                       // inside a flow list
		head + "services:\n" + many(4) + "  \"quoted key\": {image: q}\n" + many(4),
		head + "services:\n" + many(4) + "  \"a\n  b\": x\n",                            // a quoted key cut
		head + "services:\n" + many(4) + "  s10:\n    image: x\n  s10:\n    image: y\n", // a duplicate key: left to the decoder, parts agree
	}
	for _, text := range left {
		checkSplit(t, []byte(text), 4)
	}
	// Every manifest of the corpora.
	files, _ := filepath.Glob("testdata/*/*/manifest.yml")
	more, _ := filepath.Glob("testdata/*/*/*/manifest.yml")
	examples, _ := filepath.Glob("../../examples/*/manifest.yml")
	for _, p := range append(append(files, more...), examples...) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("{%")) && !bytes.Contains(data, []byte("{{")) {
			checkSplit(t, data, 3)
		}
	}
}

// FuzzSplitParse checks the parse in parts against the parse at once on
// texts derived from manifests.
func FuzzSplitParse(f *testing.F) {
	f.Add([]byte("name: x\nservices:\n  a:\n    image: a\n  b: {image: b}\n  c:\n    env: [x,\n      y]\nships: {}\n"))
	f.Add([]byte("services:\n  a: |\n    x\n  b: 'y\n    z'\n  c: \"q\n    r\"\n"))
	f.Add([]byte("services:\n\n  # c\n  a: 1\n\n  b:\n    - 1\n    - 2\n  c: {d: [1, 2]}\nname: y\n"))
	files, _ := filepath.Glob("testdata/invalid/*/manifest.yml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, n := range []int{2, 3, 8} {
			checkSplit(t, text, n)
		}
	})
}
