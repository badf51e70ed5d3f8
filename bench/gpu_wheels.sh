#!/usr/bin/env bash
# The wheels bench/gpu_check.py needs on the lent GPU machine that its image lacks (nothing can
# be downloaded there): Flask and gunicorn with what they need beyond the image, and the
# transformers Sluice pins (the image's is older). Written to .whl/ (ignored by git), carried by
# the device call: see bench/gpu_check.py's docstring for the command.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl \
  flask==3.1.3 werkzeug==3.1.9 itsdangerous==2.2.0 blinker==1.9.0 gunicorn==27.0.1 transformers==5.23.0
ls -la .whl
