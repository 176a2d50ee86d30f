#!/usr/bin/env bash
# Benchmark (not a test): what up-to-date package tasks add to a no-op `hsm sync`.
# Figures go into BENCHMARKS.md ("Package tasks").
#
#   benches/tasks.sh                    release build of hsm, 30 runs each
#   RUNS=60 benches/tasks.sh
#   HSM_BIN=path/to/hsm benches/tasks.sh
#
# Two projects, the same but for tasks: PostgreSQL (test image) for `auth-service`,
# and `core`, an editable package of 60 Python files. One has no task; the other
# has a task on each package (so a sync fingerprints the editable package's files
# and both environments), synced once so that both tasks are up to date. Then
# hyperfine alternates a no-op `hsm sync` of each.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/dev-env.sh"
cd "$HSM_REPO"

runs=${RUNS:-30}
hsm=${HSM_BIN:-$HSM_REPO/target/release/hsm}
if [ -z "${HSM_BIN:-}" ]; then
    cargo build --release -q -p hsm
fi
command -v hyperfine > /dev/null || { echo "hyperfine is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
tests/images/build.sh -q

work=$(mktemp -d /tmp/hsm-bench-tasks-XXXXXX)
export HSM_DATA_DIR=$work/data HSM_CACHE_DIR=$work/cache
cleanup() {
    for p in plain tasks; do "$hsm" -q -C "$work/$p" down --volumes > /dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for p in plain tasks; do
    mkdir -p "$work/$p/registry" "$work/$p/core/src/core"
    cat > "$work/$p/core/pyproject.toml" << EOF
[project]
name = "core"
version = "0.1.0"
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
EOF
    for i in $(seq 1 60); do echo "VALUE_$i = $i" > "$work/$p/core/src/core/m$i.py"; done
    touch "$work/$p/core/src/core/__init__.py"
    cat > "$work/$p/registry/registry.yaml" << EOF
version: 1
packages:
  auth-service:
    implies:
      - service: postgres
        params: { db_name: auth }
services:
  postgres:
    kind: postgres
    params: { image: "$HSM_TEST_IMAGE_POSTGRES" }
profiles:
  managed-dev: { mode: managed }
EOF
done
cat > "$work/plain/hsm.yaml" << EOF
version: 1
project: benchplain
profile: managed-dev
registries: [./registry]
packages:
  - auth-service
  - { name: core, editable: ./core }
EOF
cat > "$work/tasks/hsm.yaml" << EOF
version: 1
project: benchtasks
profile: managed-dev
registries: [./registry]
packages:
  - name: auth-service
    tasks: { migrate: { run: ["true"] } }
  - name: core
    editable: ./core
    tasks: { migrate: { run: ["true"] } }
EOF
for p in plain tasks; do "$hsm" -q -C "$work/$p" sync; done
"$hsm" -C "$work/tasks" status --json | grep -q '"due"' && { echo "a task is not up to date" >&2; exit 1; }

hyperfine -N -w 3 -r "$runs" \
    -n "no-op sync, no task" "$hsm -q -C $work/plain sync" \
    -n "no-op sync, 2 tasks up to date" "$hsm -q -C $work/tasks sync"
