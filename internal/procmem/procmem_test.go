package procmem

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFile is the resident file-backed memory of this process, in kB.
func rssFile(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseExecutable: the resident pages of the test binary drop, and
// the process goes on running code and reading constant data (the pages
// come back as they are used).
func TestReleaseExecutable(t *testing.T) {
	before := rssFile(t)
	span, err := ReleaseExecutable()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("read-only mappings of %d kB; resident file pages %d kB, then %d kB", span>>10, before, after)
	if span == 0 {
		t.Fatal("no read-only mapping of the executable found")
	}
	if after >= before {
		t.Errorf("resident file pages did not drop: %d kB, then %d kB", before, after)
	}
	// Code and constant data still work after the release.
	if got := strings.Repeat(strconv.Itoa(42), 3); got != "424242" {
		t.Errorf("after the release: %q", got)
	}
	if _, err := ReleaseExecutable(); err != nil {
		t.Errorf("a second release: %v", err)
	}
}
