#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, in which the availability report's page is
# rendered and photographed (tests/integration/test_report.py). Idempotent: returns at once
# when it is there.
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install.sh: chromium is missing and installing it needs root (apt-get install" \
    "chromium); the report page test fails without it" >&2
  exit 1
fi
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
apt_install_without_daemons chromium
command -v chromium >/dev/null || { echo "install.sh: chromium installed but not found" >&2; exit 1; }
echo "install.sh: $(chromium --version 2>/dev/null | head -1) ready" >&2
