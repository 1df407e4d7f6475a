#!/usr/bin/env bash
# docker-setup.sh prepares the Docker test bed used by the integration tests
# (test/dockertest) and `make test`:
#
#   1. installs Debian's docker.io, busybox-static, iproute2, iptables, for
#      the Git and SSH tests openssh-server, gnupg, git and curl, and for the
#      dashboard's browser test chromium, when missing;
#   2. starts the default dockerd (/var/run/docker.sock) when nothing answers there,
#      in the background, logging to /tmp/dockerd.log, choosing a storage driver
#      (overlay2, falling back to vfs) and iptables mode that work on this machine;
#   3. builds the offline test images maestro-test/busybox:1 and :2 when missing;
#   4. builds Caddy (the front proxy) from the Go module proxy into
#      ~/.cache/maestro-sync/caddy once (about 4 minutes cold), and imports
#      maestro-test/caddy:2 from it and the busybox rootfs when missing;
#   5. builds the CNCF Distribution registry from the Go module proxy into
#      ~/.cache/maestro-sync/registry once (about 3 minutes cold): the tests
#      that pull, push and build start their own registry from it.
#
# It is idempotent: run it as often as you like. Nothing is pulled from a
# public registry.
#
# Environment:
#   MAESTRO_DOCKERD_LOG             dockerd log file (default /tmp/dockerd.log)
#   MAESTRO_DOCKERD_TIMEOUT         seconds to wait for dockerd (default 60)
#   MAESTRO_DOCKER_STORAGE_DRIVER   force a storage driver (default: overlay2, then vfs)
#   MAESTRO_DOCKER_IPTABLES         "true" or "false" to force dockerd's --iptables
set -euo pipefail

readonly SOCK=/var/run/docker.sock
readonly PIDFILE=/var/run/docker.pid
readonly DATA_ROOT=/var/lib/docker
readonly LOG=${MAESTRO_DOCKERD_LOG:-/tmp/dockerd.log}
readonly TIMEOUT=${MAESTRO_DOCKERD_TIMEOUT:-60}
readonly REPO=maestro-test/busybox
# Bump when the content of the test images changes: images carrying another
# value are rebuilt.
readonly BED_VERSION=1
readonly PROXY_REPO=maestro-test/caddy:2
readonly CADDY_VERSION=v2.11.9
# Keep in step with dockertest.RegistryVersion.
readonly REGISTRY_VERSION=v3.1.2
readonly CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/maestro-sync

started=$SECONDS

