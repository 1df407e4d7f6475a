package dockersim

import (
	"os"
	"testing"
)

// Fleet starts n ships for a test or benchmark and closes them when it
// ends. Their sockets live in short temporary directories (a unix
// socket's path is limited to about 100 bytes; a benchmark's TempDir can
// be longer).
func Fleet(tb testing.TB, n int, opts Options) []*Ship {
	tb.Helper()
	ships := make([]*Ship, n)
	for i := range ships {
		dir, err := os.MkdirTemp("", "dockersim")
		if err != nil {
			tb.Fatal(err)
		}
		s, err := Start(dir, opts)
		if err != nil {
			os.RemoveAll(dir)
			tb.Fatal(err)
		}
		ships[i] = s
		tb.Cleanup(func() {
			s.Close()
			os.RemoveAll(dir)
		})
	}
	return ships
}
