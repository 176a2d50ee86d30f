#!/usr/bin/env bash
# Benchmark (not a test): `hsm sync` against Docker Compose v1 on the same stack, in
# the same run, with hyperfine. Figures go into BENCHMARKS.md ("hsm sync vs Docker
# Compose").
#
#   benches/sync_vs_compose.sh            release build of hsm, 20 no-op runs, 8 cold runs
#   RUNS=40 COLD_RUNS=15 benches/sync_vs_compose.sh
#   HSM_BIN=path/to/hsm benches/sync_vs_compose.sh
#
# The stack: PostgreSQL serving two databases (auth, billing), the chunker and the
# Qdrant stand-in, from the test images (tests/images/build.sh; nothing is pulled).
# hsm gets it from a registry; Compose from docker-compose.yml with the same
# images, ports on 127.0.0.1, named volumes, an init script creating the two
# databases, and healthchecks with the same probes hsm uses (pg_isready, GET /health,
# GET /readyz) every 500 ms.
#
# 1. No-op: both stacks up and ready; `hsm sync` vs `docker-compose up -d`, each
#    changing nothing.
# 2. Cold to ready: volumes removed before each run (`hsm down --volumes`,
#    `docker-compose down -v`), images present; `hsm sync` (which returns when every
#    service is ready and the databases exist) vs `docker-compose up -d` followed by
#    polling every container's health until all are `healthy` (Compose v1 has no
#    `--wait`).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/dev-env.sh"
cd "$HSM_REPO"

runs=${RUNS:-20}
cold_runs=${COLD_RUNS:-8}
hsm=${HSM_BIN:-$HSM_REPO/target/release/hsm}
if [ -z "${HSM_BIN:-}" ]; then
    cargo build --release -q -p hsm
fi
command -v hyperfine > /dev/null || { echo "hyperfine is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
command -v docker-compose > /dev/null || { echo "docker-compose (v1) is missing" >&2; exit 1; }
tests/images/build.sh -q

work=$(mktemp -d /tmp/hsm-bench-XXXXXX)
export HSM_DATA_DIR=$work/data HSM_CACHE_DIR=$work/cache
compose=(docker-compose -p hsmbenchcompose -f "$work/compose/docker-compose.yml")
cleanup() {
    "$hsm" -q -C "$work/hsm" down --volumes > /dev/null 2>&1 || true
    "${compose[@]}" down -v > /dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- the hsm project ----------------------------------------------------------------
mkdir -p "$work/hsm/registry"
cat > "$work/hsm/hsm.yaml" << EOF
version: 1
project: hsmbench
profile: managed-dev
registries: [./registry]
packages: [auth-service, billing-service, rag-api]
EOF
cat > "$work/hsm/registry/registry.yaml" << EOF
version: 1
packages:
  auth-service:
    implies: [{ service: postgres, params: { db_name: auth } }]
  billing-service:
    implies: [{ service: postgres, params: { db_name: billing } }]
  rag-api:
    implies: [{ service: vector-db, params: { collection: documents } }, { service: chunker }]
services:
  postgres: { kind: postgres, params: { image: "$HSM_TEST_IMAGE_POSTGRES" } }
  vector-db: { kind: qdrant, params: { image: "$HSM_TEST_IMAGE_QDRANT" } }
  chunker: { kind: chunker, params: { image: "$HSM_TEST_IMAGE_CHUNKER", port: 8000 } }
profiles:
  managed-dev: { mode: managed }
EOF

# --- the same stack for Compose -----------------------------------------------------
mkdir -p "$work/compose"
cat > "$work/compose/init.sql" << 'EOF'
CREATE DATABASE auth;
CREATE DATABASE billing;
EOF
cat > "$work/compose/docker-compose.yml" << EOF
version: "2.4"
services:
  postgres:
    image: $HSM_TEST_IMAGE_POSTGRES
    environment:
      POSTGRES_USER: postgres
      POSTGRES_PASSWORD: benchmark-only
      PGDATA: /var/lib/postgresql/data
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ./init.sql:/docker-entrypoint-initdb.d/init.sql:ro
    ports: ["127.0.0.1::5432"]
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
      interval: 500ms
      timeout: 5s
      retries: 240
  chunker:
    image: $HSM_TEST_IMAGE_CHUNKER
    ports: ["127.0.0.1::8000"]
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
      interval: 500ms
      timeout: 5s
      retries: 240
  vector-db:
    image: $HSM_TEST_IMAGE_QDRANT
    volumes: [storage:/qdrant/storage]
    ports: ["127.0.0.1::6333"]
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6333/readyz')"]
      interval: 500ms
      timeout: 5s
      retries: 240
volumes:
  pgdata: {}
  storage: {}
EOF
cat > "$work/compose-up-wait.sh" << EOF
#!/usr/bin/env bash
# docker-compose up -d, then wait until every container is healthy (v1 has no --wait).
set -euo pipefail
${compose[*]} up -d > /dev/null 2>&1
for c in \$(${compose[*]} ps -q); do
    until [ "\$(docker inspect -f '{{.State.Health.Status}}' "\$c")" = healthy ]; do sleep 0.05; done
done
EOF
chmod +x "$work/compose-up-wait.sh"

echo "hsm: $("$hsm" --version)  docker-compose: $(docker-compose version --short)  engine: $(docker version -f '{{.Server.Version}}')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. no-op ------------------------------------------------------------------------
"$hsm" -q -C "$work/hsm" sync
"$work/compose-up-wait.sh"
hyperfine --style basic --warmup 3 --runs "$runs" --export-json "$work/noop.json" \
    -n "hsm sync (no-op)" "$hsm -q -C $work/hsm sync" \
    -n "docker-compose up -d (no-op)" "${compose[*]} up -d"

# --- 2. cold to ready ------------------------------------------------------------------
hyperfine --style basic --warmup 1 --runs "$cold_runs" --export-json "$work/cold.json" \
    --prepare "$hsm -q -C $work/hsm down --volumes" -n "hsm sync (cold, to ready)" "$hsm -q -C $work/hsm sync" \
    --prepare "${compose[*]} down -v" -n "docker-compose up -d + wait healthy (cold)" "$work/compose-up-wait.sh"

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/noop.json" "$work/cold.json" << 'EOF'
import json, sys
for path, target in zip(sys.argv[1:], (0.1, 1.1)):
    r = json.load(open(path))["results"]
    h, c = r[0], r[1]
    ratio = h["mean"] / c["mean"]
    print(f"| {h['command']} | {h['mean']*1000:.1f} ms ± {h['stddev']*1000:.1f} | {c['command']} | "
          f"{c['mean']*1000:.1f} ms ± {c['stddev']*1000:.1f} | {ratio:.2f}× (target ≤ {target}×) |")
EOF
