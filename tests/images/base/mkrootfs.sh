#!/usr/bin/env bash
# Makes the root filesystem of hsm-test/base as a gzipped tarball, with debootstrap.
#
#   mkrootfs.sh SUITE MIRROR PACKAGES_FILE OUT_TARBALL DEB_CACHE_DIR
#
# Called by ../build.sh, which caches OUT_TARBALL under a key made of this file, the
# package list and the suite, so this only runs when one of those changes. Needs root
# (debootstrap and chroot). Writes OUT_TARBALL atomically; on failure or interrupt it
# unmounts what debootstrap mounted and removes its work folder.
set -euo pipefail

suite=$1 mirror=$2 pkgfile=$3 out=$4 debcache=$5

work=$(mktemp -d "$(dirname "$out")/rootfs-work.XXXXXX")
target=$work/root

cleanup() {
    # debootstrap mounts /proc, /sys (and sometimes /dev/pts) inside the target; if it was
    # killed those mounts are still there and must go before anything is removed.
    local mnt
    while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v t="$target" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

include=$(grep -v '^[[:space:]]*\(#\|$\)' "$pkgfile" | tr -s '[:space:]' ',' | sed 's/^,//; s/,$//')
mkdir -p "$debcache"

debootstrap --variant=minbase --include="$include" --cache-dir="$debcache" \
    "$suite" "$target" "$mirror"

# postgresql-15's postinst made a "15/main" cluster; the image's entrypoint makes its own.
rm -rf "$target/var/lib/postgresql/15" "$target/etc/postgresql/15"
# Trim what no container needs (docs, man pages, package lists, caches, logs).
rm -rf "$target"/usr/share/doc/* "$target"/usr/share/man/* "$target"/usr/share/info/* \
    "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/*.bin \
    "$target"/var/cache/apt/archives/*.deb "$target"/var/cache/debconf/*-old \
    "$target"/var/lib/dpkg/*-old "$target"/var/log/*.log "$target"/var/log/apt/* \
    "$target"/tmp/* "$target"/var/tmp/*
# Docker provides these at run time.
: > "$target/etc/hostname"
: > "$target/etc/resolv.conf"

tar --numeric-owner -C "$target" -cf - . | gzip -1 > "$work/rootfs.tar.gz"
mv -f "$work/rootfs.tar.gz" "$out"
