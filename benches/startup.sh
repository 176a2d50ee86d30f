#!/usr/bin/env bash
# Benchmark (not a test): what hsm costs before anything happens, as a user feels it
# on a real project. Figures go into BENCHMARKS.md ("`hsm plan`" realistic row and
# "`hsm run`").
#
#   benches/startup.sh                          release build of hsm, 40 runs each
#   RUNS=80 benches/startup.sh
#   HSM_BIN=path/to/hsm benches/startup.sh
#   HSM_BIN=new HSM_OLD_BIN=old benches/startup.sh   two builds, alternated by hyperfine
#
# Two projects of the bundled registry, nothing to sync:
# - realistic: its four packages and 16 inline `app-N` packages (`pypi: app-N>=1.0`),
#   implying postgres (`db_name: appN`), the vector database (`collection: cN`) or
#   the chunker in turn: `hsm plan`;
# - run: `auth-service` and `billing-service` on the `external-corp` profile:
#   `hsm run auth-service -- true` against `true` itself.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/dev-env.sh"
cd "$HSM_REPO"

runs=${RUNS:-40}
hsm=${HSM_BIN:-$HSM_REPO/target/release/hsm}
if [ -z "${HSM_BIN:-}" ]; then
    cargo build --release -q -p hsm
fi
command -v hyperfine > /dev/null || { echo "hyperfine is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }

work=$(mktemp -d /tmp/hsm-bench-startup-XXXXXX)
trap 'rm -rf "$work"' EXIT
export HSM_DATA_DIR=$work/data HSM_CACHE_DIR=$work/cache CORP_DB_PASSWORD=bench-only

mkdir -p "$work/realistic" "$work/run"
{
    echo "version: 1"
    echo "project: realistic"
    echo "registries: [bundled]"
    echo "packages:"
    for p in auth-service billing-service rag-api rag-ingest; do echo "  - $p"; done
    for i in $(seq 1 16); do
        echo "  - name: app-$i"
        echo "    pypi: app-$i>=1.0"
        echo "    implies:"
        case $((i % 3)) in
            0) echo "      - service: postgres"
               echo "        params: { db_name: app$i }" ;;
            1) echo "      - service: vector-db"
               echo "        params: { collection: c$i }" ;;
            2) echo "      - service: chunker" ;;
        esac
    done
} > "$work/realistic/hsm.yaml"
cat > "$work/run/hsm.yaml" << 'EOF'
version: 1
project: run
registries: [bundled]
profile: external-corp
packages: [auth-service, billing-service]
EOF

# Both must work before they are timed.
"$hsm" -q -C "$work/realistic" plan > /dev/null
"$hsm" -q -C "$work/run" run auth-service -- true

commands=()
names=()
for bin in "$hsm" ${HSM_OLD_BIN:+"$HSM_OLD_BIN"}; do
    label=$([ "$bin" = "$hsm" ] && echo new || echo old)
    [ -z "${HSM_OLD_BIN:-}" ] && label=hsm
    commands+=("$bin -q -C $work/realistic plan --json" "$bin -q -C $work/run run auth-service -- true")
    names+=(-n "$label: plan (realistic)" -n "$label: run auth-service -- true")
done
hyperfine -N -w 5 -r "$runs" "${names[@]}" -n "true" "${commands[@]}" "$(command -v true)"
