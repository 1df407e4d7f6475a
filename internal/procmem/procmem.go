// Package procmem keeps the resident memory of a long-running maestro-sync
// process to what it uses.
//
// The kernel maps the pages of the executable into a process in blocks
// (fault-around) as they are first touched, and counts them in its
// resident set until memory runs short. Package initialisation and a
// daemon's first run touch code and constant data all over a large binary
// that an idle daemon never runs again: about as much as everything else
// it keeps. ReleaseExecutable drops those mappings; the pages still in use
// are mapped again, from the page cache, at their next access.
//
// Likewise the Go runtime returns the heap that a large run needed only
// gradually. Trim does both, for a daemon to call when a run has ended and
// now and then while it idles.
package procmem

import "runtime/debug"

// Trim releases the executable's pages (ReleaseExecutable) and returns the
// free memory of the Go heap to the system, after a garbage collection.
func Trim() error {
	_, err := ReleaseExecutable()
	debug.FreeOSMemory()
	return err
}
