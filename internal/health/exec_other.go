//go:build !unix

package health

import "os/exec"

// ownProcessGroup does nothing here: cancellation kills only the command
// itself, and WaitDelay bounds how long its children can hold the output.
func ownProcessGroup(*exec.Cmd) {}
