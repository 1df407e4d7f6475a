package main

import "os"

// isPath reports whether arg names an existing file or directory, so that
// a command taking [PATH] [NAME...] can tell the two apart.
func isPath(arg string) bool {
	_, err := os.Stat(arg)
	return err == nil
}
