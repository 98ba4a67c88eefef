#!/usr/bin/env bash
# bench/run.sh — the rb proxy against HAProxy and NGINX on loopback (issue 4's
# figures): wrk throughput/latency as ratios to a direct backend, weighted
# distribution efficiency, and open-loop latency over heterogeneous backends.
#
#   bench/run.sh                      # everything, about 8 minutes
#   bench/run.sh -parts het           # one part (wrk, eta, het); any proxybench flag passes through
#
# Installs what is missing (wrk, haproxy, nginx-light from Debian; vegeta with
# go install), builds rb and the driver (bench/cmd/proxybench), and runs the
# driver pinned to LOAD_CPUS: wrk, vegeta and the backends run there, every
# proxy under test on PROXY_CPUS with one worker. The table is printed and
# written to OUT (default bench/out/proxy.md).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/bench/out/proxy.md}
VEGETA_VERSION=v12.13.0

log() { printf '[bench] %s\n' "$*" >&2; }

# --- dependencies ---------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
[ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v taskset >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	log "installing ${need_apt[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

GOBIN=$(go env GOBIN)
[ -n "$GOBIN" ] || GOBIN=$(go env GOPATH)/bin
VEGETA=$GOBIN/vegeta
if ! go version -m "$VEGETA" 2>/dev/null | grep "github.com/tsenart/vegeta/v12[[:space:]]*$VEGETA_VERSION" >/dev/null; then
	log "installing vegeta $VEGETA_VERSION"
	(cd / && GOFLAGS= go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION")
fi

# Versions: wrk 4, HAProxy ≥ 2.4 (http-reuse always, -db), NGINX ≥ 1.19.5 (-e).
wrk_v=$(wrk -v 2>&1 | sed -n 1p || true)
haproxy_v=$(/usr/sbin/haproxy -v | sed -n 1p | awk '{print $3}')
nginx_v=$(/usr/sbin/nginx -v 2>&1 | sed 's|.*nginx/||')
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | sed -n 1p)" = "$2" ]; }
case "$wrk_v" in *" 4."* | *"/4."*) ;; *) log "wrk 4 required, found: $wrk_v"; exit 1 ;; esac
version_ge "${haproxy_v%%-*}" 2.4 || { log "HAProxy ≥ 2.4 required, found $haproxy_v"; exit 1; }
version_ge "$nginx_v" 1.19.5 || { log "NGINX ≥ 1.19.5 required, found $nginx_v"; exit 1; }
log "wrk: $wrk_v; HAProxy $haproxy_v; NGINX $nginx_v; vegeta $VEGETA_VERSION"

# --- build ------------------------------------------------------------------
BUILD=$(mktemp -d /tmp/rb-bench-build.XXXXXX)
driver_pid=
cleanup() {
	if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
		kill -TERM "$driver_pid" 2>/dev/null || true
		wait "$driver_pid" 2>/dev/null || true
	fi
	rm -rf "$BUILD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building rb and the driver"
go build -o "$BUILD/rb" ./services/rb
go build -o "$BUILD/proxybench" ./bench/cmd/proxybench
"$BUILD/rb" -list-targets | grep "^proxy " >/dev/null || { log "this rb has no proxy target"; exit 1; }

# --- placement ----------------------------------------------------------------
ncpu=$(nproc --all)
if [ "$ncpu" -ge 2 ]; then
	PROXY_CPUS=${PROXY_CPUS:-0}
	LOAD_CPUS=${LOAD_CPUS:-1}
	pin=(taskset -c "$LOAD_CPUS")
	placement="wrk, vegeta, the η client and the backends (in the bench process) pinned to CPU $LOAD_CPUS."
else
	PROXY_CPUS=
	pin=()
	placement="one CPU: nothing pinned."
fi

rb_version=$(git describe --always --dirty 2>/dev/null || echo unknown)
log "running (proxies on CPU ${PROXY_CPUS:-any}, load on CPU ${LOAD_CPUS:-any}); report: $OUT"
"${pin[@]}" "$BUILD/proxybench" \
	-rb "$BUILD/rb" -vegeta "$VEGETA" -proxy-cpus "$PROXY_CPUS" \
	-out "$OUT" -rb-version "$rb_version" -placement "$placement" \
	-command "bench/run.sh${*:+ $*}" "$@" &
driver_pid=$!
wait "$driver_pid"
