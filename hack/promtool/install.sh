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
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null && command -v prometheus >/dev/null \
  || { echo "install.sh: prometheus installed, but promtool or prometheus missing" >&2; exit 1; }
echo "install.sh: promtool ready ($(promtool --version 2>&1 | head -1))" >&2
