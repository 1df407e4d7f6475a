package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary text to the loader: it must never panic, every
// diagnostic must be located in the file, and a valid result must render
// and hash deterministically.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../examples/*/manifest.yml")
	more, _ := filepath.Glob("testdata/*/*/manifest.yml")
	for _, p := range append(seeds, more...) {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("name: x\nships: {s: {ip: 1.2.3.4}}\nservices:\n  a:\n    image: a\n    ports: {p: 22:22}\n    instances: {a-1: {ship: s}}\n"))
	f.Add([]byte("name: {{ env.X | default('x') }}\n{% for i in range(2) %}k{{i}}: 1\n{% endfor %}"))
	f.Add([]byte("a: &a {b: *a}\n"))
	f.Add([]byte("<<: {name: x}\nships: {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"env/a.env":        {Data: []byte("A=1\n")},
			"env/inc.yml":      {Data: []byte("x: 1\n")},
			"env/manifest.yml": {Data: data},
		}
		repo := LoadSources(fsys, []Source{{Name: "env/manifest.yml", Data: data}}, Options{Environ: map[string]string{"X": "y"}})
		for _, d := range repo.Diagnostics {
			if !strings.HasPrefix(d.Error(), "env/manifest.yml") {
				t.Fatalf("diagnostic not located in the file: %q", d.Error())
			}
		}
		if repo.Err() != nil {
			return
		}
		first, err := json.Marshal(repo)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again := LoadSources(fsys, []Source{{Name: "env/manifest.yml", Data: data}}, Options{Environ: map[string]string{"X": "y"}})
		second, _ := json.Marshal(again)
		if string(first) != string(second) {
			t.Fatalf("loading twice gave different results:\n%s\n%s", first, second)
		}
	})
}
