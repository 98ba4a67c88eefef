#!/usr/bin/env bash
# The deployment commands behind the Taskfile (task up/down/ps/logs/load/
# build-images); usable without task too:
#
#   deploy/stack.sh images            build the static binaries on the host and the local images
#   deploy/stack.sh up [dev|prod|slim]    images, .env, compose up, wait until every service is healthy and a worker answers
#   deploy/stack.sh wait [ENV]        wait until every service of the running stack is healthy
#   deploy/stack.sh down [ENV]        remove the stack's containers and networks and the workers it started
#   deploy/stack.sh ps [ENV]          the stack's containers and its workers
#   deploy/stack.sh logs [ENV] [compose logs args...]
#   deploy/stack.sh load [loadgen flags...]   a bounded load through the proxy (deploy/loadgen)
#   deploy/stack.sh compose [ENV] ARGS...     any compose command on the stack
#
# Settings come from the shell, else from ENV_FILE (default .env, created from
# .env.example when missing), else the defaults here. Also read: ENV (dev),
# WAIT_TIMEOUT (s), PURGE=1 (down also removes the stack's volumes),
# NO_BUILD=1 (up uses the images as they are).
#
# Docker hygiene: only objects of this stack are ever removed: containers and
# networks carrying the compose project label, and workers labelled
# rb.app=<APP_IDENTIFIER>. Nothing is pruned.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
ENV_FILE="${ENV_FILE:-.env}"
# No BuildKit: machines without a registry have no buildx, and the images are
# FROM scratch + COPY, which the legacy builder does fine.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

# setting NAME DEFAULT: the shell's value, else the last NAME= line of
# ENV_FILE, else DEFAULT (an empty value counts as unset, like ${NAME:-x} in
# the compose files).
setting() {
  local name="$1" def="${2-}" v="${!1-}"
  if [ -z "$v" ] && [ -f "$ENV_FILE" ]; then
    v="$(sed -n "s/^[[:space:]]*$name=//p" "$ENV_FILE" | tail -n 1 | sed 's/[[:space:]]*$//')"
    v="${v%\"}"; v="${v#\"}"
  fi
  printf '%s' "${v:-$def}"
}

ensure_env_file() {
  if [ ! -f "$ENV_FILE" ]; then
    [ "$ENV_FILE" = .env ] || die "ENV_FILE=$ENV_FILE does not exist"
    cp .env.example .env
    say "created .env from .env.example (edit it to change the settings)"
  fi
}

stack_env() {
  case "${1:-${ENV:-dev}}" in
    dev | prod | slim) printf '%s' "${1:-${ENV:-dev}}" ;;
    *) die "ENV=${1:-${ENV:-}}: want dev, prod or slim" ;;
  esac
}

# compose_cmd picks `docker compose` (v2 plugin) when it works, else
# docker-compose (v1), as the prototype's script did.
compose_cmd() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' nor 'docker-compose' works; install one (Debian: apt-get install docker-compose)"
  fi
}

# load_settings resolves what the compose files and the cleanup need and
# exports it, so compose sees the same values as this script.
load_settings() {
  ensure_env_file
  PROJECT="$(setting COMPOSE_PROJECT_NAME rustybalancer)"
  APP="$(setting APP_IDENTIFIER RUSTYBALANCER)"
  WORKER_NET="$(setting RB_DOCKER_NETWORK rustybalancer-workers)"
  RB_IMAGE="$(setting RB_IMAGE rustybalancer/rb:local)"
  REDIS_IMAGE="$(setting REDIS_IMAGE rustybalancer/redis:local)"
  WORKER_IMAGE="$(setting RB_DEMO_WORKER_IMAGE rustybalancer/worker:local)"
  LOADGEN_IMAGE="$(setting RB_LOADGEN_IMAGE rustybalancer/loadgen:local)"
  DOCKER_SOCKET="$(setting DOCKER_SOCKET /var/run/docker.sock)"
  DOCKER_GID="$(setting DOCKER_GID "")"
  if [ -z "$DOCKER_GID" ]; then
    DOCKER_GID="$(stat -c %g "$DOCKER_SOCKET" 2>/dev/null || echo 0)"
  fi
  WAIT_TIMEOUT="$(setting WAIT_TIMEOUT 180)"
  export COMPOSE_PROJECT_NAME="$PROJECT" APP_IDENTIFIER="$APP" RB_DOCKER_NETWORK="$WORKER_NET" \
    RB_IMAGE REDIS_IMAGE RB_DEMO_WORKER_IMAGE="$WORKER_IMAGE" RB_LOADGEN_IMAGE="$LOADGEN_IMAGE" \
    DOCKER_SOCKET DOCKER_GID RB_ENV_FILE="$ENV_FILE"
}

