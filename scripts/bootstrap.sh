#!/usr/bin/env bash
# Installs what hsm's build and tests need, only what is missing, then builds the test
# images. Safe to run again: on a machine that has everything it takes about a second.
#
#   - the Rust toolchain of rust-toolchain.toml with rustfmt, clippy and the
#     wasm32-wasip2 target (rustup; RUSTUP_AUTO_INSTALL may be off, so done here)
#   - cargo-nextest (cargo install --locked, if absent)
#   - uv, from PyPI with pip into a venv under $HSM_DEV_HOME (~/.local/share/hsm-dev),
#     linked from $HSM_DEV_HOME/bin; scripts/lib/dev-env.sh puts that on PATH
#     (HSM_UV_VERSION pins a version)
#   - debootstrap, hyperfine, postgresql-client (psql, pg_isready), curl via apt-get
#   - the Docker images of the end-to-end tests: tests/images/build.sh
#
# Quiet unless it installs or builds something. Needs root or sudo for apt-get and
# debootstrap, and a running Docker engine.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib/dev-env.sh"
cd "$HSM_REPO"

t0=$EPOCHREALTIME
log_dir=$HSM_DEV_HOME/logs
mkdir -p "$log_dir"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# quietly NAME CMD...: runs CMD with its output in a log, shown only if it fails.
quietly() {
    local log="$log_dir/$1.log"
    shift
    if ! "$@" > "$log" 2>&1; then
        printf 'bootstrap: "%s" failed; last lines of %s:\n' "$*" "$log" >&2
        tail -n 30 "$log" | sed 's/^/    /' >&2
        exit 1
    fi
}

apt_updated=
apt_install() {
    say "apt-get install $*"
    if [ -z "$apt_updated" ]; then
        quietly apt-update as_root apt-get update -q
        apt_updated=1
    fi
    quietly apt-install as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

# --- Debian packages ------------------------------------------------------------
need=()
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v hyperfine > /dev/null || need+=(hyperfine)
{ command -v psql && command -v pg_isready; } > /dev/null || need+=(postgresql-client)
command -v curl > /dev/null || need+=(curl)
# jemalloc (hsm's allocator) is built from source with make and a C compiler.
command -v make > /dev/null || need+=(make)
command -v cc > /dev/null || need+=(gcc)
command -v flock > /dev/null || need+=(util-linux)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

command -v docker > /dev/null || die "docker is not installed"

# --- Rust: toolchain, components, wasm32-wasip2 -----------------------------------
command -v rustup > /dev/null || die "rustup is not installed (https://rustup.rs)"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
[ -n "$toolchain" ] || die "no channel in rust-toolchain.toml"
if ! rustup toolchain list | grep -q "^$toolchain"; then
    say "rustup toolchain install $toolchain"
    quietly rustup-toolchain rustup toolchain install "$toolchain" --profile minimal \
        --component rustfmt,clippy --target wasm32-wasip2
fi
if ! rustup "+$toolchain" target list --installed | grep -qx wasm32-wasip2; then
    say "rustup target add wasm32-wasip2"
    quietly rustup-target rustup "+$toolchain" target add wasm32-wasip2
fi
components=$(rustup "+$toolchain" component list --installed)
for c in rustfmt clippy; do
    if ! grep -q "^$c" <<< "$components"; then
        say "rustup component add $c"
        quietly "rustup-$c" rustup "+$toolchain" component add "$c"
    fi
done

# --- cargo-nextest ----------------------------------------------------------------
if ! cargo nextest --version > /dev/null 2>&1; then
    say "cargo install --locked cargo-nextest (a few minutes)"
    quietly cargo-nextest cargo install --locked cargo-nextest
fi

# --- uv (from PyPI) ---------------------------------------------------------------
if ! uv --version > /dev/null 2>&1; then
    venv=$HSM_DEV_HOME/venv
    say "pip install uv${HSM_UV_VERSION:+==$HSM_UV_VERSION} into $venv"
    command -v python3 > /dev/null || apt_install python3
    if ! python3 -m venv --clear "$venv" > /dev/null 2>&1; then
        # Debian's python3 needs python3-venv for ensurepip.
        apt_install python3-venv
        quietly venv python3 -m venv --clear "$venv"
    fi
    quietly pip-uv "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        "uv${HSM_UV_VERSION:+==$HSM_UV_VERSION}"
    mkdir -p "$HSM_DEV_HOME/bin"
    ln -sf "$venv/bin/uv" "$HSM_DEV_HOME/bin/uv"
    ln -sf "$venv/bin/uvx" "$HSM_DEV_HOME/bin/uvx"
    uv --version > /dev/null 2>&1 || die "uv was installed but does not run"
fi

# --- export tests: docker-compose (Debian) and kubernetes-validate (PyPI) ------------
# `hsm export compose` is brought up with docker-compose; `hsm export kubernetes`
# is validated offline against the schemas kubernetes-validate carries.
if ! docker-compose version > /dev/null 2>&1; then
    apt_install docker-compose
fi
kv_version=${HSM_KUBERNETES_VALIDATE_VERSION:-1.37.0}
if ! kubernetes-validate --version 2> /dev/null | grep -qx "$kv_version"; then
    kv=$HSM_DEV_HOME/kubernetes-validate
    say "uv pip install kubernetes-validate==$kv_version into $kv"
    quietly kv-venv uv venv -q --clear "$kv"
    quietly kv-install uv pip install -q --python "$kv/bin/python" "kubernetes-validate==$kv_version"
    mkdir -p "$HSM_DEV_HOME/bin"
    ln -sf "$kv/bin/kubernetes-validate" "$HSM_DEV_HOME/bin/kubernetes-validate"
    kubernetes-validate --version > /dev/null || die "kubernetes-validate was installed but does not run"
fi

# --- test images ------------------------------------------------------------------
tests/images/build.sh -q

say "ready in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
