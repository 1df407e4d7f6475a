// Command kubelet is upstream kubelet (k8s.io/kubernetes v1.36.3), built from the
// Go module proxy for maestro-sync's integration tests: the real node that
// test/kube/node-start.sh joins to the test control plane. See test/kube/README.md.
//
// One change from upstream's main: $MAESTRO_KUBELET_CONTAINER_LOGS_DIR, when
// set, replaces /var/log/containers (the kubelet's symlinks to container logs;
// a package variable upstream overrides in its tests), so that a test node
// keeps off that machine-wide directory.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // for client metric registration
	_ "k8s.io/component-base/metrics/prometheus/version"  // for version metric registration
	"k8s.io/kubernetes/cmd/kubelet/app"
	"k8s.io/kubernetes/pkg/kubelet"
)

func main() {
	if dir := os.Getenv("MAESTRO_KUBELET_CONTAINER_LOGS_DIR"); dir != "" {
		kubelet.ContainerLogsDir = dir
	}
	command := app.NewKubeletCommand(context.Background())
	code := cli.Run(command)
	os.Exit(code)
}
