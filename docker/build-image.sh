#!/usr/bin/env bash
# Build the Sluice image locally, from nothing, with no image registry: engine, base image,
# wheelhouse, then `docker build`. Prints the image name on stdout and step timings on stderr.
#
# Why one script: CI, the contract tests and a developer all need the same image the same way.
# Every step skips work already done (engine running, base image label, wheelhouse stamp, the
# engine's layer cache), so a rerun takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${SLUICE_IMAGE:-sluice:local}"
export PYTHON="${PYTHON:-python3}"
started=$SECONDS

timed() {
  local name="$1" t0=$SECONDS; shift
  "$@"
  echo "build-image: $name took $((SECONDS - t0)) s" >&2
}

timed engine docker/ensure-engine.sh
# The base image (debootstrap, CPU-bound) and the wheelhouse (downloads) overlap.
timed wheelhouse docker/build-wheelhouse.sh &
wheelhouse_pid=$!
base="$(timed base docker/build-base.sh)" || { wait "$wheelhouse_pid" || true; exit 1; }
wait "$wheelhouse_pid"
# DOCKER_BUILDKIT=0: the classic builder needs no frontend image from a registry.
docker_build() {
  local log status=0
  log="$(mktemp)"
  DOCKER_BUILDKIT=0 docker build --quiet --build-arg BASE_IMAGE="$base" \
    --build-arg TORCH_REQUIREMENT="$(grep -E '^torch==' requirements/torch-cpu.txt)" \
    --build-arg SLUICE_WITH_VLLM=0 \
    -t "$IMAGE" . >"$log" 2>&1 || status=$?
  [[ $status == 0 ]] || cat "$log" >&2
  rm -f "$log"
  return "$status"
}
timed "docker build" docker_build
echo "build-image: $IMAGE ready in $((SECONDS - started)) s" >&2
echo "$IMAGE"
