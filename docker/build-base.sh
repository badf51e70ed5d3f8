#!/usr/bin/env bash
# Build the local base image (Debian bookworm + python3 + venv) without any image registry.
#
# Why: no registry is reachable from these machines, so the Dockerfile's production base
# (a CUDA image) cannot be pulled. We debootstrap a minimal bookworm from the Debian mirror apt
# already uses here and `docker import` it; the harness passes it as BASE_IMAGE. bookworm's
# python3 is 3.11, which is what docker/build-wheelhouse.sh downloads wheels for.
# Idempotent: an image whose recipe label matches this script is reused.
set -euo pipefail

IMAGE="${SLUICE_BASE_IMAGE:-local/sluice-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv
RECIPE="$(sha256sum "$0" | cut -c1-16)"

existing="$(docker image inspect -f '{{ index .Config.Labels "sluice.base.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [[ "$existing" == "$RECIPE" ]]; then
  echo "build-base: $IMAGE is up to date" >&2
  echo "$IMAGE"
  exit 0
fi

# The mirror this machine's apt already uses, from deb822 (.sources) or one-line (.list) files.
apt_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (ok && uri) { print uri; exit } ok = 0; uri = ""; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (ok && uri) print uri }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] || continue
    sed -E 's/\[[^]]*\]//' "$file" | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
  done
}
MIRROR="${SLUICE_DEBIAN_MIRROR:-$(apt_mirror | head -n 1)}"
[[ -n "$MIRROR" ]] || { echo "build-base: no $SUITE mirror in /etc/apt sources" >&2; exit 1; }

ROOTFS="$(mktemp -d /tmp/sluice-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
echo "build-base: debootstrap $SUITE from $MIRROR" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
  || { tail -n 30 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/*.log
tar -C "$ROOTFS" -c . | docker import \
  -c 'CMD ["/bin/bash"]' -c "LABEL sluice.base.recipe=$RECIPE" - "$IMAGE" >/dev/null
echo "$IMAGE"
