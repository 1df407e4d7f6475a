// Package buildtest holds the repository the build tests read: two build
// contexts and a file outside them.
package buildtest

import "testing/fstest"

// Repo is a repository with the contexts app (a Dockerfile FROM the test
// bed's busybox that copies hello.txt, takes the argument GREETING and
// ignores *.log) and worker, and README.md outside both.
func Repo(hello, log, other string) fstest.MapFS {
	return fstest.MapFS{
		"app/Dockerfile":    {Data: []byte("FROM maestro-test/busybox:1\nARG GREETING=hi\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" > /greeting\nCMD [\"cat\", \"/hello.txt\"]\n")},
		"app/hello.txt":     {Data: []byte(hello)},
		"app/.dockerignore": {Data: []byte("*.log\n")},
		"app/debug.log":     {Data: []byte(log)},
		"app/bin/run.sh":    {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"worker/Dockerfile": {Data: []byte("FROM maestro-test/busybox:1\n")},
		"README.md":         {Data: []byte(other)},
	}
}
