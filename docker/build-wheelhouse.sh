#!/usr/bin/env bash
# Download the image's Python dependencies as wheels into docker/wheelhouse on the host.
#
# Why: a build must not copy the host's pip configuration or certificates into the image, and
# the local engine has no registry access of its own. The host's pip works, so it fetches wheels
# for the image's interpreter (cp311 on bookworm, manylinux, binary only) and the Dockerfile
# installs them with `pip install --no-index`. The torch pin comes from requirements/torch-cpu.txt
# (the small CPU build). Idempotent: a stamp holds the hash of everything that decides the set.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=docker/wheelhouse
PYTHON="${PYTHON:-python3}"
PY_VERSION="${SLUICE_WHEEL_PYTHON:-3.11}"
ABI="cp${PY_VERSION/./}"
# Every manylinux tag bookworm's glibc 2.36 runs (llguidance ships manylinux_2_31 only).
PLATFORMS=(manylinux_2_36_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_33_x86_64
  manylinux_2_32_x86_64 manylinux_2_31_x86_64 manylinux_2_30_x86_64 manylinux_2_29_x86_64
  manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64)
INPUTS=(requirements/runtime.txt requirements/torch-cpu.txt "$0")

stamp="$( (cat "${INPUTS[@]}"; echo "$PY_VERSION ${PLATFORMS[*]}") | sha256sum | cut -c1-32)"
if [[ -f "$DEST/.stamp" && "$(cat "$DEST/.stamp")" == "$stamp" ]]; then
  echo "build-wheelhouse: $DEST is up to date" >&2
  exit 0
fi

find "$DEST" -maxdepth 1 -name '*.whl' -delete
rm -f "$DEST/.stamp"
platform_args=()
for platform in "${PLATFORMS[@]}"; do platform_args+=(--platform "$platform"); done
echo "build-wheelhouse: downloading wheels for $ABI" >&2
log="$(mktemp)"
"$PYTHON" -m pip download --quiet --dest "$DEST" --only-binary=:all: \
  --implementation cp --python-version "$PY_VERSION" --abi "$ABI" "${platform_args[@]}" \
  -r requirements/runtime.txt -r requirements/torch-cpu.txt >"$log" 2>&1 \
  || { cat "$log" >&2; rm -f "$log"; exit 1; }
rm -f "$log"
echo "$stamp" >"$DEST/.stamp"
