#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what rfjit needs on Debian 12 (run as root; uses sudo otherwise), and nothing when
# everything is already there. Extra package names may be passed as arguments.
set -euo pipefail
need=(cmake pkg-config gcc make llvm-19-dev libhwloc-dev libcriterion-dev "$@")
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
