#!/usr/bin/env bash
# Install a single-node SLURM toolchain (controller, node daemon, clients, munge)
# from Debian packages, for tests/slurm_cluster.py. Idempotent; runs as root.
# It never starts daemons: the test harness runs its own, as there is no systemd.
# No slurmdbd/MariaDB: the harness runs without accounting and Snakemake's
# plugin is told to poll with squeue instead of sacct.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
fi

# A policy-rc.d that exits 101 stops the packages' init scripts from starting
# munged/slurmctld/slurmd system-wide during installation.
policy=/usr/sbin/policy-rc.d
log=$(mktemp)
cleanup() {
    [ "${created_policy:-0}" -eq 1 ] && rm -f "$policy"
    rm -f "$log"
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi

# Output is kept out of CI logs unless something fails.
if ! {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
} >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-slurm.sh: failed to install ${missing[*]}" >&2
    exit 1
fi