say() { printf 'docker-setup: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# SUDO prefixes the commands that need root.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo)"
	SUDO=(sudo)
fi

workdir=
trap '[ -z "$workdir" ] || rm -rf "$workdir"' EXIT

# dock runs the docker CLI against the default engine, whatever DOCKER_HOST or
# the CLI's current context say.
dock() { env -u DOCKER_HOST -u DOCKER_CONTEXT docker -H "unix://$SOCK" "$@"; }

engine_up() { dock version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# alive PID: the process exists and is not a zombie.
alive() {
	local state
	[ -r "/proc/$1/stat" ] || return 1
	read -r _ _ state _ <"/proc/$1/stat" || return 1
	[ "$state" != Z ]
}

log_tail() {
	say "last lines of $LOG:"
	tail -n 25 "$LOG" >&2 || true
}

# ---------------------------------------------------------------- packages

install_packages() {
	local missing=()
	command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
	command -v docker >/dev/null 2>&1 || missing+=(docker.io)
	# The dynamic busybox package is useless inside an image without libc.
	if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" != "install ok installed" ]; then
		missing+=(busybox-static)
	fi
	command -v ip >/dev/null 2>&1 || missing+=(iproute2)
	command -v iptables >/dev/null 2>&1 || missing+=(iptables)
	[ -x /usr/sbin/sshd ] || missing+=(openssh-server) # SSH tunnels and Git over SSH in tests
	command -v gpg >/dev/null 2>&1 || missing+=(gnupg)  # signed commits in tests
	command -v git >/dev/null 2>&1 || missing+=(git)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	# The dashboard's browser test: headless Chromium, and a font.
	command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
	[ "${#missing[@]}" -eq 0 ] && return 0

	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
	say "installing ${missing[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# The package scripts may fail to start the service (no init system in a
	# sandbox); that is fine: dockerd is started below.
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
	[ -x /bin/busybox ] || die "/bin/busybox still missing after installing busybox-static"
}

# ---------------------------------------------------------------- dockerd

# storage_candidates prints the storage drivers to try, in order: a forced one;
# else the one /var/lib/docker already holds (so images are kept), then overlay2,
# then vfs (slow but works on any filesystem).
storage_candidates() {
	if [ -n "${MAESTRO_DOCKER_STORAGE_DRIVER:-}" ]; then
		echo "$MAESTRO_DOCKER_STORAGE_DRIVER"
		return
	fi
	local d out=()
	for d in overlay2 vfs; do
		[ -d "$DATA_ROOT/$d" ] && out+=("$d")
	done
	out+=(overlay2 vfs)
	printf '%s\n' "${out[@]}" | awk '!seen[$0]++'
}

# iptables_candidates prints the --iptables values to try: "true" only when the
# nat and filter tables can be read (a sandbox often lacks the modules).
iptables_candidates() {
	if [ -n "${MAESTRO_DOCKER_IPTABLES:-}" ]; then
		echo "$MAESTRO_DOCKER_IPTABLES"
		return
	fi
	if command -v iptables >/dev/null 2>&1 &&
		"${SUDO[@]}" iptables -t nat -n -L >/dev/null 2>&1 &&
		"${SUDO[@]}" iptables -t filter -n -L >/dev/null 2>&1; then
		echo true
	fi
	echo false
}

# try_dockerd DRIVER IPTABLES: starts dockerd and waits until it answers.
# Returns 0 when it does, 1 when dockerd exited (try another configuration),
# and dies when it hangs.
try_dockerd() {
	local driver=$1 iptables=$2 pid waited=0
	{
		echo
		echo "=== $(date -u +%FT%TZ) docker-setup: dockerd --storage-driver=$driver --iptables=$iptables"
	} >>"$LOG"
	# setsid: the engine must outlive this script and ignore ^C sent to `make test`.
	"${SUDO[@]}" setsid dockerd --host "unix://$SOCK" --pidfile "$PIDFILE" \
		--storage-driver="$driver" --iptables="$iptables" \
		</dev/null >>"$LOG" 2>&1 &
	pid=$!
	while ! engine_up; do
		if ! alive "$pid"; then
			wait "$pid" 2>/dev/null || true
			say "dockerd --storage-driver=$driver --iptables=$iptables exited at start"
			return 1
		fi
		if [ "$waited" -ge $((TIMEOUT * 10)) ]; then
			log_tail
			die "dockerd (pid $pid) did not answer on $SOCK within ${TIMEOUT}s; it is left running"
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	return 0
}

start_dockerd() {
	# Someone (init system, another run of this script) may be starting it now.
	if [ -s "$PIDFILE" ] && alive "$(cat "$PIDFILE")" &&
		grep -q dockerd "/proc/$(cat "$PIDFILE")/comm" 2>/dev/null; then
		say "dockerd (pid $(cat "$PIDFILE")) is running but not answering yet; waiting"
		local i
		for ((i = 0; i < TIMEOUT * 10; i++)); do
			engine_up && return 0
			sleep 0.1
		done
		log_tail
		die "dockerd (pid $(cat "$PIDFILE")) does not answer on $SOCK"
	fi

	local driver iptables
	for driver in $(storage_candidates); do
		for iptables in $(iptables_candidates); do
			if try_dockerd "$driver" "$iptables"; then
				say "dockerd started (storage driver $driver, iptables $iptables), log in $LOG"
				return 0
			fi
		done
	done
	log_tail
	die "dockerd did not start with any storage driver ($(storage_candidates | xargs)); see $LOG"
}

# ---------------------------------------------------------------- images

image_ok() {
	local v
	v=$(dock image inspect --format '{{index .Config.Labels "io.maestro-test.bed"}}' "$1" 2>/dev/null) || return 1
	[ "$v" = "$BED_VERSION" ]
}

# build_image VERSION: imports REPO:VERSION from a rootfs made of busybox-static.
# The versions differ in a label and in /etc/maestro-test-version and
# /www/index.html, so their image IDs differ and a container shows which one it runs.
build_image() {
	local version=$1 root tarball
	[ -n "$workdir" ] || workdir=$(mktemp -d)
	root=$workdir/rootfs-$version
	busybox_rootfs "$root"
	echo "$version" >"$root/etc/maestro-test-version"
	echo "$REPO:$version" >"$root/www/index.html"
	tarball="$root.tar"
	tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$tarball" .
	dock import \
		--change 'CMD ["sh"]' \
		--change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
		--change 'WORKDIR /' \
		--change "LABEL io.maestro-test.bed=$BED_VERSION io.maestro-test.version=$version" \
		--message "maestro-sync test image $version (busybox-static)" \
		"$tarball" "$REPO:$version" >/dev/null
	rm -rf "$root" "$tarball"
	say "built $REPO:$version"
}

# busybox_rootfs DIR: a rootfs of busybox-static applets in DIR.
busybox_rootfs() {
	local root=$1 applet
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,www,root,proc,sys,dev,var/run}
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	while read -r applet; do
		case "$applet" in
		"" | bin/busybox | linuxrc) continue ;;
		esac
		ln -sf /bin/busybox "$root/$applet"
	done < <(/bin/busybox --list-full)
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# go_binary NAME PACKAGE VERSION WHAT MINUTES prints the path of a static
# binary NAME of the Go PACKAGE at VERSION, built once from the Go module
# proxy into $CACHE/NAME (WHAT and MINUTES describe the build).
go_binary() {
	local name=$1 pkg=$2 version=$3 what=$4 minutes=$5
	local bin=$CACHE/$name/$name-$version go
	if [ ! -x "$bin" ]; then
		go=$(command -v go || echo /usr/local/go/bin/go)
		say "building $what $version from the Go module proxy (once, about $minutes minutes)"
		mkdir -p "$CACHE/$name"
		CGO_ENABLED=0 GOBIN="$CACHE/$name/build" "$go" install -trimpath -ldflags '-s -w' "$pkg@$version" >&2
		mv "$CACHE/$name/build/$name" "$bin"
		rmdir "$CACHE/$name/build" 2>/dev/null || true
	fi
	echo "$bin"
}

# caddy_binary prints the path of a static Caddy $CADDY_VERSION.
caddy_binary() { go_binary caddy github.com/caddyserver/caddy/v2/cmd/caddy "$CADDY_VERSION" caddy 4; }

# registry_binary builds the CNCF Distribution registry $REGISTRY_VERSION
# (test/dockertest.StartRegistry runs it).
registry_binary() {
	go_binary registry github.com/distribution/distribution/v3/cmd/registry "$REGISTRY_VERSION" "the CNCF Distribution registry" 3 >/dev/null
}

# build_proxy_image imports PROXY_REPO: Caddy with busybox, as the official
# caddy:2 image (Alpine) has both.
build_proxy_image() {
	local root bin
	bin=$(caddy_binary)
	[ -n "$workdir" ] || workdir=$(mktemp -d)
	root=$workdir/rootfs-caddy
	busybox_rootfs "$root"
	mkdir -p "$root/etc/caddy" "$root/config" "$root/data"
	cp "$bin" "$root/usr/bin/caddy"
	tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$root.tar" .
	dock import \
		--change 'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]' \
		--change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data' \
		--change 'WORKDIR /srv' \
		--change "LABEL io.maestro-test.bed=$BED_VERSION io.maestro-test.caddy=$CADDY_VERSION" \
		--message "maestro-sync test proxy image (caddy $CADDY_VERSION, busybox-static)" \
		"$root.tar" "$PROXY_REPO" >/dev/null
	rm -rf "$root" "$root.tar"
	say "built $PROXY_REPO"
}

proxy_image_ok() {
	local v
	v=$(dock image inspect --format '{{index .Config.Labels "io.maestro-test.caddy"}}' "$PROXY_REPO" 2>/dev/null) || return 1
	[ "$v" = "$CADDY_VERSION" ]
}

build_images() {
	local v
	for v in 1 2; do
		image_ok "$REPO:$v" || build_image "$v"
	done
	proxy_image_ok || build_proxy_image
	# Containers must really run here (cgroups, seccomp, mounts...).
	local out
	if ! out=$(dock run --rm --network none "$REPO:1" cat /etc/maestro-test-version 2>&1) || [ "$out" != 1 ]; then
		log_tail
		die "the engine answers but cannot run a container: $out"
	fi
}

# ---------------------------------------------------------------- main

install_packages
command -v docker >/dev/null 2>&1 || die "no docker CLI in PATH"
engine_up || start_dockerd
# An engine whose default bridge interface was deleted under it (by hand, or
# by a network cleanup) answers but cannot start a container on the default
# network: restart it, which creates the bridge again.
if engine_up && ! ip link show docker0 >/dev/null 2>&1 &&
	[ "$(dock network inspect bridge --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null)" = docker0 ]; then
	say "the default bridge docker0 is missing: restarting dockerd"
	pid=$(cat "$PIDFILE" 2>/dev/null || true)
	[ -n "$pid" ] && "${SUDO[@]}" kill "$pid" 2>/dev/null || true
	for ((i = 0; i < TIMEOUT * 10; i++)); do
		{ [ -n "$pid" ] && alive "$pid"; } || break
		sleep 0.1
	done
	start_dockerd
fi
build_images
registry_binary

info=$(dock info --format '{{.ServerVersion}} {{.Driver}}')
id1=$(dock image inspect --format '{{.Id}}' "$REPO:1")
id2=$(dock image inspect --format '{{.Id}}' "$REPO:2")
[ "$id1" != "$id2" ] || die "$REPO:1 and :2 have the same image ID"
echo "docker-setup: ok: dockerd ${info%% *} on $SOCK (storage ${info#* }), images $REPO:1 (${id1:7:12}) $REPO:2 (${id2:7:12}), $((SECONDS - started))s"