# compose ENV ARGS... runs compose on the stack's files.
compose() {
  local env="$1"
  shift
  local files
  case "$env" in
    prod) files=(-f docker-compose.yaml) ;;
    dev) files=(-f docker-compose.yaml -f docker-compose.dev.yaml) ;;
    slim) files=(-f docker-compose.slim.yaml) ;;
  esac
  "${COMPOSE[@]}" --env-file "$ENV_FILE" -p "$PROJECT" "${files[@]}" "$@"
}

# build_image TAG DOCKER-BUILD-ARGS...: builds with the legacy builder and
# removes the image the tag pointed to before when nothing else uses it (so
# rebuilds leave no dangling images of ours behind).
build_image() {
  local tag="$1" old new
  shift
  old="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
  docker build -q -t "$tag" "$@" >/dev/null 2> >(grep -v -e DEPRECATED -e 'legacy builder' -e BuildKit -e 'environment-variable' >&2 || true)
  new="$(docker image inspect -f '{{.Id}}' "$tag")"
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  say "image $tag ${new:7:12}"
}

cmd_images() {
  load_settings
  local version
  version="$(git describe --always --dirty 2>/dev/null || echo dev)"
  mkdir -p deploy/build/data
  say "building static binaries (rb, worker, loadgen)"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o deploy/build/rb ./services/rb
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o deploy/worker/worker ./deploy/worker
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o deploy/build/loadgen ./deploy/loadgen
  build_image "$RB_IMAGE" deploy
  build_image "$WORKER_IMAGE" deploy/worker
  build_image "$LOADGEN_IMAGE" -f deploy/loadgen/Dockerfile deploy
  if [ "$REDIS_IMAGE" = rustybalancer/redis:local ]; then
    deploy/redis/rootfs.sh
    build_image "$REDIS_IMAGE" deploy/redis
  elif ! docker image inspect "$REDIS_IMAGE" >/dev/null 2>&1; then
    say "pulling $REDIS_IMAGE"
    docker pull -q "$REDIS_IMAGE" >/dev/null || die "cannot pull REDIS_IMAGE=$REDIS_IMAGE; without a registry leave REDIS_IMAGE=rustybalancer/redis:local"
  fi
}

# health ID prints "<service> <health, else state> <state> <restarts>".
health() {
  docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}} {{.State.Status}} {{.RestartCount}}' "$1" 2>/dev/null ||
    echo "? gone gone 0"
}

cmd_wait() {
  local env="$1" services svc id deadline st bad
  services="$(compose "$env" config --services | grep -vx loadgen || true)"
  deadline=$((SECONDS + WAIT_TIMEOUT))
  while :; do
    bad=()
    for svc in $services; do
      id="$(compose "$env" ps -q "$svc" 2>/dev/null | head -n 1)"
      if [ -z "$id" ]; then
        bad+=("$svc:no-container")
        continue
      fi
      read -r _ st _ _ <<<"$(health "$id")"
      [ "$st" = healthy ] || bad+=("$svc:$st")
    done
    if [ ${#bad[@]} -eq 0 ]; then
      say "every service is healthy: ${services//$'\n'/ }"
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "not healthy after ${WAIT_TIMEOUT}s: ${bad[*]}"
      for svc in "${bad[@]%%:*}"; do
        id="$(compose "$env" ps -q "$svc" 2>/dev/null | head -n 1)"
        [ -n "$id" ] || continue
        say "--- $svc: last health probe output and logs"
        docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Output}}{{end}}{{end}}' "$id" 2>/dev/null | tail -n 5 >&2 || true
        docker logs --tail 30 "$id" >&2 2>&1 || true
      done
      return 1
    fi
    sleep 1
  done
}

# wait_proxy URL waits (bounded) until a worker answers through the proxy:
# healthy services do not mean that the first workers are started and ready.
wait_proxy() {
  local url="$1" bin=deploy/build/loadgen out deadline=$((SECONDS + 90))
  [ -x "$bin" ] || return 0
  while :; do
    if out="$("$bin" -url "$url" -n 1 -rate 1 -timeout 3s -max-failures 0 -progress 0 2>/dev/null)"; then
      say "proxy: $url answered by $(sed -n 's/^by_worker=\(.*\):1$/\1/p' <<<"$out")"
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      say "proxy: no worker answered $url within 90s ($(grep -e '^status=' -e '^errors=' <<<"$out" | tr '\n' ' ')); see task logs -- scaler proxy"
      return 1
    fi
    sleep 1
  done
}

