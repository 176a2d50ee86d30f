#!/usr/bin/env bash
# Entrypoint of hsm-test/postgres:15. Follows the official postgres image's contract:
#
#   POSTGRES_PASSWORD          superuser password; required unless
#                              POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_USER              superuser name (default: postgres)
#   POSTGRES_DB                database created on first start (default: $POSTGRES_USER)
#   PGDATA                     cluster folder (default: /var/lib/postgresql/data)
#   POSTGRES_HOST_AUTH_METHOD  auth method of the `host all all all` line appended to
#                              pg_hba.conf (default: scram-sha-256)
#   POSTGRES_INITDB_ARGS       extra initdb arguments; POSTGRES_INITDB_WALDIR: --waldir
#   *_FILE                     POSTGRES_PASSWORD_FILE, POSTGRES_USER_FILE, POSTGRES_DB_FILE,
#                              POSTGRES_INITDB_ARGS_FILE read the value from a file
#   /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz, *.sql.xz
#                              run once, in name order, after the database is created
#
# The cluster is initialised only when $PGDATA holds none, so data on a volume survives
# restarts and recreation. Initialisation uses a temporary server that listens on the
# Unix socket only (listen_addresses=''), so a TCP probe succeeds only once the real
# server is up. Started as root, it fixes the data folder's ownership and re-executes
# itself as `postgres` (setpriv); finally it exec's postgres, which becomes PID 1.
set -Eeo pipefail

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# file_env VAR [DEFAULT]: VAR from the environment, or from the file named by VAR_FILE.
file_env() {
    local var=$1 file_var="${1}_FILE" def=${2:-}
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "both $var and $file_var are set (they are exclusive)"
    fi
    local val=$def
    if [ -n "${!var:-}" ]; then
        val=${!var}
    elif [ -n "${!file_var:-}" ]; then
        val=$(< "${!file_var}")
    fi
    export "$var=$val"
    unset "$file_var"
}

# True when the arguments only ask postgres for information (no server, no init).
want_help() {
    local arg
    for arg; do
        case $arg in
            -'?' | --help | --describe-config | -V | --version | -C | -C*) return 0 ;;
        esac
    done
    return 1
}

setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${PGDATA:=/var/lib/postgresql/data}"
    export PGDATA
    DATABASE_ALREADY_EXISTS=
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

# As root: make the data (and WAL) folders exist and belong to postgres.
create_dirs() {
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql
    chmod 03775 /var/run/postgresql || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
    fi
    if [ "$(id -u)" = 0 ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
        if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
            find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
        fi
    fi
}

verify_minimum_env() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
        cat >&2 <<'MSG'
error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
MSG
        exit 1
    fi
    if [ "${POSTGRES_HOST_AUTH_METHOD:-}" = trust ]; then
        log 'WARNING: POSTGRES_HOST_AUTH_METHOD=trust: every connection is allowed without a password.'
    fi
}

init_database_dir() {
    local args=(--username="$POSTGRES_USER")
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        args+=(--waldir="$POSTGRES_INITDB_WALDIR")
    fi
    # POSTGRES_INITDB_ARGS is a shell-quoted string, as in the official image. The
    # password goes through a pipe, never a file or the command line.
    if [ -n "$POSTGRES_PASSWORD" ]; then
        eval 'initdb "${args[@]}" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
    else
        eval 'initdb "${args[@]}" '"$POSTGRES_INITDB_ARGS"
    fi
}

# Lets every TCP client in, with a password unless the method says otherwise. The lines
# initdb wrote (trust over the socket and loopback) stay, as in the official image.
setup_hba() {
    local method=${POSTGRES_HOST_AUTH_METHOD:-}
    if [ -z "$method" ]; then
        method=$(postgres -C password_encryption)
    fi
    {
        printf '\n'
        if [ "$method" = trust ]; then
            printf '# warning: trust is enabled for all connections\n'
        fi
        printf 'host all all all %s\n' "$method"
    } >> "$PGDATA/pg_hba.conf"
}

temp_server_start() {
    # Socket only: no TCP listener while the cluster is being set up.
    PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -w \
        -o "-c listen_addresses='' -p ${PGPORT:-5432}" start
}

temp_server_stop() {
    PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -m fast -w stop
}

psql_init() {
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

setup_db() {
    psql_init --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
}

process_init_files() {
    local f
    for f; do
        case $f in
            *.sh)
                if [ -x "$f" ]; then
                    log "$0: running $f"
                    "$f"
                else
                    log "$0: sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql) log "$0: running $f"; psql_init --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "$0: running $f"; gzip -dc "$f" | psql_init --dbname "$POSTGRES_DB" ;;
            *.sql.xz) log "$0: running $f"; xz -dc "$f" | psql_init --dbname "$POSTGRES_DB" ;;
            *) log "$0: ignoring $f" ;;
        esac
    done
}

main() {
    if [ "${1:0:1}" = - ]; then
        set -- postgres "$@"
    fi

    if [ "$1" = postgres ] && ! want_help "$@"; then
        setup_env
        create_dirs
        if [ "$(id -u)" = 0 ]; then
            # Drop privileges and run this script again as postgres.
            export HOME=/var/lib/postgresql
            exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
        fi

        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            verify_minimum_env
            # Fail early (and clearly) if the init folder can't be read.
            ls /docker-entrypoint-initdb.d/ > /dev/null
            init_database_dir
            setup_hba
            export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
            temp_server_start
            setup_db
            shopt -s nullglob
            process_init_files /docker-entrypoint-initdb.d/*
            shopt -u nullglob
            temp_server_stop
            unset PGPASSWORD
            log
            log 'PostgreSQL init process complete; ready for start up.'
            log
        else
            log
            log 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
            log
        fi
    fi

    exec "$@"
}

main "$@"
