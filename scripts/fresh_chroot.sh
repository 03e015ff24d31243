#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs commands in a Debian 12 system where nothing was installed by hand, to prove that the
# project's own scripts install everything they need (README quick start, .ci/run).
#
#   scripts/fresh_chroot.sh [--new] [--git] ROOT [COMMAND...]
#
# ROOT (outside the source tree) is a chroot made with `debootstrap --variant=minbase bookworm`
# from the mirror this machine's apt uses (deb.debian.org otherwise), about 2 minutes; it is
# made when missing, and made again from scratch with --new (so a run starts with no package
# installed by an earlier one). Needs root and debootstrap. The committed tree (HEAD, via
# `git archive`: no .git, and git is not installed in the chroot) is copied to ROOT/src/rfjit,
# replacing an earlier copy but keeping its build directories; with --git a clone with its
# .git is copied instead. /proc, /sys, /dev and /dev/pts are mounted inside while COMMAND runs
# (bash -c, in ROOT/src/rfjit, with a clean environment) and unmounted afterwards, also on
# failure or interruption. Without COMMAND, an interactive shell. Exits with COMMAND's status.
# Example, the README's two commands and CI on a fresh system:
#   scripts/fresh_chroot.sh --new /var/tmp/bookworm \
#       'bash scripts/quickstart.sh && bash scripts/test.sh && .ci/run'
set -euo pipefail
say() { echo "fresh_chroot: $*" >&2; }
new=0 git=0
while [ $# -gt 0 ]; do
    case "$1" in
        --new) new=1 ;;
        --git) git=1 ;;
        *) break ;;
    esac
    shift
done
[ $# -ge 1 ] || { sed -n '3,20p' "$0" >&2; exit 2; }
root=$(realpath -m "$1")
shift
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
case "$root/" in "$src"/*) say "ROOT $root is inside the source tree"; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, mount)"; exit 1; }

mounts=(proc sys dev)
unmount() {
    for m in dev/pts "${mounts[@]}"; do
        mountpoint -q "$root/$m" && umount -R "$root/$m" 2>/dev/null || true
    done
}

# The mirror apt is configured with (deb822 or one-line sources), else deb.debian.org.
mirror() {
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n 's|^URIs: *\(https\?://[^ ]*/debian\)/\?$|\1|p' | head -1)
    [ -n "$m" ] || m=$(cat /etc/apt/sources.list 2>/dev/null |
        sed -n 's|^deb \(https\?://[^ ]*/debian\)/\? .*|\1|p' | head -1)
    echo "${m:-http://deb.debian.org/debian}"
}

if [ $new -eq 1 ] && [ -e "$root" ]; then
    unmount
    say "removing $root"
    rm -rf --one-file-system "$root"
fi
if [ ! -x "$root/bin/bash" ]; then
    command -v debootstrap >/dev/null || { say "debootstrap is not installed"; exit 1; }
    say "debootstrap --variant=minbase bookworm $root $(mirror) (about 2 minutes)"
    debootstrap --variant=minbase bookworm "$root" "$(mirror)" >"$root.debootstrap.log" 2>&1 ||
        { tail -5 "$root.debootstrap.log" >&2; exit 1; }
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network's trust, as for resolv.conf: where PyPI is reached through a TLS-intercepting
# proxy, a machine on that network has the proxy's CA added locally (and pip told to use the
# system bundle in /etc/pip.conf). A fresh install on the same network is given the same, so
# the chroot gets copies; the Debian packages and the project's scripts are still its own.
if [ -n "$(ls -A /usr/local/share/ca-certificates 2>/dev/null)" ]; then
    mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    # until ca-certificates is installed (and rebuilds it from both folders), the host's bundle
    [ -e "$root/etc/ssl/certs/ca-certificates.crt" ] ||
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$root/etc/pip.conf"

dest=$root/src/rfjit
mkdir -p "$dest"
find "$dest" -mindepth 1 -maxdepth 1 ! -name 'build*' -exec rm -rf {} +
if [ $git -eq 1 ]; then
    say "copying a clone of $src (HEAD, with .git) to $dest"
    git clone -q --no-hardlinks "$src" "$dest/.clone"
    (shopt -s dotglob && mv "$dest/.clone"/* "$dest/" && rmdir "$dest/.clone")
else
    say "copying $src (HEAD, git archive: no .git) to $dest"
    git -C "$src" archive HEAD | tar -x -C "$dest"
fi

trap unmount EXIT INT TERM
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
mountpoint -q "$root/dev/pts" || mount --bind /dev/pts "$root/dev/pts"
say "running in $root: ${*:-an interactive shell}"
status=0
env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    chroot "$root" /bin/bash -c 'cd /src/rfjit && if [ $# -gt 0 ]; then eval "$*"; else exec bash -i; fi' \
    fresh_chroot "$@" || status=$?
say "exit status $status"
exit $status
