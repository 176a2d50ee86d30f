#!/usr/bin/env bash
# Runs each image tests/images/build.sh made and checks the contract README.md promises:
# postgres through a real client over TCP with a password, the HTTP services with curl,
# redis over a raw TCP socket. Ports are published on 127.0.0.1 only (ephemeral ports).
# Every container and volume it makes carries a label and is removed at exit, even on
# failure or Ctrl-C.
#
#   tests/images/smoke.sh                 run all checks
#   tests/images/smoke.sh --if-changed    skip when the images and this script are the
#                                         same as at the last run that passed
#
# Needs: docker, curl, psql and pg_isready (postgresql-client) on the host.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=images.env
. "$here/images.env"
cache=${HSM_IMAGES_CACHE:-$here/.cache}
stamp=$cache/smoke.ok

for tool in docker curl psql pg_isready; do
    command -v "$tool" > /dev/null || {
        echo "smoke.sh: $tool is not installed (scripts/bootstrap.sh installs what is needed)" >&2
        exit 1
    }
done

images=("$HSM_TEST_IMAGE_POSTGRES" "$HSM_TEST_IMAGE_CHUNKER" "$HSM_TEST_IMAGE_QDRANT" "$HSM_TEST_IMAGE_REDIS")
fingerprint() {
    {
        sha256sum < "${BASH_SOURCE[0]}"
        docker image inspect --format '{{.Id}}' "${images[@]}"
    } 2> /dev/null | sha256sum | cut -c1-32
}

if [ "${1:-}" = --if-changed ] && [ -s "$stamp" ] && [ "$(cat "$stamp")" = "$(fingerprint)" ]; then
    echo "smoke: images unchanged since the last passing run; skipped (run tests/images/smoke.sh to force)"
    exit 0
fi

run=hsm-smoke-$$
lbl=dev.hsm.test.smoke=$run
t_start=$EPOCHREALTIME
passed=0
failed=0
tmp=$(mktemp -d)

