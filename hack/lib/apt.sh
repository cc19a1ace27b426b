# Sourced by the install scripts of the test tiers (hack/*/install.sh).

# apt_install_without_daemons PACKAGE...: installs Debian packages without letting their
# scripts start the services they ship: each lab runs private instances of its own, and a
# system-wide MariaDB, Pacemaker or Prometheus started on the test machine would hold their
# ports and files. A subshell, so that its EXIT trap (which removes the policy-rc.d it wrote)
# does not replace the caller's.
apt_install_without_daemons() (
  set -euo pipefail
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  trap 'if [[ $own_policy == 1 ]]; then rm -f "$policy"; fi' EXIT
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "$@" >&2
)
