#!/usr/bin/env bash
# Rehearses the production stack on this machine, on a real Docker engine: builds the images from
# docker/Dockerfile's runtime stages, brings up compose.yaml itself (plus the override
# docker/compose.rehearsal.yaml: fixture models, local stand-ins for registry images), waits for
# every healthcheck, smoke-tests through the `local` profile's 127.0.0.1:8080 (a miss, a hit served
# via Redis, the reranker killed and back, Qdrant killed and back, the gateway killed and back with
# its data), checks that nothing else is published, and tears everything down. Needs root (apt,
# dockerd). Prints a timing per phase.
#
# The Qdrant stand-in image needs a Qdrant server binary (QDRANT_BIN, or .qdrant/bin/qdrant from
# scripts/install-qdrant.sh), which no package registry ships. Without one the gateway runs on its
# embedded store (docker/compose.embedded.yaml, the Qdrant service dropped), every check that
# still applies runs, and the ones left out are named at the end.
#
#   scripts/rehearse.sh [--profile release|debug]   # which host build of the binaries to package
#
# What it replaces: Docker Hub is out of reach, so debian:bookworm-slim is made with debootstrap;
# the Dockerfile's onnxruntime and chef/planner/builder stages (python and rust base images) are
# replaced by images holding what the host built (BINARIES / ONNXRUNTIME build args); Redis,
# Qdrant and nginx run from Debian-based stand-ins (docker/rehearsal.Dockerfile).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

profile=release
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "rehearse: unknown argument $1" >&2; exit 64 ;;
    esac
done
work="$root/target/rehearsal"
qdrant_bin="${QDRANT_BIN:-$root/.qdrant/bin/qdrant}"
if [ -x "$qdrant_bin" ]; then with_qdrant=true; else with_qdrant=false; fi
left_out=()
mkdir -p "$work"
started=$(date +%s)
phase_started=$started
phase() {
    local now; now=$(date +%s)
    echo "rehearse: [$((now - phase_started)) s] $1 done (total $((now - started)) s)"
    phase_started=$now
}
fail() { echo "rehearse: FAILED: $*" >&2; echo "rehearsal: $passed passed, 1 failed"; exit 1; }
passed=0
check() { passed=$((passed + 1)); echo "  ok: $*"; }

# 1. The engine, Compose v1 and debootstrap from Debian. docker.io's own client, since a newer
#    client elsewhere on PATH would want the buildx plugin for BuildKit.
missing=()
for tool in dockerd:docker.io /usr/bin/docker:docker.io docker-compose:docker-compose debootstrap:debootstrap; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
    echo "rehearse: installing $packages(Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $packages iptables >/dev/null
fi
docker=/usr/bin/docker
dockerd_pid=""
compose=(docker-compose -p semsearch -f compose.yaml -f docker/compose.rehearsal.yaml --profile local)
if ! $with_qdrant; then
    echo "rehearse: no Qdrant server binary (set QDRANT_BIN): the gateway runs on its embedded store"
    compose=(docker-compose -p semsearch -f compose.yaml -f docker/compose.rehearsal.yaml -f docker/compose.embedded.yaml --profile local)
fi
cleanup() {
    local status=$?
    if [ -n "${REDIS_PASSWORD:-}" ]; then
        "${compose[@]}" down -v --remove-orphans >"$work/down.log" 2>&1 || true
    fi
    rm -f "$work/compose.merged.yaml"
    # The previous run's images, replaced by this run's tags, and the build cache: each run copies
    # the binaries in again, which would otherwise pile up run after run.
    $docker image prune -f >/dev/null 2>&1 || true
    $docker builder prune -f >/dev/null 2>&1 || true
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    [ $status -eq 0 ] || echo "rehearse: logs in $work" >&2
    exit $status
}
trap cleanup EXIT
if ! $docker info >/dev/null 2>&1; then
    echo "rehearse: starting dockerd (no init system here; stopped by its PID at the end)"
    dockerd >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 100); do $docker info >/dev/null 2>&1 && break; sleep 0.2; done
    $docker info >/dev/null 2>&1 || fail "dockerd did not start: $(tail -5 "$work/dockerd.log")"
fi
phase "engine ($($docker version --format '{{.Server.Version}}'), $(docker-compose version --short))"

# 2. The base image every runtime stage uses, from Debian's archive.
if ! $docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
        || fail "debootstrap: $(tail -3 "$work/debootstrap.log")"
    tar -C "$work/rootfs" -c . | $docker import - debian:bookworm-slim >/dev/null
    rm -rf "$work/rootfs"
