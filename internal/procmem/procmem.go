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
package procmem
