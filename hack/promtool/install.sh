#!/usr/bin/env bash
# Installs promtool, which checks and unit-tests the shipped alert rules
# (deploy/monitoring/prometheusrule.yaml, tests/unit/test_alert_rules.py), and the Prometheus
# server the end-to-end alert test runs (tests/harness/prometheus.py), from Debian's
# prometheus package. Its scripts must not start a Prometheus server on the test machine.
# Idempotent: returns at once when both are there.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install.sh: promtool or prometheus is missing and installing them needs root" \
    "(apt-get install prometheus); the alert tests fail without them" >&2
  exit 1
fi
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
apt_install_without_daemons prometheus
command -v promtool >/dev/null && command -v prometheus >/dev/null \
  || { echo "install.sh: prometheus installed, but promtool or prometheus missing" >&2; exit 1; }
echo "install.sh: promtool ready ($(promtool --version 2>&1 | head -1))" >&2
