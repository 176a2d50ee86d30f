#!/usr/bin/env bash
# Builds the Docker images hsm's end-to-end tests run, locally and offline, from Debian
# packages: no image is ever pulled. See README.md beside this file for what each image
# is and the contract it honours.
#
#   tests/images/build.sh [-q]      build what is missing or out of date, reuse the rest
#   HSM_REBUILD_IMAGES=1   build.sh rebuild every image (from the cached rootfs)
#   HSM_REBUILD_IMAGES=all build.sh also redo debootstrap
#
# Reuse: every image carries the label dev.hsm.test.inputs, a hash of this script and of
# the image's inputs (its folder here; for the base, the rootfs recipe and package list;
# for the others, the base image's ID). An image whose label matches is reused, so a
# second run takes about a second. The debootstrap rootfs is cached as a tarball under
# .cache/ (HSM_IMAGES_CACHE), keyed by base/mkrootfs.sh, base/packages.txt and the suite,
# so rebuilding images does not redo debootstrap.
#
# Safety: a tag is moved only after its image was built completely (build to an ID, then
# `docker tag`), so a failed or interrupted run leaves the previous images in place and
# no half-built image under a tag. Runs are serialised with a lock file. Output: one line
# per image (built / reused) and the total time; build logs go to .cache/logs/ and their
# tail is printed when a step fails. -q prints only what it builds (nothing when all
# is reused).
#
# Environment: HSM_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# HSM_IMAGES_CACHE (default tests/images/.cache), HSM_REBUILD_IMAGES (see above).
set -euo pipefail
export LC_ALL=C
# debootstrap lives in /usr/sbin, which a non-root PATH often lacks.
export PATH=$PATH:/usr/sbin:/sbin
# The classic builder: works offline with a local FROM and writes --iidfile.
export DOCKER_BUILDKIT=0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=images.env
. "$here/images.env"

quiet=
case ${1:-} in
    -q | --quiet) quiet=1 ;;
    "") ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "usage: $0 [-q]" >&2; exit 2 ;;
esac

suite=bookworm
mirror=${HSM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${HSM_IMAGES_CACHE:-$here/.cache}
rebuild=${HSM_REBUILD_IMAGES:-}
label=dev.hsm.test.inputs
t_start=$EPOCHREALTIME
built=0
reused=0

say() { [ -n "$quiet" ] || printf '%s\n' "$*"; }
# Printed even with -q: the run is doing work.
loud() { printf '%s\n' "$*"; }
die() { printf 'tests/images/build.sh: %s\n' "$*" >&2; exit 1; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# as_root CMD...: debootstrap needs root; use sudo when not root.
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# run_logged NAME CMD...: runs CMD with its output in .cache/logs/NAME.log; on failure
# prints the log's tail and stops the script.
run_logged() {
    local name=$1 log="$cache/logs/$1.log"
    shift
    if ! "$@" > "$log" 2>&1; then
        printf 'tests/images/build.sh: %s failed; last lines of %s:\n' "$name" "$log" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
        exit 1
    fi
}

# hash_of ITEM...: a short hash of files, folders (every file in them) and literal
# "=text" items. File contents, relative names and the executable bit count.
hash_of() {
    local item f
    for item; do
        case $item in
            =*) printf 'lit\0%s\0' "${item#=}" ;;
            *)
                while IFS= read -r -d '' f; do
                    printf 'file\0%s\0%s\0' "${f#"$here"/}" "$([ -x "$f" ] && echo x)"
                    cat "$f"
                    printf '\0'
                done < <(find "$item" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z)
                ;;
        esac
    done | sha256sum | cut -c1-32
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2> /dev/null || true; }
image_inputs() {
    docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2> /dev/null || true
}

# reusable TAG HASH: true when TAG exists with HASH as its inputs label.
reusable() {
    [ -z "$rebuild" ] && [ "$(image_inputs "$1")" = "$2" ]
}

# retag TAG NEW_ID T0: points TAG at the fully built image, drops the image it replaced
# (if nothing else uses it) and reports.
retag() {
    local tag=$1 new=$2 t0=$3 old
    old=$(image_id "$tag")
    docker tag "$new" "$tag"
    if [ -n "$old" ] && [ "$old" != "$new" ]; then
        docker rmi "$old" > /dev/null 2>&1 || true
    fi
    built=$((built + 1))
    loud "$(printf 'built   %-24s %s' "$tag" "$(since "$t0")")"
}

