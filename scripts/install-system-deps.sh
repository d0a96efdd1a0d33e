#!/usr/bin/env bash
# Debian packages the test suite needs: Prometheus and Alertmanager (promtool, amtool) for the
# alerting tests. Skipped when already installed; uses sudo when not root.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages start services on install where an init system runs; ours are started by the tests.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
  $SUDO pkill -x "$svc" >/dev/null 2>&1 || true
done
