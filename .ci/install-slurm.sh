#!/usr/bin/env bash
# Install a single-node SLURM toolchain (controller, node daemon, client, munge)
# from Debian packages, for tests/slurm_cluster.py. Idempotent; runs as root.
# It never starts daemons: the test harness runs them itself, as there is no systemd.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
fi

# policy-rc.d exit 101 keeps package maintainer scripts from starting services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
