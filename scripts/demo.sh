#!/usr/bin/env bash
# make demo: deploy examples/ to the local Docker engine and show the result.
# Installs and starts Docker when missing (scripts/docker-setup.sh), builds
# the demo image offline, applies the example repository and prints status.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

./scripts/docker-setup.sh

# The demo images: the offline busybox and Caddy images the test bed builds.
docker tag maestro-test/busybox:1 maestro-demo/busybox:1
docker tag maestro-test/caddy:2 maestro-demo/caddy:2

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
echo "== the shop answers, through the front proxy"
curl -fsS http://127.0.0.1:28080/index.html

# A change goes out while a request loop hits the shop every 20 ms: the new
# web container runs beside the old one, the proxy switches once it is
# healthy, and no request fails.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r examples/. "$work/"
# The copy deploys as the same owner as examples/ (see README, Owners).
owner=$({ "$bin" plan examples -o json || true; } | sed -n 's/^ *"owner": *"\([^"]*\)".*/\1/p' | head -1)
export MAESTRO_SYNC_OWNER=$owner
sed -i 's/hello from the shop/hello again from the shop/' "$work/shop/manifest.yml"
loop() {
  local ok=0 failed=0
  while [ ! -e "$work/stop" ]; do
    if curl -fsS -m 5 -o /dev/null http://127.0.0.1:28080/index.html; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
    sleep 0.02
  done
  echo "$ok $failed" >"$work/counts"
}
echo
echo "== a change goes out (GREETING), with requests every 20 ms through the proxy"
loop &
"$bin" apply "$work" -c 4
touch "$work/stop"
wait
read -r ok failed <"$work/counts"
echo "requests during the deploy: $ok answered, $failed failed"
curl -fsS http://127.0.0.1:28080/index.html

echo
echo "== maestro-sync rollback: back to the previous web container, through the proxy"
rm -f "$work/stop"
loop &
"$bin" rollback "$work" web
touch "$work/stop"
wait
read -r ok failed <"$work/counts"
echo "requests during the rollback: $ok answered, $failed failed"
curl -fsS http://127.0.0.1:28080/index.html


echo
echo "== the environment is held on the rollback until its source changes"
"$bin" plan "$work" || [ $? -eq 2 ]
"$bin" rollback "$work" --release web

# The daemon follows examples/ and serves the dashboard; it stops at the
# end of the demo (run it yourself to keep it: the commands are printed).
echo
echo "== maestro-sync run: the daemon and its dashboard"
listen=127.0.0.1:28088
"$bin" run --dir examples --listen "$listen" --data-dir "$work/data" --poll 1h >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
  curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "$bin run --dir examples --listen $listen"
echo "dashboard: http://$listen/  (history: $bin history --server http://$listen)"
if command -v chromium >/dev/null 2>&1; then
  shot=${TMPDIR:-/tmp}/maestro-sync-demo-dashboard.png
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --disable-dev-shm-usage \
    --user-data-dir="$work/chromium" --window-size=1280,1200 --screenshot="$shot" "http://$listen/" >/dev/null 2>&1 &&
    echo "a screenshot of the dashboard: $shot"
fi
curl -fsS "http://$listen/api/v1/status" | sed -n 's/^ *"\(name\|state\)": "\(.*\)",*$/  \1: \2/p'
kill -TERM "$daemon"
wait "$daemon" || true
