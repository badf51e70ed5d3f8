#!/bin/sh
# Install Python packages into the image's virtualenv.
# Why: one image recipe serves two worlds. A build context that carries wheels in
# docker/wheelhouse (the local harness, offline) installs only from them; a context with an empty
# wheelhouse (CodeBuild, production) installs the same pins from the package index.
set -eu
WHEELHOUSE=/tmp/wheelhouse
if ls "$WHEELHOUSE"/*.whl >/dev/null 2>&1; then
  exec pip install --no-cache-dir --no-index --find-links "$WHEELHOUSE" "$@"
fi
exec pip install --no-cache-dir "$@"
