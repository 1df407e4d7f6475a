// Package e2e holds end-to-end tests that run the maestro-sync binary
// against real dockerd ships, including interruptions (kill -9) that only
// a separate process can suffer.
package e2e
