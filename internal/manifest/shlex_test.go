package manifest

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// TestShlexCorpus: every command string of testdata/shlex/cases.json
// splits as Python's shlex.split made of it (gen.py wrote the file).
func TestShlexCorpus(t *testing.T) {
	data, err := os.ReadFile("testdata/shlex/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		In    string   `json:"in"`
		Out   []string `json:"out"`
		Error string   `json:"error"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		got, err := shlexSplit(c.In)
		switch {
		case c.Error != "":
			if err == nil || err.Error() != c.Error {
				t.Errorf("shlexSplit(%q) = %q, %v; Python: error %q", c.In, got, err, c.Error)
			}
		case err != nil:
			t.Errorf("shlexSplit(%q): %v; Python: %q", c.In, err, c.Out)
		case !slices.Equal(got, c.Out):
			t.Errorf("shlexSplit(%q) = %q; Python: %q", c.In, got, c.Out)
		}
	}
}
