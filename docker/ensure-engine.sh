#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`, starting one if we may.
#
# Why: the contract tests need a real engine, and CI machines have neither systemd nor dockerd
# preinstalled. Installing packages and starting a daemon changes the machine, so we only do it
# when asked (CI=true or SLUICE_DOCKER_INSTALL=1); otherwise we exit 3 with the reason, which the
# tests turn into a skip. The daemon we start keeps its pid and log under SLUICE_DOCKER_STATE so
# docker/stop-engine.sh can stop exactly that process and nothing else.
set -euo pipefail

STATE_DIR="${SLUICE_DOCKER_STATE:-/tmp/sluice-docker}"
PID_FILE="$STATE_DIR/dockerd.pid"
LOG_FILE="$STATE_DIR/dockerd.log"
NOT_AVAILABLE=3

engine_answers() { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }
may_install() { [[ "${CI:-}" == "true" || "${SLUICE_DOCKER_INSTALL:-}" == "1" ]]; }
refuse() { echo "ensure-engine: $*" >&2; exit "$NOT_AVAILABLE"; }

if engine_answers; then
  exit 0
fi

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  may_install || refuse "no Docker engine (dockerd/debootstrap missing); set SLUICE_DOCKER_INSTALL=1 to install docker.io"
  [[ "$(id -u)" == 0 ]] || refuse "installing docker.io needs root"
  echo "ensure-engine: installing docker.io iptables debootstrap" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends docker.io iptables debootstrap >/dev/null; } \
    || refuse "apt-get could not install docker.io iptables debootstrap"
fi

may_install || refuse "dockerd is installed but not running; set SLUICE_DOCKER_INSTALL=1 to start it"
[[ "$(id -u)" == 0 ]] || refuse "starting dockerd needs root"
mkdir -p "$STATE_DIR"
if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  echo "ensure-engine: dockerd $(cat "$PID_FILE") is starting" >&2
else
  # setsid: the daemon must outlive the shell (and the test session) that started it.
  setsid dockerd --mtu 1400 >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  echo "ensure-engine: started dockerd pid $(cat "$PID_FILE"), log $LOG_FILE" >&2
fi

for _ in $(seq 1 60); do
  if engine_answers; then exit 0; fi
  kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break
  sleep 0.5
done
tail -n 20 "$LOG_FILE" >&2 || true
refuse "dockerd did not answer within 30 s (log: $LOG_FILE)"
