#!/usr/bin/env bash
# make demo: deploy examples/ to the local Docker engine and show the result.
# Installs and starts Docker when missing (scripts/docker-setup.sh), builds
# the demo image offline, applies the example repository and prints status.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

./scripts/docker-setup.sh

# The demo image: the offline busybox image the test bed builds.
docker tag maestro-test/busybox:1 maestro-demo/busybox:1

bin=bin/maestro-sync
echo "== maestro-sync validate examples"
"$bin" validate examples
echo
echo "== maestro-sync deptree examples"
"$bin" deptree examples
echo
echo "== maestro-sync apply examples"
"$bin" apply examples -c 4
echo
echo "== maestro-sync plan examples (a second run changes nothing)"
"$bin" plan examples || [ $? -eq 2 ]
echo
echo "== maestro-sync status examples"
if "$bin" status --help >/dev/null 2>&1; then
  "$bin" status examples
else
  docker ps --filter label=io.maestro-sync/env --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}'
fi
echo
echo "== the shop answers"
curl -fsS http://127.0.0.1:28080/index.html