cleanup() {
    local ids
    mapfile -t ids < <(docker ps -aq --filter "label=$lbl")
    [ ${#ids[@]} -eq 0 ] || docker rm -f -v "${ids[@]}" > /dev/null 2>&1 || true
    mapfile -t ids < <(docker volume ls -q --filter "label=$lbl")
    [ ${#ids[@]} -eq 0 ] || docker volume rm -f "${ids[@]}" > /dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/      /'; }

# check DESCRIPTION CMD...: one check; CMD's output is shown when it fails.
check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else bad "$desc" "$out"; fi
}

# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "expected: $2"$'\n'"got:      $3"; fi
}

# wait_for TIMEOUT_S CMD...: polls CMD (quietly) until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" > /dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# start NAME IMAGE [docker run args...] -- [command...]: a detached, labelled container.
start() {
    local name=$1 image=$2 args=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    [ $# -eq 0 ] || shift
    docker run -d --name "$run-$name" --label "$lbl" "${args[@]}" "$image" "$@" > /dev/null
}

port_of() { docker port "$run-$1" "$2/tcp" 2> /dev/null | head -n 1 | sed 's/.*://' || true; }
running() { [ "$(docker inspect -f '{{.State.Running}}' "$run-$1")" = true ]; }
logs() { docker logs "$run-$1" 2>&1; }

# stopped_cleanly NAME: `docker stop` ends it within 10 s with exit code 0.
stopped_cleanly() {
    local t0=$SECONDS code
    docker stop -t 20 "$run-$1" > /dev/null
    code=$(docker inspect -f '{{.State.ExitCode}}' "$run-$1")
    if [ "$code" != 0 ] || [ $((SECONDS - t0)) -ge 10 ]; then
        echo "exit code $code after $((SECONDS - t0)) s"
        logs "$1" | tail -n 5
        return 1
    fi
}

# http NAME METHOD URL [curl args...]: prints "STATUS BODY".
http() {
    local method=$1 url=$2
    shift 2
    curl -sS -o "$tmp/body" -w '%{http_code}' -X "$method" --max-time 5 "$@" "$url" > "$tmp/code"
    printf '%s %s' "$(cat "$tmp/code")" "$(cat "$tmp/body")"
}

smoke_postgres() {
    local img=$HSM_TEST_IMAGE_POSTGRES pw='p@ss w0rd$' p out
    echo "== $img"
    docker volume create --label "$lbl" "$run-pgdata" > /dev/null
    mkdir -p "$tmp/initdb"
    printf 'CREATE DATABASE extra;\n' > "$tmp/initdb/10-extra.sql"
    # shellcheck disable=SC2016 # expanded by the container's shell
    printf 'echo "init-script-ran as $(id -un) for $POSTGRES_DB"\n' > "$tmp/initdb/20-note.sh"
    chmod 755 "$tmp" "$tmp/initdb"
    chmod 644 "$tmp/initdb"/*

    start pg "$img" -e POSTGRES_USER=app -e "POSTGRES_PASSWORD=$pw" -e POSTGRES_DB=appdb \
        -v "$run-pgdata:/var/lib/postgresql/data" -v "$tmp/initdb:/docker-entrypoint-initdb.d:ro" \
        -p 127.0.0.1::5432
    # The first TCP connection accepted (probed from inside the container, so
    # docker-proxy's listener on the host can't fool it) must come from the real server:
    # by then the entrypoint has exec'd postgres, so PID 1 is postgres, not the script.
    local deadline=$((SECONDS + 60)) pid1=
    until pid1=$(docker exec "$run-pg" bash -c \
        'exec 3<> /dev/tcp/127.0.0.1/5432 && tr "\0" " " < /proc/1/cmdline' 2> /dev/null); do
        [ "$SECONDS" -lt "$deadline" ] || break
        sleep 0.1
    done
    if [ -n "$pid1" ]; then
        expect_eq "postgres: no TCP listener until initialisation is complete" "postgres " "$pid1"
    else
        bad "postgres: never accepted TCP connections" "$(logs pg | tail -n 20)"
        return
    fi
    p=$(port_of pg 5432)
    check "postgres: pg_isready over TCP from the host" wait_for 30 pg_isready -q -h 127.0.0.1 -p "$p"
    out=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$p" -U app -d appdb -Atc \
        "select current_user || ',' || current_database() || ',' || current_setting('server_version_num')::int / 10000" 2>&1 || true)
    expect_eq "postgres: password login over TCP as POSTGRES_USER to POSTGRES_DB" "app,appdb,15" "$out"
    out=$(PGPASSWORD=wrong psql -h 127.0.0.1 -p "$p" -U app -d appdb -c 'select 1' 2>&1 || true)
    case $out in
        *"password authentication failed"*) ok "postgres: wrong password rejected (scram-sha-256)" ;;
        *) bad "postgres: wrong password rejected (scram-sha-256)" "$out" ;;
    esac
    out=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$p" -U app -d appdb -Atc "show password_encryption" 2>&1 || true)
    expect_eq "postgres: password stored as scram-sha-256" scram-sha-256 "$out"
    out=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$p" -U app -d extra -Atc 'select current_database()' 2>&1 || true)
    expect_eq "postgres: /docker-entrypoint-initdb.d/*.sql ran" extra "$out"
    case $(logs pg) in
        *"init-script-ran as postgres for appdb"*) ok "postgres: /docker-entrypoint-initdb.d/*.sh sourced as postgres" ;;
        *) bad "postgres: /docker-entrypoint-initdb.d/*.sh sourced as postgres" "$(logs pg | tail -n 5)" ;;
    esac
    out=$(docker exec "$run-pg" ps -o user=,comm= -p 1 | tr -s ' ' || true)
    expect_eq "postgres: PID 1 is postgres, run by the postgres user" "postgres postgres" "$out"
    check "postgres: pg_isready and createdb on PATH in the container" \
        docker exec "$run-pg" sh -c 'pg_isready -q && createdb -U app billing'
    printf "create table t(v text);\ninsert into t values ('kept');\n" > "$tmp/kept.sql"
    check "postgres: psql on PATH in the container" \
        docker exec -i "$run-pg" psql -v ON_ERROR_STOP=1 -q -U app -d billing < "$tmp/kept.sql"
    check "postgres: docker stop shuts it down cleanly" stopped_cleanly pg
    case $(logs pg) in
        *"database system is shut down"*) ok "postgres: shutdown was PostgreSQL's own" ;;
        *) bad "postgres: shutdown was PostgreSQL's own" "$(logs pg | tail -n 5)" ;;
    esac

    # Same volume, new container, other password: no re-initialisation, data kept.
    start pg2 "$img" -e POSTGRES_USER=app -e POSTGRES_PASSWORD=ignored \
        -v "$run-pgdata:/var/lib/postgresql/data" -p 127.0.0.1::5432
    p=$(port_of pg2 5432)
    wait_for 60 pg_isready -q -h 127.0.0.1 -p "$p" || true
    out=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$p" -U app -d billing -Atc 'select v from t' 2>&1 || true)
    expect_eq "postgres: data on the volume survives; no second initialisation" kept "$out"
    case $(logs pg2) in
        *"Skipping initialization"*) ok "postgres: restart skips initialisation" ;;
        *) bad "postgres: restart skips initialisation" "$(logs pg2 | tail -n 5)" ;;
    esac

    # No password: refuses to initialise, as the official image does.
    start nopw "$img"
    if wait_for 30 bash -c "! docker inspect -f '{{.State.Running}}' $run-nopw | grep -q true"; then
        out=$(docker inspect -f '{{.State.ExitCode}}' "$run-nopw")
        case "$out $(logs nopw)" in
            0*) bad "postgres: refuses to start without POSTGRES_PASSWORD" "exit code 0" ;;
            *"superuser password is not specified"*) ok "postgres: refuses to start without POSTGRES_PASSWORD" ;;
            *) bad "postgres: refuses to start without POSTGRES_PASSWORD" "$(logs nopw | tail -n 5)" ;;
        esac
    else
        bad "postgres: refuses to start without POSTGRES_PASSWORD" "still running"
    fi

    # POSTGRES_HOST_AUTH_METHOD=trust: no password needed; default user and database.
    start trust "$img" -e POSTGRES_HOST_AUTH_METHOD=trust -p 127.0.0.1::5432
    p=$(port_of trust 5432)
    wait_for 60 pg_isready -q -h 127.0.0.1 -p "$p" || true
    out=$(psql -w -h 127.0.0.1 -p "$p" -U postgres -Atc 'select current_user || $$,$$ || current_database()' 2>&1 || true)
    expect_eq "postgres: POSTGRES_HOST_AUTH_METHOD=trust, default user and database" "postgres,postgres" "$out"
}

smoke_chunker() {
    local img=$HSM_TEST_IMAGE_CHUNKER p out
    echo "== $img"
    start chunker "$img" -p 127.0.0.1::8000
    p=$(port_of chunker 8000)
    if ! wait_for 30 curl -fsS "http://127.0.0.1:$p/health"; then
        bad "chunker: GET /health answers" "$(logs chunker | tail -n 10)"
        return
    fi
    out=$(http GET "http://127.0.0.1:$p/health")
    expect_eq "chunker: GET /health -> 200 {\"status\": \"ok\"}" '200 {"status": "ok"}' "$out"
    out=$(http POST "http://127.0.0.1:$p/chunk" -H 'Content-Type: application/json' -d '{"text": "abcdefghij", "size": 4}')
    expect_eq "chunker: POST /chunk splits text into size-N chunks" '200 {"chunks": ["abcd", "efgh", "ij"]}' "$out"
    out=$(http POST "http://127.0.0.1:$p/chunk" -d '{"text": "abc", "size": 0}')
    expect_eq "chunker: POST /chunk with a bad size -> 400" 400 "${out%% *}"
    case $(docker logs "$run-chunker" 2> /dev/null) in
        *"POST /chunk"*) ok "chunker: logs requests to stdout" ;;
        *) bad "chunker: logs requests to stdout" "$(logs chunker | tail -n 5)" ;;
    esac
    check "chunker: docker stop shuts it down cleanly" stopped_cleanly chunker

    start chunker9000 "$img" -e CHUNKER_PORT=9000 -p 127.0.0.1::9000
    p=$(port_of chunker9000 9000)
    check "chunker: CHUNKER_PORT=9000 moves the listener" wait_for 30 curl -fsS "http://127.0.0.1:$p/health"
}

smoke_qdrant() {
    # shellcheck disable=SC2016 # a literal $ in the key, on purpose
    local img=$HSM_TEST_IMAGE_QDRANT p out key='k3y-$ecret'
    echo "== $img"
    docker volume create --label "$lbl" "$run-qdrant" > /dev/null
    start qdrant "$img" -v "$run-qdrant:/qdrant/storage" -p 127.0.0.1::6333
    p=$(port_of qdrant 6333)
    if ! wait_for 30 curl -fsS "http://127.0.0.1:$p/readyz"; then
        bad "qdrant: GET /readyz answers" "$(logs qdrant | tail -n 10)"
        return
    fi
    expect_eq "qdrant: GET /readyz -> 200" "200 all shards are ready" "$(http GET "http://127.0.0.1:$p/readyz")"
    expect_eq "qdrant: GET /healthz -> 200" "200 healthz check passed" "$(http GET "http://127.0.0.1:$p/healthz")"
    out=$(http PUT "http://127.0.0.1:$p/collections/docs" -H 'Content-Type: application/json' \
        -d '{"vectors": {"size": 4, "distance": "Cosine"}}')
    expect_eq "qdrant: PUT /collections/docs creates it" '200 {"result": true' "${out%%, \"status\"*}"
    out=$(http PUT "http://127.0.0.1:$p/collections/docs" -d '{}')
    expect_eq "qdrant: PUT of an existing collection -> 409" 409 "${out%% *}"
    out=$(http GET "http://127.0.0.1:$p/collections/docs")
    case $out in
        '200 '*'"size": 4'*) ok "qdrant: GET /collections/docs returns its config" ;;
        *) bad "qdrant: GET /collections/docs returns its config" "$out" ;;
    esac
    expect_eq "qdrant: GET /collections/missing -> 404" 404 "$(http GET "http://127.0.0.1:$p/collections/missing" | cut -d' ' -f1)"
    check "qdrant: docker stop shuts it down cleanly" stopped_cleanly qdrant

    # Same storage, now with an API key.
    start qdrant2 "$img" -e "QDRANT__SERVICE__API_KEY=$key" -v "$run-qdrant:/qdrant/storage" -p 127.0.0.1::6333
    p=$(port_of qdrant2 6333)
    wait_for 30 curl -fsS "http://127.0.0.1:$p/readyz" || true
    expect_eq "qdrant+key: GET /collections without api-key -> 401" 401 "$(http GET "http://127.0.0.1:$p/collections" | cut -d' ' -f1)"
    expect_eq "qdrant+key: wrong api-key -> 401" 401 "$(http GET "http://127.0.0.1:$p/collections" -H 'api-key: nope' | cut -d' ' -f1)"
    out=$(http GET "http://127.0.0.1:$p/collections" -H "api-key: $key")
    expect_eq "qdrant+key: collections persisted in /qdrant/storage; api-key accepted" \
        '200 {"result": {"collections": [{"name": "docs"}]}' "${out%%, \"status\"*}"
    expect_eq "qdrant+key: Authorization: Bearer accepted" 200 "$(http GET "http://127.0.0.1:$p/collections/docs" -H "Authorization: Bearer $key" | cut -d' ' -f1)"
    expect_eq "qdrant+key: /readyz needs no key (as in Qdrant)" 200 "$(http GET "http://127.0.0.1:$p/readyz" | cut -d' ' -f1)"
    case $(logs qdrant2) in
        *"$key"*) bad "qdrant+key: the key never appears in the logs" ;;
        *) ok "qdrant+key: the key never appears in the logs" ;;
    esac
}

smoke_redis() {
    local img=$HSM_TEST_IMAGE_REDIS p out
    echo "== $img"
    start redis "$img" -p 127.0.0.1::6379
    p=$(port_of redis 6379)
    # In a child shell: bash gives up the whole shell when a redirection to /dev/tcp fails.
    redis_ping() {
        bash -c 'exec 3<> "/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 &&
            read -r -t 2 line <&3 && [ "${line%$'"'\\r'"'}" = +PONG ]' _ "$p"
    }
    check "redis: PING -> +PONG over TCP from the host" wait_for 30 redis_ping
    out=$(docker exec "$run-redis" redis-cli config get protected-mode | tr '\n' ' ' || true)
    expect_eq "redis: protected-mode no" "protected-mode no " "$out"
    out=$(docker exec "$run-redis" redis-cli config get bind | tr '\n' ' ' || true)
    expect_eq "redis: bound to 0.0.0.0" "bind 0.0.0.0 " "$out"
    out=$(docker exec "$run-redis" ps -o user=,comm= -p 1 | tr -s ' ' || true)
    expect_eq "redis: PID 1 is redis-server, run by the redis user" "redis redis-server" "$out"
    check "redis: docker stop shuts it down cleanly" stopped_cleanly redis
}

smoke_postgres
smoke_chunker
smoke_qdrant
smoke_redis

printf 'smoke: %s in %s\n' "$HSM_TEST_IMAGE_POSTGRES $HSM_TEST_IMAGE_CHUNKER $HSM_TEST_IMAGE_QDRANT $HSM_TEST_IMAGE_REDIS" \
    "$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
echo "smoke: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
    rm -f "$stamp"
    exit 1
fi
mkdir -p "$cache"
fingerprint > "$stamp"
