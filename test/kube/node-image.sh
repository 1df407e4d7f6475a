#!/usr/bin/env bash
# Make a container image offline and import it into a test node's containerd
# (test/kube/node-start.sh): ROOTFS becomes the image's single layer, CONFIG
# its runtime config (the "config" object of an OCI/Docker image config:
# Entrypoint, Cmd, Env, User, WorkingDir ...). The image is written as a
# docker-archive tarball (what `docker save` writes) and imported with
# `ctr -n k8s.io images import`, where the kubelet finds it; pods use it
# with imagePullPolicy IfNotPresent (the default for a tag other than
# latest). Nothing is pulled from anywhere.
#
# Usage: test/kube/node-image.sh DIR REF ROOTFS [CONFIG_JSON]
#   DIR     the control plane's directory (the node runs in DIR/node)
#   REF     e.g. maestro-test/web:1 (imported as docker.io/maestro-test/web:1)
#   ROOTFS  directory; owners and modes are kept (numeric), mtimes zeroed
#   CONFIG  JSON object, default {}
# Env: MAESTRO_NODE_IMAGE_KEEP=FILE also keeps the tarball as FILE.
set -euo pipefail

DIR="${1:?usage: $0 DIR REF ROOTFS [CONFIG_JSON]}"
REF="${2:?usage: $0 DIR REF ROOTFS [CONFIG_JSON]}"
ROOTFS="${3:?usage: $0 DIR REF ROOTFS [CONFIG_JSON]}"
CONFIG="${4:-}"
[[ -n "$CONFIG" ]] || CONFIG='{}'
SOCK="$DIR/node/containerd.sock"
[[ -S "$SOCK" ]] || { echo "node-image: no containerd socket at $SOCK (is the node running?)" >&2; exit 1; }
[[ -d "$ROOTFS" ]] || { echo "node-image: $ROOTFS is not a directory" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -C "$ROOTFS" --numeric-owner --sort=name --mtime=@0 -cf "$work/layer.tar" .
layer="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
mkdir "$work/$layer"
mv "$work/layer.tar" "$work/$layer/layer.tar"
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
	"$CONFIG" "$layer" >"$work/config.json"
cfg="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
mv "$work/config.json" "$work/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$REF" "$layer" >"$work/manifest.json"
tar -C "$work" -cf "$work/image.tar" manifest.json "$cfg.json" "$layer"
[[ -z "${MAESTRO_NODE_IMAGE_KEEP:-}" ]] || cp "$work/image.tar" "$MAESTRO_NODE_IMAGE_KEEP"
ctr --address "$SOCK" -n k8s.io images import "$work/image.tar" >/dev/null
echo "sha256:$cfg"