fi
phase "base image debian:bookworm-slim (debootstrap, bookworm minbase)"

# 3. What the host built, and the stand-ins.
if [ "$profile" = release ]; then
    cargo build --release --locked -p embed-service -p rerank-service -p search-gateway
fi
context="$work/context"
rm -rf "$context" && mkdir -p "$context/out"
for binary in embed-service rerank-service search-gateway; do
    [ -x "target/$profile/$binary" ] || fail "target/$profile/$binary is missing (cargo build --workspace --bins)"
    # Without debug info: the images need none, and a debug build's would be ~1.5 GB to copy.
    strip --strip-debug -o "$context/out/$binary" "target/$profile/$binary"
done
[ -f .ort/lib/libonnxruntime.so ] || fail "run scripts/setup.sh first"
cp .ort/lib/libonnxruntime.so "$context/"
stages=(binaries onnxruntime redis nginx)
if $with_qdrant; then
    cp "$qdrant_bin" "$context/qdrant"
    stages+=(qdrant)
fi
export DOCKER_BUILDKIT=1
for stage in "${stages[@]}"; do
    $docker build -q -f docker/rehearsal.Dockerfile --target "$stage" -t "semsearch-rehearsal/$stage" "$context" >/dev/null \
        || fail "building the $stage stand-in"
done
phase "stand-in images (${stages[*]}; binaries: target/$profile)"
for service in embed-service rerank-service search-gateway; do
    $docker build -q -f docker/Dockerfile --target "$service" \
        --build-arg BINARIES=semsearch-rehearsal/binaries --build-arg ONNXRUNTIME=semsearch-rehearsal/onnxruntime \
        -t "semsearch/$service:latest" . >/dev/null || fail "building $service"
done
$docker images --format '  {{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "semsearch|debian" || true
phase "service images (docker/Dockerfile runtime stages)"

# 4. The stack: compose.yaml itself plus the override, with throwaway secrets.
REDIS_PASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
QDRANT_API_KEY="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REDIS_PASSWORD QDRANT_API_KEY
if ! $with_qdrant; then
    # The merged configuration without the Qdrant service and the gateway's wait for it: nothing
    # uses it, and no image of it can be made here. Everything else is compose.yaml's own.
    "${compose[@]}" config >"$work/compose.merged.yaml" || fail "compose config"
    .venv/bin/python - "$work/compose.merged.yaml" <<'PY' || fail "dropping the Qdrant service"
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(path))
del config["services"]["qdrant"]
config["services"]["search-gateway"]["depends_on"].pop("qdrant")
config.get("volumes", {}).pop("qdrant-storage", None)
yaml.safe_dump(config, open(path, "w"), sort_keys=False)
PY
    compose=(docker-compose -p semsearch -f "$work/compose.merged.yaml" --profile local)
    left_out+=("Qdrant healthy; Qdrant killed: 503 vector_store_unavailable, started again: data kept (no Qdrant server)")
fi
if ! "${compose[@]}" up -d --no-build >"$work/up.log" 2>&1; then
    # Compose names the container it gave up on, not why: each service's last lines say that.
    "${compose[@]}" logs --no-color --tail 30 >"$work/services.log" 2>&1 || true
    fail "compose up: $(tail -5 "$work/up.log")
$(cat "$work/services.log")"
fi
container() { "${compose[@]}" ps -q "$1"; }
health() { $docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(container "$1")"; }
wait_healthy() {
    local service=$1 deadline=$(( $(date +%s) + ${2:-300} ))
    until [ "$(health "$service")" = healthy ]; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$service is $(health "$service"): $("${compose[@]}" logs --tail 20 "$service")"
        sleep 1
    done
}
services=(redis embed-service rerank-service search-gateway)
$with_qdrant && services=(redis qdrant embed-service rerank-service search-gateway)
for service in "${services[@]}"; do
    wait_healthy "$service"
done
for _ in $(seq 60); do curl -sf http://127.0.0.1:8080/health >/dev/null && break; sleep 1; done
for service in "${services[@]}" gateway-local-port; do
    echo "  $service: $(health "$service")"
done
check "every healthcheck healthy (${services[*]})"
phase "stack up, every healthcheck healthy"

# 5. Smoke tests through the only published port.
api=http://127.0.0.1:8080
field() { python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"; }
search() { curl -s "$api/search" -H 'content-type: application/json' -d "$1"; }
documents='{"documents": [
  {"id": "p1", "text": "Rust engineer in Paris building search engines", "payload": {"city": "Paris"}},
  {"id": "p2", "text": "Pastry chef in Lyon", "payload": {"city": "Lyon"}},
  {"id": "p3", "text": "Data scientist in Berlin, machine learning", "payload": {"city": "Berlin"}},
  {"id": "p4", "text": "Backend developer (Go, Rust) in Paris", "payload": {"city": "Paris"}}]}'
