package diff

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSortedEnvCauses checks that merging two sorted env lists says what
// comparing them through maps says, and that an unsorted list is left to
// the maps.
func TestSortedEnvCauses(t *testing.T) {
	byMaps := envCausesByMaps
	r := rand.New(rand.NewPCG(3, 4))
	list := func() []string {
		var out []string
		for _, k := range []string{"A", "A_B", "B", "B1", "C", "Z"} {
			switch r.IntN(4) {
			case 0:
			case 1:
				out = append(out, k)
			case 2:
				out = append(out, k+"=1")
			default:
				out = append(out, k+"=2")
			}
		}
		return out
	}
	for range 2000 {
		old, cur := list(), list()
		got, ok := sortedEnvCauses(old, cur)
		if !ok {
			t.Fatalf("sorted lists %q, %q refused", old, cur)
		}
		if want := byMaps(old, cur); !slices.Equal(got, want) {
			t.Fatalf("old %q cur %q: got %q, want %q", old, cur, got, want)
		}
	}
	for _, tc := range [][2][]string{
		{{"B=1", "A=1"}, {"A=1"}},
		{{"A=1"}, {"A=1", "A=2"}},
	} {
		if _, ok := sortedEnvCauses(tc[0], tc[1]); ok {
			t.Errorf("%q, %q: not sorted, yet merged", tc[0], tc[1])
		}
		if got, want := envCauses(tc[0], tc[1]), byMaps(tc[0], tc[1]); strings.Join(got, ";") != strings.Join(want, ";") {
			t.Errorf("%q, %q: got %q, want %q", tc[0], tc[1], got, want)
		}
	}
}