cmd_up() {
  local env
  env="$(stack_env "${1:-}")"
  compose_cmd
  load_settings
  [ "${NO_BUILD:-}" = 1 ] || cmd_images
  say "starting the $env stack (project $PROJECT, app $APP, workers on $WORKER_NET) with ${COMPOSE[*]}"
  compose "$env" up -d --remove-orphans
  cmd_wait "$env"
  local proxy ws http
  proxy="$(setting HOST_PORT_HTTP_BALANCER 2548)"
  wait_proxy "http://127.0.0.1:$proxy/"
  ws="$(setting HOST_PORT_WS_DEPLOYMENT_AGENT 2547)"
  http="$(setting HOST_PORT_HTTP_DEPLOYMENT_AGENT 2550)"
  cat >&2 <<EOF
stack: up ($env):
  proxy           http://127.0.0.1:$proxy/        (curl it: a worker answers)
  dashboard, API  http://127.0.0.1:$http/         (/api/v1/apps/$APP/...)
  WebSocket       ws://127.0.0.1:$ws/ws
  NATS            nats://127.0.0.1:$(setting NATS_HOST_PORT 4222)   (nats sub 'rb.queue.*')
  task ps | task logs | task load | task down
EOF
}

# workers prints the ids of the workers of this app (rb.app=<APP>).
workers() { docker ps -aq --filter "label=rb.app=$APP"; }

# The id lists below are split on purpose: Docker ids are hex, one a line.
# shellcheck disable=SC2086
cmd_down() {
  local env ids
  env="$(stack_env "${1:-}")"
  compose_cmd
  load_settings
  say "removing the stack (project $PROJECT) and the workers labelled rb.app=$APP"
  # Stop every container of the project first (whichever ENV started it:
  # the labels say), so no scaler can start a worker while the workers are
  # being removed.
  ids="$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT")"
  [ -z "$ids" ] || docker stop -t 10 $ids >/dev/null
  ids="$(workers)"
  if [ -n "$ids" ]; then
    say "removing $(echo "$ids" | wc -l) worker(s)"
    docker rm -f -v $ids >/dev/null
  fi
  local vol=()
  [ "${PURGE:-}" = 1 ] && vol=(--volumes)
  compose "$env" down --remove-orphans "${vol[@]}" 2>&1 | grep -v -e ' not found' >&2 || true
  # Whatever another ENV's files defined under the same project name.
  ids="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  ids="$(workers)"
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  ids="$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")"
  [ -z "$ids" ] || docker network rm $ids >/dev/null
  if [ "${PURGE:-}" = 1 ]; then
    ids="$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")"
    [ -z "$ids" ] || docker volume rm $ids >/dev/null
  fi
  local left_c left_n left_w
  left_c="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" | wc -l)"
  left_n="$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" | wc -l)"
  left_w="$(workers | wc -l)"
  if [ "$left_c$left_n$left_w" != 000 ]; then
    die "left behind: $left_c container(s), $left_n network(s), $left_w worker(s)"
  fi
  say "down: no container, network or worker of $PROJECT/$APP left"
}

cmd_ps() {
  local env
  env="$(stack_env "${1:-}")"
  compose_cmd
  load_settings
  compose "$env" ps
  echo
  echo "workers (rb.app=$APP):"
  docker ps -a --filter "label=rb.app=$APP" --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Networks}}'
}

cmd_logs() {
  local env
  env="$(stack_env "${1:-}")"
  shift || true
  compose_cmd
  load_settings
  compose "$env" logs "$@"
}

cmd_load() {
  load_settings
  local port bin=deploy/build/loadgen
  port="$(setting HOST_PORT_HTTP_BALANCER 2548)"
  if [ ! -x "$bin" ]; then
    mkdir -p deploy/build
    CGO_ENABLED=0 go build -trimpath -o "$bin" ./deploy/loadgen
  fi
  # Defaults: 20 req/s of 20 ms of CPU each for 60 s; flags given win (the
  # last occurrence of a flag counts).
  exec "$bin" -url "http://127.0.0.1:$port/work?cpu_ms=20" -rate 20 -duration 60s "$@"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    images) cmd_images ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    wait)
      local env
      env="$(stack_env "${1:-}")"
      compose_cmd
      load_settings
      cmd_wait "$env"
      ;;
    ps) cmd_ps "$@" ;;
    logs) cmd_logs "$@" ;;
    load) cmd_load "$@" ;;
    compose)
      local env
      env="$(stack_env "${1:-}")"
      shift || true
      compose_cmd
      load_settings
      compose "$env" "$@"
      ;;
    *)
      sed -n '2,20p' "$0" >&2
      exit 2
      ;;
  esac
}

main "$@"
