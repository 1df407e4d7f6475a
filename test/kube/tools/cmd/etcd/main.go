// Command etcd is upstream etcd (go.etcd.io/etcd/server/v3, the version that
// k8s.io/kubernetes v1.36.3 itself pins), built from the Go module proxy for
// maestro-sync's integration tests. Debian 12's etcd-server (3.4.23) also
// works but is older than 3.4.31, so kube-apiserver disables watch progress
// requests on it (no consistent reads from cache, no streaming watch-list).
// See test/kube/README.md.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