# ensure_rootfs KEY: the debootstrap tarball for KEY, made only when not cached.
ensure_rootfs() {
    local key=$1 t0
    rootfs="$cache/rootfs-$suite-$key.tar.gz"
    if [ -s "$rootfs" ] && [ "$rebuild" != all ]; then
        return
    fi
    command -v debootstrap > /dev/null \
        || die "debootstrap is not installed (scripts/bootstrap.sh installs it, or: apt-get install debootstrap)"
    t0=$EPOCHREALTIME
    loud "$(printf 'rootfs  %-24s debootstrap --variant=minbase from %s ...' "$suite" "$mirror")"
    run_logged rootfs as_root "$here/base/mkrootfs.sh" "$suite" "$mirror" \
        "$here/base/packages.txt" "$rootfs" "$cache/debs"
    # Older tarballs (other keys) are of no further use.
    find "$cache" -maxdepth 1 -name "rootfs-*.tar.gz" ! -name "${rootfs##*/}" -delete
    loud "$(printf 'rootfs  %-24s built in %s (%s)' "$suite" "$(since "$t0")" "$(du -h "$rootfs" | cut -f1)")"
}

ensure_base() {
    local tag=$HSM_TEST_IMAGE_BASE key hash t0 id
    key=$(hash_of "=suite=$suite" "$here/base/mkrootfs.sh" "$here/base/packages.txt")
    hash=$(hash_of "$here/build.sh" "=rootfs=$key")
    if reusable "$tag" "$hash"; then
        reused=$((reused + 1))
        say "$(printf 'reused  %s' "$tag")"
        return
    fi
    ensure_rootfs "$key"
    t0=$EPOCHREALTIME
    run_logged base docker import \
        --message "hsm test base: debootstrap --variant=minbase $suite" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL $label=$hash" \
        --change "LABEL dev.hsm.test.image=base dev.hsm.test.rootfs=$key" \
        "$rootfs"
    id=$(tail -n 1 "$cache/logs/base.log")
    [[ $id == sha256:* ]] || die "docker import printed no image ID (see $cache/logs/base.log)"
    retag "$tag" "$id" "$t0"
}

# ensure_image NAME TAG: the image built from folder NAME/ on top of the base.
ensure_image() {
    local name=$1 tag=$2 base_id hash t0 iidfile
    base_id=$(image_id "$HSM_TEST_IMAGE_BASE")
    [ -n "$base_id" ] || die "$HSM_TEST_IMAGE_BASE is missing"
    hash=$(hash_of "$here/build.sh" "=base=$base_id" "$here/$name")
    if reusable "$tag" "$hash"; then
        printf 'reused  %s\n' "$tag"
        return
    fi
    t0=$EPOCHREALTIME
    iidfile="$cache/$name.iid"
    rm -f "$iidfile"
    run_logged "$name" docker build --force-rm --pull=false ${rebuild:+--no-cache} \
        --iidfile "$iidfile" \
        --build-arg "BASE=$HSM_TEST_IMAGE_BASE" \
        --label "$label=$hash" \
        "$here/$name"
    [ -s "$iidfile" ] || die "docker build of $name wrote no image ID"
    retag "$tag" "$(cat "$iidfile")" "$t0"
    rm -f "$iidfile"
}

pids=()
on_interrupt() {
    trap - INT TERM
    [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2> /dev/null || true
    echo "tests/images/build.sh: interrupted; every tag still names a complete image" >&2
    exit 130
}

main() {
    mkdir -p "$cache/logs"
    docker version --format '{{.Server.Version}}' > /dev/null 2>&1 \
        || die "the Docker engine is not reachable (is dockerd running? is DOCKER_HOST right?)"

    # One build at a time (two test runs at once would otherwise race on tags).
    exec 9> "$cache/.lock"
    if ! flock -n 9; then
        echo "tests/images/build.sh: waiting for another build of the test images ..." >&2
        flock 9
    fi

    trap on_interrupt INT TERM
    ensure_base

    # The images on top of the base build in parallel: the classic builder spends most
    # of its time committing each step, which is mostly waiting, so this is ~2x faster.
    # Each one's report and errors wait in files until all are done, so the output stays
    # in order and an interrupted run prints no build logs.
    local name tag names=() failed=0 i
    for name in postgres chunker qdrant redis; do
        tag=HSM_TEST_IMAGE_${name^^}
        ensure_image "$name" "${!tag}" > "$cache/$name.out" 2> "$cache/$name.err" &
        pids+=($!)
        names+=("$name")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed=1
        name=${names[$i]}
        if [ -s "$cache/$name.out" ]; then
            case $(head -c 6 "$cache/$name.out") in
                built*) built=$((built + 1)); loud "$(cat "$cache/$name.out")" ;;
                *) reused=$((reused + 1)); say "$(cat "$cache/$name.out")" ;;
            esac
        fi
        cat "$cache/$name.err" >&2
        rm -f "$cache/$name.out" "$cache/$name.err"
    done
    pids=()
    [ "$failed" = 0 ] || exit 1

    if [ "$built" -gt 0 ]; then
        # Images of ours that lost their tag in this or an interrupted run, unless in use.
        docker image prune --force --filter "label=$label" > /dev/null 2>&1 || true
    fi
    if [ "$built" -gt 0 ]; then
        loud "test images ready in $(since "$t_start") ($built built, $reused reused)"
    else
        say "test images ready in $(since "$t_start") ($built built, $reused reused)"
    fi
}

main "$@"
