#!/usr/bin/env bash
# Stop the dockerd that docker/ensure-engine.sh started (by its pid file), and only that one.
set -euo pipefail
PID_FILE="${SLUICE_DOCKER_STATE:-/tmp/sluice-docker}/dockerd.pid"
[[ -f "$PID_FILE" ]] || exit 0
pid="$(cat "$PID_FILE")"
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi
rm -f "$PID_FILE"