upserted=$(curl -s -X PUT "$api/collections/profiles/documents" -H 'content-type: application/json' -d "$documents" | field upserted)
[ "$upserted" = 4 ] || fail "upsert: $upserted"
first=$(search '{"query": "rust engineer"}')
[ "$(field cache <<<"$first")/$(field rerank <<<"$first")" = miss/applied ] || fail "first search: $first"
second=$(search '{"query": "rust engineer"}')
[ "$(field cache <<<"$second")" = hit ] || fail "second search: $second"
keys=$("${compose[@]}" exec -T redis redis-cli --no-auth-warning -a "$REDIS_PASSWORD" KEYS 'sg:v1:search:*')
[ -n "$keys" ] || fail "no result cached in Redis"
check "upsert 4, search miss + rerank applied, then a hit served from Redis ($(wc -l <<<"$keys") key)"

$docker kill "$(container rerank-service)" >/dev/null
fallback=$(search '{"query": "pastry chef"}')
[ "$(field rerank <<<"$fallback")" = fallback ] || fail "with the reranker killed: $fallback"
$docker start "$(container rerank-service)" >/dev/null
wait_healthy rerank-service 120
applied=$(search '{"query": "data scientist"}')
[ "$(field rerank <<<"$applied")" = applied ] || fail "with the reranker back: $applied"
check "rerank-service killed: rerank fallback; started again: applied"

hits() { python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("hits", [])))'; }
# Waits until a search that skips the cache finds all four documents again.
wait_for_data() {
    for _ in $(seq 60); do
        back=$(search '{"query": "backend developer", "cache": "bypass"}')
        [ "$(hits <<<"$back")" = 4 ] && return 0
        sleep 1
    done
    return 1
}
if $with_qdrant; then
    $docker kill "$(container qdrant)" >/dev/null
    down=$(curl -s -o /dev/stderr -w '%{http_code}' "$api/search" -H 'content-type: application/json' \
        -d '{"query": "backend developer", "cache": "bypass"}' 2>"$work/qdrant-down.json")
    [ "$down" = 503 ] && grep -q vector_store_unavailable "$work/qdrant-down.json" || fail "with Qdrant killed: $down"
    $docker start "$(container qdrant)" >/dev/null
    wait_healthy qdrant 120
    wait_for_data || fail "Qdrant back, its data kept: $back"
    check "qdrant killed: 503 vector_store_unavailable; started again: 4 hits, data kept"
fi

# kill -9 of the gateway: with the embedded store its data is its own (acknowledged = durable).
$docker kill "$(container search-gateway)" >/dev/null
$docker start "$(container search-gateway)" >/dev/null
wait_healthy search-gateway 120
# The loopback forwarder resolved the gateway's address once, at its start.
$docker restart "$(container gateway-local-port)" >/dev/null
for _ in $(seq 60); do curl -sf "$api/health" >/dev/null && break; sleep 1; done
wait_for_data || fail "gateway back, the data kept: $back"
check "search-gateway killed (SIGKILL) and started again: 4 hits, data kept ($($docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$(container search-gateway)" | grep -q '^QDRANT_URL=http' && echo 'on Qdrant' || echo 'embedded store'))"

published=$($docker ps --filter label=com.docker.compose.project=semsearch --format '{{.Names}} {{.Ports}}' | grep -- '->' || true)
[ "$(wc -l <<<"$published")" = 1 ] && grep -q 'gateway-local-port.*127.0.0.1:8080->8080/tcp' <<<"$published" \
    || fail "published ports: $published"
check "published: $published (nothing else)"
phase "smoke tests"
for check in "${left_out[@]}"; do
    echo "  LEFT OUT: $check"
done
echo "rehearse: ok in $(( $(date +%s) - started )) s"
echo "rehearsal: $passed passed, 0 failed"
